package org.polarspark.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.polarspark.testutil.Golden;

/**
 * Corrupted copies of the golden checkpoints: every failure is a {@link ModelFormatException}
 * that names the file and the tensor (or header problem); the intact checkpoints open and decode
 * exactly as an independent reader decodes their bytes.
 */
class CheckpointErrorTest {
    @TempDir
    Path tmp;

    private static final String SINGLE = "model.safetensors";
    private static final String INDEX = "model.safetensors.index.json";
    private static final String[] SHARDS = {"model-00001-of-00004.safetensors",
        "model-00002-of-00004.safetensors", "model-00003-of-00004.safetensors",
        "model-00004-of-00004.safetensors"};

    private Path copy(String name) {
        return StTestIO.copyGolden(name, tmp);
    }

    /** Checkpoint.open fails; the message contains every fragment. */
    private static ModelFormatException openFails(Path dir, String... fragments) {
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> Checkpoint.open(dir));
        assertContains(e.getMessage(), fragments);
        return e;
    }

    private static void assertContains(String m, String... fragments) {
        for (String f : fragments) {
            assertTrue(m.contains(f), "message should contain '" + f + "': " + m);
        }
    }

    private static void truncate(Path file, long size) throws IOException {
        byte[] all = Files.readAllBytes(file);
        Files.write(file, Arrays.copyOf(all, (int) size));
    }

    // -----------------------------------------------------------------------------------------
    // Truncated files
    // -----------------------------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(strings = {"opt", "opt-postln", "llama3-gqa"})
    void truncatedInTheData(String name) throws IOException {
        Path dir = copy(name);
        Path file = dir.resolve(SINGLE);
        StTestIO.Raw raw = StTestIO.readRaw(file);
        long dataLen = raw.data().length;
        long cut = dataLen / 2 + 3; // odd: mid-element
        // Expected: the first tensor (in header order) whose data ends past the cut.
        String victim = null;
        long victimEnd = 0;
        for (Iterator<Map.Entry<String, JsonNode>> it = raw.header().fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (e.getKey().equals("__metadata__")) {
                continue;
            }
            long end = e.getValue().get("data_offsets").get(1).longValue();
            if (end > cut) {
                victim = e.getKey();
                victimEnd = end;
                break;
            }
        }
        assertNotNull(victim);
        truncate(file, 8 + raw.headerLen() + cut);
        openFails(dir, file.toString(), "'" + victim + "'", "truncated",
                String.valueOf(victimEnd), String.valueOf(cut));
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> SafetensorsFile.open(file));
        assertContains(e.getMessage(), file.toString(), "'" + victim + "'");
    }

    @Test
    void truncatedLastByteOfTheData() throws IOException {
        Path dir = copy("llama3-gqa");
        Path file = dir.resolve(SINGLE);
        StTestIO.Raw raw = StTestIO.readRaw(file);
        // The tensor whose data ends last.
        String last = null;
        long lastEnd = -1;
        for (Iterator<Map.Entry<String, JsonNode>> it = raw.header().fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getKey().equals("__metadata__")
                    && e.getValue().get("data_offsets").get(1).longValue() > lastEnd) {
                last = e.getKey();
                lastEnd = e.getValue().get("data_offsets").get(1).longValue();
            }
        }
        assertEquals(raw.data().length, lastEnd);
        truncate(file, Files.size(file) - 1);
        openFails(dir, file.toString(), "'" + last + "'", "truncated");
    }

    @Test
    void truncatedInsideTheHeader() throws IOException {
        Path dir = copy("opt");
        Path file = dir.resolve(SINGLE);
        long headerLen = StTestIO.readRaw(file).headerLen();
        truncate(file, 8 + headerLen / 2);
        openFails(dir, file.toString(), "truncated", String.valueOf(headerLen),
                String.valueOf(8 + headerLen / 2));
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 7})
    void fileUnderEightBytes(int size) throws IOException {
        Path dir = copy("opt");
        Path file = dir.resolve(SINGLE);
        truncate(file, size);
        openFails(dir, file.toString(), "truncated", size + " bytes");
    }

    @Test
    void truncatedShardOfShardedCheckpoint() throws IOException {
        Path dir = copy("llama2");
        Path shard = dir.resolve(SHARDS[2]);
        truncate(shard, Files.size(shard) - 100);
        openFails(dir, shard.toString(), "truncated");
    }

    // -----------------------------------------------------------------------------------------
    // Bad headers
    // -----------------------------------------------------------------------------------------

    @Test
    void headerLengthBeyondTheFile() throws IOException {
        Path dir = copy("opt-postln");
        Path file = dir.resolve(SINGLE);
        long size = Files.size(file);
        byte[] all = Files.readAllBytes(file);
        ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN).putLong(0, size);
        Files.write(file, all);
        openFails(dir, file.toString(), String.valueOf(size));
    }

    @ParameterizedTest
    @ValueSource(longs = {0L, -8L, 1L << 40, Long.MAX_VALUE})
    void implausibleHeaderLength(long len) throws IOException {
        Path dir = copy("opt");
        Path file = dir.resolve(SINGLE);
        byte[] all = Files.readAllBytes(file);
        ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN).putLong(0, len);
        Files.write(file, all);
        openFails(dir, file.toString(), "header", String.valueOf(len));
    }

    @Test
    void headerNotJson() throws IOException {
        Path dir = copy("llama3-gqa");
        Path file = dir.resolve(SINGLE);
        StTestIO.Raw raw = StTestIO.readRaw(file);
        byte[] junk = new byte[(int) raw.headerLen()];
        Arrays.fill(junk, (byte) ' ');
        byte[] text = "this is {not JSON".getBytes(StandardCharsets.UTF_8);
        System.arraycopy(text, 0, junk, 0, text.length);
        StTestIO.writeRaw(file, junk.length, junk, raw.data());
        openFails(dir, file.toString(), "not JSON");
    }

    @Test
    void headerNotAnObject() throws IOException {
        Path dir = copy("llama3-gqa");
        Path file = dir.resolve(SINGLE);
        StTestIO.writeRaw(file, StTestIO.JSON.createArrayNode().add(1), new byte[16]);
        openFails(dir, file.toString(), "header");
    }

    @ParameterizedTest
    @ValueSource(strings = {"data_offsets", "dtype", "shape"})
    void entryMissingAField(String field) throws IOException {
        Path dir = copy("opt");
        Path file = dir.resolve(SINGLE);
        StTestIO.Raw raw = StTestIO.readRaw(file);
        String victim = "model.decoder.layers.1.fc1.weight";
        ((ObjectNode) raw.header().get(victim)).remove(field);
        StTestIO.writeRaw(file, raw.header(), raw.data());
        openFails(dir, file.toString(), "'" + victim + "'");
    }

    @Test
    void badDataOffsets() throws IOException {
        Path dir = copy("opt");
        Path file = dir.resolve(SINGLE);
        StTestIO.Raw raw = StTestIO.readRaw(file);
        String victim = "model.decoder.layers.0.fc2.bias";
        ObjectNode entry = (ObjectNode) raw.header().get(victim);
        long b = entry.get("data_offsets").get(0).longValue();
        entry.putArray("data_offsets").add(b + 10).add(b); // end before begin
        StTestIO.writeRaw(file, raw.header(), raw.data());
        openFails(dir, file.toString(), "'" + victim + "'", "data_offsets");
    }

    /**
     * Shapes are lists of non-negative integers (safetensors' usize). A fractional entry is a
     * corrupt header, not a dimension to round down.
     */
    @Test
    void nonIntegerShapeEntry() throws IOException {
        Path dir = copy("opt");
        Path file = dir.resolve(SINGLE);
        StTestIO.Raw raw = StTestIO.readRaw(file);
        String victim = "model.decoder.layers.0.fc2.bias"; // [64] F16: 128 bytes
        ((ObjectNode) raw.header().get(victim)).putArray("shape").add(64.5);
        StTestIO.writeRaw(file, raw.header(), raw.data());
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> SafetensorsFile.open(file));
        assertContains(e.getMessage(), file.toString(), "'" + victim + "'", "shape", "64.5");
    }

    @Test
    void negativeShapeEntry() throws IOException {
        Path dir = copy("opt");
        Path file = dir.resolve(SINGLE);
        StTestIO.Raw raw = StTestIO.readRaw(file);
        String victim = "model.decoder.layers.0.fc2.bias";
        ((ObjectNode) raw.header().get(victim)).putArray("shape").add(-64);
        StTestIO.writeRaw(file, raw.header(), raw.data());
        openFails(dir, file.toString(), "'" + victim + "'", "shape", "-64");
    }

    // -----------------------------------------------------------------------------------------
    // Tensors that do not match the config
    // -----------------------------------------------------------------------------------------

    @Test
    void wrongShapeSameBytes() {
        Path dir = copy("opt");
        Path file = dir.resolve(SINGLE);
        LinkedHashMap<String, StTestIO.Entry> t = StTestIO.read(file);
        String victim = "model.decoder.layers.1.fc1.weight";
        assertArrayEquals(new long[] {256, 64}, t.get(victim).shape());
        t.put(victim, t.get(victim).withShape(64, 256)); // transposed: same numel
        StTestIO.write(file, t.values());
        openFails(dir, file.toString(), "'" + victim + "'", "[64, 256]", "[256, 64]");
    }

    @Test
    void wrongShapeInGqaProjection() {
        Path dir = copy("llama3-gqa");
        Path file = dir.resolve(SINGLE);
        LinkedHashMap<String, StTestIO.Entry> t = StTestIO.read(file);
        String victim = "model.layers.2.self_attn.k_proj.weight";
        // k_proj is [kvHeads * headDim, hidden] = [32, 64]; as if every query head had K/V
        assertArrayEquals(new long[] {32, 64}, t.get(victim).shape());
        StTestIO.Entry e = t.get(victim);
        byte[] twice = Arrays.copyOf(e.data(), e.data().length * 4);
        t.put(victim, new StTestIO.Entry(victim, e.dtype(), new long[] {128, 64}, twice));
        StTestIO.write(file, t.values());
        openFails(dir, file.toString(), "'" + victim + "'", "[128, 64]", "[32, 64]");
    }

    @Test
    void wrongShapeInAShard() throws IOException {
        Path dir = copy("llama2");
        Path shard = dir.resolve(SHARDS[1]);
        LinkedHashMap<String, StTestIO.Entry> t = StTestIO.read(shard);
        String victim = "model.layers.0.mlp.up_proj.bias";
        assertArrayEquals(new long[] {160}, t.get(victim).shape());
        t.put(victim, t.get(victim).withShape(10, 16));
        StTestIO.write(shard, t.values());
        openFails(dir, shard.toString(), "'" + victim + "'", "[10, 16]", "[160]");
    }

    @Test
    void renamedTensorIsMissing() {
        Path dir = copy("opt-postln");
        Path file = dir.resolve(SINGLE);
        LinkedHashMap<String, StTestIO.Entry> t = StTestIO.read(file);
        String victim = "model.decoder.project_out.weight";
        LinkedHashMap<String, StTestIO.Entry> renamed = new LinkedHashMap<>();
        for (StTestIO.Entry e : t.values()) {
            String n = e.name().equals(victim) ? "model.decoder.project_outt.weight" : e.name();
            renamed.put(n, e.withName(n));
        }
        StTestIO.write(file, renamed.values());
        // project_out is [wordEmbedProjDim, hidden] = [32, 64]
        openFails(dir, dir.toString(), "missing", "'" + victim + "'", "[32, 64]");
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "opt:model.decoder.layers.1.fc2.bias:[64]",
        "opt:model.decoder.final_layer_norm.weight:[64]",
        "opt:model.decoder.embed_positions.weight:[130, 64]",
        "opt-postln:model.decoder.project_in.weight:[64, 32]",
        "llama3-gqa:model.layers.2.mlp.up_proj.weight:[192, 64]",
        "llama3-gqa:model.norm.weight:[64]"})
    void missingRequiredTensor(String spec) {
        String[] p = spec.split(":");
        Path dir = copy(p[0]);
        Path file = dir.resolve(SINGLE);
        LinkedHashMap<String, StTestIO.Entry> t = StTestIO.read(file);
        assertNotNull(t.remove(p[1]), p[1]);
        StTestIO.write(file, t.values());
        openFails(dir, dir.toString(), "missing", "'" + p[1] + "'", p[2]);
    }

    @Test
    void tiedCheckpointNeedsNoLmHeadButUntiedDoes() throws IOException {
        // Tied: there is no lm_head.weight in the golden file and it opens.
        assertFalse(StTestIO.read(Golden.goldenRoot().resolve("opt").resolve(SINGLE))
                .containsKey("lm_head.weight"));
        Checkpoint.open(Golden.goldenRoot().resolve("opt"));
        // Untied llama2: drop lm_head from its shard and from the index.
        Path dir = copy("llama2");
        Path shard = dir.resolve(SHARDS[3]);
        LinkedHashMap<String, StTestIO.Entry> t = StTestIO.read(shard);
        assertNotNull(t.remove("lm_head.weight"));
        StTestIO.write(shard, t.values());
        ObjectNode index = (ObjectNode) StTestIO.JSON.readTree(dir.resolve(INDEX).toFile());
        ((ObjectNode) index.get("weight_map")).remove("lm_head.weight");
        Files.writeString(dir.resolve(INDEX), index.toString());
        openFails(dir, dir.toString(), "missing", "'lm_head.weight'", "[512, 64]");
    }

    @Test
    void tensorDroppedFromAShardButListedInTheIndex() {
        Path dir = copy("llama2");
        Path shard = dir.resolve(SHARDS[2]);
        LinkedHashMap<String, StTestIO.Entry> t = StTestIO.read(shard);
        String victim = "model.layers.1.mlp.down_proj.weight";
        assertNotNull(t.remove(victim));
        StTestIO.write(shard, t.values());
        openFails(dir, shard.toString(), "'" + victim + "'", INDEX);
    }

    @Test
    void tensorDroppedFromAShardAndFromTheIndex() throws IOException {
        Path dir = copy("llama2");
        Path shard = dir.resolve(SHARDS[0]);
        LinkedHashMap<String, StTestIO.Entry> t = StTestIO.read(shard);
        String victim = "model.layers.0.self_attn.v_proj.bias";
        assertNotNull(t.remove(victim));
        StTestIO.write(shard, t.values());
        ObjectNode index = (ObjectNode) StTestIO.JSON.readTree(dir.resolve(INDEX).toFile());
        assertNotNull(((ObjectNode) index.get("weight_map")).remove(victim));
        Files.writeString(dir.resolve(INDEX), index.toString());
        openFails(dir, dir.toString(), "missing", "'" + victim + "'", "[64]");
    }

    @Test
    void shardFileListedByTheIndexIsDeleted() throws IOException {
        Path dir = copy("llama2");
        Files.delete(dir.resolve(SHARDS[1]));
        ModelFormatException e = openFails(dir, dir.resolve(INDEX).toString(), SHARDS[1],
                "not found");
        // It also names a tensor the index assigns to that shard.
        JsonNode map = StTestIO.JSON.readTree(dir.resolve(INDEX).toFile()).get("weight_map");
        boolean named = false;
        for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> en = it.next();
            if (en.getValue().asText().equals(SHARDS[1])
                    && e.getMessage().contains("'" + en.getKey() + "'")) {
                named = true;
            }
        }
        assertTrue(named, "message should name a tensor of the deleted shard: " + e.getMessage());
    }

    @Test
    void indexWithoutWeightMap() throws IOException {
        Path dir = copy("llama2");
        Files.writeString(dir.resolve(INDEX), "{\"metadata\": {}}");
        openFails(dir, dir.resolve(INDEX).toString(), "weight_map");
    }

    @Test
    void noWeightsAtAll() throws IOException {
        Path dir = copy("opt");
        Files.delete(dir.resolve(SINGLE));
        openFails(dir, dir.toString(), SINGLE);
    }

    // -----------------------------------------------------------------------------------------
    // Dtypes and byte lengths
    // -----------------------------------------------------------------------------------------

    /** Re-encodes a tensor's values as int32 or float64 little-endian bytes. */
    private static byte[] reencode(StTestIO.Entry e, String dtype) {
        float[] v = StTestIO.decode(e.dtype(), e.data());
        int size = dtype.equals("F64") ? 8 : 4;
        ByteBuffer b = ByteBuffer.allocate(v.length * size).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) {
            if (size == 8) {
                b.putDouble(f);
            } else {
                b.putInt(Math.round(f * 1000));
            }
        }
        return b.array();
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "opt:model.decoder.layers.0.self_attn.q_proj.weight:F64",
        "opt-postln:model.decoder.layers.1.fc1.bias:I32",
        "llama3-gqa:model.layers.1.mlp.gate_proj.weight:F64",
        "llama3-gqa:model.embed_tokens.weight:I32"})
    void unsupportedDtype(String spec) {
        String[] p = spec.split(":");
        Path dir = copy(p[0]);
        Path file = dir.resolve(SINGLE);
        LinkedHashMap<String, StTestIO.Entry> t = StTestIO.read(file);
        StTestIO.Entry e = t.get(p[1]);
        byte[] bytes = reencode(e, p[2]);
        assertEquals(e.numel() * (p[2].equals("F64") ? 8 : 4), bytes.length);
        t.put(p[1], e.withDtype(p[2], bytes));
        StTestIO.write(file, t.values());
        openFails(dir, file.toString(), "'" + p[1] + "'", p[2], "unsupported");
    }

    @Test
    void unsupportedDtypeInAShard() {
        Path dir = copy("llama2");
        Path shard = dir.resolve(SHARDS[3]);
        LinkedHashMap<String, StTestIO.Entry> t = StTestIO.read(shard);
        StTestIO.Entry e = t.get("lm_head.weight");
        t.put(e.name(), e.withDtype("F64", reencode(e, "F64")));
        StTestIO.write(shard, t.values());
        openFails(dir, shard.toString(), "'lm_head.weight'", "F64");
    }

    @Test
    void extraTensorOfUnsupportedDtypeIsIgnored() throws IOException {
        Path dir = copy("llama3-gqa");
        Path file = dir.resolve(SINGLE);
        LinkedHashMap<String, StTestIO.Entry> t = StTestIO.read(file);
        byte[] ids = new byte[8 * 5];
        t.put("model.some_buffer", new StTestIO.Entry("model.some_buffer", "I64",
                new long[] {5}, ids));
        StTestIO.write(file, t.values());
        Checkpoint c = Checkpoint.open(dir);
        assertEquals("I64", c.tensors().get("model.some_buffer").dtype());
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> c.floats("model.some_buffer", 5));
        assertContains(e.getMessage(), file.toString(), "'model.some_buffer'", "I64");
    }

    @ParameterizedTest
    @ValueSource(ints = {-2, 2, 6})
    void dataOffsetsDisagreeWithShapeAndDtype(int delta) {
        Path dir = copy("opt");
        Path file = dir.resolve(SINGLE);
        LinkedHashMap<String, StTestIO.Entry> t = StTestIO.read(file);
        String victim = "model.decoder.layers.0.fc1.bias";
        StTestIO.Entry e = t.get(victim);
        int expected = 256 * 2; // [256] F16
        assertEquals(expected, e.data().length);
        t.put(victim, new StTestIO.Entry(victim, e.dtype(), e.shape(),
                Arrays.copyOf(e.data(), expected + delta)));
        StTestIO.write(file, t.values());
        openFails(dir, file.toString(), "'" + victim + "'", String.valueOf(expected),
                String.valueOf(expected + delta));
    }

    @Test
    void dataOffsetsDisagreeInAnExtraTensorToo() {
        // The byte length check is per file, for every tensor of a known dtype.
        Path dir = copy("opt");
        Path file = dir.resolve(SINGLE);
        LinkedHashMap<String, StTestIO.Entry> t = StTestIO.read(file);
        t.put("extra.weight", new StTestIO.Entry("extra.weight", "F32", new long[] {3, 3},
                new byte[4 * 8]));
        StTestIO.write(file, t.values());
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> SafetensorsFile.open(file));
        assertContains(e.getMessage(), file.toString(), "'extra.weight'", "36", "32");
    }

    // -----------------------------------------------------------------------------------------
    // Intact checkpoints
    // -----------------------------------------------------------------------------------------

    /** name -> (file, entry) for every tensor of a golden checkpoint, read independently. */
    private static Map<String, Map.Entry<Path, StTestIO.Entry>> independentTensors(Path dir)
            throws IOException {
        Map<String, Map.Entry<Path, StTestIO.Entry>> out = new LinkedHashMap<>();
        List<Path> files = new ArrayList<>();
        if (Files.isRegularFile(dir.resolve(INDEX))) {
            JsonNode map = StTestIO.JSON.readTree(dir.resolve(INDEX).toFile()).get("weight_map");
            Set<String> seen = new HashSet<>();
            for (JsonNode f : map) {
                if (seen.add(f.asText())) {
                    files.add(dir.resolve(f.asText()));
                }
            }
        } else {
            files.add(dir.resolve(SINGLE));
        }
        for (Path f : files) {
            for (StTestIO.Entry e : StTestIO.read(f).values()) {
                out.put(e.name(), Map.entry(f, e));
            }
        }
        return out;
    }

    @ParameterizedTest
    @ValueSource(strings = {"opt", "opt-postln", "llama2", "llama3-gqa"})
    void goldenCheckpointOpensAndDecodesExactly(String name) throws IOException {
        Path dir = Golden.goldenRoot().resolve(name);
        Checkpoint c = Checkpoint.open(dir);
        assertEquals(ModelConfig.load(dir), c.config());
        Map<String, Map.Entry<Path, StTestIO.Entry>> ref = independentTensors(dir);
        assertEquals(ref.keySet(), c.tensors().keySet());
        int required = 0;
        for (TensorSpec spec : WeightLayout.expected(c.config())) {
            Map.Entry<Path, StTestIO.Entry> r = ref.get(spec.name());
            if (r == null) {
                assertFalse(spec.required(), spec.name());
                continue;
            }
            required++;
            StTestIO.Entry e = r.getValue();
            assertArrayEquals(e.shape(), spec.shape(), spec.name());
            TensorInfo info = c.find(spec.name());
            assertEquals(r.getKey(), info.file(), spec.name());
            assertEquals(e.dtype(), info.dtype());
            float[] expected = StTestIO.decode(e.dtype(), e.data());
            float[] actual = c.floats(spec.name(), spec.shape());
            assertEquals(expected.length, actual.length, spec.name());
            for (int i = 0; i < expected.length; i++) {
                if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                    throw new AssertionError(name + " " + spec.name() + "[" + i + "]: expected "
                            + expected[i] + ", got " + actual[i]);
                }
            }
        }
        assertEquals(ref.size(), required, "every stored tensor is one the config implies");
    }

    @Test
    void dtypesCoveredByTheGoldenSet() throws IOException {
        // The decode test above covers F16, F32 and BF16 only if the golden set holds them.
        Set<String> dtypes = new HashSet<>();
        for (String n : new String[] {"opt", "opt-postln", "llama2", "llama3-gqa"}) {
            for (Map.Entry<Path, StTestIO.Entry> e
                    : independentTensors(Golden.goldenRoot().resolve(n)).values()) {
                dtypes.add(e.getValue().dtype());
            }
        }
        assertEquals(Set.of("F16", "F32", "BF16"), dtypes);
    }

    @Test
    void shardedCheckpointReadsFromEveryShard() throws IOException {
        Path dir = Golden.goldenRoot().resolve("llama2");
        Checkpoint c = Checkpoint.open(dir);
        Set<Path> files = new HashSet<>();
        for (TensorInfo t : c.tensors().values()) {
            files.add(t.file().getFileName());
        }
        Set<Path> expected = new HashSet<>();
        for (String s : SHARDS) {
            expected.add(Path.of(s));
        }
        assertEquals(expected, files);
        // One tensor from each shard, as the index assigns them.
        JsonNode map = StTestIO.JSON.readTree(dir.resolve(INDEX).toFile()).get("weight_map");
        String[] picks = {"model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight",
            "model.layers.1.input_layernorm.weight", "lm_head.weight"};
        Set<String> shardsHit = new HashSet<>();
        for (String pick : picks) {
            String shard = map.get(pick).asText();
            shardsHit.add(shard);
            StTestIO.Entry e = StTestIO.read(dir.resolve(shard)).get(pick);
            assertEquals(dir.resolve(shard), c.find(pick).file());
            assertArrayEquals(StTestIO.decode(e.dtype(), e.data()), c.floats(pick, e.shape()),
                    pick);
        }
        assertEquals(4, shardsHit.size());
    }

    @Test
    void bareDecoderNamesAreAccepted() {
        // A checkpoint saved from LlamaModel (no "model." prefix) opens; find() maps the names.
        Path dir = copy("llama3-gqa");
        Path file = dir.resolve(SINGLE);
        LinkedHashMap<String, StTestIO.Entry> t = StTestIO.read(file);
        List<StTestIO.Entry> bare = new ArrayList<>();
        for (StTestIO.Entry e : t.values()) {
            bare.add(e.withName(e.name().replaceFirst("^model\\.", "")));
        }
        StTestIO.write(file, bare);
        Checkpoint c = Checkpoint.open(dir);
        StTestIO.Entry e = t.get("model.layers.1.self_attn.o_proj.weight");
        assertEquals("layers.1.self_attn.o_proj.weight",
                c.find("model.layers.1.self_attn.o_proj.weight").name());
        assertArrayEquals(StTestIO.decode("BF16", e.data()),
                c.floats("model.layers.1.self_attn.o_proj.weight", 64, 128));
    }

    @Test
    void floatsChecksShapeAndPresence() {
        Path dir = Golden.goldenRoot().resolve("opt");
        Checkpoint c = Checkpoint.open(dir);
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> c.floats("model.decoder.layers.0.fc1.weight", 64, 256));
        assertContains(e.getMessage(), dir.resolve(SINGLE).toString(),
                "'model.decoder.layers.0.fc1.weight'", "[256, 64]", "[64, 256]");
        e = assertThrows(ModelFormatException.class, () -> c.floats("no.such.tensor", 1));
        assertContains(e.getMessage(), dir.toString(), "'no.such.tensor'");
    }

    @Test
    void writerRoundTripOpens() {
        // Sanity check of the test writer: rewriting every tensor unchanged gives a checkpoint
        // that opens, so the failures above come from the one change each makes.
        for (String n : new String[] {"opt", "opt-postln", "llama3-gqa"}) {
            Path dir = copy(n);
            Path file = dir.resolve(SINGLE);
            StTestIO.write(file, StTestIO.read(file).values());
            Checkpoint.open(dir);
        }
        Path dir = copy("llama2");
        for (String s : SHARDS) {
            StTestIO.write(dir.resolve(s), StTestIO.read(dir.resolve(s)).values());
        }
        Checkpoint.open(dir);
    }
}
