package org.polarspark.cuda;

import java.util.ArrayList;
import java.util.List;
import org.polarspark.polar.SparsityPolicy;

/**
 * Polar Sparsity's head routers on the device, as the CUDA decoder applies them in decode
 * steps: per layer, a linear router hidden -> KV groups (weight bf16 [G, hidden], bias bf16 [G]
 * or none) and the number of groups each token keeps. A layer that keeps every group (layer 0,
 * density 1.0) runs dense attention. Selection happens on the device (router GEMM, then a top-k
 * into a [tokens, k] group table that the attention kernel reads), so the decode step stays one
 * captured graph.
 *
 * <p>It is a {@link SparsityPolicy} only as a marker for the generic generator: the CUDA decoder
 * recognises it and selects on the device; the CPU decoder does not (it runs the equivalent
 * {@code org.polarspark.polar.RouterPolicy}).
 */
public final class DeviceRouters implements SparsityPolicy, AutoCloseable {
    final DeviceBuffer[] weight; // per layer, null where the layer is dense
    final DeviceBuffer[] bias;
    final int[] kept;            // groups kept per layer (== G: dense)
    final int groups;
    private final List<DeviceBuffer> owned = new ArrayList<>();
    // MLP routers (ReLU models): down [rank, hidden], up [ffn, rank]; null when heads only
    DeviceBuffer[] mlpDown;
    DeviceBuffer[] mlpUp;
    int rank;
    int ffn;
    int[] kBuckets;      // ascending batch sizes
    int[][] kTable;      // [layer][bucket] neurons kept
    // scratch for decode-time MLP routing (rows <= maxRows)
    DeviceBuffer mlpT;      // bf16 [maxRows, rank]
    DeviceBuffer mlpLogits; // fp32 [maxRows, ffn]
    DeviceBuffer mlpScore;  // fp32 [ffn]
    DeviceBuffer[] mlpIdx;  // per layer int32 [ffn]: selected neurons of the last call
    int maxRows;

    DeviceRouters(int layers, int groups, int ffn) {
        this.weight = new DeviceBuffer[layers];
        this.bias = new DeviceBuffer[layers];
        this.kept = new int[layers];
        this.groups = groups;
        this.ffn = ffn; // until MLP routers are attached, mlpK is ffn: a dense MLP
    }

    /**
     * Routers with pseudo-random weights generated on the device: arbitrary selections at the
     * exact density (floor(density * G), at least 1) in every layer but the first. For synthetic
     * benchmarks; the router GEMM and top-k cost what real routers cost.
     */
    public static DeviceRouters random(CudaDecoder dec, double density, long seed) {
        var c = dec.config();
        DeviceRouters r = new DeviceRouters(c.numLayers(), c.numKvHeads(), c.ffnDim());
        // floor(density * G) with the same tolerance as PolarConfig.groupsKept
        int keep = Math.max(1, (int) Math.floor(density * c.numKvHeads() + 1e-9));
        for (int l = 0; l < c.numLayers(); l++) {
            r.kept[l] = l == 0 ? c.numKvHeads() : keep;
            if (r.kept[l] < c.numKvHeads()) {
                r.weight[l] = dec.routerBuffer("router" + l + ".weight",
                        (long) c.numKvHeads() * c.hiddenSize());
                dec.kernels().init.uniformBf16(dec.stream(), r.weight[l],
                        (long) c.numKvHeads() * c.hiddenSize(), seed + l,
                        (float) (1.0 / Math.sqrt(c.hiddenSize())));
                r.owned.add(r.weight[l]);
            }
        }
        dec.stream().synchronize();
        return r;
    }

    /**
     * Routers from host weights (fp32, rounded to bf16): per layer weight [G * hidden] and bias
     * [G] (null for none), and groups kept (G for a dense layer).
     */
    public static DeviceRouters upload(CudaDecoder dec, float[][] weights, float[][] biases,
                                       int[] kept) {
        var c = dec.config();
        DeviceRouters r = new DeviceRouters(c.numLayers(), c.numKvHeads(), c.ffnDim());
        for (int l = 0; l < c.numLayers(); l++) {
            if (kept[l] < 1 || kept[l] > c.numKvHeads()) {
                throw new IllegalArgumentException("layer " + l + " keeps " + kept[l]
                        + " groups; must be in [1, " + c.numKvHeads() + "]");
            }
            r.kept[l] = kept[l];
            if (kept[l] < c.numKvHeads()) {
                r.weight[l] = dec.uploadRouter("router" + l + ".weight", weights[l]);
                r.owned.add(r.weight[l]);
                if (biases != null && biases[l] != null) {
                    r.bias[l] = dec.uploadRouter("router" + l + ".bias", biases[l]);
                    r.owned.add(r.bias[l]);
                }
            }
        }
        return r;
    }

    /**
     * The head routers of a {@link org.polarspark.polar.PolarConfig} on the device: each layer
     * keeps {@code cfg.groupsKept(layer)} groups (dense where that is every group).
     */
    public static DeviceRouters fromConfig(CudaDecoder dec, org.polarspark.polar.PolarConfig cfg,
                                           org.polarspark.polar.RouterWeights w) {
        var c = dec.config();
        float[][] weights = new float[c.numLayers()][];
        float[][] biases = new float[c.numLayers()][];
        int[] kept = new int[c.numLayers()];
        for (int l = 0; l < c.numLayers(); l++) {
            kept[l] = cfg.groupsKept(l);
            weights[l] = w.headWeight(l);
            biases[l] = w.headBias(l);
        }
        DeviceRouters r = upload(dec, weights, biases, kept);
        if (cfg.mlp() != null && dec.config().reluMlp()) {
            float[][] down = new float[c.numLayers()][];
            float[][] up = new float[c.numLayers()][];
            int[][] table = new int[c.numLayers()][];
            for (int l = 0; l < c.numLayers(); l++) {
                down[l] = w.mlpDown(l);
                up[l] = w.mlpUp(l);
                table[l] = cfg.mlp().k()[l];
            }
            r.attachMlp(dec, down, up, cfg.mlp().rank(), cfg.mlp().batchBuckets(), table, false,
                    0);
        }
        return r;
    }

