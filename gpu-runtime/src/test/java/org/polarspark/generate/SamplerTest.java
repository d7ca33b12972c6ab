package org.polarspark.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** Token selection against softmax computed here, and SamplingParams validation. */
class SamplerTest {
    private static final int DRAWS = 20000;

    private static SamplingParams params(double temperature, double topP, int topK) {
        return new SamplingParams(temperature, topP, topK, 16, List.of(), 0L, 1, null);
    }

    /** softmax(logits / t) in double, directly from the definition. */
    private static double[] softmax(float[] logits, double t) {
        double[] e = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < logits.length; i++) {
            e[i] = Math.exp(logits[i] / t);
            sum += e[i];
        }
        for (int i = 0; i < e.length; i++) {
            e[i] /= sum;
        }
        return e;
    }

    /** Draws DRAWS samples, one per seed (step fixed), or one per step (seed fixed). */
    private static int[] histogram(float[] logits, SamplingParams p, boolean overSeeds) {
        int[] counts = new int[logits.length];
        for (int d = 0; d < DRAWS; d++) {
            int tok = overSeeds ? Sampler.sample(logits, p, 1_000_003L * d + 17, 0)
                    : Sampler.sample(logits, p, 42L, d);
            counts[tok]++;
        }
        return counts;
    }

    /** Each bucket within 4 standard deviations of the binomial expectation; chi-square too. */
    private static void assertMatches(double[] prob, int[] counts, String what) {
        int n = IntStream.of(counts).sum();
        double chi2 = 0;
        int df = -1;
        for (int i = 0; i < prob.length; i++) {
            double mean = n * prob[i];
            double sd = Math.sqrt(n * prob[i] * (1 - prob[i]));
            if (prob[i] == 0) {
                assertEquals(0, counts[i], what + ": token " + i + " has probability 0");
                continue;
            }
            assertTrue(Math.abs(counts[i] - mean) <= 4 * sd + 1e-9, String.format(
                    "%s: token %d drawn %d times, expected %.1f +- %.1f (4 sd)", what, i,
                    counts[i], mean, 4 * sd));
            chi2 += (counts[i] - mean) * (counts[i] - mean) / mean;
            df++;
        }
        // chi-square 99.99% quantiles for 1..5 degrees of freedom
        double[] q = {0, 15.14, 18.42, 21.11, 23.51, 25.74};
        if (df >= 1 && df < q.length) {
            assertTrue(chi2 < q[df], what + ": chi-square " + chi2 + " with " + df + " df");
        }
    }

    // -----------------------------------------------------------------------------------------
    // argmax and greedy
    // -----------------------------------------------------------------------------------------

    @Test
    void argmaxTiesGoToTheLowestId() {
        assertEquals(1, Sampler.argmax(new float[] {1f, 5f, 5f, 2f, 5f}));
        assertEquals(0, Sampler.argmax(new float[] {3f, 3f, 3f}));
        assertEquals(3, Sampler.argmax(new float[] {-4f, -3f, -2f, -1f}));
        assertEquals(2, Sampler.argmax(new float[] {Float.NEGATIVE_INFINITY, -1e30f, 0f, 0f}));
        assertEquals(0, Sampler.argmax(new float[] {7f}));
    }

    @Test
    void temperatureZeroIsArgmax() {
        SamplingParams greedy = SamplingParams.greedy(8);
        assertTrue(greedy.isGreedy());
        float[] logits = {0.5f, 2.5f, 2.5f, -1f, 2.4999f};
        for (long seed = 0; seed < 200; seed++) {
            assertEquals(1, Sampler.sample(logits, greedy, seed, (int) seed % 7));
            assertEquals(1, Sampler.sample(logits, params(0.0, 0.3, 5), seed, 3));
        }
    }

    @Test
    void topKOneIsArgmaxWhateverTheSeed() {
        float[] logits = {0.1f, 0.3f, 0.2f, 0.3f, -0.5f}; // tie between 1 and 3 -> 1
        SamplingParams p = params(1.5, 1.0, 1);
        for (long seed = -500; seed < 500; seed++) {
            assertEquals(1, Sampler.sample(logits, p, seed * 7919, (int) (seed & 15)));
        }
    }

    @Test
    void smallTopPKeepsOnlyTheTopToken() {
        float[] logits = {1.0f, 2.0f, 0.5f, -1.0f}; // top token 1 with p ~ 0.61
        for (double topP : new double[] {1e-6, 0.1, 0.5, 0.6}) {
            SamplingParams p = params(1.0, topP, -1);
            for (long seed = 0; seed < 2000; seed++) {
                assertEquals(1, Sampler.sample(logits, p, seed, 0), "top_p " + topP);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Seeded sampling
    // -----------------------------------------------------------------------------------------

    @Test
    void seededSamplingIsDeterministicAndVariesAcrossSeedsAndSteps() {
        float[] logits = {0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f};
        SamplingParams p = params(1.0, 1.0, -1);
        Set<Integer> acrossSeeds = new HashSet<>();
        Set<Integer> acrossSteps = new HashSet<>();
        for (int s = 0; s < 100; s++) {
            int a = Sampler.sample(logits, p, s, 5);
            assertEquals(a, Sampler.sample(logits.clone(), p, s, 5), "same (seed, step)");
            acrossSeeds.add(a);
            acrossSteps.add(Sampler.sample(logits, p, 99L, s));
        }
        assertTrue(acrossSeeds.size() >= 6, "seeds give different tokens: " + acrossSeeds);
        assertTrue(acrossSteps.size() >= 6, "steps give different tokens: " + acrossSteps);
        // The params' own seed field does not enter: only (rowSeed, step) does.
        SamplingParams other = new SamplingParams(1.0, 1.0, -1, 16, List.of(), 12345L, 1, null);
        for (int s = 0; s < 50; s++) {
            assertEquals(Sampler.sample(logits, p, s, 3), Sampler.sample(logits, other, s, 3));
        }
    }

    @Test
    void uniformIsInUnitIntervalAndDeterministic() {
        double sum = 0;
        for (int i = 0; i < DRAWS; i++) {
            double u = Sampler.uniform(7L, i);
            assertTrue(u >= 0 && u < 1, "u = " + u);
            assertEquals(u, Sampler.uniform(7L, i));
            sum += u;
        }
        // mean of U(0,1): 1/2 with sd 1/sqrt(12 n)
        assertEquals(0.5, sum / DRAWS, 4 / Math.sqrt(12.0 * DRAWS));
    }

    @Test
    void temperatureOneMatchesSoftmax() {
        float[] logits = {1.0f, 2.0f, 0.5f, -1.0f};
        double[] prob = softmax(logits, 1.0);
        SamplingParams p = params(1.0, 1.0, -1);
        assertMatches(prob, histogram(logits, p, true), "over seeds");
        assertMatches(prob, histogram(logits, p, false), "over steps");
        // top_k 0 also keeps all
        assertMatches(prob, histogram(logits, params(1.0, 1.0, 0), true), "top_k 0");
    }

    @Test
    void temperatureScalesLogits() {
        float[] logits = {1.0f, 2.0f, 0.5f, -1.0f};
        assertMatches(softmax(logits, 0.5), histogram(logits, params(0.5, 1.0, -1), true),
                "T = 0.5");
        assertMatches(softmax(logits, 2.0), histogram(logits, params(2.0, 1.0, -1), true),
                "T = 2");
    }

    @Test
    void topKTwoKeepsTheTwoBestInTheirRatio() {
        float[] logits = {1.0f, 2.0f, 0.5f, -1.0f};
        int[] counts = histogram(logits, params(1.0, 1.0, 2), true);
        assertEquals(0, counts[2]);
        assertEquals(0, counts[3]);
        double p1 = 1 / (1 + Math.exp(1.0 - 2.0)); // e^2 / (e^1 + e^2)
        assertMatches(new double[] {1 - p1, p1, 0, 0}, counts, "top_k 2");
    }

    @Test
    void topPKeepsTheSmallestNucleus() {
        float[] logits = {1.0f, 2.0f, 0.5f, -1.0f};
        double[] prob = softmax(logits, 1.0);
        // Sorted: token 1 (0.61), 0 (0.23), 2 (0.14), 3 (0.03). top_p 0.8 needs 1 and 0.
        assertTrue(prob[1] < 0.8 && prob[1] + prob[0] >= 0.8);
        int[] counts = histogram(logits, params(1.0, 0.8, -1), true);
        double z = prob[0] + prob[1];
        assertMatches(new double[] {prob[0] / z, prob[1] / z, 0, 0}, counts, "top_p 0.8");
        // top_p 0.9 keeps three
        assertTrue(prob[1] + prob[0] < 0.9 && prob[1] + prob[0] + prob[2] >= 0.9);
        counts = histogram(logits, params(1.0, 0.9, -1), true);
        z = prob[0] + prob[1] + prob[2];
        assertMatches(new double[] {prob[0] / z, prob[1] / z, prob[2] / z, 0}, counts,
                "top_p 0.9");
    }

    @Test
    void topKAndTopPTogether() {
        // top_k 3 first (tokens 1, 0, 2), then top_p over the renormalised three.
        float[] logits = {1.0f, 2.0f, 0.5f, -1.0f};
        double[] prob = softmax(logits, 1.0);
        double z3 = prob[0] + prob[1] + prob[2];
        double topP = (prob[1] + prob[0]) / z3 - 0.01; // needs tokens 1 and 0 within the three
        int[] counts = histogram(logits, params(1.0, topP, 3), true);
        double z = prob[0] + prob[1];
        assertMatches(new double[] {prob[0] / z, prob[1] / z, 0, 0}, counts, "top_k 3, top_p");
    }

    // -----------------------------------------------------------------------------------------
    // log-probabilities and topK
    // -----------------------------------------------------------------------------------------

    @Test
    void logSoftmaxMatchesTheDefinition() {
        float[] logits = {1.0f, 2.0f, 0.5f, -1.0f, 3.25f, -7f};
        double[] ls = Sampler.logSoftmax(logits);
        double[] p = softmax(logits, 1.0);
        double total = 0;
        for (int i = 0; i < logits.length; i++) {
            assertEquals(Math.log(p[i]), ls[i], 1e-12, "token " + i);
            assertEquals(ls[i], Sampler.logProb(logits, i), 1e-12, "logProb " + i);
            total += Math.exp(ls[i]);
        }
        assertEquals(1.0, total, 1e-12);
    }

    @Test
    void logSoftmaxIsStableForLargeLogits() {
        float[] logits = {1000f, 999f, -1000f};
        double[] ls = Sampler.logSoftmax(logits);
        double lse = 1000 + Math.log(1 + Math.exp(-1) + Math.exp(-2000));
        assertEquals(1000 - lse, ls[0], 1e-12);
        assertEquals(999 - lse, ls[1], 1e-12);
        assertEquals(-1000 - lse, ls[2], 1e-9);
        double total = 0;
        for (double l : ls) {
            assertTrue(Double.isFinite(l));
            total += Math.exp(l);
        }
        assertEquals(1.0, total, 1e-12);
        assertEquals(ls[1], Sampler.logProb(logits, 1), 1e-12);
    }

    /** Reference: indices sorted by logit descending, ties by id. */
    private static int[] refTopK(float[] logits, int k) {
        return IntStream.range(0, logits.length).boxed()
                .sorted(Comparator.<Integer, Float>comparing(i -> -logits[i])
                        .thenComparing(i -> i))
                .limit(k).mapToInt(Integer::intValue).toArray();
    }

    @Test
    void topKReturnsIdsInOrderWithTiesById() {
        float[] logits = {1f, 3f, 3f, 2f, 3f, -1f, 2f};
        assertArrayEquals(new int[] {1, 2, 4}, Sampler.topK(logits, 3));
        assertArrayEquals(new int[] {1, 2, 4, 3, 6}, Sampler.topK(logits, 5));
        assertArrayEquals(new int[] {1}, Sampler.topK(logits, 1));
        assertArrayEquals(new int[] {1, 2, 4, 3, 6, 0, 5}, Sampler.topK(logits, 20));
        assertArrayEquals(new int[0], Sampler.topK(logits, 0));
    }

    @Test
    void topKAgreesWithSortingOnRandomLogits() {
        java.util.Random r = new java.util.Random(1234);
        for (int trial = 0; trial < 500; trial++) {
            int v = 1 + r.nextInt(60);
            float[] logits = new float[v];
            for (int i = 0; i < v; i++) {
                logits[i] = r.nextInt(8) - 4; // many ties
            }
            int k = r.nextInt(22);
            assertArrayEquals(refTopK(logits, Math.min(k, v)), Sampler.topK(logits, k),
                    Arrays.toString(logits) + " k=" + k);
        }
    }

    // -----------------------------------------------------------------------------------------
    // SamplingParams validation
    // -----------------------------------------------------------------------------------------

    private static void rejects(String param, Executable make) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, make);
        assertTrue(e.getMessage().contains(param), "message should name " + param + ": "
                + e.getMessage());
    }

    @Test
    void samplingParamsValidation() {
        List<String> none = List.of();
        rejects("temperature", () -> new SamplingParams(-0.1, 1, -1, 16, none, 0, 1, null));
        rejects("temperature", () -> new SamplingParams(Double.NaN, 1, -1, 16, none, 0, 1, null));
        rejects("temperature", () -> new SamplingParams(Double.POSITIVE_INFINITY, 1, -1, 16,
                none, 0, 1, null));
        rejects("top_p", () -> new SamplingParams(1, 0, -1, 16, none, 0, 1, null));
        rejects("top_p", () -> new SamplingParams(1, 1.01, -1, 16, none, 0, 1, null));
        rejects("top_p", () -> new SamplingParams(1, -0.5, -1, 16, none, 0, 1, null));
        rejects("top_p", () -> new SamplingParams(1, Double.NaN, -1, 16, none, 0, 1, null));
        rejects("top_k", () -> new SamplingParams(1, 1, -2, 16, none, 0, 1, null));
        rejects("max_tokens", () -> new SamplingParams(1, 1, -1, 0, none, 0, 1, null));
        rejects("max_tokens", () -> new SamplingParams(1, 1, -1, -3, none, 0, 1, null));
        rejects("n", () -> new SamplingParams(1, 1, -1, 16, none, 0, 0, null));
        rejects("logprobs", () -> new SamplingParams(1, 1, -1, 16, none, 0, 1, -1));
        rejects("logprobs", () -> new SamplingParams(1, 1, -1, 16, none, 0, 1, 21));
        rejects("stop", () -> new SamplingParams(1, 1, -1, 16, List.of("ok", ""), 0, 1, null));
        // Boundaries that are valid
        assertDoesNotThrow(() -> new SamplingParams(0, 1, 0, 1, null, 0, 1, 0));
        assertDoesNotThrow(() -> new SamplingParams(100, 1e-9, 1, 1, none, -5, 8, 20));
        SamplingParams p = new SamplingParams(1, 1, -1, 16, null, 0, 1, null);
        assertEquals(List.of(), p.stop());
        SamplingParams g = SamplingParams.greedy(5);
        assertEquals(5, g.maxTokens());
        assertEquals(0.0, g.temperature());
        assertEquals(1, g.n());
    }
}
