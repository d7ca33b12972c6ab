package org.polarspark.cpu;

import java.util.Arrays;
import org.polarspark.model.Activation;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.ModelFamily;
import org.polarspark.polar.SparsityPolicy;

/**
 * The CPU reference decoder: plain fp32 loops, the oracle for every GPU kernel. One forward call
 * takes a batch of rows, each with its own KV cache and any number of new tokens (a prompt to
 * prefill, one token to decode, or a mix across rows), runs every layer over all of the batch's
 * tokens, appends K and V to each row's cache, and returns logits.
 *
 * <p>Polar Sparsity is applied as masks through a {@link SparsityPolicy}; with nothing masked
 * the arithmetic is exactly the dense one.
 *
 * <p>Not thread-safe: one forward at a time per instance (weights are shared read-only, so
 * several decoders may share one {@link CpuWeights}).
 */
public final class CpuDecoder {
    private final ModelConfig c;
    private final CpuWeights w;
    private final float[] invFreq; // LLaMA RoPE inverse frequencies (headDim / 2)

    public CpuDecoder(CpuWeights weights) {
        this.w = weights;
        this.c = weights.config;
        this.invFreq = c.family() == ModelFamily.LLAMA
                ? c.ropeScaling().inverseFrequencies(c.ropeTheta(), c.headDim()) : null;
    }

    public ModelConfig config() {
        return c;
    }

    /** The weights this decoder reads (shared, read-only). */
    public CpuWeights weights() {
        return w;
    }

    /** A fresh cache able to hold {@code capacity} tokens. */
    public CpuKvCache newCache(int capacity) {
        return new CpuKvCache(c, capacity);
    }

    /**
     * Runs new tokens for a batch of rows.
     *
     * @param caches    one cache per row; each grows by its row's token count
     * @param tokens    new token ids per row (at least one each)
     * @param policy    Polar Sparsity selections, or {@link SparsityPolicy#DENSE}
     * @param allLogits true: logits at every new position; false: only at each row's last
     * @return logits per row: [row][position][vocab] (one position per row unless allLogits)
     */
    public float[][][] forward(CpuKvCache[] caches, int[][] tokens, SparsityPolicy policy,
                               boolean allLogits) {
        return forward(caches, tokens, policy, allLogits, DecoderObserver.NONE);
    }

    /** As {@link #forward(CpuKvCache[], int[][], SparsityPolicy, boolean)}, reporting to observer. */
    public float[][][] forward(CpuKvCache[] caches, int[][] tokens, SparsityPolicy policy,
                               boolean allLogits, DecoderObserver observer) {
        int[] last = new int[tokens.length];
        for (int r = 0; r < last.length; r++) {
            last[r] = allLogits ? tokens[r].length : 1;
        }
        return forward(caches, tokens, policy, last, observer);
    }

