package org.polarspark.generate;

import java.util.Arrays;

/**
 * Token selection from logits: greedy, or seeded sampling with temperature, top-k and top-p.
 *
 * <p>Sampling is counter-based: the uniform number for step {@code t} of a row is a hash of the
 * row's seed and {@code t}, so a row's tokens depend only on its seed and its own logits, never
 * on which other rows share its batch or on how often anything was sampled before. The same
 * function can be evaluated on the device.
 */
public final class Sampler {
    private Sampler() {
    }

    /** Index of the largest logit; the lowest index among equal ones. */
    public static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        return best;
    }

    /** Chooses the next token for one row at one step. */
    public static int sample(float[] logits, SamplingParams p, long rowSeed, int step) {
        if (p.isGreedy()) {
            return argmax(logits);
        }
        int v = logits.length;
        Integer[] order = new Integer[v];
        for (int i = 0; i < v; i++) {
            order[i] = i;
        }
        // Most likely first; equal logits by id, so the order is total and reproducible.
        Arrays.sort(order, (a, b) -> logits[a] != logits[b] ? Float.compare(logits[b], logits[a])
                : Integer.compare(a, b));
        int keep = p.topK() > 0 ? Math.min(p.topK(), v) : v;
        double max = logits[order[0]] / p.temperature();
        double[] prob = new double[keep];
        double sum = 0;
        for (int i = 0; i < keep; i++) {
            prob[i] = Math.exp(logits[order[i]] / p.temperature() - max);
            sum += prob[i];
        }
        if (p.topP() < 1.0) {
            double cum = 0;
            int cut = keep;
            for (int i = 0; i < keep; i++) {
                cum += prob[i] / sum;
                if (cum >= p.topP()) {
                    cut = i + 1;
                    break;
                }
            }
            keep = cut;
            sum = 0;
            for (int i = 0; i < keep; i++) {
                sum += prob[i];
            }
        }
        double u = uniform(rowSeed, step) * sum;
        double acc = 0;
        for (int i = 0; i < keep; i++) {
            acc += prob[i];
            if (u < acc) {
                return order[i];
            }
        }
        return order[keep - 1];
    }

    /** A uniform double in [0, 1) from (seed, counter): SplitMix64's finaliser. */
    public static double uniform(long seed, long counter) {
        long z = mix(seed + 0x9E3779B97F4A7C15L * (counter + 1));
        return (z >>> 11) * 0x1.0p-53;
    }

    /** SplitMix64 mixing function: a bijection on 64-bit values with good avalanche. */
    public static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** log softmax of raw logits (the model's own distribution), computed in double. */
    public static double[] logSoftmax(float[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double sum = 0;
        for (float l : logits) {
            sum += Math.exp(l - max);
        }
        double lse = max + Math.log(sum);
        double[] out = new double[logits.length];
        for (int i = 0; i < logits.length; i++) {
            out[i] = logits[i] - lse;
        }
        return out;
    }

    /** log softmax(logits)[token] without materialising the whole vector. */
    public static double logProb(float[] logits, int token) {
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double sum = 0;
        for (float l : logits) {
            sum += Math.exp(l - max);
        }
        return logits[token] - max - Math.log(sum);
    }

    /** Ids of the k largest logits, most likely first (ties by id). */
    public static int[] topK(float[] logits, int k) {
        k = Math.min(k, logits.length);
        int[] best = new int[k];
        int size = 0;
        for (int i = 0; i < logits.length; i++) {
            // insertion into a small sorted array: k is at most 20
            int pos = size;
            while (pos > 0 && logits[i] > logits[best[pos - 1]]) {
                pos--;
            }
            if (pos < k) {
                int end = Math.min(size, k - 1);
                System.arraycopy(best, pos, best, pos + 1, end - pos);
                best[pos] = i;
                size = Math.min(size + 1, k);
            }
        }
        return best;
    }
}
