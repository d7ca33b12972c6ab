package org.polarspark.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.polarspark.testutil.Golden;

/** RoPE inverse frequencies against an independent computation of the published formulas. */
class RopeScalingTest {
    private static final int HEAD_DIM = 128;
    private static final double THETA = 500000.0;
    private static final double FACTOR = 8.0;
    private static final double LOW = 1.0;
    private static final double HIGH = 4.0;
    private static final int ORIGINAL = 8192;

    /** theta^(-2i/d), via exp/log rather than pow. */
    private static double base(double theta, int headDim, int i) {
        return Math.exp(-(2.0 * i / headDim) * Math.log(theta));
    }

    private static void assertClose(double expected, float actual, String what) {
        double tol = 5e-7 * Math.abs(expected) + 1e-30;
        assertEquals(expected, actual, tol, what);
    }

    @Test
    void noneIsThetaPowers() {
        float[] inv = RopeScaling.NONE.inverseFrequencies(THETA, HEAD_DIM);
        assertEquals(HEAD_DIM / 2, inv.length);
        assertEquals(1.0f, inv[0]);
        for (int i = 0; i < inv.length; i++) {
            assertClose(base(THETA, HEAD_DIM, i), inv[i], "inv_freq[" + i + "]");
        }
        // Small head, the classic theta: 10000^(-2i/16)
        float[] small = RopeScaling.NONE.inverseFrequencies(10000.0, 16);
        assertEquals(8, small.length);
        assertClose(0.1, small[2], "10000^(-1/4)^2"); // 10000^(-4/16) = 0.1
        assertClose(0.01, small[4], "10000^(-8/16)");
    }

    @Test
    void linearIsNoneDividedByFactor() {
        RopeScaling lin = new RopeScaling(RopeScaling.Type.LINEAR, FACTOR, 0, 0, 0);
        float[] none = RopeScaling.NONE.inverseFrequencies(THETA, HEAD_DIM);
        float[] inv = lin.inverseFrequencies(THETA, HEAD_DIM);
        assertEquals(none.length, inv.length);
        for (int i = 0; i < inv.length; i++) {
            assertClose(none[i] / FACTOR, inv[i], "inv_freq[" + i + "]");
            assertClose(base(THETA, HEAD_DIM, i) / FACTOR, inv[i], "inv_freq[" + i + "]");
        }
        RopeScaling two = new RopeScaling(RopeScaling.Type.LINEAR, 2.0, 0, 0, 0);
        float[] t = two.inverseFrequencies(10000.0, 16);
        for (int i = 0; i < t.length; i++) {
            assertClose(base(10000.0, 16, i) / 2.0, t[i], "factor 2, inv_freq[" + i + "]");
        }
    }

    /**
     * Llama 3.1 (Meta's apply_scaling): a component whose wavelength 2*pi/f exceeds
     * original / low_freq_factor is divided by factor; one shorter than original /
     * high_freq_factor is kept; in between, with s = (original / wavelength - low) / (high -
     * low), the result is (1 - s) * f / factor + s * f. Written here in terms of frequency.
     */
    private static double[] llama3Reference(double theta, int headDim, double factor, double low,
                                            double high, int original) {
        double[] out = new double[headDim / 2];
        // Frequency thresholds: wavelength = original / k  <=>  f = 2*pi*k / original.
        double fHighThreshold = 2 * Math.PI * high / original; // above: high frequency
        double fLowThreshold = 2 * Math.PI * low / original;   // below: low frequency
        for (int i = 0; i < out.length; i++) {
            double f = base(theta, headDim, i);
            if (f > fHighThreshold) {
                out[i] = f;
            } else if (f < fLowThreshold) {
                out[i] = f / factor;
            } else {
                // cycles per original context, mapped linearly from [low, high] to [0, 1]
                double cycles = original * f / (2 * Math.PI);
                double s = (cycles - low) / (high - low);
                out[i] = f / factor + s * (f - f / factor);
            }
        }
        return out;
    }

    @Test
    void llama3MatchesPublishedFormula() {
        RopeScaling r = new RopeScaling(RopeScaling.Type.LLAMA3, FACTOR, LOW, HIGH, ORIGINAL);
        float[] inv = r.inverseFrequencies(THETA, HEAD_DIM);
        double[] ref = llama3Reference(THETA, HEAD_DIM, FACTOR, LOW, HIGH, ORIGINAL);
        assertEquals(ref.length, inv.length);
        int kept = 0;
        int scaled = 0;
        int medium = 0;
        for (int i = 0; i < inv.length; i++) {
            double f = base(THETA, HEAD_DIM, i);
            assertClose(ref[i], inv[i], "inv_freq[" + i + "]");
            if (Math.abs(ref[i] - f) <= 1e-12 * f) {
                kept++;
            } else if (Math.abs(ref[i] - f / FACTOR) <= 1e-12 * f) {
                scaled++;
            } else {
                assertTrue(ref[i] > f / FACTOR && ref[i] < f, "medium is between: " + i);
                medium++;
            }
        }
        // Every regime occurs for these parameters, and the regimes are contiguous: kept
        // (high frequencies, small i), then interpolated, then scaled (low frequencies).
        assertTrue(kept > 0, "some components are kept");
        assertTrue(medium > 0, "some components are interpolated");
        assertTrue(scaled > 0, "some components are divided by factor");
        assertEquals(inv.length, kept + medium + scaled);
        for (int i = 0; i < inv.length; i++) {
            double f = base(THETA, HEAD_DIM, i);
            if (i < kept) {
                assertClose(f, inv[i], "kept " + i);
            } else if (i >= kept + medium) {
                assertClose(f / FACTOR, inv[i], "scaled " + i);
            }
        }
        // Monotone: scaled frequencies still decrease with i.
        for (int i = 1; i < inv.length; i++) {
            assertTrue(inv[i] < inv[i - 1], "decreasing at " + i);
        }
    }

    @Test
    void llama3GoldenConfig() {
        ModelConfig c = ModelConfig.load(Golden.goldenRoot().resolve("llama3-gqa"));
        float[] inv = c.ropeScaling().inverseFrequencies(c.ropeTheta(), c.headDim());
        double[] ref = llama3Reference(500000.0, 16, 8.0, 1.0, 4.0, 64);
        assertEquals(8, inv.length);
        for (int i = 0; i < inv.length; i++) {
            assertClose(ref[i], inv[i], "inv_freq[" + i + "]");
        }
    }

    @Test
    void validation() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new RopeScaling(RopeScaling.Type.LINEAR, 0, 0, 0, 0));
        assertTrue(e.getMessage().contains("factor"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> new RopeScaling(RopeScaling.Type.LLAMA3, 8, 4, 1, 8192));
        assertTrue(e.getMessage().contains("low_freq_factor"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> new RopeScaling(RopeScaling.Type.LLAMA3, 8, 1, 4, 0));
        assertTrue(e.getMessage().contains("original_max_position_embeddings"), e.getMessage());
    }
}
