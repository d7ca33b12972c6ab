package org.polarspark.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerStageSubmitted;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.polarspark.cpu.CpuEngine;
import org.polarspark.generate.Backend;
import org.polarspark.generate.EngineFactory;
import org.polarspark.generate.LoglikelihoodRequest;
import org.polarspark.model.ModelConfig;
import org.polarspark.polar.CalibrateMain;
import org.polarspark.polar.KTableTuner;
import org.polarspark.polar.PolarConfig;
import org.polarspark.polar.RouterCalibration;
import org.polarspark.polar.RouterTrainer;
import org.polarspark.polar.PolarSettings;
import org.polarspark.polar.RouterWeights;

/**
 * {@code --mode calibrate} in local[2] on the bundled tiny-opt with a small budget: the router
 * files load, training ran as one Spark task per layer, and the head routers beat random ones
 * on held-out tokens. Plus the startup errors of bad input.
 */
class CalibrateJobTest {
    static final Path OPT = SparkTests.repoRoot().resolve("datasets/models/tiny-opt");
    static final String CORPUS = SparkTests.repoRoot().resolve("datasets/corpus/train.txt")
            .toString();

    @TempDir
    Path tmp;

    /** Counts the tasks of the stages submitted under a job description. */
    static final class StageTasks extends SparkListener {
        final String description;
        final Set<Integer> stages = ConcurrentHashMap.newKeySet();
        final Map<Integer, Integer> numTasks = new ConcurrentHashMap<>();
        final List<Integer> finished = Collections.synchronizedList(new ArrayList<>());

        StageTasks(String description) {
            this.description = description;
        }

        @Override
        public void onStageSubmitted(SparkListenerStageSubmitted e) {
            if (e.properties() != null && description.equals(
                    e.properties().getProperty("spark.job.description"))) {
                stages.add(e.stageInfo().stageId());
                numTasks.put(e.stageInfo().stageId(), e.stageInfo().numTasks());
            }
        }

        @Override
        public void onTaskEnd(SparkListenerTaskEnd e) {
            if (stages.contains(e.stageId()) && e.taskInfo().successful()) {
                finished.add(e.taskInfo().index());
            }
        }
    }

    private JobConfig config(String... extra) {
        List<String> args = new ArrayList<>(List.of("--mode", "calibrate", "--model",
                OPT.toString(), "--corpus", CORPUS, "--calibration-tokens", "2000",
                "--calibration-head-epochs", "6", "--calibration-mlp-epochs", "3",
                "--output", tmp.resolve("out").toString(), "--backend", "cpu"));
        args.addAll(List.of(extra));
        return JobConfig.fromArgs(args, Map.of());
    }

