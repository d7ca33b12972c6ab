package org.polarspark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.polarspark.cuda.CudaDtype;
import org.polarspark.generate.Backend;

/** The option registry: sources, precedence, validation messages, --help. */
class JobOptionsTest {
    static final List<String> REQUIRED = List.of("--input", "in.jsonl", "--output", "out",
            "--model", "m");

    static JobConfig parse(Map<String, String> spark, String... args) {
        List<String> all = new java.util.ArrayList<>(REQUIRED);
        all.addAll(List.of(args));
        return JobConfig.fromArgs(all, spark);
    }

    static String error(Map<String, String> spark, String... args) {
        return assertThrows(JobConfigException.class, () -> parse(spark, args)).getMessage();
    }

    @Test
    void defaultsAreVllmsAndTheJobsOwn() {
        JobConfig c = parse(Map.of());
        assertEquals(Mode.GENERATE, c.mode());
        assertEquals(1.0, c.temperature());
        assertEquals(1.0, c.topP());
        assertEquals(-1, c.topK());
        assertEquals(16, c.maxTokens());
        assertEquals(List.of(), c.stop());
        assertEquals(1, c.n());
        assertNull(c.logprobs());
        assertEquals(Backend.AUTO, c.backend());
        assertFalse(c.truncateLeft());
        assertFalse(c.overwrite());
        assertNull(c.idColumn());
        assertEquals("prompt", c.promptColumn());
        assertEquals("auto", c.inputFormat());
    }

    @Test
    void precedenceIsDefaultThenConfFileThenSparkSettingsThenCommandLine(@TempDir Path dir)
            throws IOException {
        Path file = dir.resolve("job.properties");
        Files.writeString(file, "max-tokens=5\nspark.polar.top-k=7\ntemperature=0.5\nn=3\n");
        JobConfig c = parse(Map.of("spark.polar.temperature", "0.25", "spark.polar.n", "2"),
                "--conf-file", file.toString(), "--n", "4");
        assertEquals(5, c.maxTokens());       // file over default
        assertEquals(7, c.topK());            // file, with the spark.polar. prefix
        assertEquals(0.25, c.temperature());  // Spark setting over file
        assertEquals(4, c.n());               // command line over everything
        assertEquals(0.0, parse(Map.of(), "--temperature=0").temperature());
    }

    @Test
    void errorsNameTheKeyTheSourceAndTheAllowedRange() {
        String e = error(Map.of(), "--top-p", "1.5");
        assertTrue(e.contains("'top-p'") && e.contains("command line") && e.contains("(0, 1]")
                && e.contains("'1.5'"), e);
        e = error(Map.of("spark.polar.max-batch", "0"));
        assertTrue(e.contains("'max-batch'") && e.contains("spark.polar.max-batch")
                && e.contains("[1, 4096]"), e);
        e = error(Map.of(), "--backend", "tpu");
        assertTrue(e.contains("one of cpu, cuda, auto"), e);
        e = error(Map.of(), "--logprobs", "21");
        assertTrue(e.contains("'logprobs'") && e.contains("[0, 20]"), e);
        e = error(Map.of(), "--max-tokns", "3");
        assertTrue(e.contains("unknown option 'max-tokns'") && e.contains("'max-tokens'"), e);
        e = error(Map.of(), "--temperature", "-1");
        assertTrue(e.contains("'temperature'") && e.contains("[0, inf)"), e);
        e = assertThrows(JobConfigException.class, () -> JobConfig.fromArgs(
                List.of("--input", "x"), Map.of())).getMessage();
        assertTrue(e.contains("'output' is required") && e.contains("spark.polar.output"), e);
    }

    @Test
    void aConfFileWithAnUnknownKeyIsAnErrorNamingTheFile(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("bad.properties");
        Files.writeString(file, "max_tokens=5\n");
        String e = error(Map.of(), "--conf-file", file.toString());
        assertTrue(e.contains("max_tokens") && e.contains(file.toString())
                && e.contains("'max-tokens'"), e);
    }

    @Test
    void stopStringsRepeatOrSplitOnCommasWithEscapes() {
        JobConfig c = parse(Map.of(), "--stop", "a,b", "--stop", "\\n", "--stop", "x\\,y");
        assertEquals(List.of("a", "b", "\n", "x,y"), c.stop());
        assertEquals(List.of("a", "b", "\n", "x,y"), c.sampling().stop());
        // a later source replaces a list, it does not add to it
        assertEquals(List.of("z"), parse(Map.of("spark.polar.stop", "q"), "--stop", "z").stop());
    }

    @Test
    void logprobsIsOffWhenEmpty() {
        assertNull(parse(Map.of(), "--logprobs", "").logprobs());
        assertEquals(3, parse(Map.of(), "--logprobs", "3").logprobs());
        assertEquals(0, parse(Map.of(), "--logprobs", "0").sampling().logprobs());
    }

    @Test
    void helpListsEveryOptionButTheTestHooks() {
        String help = JobOptions.help();
        String md = JobOptions.markdown();
        for (JobOption<?> o : JobOptions.ALL) {
            assertEquals(!o.hidden(), help.contains("--" + o.name() + " "), o.name());
            assertEquals(!o.hidden(), md.contains("| `" + o.name() + "` |"), o.name());
            assertFalse(o.doc().isEmpty());
        }
        assertTrue(help.contains("spark.polar."));
        for (String name : List.of("mode", "input", "input-format", "prompt-column",
                "id-column", "context-column", "choices-column", "label-column", "text-column",
                "output", "output-mode", "model", "backend", "max-batch", "temperature", "top-p",
                "top-k", "max-tokens", "stop", "seed", "n", "logprobs", "long-prompt-policy",
                "passthrough", "partitions", "polar", "polar-dir", "polar-density",
                "polar-every-token")) {
            assertTrue(JobOptions.find(name) != null, name);
        }
    }