    /**
     * Runs new tokens for a batch of rows, producing logits at each row's last
     * {@code logitsLast[r]} new positions (1 to its token count).
     */
    public float[][][] forward(CpuKvCache[] caches, int[][] tokens, SparsityPolicy policy,
                               int[] logitsLast, DecoderObserver observer) {
        if (caches.length != tokens.length) {
            throw new IllegalArgumentException("forward: " + caches.length + " caches for "
                    + tokens.length + " rows");
        }
        int rows = tokens.length;
        int[] start = new int[rows + 1]; // flat token index of each row's first new token
        for (int r = 0; r < rows; r++) {
            int n = tokens[r].length;
            if (n == 0) {
                throw new IllegalArgumentException("forward: row " + r + " has no tokens");
            }
            if (caches[r].length() + n > caches[r].capacity()) {
                throw new IllegalArgumentException("forward: row " + r + " needs "
                        + (caches[r].length() + n) + " positions but its KV cache holds "
                        + caches[r].capacity());
            }
            if (logitsLast[r] < 1 || logitsLast[r] > tokens[r].length) {
                throw new IllegalArgumentException("forward: row " + r + " asks for logits at "
                        + logitsLast[r] + " positions of " + tokens[r].length);
            }
            for (int t : tokens[r]) {
                if (t < 0 || t >= c.vocabSize()) {
                    throw new IllegalArgumentException("forward: row " + r + " has token id " + t
                            + " outside the vocabulary [0, " + c.vocabSize() + ")");
                }
            }
            start[r + 1] = start[r] + n;
        }
        int n = start[rows];
        int[] rowOf = new int[n];
        int[] posOf = new int[n];
        for (int r = 0; r < rows; r++) {
            for (int i = start[r]; i < start[r + 1]; i++) {
                rowOf[i] = r;
                posOf[i] = caches[r].length() + (i - start[r]);
            }
        }

        int hid = c.hiddenSize();
        float[] x = embed(tokens, posOf, n); // (n, hidden): the residual stream
        for (int l = 0; l < c.numLayers(); l++) {
            layer(l, x, n, caches, rowOf, posOf, policy, observer);
        }
        for (int r = 0; r < rows; r++) {
            caches[r].length += tokens[r].length;
        }

        // Final norm, projection and LM head, only where logits are wanted.
        float[][][] out = new float[rows][][];
        for (int r = 0; r < rows; r++) {
            int first = start[r + 1] - logitsLast[r];
            int count = start[r + 1] - first;
            float[] xr = Arrays.copyOfRange(x, first * hid, (first + count) * hid);
            if (c.finalLayerNorm()) {
                norm(xr, count, w.finalNormW, w.finalNormB);
            }
            int d = hid;
            if (w.projectOut != null) {
                xr = linear(xr, count, hid, w.projectOut, null, c.wordEmbedProjDim());
                d = c.wordEmbedProjDim();
            }
            float[] logits = linear(xr, count, d, w.lmHead, null, c.vocabSize());
            out[r] = new float[count][];
            for (int t = 0; t < count; t++) {
                out[r][t] = Arrays.copyOfRange(logits, t * c.vocabSize(),
                        (t + 1) * c.vocabSize());
            }
        }
        return out;
    }

    /** Token embeddings (+ project_in, + learned positions for OPT). */
    private float[] embed(int[][] tokens, int[] posOf, int n) {
        int hid = c.hiddenSize();
        int p = c.wordEmbedProjDim();
        float[] e = new float[n * p];
        int i = 0;
        for (int[] row : tokens) {
            for (int t : row) {
                System.arraycopy(w.embed, t * p, e, i * p, p);
                i++;
            }
        }
        float[] x = w.projectIn != null ? linear(e, n, p, w.projectIn, null, hid) : e;
        if (c.family() == ModelFamily.OPT) {
            for (int j = 0; j < n; j++) {
                int row = (posOf[j] + c.positionOffset()) * hid;
                for (int d = 0; d < hid; d++) {
                    x[j * hid + d] += w.positions[row + d];
                }
            }
        }
        return x;
    }

