package org.polarspark.polar;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.regex.Pattern;
import org.polarspark.model.DType;
import org.polarspark.model.ModelFormatException;
import org.polarspark.model.SafetensorsFile;
import org.polarspark.model.SafetensorsWriter;
import org.polarspark.model.TensorInfo;

/**
 * The routers' weights, in float32, as read from {@code polar/routers.safetensors} (the file
 * named by {@link PolarConfig#routerFile()}).
 *
 * <p>Per layer l (G = num_kv_heads, H = hidden_size, F = ffn_dim, r = mlp.rank):
 * <table>
 *   <caption>tensors</caption>
 *   <tr><th>name</th><th>shape</th><th>meaning</th></tr>
 *   <tr><td>{@code layers.{l}.head.weight}</td><td>[G, H]</td><td>head router W_h</td></tr>
 *   <tr><td>{@code layers.{l}.head.bias}</td><td>[G]</td><td>head router b_h</td></tr>
 *   <tr><td>{@code layers.{l}.mlp.down.weight}</td><td>[r, H]</td><td>MLP router, first map
 *       (only when polar.json has {@code mlp})</td></tr>
 *   <tr><td>{@code layers.{l}.mlp.up.weight}</td><td>[F, r]</td><td>MLP router, second
 *       map</td></tr>
 * </table>
 * Matrices are row-major with the output dimension first, as torch's {@code Linear.weight}.
 * The head router is {@code logits = W_h x + b_h} (one logit per KV group); the MLP router is
 * {@code logits = up (down x)}, no bias, no activation in between. Its input x is the layer's
 * pre-attention norm output.
 *
 * <p>Reading accepts F32, BF16 and F16 data (converted to float32 exactly). Every expected
 * tensor must be present with exactly its shape; any other tensor is an error, except that MLP
 * router tensors are ignored when polar.json has no {@code mlp} (so a heads-only configuration
 * can reuse a full router file). Writing always stores F32. Errors name the file and tensor.
 *
 * <p>Instances are immutable by contract: the accessors return the internal arrays (so the CUDA
 * backend can upload them without a copy); never modify them. Safe to share across threads.
 */
public final class RouterWeights {
    private static final Pattern MLP_TENSOR =
            Pattern.compile("layers\\.\\d+\\.mlp\\.(down|up)\\.weight");

    private final int numLayers;
    private final int groups;
    private final int hidden;
    private final int rank;  // 0 without MLP routers
    private final int ffn;
    private final float[][] headW;
    private final float[][] headB;
    private final float[][] down; // null without MLP routers
    private final float[][] up;

    /**
     * Wraps per-layer arrays (kept by reference), checking their lengths against {@code cfg}.
     *
     * @param cfg   the shapes: num_layers, num_kv_heads, hidden_size, ffn_dim, mlp.rank
     * @param headW per layer, W_h row-major [G, H]
     * @param headB per layer, b_h [G]
     * @param down  per layer, [r, H]; null exactly when cfg has no mlp
     * @param up    per layer, [F, r]; null exactly when cfg has no mlp
     * @throws IllegalArgumentException naming the tensor whose length is wrong
     */
    public RouterWeights(PolarConfig cfg, float[][] headW, float[][] headB, float[][] down,
                         float[][] up) {
        this.numLayers = cfg.numLayers();
        this.groups = cfg.numKvHeads();
        this.hidden = cfg.hiddenSize();
        this.ffn = cfg.ffnDim();
        this.rank = cfg.mlp() == null ? 0 : cfg.mlp().rank();
        checkLayers("head.weight", headW, (long) groups * hidden);
        checkLayers("head.bias", headB, groups);
        if (cfg.mlp() == null) {
            if (down != null || up != null) {
                throw new IllegalArgumentException("MLP router weights given but the Polar config "
                        + "has no mlp");
            }
        } else {
            checkLayers("mlp.down.weight", down, (long) rank * hidden);
            checkLayers("mlp.up.weight", up, (long) ffn * rank);
        }
        this.headW = headW;
        this.headB = headB;
        this.down = down;
        this.up = up;
    }