    /** Device bytes of the router weights (what a step reads for them; scratch excluded). */
    public long weightBytes() {
        long n = 0;
        for (DeviceBuffer b : owned) {
            if (b.name().contains("weight") || b.name().contains("bias")
                    || b.name().endsWith(".down") || b.name().endsWith(".up")) {
                n += b.bytes();
            }
        }
        return n;
    }

    /**
     * Neurons kept at a layer for a batch of n rows (the smallest bucket >= n, else the largest),
     * or ffn for a dense MLP: no MLP routers, or k > 0.8 ffn (the paper's fallback).
     */
    public int mlpK(int layer, int n) {
        if (mlpDown == null || mlpDown[layer] == null || n > maxRows) {
            return ffn;
        }
        int b = kBuckets.length - 1;
        for (int i = 0; i < kBuckets.length; i++) {
            if (kBuckets[i] >= n) {
                b = i;
                break;
            }
        }
        int k = kTable[layer][b];
        return 5L * k > 4L * ffn ? ffn : k;
    }

    /** Adds MLP routers: per layer down [rank, hidden] and up [ffn, rank] as host floats. */
    void attachMlp(CudaDecoder dec, float[][] down, float[][] up, int rank, int[] buckets,
                   int[][] table, boolean random, long seed) {
        var c = dec.config();
        if (!c.reluMlp()) {
            throw new IllegalArgumentException("MLP routers apply to ReLU MLP models only");
        }
        if (rank % 8 != 0) {
            throw new IllegalArgumentException("MLP router rank must be a multiple of 8, got "
                    + rank);
        }
        for (int[] row : table) {
            for (int k : row) {
                if (k % 8 != 0 || k < 8 || k > c.ffnDim()) {
                    throw new IllegalArgumentException("MLP k must be a multiple of 8 in [8, "
                            + c.ffnDim() + "], got " + k);
                }
            }
        }
        this.rank = rank;
        this.ffn = c.ffnDim();
        this.kBuckets = buckets.clone();
        this.kTable = table;
        this.maxRows = dec.maxRows();
        this.mlpDown = new DeviceBuffer[c.numLayers()];
        this.mlpUp = new DeviceBuffer[c.numLayers()];
        this.mlpIdx = new DeviceBuffer[c.numLayers()];
        for (int l = 0; l < c.numLayers(); l++) {
            if (random) {
                mlpDown[l] = dec.routerBuffer("mlp" + l + ".down", (long) rank * c.hiddenSize());
                dec.kernels().init.uniformBf16(dec.stream(), mlpDown[l],
                        (long) rank * c.hiddenSize(), seed + 100 + l,
                        (float) (1.0 / Math.sqrt(c.hiddenSize())));
                mlpUp[l] = dec.routerBuffer("mlp" + l + ".up", (long) ffn * rank);
                dec.kernels().init.uniformBf16(dec.stream(), mlpUp[l], (long) ffn * rank,
                        seed + 200 + l, (float) (1.0 / Math.sqrt(rank)));
            } else {
                mlpDown[l] = dec.uploadRouter("mlp" + l + ".down", down[l]);
                mlpUp[l] = dec.uploadRouter("mlp" + l + ".up", up[l]);
            }
            owned.add(mlpDown[l]);
            owned.add(mlpUp[l]);
            mlpIdx[l] = dec.routerScratch("mlp" + l + ".idx", ffn * 4L);
            owned.add(mlpIdx[l]);
        }
        mlpT = dec.routerScratch("mlp.t", (long) maxRows * rank * 2);
        mlpLogits = dec.routerScratch("mlp.logits", (long) maxRows * ffn * 4);
        mlpScore = dec.routerScratch("mlp.score", ffn * 4L);
        owned.add(mlpT);
        owned.add(mlpLogits);
        owned.add(mlpScore);
        dec.stream().synchronize();
    }

    /**
     * Random MLP routers (synthetic benchmarks): rank r, and per batch bucket a kept fraction
     * of ffn (rounded up to a multiple of 128, or of 8 for small ffn).
     */
    public DeviceRouters withRandomMlp(CudaDecoder dec, int rank, int[] buckets,
                                       double[] fractions, long seed) {
        var c = dec.config();
        int mult = c.ffnDim() >= 4096 ? 128 : 8;
        int[][] table = new int[c.numLayers()][buckets.length];
        for (int l = 0; l < c.numLayers(); l++) {
            for (int b = 0; b < buckets.length; b++) {
                int k = (int) Math.ceil(fractions[b] * c.ffnDim() / mult) * mult;
                table[l][b] = Math.max(mult, Math.min(c.ffnDim(), k));
            }
        }
        attachMlp(dec, null, null, rank, buckets, table, true, seed);
        return this;
    }

    /** Groups kept at a layer. */
    public int kept(int layer) {
        return kept[layer];
    }

    /** Mean fraction of KV groups kept per token over the layers. */
    public double meanDensity() {
        double s = 0;
        for (int k : kept) {
            s += (double) k / groups;
        }
        return s / kept.length;
    }

    @Override
    public void close() {
        for (DeviceBuffer b : owned) {
            b.close();
        }
        owned.clear();
    }
}
