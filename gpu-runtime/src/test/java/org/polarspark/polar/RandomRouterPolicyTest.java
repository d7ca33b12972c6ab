package org.polarspark.polar;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.polarspark.model.ModelConfig;

class RandomRouterPolicyTest {
    /** OPT: 4 layers, hidden 32, 8 heads (G = 8), ffn 100. */
    static final ModelConfig OPT = PolarTestModels.opt(4, 32, 8, 100, "relu");
    static final float[] X = new float[32 * 64];

    @Test
    void keepsExactlyTheDensity() {
        PolarConfig c = PolarConfig.uniform(OPT, 0.5).withHeadDensity(
                new double[] {1.0, 0.5, 0.375, 0.1});
        RandomRouterPolicy p = new RandomRouterPolicy(c, 7);
        int[] expected = {8, 4, 3, 1};
        int[][] hits = new int[4][8];
        for (int layer = 0; layer < 4; layer++) {
            for (int row = 0; row < 4; row++) {
                for (int pos = 0; pos < 500; pos++) {
                    boolean[] m = p.selectGroups(layer, row, pos, X, 0);
                    if (layer == 0) {
                        assertNull(m, "layer 0 is dense");
                        continue;
                    }
                    assertEquals(expected[layer], PolarTestModels.count(m));
                    for (int g = 0; g < 8; g++) {
                        hits[layer][g] += m[g] ? 1 : 0;
                    }
                }
            }
        }
        // Arbitrary but not degenerate: every group is chosen, roughly evenly (2000 draws).
        for (int layer = 1; layer < 4; layer++) {
            double mean = 2000.0 * expected[layer] / 8;
            for (int g = 0; g < 8; g++) {
                assertTrue(Math.abs(hits[layer][g] - mean) < 0.2 * mean,
                        "layer " + layer + " hits " + Arrays.toString(hits[layer]));
            }
        }
        PolarStats s = p.stats();
        assertEquals(4 * 4 * 500, s.headSelections());
        assertEquals(2000L * (8 + 4 + 3 + 1), s.groupsKept());
        assertEquals(2000L * 8 * 4, s.groupsTotal());
    }

    @Test
    void deterministicForASeedAndDifferentForAnother() {
        PolarConfig c = PolarConfig.uniform(OPT, 0.5);
        RandomRouterPolicy a = new RandomRouterPolicy(c, 42);
        RandomRouterPolicy b = new RandomRouterPolicy(c, 42);
        RandomRouterPolicy other = new RandomRouterPolicy(c, 43);
        int differ = 0;
        int differPos = 0;
        for (int pos = 0; pos < 200; pos++) {
            boolean[] ma = a.selectGroups(2, 1, pos, X, 0);
            assertArrayEquals(ma, b.selectGroups(2, 1, pos, X, 0));
            assertArrayEquals(ma, a.groupMask(2, 1, pos)); // a pure function
            if (!Arrays.equals(ma, other.selectGroups(2, 1, pos, X, 0))) {
                differ++;
            }
            if (!Arrays.equals(ma, a.groupMask(2, 1, pos + 1))) {
                differPos++;
            }
        }
        // C(8, 4) = 70 masks: a different seed agrees on about 1 in 70.
        assertTrue(differ > 150, "only " + differ + " of 200 differ");
        assertTrue(differPos > 150, "positions give the same masks: " + differPos);
        assertFalse(Arrays.equals(a.groupMask(1, 0, 5), a.groupMask(1, 1, 5))
                && Arrays.equals(a.groupMask(1, 2, 5), a.groupMask(1, 3, 5))
                && Arrays.equals(a.groupMask(1, 0, 5), a.groupMask(1, 2, 5)),
                "rows should not all share one mask");
    }

    @Test
    void neuronsFollowTheTableExactly() {
        PolarConfig c = PolarConfig.uniform(OPT, 0.5, new PolarConfig.Mlp(8, new int[] {1, 8},
                new int[][] {{10, 20}, {10, 20}, {30, 81}, {80, 80}}));
        RandomRouterPolicy a = new RandomRouterPolicy(c, 1);
        RandomRouterPolicy b = new RandomRouterPolicy(c, 1);
        RandomRouterPolicy other = new RandomRouterPolicy(c, 2);
        assertNull(a.selectNeurons(0, X, 1), "layer 0 dense");
        boolean[] first = a.selectNeurons(1, X, 1);
        assertEquals(10, PolarTestModels.count(first));
        assertArrayEquals(first, b.selectNeurons(1, X, 1));
        assertFalse(Arrays.equals(first, other.selectNeurons(1, X, 1)));
        boolean[] second = a.selectNeurons(1, X, 1); // next step: other neurons
        assertEquals(10, PolarTestModels.count(second));
        assertFalse(Arrays.equals(first, second));
        assertArrayEquals(second, b.selectNeurons(1, X, 1));
        assertArrayEquals(first, a.neuronMask(1, 1, 0));
        assertArrayEquals(second, a.neuronMask(1, 1, 1));
        assertEquals(20, PolarTestModels.count(a.selectNeurons(1, X, 5)));
        assertEquals(30, PolarTestModels.count(a.selectNeurons(2, X, 1)));
        assertNull(a.selectNeurons(2, X, 9), "81 > 0.8 x 100: dense fallback");
        assertEquals(80, PolarTestModels.count(a.selectNeurons(3, X, 64)));
        PolarStats s = a.stats();
        // layer 0 dense (100), layer 1 twice (10 + 10), 20, 30, fallback (100), 80
        assertEquals(7, s.neuronSelections());
        assertEquals(700, s.neuronsTotal());
        assertEquals(100 + 10 + 10 + 20 + 30 + 100 + 80, s.neuronsKept());
    }

    @Test
    void fixedNeuronFraction() {
        PolarConfig c = PolarConfig.uniform(OPT, 0.5); // no table
        assertNull(new RandomRouterPolicy(c, 3).selectNeurons(1, X, 4), "no table: dense");
        RandomRouterPolicy p = new RandomRouterPolicy(c, 3, 0.62);
        for (int tokens : new int[] {1, 7, 64, 300}) {
            assertEquals(62, PolarTestModels.count(p.selectNeurons(2, X, tokens)));
        }
        assertNull(p.selectNeurons(0, X, 4));
        assertNull(new RandomRouterPolicy(c, 3, 0.85).selectNeurons(1, X, 1), "fallback");
        assertThrows(IllegalArgumentException.class, () -> new RandomRouterPolicy(c, 3, 0));
    }

    @Test
    void sparseLayerZeroWhenAllowed() {
        PolarConfig c = new PolarConfig("opt", 4, 8, 32, 100, new double[] {0.5, 0.5, 0.5, 0.5},
                true, null, null, null);
        RandomRouterPolicy p = new RandomRouterPolicy(c, 3, 0.5);
        assertEquals(4, PolarTestModels.count(p.selectGroups(0, 0, 0, X, 0)));
        assertEquals(50, PolarTestModels.count(p.selectNeurons(0, X, 1)));
    }
}
