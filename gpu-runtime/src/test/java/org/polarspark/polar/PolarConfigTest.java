package org.polarspark.polar;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.ModelFormatException;

class PolarConfigTest {
    @TempDir
    Path tmp;

    /** L = 3, G = 8, H = 16, F = 32, with an MLP table and a calibration record. */
    static PolarConfig sample() {
        ObjectNode cal = PolarTestModels.JSON.createObjectNode();
        cal.put("corpus", "datasets/train.txt");
        cal.put("tokens", 400000);
        cal.put("date", "2025-01-01");
        cal.putArray("recall").add(0.99).add(0.975);
        PolarConfig.Mlp mlp = new PolarConfig.Mlp(4, new int[] {1, 8, 16},
                new int[][] {{2, 4, 8}, {3, 5, 9}, {4, 6, 32}});
        return new PolarConfig("opt", 3, 8, 16, 32, new double[] {1.0, 0.5, 0.625}, false, mlp,
                "routers.safetensors", cal);
    }

    @Test
    void roundTripWithMlpAndCalibration() {
        PolarConfig c = sample();
        c.write(tmp);
        assertTrue(Files.isRegularFile(tmp.resolve("polar/polar.json")));
        PolarConfig back = PolarConfig.load(tmp);
        assertEquals(c, back);
        assertEquals(c.hashCode(), back.hashCode());
        assertArrayEquals(new double[] {1.0, 0.5, 0.625}, back.headDensity());
        assertEquals(400000, back.calibration().get("tokens").intValue());
        assertArrayEquals(new int[] {3, 5, 9}, back.mlp().k()[1]);
    }

    @Test
    void roundTripHeadsOnlySparseLayer0AndOtherRouterFile() {
        PolarConfig c = new PolarConfig("llama", 2, 2, 64, 192, new double[] {0.5, 0.3}, true,
                null, "other.safetensors", null);
        c.write(tmp);
        PolarConfig back = PolarConfig.load(tmp);
        assertEquals(c, back);
        assertNull(back.mlp());
        assertTrue(back.allowSparseLayer0());
        assertEquals(tmp.resolve("polar/other.safetensors"), back.routerPath(tmp));
        // Overwriting replaces the file.
        sample().write(tmp);
        assertEquals(sample(), PolarConfig.load(tmp));
    }

    @Test
    void equalityComparesContents() {
        assertEquals(sample(), sample());
        assertNotEquals(sample(), sample().withDensity(0.4));
        assertNotEquals(sample(), sample().withMlp(null));
        assertNotEquals(sample(), sample().withCalibration(null));
    }

    @Test
    void defaultsForOptionalKeys() throws IOException {
        Files.createDirectories(tmp.resolve("polar"));
        Files.writeString(tmp.resolve("polar/polar.json"), "{\"format\": \"polar-sparsity/1\", "
                + "\"model_type\": \"opt\", \"num_layers\": 2, \"num_kv_heads\": 4, "
                + "\"hidden_size\": 64, \"ffn_dim\": 256, \"head_density\": [1, 0.5]}");
        PolarConfig c = PolarConfig.load(tmp);
        assertNull(c.mlp());
        assertFalse(c.allowSparseLayer0());
        assertEquals("routers.safetensors", c.routerFile());
        assertEquals(0, c.calibration().size());
    }