    private void checkLayers(String what, float[][] a, long len) {
        if (a == null || a.length != numLayers) {
            throw new IllegalArgumentException(what + ": need " + numLayers + " layers, got "
                    + (a == null ? "null" : a.length));
        }
        for (int l = 0; l < numLayers; l++) {
            if (a[l] == null || a[l].length != len) {
                throw new IllegalArgumentException(name(l, what) + ": need " + len
                        + " floats, got " + (a[l] == null ? "null" : a[l].length));
            }
        }
    }

    /** {@code layers.{layer}.{what}}, e.g. {@code layers.3.head.weight}. */
    public static String name(int layer, String what) {
        return "layers." + layer + "." + what;
    }

    /**
     * Random routers (for synthetic models and as the baseline calibrated routers must beat):
     * entries drawn from N(0, 1/fan_in), biases zero.
     */
    public static RouterWeights random(PolarConfig cfg, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        int l = cfg.numLayers();
        int g = cfg.numKvHeads();
        int h = cfg.hiddenSize();
        float[][] w = new float[l][];
        float[][] b = new float[l][];
        float[][] dn = cfg.mlp() == null ? null : new float[l][];
        float[][] u = cfg.mlp() == null ? null : new float[l][];
        for (int i = 0; i < l; i++) {
            w[i] = gaussian(rnd, g * h, 1.0 / Math.sqrt(h));
            b[i] = new float[g];
            if (dn != null) {
                int r = cfg.mlp().rank();
                dn[i] = gaussian(rnd, r * h, 1.0 / Math.sqrt(h));
                u[i] = gaussian(rnd, cfg.ffnDim() * r, 1.0 / Math.sqrt(r));
            }
        }
        return new RouterWeights(cfg, w, b, dn, u);
    }

