package org.polarspark.polar;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class KTableTunerTest {
    static final int F = 64;
    static final int[] BUCKETS = {1, 8, 16, 32, 64};

    /** Tokens firing `per` random neurons among the first `pool`; logits from `router`. */
    static Object[] data(int n, int pool, int per, boolean perfect, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[][] logits = new float[n][F];
        long[][] act = new long[n][1];
        for (int i = 0; i < n; i++) {
            int set = 0;
            while (set < per) {
                int j = rnd.nextInt(pool);
                if ((act[i][0] & (1L << j)) == 0) {
                    act[i][0] |= 1L << j;
                    set++;
                }
            }
            for (int j = 0; j < F; j++) {
                boolean on = (act[i][0] & (1L << j)) != 0;
                logits[i][j] = perfect ? (on ? 1f : -1f) : (float) rnd.nextDouble(-1, 1);
            }
        }
        return new Object[] {logits, act};
    }

    @Test
    void aPerfectRouterNeedsOnlyTheUnion() {
        // Every token fires exactly neurons 0..7: the union is 8 at every batch size.
        float[][] logits = new float[100][F];
        long[][] act = new long[100][1];
        for (int i = 0; i < 100; i++) {
            act[i][0] = 0xFFL;
            for (int j = 0; j < F; j++) {
                logits[i][j] = j < 8 ? 2f : -1f;
            }
        }
        KTableTuner.Layer l = KTableTuner.tuneLayer(logits, act, F, BUCKETS, 8, 0.99, 20, 1);
        assertArrayEquals(new int[] {8, 8, 8, 8, 8}, l.k());
        assertEquals(1.0, l.recall()[0]);
        assertEquals(8.0 / F, l.union()[4], 1e-12);
    }

    @Test
    void aPerfectRouterOverAPoolIsBoundedByThePool() {
        // 4 of the first 16 neurons per token: the union grows with B but stays within 16, and
        // a perfect router ranks it first, so k <= 16 and k grows with B.
        Object[] d = data(500, 16, 4, true, 3);
        KTableTuner.Layer l = KTableTuner.tuneLayer((float[][]) d[0], (long[][]) d[1], F,
                BUCKETS, 8, 0.99, 50, 1);
        assertEquals(8, l.k()[0]);
        assertEquals(16, l.k()[4]);
        for (int b = 1; b < BUCKETS.length; b++) {
            assertTrue(l.k()[b] >= l.k()[b - 1]);
            assertTrue(l.recall()[b] >= 0.99);
        }
    }

    @Test
    void aRandomRouterNeedsAlmostEverything() {
        // Scores unrelated to firing: 99% recall of a 4-neuron set needs ~all 64 neurons.
        Object[] d = data(500, F, 4, false, 4);
        KTableTuner.Layer l = KTableTuner.tuneLayer((float[][]) d[0], (long[][]) d[1], F,
                BUCKETS, 8, 0.99, 100, 1);
        for (int k : l.k()) {
            assertTrue(k >= 56, "k " + k);
        }
    }

    @Test
    void bucketsAreClampedToTheHeldOutSet() {
        Object[] d = data(10, 16, 4, true, 5);
        KTableTuner.Layer l = KTableTuner.tuneLayer((float[][]) d[0], (long[][]) d[1], F,
                BUCKETS, 8, 0.99, 10, 1);
        assertArrayEquals(new int[] {1, 8, 10, 10, 10}, l.batch());
    }

    @Test
    void stepIsThePapersForLargeModels() {
        assertEquals(8, KTableTuner.step(768));
        assertEquals(128, KTableTuner.step(16384));
    }
}