    /** (key the error must name, mutation of a valid document). */
    static Stream<Arguments> badDocuments() {
        return Stream.of(
                bad("format", r -> r.remove("format")),
                bad("format", r -> r.put("format", "polar-sparsity/2")),
                bad("model_type", r -> r.remove("model_type")),
                bad("model_type", r -> r.put("model_type", "gpt2")),
                bad("num_layers", r -> r.put("num_layers", 0)),
                bad("num_layers", r -> r.put("num_layers", "3")),
                bad("num_kv_heads", r -> r.put("num_kv_heads", -1)),
                bad("num_kv_heads", r -> r.remove("num_kv_heads")),
                bad("hidden_size", r -> r.put("hidden_size", 0)),
                bad("ffn_dim", r -> r.put("ffn_dim", 1.5)),
                bad("head_density", r -> r.remove("head_density")),
                bad("head_density", r -> ((ArrayNode) r.get("head_density")).remove(2)),
                bad("head_density", r -> r.put("head_density", 0.5)),
                bad("head_density[1]", r -> ((ArrayNode) r.get("head_density")).set(1, 0.0)),
                bad("head_density[2]", r -> ((ArrayNode) r.get("head_density")).set(2, 1.5)),
                bad("head_density[1]", r -> ((ArrayNode) r.get("head_density")).set(1, "half")),
                bad("head_density[0]", r -> ((ArrayNode) r.get("head_density")).set(0, 0.5)),
                bad("allow_sparse_layer0", r -> r.put("allow_sparse_layer0", "yes")),
                bad("mlp", r -> r.put("mlp", 3)),
                bad("mlp", r -> r.put("model_type", "llama")),
                bad("mlp.rank", r -> mlp(r).put("rank", 0)),
                bad("mlp.rank", r -> mlp(r).remove("rank")),
                bad("mlp.batch_buckets", r -> mlp(r).putArray("batch_buckets")),
                bad("mlp.batch_buckets[2]", r -> mlp(r).putArray("batch_buckets").add(1).add(16)
                        .add(8)),
                bad("mlp.batch_buckets[0]", r -> mlp(r).putArray("batch_buckets").add(0).add(8)
                        .add(16)),
                bad("mlp.k", r -> ((ArrayNode) mlp(r).get("k")).remove(0)),
                bad("mlp.k[1]", r -> ((ArrayNode) mlp(r).get("k").get(1)).remove(0)),
                bad("mlp.k[2][1]", r -> ((ArrayNode) mlp(r).get("k").get(2)).set(1, 0)),
                bad("mlp.k[0][2]", r -> ((ArrayNode) mlp(r).get("k").get(0)).set(2, 33)),
                bad("mlp.k[0][0]", r -> ((ArrayNode) mlp(r).get("k").get(0)).set(0, "2")),
                bad("mlp.topk", r -> mlp(r).put("topk", 3)),
                bad("head_densities", r -> r.put("head_densities", 1)),
                bad("router_file", r -> r.put("router_file", "../weights.safetensors")),
                bad("router_file", r -> r.put("router_file", "")),
                bad("router_file", r -> r.put("router_file", 7)),
                bad("calibration", r -> r.put("calibration", 5)));
    }

    private static Arguments bad(String key, Consumer<ObjectNode> mutation) {
        return Arguments.of(key, mutation);
    }

    private static ObjectNode mlp(ObjectNode root) {
        return (ObjectNode) root.get("mlp");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badDocuments")
    void eachValidationErrorNamesFileAndKey(String key, Consumer<ObjectNode> mutation)
            throws IOException {
        ObjectNode doc = sample().toJson();
        mutation.accept(doc);
        Path f = tmp.resolve("polar/polar.json");
        Files.createDirectories(f.getParent());
        Files.writeString(f, doc.toString());
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> PolarConfig.load(tmp));
        assertTrue(e.getMessage().contains("'" + key + "'"), e.getMessage());
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
    }

