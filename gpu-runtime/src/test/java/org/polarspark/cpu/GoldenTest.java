package org.polarspark.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.polarspark.generate.Sampler;
import org.polarspark.model.Checkpoint;
import org.polarspark.model.TextTokenizer;
import org.polarspark.polar.SparsityPolicy;
import org.polarspark.testutil.Golden;

/**
 * The CPU reference against Hugging Face transformers (fp32 on the CPU) on every golden
 * checkpoint: tokenization, prefill logits, incremental-decode logits and 32 greedy tokens.
 */
class GoldenTest {
    /**
     * Max absolute logit error. Both sides compute in fp32 from the same (upcast) weights; they
     * differ only in summation order, which over these widths (<= 1024 terms of |x| < 10) moves
     * a logit by well under 1e-4. 1e-3 is the foundation issue's bound.
     */
    static final float LOGIT_ATOL = 1e-3f;

    static Stream<String> goldens() {
        return Golden.names();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("goldens")
    void tokenizerMatchesHuggingFace(String name) {
        Golden g = Golden.load(name);
        assumeTrue(Files.isDirectory(g.modelDir()), "model not present: " + g.modelDir());
        Checkpoint ckpt = Checkpoint.open(g.modelDir());
        try (TextTokenizer tok = TextTokenizer.load(g.modelDir(), ckpt.config())) {
            for (Golden.Case c : g.cases()) {
                assertArrayEquals(c.inputIds(), tok.encode(c.text()),
                        name + ": token ids of \"" + c.text() + "\"");
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("goldens")
    void prefillAndGreedyDecodeMatchHuggingFace(String name) {
        Golden g = Golden.load(name);
        assumeTrue(Files.isDirectory(g.modelDir()), "model not present: " + g.modelDir());
        CpuDecoder dec = new CpuDecoder(CpuWeights.load(Checkpoint.open(g.modelDir())));
        List<Golden.Case> cases = g.cases();
        int rows = cases.size();
        // All prompts prefilled together in one batch, then decoded together.
        CpuKvCache[] caches = new CpuKvCache[rows];
        int[][] tokens = new int[rows][];
        for (int r = 0; r < rows; r++) {
            Golden.Case c = cases.get(r);
            caches[r] = dec.newCache(c.inputIds().length + c.greedyIds().length);
            tokens[r] = c.inputIds();
        }
        float[][][] logits = dec.forward(caches, tokens, SparsityPolicy.DENSE, true);
        int compared = 0;
        for (int r = 0; r < rows; r++) {
            Golden.Case c = cases.get(r);
            for (int p = 0; p < c.inputIds().length; p++) {
                compared += check(name, r, p, c.logitsAt(p), logits[r][p]);
            }
        }
        int steps = cases.get(0).greedyIds().length;
        int[][] generated = new int[rows][steps];
        float[][] last = new float[rows][];
        for (int r = 0; r < rows; r++) {
            last[r] = logits[r][logits[r].length - 1];
        }
        for (int s = 0; s < steps; s++) {
            int[][] next = new int[rows][1];
            for (int r = 0; r < rows; r++) {
                generated[r][s] = Sampler.argmax(last[r]);
                next[r][0] = generated[r][s];
            }
            if (s == steps - 1) {
                break;
            }
            float[][][] step = dec.forward(caches, next, SparsityPolicy.DENSE, false);
            for (int r = 0; r < rows; r++) {
                last[r] = step[r][0];
                int pos = cases.get(r).inputIds().length + s;
                compared += check(name, r, pos, cases.get(r).logitsAt(pos), last[r]);
            }
        }
        for (int r = 0; r < rows; r++) {
            assertArrayEquals(cases.get(r).greedyIds(), generated[r],
                    name + " case " + r + ": greedy tokens");
        }
        assertTrue(compared > 0, name + ": no logits compared");
    }

    private static int check(String name, int row, int pos, float[] expected, float[] actual) {
        if (expected == null) {
            return 0;
        }
        assertEquals(expected.length, actual.length, "vocab size");
        int worst = 0;
        float err = 0;
        for (int i = 0; i < expected.length; i++) {
            float e = Math.abs(expected[i] - actual[i]);
            if (e > err) {
                err = e;
                worst = i;
            }
        }
        if (err > LOGIT_ATOL) {
            throw new AssertionError(String.format("%s case %d position %d: max |logit error| "
                    + "%.3g at token %d (HF %.6f, CPU %.6f) exceeds %.1g", name, row, pos, err,
                    worst, expected[worst], actual[worst], LOGIT_ATOL));
        }
        return 1;
    }
}
