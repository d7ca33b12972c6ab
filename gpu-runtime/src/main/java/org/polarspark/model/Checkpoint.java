package org.polarspark.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A Hugging Face checkpoint directory: {@code config.json} plus weights in safetensors, either one
 * {@code model.safetensors} or shards listed by {@code model.safetensors.index.json}.
 *
 * <p>Opening validates everything cheaply: every header is parsed, every tensor the config
 * implies ({@link WeightLayout#expected}) must be present with exactly that shape and a supported
 * dtype. Data is memory-mapped and converted only when a tensor is read.
 */
public final class Checkpoint {
    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path dir;
    private final ModelConfig config;
    private final Map<String, TensorInfo> tensors;

    private Checkpoint(Path dir, ModelConfig config, Map<String, TensorInfo> tensors) {
        this.dir = dir;
        this.config = config;
        this.tensors = tensors;
    }

    /** Opens and validates a checkpoint directory. */
    public static Checkpoint open(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new ModelFormatException(dir + ": model directory not found");
        }
        ModelConfig config = ModelConfig.load(dir);
        Map<String, TensorInfo> tensors = readTensors(dir);
        Checkpoint ckpt = new Checkpoint(dir, config, tensors);
        for (TensorSpec spec : WeightLayout.expected(config)) {
            TensorInfo t = ckpt.find(spec.name());
            if (t == null) {
                if (spec.required()) {
                    throw new ModelFormatException(dir + ": missing tensor '" + spec.name()
                            + "' (expected shape " + spec.shapeString() + ")");
                }
                continue;
            }
            if (!Arrays.equals(t.shape(), spec.shape())) {
                throw new ModelFormatException(t.file() + ": tensor '" + spec.name()
                        + "' has shape " + t.shapeString() + " but the config implies "
                        + spec.shapeString());
            }
            if (DType.fromSafetensors(t.dtype()) == null) {
                throw new ModelFormatException(t.file() + ": tensor '" + spec.name()
                        + "' has unsupported dtype " + t.dtype() + " (supported: F32, F16, BF16)");
            }
        }
        return ckpt;
    }

    private static Map<String, TensorInfo> readTensors(Path dir) {
        Path index = dir.resolve(INDEX_FILE);
        Path single = dir.resolve(SINGLE_FILE);
        Map<String, TensorInfo> out = new LinkedHashMap<>();
        if (Files.isRegularFile(index)) {
            JsonNode root;
            try {
                root = JSON.readTree(index.toFile());
            } catch (IOException e) {
                throw new ModelFormatException(index + ": not valid JSON: " + e.getMessage(), e);
            }
            JsonNode map = root == null ? null : root.get("weight_map");
            if (map == null || !map.isObject()) {
                throw new ModelFormatException(index + ": missing key 'weight_map'");
            }
            Map<String, SafetensorsFile> shards = new HashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                String shardName = e.getValue().asText();
                Path shardPath = dir.resolve(shardName).normalize();
                if (!shardPath.startsWith(dir.normalize())) {
                    throw new ModelFormatException(index + ": shard '" + shardName
                            + "' for tensor '" + e.getKey() + "' lies outside the model directory");
                }
                if (!Files.isRegularFile(shardPath)) {
                    throw new ModelFormatException(index + ": shard file '" + shardName
                            + "' for tensor '" + e.getKey() + "' not found");
                }
                SafetensorsFile shard = shards.computeIfAbsent(shardName,
                        n -> SafetensorsFile.open(shardPath));
                TensorInfo t = shard.tensors().get(e.getKey());
                if (t == null) {
                    throw new ModelFormatException(shardPath + ": missing tensor '" + e.getKey()
                            + "' (listed in " + INDEX_FILE + ")");
                }
                out.put(e.getKey(), t);
            }
        } else if (Files.isRegularFile(single)) {
            out.putAll(SafetensorsFile.open(single).tensors());
        } else {
            throw new ModelFormatException(dir + ": no " + SINGLE_FILE + " or " + INDEX_FILE
                    + " (only safetensors checkpoints are supported)");
        }
        return Collections.unmodifiableMap(out);
    }

    public Path dir() {
        return dir;
    }

    public ModelConfig config() {
        return config;
    }

    /** All tensor entries by name. */
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    /**
     * Finds a tensor by its Hugging Face name; also accepts checkpoints saved from the bare
     * decoder (names without the leading {@code model.}).
     */
    public TensorInfo find(String name) {
        TensorInfo t = tensors.get(name);
        if (t == null && name.startsWith("model.")) {
            t = tensors.get(name.substring("model.".length()));
        }
        return t;
    }

    public boolean has(String name) {
        return find(name) != null;
    }

    /** Bytes the checkpoint's tensors take as bf16 (a device-memory estimate). */
    public static long parameterBytesBf16(Checkpoint c) {
        long n = 0;
        for (TensorInfo t : c.tensors().values()) {
            n += t.numel();
        }
        return 2 * n;
    }

    /** Reads a tensor as float32, checking it has exactly {@code shape}. */
    public float[] floats(String name, long... shape) {
        TensorInfo t = find(name);
        if (t == null) {
            throw new ModelFormatException(dir + ": missing tensor '" + name + "'");
        }
        if (!Arrays.equals(t.shape(), shape)) {
            throw new ModelFormatException(t.file() + ": tensor '" + name + "' has shape "
                    + t.shapeString() + " but " + Arrays.toString(shape) + " is needed");
        }
        DType dt = DType.fromSafetensors(t.dtype());
        if (dt == null) {
            throw new ModelFormatException(t.file() + ": tensor '" + name
                    + "' has unsupported dtype " + t.dtype() + " (supported: F32, F16, BF16)");
        }
        long n = t.numel();
        if (n > Integer.MAX_VALUE - 8) {
            throw new ModelFormatException(t.file() + ": tensor '" + name + "' has " + n
                    + " elements, too many for the CPU backend");
        }
        ByteBuffer b = SafetensorsFile.map(t);
        float[] out = new float[(int) n];
        if (dt == DType.F32) {
            b.asFloatBuffer().get(out);
        } else {
            for (int i = 0; i < out.length; i++) {
                out[i] = dt.get(b, i);
            }
        }
        return out;
    }
}