    @Test
    void missingFileAndBadJsonNameTheFile() throws IOException {
        Path f = tmp.resolve("polar/polar.json");
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> PolarConfig.load(tmp));
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
        Files.createDirectories(f.getParent());
        Files.writeString(f, "{\"format\": ");
        e = assertThrows(ModelFormatException.class, () -> PolarConfig.load(tmp));
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
    }

    @Test
    void constructorErrorsNameTheKey() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new PolarConfig("opt", 2, 4, 8, 8, new double[] {1, Double.NaN}, false,
                        null, null, null));
        assertTrue(e.getMessage().contains("'head_density[1]'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> new PolarConfig.Mlp(2, new int[] {1, 1}, new int[][] {{1, 1}}));
        assertTrue(e.getMessage().contains("'mlp.batch_buckets[1]'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> sample().withDensity(0));
        assertTrue(e.getMessage().contains("'head_density[1]'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> sample().withDensity(1.01));
        assertTrue(e.getMessage().contains("'head_density[1]'"), e.getMessage());
    }

    @Test
    void arraysAreCopiedInAndOut() {
        double[] d = {1.0, 0.5, 0.5};
        int[][] k = {{1}, {2}, {3}};
        PolarConfig c = new PolarConfig("opt", 3, 4, 8, 8, d, false,
                new PolarConfig.Mlp(2, new int[] {4}, k), null, null);
        d[1] = 0.25;
        k[1][0] = 7;
        c.headDensity()[2] = 0.25;
        c.mlp().k()[2][0] = 7;
        assertEquals(0.5, c.density(1));
        assertEquals(0.5, c.density(2));
        assertEquals(2, c.mlpK(1, 1));
        assertEquals(3, c.mlpK(2, 1));
    }

    // ------------------------------------------------------------------------------------
    // Against a ModelConfig
    // ------------------------------------------------------------------------------------

    @Test
    void validatesAgainstTheModel() throws IOException {
        ModelConfig opt = PolarTestModels.opt(2, 64, 4, 256, "relu");
        PolarConfig ok = PolarConfig.uniform(opt, 0.5,
                PolarConfig.Mlp.uniform(8, 2, 256, 0.25));
        ok.validate(opt, "x"); // no exception
        ok.write(tmp);
        assertEquals(ok, PolarConfig.load(tmp, opt));

        List<String[]> cases = List.of(
                new String[] {"num_layers", "opt:3:4:64:256"},
                new String[] {"num_kv_heads", "opt:2:8:64:256"},
                new String[] {"hidden_size", "opt:2:4:32:256"},
                new String[] {"ffn_dim", "opt:2:4:64:128"},
                new String[] {"model_type", "llama:2:4:64:256"});
        for (String[] c : cases) {
            String[] p = c[1].split(":");
            int layers = Integer.parseInt(p[1]);
            double[] d = new double[layers];
            java.util.Arrays.fill(d, 1.0);
            PolarConfig pc = new PolarConfig(p[0], layers, Integer.parseInt(p[2]),
                    Integer.parseInt(p[3]), Integer.parseInt(p[4]), d, false, null, null, null);
            ModelFormatException e = assertThrows(ModelFormatException.class,
                    () -> pc.validate(opt, "my/polar.json"));
            assertTrue(e.getMessage().startsWith("my/polar.json: "), e.getMessage());
            assertTrue(e.getMessage().contains("'" + c[0] + "'"), e.getMessage());
        }
        // An MLP table needs a ReLU MLP.
        ModelConfig gelu = PolarTestModels.opt(2, 64, 4, 256, "gelu");
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> ok.validate(gelu, "my/polar.json"));
        assertTrue(e.getMessage().contains("'mlp'"), e.getMessage());
        ok.withMlp(null).validate(gelu, "x");
        // load(dir, model) names the file.
        PolarConfig.uniform(opt, 0.5).withDensity(0.5).write(tmp);
        ModelConfig other = PolarTestModels.opt(3, 64, 4, 256, "relu");
        e = assertThrows(ModelFormatException.class, () -> PolarConfig.load(tmp, other));
        assertTrue(e.getMessage().contains(tmp.resolve("polar/polar.json").toString()),
                e.getMessage());
        assertTrue(e.getMessage().contains("'num_layers'"), e.getMessage());
    }

    @Test
    void gqaModelsSelectKvGroups() {
        ModelConfig gqa = PolarTestModels.llama(3, 64, 8, 2, 192);
        PolarConfig c = PolarConfig.uniform(gqa, 0.5);
        assertEquals(2, c.numKvHeads());
        assertEquals(1, c.groupsKept(1));
        c.validate(gqa, "x");
    }

    // ------------------------------------------------------------------------------------
    // Arithmetic
    // ------------------------------------------------------------------------------------

    private static PolarConfig heads(int groups, double density) {
        return new PolarConfig("opt", 2, groups, 8, 8, new double[] {1.0, density}, false, null,
                null, null);
    }

    @Test
    void groupsKeptIsTheFloorOfDensityTimesGroups() {
        assertEquals(21, heads(72, 0.3).groupsKept(1));  // OPT-66B at 0.3: 21.6 -> 21
        assertEquals(28, heads(56, 0.5).groupsKept(1));
        assertEquals(5, heads(8, 0.625).groupsKept(1));  // LLaMA-3.1 5 of 8 groups
        assertEquals(2, heads(4, 0.5).groupsKept(1));
        assertEquals(2, heads(4, 0.74).groupsKept(1));   // 2.96 -> 2, not rounded
        assertEquals(3, heads(4, 0.75).groupsKept(1));
        assertEquals(29, heads(100, 0.29).groupsKept(1)); // exact count despite 28.999999...
        assertEquals(1, heads(8, 0.01).groupsKept(1));   // never fewer than one
        assertEquals(31, heads(32, 0.999).groupsKept(1));
        assertFalse(heads(32, 0.999).denseHeads(1));
        assertEquals(32, heads(32, 1.0).groupsKept(1));
        assertTrue(heads(32, 1.0).denseHeads(1));
        assertEquals(32, heads(32, 0.3).groupsKept(0));  // layer 0 dense
        assertTrue(heads(32, 0.3).denseHeads(0));
    }

    @Test
    void withDensitySetsEveryLayerButZero() {
        PolarConfig c = sample().withDensity(0.25);
        assertArrayEquals(new double[] {1.0, 0.25, 0.25}, c.headDensity());
        assertEquals(8, c.groupsKept(0));
        assertEquals(2, c.groupsKept(1));
        assertEquals(sample().mlp(), c.mlp());
        assertEquals(sample().calibration(), c.calibration());
        PolarConfig sparse0 = new PolarConfig("opt", 2, 4, 8, 8, new double[] {0.5, 0.5}, true,
                null, null, null);
        assertArrayEquals(new double[] {0.5, 0.75}, sparse0.withDensity(0.75).headDensity());
        assertEquals(2, sparse0.groupsKept(0));
    }

    @Test
    void mlpKUsesTheSmallestBucketAtLeastTheBatch() {
        PolarConfig c = sample(); // buckets {1, 8, 16}; layer 1: {3, 5, 9}
        assertEquals(3, c.mlpK(1, 1));
        assertEquals(5, c.mlpK(1, 2));
        assertEquals(5, c.mlpK(1, 8));
        assertEquals(9, c.mlpK(1, 9));
        assertEquals(9, c.mlpK(1, 16));
        assertEquals(9, c.mlpK(1, 17));   // beyond the last bucket: the last bucket's k
        assertEquals(9, c.mlpK(1, 4096));
        assertEquals(32, c.mlpK(2, 100));
        assertEquals(2, c.mlpK(0, 1));
        assertThrows(IllegalArgumentException.class, () -> c.mlpK(1, 0));
        assertThrows(IllegalStateException.class, () -> c.withMlp(null).mlpK(1, 1));
    }

    @Test
    void denseFallbackIsStrictlyAboveEightyPercent() {
        assertFalse(PolarConfig.mlpFallsBack(4, 5));
        assertTrue(PolarConfig.mlpFallsBack(5, 5));
        assertFalse(PolarConfig.mlpFallsBack(80, 100));
        assertTrue(PolarConfig.mlpFallsBack(81, 100));
        assertFalse(PolarConfig.mlpFallsBack(13107, 16384)); // 0.79998
        assertTrue(PolarConfig.mlpFallsBack(13108, 16384));
    }

    @Test
    void uniformMlpTable() {
        PolarConfig.Mlp m = PolarConfig.Mlp.uniform(16, 3, 256, 0.62);
        assertEquals(3, m.k().length);
        assertEquals(158, m.k()[2][4]); // floor(0.62 * 256) = floor(158.72)
        assertArrayEquals(PolarConfig.Mlp.DEFAULT_BUCKETS, m.batchBuckets());
    }
}
