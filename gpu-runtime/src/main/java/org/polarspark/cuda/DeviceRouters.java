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

    DeviceRouters(int layers, int groups) {
        this.weight = new DeviceBuffer[layers];
        this.bias = new DeviceBuffer[layers];
        this.kept = new int[layers];
        this.groups = groups;
    }

    /**
     * Routers with pseudo-random weights generated on the device: arbitrary selections at the
     * exact density (floor(density * G), at least 1) in every layer but the first. For synthetic
     * benchmarks; the router GEMM and top-k cost what real routers cost.
     */
    public static DeviceRouters random(CudaDecoder dec, double density, long seed) {
        var c = dec.config();
        DeviceRouters r = new DeviceRouters(c.numLayers(), c.numKvHeads());
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
        DeviceRouters r = new DeviceRouters(c.numLayers(), c.numKvHeads());
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
        return upload(dec, weights, biases, kept);
    }

    /** Device bytes of the router weights (what a step reads for them). */
    public long weightBytes() {
        long n = 0;
        for (DeviceBuffer b : owned) {
            n += b.bytes();
        }
        return n;
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
