package org.polarspark.polar;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.ModelFormatException;

/** RouterPolicy on routers small enough to compute the selection by hand. */
class RouterPolicyTest {
    @TempDir
    Path tmp;

    /** OPT, 2 layers, hidden 8 = 8 heads of dim 1 (G = 8), ffn 5. */
    static final ModelConfig OPT = PolarTestModels.opt(2, 8, 8, 5, "relu");

    /** Head routers W = identity, b = bias: the logits are x + b. */
    static RouterWeights identityHeads(PolarConfig c, float[] bias) {
        int g = c.numKvHeads();
        int h = c.hiddenSize();
        float[][] w = new float[c.numLayers()][g * h];
        float[][] b = new float[c.numLayers()][];
        for (int l = 0; l < c.numLayers(); l++) {
            for (int i = 0; i < g; i++) {
                w[l][i * h + i] = 1f;
            }
            b[l] = bias.clone();
        }
        float[][] down = null;
        float[][] up = null;
        if (c.mlp() != null) {
            // down picks (x0, x1); up rows: (1,0) (0,1) (1,1) (-1,0) (0,-1)
            down = new float[c.numLayers()][2 * h];
            up = new float[c.numLayers()][];
            for (int l = 0; l < c.numLayers(); l++) {
                down[l][0] = 1f;
                down[l][h + 1] = 1f;
                up[l] = new float[] {1, 0, 0, 1, 1, 1, -1, 0, 0, -1};
            }
        }
        return new RouterWeights(c, w, b, down, up);
    }

    static boolean[] maskOf(int n, int... on) {
        boolean[] m = new boolean[n];
        for (int i : on) {
            m[i] = true;
        }
        return m;
    }

    @Test
    void headSelectionIsTheLargestCoordinates() {
        PolarConfig c = PolarConfig.uniform(OPT, 0.5); // layer 1: 4 of 8
        RouterPolicy p = new RouterPolicy(c, identityHeads(c, new float[8]), OPT);
        float[] x = {0, 0, 0, 0, 0, 0, 0, 0, /* token at 8: */ 0.3f, -2, 5, 1, 0.2f, 4, -1, 1};
        // Largest: x2 = 5, x3 = 4... : 5 (2), 4 (5), then ties 1 (3) and 1 (7): both, then 0.3
        assertArrayEquals(maskOf(8, 2, 5, 3, 7), p.selectGroups(1, 0, 7, x, 8));
        // Layer 0 is dense.
        assertNull(p.selectGroups(0, 0, 7, x, 8));
        // A tie at the cut goes to the lower group.
        float[] tie = {1, 1, 1, 1, 1, 1, 1, 1};
        assertArrayEquals(maskOf(8, 0, 1, 2, 3), p.selectGroups(1, 0, 0, tie, 0));
        // Density 0.3: floor(2.4) = 2 groups.
        RouterPolicy p3 = new RouterPolicy(c.withDensity(0.3), identityHeads(c, new float[8]),
                OPT);
        assertArrayEquals(maskOf(8, 2, 5), p3.selectGroups(1, 0, 7, x, 8));
        // Density 1.0 everywhere: dense (null) at every layer.
        RouterPolicy dense = new RouterPolicy(c.withDensity(1.0),
                identityHeads(c, new float[8]), OPT);
        assertNull(dense.selectGroups(1, 0, 7, x, 8));
    }

    @Test
    void theBiasTakesPart() {
        PolarConfig c = PolarConfig.uniform(OPT, 0.25); // 2 of 8
        float[] bias = {0, 0, 0, 0, 0, 0, 10, -10};
        RouterPolicy p = new RouterPolicy(c, identityHeads(c, bias), OPT);
        float[] x = {0.3f, -2, 5, 1, 0.2f, 4, -1, 20};
        // x + b = (0.3, -2, 5, 1, 0.2, 4, 9, 10): groups 7 and 6
        assertArrayEquals(maskOf(8, 6, 7), p.selectGroups(1, 0, 0, x, 0));
    }

