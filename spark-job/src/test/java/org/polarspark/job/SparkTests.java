package org.polarspark.job;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.StructType;

/**
 * One local Spark session for all tests of this JVM: {@code local[2,3]}, two cores and up to
 * three attempts per task (so a test can inject one failure). A listener counts failed task
 * attempts, so the other tests can assert that nothing was retried behind their back.
 */
final class SparkTests {
    private SparkTests() {
    }

    static final AtomicInteger FAILED_TASKS = new AtomicInteger();
    private static SparkSession spark;

    static synchronized SparkSession spark() {
        if (spark == null) {
            spark = SparkSession.builder()
                    .master("local[2,3]")
                    .appName("polar-spark-tests")
                    .config("spark.ui.enabled", "false")
                    .config("spark.sql.shuffle.partitions", "2")
                    .config("spark.default.parallelism", "2")
                    .config("spark.hadoop.fs.polartest.impl", CountingFileSystem.class.getName())
                    .getOrCreate();
            spark.sparkContext().addSparkListener(new SparkListener() {
                @Override
                public void onTaskEnd(SparkListenerTaskEnd end) {
                    if (!end.taskInfo().successful()) {
                        FAILED_TASKS.incrementAndGet();
                    }
                }
            });
        }
        return spark;
    }

    /**
     * Failed task attempts so far, read once the listener bus has delivered every event posted
     * before the call: a test that reads the count before its job must not see a previous test's
     * failures arrive late (CalibrateJobTest's no-GPU case fails three attempts on purpose).
     */
    static int failedTasks() {
        try {
            spark().sparkContext().listenerBus().waitUntilEmpty();
        } catch (java.util.concurrent.TimeoutException e) {
            throw new IllegalStateException("Spark's listener bus did not drain", e);
        }
        return FAILED_TASKS.get();
    }

    /** The repository root (the folder holding datasets/). */
    static Path repoRoot() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null && !Files.isDirectory(p.resolve("datasets"))) {
            p = p.getParent();
        }
        if (p == null) {
            throw new IllegalStateException("no datasets/ above " + Path.of("").toAbsolutePath());
        }
        return p;
    }

    /** A tiny random checkpoint of gpu-runtime's golden tests (opt: context 128). */
    static Path golden(String name) {
        return repoRoot().resolve("gpu-runtime/src/test/resources/golden").resolve(name);
    }

    /** The first {@code n} rows of a JSON Lines file of the repository, as raw lines. */
    static List<String> lines(String repoPath, int n) {
        try (Stream<String> s = Files.lines(repoRoot().resolve(repoPath))) {
            return s.limit(n).toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static Path write(Path file, List<String> lines) {
        try {
            Files.createDirectories(file.getParent());
            Files.write(file, lines);
            return file;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Builds a JobConfig from option pairs: "input", path, "model", path, ... */
    static JobConfig config(String... kv) {
        List<String> args = new ArrayList<>();
        for (int i = 0; i < kv.length; i += 2) {
            args.add("--" + kv[i]);
            args.add(kv[i + 1]);
        }
        return JobConfig.fromArgs(args, Map.of());
    }

    /** Output rows keyed by "row_id#sample_index" (or row_id), asserting no duplicates. */
    static Map<String, Row> byKey(String output) {
        List<Row> rows = spark().read().parquet(output).collectAsList();
        Map<String, Row> out = new LinkedHashMap<>();
        StructType schema = spark().read().parquet(output).schema();
        boolean samples = List.of(schema.fieldNames()).contains("sample_index");
        for (Row r : rows) {
            String key = r.getAs("row_id") + (samples ? "#" + r.getAs("sample_index") : "");
            if (out.put(key, r) != null) {
                throw new AssertionError("duplicate output row " + key);
            }
        }
        return out;
    }

    static void deleteTree(Path p) {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path x : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(x);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
