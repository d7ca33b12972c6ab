package org.polarspark.polar;

/**
 * Top-k selection as Polar Sparsity's routers use it (per-row head top-k, batch-union neuron
 * top-k).
 *
 * <p>Order: a higher score ranks first; equal scores rank the lower index first (so the result
 * is a deterministic function of the scores, which GPU kernels can reproduce); {@code -0.0} and
 * {@code 0.0} are equal; NaN ranks below every number (including negative infinity), and NaNs
 * among themselves by index. {@link #topK} returns the first k indices of that order, i.e. in
 * descending score order.
 */
public final class TopK {
    private TopK() {
    }

    /** True when (a at index ia) ranks before (b at index ib) in the order described above. */
    static boolean before(float a, int ia, float b, int ib) {
        boolean an = a != a;
        boolean bn = b != b;
        if (an || bn) {
            return an == bn ? ia < ib : bn;
        }
        if (a != b) {
            return a > b;
        }
        return ia < ib;
    }

    /**
     * Indices of the k highest scores, best first (ties: lower index first; NaN last).
     * O(n log k) time, O(k) extra space.
     *
     * @throws IllegalArgumentException unless 0 &lt;= k &lt;= scores.length
     */
    public static int[] topK(float[] scores, int k) {
        int n = scores.length;
        if (k < 0 || k > n) {
            throw new IllegalArgumentException("topK: k = " + k + " outside [0, " + n + "]");
        }
        if (k == 0) {
            return new int[0];
        }
        // A heap of the k best seen so far, the worst of them at the root.
        int[] heap = new int[k];
        for (int i = 0; i < k; i++) {
            heap[i] = i;
            siftUp(scores, heap, i);
        }
        for (int i = k; i < n; i++) {
            if (before(scores[i], i, scores[heap[0]], heap[0])) {
                heap[0] = i;
                siftDown(scores, heap, 0, k);
            }
        }
        // Pop the worst to the back: the array ends best first.
        for (int size = k - 1; size > 0; size--) {
            int t = heap[0];
            heap[0] = heap[size];
            heap[size] = t;
            siftDown(scores, heap, 0, size);
        }
        return heap;
    }

    /** The same selection as a mask of length scores.length with exactly k entries set. */
    public static boolean[] topKMask(float[] scores, int k) {
        boolean[] mask = new boolean[scores.length];
        for (int i : topK(scores, k)) {
            mask[i] = true;
        }
        return mask;
    }

    /** True when heap entry x is worse than entry y (x ranks after y). */
    private static boolean worse(float[] s, int x, int y) {
        return before(s[y], y, s[x], x);
    }

    private static void siftUp(float[] s, int[] h, int i) {
        while (i > 0) {
            int p = (i - 1) >>> 1;
            if (!worse(s, h[i], h[p])) {
                return;
            }
            int t = h[i];
            h[i] = h[p];
            h[p] = t;
            i = p;
        }
    }

    private static void siftDown(float[] s, int[] h, int i, int size) {
        while (true) {
            int l = 2 * i + 1;
            if (l >= size) {
                return;
            }
            int w = l;
            if (l + 1 < size && worse(s, h[l + 1], h[l])) {
                w = l + 1;
            }
            if (!worse(s, h[w], h[i])) {
                return;
            }
            int t = h[i];
            h[i] = h[w];
            h[w] = t;
            i = w;
        }
    }
}
