package org.polarspark.polar;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.polarspark.cpu.CpuDecoder;
import org.polarspark.cpu.CpuEngine;
import org.polarspark.cpu.CpuWeights;
import org.polarspark.model.Checkpoint;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.TextTokenizer;

/** The shipped tiny-opt routers beat random routers in perplexity at head density 0.5. */
class CalibratedRoutersTest {
    static final Path MODEL = Path.of("../datasets/models/tiny-opt");

    @Test
    void shippedRoutersBeatRandomRoutersAtHalfDensity() throws Exception {
        assumeTrue(PolarConfig.exists(MODEL), "no shipped routers in " + MODEL);
        Checkpoint ckpt = Checkpoint.open(MODEL);
        ModelConfig mc = ckpt.config();
        CpuDecoder dec = new CpuDecoder(CpuWeights.load(ckpt));
        try (TextTokenizer tok = TextTokenizer.load(MODEL, mc)) {
            PolarAccuracyReport.EvalSet set = PolarAccuracyReport.EvalSet.load(tok, mc,
                    Path.of("../datasets/eval"), 4, 0);
            // Heads only, at every token (the stricter setting: every position is routed).
            PolarConfig cfg = PolarConfig.load(MODEL, mc).withDensity(0.5).withMlp(null);
            RouterWeights trained = RouterWeights.load(MODEL, PolarConfig.load(MODEL, mc));
            RouterWeights random = RouterWeights.random(cfg, 42);
            double dense = PolarAccuracyReport.evaluate(new CpuEngine(dec, tok, 1), set, 2)
                    .ppl();
            double good = PolarAccuracyReport.evaluate(
                    new CpuEngine(dec, tok, 1, cfg, trained, true), set, 2).ppl();
            double bad = PolarAccuracyReport.evaluate(
                    new CpuEngine(dec, tok, 1, cfg, random, true), set, 2).ppl();
            System.out.printf("tiny-opt, 4 passages, density 0.5 heads only, every token: dense "
                    + "%.3f, calibrated %.3f, random %.3f%n", dense, good, bad);
            assertTrue(good < bad, "calibrated " + good + " vs random " + bad);
            assertTrue(good >= dense * 0.98, "calibrated " + good + " vs dense " + dense);
        }
    }
}
