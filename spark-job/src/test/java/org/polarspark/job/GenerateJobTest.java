package org.polarspark.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.hadoop.util.HadoopInputFile;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.polarspark.generate.GenerationRequest;
import org.polarspark.generate.GenerationResult;
import org.polarspark.generate.SamplingParams;
import org.polarspark.generate.arrow.ArrowEngine;

/** generate mode end to end in local[2], checked against the CPU engine called directly. */
class GenerateJobTest extends JobTestBase {

    /** What the engine gives for a row_id and prompt when called directly. */
    static List<GenerationResult> expected(String rowId, String prompt, SamplingParams p) {
        long rowSeed = RowSeeds.forRow(p.seed(), rowId);
        List<GenerationRequest> reqs = new ArrayList<>();
        for (int s = 0; s < p.n(); s++) {
            reqs.add(new GenerationRequest(direct.tokenizer().encode(prompt), p,
                    ArrowEngine.sampleSeed(rowSeed, s)));
        }
        return direct.generate(reqs).results();
    }

    static void assertSameAsEngine(Row r, GenerationResult g, String prompt) {
        String key = r.getAs("row_id") + "#" + r.getAs("sample_index");
        assertEquals("ok", r.getAs("status"), key + ": " + r.getAs("error"));
        assertNull(r.getAs("error"));
        assertEquals(g.text(), r.getAs("generated_text"), key);
        assertEquals(g.tokens().length, (int) r.getAs("num_generated_tokens"), key);
        List<Integer> ids = r.getList(r.fieldIndex("token_ids"));
        assertArrayEquals(g.tokens(), ids.stream().mapToInt(Integer::intValue).toArray(), key);
        assertEquals(direct.tokenizer().encode(prompt).length, (int) r.getAs("num_input_tokens"));
        assertEquals(g.finishReason().wire(), r.getAs("finish_reason"), key);
        assertEquals(g.stopReason(), r.getAs("stop_reason"), key);
        assertEquals(g.cumulativeLogprob(), (double) r.getAs("cumulative_logprob"), key);
        assertEquals(0, (int) r.getAs("truncated_tokens"));
        assertTrue((double) r.getAs("time_to_first_token_ms") >= 0);
    }

