package org.polarspark.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.polarspark.model.Checkpoint;
import org.polarspark.model.ModelConfig;
import org.polarspark.polar.SparsityPolicy;
import org.polarspark.testutil.Golden;

/**
 * Polar Sparsity's semantics in the CPU reference, checked against the dense computation itself:
 * an all-selected policy is dense bit for bit; a head (KV-group) mask zeroes exactly the
 * unselected heads' attention output while K and V are still written for every head; an MLP
 * neuron mask equals the dense MLP restricted to those neurons.
 */
class PolarMaskTest {
    /** fp32 sums of <= 256 products of O(1) values in another order: well below 1e-5. */
    static final float MLP_ATOL = 1e-5f;
    static final int[][] PROMPTS = {{2, 17, 300, 41, 5, 99, 7}, {2, 250, 12, 8}, {2, 64}};

    static CpuDecoder decoder(String golden) {
        return new CpuDecoder(CpuWeights.load(Checkpoint.open(Golden.load(golden).modelDir())));
    }

    /** Fresh caches with every prompt prefilled densely (deterministic, so repeatable). */
    static CpuKvCache[] prefilled(CpuDecoder dec) {
        CpuKvCache[] caches = new CpuKvCache[PROMPTS.length];
        for (int r = 0; r < caches.length; r++) {
            caches[r] = dec.newCache(32);
        }
        dec.forward(caches, PROMPTS, SparsityPolicy.DENSE, false);
        return caches;
    }

    static final int[][] NEXT = {{33}, {401}, {9}};

    /** Records attention and MLP buffers of every layer. */
    static final class Recorder implements DecoderObserver {
        final Map<Integer, float[]> att = new HashMap<>();
        final Map<Integer, float[]> act = new HashMap<>();
        final Map<Integer, float[]> mlpOut = new HashMap<>();

        @Override
        public void attention(int layer, float[] routerInput, float[] attention, int[] rowOf,
                              int[] posOf) {
            att.put(layer, attention.clone());
        }

        @Override
        public void mlp(int layer, float[] activations, float[] output) {
            act.put(layer, activations.clone());
            mlpOut.put(layer, output.clone());
        }
    }

    /** Masks at one layer only, so everything before it is identical to dense. */
    static final class OneLayer implements SparsityPolicy {
        final int layer;
        final boolean[][] groupsPerRow; // null: dense heads
        final boolean[] neurons;        // null: dense MLP
        int neuronCalls;

        OneLayer(int layer, boolean[][] groupsPerRow, boolean[] neurons) {
            this.layer = layer;
            this.groupsPerRow = groupsPerRow;
            this.neurons = neurons;
        }

        @Override
        public boolean[] selectGroups(int l, int row, int position, float[] x, int offset) {
            return l == layer && groupsPerRow != null ? groupsPerRow[row] : null;
        }

