package org.polarspark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.hadoop.util.HadoopInputFile;
import org.apache.spark.sql.Row;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.polarspark.cpu.CpuEngine;
import org.polarspark.generate.GenerationRequest;
import org.polarspark.generate.GenerationResult;
import org.polarspark.generate.LoglikelihoodRequest;
import org.polarspark.generate.LoglikelihoodResult;
import org.polarspark.generate.SamplingParams;
import org.polarspark.generate.Scoring;
import org.polarspark.generate.arrow.ArrowEngine;
import org.polarspark.model.Checkpoint;
import org.polarspark.model.ModelConfig;
import org.polarspark.polar.PolarConfig;
import org.polarspark.polar.PolarSettings;
import org.polarspark.polar.RouterWeights;

/**
 * Polar Sparsity through the job (local[2], CPU): a golden opt copy with random routers at
 * head density 0.5, generate and score, decode-only and every token, the density override,
 * a polar-dir on another file system, and the configuration errors.
 */
class PolarJobTest extends JobTestBase {
    static Path work;
    /** The golden opt checkpoint plus polar/ (random routers, density 0.5). */
    static Path polarModel;
    /** Only polar/, copied from polarModel: a polar-dir apart from the model. */
    static Path routersOnly;
    static ModelConfig config;

    @BeforeAll
    static void routers() throws IOException {
        work = Files.createTempDirectory("polar-job-test");
        polarModel = work.resolve("opt-polar");
        Files.createDirectories(polarModel);
        try (Stream<Path> files = Files.list(OPT)) {
            for (Path f : files.filter(f -> !f.getFileName().toString().startsWith("golden"))
                    .toList()) {
                Files.copy(f, polarModel.resolve(f.getFileName()));
            }
        }
        config = Checkpoint.open(polarModel).config();
        PolarConfig pc = PolarConfig.uniform(config, 0.5);
        pc.write(polarModel);
        RouterWeights.random(pc, 7).write(polarModel, pc);
        routersOnly = work.resolve("routers-only");
        Files.createDirectories(routersOnly.resolve("polar"));
        try (Stream<Path> files = Files.list(polarModel.resolve("polar"))) {
            for (Path f : files.toList()) {
                Files.copy(f, routersOnly.resolve("polar").resolve(f.getFileName()));
            }
        }
    }

    @AfterAll
    static void cleanUp() {
        SparkTests.deleteTree(work);
    }

    /**
     * The active head fraction the engine must report: per (token, layer), layer 0 keeps all
     * G groups and every other layer max(1, floor(density x G)).
     */
    static double headFraction(double density) {
        int g = config.numKvHeads();
        int kept = Math.max(1, (int) Math.floor(density * g + 1e-9));
        int l = config.numLayers();
        return (g + (l - 1.0) * kept) / ((double) l * g);
    }

