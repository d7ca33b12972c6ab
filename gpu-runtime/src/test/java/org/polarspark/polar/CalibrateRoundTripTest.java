package org.polarspark.polar;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.polarspark.cpu.CpuEngine;
import org.polarspark.generate.LoglikelihoodRequest;
import org.polarspark.model.ModelConfig;

/** Calibrate -> write -> load on the golden random-initialised OPT checkpoint, tiny budget. */
class CalibrateRoundTripTest {
    static final Path GOLDEN = Path.of("src/test/resources/golden/opt");
    static final Path CORPUS = Path.of("../datasets/corpus/train.txt");

    @TempDir
    Path tmp;

    @Test
    void calibratedRoutersRoundTripAndLoadIntoTheEngine() throws IOException {
        // A small corpus: the first 40,000 characters of the training text.
        String text = Files.readString(CORPUS, StandardCharsets.UTF_8).substring(0, 40_000);
        Path corpus = tmp.resolve("corpus.txt");
        Files.writeString(corpus, text);
        Path work = tmp.resolve("work");
        CalibrateMain.Options d = CalibrateMain.Options.defaults(GOLDEN);
        CalibrateMain.Options o = new CalibrateMain.Options(GOLDEN, corpus, 600, 0.5, 2, work,
                true, RouterTrainer.Options.defaults().withEpochs(3, 2).withRank(16),
                d.buckets());
        RouterCalibration.Calibrated c = CalibrateMain.calibrate(o);

        // The samples on disk: 600 tokens per layer (window 128: 127 per window, 5 windows).
        ModelConfig mc = ModelConfig.load(GOLDEN.resolve("config.json"));
        assertEquals(2, mc.numLayers());
        CalibrationSamples s = new CalibrationSamples(work.resolve("layer-1.bin"),
                mc.hiddenSize(), mc.numHeads(), mc.numKvHeads(), mc.ffnDim());
        assertEquals(600, s.size());
        float[] norms = new float[mc.numHeads()];
        s.headNorms(7, norms);
        for (float v : norms) {
            assertTrue(v >= 0 && Float.isFinite(v));
        }

        PolarConfig cfg = c.config();
        assertEquals(1.0, cfg.density(0));
        assertEquals(0.5, cfg.density(1));
        assertNotNull(cfg.mlp());
        assertEquals(16, cfg.mlp().rank());
        assertArrayEquals(KTableTuner.DEFAULT_BUCKETS, cfg.mlp().batchBuckets());
        assertEquals(600, cfg.calibration().get("tokens").asInt());
        assertEquals(2, cfg.calibration().get("recall").size());

        Path out = tmp.resolve("model");
        c.write(out);
        PolarConfig back = PolarConfig.load(out, mc);
        // (JSON numbers may come back as other node types: compare the documents as text)
        assertEquals(cfg.toJson().toString(), back.toJson().toString());
        assertEquals(128, cfg.calibration().get("window").asInt());
        RouterWeights w = RouterWeights.load(out, back);
        for (int l = 0; l < 2; l++) {
            assertArrayEquals(c.weights().headWeight(l), w.headWeight(l));
            assertArrayEquals(c.weights().headBias(l), w.headBias(l));
            assertArrayEquals(c.weights().mlpDown(l), w.mlpDown(l));
            assertArrayEquals(c.weights().mlpUp(l), w.mlpUp(l));
        }

        // The engine loads them (router dir = out) and scores with them.
        try (CpuEngine e = CpuEngine.load(GOLDEN, 2,
                new PolarSettings(true, out, null, true))) {
            double ll = e.loglikelihood(List.of(new LoglikelihoodRequest(new int[] {2, 10, 11},
                    new int[] {12, 13}))).results().get(0).loglikelihood();
            assertTrue(Double.isFinite(ll) && ll < 0);
        }
        assertFalse(Files.exists(out.resolve("polar/layer-0.bin")));
    }
}