        @Override
        public boolean[] selectNeurons(int l, float[] x, int tokens) {
            neuronCalls++;
            return l == layer ? neurons : null;
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"opt", "llama3-gqa", "llama2", "opt-postln"})
    void everythingSelectedEqualsDenseExactly(String golden) {
        CpuDecoder dec = decoder(golden);
        ModelConfig c = dec.config();
        SparsityPolicy all = new SparsityPolicy() {
            @Override
            public boolean[] selectGroups(int l, int row, int position, float[] x, int offset) {
                boolean[] m = new boolean[c.numKvHeads()];
                Arrays.fill(m, true);
                return m;
            }

            @Override
            public boolean[] selectNeurons(int l, float[] x, int tokens) {
                boolean[] m = new boolean[c.ffnDim()];
                Arrays.fill(m, true);
                return m;
            }
        };
        CpuKvCache[] dense = new CpuKvCache[PROMPTS.length];
        CpuKvCache[] masked = new CpuKvCache[PROMPTS.length];
        for (int r = 0; r < PROMPTS.length; r++) {
            dense[r] = dec.newCache(32);
            masked[r] = dec.newCache(32);
        }
        float[][][] a = dec.forward(dense, PROMPTS, SparsityPolicy.DENSE, true);
        float[][][] b = dec.forward(masked, PROMPTS, all, true);
        for (int step = 0; step < 4; step++) {
            for (int r = 0; r < PROMPTS.length; r++) {
                for (int p = 0; p < a[r].length; p++) {
                    assertArrayEquals(a[r][p], b[r][p], golden + " step " + step + " row " + r);
                }
            }
            int[][] next = {{3 + step}, {100 + step}, {200 + step}};
            a = dec.forward(dense, next, SparsityPolicy.DENSE, false);
            b = dec.forward(masked, next, all, false);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"opt", "llama3-gqa"})
    void headMaskZeroesExactlyTheUnselectedHeadsAndStillWritesKv(String golden) {
        CpuDecoder dec = decoder(golden);
        ModelConfig c = dec.config();
        int layer = 1;
        int groups = c.numKvHeads();
        // Row 0: alternate groups; row 1: only the last group (single); row 2: none (empty).
        boolean[][] sel = new boolean[3][groups];
        for (int g = 0; g < groups; g += 2) {
            sel[0][g] = true;
        }
        sel[1][groups - 1] = true;
        CpuKvCache[] dc = prefilled(dec);
        CpuKvCache[] mc = prefilled(dec);
        Recorder dense = new Recorder();
        Recorder masked = new Recorder();
        float[][][] dl = dec.forward(dc, NEXT, SparsityPolicy.DENSE, false, dense);
        float[][][] ml = dec.forward(mc, NEXT, new OneLayer(layer, sel, null), false, masked);

        int hd = c.headDim();
        float[] da = dense.att.get(layer);
        float[] ma = masked.att.get(layer);
        int zeroed = 0;
        int kept = 0;
        for (int r = 0; r < NEXT.length; r++) {
            for (int h = 0; h < c.numHeads(); h++) {
                int g = h / c.groupSize();
                float[] dh = Arrays.copyOfRange(da, r * c.qDim() + h * hd, r * c.qDim() + (h + 1) * hd);
                float[] mh = Arrays.copyOfRange(ma, r * c.qDim() + h * hd, r * c.qDim() + (h + 1) * hd);
                if (sel[r][g]) {
                    assertArrayEquals(dh, mh, "row " + r + " head " + h + " (selected) differs");
                    kept++;
                } else {
                    assertArrayEquals(new float[hd], mh, "row " + r + " head " + h + " not zero");
                    assertTrue(norm(dh) > 0, "dense head output should be nonzero");
                    zeroed++;
                }
            }
        }
        assertTrue(zeroed > 0 && kept > 0);
        // Layers before the masked one are untouched.
        assertArrayEquals(dense.att.get(0), masked.att.get(0));
        // The mask changes the output (it is not a no-op).
        assertFalse(Arrays.equals(dl[0][0], ml[0][0]));

        // K and V of the new token are written for every head. At the masked layer (and below)
        // they equal the dense ones exactly, since K/V are computed before attention.
        for (int r = 0; r < NEXT.length; r++) {
            int pos = PROMPTS[r].length;
            assertEquals(pos + 1, mc[r].length());
            for (int l = 0; l < c.numLayers(); l++) {
                for (int g = 0; g < groups; g++) {
                    if (l <= layer) {
                        assertArrayEquals(dc[r].key(l, pos, g), mc[r].key(l, pos, g),
                                "K layer " + l + " row " + r + " group " + g);
                        assertArrayEquals(dc[r].value(l, pos, g), mc[r].value(l, pos, g),
                                "V layer " + l + " row " + r + " group " + g);
                    } else {
                        assertTrue(norm(mc[r].key(l, pos, g)) > 0, "K not written");
                        assertTrue(norm(mc[r].value(l, pos, g)) > 0, "V not written");
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"opt", "opt-postln"})
    void neuronMaskEqualsDenseRestrictedToThoseNeurons(String golden) {
        CpuDecoder dec = decoder(golden);
        ModelConfig c = dec.config();
        assertTrue(c.reluMlp());
        int layer = 1;
        boolean[] neurons = new boolean[c.ffnDim()];
        Random rnd = new Random(7);
        for (int j = 0; j < neurons.length; j++) {
            neurons[j] = rnd.nextDouble() < 0.4;
        }
        CpuKvCache[] dc = prefilled(dec);
        CpuKvCache[] mc = prefilled(dec);
        Recorder dense = new Recorder();
        Recorder masked = new Recorder();
        dec.forward(dc, NEXT, SparsityPolicy.DENSE, false, dense);
        OneLayer policy = new OneLayer(layer, null, neurons);
        dec.forward(mc, NEXT, policy, false, masked);
        assertEquals(c.numLayers(), policy.neuronCalls, "one union selection per layer");

        float[] da = dense.act.get(layer);
        float[] ma = masked.act.get(layer);
        CpuWeights.Layer w = dec.weights().layers[layer];
        int ffn = c.ffnDim();
        int hid = c.hiddenSize();
        int firing = 0;
        for (int t = 0; t < NEXT.length; t++) {
            for (int j = 0; j < ffn; j++) {
                float expect = neurons[j] ? da[t * ffn + j] : 0f;
                assertEquals(expect, ma[t * ffn + j], 0f, "token " + t + " neuron " + j);
                if (neurons[j] && da[t * ffn + j] > 0) {
                    firing++;
                }
            }
            // Independent restricted fc2: b2 + sum over selected j of W2[o][j] * act_dense[j].
            for (int o = 0; o < hid; o++) {
                double s = w.b2 == null ? 0 : w.b2[o];
                for (int j = 0; j < ffn; j++) {
                    if (neurons[j]) {
                        s += (double) w.w2[o * ffn + j] * da[t * ffn + j];
                    }
                }
                assertEquals(s, masked.mlpOut.get(layer)[t * hid + o], MLP_ATOL,
                        "token " + t + " output " + o);
            }
        }
        assertTrue(firing > 0, "some selected neurons must fire for the test to mean anything");
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama3-gqa"})
    void gatedMlpIsNeverNeuronMasked(String golden) {
        CpuDecoder dec = decoder(golden);
        OneLayer policy = new OneLayer(0, null, new boolean[dec.config().ffnDim()]);
        dec.forward(prefilled(dec), NEXT, policy, false);
        assertEquals(0, policy.neuronCalls);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama3-gqa"})
    void wrongMaskLengthIsRejected(String golden) {
        CpuDecoder dec = decoder(golden);
        boolean[][] sel = {new boolean[dec.config().numHeads()], new boolean[8], new boolean[8]};
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> dec.forward(prefilled(dec), NEXT, new OneLayer(0, sel, null), false));
        assertTrue(e.getMessage().contains("expected " + dec.config().numKvHeads()),
                e.getMessage());
    }

    private static double norm(float[] a) {
        double s = 0;
        for (float v : a) {
            s += v * v;
        }
        return Math.sqrt(s);
    }
}
