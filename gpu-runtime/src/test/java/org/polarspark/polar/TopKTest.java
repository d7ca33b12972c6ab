package org.polarspark.polar;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.Comparator;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class TopKTest {
    /** The documented order, by a full sort: score descending (NaN last), then index. */
    static int[] bySort(float[] s, int k) {
        Comparator<Integer> byScore = (a, b) -> {
            boolean an = Float.isNaN(s[a]);
            boolean bn = Float.isNaN(s[b]);
            if (an != bn) {
                return an ? 1 : -1;
            }
            if (!an && s[a] != s[b]) { // == treats -0.0 and 0.0 as equal
                return s[a] > s[b] ? -1 : 1;
            }
            return Integer.compare(a, b);
        };
        return IntStream.range(0, s.length).boxed().sorted(byScore).limit(k)
                .mapToInt(Integer::intValue).toArray();
    }

    @Test
    void equalsAFullSortOnRandomInputsWithTies() {
        Random rnd = new Random(12345);
        float[] pool = {-2f, -1f, -0f, 0f, 0.5f, 1f, 3f, Float.NEGATIVE_INFINITY,
                Float.POSITIVE_INFINITY, Float.NaN};
        for (int trial = 0; trial < 5000; trial++) {
            int n = 1 + rnd.nextInt(trial < 4000 ? 40 : 600);
            float[] s = new float[n];
            int mode = trial % 3;
            for (int i = 0; i < n; i++) {
                if (mode == 0) {
                    s[i] = pool[rnd.nextInt(pool.length)]; // many ties, specials
                } else if (mode == 1) {
                    s[i] = rnd.nextInt(5);                 // heavy ties
                } else {
                    s[i] = (float) rnd.nextGaussian();     // few ties
                }
            }
            int k = rnd.nextInt(n + 1);
            assertArrayEquals(bySort(s, k), TopK.topK(s, k),
                    "n=" + n + " k=" + k + " s=" + Arrays.toString(s));
        }
    }

    @Test
    void smallCasesByHand() {
        float[] s = {3, 1, 3, 2};
        assertArrayEquals(new int[] {0, 2}, TopK.topK(s, 2));
        assertArrayEquals(new int[] {0}, TopK.topK(s, 1));
        assertArrayEquals(new int[] {0, 2, 3, 1}, TopK.topK(s, 4));
        assertArrayEquals(new int[0], TopK.topK(s, 0));
        float[] t = {Float.NaN, -1, Float.NEGATIVE_INFINITY, -0f, 0f};
        assertArrayEquals(new int[] {3, 4, 1, 2, 0}, TopK.topK(t, 5));
        boolean[] m = TopK.topKMask(s, 3);
        assertArrayEquals(new boolean[] {true, false, true, true}, m);
        assertEquals(3, PolarTestModels.count(m));
    }

    @Test
    void rejectsBadK() {
        assertThrows(IllegalArgumentException.class, () -> TopK.topK(new float[3], 4));
        assertThrows(IllegalArgumentException.class, () -> TopK.topK(new float[3], -1));
    }
}
