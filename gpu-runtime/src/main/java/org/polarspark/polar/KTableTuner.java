package org.polarspark.polar;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * The MLP k table (issue 7, step 3; the paper's dynamic top-k, Alg. 2): per layer and batch
 * bucket B, the smallest k (a multiple of {@code step}, at most F) whose mean <em>union
 * recall</em> over random held-out batches of B tokens reaches the target (0.99).
 *
 * <p>Union recall of one batch = |U ∩ S_k| / |U|, where U is the set of neurons firing in any
 * token of the batch (the truth) and S_k the top k of the batch-union score
 * score_j = Σ_tokens ReLU(logit_j) ({@link RouterPolicy#unionScores}'s order, ties to the lower
 * index, {@link TopK}). A batch whose union is empty has recall 1. Batches are drawn without
 * replacement within a batch from the held-out tokens; a bucket larger than the held-out set is
 * clamped to its size.
 *
 * <p>Unlike the paper's search (start at mean + std of the union size, step by 100-200, round
 * up to 128), this evaluates the whole recall curve of each batch at once (one full ranking per
 * batch), so the k found is exactly the smallest multiple of {@code step} that reaches the target.
 */
public final class KTableTuner {
    /** The batch buckets tuned by default. */
    public static final int[] DEFAULT_BUCKETS = {1, 8, 16, 32, 64};
    public static final double DEFAULT_TARGET = 0.99;

    private KTableTuner() {
    }

    /** The k granularity: 128 for F &gt;= 4096 (the paper's), else 8. */
    public static int step(int ffn) {
        return ffn >= 4096 ? 128 : 8;
    }

    /**
     * One layer's result.
     *
     * @param k      per bucket, the k chosen
     * @param recall per bucket, the mean union recall at that k
     * @param union  per bucket, the mean union size |U| / F
     * @param batch  per bucket, the batch size actually used (clamped)
     */
    public record Layer(int[] k, double[] recall, double[] union, int[] batch)
            implements java.io.Serializable {
    }

    /**
     * Tunes one layer.
     *
     * @param logits  held-out tokens' router logits, [n][F]
     * @param active  held-out tokens' firing bitsets, [n][words(F)]
     * @param buckets batch sizes
     * @param step    k granularity
     * @param target  mean union recall to reach (e.g. 0.99)
     * @param batches random batches per bucket
     * @param seed    batch sampling
     */
    public static Layer tuneLayer(float[][] logits, long[][] active, int ffn, int[] buckets,
                                  int step, double target, int batches, long seed) {
        int n = logits.length;
        if (n == 0) {
            throw new IllegalArgumentException("no held-out samples to tune the k table on");
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        int words = RouterSamples.words(ffn);
        int[] ks = new int[buckets.length];
        double[] recalls = new double[buckets.length];
        double[] unions = new double[buckets.length];
        int[] used = new int[buckets.length];
        int[] pool = new int[n];
        for (int i = 0; i < n; i++) {
            pool[i] = i;
        }
        float[] score = new float[ffn];
        long[] union = new long[words];
        for (int bi = 0; bi < buckets.length; bi++) {
            int b = Math.min(buckets[bi], n);
            used[bi] = b;
            double[] curve = new double[ffn + 1]; // summed recall at each k
            double unionSum = 0;
            for (int it = 0; it < batches; it++) {
                // partial Fisher-Yates: the first b of pool are the batch
                for (int i = 0; i < b; i++) {
                    int j = i + rnd.nextInt(n - i);
                    int t = pool[i];
                    pool[i] = pool[j];
                    pool[j] = t;
                }
                Arrays.fill(score, 0f);
                Arrays.fill(union, 0L);
                for (int i = 0; i < b; i++) {
                    float[] l = logits[pool[i]];
                    for (int j = 0; j < ffn; j++) {
                        if (l[j] > 0) {
                            score[j] += l[j];
                        }
                    }
                    long[] a = active[pool[i]];
                    for (int w = 0; w < words; w++) {
                        union[w] |= a[w];
                    }
                }
                int size = 0;
                for (long w : union) {
                    size += Long.bitCount(w);
                }
                unionSum += (double) size / ffn;
                if (size == 0) {
                    for (int k = 0; k <= ffn; k++) {
                        curve[k] += 1;
                    }
                    continue;
                }
                int[] rank = TopK.topK(score, ffn);
                int hit = 0;
                for (int k = 1; k <= ffn; k++) {
                    if (RouterSamples.bit(union, rank[k - 1])) {
                        hit++;
                    }
                    curve[k] += (double) hit / size;
                }
            }
            int chosen = ffn;
            for (int k = step; k < ffn; k += step) {
                if (curve[k] / batches >= target) {
                    chosen = k;
                    break;
                }
            }
            ks[bi] = chosen;
            recalls[bi] = curve[chosen] / batches;
            unions[bi] = unionSum / batches;
        }
        return new Layer(ks, recalls, unions, used);
    }
}
