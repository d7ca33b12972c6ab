package org.polarspark.polar;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.Iterator;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.ModelFamily;
import org.polarspark.model.ModelFormatException;

/**
 * Polar Sparsity's settings for one model: the file {@code polar/polar.json} beside the model's
 * {@code config.json}. Format {@value #FORMAT} (also described in {@code FORMAT.md} next to this
 * class):
 *
 * <pre>{@code
 * {
 *   "format": "polar-sparsity/1",            // required, exactly this string
 *   "model_type": "opt" | "llama",           // required, the model's config.json model_type
 *   "num_layers": L,                         // required, > 0; = num_hidden_layers
 *   "num_kv_heads": G,                       // required, > 0; the selection units: KV groups
 *                                            //   (= attention heads for multi-head attention)
 *   "hidden_size": H,                        // required, > 0; the router input width
 *   "ffn_dim": F,                            // required, > 0; ffn_dim / intermediate_size
 *   "head_density": [d_0, ..., d_{L-1}],     // required, each finite in (0, 1]; d_0 must be 1.0
 *   "allow_sparse_layer0": false,            // optional (default false): lifts the d_0 rule
 *   "mlp": null | {                          // optional (default null: dense MLP); ReLU models
 *     "rank": r,                             //   only; r > 0, the MLP router's inner width
 *     "batch_buckets": [1, 8, 16, ...],      //   non-empty, positive, strictly ascending
 *     "k": [[k per bucket] per layer]        //   L rows of len(batch_buckets) ints in 1..F
 *   },
 *   "router_file": "routers.safetensors",    // optional (this default); a plain file name in
 *                                            //   polar/ (see RouterWeights for its tensors)
 *   "calibration": { ... }                   // optional (default {}): free-form provenance
 * }                                          //   (corpus, tokens, date, recall per layer, ...)
 * }</pre>
 *
 * <p>Unknown keys (at the top level and inside {@code mlp}) are rejected, so a misspelt optional
 * key cannot silently fall back to its default; {@code calibration} is free-form.
 *
 * <p>Every check is made in the compact constructor, whose {@link IllegalArgumentException}
 * names the JSON key ({@code head_density[3]}, {@code mlp.k[2][0]}, ...). Reading a file turns
 * that, and every type error, into a {@link ModelFormatException} naming the file and the key;
 * {@link #validate} does the same for disagreements with the model's {@link ModelConfig}.
 *
 * <p>Arrays are copied in and out, so instances are immutable; {@code equals} compares contents.
 *
 * @param modelType         {@code model_type}: "opt" or "llama"
 * @param numLayers         {@code num_layers}
 * @param numKvHeads        {@code num_kv_heads}: G, the number of selectable KV groups
 * @param hiddenSize        {@code hidden_size}
 * @param ffnDim            {@code ffn_dim}
 * @param headDensity       {@code head_density}: per layer, the fraction of KV groups each token
 *                          keeps (see {@link #groupsKept})
 * @param allowSparseLayer0 {@code allow_sparse_layer0}: permits head_density[0] &lt; 1
 * @param mlp               {@code mlp}: the MLP router's rank and k table, or null (dense MLP)
 * @param routerFile        {@code router_file}: file name of the router weights in polar/
 * @param calibration       {@code calibration}: how the routers were made (free-form object)
 */