    @Test
    void calibratesWithOneTrainingTaskPerLayerAndTheRoutersLoad() throws Exception {
        StageTasks train = new StageTasks(CalibrateJob.TRAIN_STAGE);
        StageTasks collect = new StageTasks(CalibrateJob.COLLECT_STAGE);
        SparkTests.spark().sparkContext().addSparkListener(train);
        SparkTests.spark().sparkContext().addSparkListener(collect);
        int failedBefore = SparkTests.failedTasks();
        CalibrateJob.Summary s;
        try {
            s = CalibrateJob.run(SparkTests.spark(), config("--calibration-keep-spill", "true"));
            SparkTests.spark().sparkContext().listenerBus().waitUntilEmpty();
        } finally {
            SparkTests.spark().sparkContext().removeSparkListener(train);
            SparkTests.spark().sparkContext().removeSparkListener(collect);
        }
        assertEquals(failedBefore, SparkTests.failedTasks(), "no task was retried");
        ModelConfig mc = ModelConfig.load(OPT.resolve("config.json"));
        int layers = mc.numLayers();

        // One Spark task per layer in the training stage, each layer's index once.
        assertEquals(1, train.stages.size(), "one training stage");
        assertEquals(layers, train.numTasks.values().iterator().next());
        assertEquals(layers, train.finished.size());
        Set<Integer> idx = new TreeSet<>(train.finished);
        assertEquals(layers, idx.size());
        assertEquals(2, collect.finished.size(), "local[2]: two collection tasks");
        assertEquals(layers, s.json().get("train_tasks").asInt());

        // The files load against the model, and the engine runs with them.
        Path out = tmp.resolve("out");
        PolarConfig pc = PolarConfig.load(out, mc);
        RouterWeights rw = RouterWeights.load(out, pc);
        assertTrue(rw.hasMlp());
        assertEquals(1.0, pc.density(0));
        assertEquals(0.5, pc.density(1));
        JsonNode cal = pc.calibration();
        assertEquals(2000, cal.get("tokens").asInt());
        assertEquals(2000, cal.get("train_samples").asInt() + cal.get("validation_samples")
                .asInt());
        assertEquals(layers, cal.get("spark").get("train_tasks").asInt());
        assertTrue(cal.get("date").asText().startsWith("20"));
        assertTrue(cal.get("corpus").asText().endsWith("train.txt"));
        try (CpuEngine e = CpuEngine.load(OPT, 1, new PolarSettings(true, out, null, true))) {
            double ll = e.loglikelihood(List.of(new LoglikelihoodRequest(new int[] {2, 100, 101},
                    new int[] {102, 103}))).results().get(0).loglikelihood();
            assertTrue(Double.isFinite(ll) && ll < 0, "ll " + ll);
        }

        // Better than random: a random router recalls kLabel / G of the true top groups.
        double random = cal.get("random_recall").asDouble();
        assertEquals(0.5, random, 1e-9); // 4 of 8 heads
        double sum = 0;
        for (int l = 0; l < layers; l++) {
            double r = cal.get("recall").get(l).asDouble();
            assertTrue(r > random, "layer " + l + " head recall " + r + " vs random " + random);
            sum += r;
        }
        assertTrue(sum / layers > random + 0.1, "mean head recall " + sum / layers);
        // MLP routers: recall of firing neurons well above the firing fraction (what random
        // routing at that density would recall)
        for (int l = 0; l < layers; l++) {
            double rec = cal.get("mlp").get("recall").get(l).asDouble();
            double firing = cal.get("mlp").get("firing_fraction").get(l).asDouble();
            assertTrue(rec > firing + 0.3, "layer " + l + " MLP recall " + rec + ", firing "
                    + firing);
        }

        // The spill was kept (asked for): one part per collection task per layer, together
        // 2000 records of the layer's record size.
        Path spill = out.resolve(CalibrateJob.SPILL_DEFAULT);
        int rec = org.polarspark.polar.CalibrationSamples.recordBytes(mc.hiddenSize(),
                mc.numHeads(), mc.ffnDim());
        for (int l = 0; l < layers; l++) {
            long bytes = 0;
            for (int t = 0; t < 2; t++) {
                bytes += Files.size(spill.resolve("layer-" + l)
                        .resolve(String.format("part-%05d.bin", t)));
            }
            assertEquals(2000L * rec, bytes, "layer " + l);
        }
        assertTrue(Files.isRegularFile(out.resolve("_summary.json")));

        // One implementation: the one-JVM CalibrateMain on the same corpus, budget and seeds
        // trains the very same routers (same windows, same sample order, seeded per layer).
        RouterCalibration.Calibrated local = CalibrateMain.calibrate(new CalibrateMain.Options(
                OPT, Path.of(CORPUS), 2000, 0.5, 2, null, false,
                RouterTrainer.Options.defaults().withEpochs(6, 3), KTableTuner.DEFAULT_BUCKETS));
        for (int l = 0; l < layers; l++) {
            assertArrayEquals(local.weights().headWeight(l), rw.headWeight(l), "layer " + l);
            assertArrayEquals(local.weights().headBias(l), rw.headBias(l), "layer " + l);
            assertArrayEquals(local.weights().mlpDown(l), rw.mlpDown(l), "layer " + l);
            assertArrayEquals(local.weights().mlpUp(l), rw.mlpUp(l), "layer " + l);
            assertArrayEquals(local.config().mlp().k()[l], pc.mlp().k()[l], "layer " + l);
        }
        assertEquals(local.config().calibration().get("recall").toString(),
                cal.get("recall").toString());
        assertNotNull(s.table());
        assertTrue(s.table().contains("head recall"));
    }

