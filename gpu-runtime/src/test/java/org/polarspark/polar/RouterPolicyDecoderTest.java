package org.polarspark.polar;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.polarspark.cpu.CpuDecoder;
import org.polarspark.cpu.CpuKvCache;
import org.polarspark.cpu.CpuWeights;
import org.polarspark.model.Checkpoint;
import org.polarspark.model.ModelConfig;
import org.polarspark.testutil.Golden;

/**
 * RouterPolicy driving the CPU reference decoder on the golden checkpoints: dense at density 1.0
 * (bit for bit), and at density 0.5 every mask the decoder receives keeps exactly groupsKept
 * groups (and every neuron mask exactly k neurons).
 */
class RouterPolicyDecoderTest {
    static final int[][] PROMPTS = {{2, 17, 300, 41, 5, 99, 7}, {2, 250, 12, 8}, {2, 64}};
    static final int[][][] STEPS = {{{33}, {401}, {9}}, {{5}, {6}, {7}}, {{100}, {2}, {311}}};

    static CpuDecoder decoder(String golden) {
        return new CpuDecoder(CpuWeights.load(Checkpoint.open(Golden.load(golden).modelDir())));
    }

    /** Prefills densely, then runs the decode steps with {@code policy}; logits per step. */
    static float[][][][] decode(CpuDecoder dec, SparsityPolicy policy) {
        CpuKvCache[] caches = new CpuKvCache[PROMPTS.length];
        for (int r = 0; r < caches.length; r++) {
            caches[r] = dec.newCache(32);
        }
        dec.forward(caches, PROMPTS, SparsityPolicy.DENSE, false);
        float[][][][] out = new float[STEPS.length][][][];
        for (int s = 0; s < STEPS.length; s++) {
            out[s] = dec.forward(caches, STEPS[s], policy, false);
        }
        return out;
    }

    /** Passes every call through and records what the decoder receives. */
    static final class Recording implements SparsityPolicy {
        final SparsityPolicy inner;
        final List<int[]> groupCalls = new ArrayList<>();     // {layer, kept or -1 for null}
        final List<int[]> neuronCalls = new ArrayList<>();    // {layer, tokens, kept or -1}

        Recording(SparsityPolicy inner) {
            this.inner = inner;
        }

        @Override
        public boolean[] selectGroups(int layer, int row, int position, float[] x, int offset) {
            boolean[] m = inner.selectGroups(layer, row, position, x, offset);
            groupCalls.add(new int[] {layer, m == null ? -1 : PolarTestModels.count(m),
                    m == null ? -1 : m.length});
            return m;
        }

        @Override
        public boolean[] selectNeurons(int layer, float[] x, int tokens) {
            boolean[] m = inner.selectNeurons(layer, x, tokens);
            neuronCalls.add(new int[] {layer, tokens, m == null ? -1 : PolarTestModels.count(m),
                    m == null ? -1 : m.length});
            return m;
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"opt", "llama3-gqa"})
    void densityOneEverywhereIsExactlyDense(String golden) {
        CpuDecoder dec = decoder(golden);
        ModelConfig m = dec.config();
        PolarConfig c = PolarConfig.uniform(m, 1.0);
        RouterPolicy p = new RouterPolicy(c, RouterWeights.random(c, 11), m);
        Recording rec = new Recording(p);
        float[][][][] dense = decode(dec, SparsityPolicy.DENSE);
        float[][][][] polar = decode(dec, rec);
        for (int s = 0; s < dense.length; s++) {
            for (int r = 0; r < dense[s].length; r++) {
                assertArrayEquals(dense[s][r][0], polar[s][r][0], "step " + s + " row " + r);
            }
        }
        assertEquals(STEPS.length * PROMPTS.length * m.numLayers(), rec.groupCalls.size());
        for (int[] call : rec.groupCalls) {
            assertEquals(-1, call[1], "density 1.0 must return null (dense)");
        }
        assertEquals(1.0, p.stats().headFraction());
    }