    private void layer(int l, float[] x, int n, CpuKvCache[] caches, int[] rowOf, int[] posOf,
                       SparsityPolicy policy, DecoderObserver observer) {
        CpuWeights.Layer L = w.layers[l];
        int hid = c.hiddenSize();
        int hd = c.headDim();
        int kvDim = c.kvDim();
        boolean pre = c.doLayerNormBefore();

        // ---- attention ----
        float[] xb = x.clone(); // router input = input of the q/k/v projections
        if (pre) {
            norm(xb, n, L.attnNormW, L.attnNormB);
        }
        boolean[][] groups = new boolean[n][];
        for (int i = 0; i < n; i++) {
            groups[i] = policy.selectGroups(l, rowOf[i], posOf[i], xb, i * hid);
            if (groups[i] != null && groups[i].length != c.numKvHeads()) {
                throw new IllegalArgumentException("selectGroups: layer " + l + " row " + rowOf[i]
                        + " returned a mask of length " + groups[i].length + ", expected "
                        + c.numKvHeads());
            }
        }
        boolean[] neurons = c.reluMlp() ? policy.selectNeurons(l, xb, n) : null;
        if (neurons != null && neurons.length != c.ffnDim()) {
            throw new IllegalArgumentException("selectNeurons: layer " + l + " returned a mask of "
                    + "length " + neurons.length + ", expected " + c.ffnDim());
        }

        float[] q = linear(xb, n, hid, L.wq, L.bq, c.qDim()); // (n, heads * headDim)
        float[] k = linear(xb, n, hid, L.wk, L.bk, kvDim);    // (n, kvHeads * headDim)
        float[] v = linear(xb, n, hid, L.wv, L.bv, kvDim);
        if (invFreq != null) {
            for (int i = 0; i < n; i++) {
                for (int h = 0; h < c.numHeads(); h++) {
                    rope(q, i * c.qDim() + h * hd, posOf[i]);
                }
                for (int g = 0; g < c.numKvHeads(); g++) {
                    rope(k, i * kvDim + g * hd, posOf[i]);
                }
            }
        }
        // Append K and V for every head of every new token, before attending.
        for (int i = 0; i < n; i++) {
            CpuKvCache cache = caches[rowOf[i]];
            System.arraycopy(k, i * kvDim, cache.k[l], posOf[i] * kvDim, kvDim);
            System.arraycopy(v, i * kvDim, cache.v[l], posOf[i] * kvDim, kvDim);
        }
        float scale = (float) (1.0 / Math.sqrt(hd));
        float[] att = new float[n * c.qDim()]; // attention output before o_proj, zero if masked
        float[] scores = new float[maxPosition(posOf) + 1];
        for (int i = 0; i < n; i++) {
            CpuKvCache cache = caches[rowOf[i]];
            float[] kc = cache.k[l];
            float[] vc = cache.v[l];
            int len = posOf[i] + 1; // causal: positions 0..pos
            for (int h = 0; h < c.numHeads(); h++) {
                int g = h / c.groupSize();
                if (groups[i] != null && !groups[i][g]) {
                    continue; // unselected group: its heads contribute zero
                }
                int qo = i * c.qDim() + h * hd;
                float max = Float.NEGATIVE_INFINITY;
                for (int t = 0; t < len; t++) {
                    float s = dot(q, qo, kc, t * kvDim + g * hd, hd) * scale;
                    scores[t] = s;
                    max = Math.max(max, s);
                }
                double sum = 0;
                for (int t = 0; t < len; t++) {
                    float e = (float) Math.exp(scores[t] - max);
                    scores[t] = e;
                    sum += e;
                }
                float inv = (float) (1.0 / sum);
                for (int t = 0; t < len; t++) {
                    float p = scores[t] * inv;
                    int vo = t * kvDim + g * hd;
                    for (int d = 0; d < hd; d++) {
                        att[qo + d] += p * vc[vo + d];
                    }
                }
            }
        }
        observer.attention(l, xb, att, rowOf, posOf);
        float[] o = linear(att, n, c.qDim(), L.wo, L.bo, hid);
        for (int j = 0; j < n * hid; j++) {
            x[j] += o[j];
        }
        if (!pre) {
            norm(x, n, L.attnNormW, L.attnNormB);
        }

        // ---- MLP ----
        float[] xm = x.clone();
        if (pre) {
            norm(xm, n, L.mlpNormW, L.mlpNormB);
        }
        float[] hb; // (n, ffn): activations entering the down projection
        if (c.gatedMlp()) {
            hb = linear(xm, n, hid, L.w1, L.b1, c.ffnDim());
            float[] up = linear(xm, n, hid, L.w3, L.b3, c.ffnDim());
            for (int j = 0; j < hb.length; j++) {
                hb[j] = c.activation().apply(hb[j]) * up[j];
            }
        } else {
            hb = linearMasked(xm, n, hid, L.w1, L.b1, c.ffnDim(), neurons);
            Activation act = c.activation();
            for (int j = 0; j < hb.length; j++) {
                hb[j] = act.apply(hb[j]);
            }
        }
        float[] down = linearSparseIn(hb, n, c.ffnDim(), L.w2, L.b2, hid, neurons);
        observer.mlp(l, hb, down);
        for (int j = 0; j < n * hid; j++) {
            x[j] += down[j];
        }
        if (!pre) {
            norm(x, n, L.mlpNormW, L.mlpNormB);
        }
    }

    private static int maxPosition(int[] posOf) {
        int m = 0;
        for (int p : posOf) {
            m = Math.max(m, p);
        }
        return m;
    }