    @Test
    void eachPromptGetsNSamplesAsTheEngineMakesThemWithTheDocumentedSchema() throws IOException {
        List<JsonNode> prompts = shortPrompts(10);
        List<String> lines = new ArrayList<>();
        for (JsonNode j : prompts) {
            lines.add(j.toString());
        }
        Path input = SparkTests.write(tmp.resolve("in/prompts.jsonl"), lines);
        String out = tmp.resolve("out").toString();
        JobConfig cfg = SparkTests.config("input", input.toString(), "output", out,
                "model", OPT.toString(), "id-column", "id", "max-tokens", "6",
                "temperature", "0.8", "top-k", "50", "seed", "11", "n", "2", "logprobs", "2",
                "stop", "\\n", "passthrough", "prompt", "backend", "cpu");
        int failed = SparkTests.failedTasks();
        JobSummary summary = PolarJob.run(spark(), cfg);
        assertEquals(failed, SparkTests.failedTasks(), "no task was retried");

        // exactly one row per (prompt, sample), keyed by the input's ids
        Map<String, Row> rows = SparkTests.byKey(out);
        assertEquals(20, rows.size());
        for (JsonNode j : prompts) {
            String id = j.get("id").asText();
            String prompt = j.get("prompt").asText();
            List<GenerationResult> exp = expected(id, prompt, cfg.sampling());
            for (int s = 0; s < 2; s++) {
                Row r = rows.get(id + "#" + s);
                GenerationResult g = exp.get(s);
                assertSameAsEngine(r, g, prompt);
                assertEquals(prompt, r.getAs("prompt"), "passthrough");
                List<Double> lps = r.getList(r.fieldIndex("logprobs"));
                assertArrayEquals(g.logprobs(), lps.stream().mapToDouble(Double::doubleValue)
                        .toArray());
                List<scala.collection.Seq<Row>> top = r.getList(r.fieldIndex("top_logprobs"));
                assertEquals(g.tokens().length, top.size());
                for (int k = 0; k < top.size(); k++) {
                    assertEquals(2, top.get(k).size());
                    Row best = top.get(k).apply(0);
                    assertEquals(g.topIds()[k][0], (int) best.getAs("token_id"));
                    assertEquals(g.topLogprobs()[k][0], (double) best.getAs("logprob"));
                    assertEquals(direct.tokenizer().decode(new int[] {g.topIds()[k][0]}),
                            best.getAs("token"));
                }
                long seed = s == 0 ? RowSeeds.forRow(11, id)
                        : ArrowEngine.sampleSeed(RowSeeds.forRow(11, id), s);
                assertEquals(seed, (long) r.getAs("seed"));
            }
        }

        // the documented schema, then the passthrough column
        StructType schema = spark().read().parquet(out).schema();
        List<StructField> expectedFields = new ArrayList<>(List.of(OutputSchemas.GENERATE
                .fields()));
        expectedFields.add(new StructField("prompt", DataTypes.StringType, true,
                org.apache.spark.sql.types.Metadata.empty()));
        assertEquals(expectedFields.size(), schema.fields().length);
        for (int i = 0; i < expectedFields.size(); i++) {
            assertEquals(expectedFields.get(i).name(), schema.fields()[i].name());
            // Parquet reads every column and element back as nullable: compare the types
            assertEquals(expectedFields.get(i).dataType().catalogString(),
                    schema.fields()[i].dataType().catalogString(), expectedFields.get(i).name());
        }

        // footer key-value metadata, read back with parquet-hadoop
        Path part;
        try (Stream<Path> s = Files.list(Path.of(out))) {
            part = s.filter(p -> p.getFileName().toString().endsWith(".parquet")).findFirst()
                    .orElseThrow();
        }
        Map<String, String> kv;
        try (ParquetFileReader reader = ParquetFileReader.open(HadoopInputFile.fromPath(
                new org.apache.hadoop.fs.Path(part.toUri()), new Configuration()))) {
            kv = reader.getFooter().getFileMetaData().getKeyValueMetaData();
        }
        assertEquals("file:" + OPT.toAbsolutePath(), kv.get("polar.model"));
        assertEquals("cpu", kv.get("polar.backend"));
        assertEquals("dense", kv.get("polar.sparsity"));
        assertEquals("generate", kv.get("polar.mode"));
        assertEquals(PolarJob.version(), kv.get("polar.version"));
        assertFalse(PolarJob.version().contains("$") || PolarJob.version().equals("unknown"));
        JsonNode sampling = parse(kv.get("polar.sampling"));
        assertEquals(0.8, sampling.get("temperature").asDouble());
        assertEquals(6, sampling.get("max_tokens").asInt());
        assertEquals("\n", sampling.get("stop").get(0).asText());
        assertTrue(kv.containsKey("org.apache.spark.sql.parquet.row.metadata"),
                "Spark's own footer entries are kept");

        // statistics: one file per partition, summing to the output
        long statRows = 0;
        long statOut = 0;
        long statTokens = 0;
        // auto partitioning: the single input file is spread over 2 x 2 slots
        for (int p = 0; p < 4; p++) {
            JsonNode st = readJson(Path.of(out, "_stats", String.format("part-%05d.json", p)));
            statRows += st.get("rows").asLong();
            statOut += st.get("output_rows").asLong();
            statTokens += st.get("output_tokens").asLong();
            assertEquals("cpu", st.get("device").asText());
            assertEquals(8, st.get("max_batch").asInt());
        }
        try (Stream<Path> files = Files.list(Path.of(out, "_stats"))) {
            assertEquals(4, files.filter(f -> f.getFileName().toString().startsWith("part-"))
                    .count());
        }
        assertEquals(4, summary.json().get("partitions"));
        assertEquals(10, statRows);
        assertEquals(20, statOut);
        long generated = rows.values().stream()
                .mapToLong(r -> (int) r.getAs("num_generated_tokens")).sum();
        assertEquals(generated, statTokens);
        JsonNode sum = readJson(Path.of(out, "_summary.json"));
        assertEquals(10, sum.get("rows").get("input").asLong());
        assertEquals(20, sum.get("rows").get("output").asLong());
        assertEquals(generated, sum.get("tokens").get("output").asLong());
        assertTrue(sum.get("latency_ms").get("ttft_p95").asDouble()
                >= sum.get("latency_ms").get("ttft_p50").asDouble());
        assertEquals(summary.json().get("wall_s"), sum.get("wall_s").asDouble());
        assertTrue(summary.table().contains("TTFT p50 / p95 (ms)"));
    }

