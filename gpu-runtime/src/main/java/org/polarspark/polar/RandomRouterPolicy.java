package org.polarspark.polar;

import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Polar Sparsity with arbitrary selections of exact size, for synthetic benchmark models that
 * have no trained routers: the work done matches a real policy at the same densities and k
 * table, while which heads and neurons are kept is a seeded hash.
 *
 * <ul>
 *   <li>Heads: a layer whose {@link PolarConfig#groupsKept} is every group (density 1.0, layer 0)
 *       is dense (null). Otherwise exactly {@code groupsKept(layer)} groups, chosen by
 *       {@link #groupMask}: a partial Fisher-Yates shuffle of 0..G-1 driven by SplitMix64 seeded
 *       from (seed, layer, position, row). The same (seed, layer, row, position) always gives
 *       the same groups.</li>
 *   <li>Neurons (called by the decoders only for ReLU-MLP models): k = mlpK(layer, tokens) when
 *       the config has an MLP table, or max(1, floor(fraction x F)) for a fixed fraction given
 *       at construction; dense (null) when neither is set or k &gt; 0.8 x F (the paper's
 *       fallback, so benchmarks do what deployment would). Which k: {@link #neuronMask}, a
 *       partial Fisher-Yates driven by SplitMix64 of (seed, layer, tokens, step), where step
 *       counts this policy's selectNeurons calls at that layer, so successive decode steps pick
 *       different neurons and the sequence is reproducible from a fresh policy.</li>
 *   <li>Layer 0 is fully dense (heads and neurons) unless the config allows a sparse layer
 *       0.</li>
 * </ul>
 *
 * <p>Thread-safe. The input vectors are ignored.
 */
public final class RandomRouterPolicy implements PolarPolicy {
    private static final long GOLDEN = 0x9e3779b97f4a7c15L;
    private static final long HEADS = 0x48454144L;   // domain tags keep the two streams apart
    private static final long NEURONS = 0x4e45524eL;

    private final PolarConfig cfg;
    private final long seed;
    private final double neuronFraction; // NaN: use the config's table
    private final AtomicLongArray steps;
    private final PolarCounters counters = new PolarCounters();

    /** Heads by the config's densities; neurons by its MLP table (dense MLP if it has none). */
    public RandomRouterPolicy(PolarConfig cfg, long seed) {
        this(cfg, seed, Double.NaN);
    }

    /**
     * Heads by the config's densities; neurons keep max(1, floor(neuronFraction x F)) at every
     * layer but 0 and every batch size, regardless of the config's table.
     *
     * @param neuronFraction in (0, 1], or NaN for the config's table
     */
    public RandomRouterPolicy(PolarConfig cfg, long seed, double neuronFraction) {
        if (!Double.isNaN(neuronFraction) && !(neuronFraction > 0 && neuronFraction <= 1)) {
            throw new IllegalArgumentException("neuron fraction must be in (0, 1], got "
                    + neuronFraction);
        }
        this.cfg = cfg;
        this.seed = seed;
        this.neuronFraction = neuronFraction;
        this.steps = new AtomicLongArray(cfg.numLayers());
    }

    @Override
    public PolarConfig config() {
        return cfg;
    }

    public long seed() {
        return seed;
    }

    @Override
    public PolarStats stats() {
        return counters.snapshot();
    }

    @Override
    public boolean[] selectGroups(int layer, int row, int position, float[] x, int offset) {
        int g = cfg.numKvHeads();
        long t0 = System.nanoTime();
        boolean[] mask = groupMask(layer, row, position);
        if (mask != null) {
            counters.routerNanos(System.nanoTime() - t0);
        }
        counters.groups(1, g, mask == null ? g : cfg.groupsKept(layer));
        return mask;
    }

    @Override
    public boolean[] selectNeurons(int layer, float[] x, int tokens) {
        int f = cfg.ffnDim();
        int k = neuronsKept(layer, tokens);
        if (k < 0) {
            counters.neurons(f, f);
            return null;
        }
        long t0 = System.nanoTime();
        boolean[] mask = select(f, k, key(NEURONS, layer, tokens, steps.getAndIncrement(layer)));
        counters.routerNanos(System.nanoTime() - t0);
        counters.neurons(f, k);
        return mask;
    }

    /**
     * The groups kept for a token: null when the layer is dense, else a mask with exactly
     * {@code groupsKept(layer)} entries set. A pure function of (seed, layer, row, position).
     */
    public boolean[] groupMask(int layer, int row, int position) {
        int keep = cfg.groupsKept(layer);
        if (keep >= cfg.numKvHeads() || (layer == 0 && !cfg.allowSparseLayer0())) {
            return null;
        }
        return select(cfg.numKvHeads(), keep, key(HEADS, layer, position, row));
    }

    /**
     * The neurons kept for a forward of {@code tokens} tokens at decode step {@code step} of
     * {@code layer}: null when dense (see the class comment), else a mask with exactly k entries
     * set. A pure function of (seed, layer, tokens, step).
     */
    public boolean[] neuronMask(int layer, int tokens, long step) {
        int k = neuronsKept(layer, tokens);
        return k < 0 ? null : select(cfg.ffnDim(), k, key(NEURONS, layer, tokens, step));
    }

    /** k for this (layer, tokens), or -1 for dense. */
    private int neuronsKept(int layer, int tokens) {
        int f = cfg.ffnDim();
        if (layer == 0 && !cfg.allowSparseLayer0()) {
            return -1;
        }
        int k;
        if (!Double.isNaN(neuronFraction)) {
            k = Math.max(1, (int) Math.floor(neuronFraction * f + PolarConfig.FLOOR_TOLERANCE));
        } else if (cfg.mlp() != null) {
            k = cfg.mlpK(layer, tokens);
        } else {
            return -1;
        }
        return k >= f || PolarConfig.mlpFallsBack(k, f) ? -1 : k;
    }

    private long key(long domain, long a, long b, long c) {
        long h = mix(seed ^ domain);
        h = mix(h + GOLDEN * (a + 1));
        h = mix(h + GOLDEN * (b + 1));
        return mix(h + GOLDEN * (c + 1));
    }

    /** Exactly k of n set: the first k of a partial Fisher-Yates shuffle seeded by state. */
    private static boolean[] select(int n, int k, long state) {
        int[] perm = new int[n];
        for (int i = 0; i < n; i++) {
            perm[i] = i;
        }
        boolean[] mask = new boolean[n];
        for (int i = 0; i < k; i++) {
            state += GOLDEN;
            long r = mix(state);
            int j = i + (int) (((r >>> 32) * (n - i)) >>> 32);
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
            mask[perm[i]] = true;
        }
        return mask;
    }

    /** SplitMix64's output function. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }
}