public record PolarConfig(String modelType, int numLayers, int numKvHeads, int hiddenSize,
                          int ffnDim, double[] headDensity, boolean allowSparseLayer0, Mlp mlp,
                          String routerFile, ObjectNode calibration) {

    /** The value of the {@code format} key this class reads and writes. */
    public static final String FORMAT = "polar-sparsity/1";
    /** The folder beside the model holding Polar Sparsity's files. */
    public static final String DIR = "polar";
    /** The settings file's name inside {@link #DIR}. */
    public static final String FILE = "polar.json";
    /** The default {@code router_file}. */
    public static final String DEFAULT_ROUTER_FILE = "routers.safetensors";

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(SerializationFeature.INDENT_OUTPUT);
    private static final Set<String> KEYS = Set.of("format", "model_type", "num_layers",
            "num_kv_heads", "hidden_size", "ffn_dim", "head_density", "allow_sparse_layer0", "mlp",
            "router_file", "calibration");
    private static final Set<String> MLP_KEYS = Set.of("rank", "batch_buckets", "k");

    /**
     * Tolerance of {@link #groupsKept}'s floor: a density written as a decimal that names an
     * exact count (0.29 of 100 groups) keeps that count rather than one fewer from binary
     * rounding (0.29 * 100 = 28.999999999999996 in double).
     */
    static final double FLOOR_TOLERANCE = 1e-9;

    /**
     * The MLP router's shape and the dynamic top-k table.
     *
     * @param rank         {@code mlp.rank}: r, the router's inner width (hidden -&gt; r -&gt; ffn)
     * @param batchBuckets {@code mlp.batch_buckets}: batch sizes, strictly ascending, positive
     * @param k            {@code mlp.k}: per layer, per bucket, the number of neurons kept for a
     *                     batch in that bucket (see {@link PolarConfig#mlpK})
     */
    public record Mlp(int rank, int[] batchBuckets, int[][] k) {
        /** The paper's batch-size buckets. */
        public static final int[] DEFAULT_BUCKETS = {1, 8, 16, 32, 64, 128, 256};

        /**
         * Checks what needs no model dimensions (the layer count and k &lt;= ffn_dim are checked
         * by {@link PolarConfig}).
         *
         * @throws IllegalArgumentException naming the key ({@code mlp.rank}, ...)
         */
        public Mlp {
            if (rank <= 0) {
                throw bad("mlp.rank", "must be > 0, got " + rank);
            }
            if (batchBuckets == null || batchBuckets.length == 0) {
                throw bad("mlp.batch_buckets", "must list at least one batch size");
            }
            batchBuckets = batchBuckets.clone();
            for (int i = 0; i < batchBuckets.length; i++) {
                if (batchBuckets[i] <= 0) {
                    throw bad("mlp.batch_buckets[" + i + "]", "must be > 0, got "
                            + batchBuckets[i]);
                }
                if (i > 0 && batchBuckets[i] <= batchBuckets[i - 1]) {
                    throw bad("mlp.batch_buckets[" + i + "]", "must be strictly ascending, got "
                            + batchBuckets[i] + " after " + batchBuckets[i - 1]);
                }
            }
            if (k == null) {
                throw bad("mlp.k", "missing");
            }
            int[][] copy = new int[k.length][];
            for (int l = 0; l < k.length; l++) {
                if (k[l] == null || k[l].length != batchBuckets.length) {
                    throw bad("mlp.k[" + l + "]", "must have one entry per batch bucket ("
                            + batchBuckets.length + "), got "
                            + (k[l] == null ? "null" : k[l].length));
                }
                copy[l] = k[l].clone();
                for (int b = 0; b < copy[l].length; b++) {
                    if (copy[l][b] < 1) {
                        throw bad("mlp.k[" + l + "][" + b + "]", "must be >= 1, got "
                                + copy[l][b]);
                    }
                }
            }
            k = copy;
        }

        /** A table keeping the same fraction of F at every layer and bucket (synthetic runs). */
        public static Mlp uniform(int rank, int numLayers, int ffnDim, double fraction) {
            if (!(fraction > 0 && fraction <= 1)) {
                throw bad("mlp.k", "fraction must be in (0, 1], got " + fraction);
            }
            int kk = Math.max(1, (int) Math.floor(fraction * ffnDim + FLOOR_TOLERANCE));
            int[][] k = new int[numLayers][DEFAULT_BUCKETS.length];
            for (int[] row : k) {
                Arrays.fill(row, kk);
            }
            return new Mlp(rank, DEFAULT_BUCKETS, k);
        }

        @Override
        public int[] batchBuckets() {
            return batchBuckets.clone();
        }

        @Override
        public int[][] k() {
            int[][] out = new int[k.length][];
            for (int l = 0; l < k.length; l++) {
                out[l] = k[l].clone();
            }
            return out;
        }

        /** k of the smallest bucket &gt;= batch, or of the largest bucket when batch is beyond. */
        int k(int layer, int batch) {
            int[] row = k[layer];
            for (int b = 0; b < batchBuckets.length; b++) {
                if (batchBuckets[b] >= batch) {
                    return row[b];
                }
            }
            return row[row.length - 1];
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Mlp m && rank == m.rank
                    && Arrays.equals(batchBuckets, m.batchBuckets) && Arrays.deepEquals(k, m.k);
        }

        @Override
        public int hashCode() {
            return Objects.hash(rank, Arrays.hashCode(batchBuckets), Arrays.deepHashCode(k));
        }

        @Override
        public String toString() {
            return "Mlp[rank=" + rank + ", batchBuckets=" + Arrays.toString(batchBuckets)
                    + ", k=" + Arrays.deepToString(k) + "]";
        }
    }

    /**
     * Validates every rule of the format that needs no model.
     *
     * @throws IllegalArgumentException whose message starts with the offending key in quotes
     */
    public PolarConfig {
        if (!"opt".equals(modelType) && !"llama".equals(modelType)) {
            throw bad("model_type", "must be 'opt' or 'llama', got "
                    + (modelType == null ? "null" : "'" + modelType + "'"));
        }
        positive("num_layers", numLayers);
        positive("num_kv_heads", numKvHeads);
        positive("hidden_size", hiddenSize);
        positive("ffn_dim", ffnDim);
        if (headDensity == null || headDensity.length != numLayers) {
            throw bad("head_density", "must list one density per layer (num_layers = "
                    + numLayers + "), got " + (headDensity == null ? "null"
                    : headDensity.length + " entries"));
        }
        headDensity = headDensity.clone();
        for (int l = 0; l < numLayers; l++) {
            double d = headDensity[l];
            if (!(d > 0 && d <= 1)) { // also rejects NaN
                throw bad("head_density[" + l + "]", "must be in (0, 1], got " + d);
            }
        }
        if (headDensity[0] != 1.0 && !allowSparseLayer0) {
            throw bad("head_density[0]", "must be 1.0 (layer 0 stays dense, as in the paper) "
                    + "unless allow_sparse_layer0 is true, got " + headDensity[0]);
        }
        if (mlp != null) {
            if ("llama".equals(modelType)) {
                throw bad("mlp", "must be null for model_type 'llama' (a SwiGLU MLP has no "
                        + "neuron sparsity)");
            }
            if (mlp.k.length != numLayers) {
                throw bad("mlp.k", "must have one row per layer (num_layers = " + numLayers
                        + "), got " + mlp.k.length);
            }
            for (int l = 0; l < numLayers; l++) {
                for (int b = 0; b < mlp.k[l].length; b++) {
                    if (mlp.k[l][b] > ffnDim) {
                        throw bad("mlp.k[" + l + "][" + b + "]", "must be <= ffn_dim ("
                                + ffnDim + "), got " + mlp.k[l][b]);
                    }
                }
            }
        }
        if (routerFile == null) {
            routerFile = DEFAULT_ROUTER_FILE;
        }
        if (routerFile.isEmpty() || routerFile.contains("/") || routerFile.contains("\\")
                || routerFile.equals(".") || routerFile.equals("..")) {
            throw bad("router_file", "must be a plain file name inside " + DIR + "/, got '"
                    + routerFile + "'");
        }
        calibration = calibration == null ? JSON.createObjectNode() : calibration.deepCopy();
    }

    private static IllegalArgumentException bad(String key, String why) {
        return new IllegalArgumentException("key '" + key + "' " + why);
    }

    private static void positive(String key, int v) {
        if (v <= 0) {
            throw bad(key, "must be > 0, got " + v);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Construction helpers
    // -----------------------------------------------------------------------------------------

    /**
     * Settings for {@code model} with layer 0 dense, every other layer at {@code density}, no MLP
     * sparsity, the default router file and an empty calibration record.
     */
    public static PolarConfig uniform(ModelConfig model, double density) {
        return uniform(model, density, null);
    }

    /** As {@link #uniform(ModelConfig, double)}, with the given MLP table (or null). */
    public static PolarConfig uniform(ModelConfig model, double density, Mlp mlp) {
        double[] d = new double[model.numLayers()];
        Arrays.fill(d, density);
        d[0] = 1.0;
        return new PolarConfig(model.family().modelType(), model.numLayers(), model.numKvHeads(),
                model.hiddenSize(), model.ffnDim(), d, false, mlp, DEFAULT_ROUTER_FILE, null);
    }

    /**
     * The density override: a copy with every layer but 0 at {@code density} (layer 0 keeps its
     * own density, 1.0 unless sparse layer 0 was allowed).
     *
     * @throws IllegalArgumentException if density is not in (0, 1]
     */
    public PolarConfig withDensity(double density) {
        double[] d = new double[numLayers];
        Arrays.fill(d, density);
        d[0] = headDensity[0];
        return new PolarConfig(modelType, numLayers, numKvHeads, hiddenSize, ffnDim, d,
                allowSparseLayer0, mlp, routerFile, calibration);
    }

    /** A copy with these per-layer densities. */
    public PolarConfig withHeadDensity(double[] densities) {
        return new PolarConfig(modelType, numLayers, numKvHeads, hiddenSize, ffnDim, densities,
                allowSparseLayer0, mlp, routerFile, calibration);
    }

    /** A copy with this MLP table, or with a dense MLP when {@code m} is null. */
    public PolarConfig withMlp(Mlp m) {
        return new PolarConfig(modelType, numLayers, numKvHeads, hiddenSize, ffnDim, headDensity,
                allowSparseLayer0, m, routerFile, calibration);
    }

    /** A copy with this calibration record. */
    public PolarConfig withCalibration(ObjectNode c) {
        return new PolarConfig(modelType, numLayers, numKvHeads, hiddenSize, ffnDim, headDensity,
                allowSparseLayer0, mlp, routerFile, c);
    }

    // -----------------------------------------------------------------------------------------
    // Queries
    // -----------------------------------------------------------------------------------------

    /** Head density of one layer. */
    public double density(int layer) {
        return headDensity[layer];
    }

    /**
     * KV groups each token keeps at {@code layer}: max(1, floor(density x G)), as the paper's
     * {@code int(topk * H)} (with a {@value #FLOOR_TOLERANCE} tolerance below an integer, so
     * 0.29 of 100 keeps 29). A density of 1.0 keeps all G.
     */
    public int groupsKept(int layer) {
        int k = (int) Math.floor(headDensity[layer] * numKvHeads + FLOOR_TOLERANCE);
        return Math.max(1, Math.min(numKvHeads, k));
    }

    /** True when {@link #groupsKept} keeps every group at this layer. */
    public boolean denseHeads(int layer) {
        return groupsKept(layer) == numKvHeads;
    }

    /**
     * MLP neurons kept at {@code layer} for a forward of {@code batch} tokens: the k of the
     * smallest batch bucket &gt;= batch, or of the largest bucket when batch is beyond it.
     *
     * @throws IllegalStateException    when there is no MLP table
     * @throws IllegalArgumentException when batch &lt; 1
     */
    public int mlpK(int layer, int batch) {
        if (mlp == null) {
            throw new IllegalStateException("mlpK: this Polar config has no MLP table (mlp: null)");
        }
        if (batch < 1) {
            throw new IllegalArgumentException("mlpK: batch must be >= 1, got " + batch);
        }
        return mlp.k(layer, batch);
    }

    /** The paper's dense fallback: true when keeping k of F neurons means k &gt; 0.8 x F. */
    public static boolean mlpFallsBack(int k, int ffnDim) {
        return 5L * k > 4L * ffnDim;
    }

    @Override
    public double[] headDensity() {
        return headDensity.clone();
    }

    @Override
    public ObjectNode calibration() {
        return calibration.deepCopy();
    }

    // -----------------------------------------------------------------------------------------
    // Against the model
    // -----------------------------------------------------------------------------------------

    /**
     * Checks these settings fit {@code model}: model_type, num_layers, num_kv_heads,
     * hidden_size and ffn_dim must equal the model's, and an MLP table needs a ReLU MLP.
     *
     * @param source names the settings in the error (e.g. the polar.json path)
     * @throws ModelFormatException naming source and key
     */
    public void validate(ModelConfig model, String source) {
        check(source, "model_type", modelType, model.family().modelType());
        check(source, "num_layers", numLayers, model.numLayers());
        check(source, "num_kv_heads", numKvHeads, model.numKvHeads());
        check(source, "hidden_size", hiddenSize, model.hiddenSize());
        check(source, "ffn_dim", ffnDim, model.ffnDim());
        if (mlp != null && !model.reluMlp()) {
            throw new ModelFormatException(source + ": key 'mlp' must be null for this model: "
                    + "MLP neuron sparsity needs a ReLU MLP, the model has "
                    + (model.gatedMlp() ? "a gated (SwiGLU) MLP" : model.activation()
                    + " activation"));
        }
    }

    private static void check(String source, String key, Object mine, Object model) {
        if (!mine.equals(model)) {
            throw new ModelFormatException(source + ": key '" + key + "' is " + mine
                    + " but the model has " + model);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Files
    // -----------------------------------------------------------------------------------------

    /** {@code modelDir/polar/polar.json}. */
    public static Path file(Path modelDir) {
        return modelDir.resolve(DIR).resolve(FILE);
    }

    /** The router weights' path: {@code modelDir/polar/<router_file>}. */
    public Path routerPath(Path modelDir) {
        return modelDir.resolve(DIR).resolve(routerFile);
    }

    /** True when {@code modelDir/polar/polar.json} exists. */
    public static boolean exists(Path modelDir) {
        return Files.isRegularFile(file(modelDir));
    }

    /**
     * Reads {@code modelDir/polar/polar.json}.
     *
     * @throws ModelFormatException naming the file and the key for a missing file, bad JSON, a
     *                              missing, unknown or mistyped key, or a rule broken
     */
    public static PolarConfig load(Path modelDir) {
        Path f = file(modelDir);
        if (!Files.isRegularFile(f)) {
            throw new ModelFormatException(f + ": Polar Sparsity settings not found");
        }
        JsonNode root;
        try {
            root = JSON.readTree(f.toFile());
        } catch (IOException e) {
            throw new ModelFormatException(f + ": not valid JSON: " + e.getMessage(), e);
        }
        return fromJson(root, f.toString());
    }

    /** As {@link #load(Path)}, then {@link #validate} against the model. */
    public static PolarConfig load(Path modelDir, ModelConfig model) {
        PolarConfig c = load(modelDir);
        c.validate(model, file(modelDir).toString());
        return c;
    }

    /**
     * Maps a parsed polar.json.
     *
     * @param source names the document in errors
     * @throws ModelFormatException naming source and key
     */
    public static PolarConfig fromJson(JsonNode root, String source) {
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(source + ": not a JSON object");
        }
        unknownKeys(root, KEYS, "", source);
        String format = text(root, "format", source, true);
        if (!FORMAT.equals(format)) {
            throw new ModelFormatException(source + ": key 'format' must be '" + FORMAT
                    + "', got '" + format + "'");
        }
        String modelType = text(root, "model_type", source, true);
        int layers = integer(root, "num_layers", "num_layers", source);
        int groups = integer(root, "num_kv_heads", "num_kv_heads", source);
        int hidden = integer(root, "hidden_size", "hidden_size", source);
        int ffn = integer(root, "ffn_dim", "ffn_dim", source);
        JsonNode dn = required(root, "head_density", source);
        if (!dn.isArray()) {
            throw type(source, "head_density", "an array of numbers", dn);
        }
        double[] density = new double[dn.size()];
        for (int i = 0; i < density.length; i++) {
            if (!dn.get(i).isNumber()) {
                throw type(source, "head_density[" + i + "]", "a number", dn.get(i));
            }
            density[i] = dn.get(i).doubleValue();
        }
        boolean allow = false;
        JsonNode an = root.get("allow_sparse_layer0");
        if (an != null && !an.isNull()) {
            if (!an.isBoolean()) {
                throw type(source, "allow_sparse_layer0", "true or false", an);
            }
            allow = an.booleanValue();
        }
        Mlp mlp = null;
        JsonNode mn = root.get("mlp");
        if (mn != null && !mn.isNull()) {
            if (!mn.isObject()) {
                throw type(source, "mlp", "an object or null", mn);
            }
            unknownKeys(mn, MLP_KEYS, "mlp.", source);
            int rank = integer(mn, "rank", "mlp.rank", source);
            JsonNode bn = required(mn, "batch_buckets", "mlp.batch_buckets", source);
            int[] buckets = ints(bn, "mlp.batch_buckets", source);
            JsonNode kn = required(mn, "k", "mlp.k", source);
            if (!kn.isArray()) {
                throw type(source, "mlp.k", "an array of arrays of integers", kn);
            }
            int[][] k = new int[kn.size()][];
            for (int l = 0; l < k.length; l++) {
                k[l] = ints(kn.get(l), "mlp.k[" + l + "]", source);
            }
            try {
                mlp = new Mlp(rank, buckets, k);
            } catch (IllegalArgumentException e) {
                throw new ModelFormatException(source + ": " + e.getMessage(), e);
            }
        }
        String routerFile = text(root, "router_file", source, false);
        ObjectNode calibration = null;
        JsonNode cn = root.get("calibration");
        if (cn != null && !cn.isNull()) {
            if (!cn.isObject()) {
                throw type(source, "calibration", "an object", cn);
            }
            calibration = (ObjectNode) cn;
        }
        try {
            return new PolarConfig(modelType, layers, groups, hidden, ffn, density, allow, mlp,
                    routerFile, calibration);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(source + ": " + e.getMessage(), e);
        }
    }

    /** This configuration as a polar.json document (keys in the documented order). */
    public ObjectNode toJson() {
        ObjectNode root = JSON.createObjectNode();
        root.put("format", FORMAT);
        root.put("model_type", modelType);
        root.put("num_layers", numLayers);
        root.put("num_kv_heads", numKvHeads);
        root.put("hidden_size", hiddenSize);
        root.put("ffn_dim", ffnDim);
        ArrayNode d = root.putArray("head_density");
        for (double v : headDensity) {
            d.add(v);
        }
        if (allowSparseLayer0) {
            root.put("allow_sparse_layer0", true);
        }
        if (mlp == null) {
            root.putNull("mlp");
        } else {
            ObjectNode m = root.putObject("mlp");
            m.put("rank", mlp.rank);
            ArrayNode b = m.putArray("batch_buckets");
            for (int v : mlp.batchBuckets) {
                b.add(v);
            }
            ArrayNode k = m.putArray("k");
            for (int[] row : mlp.k) {
                ArrayNode r = k.addArray();
                for (int v : row) {
                    r.add(v);
                }
            }
        }
        root.put("router_file", routerFile);
        root.set("calibration", calibration.deepCopy());
        return root;
    }

    /**
     * Writes {@code modelDir/polar/polar.json} (creating polar/), replacing any file there; the
     * file is written under a temporary name and moved into place.
     *
     * @throws UncheckedIOException when it cannot be written
     */
    public void write(Path modelDir) {
        Path f = file(modelDir);
        Path tmp = null;
        try {
            Files.createDirectories(f.getParent());
            tmp = Files.createTempFile(f.getParent(), "." + FILE, ".tmp");
            Files.writeString(tmp, JSON.writeValueAsString(toJson()) + "\n",
                    StandardCharsets.UTF_8);
            try {
                Files.move(tmp, f, StandardCopyOption.REPLACE_EXISTING,
                        StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, f, StandardCopyOption.REPLACE_EXISTING);
            }
            tmp = null;
        } catch (IOException e) {
            throw new UncheckedIOException(f + ": cannot write: " + e.getMessage(), e);
        } finally {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // best effort
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // JSON helpers
    // -----------------------------------------------------------------------------------------

    private static void unknownKeys(JsonNode n, Set<String> known, String prefix, String source) {
        for (Iterator<Map.Entry<String, JsonNode>> it = n.fields(); it.hasNext(); ) {
            String key = it.next().getKey();
            if (!known.contains(key)) {
                throw new ModelFormatException(source + ": unknown key '" + prefix + key
                        + "' (format " + FORMAT + " has: " + known.stream().sorted().toList()
                        + ")");
            }
        }
    }

    private static JsonNode required(JsonNode n, String key, String source) {
        return required(n, key, key, source);
    }

    private static JsonNode required(JsonNode n, String key, String fullKey, String source) {
        JsonNode v = n.get(key);
        if (v == null || v.isNull()) {
            throw new ModelFormatException(source + ": missing required key '" + fullKey + "'");
        }
        return v;
    }

    private static String text(JsonNode n, String key, String source, boolean required) {
        JsonNode v = n.get(key);
        if (v == null || v.isNull()) {
            if (required) {
                throw new ModelFormatException(source + ": missing required key '" + key + "'");
            }
            return null;
        }
        if (!v.isTextual()) {
            throw type(source, key, "a string", v);
        }
        return v.asText();
    }

    private static int integer(JsonNode n, String key, String fullKey, String source) {
        JsonNode v = required(n, key, fullKey, source);
        if (!v.isIntegralNumber() || !v.canConvertToInt()) {
            throw type(source, fullKey, "an integer", v);
        }
        return v.intValue();
    }

    private static int[] ints(JsonNode n, String key, String source) {
        if (n == null || !n.isArray()) {
            throw type(source, key, "an array of integers", n);
        }
        int[] out = new int[n.size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode e = n.get(i);
            if (!e.isIntegralNumber() || !e.canConvertToInt()) {
                throw type(source, key + "[" + i + "]", "an integer", e);
            }
            out[i] = e.intValue();
        }
        return out;
    }

    private static ModelFormatException type(String source, String key, String expected,
                                             JsonNode got) {
        return new ModelFormatException(source + ": key '" + key + "' must be " + expected
                + ", got " + got);
    }

    // -----------------------------------------------------------------------------------------
    // Value semantics over the arrays
    // -----------------------------------------------------------------------------------------

    @Override
    public boolean equals(Object o) {
        return o instanceof PolarConfig c && modelType.equals(c.modelType)
                && numLayers == c.numLayers && numKvHeads == c.numKvHeads
                && hiddenSize == c.hiddenSize && ffnDim == c.ffnDim
                && Arrays.equals(headDensity, c.headDensity)
                && allowSparseLayer0 == c.allowSparseLayer0 && Objects.equals(mlp, c.mlp)
                && routerFile.equals(c.routerFile) && calibration.equals(c.calibration);
    }

    @Override
    public int hashCode() {
        return Objects.hash(modelType, numLayers, numKvHeads, hiddenSize, ffnDim,
                Arrays.hashCode(headDensity), allowSparseLayer0, mlp, routerFile, calibration);
    }

    @Override
    public String toString() {
        return "PolarConfig[modelType=" + modelType + ", numLayers=" + numLayers
                + ", numKvHeads=" + numKvHeads + ", hiddenSize=" + hiddenSize + ", ffnDim="
                + ffnDim + ", headDensity=" + Arrays.toString(headDensity)
                + ", allowSparseLayer0=" + allowSparseLayer0 + ", mlp=" + mlp + ", routerFile="
                + routerFile + ", calibration=" + calibration + "]";
    }
}