    @Test
    void aModelOnAnotherHadoopFileSystemIsCopiedByTheExecutorsAndGivesTheSameOutput()
            throws IOException {
        List<JsonNode> prompts = shortPrompts(4);
        List<String> lines = new ArrayList<>();
        for (JsonNode j : prompts) {
            lines.add(j.toString());
        }
        Path input = SparkTests.write(tmp.resolve("in.jsonl"), lines);
        Path cache = tmp.resolve("model-cache");
        int opens = CountingFileSystem.OPENS.get();
        String out = tmp.resolve("out").toString();
        PolarJob.run(spark(), SparkTests.config("input", input.toString(), "output", out,
                "model", CountingFileSystem.uri(OPT), "id-column", "id", "max-tokens", "4",
                "temperature", "0", "model-cache-dir", cache.toString(), "backend", "cpu"));
        assertTrue(CountingFileSystem.OPENS.get() > opens, "the model was read through "
                + "the polartest: file system");
        try (Stream<Path> s = Files.list(cache)) {
            List<Path> copies = s.filter(p -> !p.getFileName().toString().startsWith("."))
                    .toList();
            assertEquals(1, copies.size());
            assertTrue(Files.isRegularFile(copies.get(0).resolve(ModelLocalizer.MANIFEST)));
        }
        Map<String, Row> rows = SparkTests.byKey(out);
        assertEquals(4, rows.size());
        for (JsonNode j : prompts) {
            String id = j.get("id").asText();
            GenerationResult g = expected(id, j.get("prompt").asText(),
                    SamplingParams.greedy(4)).get(0);
            assertEquals(g.text(), rows.get(id + "#0").getAs("generated_text"));
        }
    }

    @Test
    void textInputRowsAreIdentifiedByFileAndByteOffset() throws IOException {
        List<String> lines = List.of("It is a truth universally acknowledged",
                "Emma Woodhouse, handsome, clever, and rich", "", "Anne Elliot");
        Path input = SparkTests.write(tmp.resolve("in/prompts.txt"), lines);
        String out = tmp.resolve("out").toString();
        PolarJob.run(spark(), SparkTests.config("input", tmp.resolve("in").toString(),
                "output", out, "model", OPT.toString(), "max-tokens", "3", "temperature", "0",
                "backend", "cpu"));
        byte[] bytes = Files.readAllBytes(input);
        List<Long> offsets = new ArrayList<>(List.of(0L));
        for (int i = 0; i < bytes.length - 1; i++) {
            if (bytes[i] == '\n') {
                offsets.add(i + 1L);
            }
        }
        Map<String, Row> rows = SparkTests.byKey(out);
        assertEquals(lines.size(), rows.size());
        for (int i = 0; i < lines.size(); i++) {
            Row r = rows.get("prompts.txt:" + offsets.get(i) + "#0");
            if (lines.get(i).isEmpty()) {
                assertEquals("error", r.getAs("status"));
                assertEquals("prompt is empty", r.getAs("error"));
            } else {
                assertEquals(expected("prompts.txt:" + offsets.get(i), lines.get(i),
                        SamplingParams.greedy(3)).get(0).text(), r.getAs("generated_text"));
            }
        }
    }

    @Test
    void parquetInputRowsAreIdentifiedByFileAndRowIndex() throws IOException {
        List<Row> data = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            data.add(RowFactory.create("Chapter " + i + " of the novel", (long) i));
        }
        StructType schema = new StructType().add("text", DataTypes.StringType)
                .add("n", DataTypes.LongType);
        Path dir = tmp.resolve("pq");
        spark().createDataFrame(data, schema).repartition(2).write().parquet(dir.toString());
        String out = tmp.resolve("out").toString();
        PolarJob.run(spark(), SparkTests.config("input", dir.toString(), "output", out,
                "model", OPT.toString(), "prompt-column", "text", "max-tokens", "3",
                "passthrough", "n", "backend", "cpu"));
        // independent expectation: each part file's rows in file order, numbered from 0
        Map<String, String> expectedIds = new LinkedHashMap<>();
        try (Stream<Path> s = Files.list(dir)) {
            for (Path f : s.filter(p -> p.toString().endsWith(".parquet")).sorted().toList()) {
                List<Row> inFile = spark().read().parquet(f.toString()).collectAsList();
                for (int i = 0; i < inFile.size(); i++) {
                    expectedIds.put(f.getFileName() + ":" + i, inFile.get(i).getString(0));
                }
            }
        }
        assertEquals(6, expectedIds.size());
        Map<String, Row> rows = SparkTests.byKey(out);
        assertEquals(6, rows.size());
        SamplingParams p = new SamplingParams(1.0, 1.0, -1, 3, List.of(), 0, 1, null);
        for (Map.Entry<String, String> e : expectedIds.entrySet()) {
            Row r = rows.get(e.getKey() + "#0");
            assertEquals(expected(e.getKey(), e.getValue(), p).get(0).text(),
                    r.getAs("generated_text"), e.getKey());
            assertEquals(Long.parseLong(e.getValue().split(" ")[1]), (long) r.getAs("n"));
        }
    }
}
