package org.polarspark.polar;

import java.nio.file.Path;
import org.polarspark.model.ModelConfig;

/**
 * Polar Sparsity with trained routers, on the CPU: the reference selection the GPU kernels must
 * reproduce.
 *
 * <ul>
 *   <li>{@link #selectGroups}: at a layer whose {@link PolarConfig#groupsKept} is every group
 *       (density 1.0, layer 0), null (dense, so the decoder's arithmetic is exactly dense).
 *       Otherwise the token's head-router logits {@code W_h x + b_h} (one per KV group) and a
 *       mask of the top {@code groupsKept(layer)} of them ({@link TopK} order: ties to the lower
 *       group).</li>
 *   <li>{@link #selectNeurons}: null when the config has no MLP table. Otherwise
 *       k = {@link PolarConfig#mlpK mlpK(layer, tokens)}; null (dense) when k &gt; 0.8 x F, the
 *       paper's fallback; else score_j = sum over the call's tokens of ReLU(logit_j) of the MLP
 *       router {@code up (down x)}, and a mask of the top k scores (a zero-score neuron may be
 *       picked, as in the paper).</li>
 * </ul>
 *
 * <p>The decoder passes the router input (the pre-attention norm output) for both. Thread-safe:
 * selections allocate their own buffers; weights are read-only; counters are LongAdders.
 */
public final class RouterPolicy implements PolarPolicy {
    private final PolarConfig cfg;
    private final RouterWeights w;
    private final PolarCounters counters = new PolarCounters();

    /**
     * @throws org.polarspark.model.ModelFormatException when cfg does not fit the model
     * @throws IllegalArgumentException                  when the weights do not fit cfg
     */
    public RouterPolicy(PolarConfig cfg, RouterWeights weights, ModelConfig model) {
        cfg.validate(model, "Polar config");
        weights.checkMatches(cfg);
        this.cfg = cfg;
        this.w = weights;
    }

    /** Reads polar/polar.json and the router file beside a model, checked against it. */
    public static RouterPolicy load(Path modelDir, ModelConfig model) {
        PolarConfig cfg = PolarConfig.load(modelDir, model);
        return new RouterPolicy(cfg, RouterWeights.load(modelDir, cfg), model);
    }

    /** As {@link #load(Path, ModelConfig)} with the density override (layer 0 keeps its own). */
    public static RouterPolicy load(Path modelDir, ModelConfig model, double density) {
        PolarConfig cfg = PolarConfig.load(modelDir, model);
        return new RouterPolicy(cfg.withDensity(density), RouterWeights.load(modelDir, cfg),
                model);
    }

    @Override
    public PolarConfig config() {
        return cfg;
    }

    public RouterWeights weights() {
        return w;
    }

    @Override
    public PolarStats stats() {
        return counters.snapshot();
    }

    @Override
    public boolean[] selectGroups(int layer, int row, int position, float[] x, int offset) {
        int g = cfg.numKvHeads();
        int keep = cfg.groupsKept(layer);
        if (keep >= g) {
            counters.groups(1, g, g);
            return null;
        }
        long t0 = System.nanoTime();
        boolean[] mask = TopK.topKMask(w.headLogits(layer, x, offset), keep);
        counters.routerNanos(System.nanoTime() - t0);
        counters.groups(1, g, keep);
        return mask;
    }

    @Override
    public boolean[] selectNeurons(int layer, float[] x, int tokens) {
        int f = cfg.ffnDim();
        if (cfg.mlp() == null) {
            counters.neurons(f, f);
            return null;
        }
        int k = cfg.mlpK(layer, tokens);
        if (PolarConfig.mlpFallsBack(k, f)) {
            counters.neurons(f, f);
            return null;
        }
        long t0 = System.nanoTime();
        float[] score = unionScores(layer, x, tokens);
        boolean[] mask = TopK.topKMask(score, k);
        counters.routerNanos(System.nanoTime() - t0);
        counters.neurons(f, k);
        return mask;
    }

    /**
     * The batch-union scores: score_j = sum over tokens t (in order, fp32) of
     * max(0, mlpLogits(layer, x_t)_j).
     */
    public float[] unionScores(int layer, float[] x, int tokens) {
        int h = cfg.hiddenSize();
        if (x.length < (long) tokens * h) {
            throw new IllegalArgumentException("selectNeurons: " + tokens + " tokens need "
                    + (long) tokens * h + " router inputs, got " + x.length);
        }
        float[] score = new float[cfg.ffnDim()];
        for (int t = 0; t < tokens; t++) {
            float[] logits = w.mlpLogits(layer, x, t * h);
            for (int j = 0; j < score.length; j++) {
                if (logits[j] > 0) {
                    score[j] += logits[j];
                }
            }
        }
        return score;
    }
}