    @ParameterizedTest
    @ValueSource(strings = {"opt", "llama3-gqa"})
    void halfDensityKeepsExactlyGroupsKeptAndChangesTheLogits(String golden) {
        CpuDecoder dec = decoder(golden);
        ModelConfig m = dec.config();
        PolarConfig c = PolarConfig.uniform(m, 0.5);
        RouterPolicy p = new RouterPolicy(c, RouterWeights.random(c, 11), m);
        Recording rec = new Recording(p);
        float[][][][] dense = decode(dec, SparsityPolicy.DENSE);
        float[][][][] polar = decode(dec, rec);
        assertEquals(STEPS.length * PROMPTS.length * m.numLayers(), rec.groupCalls.size());
        int sparse = 0;
        for (int[] call : rec.groupCalls) {
            if (call[0] == 0) {
                assertEquals(-1, call[1], "layer 0 stays dense");
            } else {
                assertEquals(c.groupsKept(call[0]), call[1], "layer " + call[0]);
                assertEquals(m.numKvHeads(), call[2]);
                assertTrue(call[1] < m.numKvHeads());
                sparse++;
            }
        }
        assertTrue(sparse > 0);
        boolean differs = false;
        for (int s = 0; s < dense.length; s++) {
            for (int r = 0; r < dense[s].length; r++) {
                differs |= !Arrays.equals(dense[s][r][0], polar[s][r][0]);
            }
        }
        assertTrue(differs, "masking half the heads must change the logits");
        // Layer 0 dense, the rest at half: the mean active fraction says so.
        double expect = (1.0 + (m.numLayers() - 1) * (double) c.groupsKept(1) / m.numKvHeads())
                / m.numLayers();
        assertEquals(expect, p.stats().headFraction(), 1e-12);
    }

    @ParameterizedTest
    @ValueSource(strings = {"opt"})
    void mlpRouterMasksExactlyKNeuronsOrFallsBackToDense(String golden) {
        CpuDecoder dec = decoder(golden);
        ModelConfig m = dec.config();
        assertTrue(m.reluMlp());
        int f = m.ffnDim();
        // Heads dense, MLP at a quarter of ffn: only the neuron masks change anything.
        PolarConfig c = PolarConfig.uniform(m, 1.0,
                PolarConfig.Mlp.uniform(8, m.numLayers(), f, 0.25));
        RouterPolicy p = new RouterPolicy(c, RouterWeights.random(c, 5), m);
        Recording rec = new Recording(p);
        float[][][][] dense = decode(dec, SparsityPolicy.DENSE);
        float[][][][] polar = decode(dec, rec);
        assertEquals(STEPS.length * m.numLayers(), rec.neuronCalls.size(), "one per layer");
        for (int[] call : rec.neuronCalls) {
            assertEquals(PROMPTS.length, call[1], "all the batch's tokens");
            assertEquals(c.mlpK(call[0], call[1]), call[2]);
            assertEquals(f, call[3]);
        }
        assertFalse(Arrays.equals(dense[0][0][0], polar[0][0][0]));
        assertEquals(0.25, p.stats().mlpFraction(), 1e-12);

        // A table above 0.8 x ffn falls back to dense: exactly the dense logits.
        PolarConfig fb = c.withMlp(PolarConfig.Mlp.uniform(8, m.numLayers(), f, 0.81));
        RouterPolicy pf = new RouterPolicy(fb, RouterWeights.random(fb, 5), m);
        float[][][][] fallback = decode(dec, pf);
        for (int s = 0; s < dense.length; s++) {
            for (int r = 0; r < dense[s].length; r++) {
                assertArrayEquals(dense[s][r][0], fallback[s][r][0]);
            }
        }
        assertEquals(1.0, pf.stats().mlpFraction());
    }

    @ParameterizedTest
    @ValueSource(strings = {"opt", "llama3-gqa"})
    void randomPolicyDrivesTheDecoderWithExactCounts(String golden) {
        CpuDecoder dec = decoder(golden);
        ModelConfig m = dec.config();
        PolarConfig c = PolarConfig.uniform(m, 0.5);
        Recording rec = new Recording(new RandomRouterPolicy(c, 99, m.reluMlp() ? 0.5 : Double.NaN));
        float[][][][] a = decode(dec, rec);
        float[][][][] b = decode(dec, new RandomRouterPolicy(c, 99,
                m.reluMlp() ? 0.5 : Double.NaN));
        for (int s = 0; s < a.length; s++) {
            for (int r = 0; r < a[s].length; r++) {
                assertArrayEquals(a[s][r][0], b[s][r][0], "same seed, same logits");
            }
        }
        for (int[] call : rec.groupCalls) {
            if (call[0] == 0) {
                assertEquals(-1, call[1]);
            } else {
                assertEquals(c.groupsKept(call[0]), call[1]);
            }
        }
        if (m.reluMlp()) {
            assertEquals(STEPS.length * m.numLayers(), rec.neuronCalls.size());
            for (int[] call : rec.neuronCalls) {
                assertEquals(call[0] == 0 ? -1 : m.ffnDim() / 2, call[2]);
            }
        } else {
            assertTrue(rec.neuronCalls.isEmpty());
        }
    }
}