    /** Rotate-half RoPE in place on one head vector at {@code off}. */
    private void rope(float[] a, int off, int pos) {
        int half = c.headDim() / 2;
        for (int i = 0; i < half; i++) {
            float angle = pos * invFreq[i]; // float32, as Hugging Face computes it
            float cos = (float) Math.cos(angle);
            float sin = (float) Math.sin(angle);
            float x1 = a[off + i];
            float x2 = a[off + i + half];
            a[off + i] = x1 * cos - x2 * sin;
            a[off + i + half] = x2 * cos + x1 * sin;
        }
    }

    /** LayerNorm (OPT) or RMSNorm (LLaMA) over each of n rows, in place; null weight = 1. */
    private void norm(float[] a, int n, float[] weight, float[] bias) {
        int hid = c.hiddenSize();
        float eps = c.normEps();
        boolean rms = c.family() == ModelFamily.LLAMA;
        for (int i = 0; i < n; i++) {
            int o = i * hid;
            double mean = 0;
            if (!rms) {
                for (int d = 0; d < hid; d++) {
                    mean += a[o + d];
                }
                mean /= hid;
            }
            double var = 0;
            for (int d = 0; d < hid; d++) {
                double t = a[o + d] - mean;
                var += t * t;
            }
            var /= hid;
            float inv = (float) (1.0 / Math.sqrt(var + eps));
            for (int d = 0; d < hid; d++) {
                float y = (float) (a[o + d] - mean) * inv;
                if (weight != null) {
                    y *= weight[d];
                }
                if (bias != null) {
                    y += bias[d];
                }
                a[o + d] = y;
            }
        }
    }

    /** y = x W^T + b for n rows: x (n, in), W (out, in), b (out) or null; returns (n, out). */
    static float[] linear(float[] x, int n, int in, float[] wt, float[] b, int out) {
        return linearMasked(x, n, in, wt, b, out, null);
    }

    /** As {@link #linear}, computing only the outputs selected by {@code mask} (others 0). */
    static float[] linearMasked(float[] x, int n, int in, float[] wt, float[] b, int out,
                                boolean[] mask) {
        float[] y = new float[n * out];
        for (int o = 0; o < out; o++) {
            if (mask != null && !mask[o]) {
                continue;
            }
            float bias = b == null ? 0f : b[o];
            for (int i = 0; i < n; i++) {
                y[i * out + o] = dot(x, i * in, wt, o * in, in) + bias;
            }
        }
        return y;
    }

    /**
     * y = x W^T + b where only the inputs selected by {@code mask} take part (the sparse MLP's
     * down projection: unselected neurons are exactly zero). The selected inputs and weight
     * columns are gathered into compact buffers first, as the GPU gather-GEMM does, so that an
     * all-selected mask gives exactly the dense result.
     */
    static float[] linearSparseIn(float[] x, int n, int in, float[] wt, float[] b, int out,
                                  boolean[] mask) {
        if (mask == null) {
            return linear(x, n, in, wt, b, out);
        }
        int[] idx = new int[in];
        int k = 0;
        for (int j = 0; j < in; j++) {
            if (mask[j]) {
                idx[k++] = j;
            }
        }
        float[] xc = new float[n * k]; // (n, k) compact activations
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < k; j++) {
                xc[i * k + j] = x[i * in + idx[j]];
            }
        }
        float[] wc = new float[out * k]; // (out, k) compact weight columns
        for (int o = 0; o < out; o++) {
            for (int j = 0; j < k; j++) {
                wc[o * k + j] = wt[o * in + idx[j]];
            }
        }
        return linear(xc, n, k, wc, b, out);
    }

    /** fp32 dot product with four partial sums (a fixed order, so results are reproducible). */
    static float dot(float[] a, int ao, float[] b, int bo, int len) {
        float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
        int i = 0;
        for (; i + 3 < len; i += 4) {
            s0 += a[ao + i] * b[bo + i];
            s1 += a[ao + i + 1] * b[bo + i + 1];
            s2 += a[ao + i + 2] * b[bo + i + 2];
            s3 += a[ao + i + 3] * b[bo + i + 3];
        }
        for (; i < len; i++) {
            s0 += a[ao + i] * b[bo + i];
        }
        return (s0 + s1) + (s2 + s3);
    }
}