    @Test
    void gqaSelectsKvGroups() {
        ModelConfig gqa = PolarTestModels.llama(3, 16, 8, 4, 32); // G = 4
        PolarConfig c = PolarConfig.uniform(gqa, 0.5);
        RouterPolicy p = new RouterPolicy(c, identityHeads(c, new float[4]), gqa);
        float[] x = new float[16];
        x[0] = -1;
        x[1] = 3;
        x[2] = 2;
        x[3] = 2.5f;
        x[4] = 100; // not a router output: W only reads x0..x3
        assertArrayEquals(maskOf(4, 1, 3), p.selectGroups(2, 0, 0, x, 0));
        assertNull(p.selectNeurons(1, x, 1)); // no MLP table: dense
    }

    /** Layer 1 k table over buckets {1, 2, 4}: {2, 3, 4}; layer 0: {5, 5, 5}. */
    static PolarConfig withMlp(int[] layer1) {
        return PolarConfig.uniform(OPT, 0.5, new PolarConfig.Mlp(2, new int[] {1, 2, 4},
                new int[][] {{5, 5, 5}, layer1}));
    }

    @Test
    void mlpUnionScoreEqualsAHandComputation() {
        PolarConfig c = withMlp(new int[] {2, 3, 4});
        RouterPolicy p = new RouterPolicy(c, identityHeads(c, new float[8]), OPT);
        float[] a = {1, -2, 0, 0, 0, 0, 0, 0};
        float[] b = {-3, 0.5f, 0, 0, 0, 0, 0, 0};
        float[] ab = concat(a, b);
        // a: down = (1, -2), logits (1, -2, -1, -1, 2) -> ReLU (1, 0, 0, 0, 2)
        // b: down = (-3, 0.5), logits (-3, 0.5, -2.5, 3, -0.5) -> ReLU (0, 0.5, 0, 3, 0)
        assertArrayEquals(new float[] {1, 0.5f, 0, 3, 2}, p.unionScores(1, ab, 2));
        // One token (bucket 1, k = 2): its own top 2: neurons 4 and 0.
        assertArrayEquals(maskOf(5, 0, 4), p.selectNeurons(1, a, 1));
        // Two tokens (bucket 2, k = 3): the union's top 3: 3, 4, 0.
        assertArrayEquals(maskOf(5, 0, 3, 4), p.selectNeurons(1, ab, 2));
        // Three tokens (bucket 4, k = 4; 4 is not > 0.8 x 5): a zero-score neuron may be picked.
        float[] abz = concat(ab, new float[8]);
        assertArrayEquals(maskOf(5, 0, 1, 3, 4), p.selectNeurons(1, abz, 3));
        // Beyond the last bucket: still k = 4.
        assertArrayEquals(maskOf(5, 0, 1, 3, 4), p.selectNeurons(1, concat(abz, abz), 6));
        // Layer 0's table says k = 5 > 0.8 x 5: dense fallback.
        assertNull(p.selectNeurons(0, ab, 2));
        // No MLP table: dense.
        RouterPolicy heads = new RouterPolicy(c.withMlp(null), identityHeads(c, new float[8]),
                OPT);
        assertNull(heads.selectNeurons(1, ab, 2));
    }

    @Test
    void theEightyPercentFallbackReturnsNull() {
        PolarConfig c = withMlp(new int[] {4, 5, 5});
        RouterPolicy p = new RouterPolicy(c, identityHeads(c, new float[8]), OPT);
        float[] a = {1, -2, 0, 0, 0, 0, 0, 0};
        assertEquals(4, PolarTestModels.count(p.selectNeurons(1, a, 1))); // k = 4 = 0.8 F
        assertNull(p.selectNeurons(1, concat(a, a), 2));                   // k = 5 > 0.8 F
    }