    /** Every partition's statistics file. */
    static List<JsonNode> partitionStats(String out) {
        List<JsonNode> stats = new ArrayList<>();
        try (Stream<Path> s = Files.list(Path.of(out, "_stats"))) {
            for (Path p : s.filter(p -> p.getFileName().toString().startsWith("part-"))
                    .sorted().toList()) {
                stats.add(readJson(p));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return stats;
    }

    /** Checks the Polar figures of every partition; returns the partitions that routed. */
    static int assertPartitionFractions(String out, double expected, String sparsity) {
        int routed = 0;
        for (JsonNode st : partitionStats(out)) {
            assertEquals(sparsity, st.get("sparsity").asText());
            assertTrue(st.get("router_ms").isNumber(), st.toString());
            if (st.get("polar_groups_total").asLong() == 0) {
                assertTrue(st.get("active_head_fraction").isNull(), st.toString());
                continue;
            }
            routed++;
            assertEquals(expected, st.get("active_head_fraction").asDouble(), 1e-12,
                    st.toString());
            assertEquals((double) st.get("polar_groups_kept").asLong()
                    / st.get("polar_groups_total").asLong(),
                    st.get("active_head_fraction").asDouble(), 1e-12);
            // opt has a ReLU MLP; polar.json has no MLP table, so every neuron is kept
            assertEquals(1.0, st.get("active_neuron_fraction").asDouble(), st.toString());
        }
        return routed;
    }

    static Map<String, String> footer(String out) throws IOException {
        Path part;
        try (Stream<Path> s = Files.list(Path.of(out))) {
            part = s.filter(p -> p.getFileName().toString().endsWith(".parquet")).findFirst()
                    .orElseThrow();
        }
        try (ParquetFileReader reader = ParquetFileReader.open(HadoopInputFile.fromPath(
                new org.apache.hadoop.fs.Path(part.toUri()), new Configuration()))) {
            return reader.getFooter().getFileMetaData().getKeyValueMetaData();
        }
    }

    /** Greedy continuations of the prompts from an engine called directly. */
    static Map<String, String> greedy(Path model, PolarSettings polar, List<JsonNode> prompts,
                                      int maxTokens) {
        Map<String, String> out = new HashMap<>();
        try (CpuEngine e = CpuEngine.load(model, 4, polar)) {
            for (JsonNode j : prompts) {
                String id = j.get("id").asText();
                GenerationRequest r = new GenerationRequest(e.tokenizer().encode(
                        j.get("prompt").asText()), SamplingParams.greedy(maxTokens),
                        ArrowEngine.sampleSeed(RowSeeds.forRow(0, id), 0));
                GenerationResult g = e.generate(List.of(r)).results().get(0);
                out.put(id, g.text());
            }
        }
        return out;
    }

    static Path promptsFile(Path dir, List<JsonNode> prompts) {
        List<String> lines = new ArrayList<>();
        for (JsonNode j : prompts) {
            lines.add(j.toString());
        }
        return SparkTests.write(dir.resolve("prompts.jsonl"), lines);
    }

    @Test
    void generateWithRoutersReportsTheActiveHeadFractionInStatsSummaryAndFooter()
            throws IOException {
        List<JsonNode> prompts = shortPrompts(6);
        Path input = promptsFile(tmp, prompts);
        String out = tmp.resolve("out").toString();
        int failed = SparkTests.failedTasks();
        JobSummary summary = PolarJob.run(spark(), SparkTests.config("input", input.toString(),
                "output", out, "model", polarModel.toString(), "id-column", "id",
                "max-tokens", "5", "temperature", "0", "backend", "cpu", "polar", "true"));
        assertEquals(failed, SparkTests.failedTasks(), "no task was retried");

        Map<String, Row> rows = SparkTests.byKey(out);
        assertEquals(prompts.size(), rows.size());
        Map<String, String> expected = greedy(polarModel, PolarSettings.on(), prompts, 5);
        for (JsonNode j : prompts) {
            Row r = rows.get(j.get("id").asText() + "#0");
            assertEquals("ok", r.getAs("status"), r.<String>getAs("error"));
            assertEquals(expected.get(j.get("id").asText()), r.getAs("generated_text"));
        }

        double fraction = headFraction(0.5);
        assertEquals(0.75, fraction, 1e-12, "2 layers: (1 + 0.5) / 2");
        assertTrue(assertPartitionFractions(out, fraction, "polar(file densities, decode only)")
                > 0, "some partition decoded");
        Map<String, Object> p = summary.section("polar");
        assertEquals(fraction, (double) p.get("active_head_fraction"), 1e-12);
        assertEquals(1.0, (double) p.get("active_neuron_fraction"));
        assertTrue((double) p.get("router_ms") > 0);
        assertEquals("polar(file densities, decode only)", p.get("settings"));
        String table = summary.table();
        assertTrue(table.contains("active head fraction") && table.contains("0.7500"), table);
        assertTrue(table.contains("router time (ms)"), table);
        JsonNode written = readJson(Path.of(out, "_summary.json"));
        assertEquals(fraction, written.get("polar").get("active_head_fraction").asDouble(),
                1e-12);

        Map<String, String> kv = footer(out);
        assertEquals("polar(file densities, decode only); polar-dir file:"
                + polarModel.toAbsolutePath() + "; head density 1.0 (layer 0), 0.5 (layer 1); "
                + "MLP dense", kv.get("polar.sparsity"));
        assertEquals(kv.get("polar.sparsity"), summary.json().get("sparsity"));
        JsonNode options = parse(kv.get("polar.options"));
        assertTrue(options.get("polar").asBoolean());
        assertFalse(options.get("polar-every-token").asBoolean());
        assertTrue(options.get("polar-density").isNull());
    }

    @Test
    void theDensityOverrideAndARemotePolarDirChangeTheFraction() throws IOException {
        List<JsonNode> prompts = shortPrompts(4);
        Path input = promptsFile(tmp, prompts);
        String out = tmp.resolve("out").toString();
        Path cache = tmp.resolve("cache");
        // the model has no routers; they come from a polar-dir on another file system
        String remote = CountingFileSystem.uri(routersOnly);
        JobSummary summary = PolarJob.run(spark(), SparkTests.config("input", input.toString(),
                "output", out, "model", OPT.toString(), "id-column", "id", "max-tokens", "4",
                "temperature", "0", "backend", "cpu", "polar", "true", "polar-dir", remote,
                "polar-density", "0.25", "model-cache-dir", cache.toString()));
        Map<String, Row> rows = SparkTests.byKey(out);
        assertEquals(prompts.size(), rows.size());
        Map<String, String> expected = greedy(OPT, new PolarSettings(true, routersOnly, 0.25,
                false), prompts, 4);
        for (JsonNode j : prompts) {
            Row r = rows.get(j.get("id").asText() + "#0");
            assertEquals("ok", r.getAs("status"));
            assertEquals(expected.get(j.get("id").asText()), r.getAs("generated_text"));
        }
        double fraction = headFraction(0.25);
        assertEquals(0.625, fraction, 1e-12, "2 layers of 4 groups: (4 + 1) / 8");
        assertTrue(assertPartitionFractions(out, fraction, "polar(density 0.25, decode only)")
                > 0);
        assertEquals(fraction, (double) summary.section("polar").get("active_head_fraction"),
                1e-12);
        // the executors copied polar/ (and nothing else) into the cache
        try (Stream<Path> s = Files.list(cache)) {
            List<Path> copies = s.filter(x -> !x.getFileName().toString().startsWith("."))
                    .toList();
            assertEquals(1, copies.size(), copies.toString());
            assertTrue(copies.get(0).getFileName().toString().startsWith("polar-"));
            assertTrue(Files.isRegularFile(copies.get(0).resolve("polar/polar.json")));
            assertTrue(Files.isRegularFile(copies.get(0).resolve(ModelLocalizer.MANIFEST)));
        }
        String sparsity = footer(out).get("polar.sparsity");
        assertTrue(sparsity.startsWith("polar(density 0.25, decode only); polar-dir "
                + CountingFileSystem.SCHEME + ":" + routersOnly.toAbsolutePath() + ";")
                && sparsity.contains("head density 1.0 (layer 0), 0.25 (layer 1)"), sparsity);
    }

    /** Texts of the perplexity set cut to fit one window of the golden model's context. */
    static Path shortTexts(Path dir) {
        List<String> lines = new ArrayList<>();
        for (String line : SparkTests.lines("datasets/eval/perplexity.jsonl", 3)) {
            JsonNode j = parse(line);
            String text = j.get("text").asText().substring(0, 160);
            lines.add(JSON.createObjectNode().put("id", j.get("id").asText()).put("text", text)
                    .toString());
        }
        return SparkTests.write(dir.resolve("texts.jsonl"), lines);
    }

    static Map<String, Double> directScores(PolarSettings polar, Path input) {
        Map<String, Double> out = new HashMap<>();
        try (CpuEngine e = CpuEngine.load(polarModel, 4, polar)) {
            for (String line : SparkTests.lines(input.toString(), 100)) {
                JsonNode j = parse(line);
                List<LoglikelihoodRequest> windows = Scoring.rollingWindows(
                        e.tokenizer().encodePlain(j.get("text").asText()),
                        e.config().bosTokenId(), e.config().maxPositions());
                double ll = 0;
                for (LoglikelihoodResult x : e.loglikelihood(windows).results()) {
                    ll += x.loglikelihood();
                }
                out.put(j.get("id").asText(), ll);
            }
        }
        return out;
    }

    @Test
    void scoresUnderEveryTokenDifferFromDecodeOnlyAndBothMatchTheEngine() {
        Path input = shortTexts(tmp);
        Map<String, Map<String, Row>> runs = new HashMap<>();
        for (String everyToken : List.of("false", "true")) {
            String out = tmp.resolve("out-" + everyToken).toString();
            JobSummary summary = PolarJob.run(spark(), SparkTests.config("mode", "score",
                    "input", input.toString(), "output", out, "model", polarModel.toString(),
                    "id-column", "id", "backend", "cpu", "polar", "true",
                    "polar-every-token", everyToken));
            runs.put(everyToken, SparkTests.byKey(out));
            String settings = "polar(file densities, " + (everyToken.equals("true")
                    ? "every token" : "decode only") + ")";
            assertTrue(assertPartitionFractions(out, headFraction(0.5), settings) > 0);
            assertEquals(headFraction(0.5),
                    (double) summary.section("polar").get("active_head_fraction"), 1e-12);
            assertNotNull(summary.section("score").get("token_perplexity"));
        }
        Map<String, Double> decodeOnly = directScores(PolarSettings.on(), input);
        Map<String, Double> everyToken = directScores(new PolarSettings(true, null, null, true),
                input);
        assertEquals(3, decodeOnly.size());
        for (String id : decodeOnly.keySet()) {
            Row a = runs.get("false").get(id);
            Row b = runs.get("true").get(id);
            assertEquals("ok", a.getAs("status"));
            assertEquals("ok", b.getAs("status"));
            assertTrue((int) a.getAs("num_tokens") > 10, "a multi-token text");
            double lla = a.getAs("loglikelihood");
            double llb = b.getAs("loglikelihood");
            assertEquals(decodeOnly.get(id), lla, Math.abs(lla) * ScoreJobTest.LL_TOLERANCE);
            assertEquals(everyToken.get(id), llb, Math.abs(llb) * ScoreJobTest.LL_TOLERANCE);
            assertNotEquals(lla, llb, 1e-6, id + ": the prompt went through the routers");
        }
    }

    @Test
    void polarOnAModelWithoutRoutersIsAStartupErrorNamingPolarJson() {
        Path input = promptsFile(tmp, shortPrompts(1));
        Path out = tmp.resolve("out");
        JobConfigException e = assertThrows(JobConfigException.class, () -> PolarJob.run(
                spark(), SparkTests.config("input", input.toString(), "output", out.toString(),
                        "model", OPT.toString(), "backend", "cpu", "polar", "true")));
        assertTrue(e.getMessage().contains(OPT.toAbsolutePath().resolve("polar/polar.json")
                .toString()) && e.getMessage().contains("does not exist"), e.getMessage());
        assertFalse(Files.exists(out), "nothing was written");
        // the same without Polar runs dense, and polar-density alone is only a warning
        JobSummary s = PolarJob.run(spark(), SparkTests.config("input", input.toString(),
                "output", out.toString(), "model", OPT.toString(), "backend", "cpu",
                "max-tokens", "2", "polar-density", "0.5"));
        assertNull(s.section("polar"));
        JsonNode st = partitionStats(out.toString()).get(0);
        assertEquals("dense", st.get("sparsity").asText());
        assertTrue(st.get("active_head_fraction").isNull() && st.get("router_ms").isNull());
    }

    @Test
    void routersThatDoNotFitTheModelFailTheJobAsAConfigurationError() throws IOException {
        // polar.json fits opt, but the router file was made for llama3-gqa (3 layers, 2 groups):
        // the driver only checks that it exists; the executors' engine rejects it
        Path dir = tmp.resolve("bad-routers");
        Files.createDirectories(dir.resolve("polar"));
        Files.copy(routersOnly.resolve("polar/polar.json"), dir.resolve("polar/polar.json"));
        PolarConfig other = PolarConfig.uniform(Checkpoint.open(SparkTests.golden("llama3-gqa"))
                .config(), 0.5);
        RouterWeights.random(other, 1).writeFile(dir.resolve("polar/routers.safetensors"));
        Path input = promptsFile(tmp, shortPrompts(2));
        JobFailedException e = assertThrows(JobFailedException.class, () -> PolarJob.run(
                spark(), SparkTests.config("input", input.toString(),
                        "output", tmp.resolve("out").toString(), "model", OPT.toString(),
                        "backend", "cpu", "polar", "true", "polar-dir", dir.toString(),
                        "partitions", "1")));
        assertTrue(e.getMessage().contains("configuration error")
                && e.getMessage().contains("routers.safetensors")
                && e.getMessage().contains("ModelFormatException"), e.getMessage());
    }
}