    @Test
    void missingCorpusIsAStartupErrorNamingIt() {
        JobConfig cfg = config("--corpus", tmp.resolve("no-such-corpus.txt").toString());
        JobConfigException e = assertThrows(JobConfigException.class,
                () -> CalibrateJob.run(SparkTests.spark(), cfg));
        assertTrue(e.getMessage().contains("no-such-corpus.txt"), e.getMessage());
        assertTrue(e.getMessage().contains("corpus"), e.getMessage());
    }

    @Test
    void corpusShorterThanAWindowNamesIt() throws IOException {
        Path c = tmp.resolve("short.txt");
        Files.writeString(c, "Emma Woodhouse, handsome, clever, and rich.",
                StandardCharsets.UTF_8);
        JobConfig cfg = config("--corpus", c.toString());
        JobConfigException e = assertThrows(JobConfigException.class,
                () -> CalibrateJob.run(SparkTests.spark(), cfg));
        assertTrue(e.getMessage().contains("short.txt") && e.getMessage().contains("window"),
                e.getMessage());
    }

    @Test
    void invalidUtf8CorpusNamesIt() throws IOException {
        Path c = tmp.resolve("latin1.txt");
        Files.write(c, new byte[] {'c', 'a', 'f', (byte) 0xE9, '\n'});
        JobConfigException e = assertThrows(JobConfigException.class,
                () -> CalibrateJob.run(SparkTests.spark(), config("--corpus", c.toString())));
        assertTrue(e.getMessage().contains("latin1.txt") && e.getMessage().contains("UTF-8"),
                e.getMessage());
    }

    @Test
    void badModelDirectoryNamesIt() throws IOException {
        Path m = Files.createDirectories(tmp.resolve("not-a-model"));
        JobConfig cfg = JobConfig.fromArgs(List.of("--mode", "calibrate", "--model",
                m.toString(), "--output", tmp.resolve("o").toString()), Map.of());
        JobConfigException e = assertThrows(JobConfigException.class,
                () -> CalibrateJob.run(SparkTests.spark(), cfg));
        assertTrue(e.getMessage().contains("not-a-model")
                && e.getMessage().contains("config.json"), e.getMessage());
    }

    /**
     * Both backends can observe, so --backend cuda passes the startup check; on a host without
     * CUDA the collection tasks then fail the job, naming the backend, with no CPU fallback.
     */
    @Test
    void cudaIsAcceptedForCalibrationAndFailsWithoutAGpuWithoutFallingBack() {
        assertTrue(EngineFactory.canObserve(Backend.CUDA) && EngineFactory.canObserve(Backend.CPU)
                && EngineFactory.canObserve(Backend.AUTO));
        org.junit.jupiter.api.Assumptions.assumeFalse(
                org.polarspark.cuda.GpuContext.isAvailable(), "this host can run CUDA");
        JobFailedException e = assertThrows(JobFailedException.class,
                () -> CalibrateJob.run(SparkTests.spark(), config("--backend", "cuda")));
        String root = PolarJob.rootMessage(e);
        assertTrue(e.getMessage().contains("collect") && root.contains("cuda")
                && root.contains("no silent fallback"), e.getMessage());
    }

    @Test
    void calibrateNeedsNoInputAndIgnoresPolar() {
        JobConfig cfg = JobConfig.fromArgs(List.of("--mode", "calibrate", "--model", "m",
                "--output", "o", "--polar", "true", "--polar-density", "0.75"), Map.of());
        assertEquals(Mode.CALIBRATE, cfg.mode());
        assertFalse(cfg.polar());
        assertEquals(0.75, cfg.polarDensity());
        assertEquals("datasets/corpus/train.txt", cfg.corpus());
        assertEquals(400_000, cfg.calibrationTokens());
        assertTrue(cfg.idlePolarOptions().isEmpty());
    }
}