    @Test
    void countersAddUpAndAreThreadSafe() throws Exception {
        PolarConfig c = withMlp(new int[] {2, 3, 4});
        RouterPolicy p = new RouterPolicy(c, identityHeads(c, new float[8]), OPT);
        float[] x = new float[8 * 4];
        new Random(1).ints(0, 10).limit(32).forEach(new java.util.function.IntConsumer() {
            int i;

            @Override
            public void accept(int v) {
                x[i++] = v;
            }
        });
        int threads = 8;
        int per = 500;
        ExecutorService ex = Executors.newFixedThreadPool(threads);
        List<Future<?>> fs = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            fs.add(ex.submit(() -> {
                for (int i = 0; i < per; i++) {
                    p.selectGroups(0, 0, i, x, 0);  // dense: 8 of 8
                    p.selectGroups(1, 0, i, x, 8);  // 4 of 8
                    p.selectNeurons(1, x, 2);       // 3 of 5
                    p.selectNeurons(0, x, 2);       // fallback: 5 of 5
                }
            }));
        }
        for (Future<?> f : fs) {
            f.get();
        }
        ex.shutdown();
        assertTrue(ex.awaitTermination(10, TimeUnit.SECONDS));
        PolarStats s = p.stats();
        long n = (long) threads * per;
        assertEquals(2 * n, s.headSelections());
        assertEquals(16 * n, s.groupsTotal());
        assertEquals(12 * n, s.groupsKept());
        assertEquals(0.75, s.headFraction());
        assertEquals(2 * n, s.neuronSelections());
        assertEquals(10 * n, s.neuronsTotal());
        assertEquals(8 * n, s.neuronsKept());
        assertEquals(0.8, s.mlpFraction(), 1e-12);
        assertTrue(s.routerNanos() > 0);
        PolarStats later = p.stats();
        p.selectGroups(1, 0, 0, x, 0);
        PolarStats d = p.stats().minus(later);
        assertEquals(1, d.headSelections());
        assertEquals(4, d.groupsKept());
        assertEquals(PolarStats.ZERO.plus(d), d);
        assertTrue(Double.isNaN(PolarStats.ZERO.headFraction()));
    }

    @Test
    void loadsFromFilesBesideTheModel() {
        PolarConfig c = withMlp(new int[] {2, 3, 4});
        RouterWeights w = RouterWeights.random(c, 9);
        c.write(tmp);
        w.write(tmp, c);
        RouterPolicy mem = new RouterPolicy(c, w, OPT);
        RouterPolicy file = RouterPolicy.load(tmp, OPT);
        assertEquals(c, file.config());
        Random rnd = new Random(3);
        float[] x = new float[8 * 3];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        for (int t = 0; t < 3; t++) {
            assertArrayEquals(mem.selectGroups(1, 0, t, x, 8 * t),
                    file.selectGroups(1, 0, t, x, 8 * t));
        }
        assertArrayEquals(mem.selectNeurons(1, x, 3), file.selectNeurons(1, x, 3));
        // The density override keeps layer 0 and the table.
        RouterPolicy over = RouterPolicy.load(tmp, OPT, 0.25);
        assertEquals(2, PolarTestModels.count(over.selectGroups(1, 0, 0, x, 0)));
        assertNull(over.selectGroups(0, 0, 0, x, 0));
        assertEquals(c.mlp(), over.config().mlp());
    }

    @Test
    void mismatchesAreRejected() {
        PolarConfig c = PolarConfig.uniform(OPT, 0.5);
        RouterWeights w = identityHeads(c, new float[8]);
        ModelConfig other = PolarTestModels.opt(3, 8, 8, 5, "relu");
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> new RouterPolicy(c, w, other));
        assertTrue(e.getMessage().contains("'num_layers'"), e.getMessage());
        PolarConfig mlp = withMlp(new int[] {2, 3, 4});
        assertThrows(IllegalArgumentException.class, () -> new RouterPolicy(mlp, w, OPT));
    }

    static float[] concat(float[] a, float[] b) {
        float[] out = new float[a.length + b.length];
        System.arraycopy(a, 0, out, 0, a.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