    private static float[] gaussian(SplittableRandom rnd, int n, double std) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            // Box-Muller: SplittableRandom has no nextGaussian on Java 17.
            double u1 = 1.0 - rnd.nextDouble();
            double u2 = rnd.nextDouble();
            a[i] = (float) (std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
        }
        return a;
    }

    // -----------------------------------------------------------------------------------------
    // Files
    // -----------------------------------------------------------------------------------------

    /**
     * Reads {@code modelDir/polar/<cfg.routerFile()>}.
     *
     * @throws ModelFormatException naming the file (and tensor) when it is missing, malformed, or
     *                              a tensor is missing, misshapen, of another dtype or unexpected
     */
    public static RouterWeights load(Path modelDir, PolarConfig cfg) {
        return read(cfg.routerPath(modelDir), cfg);
    }

    /** Reads a router file at an explicit path (see {@link #load}). */
    public static RouterWeights read(Path file, PolarConfig cfg) {
        if (!Files.isRegularFile(file)) {
            throw new ModelFormatException(file + ": router weights not found (polar.json key "
                    + "'router_file' names '" + cfg.routerFile() + "')");
        }
        SafetensorsFile st = SafetensorsFile.open(file);
        Map<String, long[]> expected = expected(cfg);
        for (String name : st.tensors().keySet()) {
            if (!expected.containsKey(name)
                    && !(cfg.mlp() == null && MLP_TENSOR.matcher(name).matches())) {
                throw new ModelFormatException(file + ": unexpected tensor '" + name + "' (a "
                        + cfg.numLayers() + "-layer router file has only layers.{0.."
                        + (cfg.numLayers() - 1) + "}.head.{weight,bias}"
                        + (cfg.mlp() == null ? "" : " and .mlp.{down,up}.weight") + ")");
            }
        }
        int l = cfg.numLayers();
        float[][] w = new float[l][];
        float[][] b = new float[l][];
        float[][] dn = cfg.mlp() == null ? null : new float[l][];
        float[][] u = cfg.mlp() == null ? null : new float[l][];
        for (int i = 0; i < l; i++) {
            w[i] = floats(st, file, name(i, "head.weight"), expected);
            b[i] = floats(st, file, name(i, "head.bias"), expected);
            if (dn != null) {
                dn[i] = floats(st, file, name(i, "mlp.down.weight"), expected);
                u[i] = floats(st, file, name(i, "mlp.up.weight"), expected);
            }
        }
        return new RouterWeights(cfg, w, b, dn, u);
    }

    /** Every tensor a router file for {@code cfg} must hold, with its shape, in file order. */
    public static Map<String, long[]> expected(PolarConfig cfg) {
        Map<String, long[]> out = new LinkedHashMap<>();
        long g = cfg.numKvHeads();
        long h = cfg.hiddenSize();
        for (int i = 0; i < cfg.numLayers(); i++) {
            out.put(name(i, "head.weight"), new long[] {g, h});
            out.put(name(i, "head.bias"), new long[] {g});
            if (cfg.mlp() != null) {
                long r = cfg.mlp().rank();
                out.put(name(i, "mlp.down.weight"), new long[] {r, h});
                out.put(name(i, "mlp.up.weight"), new long[] {cfg.ffnDim(), r});
            }
        }
        return out;
    }

    private static float[] floats(SafetensorsFile st, Path file, String name,
                                  Map<String, long[]> expected) {
        long[] shape = expected.get(name);
        TensorInfo t = st.tensors().get(name);
        if (t == null) {
            throw new ModelFormatException(file + ": missing tensor '" + name
                    + "' (expected shape " + Arrays.toString(shape) + ")");
        }
        if (!Arrays.equals(t.shape(), shape)) {
            throw new ModelFormatException(file + ": tensor '" + name + "' has shape "
                    + t.shapeString() + " but polar.json implies " + Arrays.toString(shape));
        }
        DType dt = DType.fromSafetensors(t.dtype());
        if (dt == null) {
            throw new ModelFormatException(file + ": tensor '" + name + "' has unsupported dtype "
                    + t.dtype() + " (supported: F32, BF16, F16)");
        }
        if (t.numel() > Integer.MAX_VALUE - 8) {
            throw new ModelFormatException(file + ": tensor '" + name + "' has " + t.numel()
                    + " elements, too many for one array");
        }
        float[] out = new float[(int) t.numel()];
        ByteBuffer buf = SafetensorsFile.map(t);
        if (dt == DType.F32) {
            buf.asFloatBuffer().get(out);
        } else {
            for (int i = 0; i < out.length; i++) {
                out[i] = dt.get(buf, i);
            }
        }
        return out;
    }

    /** Writes {@code modelDir/polar/<cfg.routerFile()>} as F32 (cfg must describe these). */
    public void write(Path modelDir, PolarConfig cfg) {
        writeFile(cfg.routerPath(modelDir));
    }

    /**
     * Writes the router file at an explicit path, as F32, tensors in {@link #expected} order,
     * replacing any file there.
     */
    public void writeFile(Path file) {
        SafetensorsWriter out = new SafetensorsWriter().metadata("format", PolarConfig.FORMAT);
        for (int i = 0; i < numLayers; i++) {
            out.addF32(name(i, "head.weight"), headW[i], groups, hidden);
            out.addF32(name(i, "head.bias"), headB[i], groups);
            if (down != null) {
                out.addF32(name(i, "mlp.down.weight"), down[i], rank, hidden);
                out.addF32(name(i, "mlp.up.weight"), up[i], ffn, rank);
            }
        }
        out.write(file);
    }

    // -----------------------------------------------------------------------------------------
    // Evaluation
    // -----------------------------------------------------------------------------------------

    /**
     * Head router logits for one token: {@code W_h[layer] x + b_h[layer]}, fp32 with a fixed
     * summation order.
     *
     * @param x   router inputs; this token's H values start at {@code off}
     * @return float[G]
     */
    public float[] headLogits(int layer, float[] x, int off) {
        float[] w = headW[layer];
        float[] b = headB[layer];
        float[] out = new float[groups];
        for (int g = 0; g < groups; g++) {
            out[g] = dot(x, off, w, g * hidden, hidden) + b[g];
        }
        return out;
    }

    /**
     * MLP router logits for one token: {@code up[layer] (down[layer] x)}.
     *
     * @return float[F]
     * @throws IllegalStateException when there are no MLP routers
     */
    public float[] mlpLogits(int layer, float[] x, int off) {
        if (down == null) {
            throw new IllegalStateException("mlpLogits: these routers have no MLP router");
        }
        float[] d = down[layer];
        float[] u = up[layer];
        float[] t = new float[rank];
        for (int j = 0; j < rank; j++) {
            t[j] = dot(x, off, d, j * hidden, hidden);
        }
        float[] out = new float[ffn];
        for (int i = 0; i < ffn; i++) {
            out[i] = dot(t, 0, u, i * rank, rank);
        }
        return out;
    }

    /** fp32 dot product with four partial sums (a fixed order, so results are reproducible). */
    static float dot(float[] a, int ao, float[] b, int bo, int len) {
        float s0 = 0f;
        float s1 = 0f;
        float s2 = 0f;
        float s3 = 0f;
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

    // -----------------------------------------------------------------------------------------
    // Shapes and arrays
    // -----------------------------------------------------------------------------------------

    public int numLayers() {
        return numLayers;
    }

    /** G: head router outputs (KV groups). */
    public int groups() {
        return groups;
    }

    public int hidden() {
        return hidden;
    }

    /** r, or 0 without MLP routers. */
    public int rank() {
        return rank;
    }

    public int ffn() {
        return ffn;
    }

    public boolean hasMlp() {
        return down != null;
    }

    /** W_h of one layer, row-major [G, H] (internal array: do not modify). */
    public float[] headWeight(int layer) {
        return headW[layer];
    }

    /** b_h of one layer, [G] (internal array: do not modify). */
    public float[] headBias(int layer) {
        return headB[layer];
    }

    /** The MLP router's first map, row-major [r, H] (internal array: do not modify). */
    public float[] mlpDown(int layer) {
        return down == null ? null : down[layer];
    }

    /** The MLP router's second map, row-major [F, r] (internal array: do not modify). */
    public float[] mlpUp(int layer) {
        return up == null ? null : up[layer];
    }

    /**
     * Checks these weights have the shapes {@code cfg} describes: layers, groups, hidden and
     * ffn equal, and, when cfg has mlp, MLP routers of its rank (MLP routers present while cfg
     * has none are fine: they go unused, as with a heads-only override).
     *
     * @throws IllegalArgumentException describing the mismatch
     */
    public void checkMatches(PolarConfig cfg) {
        boolean mlpOk = cfg.mlp() == null || (hasMlp() && cfg.mlp().rank() == rank);
        if (cfg.numLayers() != numLayers || cfg.numKvHeads() != groups
                || cfg.hiddenSize() != hidden || cfg.ffnDim() != ffn || !mlpOk) {
            throw new IllegalArgumentException("router weights (layers " + numLayers
                    + ", groups " + groups + ", hidden " + hidden + ", ffn " + ffn
                    + (hasMlp() ? ", MLP router rank " + rank : ", no MLP router")
                    + ") do not match the Polar config (num_layers " + cfg.numLayers()
                    + ", num_kv_heads " + cfg.numKvHeads() + ", hidden_size "
                    + cfg.hiddenSize() + ", ffn_dim " + cfg.ffnDim()
                    + (cfg.mlp() == null ? ", mlp null" : ", mlp.rank " + cfg.mlp().rank())
                    + ")");
        }
    }
}
