package org.polarspark.testutil;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.polarspark.model.SafetensorsFile;
import org.polarspark.model.TensorInfo;

/**
 * Golden outputs of Hugging Face transformers, written by datasets/tools/golden.py (see its
 * docstring for the format): token ids, greedy continuations and logits at listed positions.
 */
public record Golden(String name, Path dir, Path modelDir, String dtypeOnDisk, List<Case> cases) {

    /** One prompt: logits[i] are the logits at sequence position positions[i]. */
    public record Case(String text, int[] inputIds, int[] greedyIds, int[] positions,
                       float[][] logits) {
        /** Logits at a position of input_ids + greedy_ids, or null if not stored. */
        public float[] logitsAt(int position) {
            for (int i = 0; i < positions.length; i++) {
                if (positions[i] == position) {
                    return logits[i];
                }
            }
            return null;
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    /** The repository root (the folder holding datasets/), found from the working directory. */
    public static Path repoRoot() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null && !Files.isDirectory(p.resolve("datasets"))) {
            p = p.getParent();
        }
        if (p == null) {
            throw new IllegalStateException("no datasets/ folder above " + Path.of("")
                    .toAbsolutePath());
        }
        return p;
    }

    /** Test resource folder {@code golden/}. */
    public static Path goldenRoot() {
        URL url = Golden.class.getResource("/golden");
        if (url == null) { // the GPU bundle leaves them out: they travel in the source tree
            Path src = repoRoot().resolve("gpu-runtime/src/test/resources/golden");
            if (Files.isDirectory(src)) {
                return src;
            }
            throw new IllegalStateException("test resource folder golden/ not on the classpath");
        }
        try {
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Names of every golden set present. */
    public static Stream<String> names() {
        try (Stream<Path> s = Files.list(goldenRoot())) {
            return s.filter(d -> Files.isRegularFile(d.resolve("golden.json")))
                    .map(d -> d.getFileName().toString()).sorted().toList().stream();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static Golden load(String name) {
        Path dir = goldenRoot().resolve(name);
        try {
            JsonNode root = JSON.readTree(dir.resolve("golden.json").toFile());
            String ref = root.get("model_dir").asText();
            Path modelDir = ".".equals(ref) ? dir : repoRoot().resolve(ref);
            SafetensorsFile logits = SafetensorsFile.open(dir.resolve("golden_logits.safetensors"));
            List<Case> cases = new ArrayList<>();
            for (JsonNode c : root.get("cases")) {
                TensorInfo t = logits.tensors().get(c.get("name").asText());
                int rows = (int) t.shape()[0];
                int vocab = (int) t.shape()[1];
                ByteBuffer b = SafetensorsFile.map(t);
                float[][] l = new float[rows][vocab];
                for (int r = 0; r < rows; r++) {
                    for (int v = 0; v < vocab; v++) {
                        l[r][v] = b.getFloat((r * vocab + v) * 4);
                    }
                }
                cases.add(new Case(c.get("text").asText(), ints(c.get("input_ids")),
                        ints(c.get("greedy_ids")), ints(c.get("positions")), l));
            }
            return new Golden(name, dir, modelDir, root.get("dtype_on_disk").asText(), cases);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static int[] ints(JsonNode a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.get(i).intValue();
        }
        return out;
    }
}