    @Test
    void modeSpecificColumnsAndPassthroughAreChecked() {
        JobConfig mc = parse(Map.of(), "--mode", "mc", "--context-column", "ctx");
        assertEquals(List.of("ctx", "choices", "label"), mc.requiredColumns());
        assertEquals(1, parse(Map.of(), "--mode", "score", "--n", "3").n());
        String e = error(Map.of(), "--passthrough", "a,a");
        assertTrue(e.contains("passthrough") && e.contains("twice"), e);
    }

    @Test
    void polarOptionsHaveDefaultsRangesAndEverySource(@TempDir Path dir) throws IOException {
        JobConfig off = parse(Map.of());
        assertFalse(off.polar());
        assertNull(off.polarDir());
        assertNull(off.polarDensity());
        assertFalse(off.polarEveryToken());
        assertEquals(org.polarspark.polar.PolarSettings.OFF, off.polarSettings(null));
        assertFalse(off.describe().containsKey("polar-density"));

        Path file = dir.resolve("polar.properties");
        Files.writeString(file, "polar=true\nspark.polar.polar-density=0.3\n");
        JobConfig on = parse(Map.of("spark.polar.polar-every-token", "TRUE",
                "spark.polar.polar-density", "0.4"), "--conf-file", file.toString(),
                "--polar-dir", "hdfs:///routers/opt");
        assertTrue(on.polar());                  // conf file
        assertEquals(0.4, on.polarDensity());    // Spark setting over conf file
        assertTrue(on.polarEveryToken());
        assertEquals("hdfs:///routers/opt", on.polarDir());
        Path local = Path.of("/tmp/copy");
        assertEquals(new org.polarspark.polar.PolarSettings(true, local, 0.4, true),
                on.polarSettings(local));
        assertEquals("polar(density 0.4, every token)", on.polarSettings(null).describe());
        assertEquals(0.4, on.describe().get("polar-density"));
        assertEquals(List.of(), on.idlePolarOptions());
        assertNull(parse(Map.of(), "--polar", "true", "--polar-density", "").polarDensity());
        assertEquals(1.0, parse(Map.of(), "--polar-density", "1").polarDensity());
        assertEquals(List.of("polar-density", "polar-every-token"), parse(Map.of(),
                "--polar-density", "0.5", "--polar-every-token", "true").idlePolarOptions());

        String e = error(Map.of(), "--polar", "yes");
        assertTrue(e.contains("'polar'") && e.contains("true or false"), e);
        e = error(Map.of(), "--polar-density", "0");
        assertTrue(e.contains("'polar-density'") && e.contains("(0, 1]"), e);
        e = error(Map.of("spark.polar.polar-density", "1.5"));
        assertTrue(e.contains("spark.polar.polar-density") && e.contains("(0, 1]"), e);
        e = error(Map.of(), "--polar-every-token", "1");
        assertTrue(e.contains("'polar-every-token'"), e);
    }

    @Test
    void cudaDtypeDefaultsToBf16ComesFromEverySourceAndKeysTheEngine(@TempDir Path dir)
            throws IOException {
        JobConfig def = parse(Map.of());
        assertEquals(CudaDtype.BF16, def.cudaDtype());
        assertEquals("bf16", def.describe().get("cuda-dtype"));

        Path file = dir.resolve("dtype.properties");
        Files.writeString(file, "cuda-dtype=fp16\n");
        assertEquals(CudaDtype.FP16, parse(Map.of(), "--conf-file", file.toString())
                .cudaDtype());
        assertEquals(CudaDtype.FP16, parse(Map.of("spark.polar.cuda-dtype", "FP16")).cudaDtype());
        assertEquals(CudaDtype.BF16, parse(Map.of("spark.polar.cuda-dtype", "fp16"),
                "--cuda-dtype", "bf16").cudaDtype()); // command line over the Spark setting
        JobConfig fp16 = parse(Map.of(), "--cuda-dtype=fp16", "--backend", "cuda");
        assertEquals("fp16", fp16.describe().get("cuda-dtype"));
        assertEquals("fp16", PolarJob.metadata(fp16, "m", null).get("polar.cuda-dtype"));

        String e = error(Map.of(), "--cuda-dtype", "fp32");
        assertTrue(e.contains("'cuda-dtype'") && e.contains("command line")
                && e.contains("one of bf16, fp16") && e.contains("'fp32'"), e);
        e = error(Map.of("spark.polar.cuda-dtype", "half"));
        assertTrue(e.contains("spark.polar.cuda-dtype") && e.contains("one of bf16, fp16"), e);

        // The engine cache keys CUDA engines by dtype; CPU engines (fp32) have none.
        org.apache.hadoop.conf.Configuration conf = new org.apache.hadoop.conf.Configuration();
        EngineCache.Key cuda = EngineCache.key(fp16, conf, "0");
        assertEquals(Backend.CUDA, cuda.backend());
        assertEquals(CudaDtype.FP16, cuda.cudaDtype());
        assertTrue(!cuda.equals(EngineCache.key(parse(Map.of(), "--backend", "cuda"), conf,
                "0")), "bf16 and fp16 engines are different engines");
        EngineCache.Key cpu = EngineCache.key(parse(Map.of(), "--cuda-dtype", "fp16",
                "--backend", "auto"), conf, null);
        assertEquals(Backend.CPU, cpu.backend());
        assertNull(cpu.cudaDtype());
        assertEquals(cpu, EngineCache.key(def, conf, null));
    }

    @Test
    void positionalArgumentsAreRejected() {
        String e = error(Map.of(), "stray");
        assertTrue(e.contains("'stray'"), e);
    }
}
