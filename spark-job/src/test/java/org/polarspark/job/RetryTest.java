package org.polarspark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.apache.spark.sql.Row;
import org.junit.jupiter.api.Test;

/** A task that fails once and is retried writes exactly what a clean run writes. */
class RetryTest extends JobTestBase {
    /** Measured times are the only columns that may differ between runs. */
    static final List<String> TIMINGS = List.of("time_to_first_token_ms", "decode_ms");

    /** Rows of each part file in file order, keyed by the part's partition number. */
    static Map<String, List<List<Object>>> content(String output) throws IOException {
        Map<String, List<List<Object>>> out = new TreeMap<>();
        try (Stream<Path> s = Files.list(Path.of(output))) {
            for (Path f : s.filter(p -> p.toString().endsWith(".parquet")).toList()) {
                String part = f.getFileName().toString().substring(0, 10); // part-NNNNN
                List<List<Object>> rows = new ArrayList<>();
                for (Row r : spark().read().parquet(f.toString()).collectAsList()) {
                    List<Object> values = new ArrayList<>();
                    for (String name : r.schema().fieldNames()) {
                        if (!TIMINGS.contains(name)) {
                            Object v = r.getAs(name);
                            values.add(v instanceof scala.collection.Seq<?> seq
                                    ? seq.toString() : v);
                        }
                    }
                    rows.add(values);
                }
                out.put(part, rows);
            }
        }
        return out;
    }

    @Test
    void aRetriedTaskWritesByteIdenticalRows() throws IOException {
        List<String> lines = new ArrayList<>();
        for (JsonNode j : shortPrompts(12)) {
            lines.add(j.toString());
        }
        Path input = SparkTests.write(tmp.resolve("in.jsonl"), lines);
        String[] common = {"input", input.toString(), "model", OPT.toString(),
            "max-tokens", "5", "temperature", "1.0", "top-p", "0.9", "seed", "42",
            "logprobs", "1", "partitions", "2", "batch-rows", "2", "backend", "cpu"};
        String clean = tmp.resolve("clean").toString();
        String retried = tmp.resolve("retried").toString();
        Path marker = tmp.resolve("failed-once");

        int failedBefore = SparkTests.failedTasks();
        PolarJob.run(spark(), SparkTests.config(with(common, "output", clean)));
        assertEquals(failedBefore, SparkTests.failedTasks());
        PolarJob.run(spark(), SparkTests.config(with(common, "output", retried,
                "test.fail-once-marker", marker.toString(), "test.fail-partition", "1")));
        assertTrue(Files.exists(marker), "the failure was injected");
        assertEquals(failedBefore + 1, SparkTests.failedTasks(), "one attempt failed");

        Map<String, List<List<Object>>> a = content(clean);
        Map<String, List<List<Object>>> b = content(retried);
        assertEquals(2, a.size());
        assertEquals(12, a.values().stream().mapToInt(List::size).sum());
        assertEquals(a, b); // Double.equals compares bits: byte-identical values
        try (Stream<Path> s = Files.list(Path.of(retried, "_stats"))) {
            assertEquals(List.of("part-00000.json", "part-00001.json"), s.map(p -> p
                    .getFileName().toString()).filter(n -> !n.startsWith(".")).sorted().toList());
        }
        JsonNode stats = readJson(Path.of(retried, "_stats", "part-00001.json"));
        assertEquals(1, stats.get("attempt").asInt(), "written by the retry");
    }

    static String[] with(String[] base, String... more) {
        String[] all = java.util.Arrays.copyOf(base, base.length + more.length);
        System.arraycopy(more, 0, all, base.length, more.length);
        return all;
    }
}
