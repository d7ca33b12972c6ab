package org.polarspark.polar;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.polarspark.model.DType;
import org.polarspark.model.ModelFormatException;
import org.polarspark.model.SafetensorsFile;
import org.polarspark.model.SafetensorsWriter;

class RouterWeightsTest {
    @TempDir
    Path tmp;

    /** L = 2, G = 3, H = 5, F = 7, r = 2. */
    static PolarConfig cfg() {
        return new PolarConfig("opt", 2, 3, 5, 7, new double[] {1.0, 0.5}, false,
                new PolarConfig.Mlp(2, new int[] {1, 4}, new int[][] {{2, 3}, {2, 3}}), null,
                null);
    }

    @Test
    void roundTripGivesTheSameFloats() throws IOException {
        PolarConfig c = cfg();
        RouterWeights w = RouterWeights.random(c, 42);
        w.write(tmp, c);
        Path f = tmp.resolve("polar/routers.safetensors");
        assertTrue(Files.isRegularFile(f));
        RouterWeights back = RouterWeights.load(tmp, c);
        for (int l = 0; l < 2; l++) {
            assertArrayEquals(w.headWeight(l), back.headWeight(l));
            assertArrayEquals(w.headBias(l), back.headBias(l));
            assertArrayEquals(w.mlpDown(l), back.mlpDown(l));
            assertArrayEquals(w.mlpUp(l), back.mlpUp(l));
        }
        assertTrue(back.hasMlp());
        assertEquals(2, back.rank());

        // The file itself: header length a multiple of 8, padded with spaces, F32 entries with
        // the documented names and shapes, data contiguous in that order.
        byte[] all = Files.readAllBytes(f);
        long n = ByteBuffer.wrap(all, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, n % 8);
        String header = new String(all, 8, (int) n, StandardCharsets.UTF_8);
        JsonNode h = PolarTestModels.JSON.readTree(header);
        assertEquals(h.toString().length(), header.trim().length());
        assertEquals("polar-sparsity/1", h.get("__metadata__").get("format").asText());
        assertEquals("F32", h.get("layers.1.mlp.up.weight").get("dtype").asText());
        assertEquals("[7,2]", h.get("layers.1.mlp.up.weight").get("shape").toString());
        assertEquals("[0,60]", h.get("layers.0.head.weight").get("data_offsets").toString());
        assertEquals("[60,72]", h.get("layers.0.head.bias").get("data_offsets").toString());
        long dataLen = all.length - 8 - n;
        assertEquals(4L * 2 * (15 + 3 + 10 + 14), dataLen);
        // Independent decode of one value.
        int off = (int) (8 + n + h.get("layers.1.head.bias").get("data_offsets").get(0).asLong());
        assertEquals(w.headBias(1)[2], ByteBuffer.wrap(all, off + 8, 4)
                .order(ByteOrder.LITTLE_ENDIAN).getFloat());
    }

    @Test
    void headsOnlyRoundTripAndMlpTensorsIgnoredWithoutMlp() {
        PolarConfig c = cfg();
        RouterWeights.random(c, 1).write(tmp, c);
        PolarConfig heads = c.withMlp(null);
        RouterWeights w = RouterWeights.load(tmp, heads); // file has MLP tensors: ignored
        assertFalse(w.hasMlp());
        assertNull(w.mlpDown(0));
        assertThrows(IllegalStateException.class, () -> w.mlpLogits(1, new float[5], 0));
        w.write(tmp, heads);
        SafetensorsFile st = SafetensorsFile.open(tmp.resolve("polar/routers.safetensors"));
        assertEquals(4, st.tensors().size());
        // A heads-only file for a config that wants MLP routers is an error naming the tensor.
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> RouterWeights.load(tmp, c));
        assertTrue(e.getMessage().contains("'layers.0.mlp.down.weight'"), e.getMessage());
    }

    /** Writes a router file for cfg() with one tensor's shape or presence changed. */
    private Path writeWith(String name, long[] shape, String extra) {
        PolarConfig c = cfg();
        SafetensorsWriter out = new SafetensorsWriter();
        for (Map.Entry<String, long[]> e : RouterWeights.expected(c).entrySet()) {
            long[] s = e.getKey().equals(name) ? shape : e.getValue();
            if (s == null) {
                continue;
            }
            long numel = 1;
            for (long d : s) {
                numel *= d;
            }
            out.addF32(e.getKey(), new float[(int) numel], s);
        }
        if (extra != null) {
            out.addF32(extra, new float[1], 1);
        }
        Path f = tmp.resolve("polar/routers.safetensors");
        out.write(f);
        return f;
    }

    @Test
    void misshapenTensorIsRejectedNamingIt() {
        Path f = writeWith("layers.1.head.weight", new long[] {3, 6}, null);
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> RouterWeights.load(tmp, cfg()));
        assertTrue(e.getMessage().contains("'layers.1.head.weight'"), e.getMessage());
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("[3, 6]"), e.getMessage());

        writeWith("layers.0.mlp.up.weight", new long[] {2, 7}, null); // transposed
        e = assertThrows(ModelFormatException.class, () -> RouterWeights.load(tmp, cfg()));
        assertTrue(e.getMessage().contains("'layers.0.mlp.up.weight'"), e.getMessage());

        writeWith("layers.1.head.bias", new long[] {3, 1}, null); // right count, wrong rank
        e = assertThrows(ModelFormatException.class, () -> RouterWeights.load(tmp, cfg()));
        assertTrue(e.getMessage().contains("'layers.1.head.bias'"), e.getMessage());
    }

    @Test
    void missingAndUnexpectedTensorsAreNamed() {
        writeWith("layers.0.head.bias", null, null);
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> RouterWeights.load(tmp, cfg()));
        assertTrue(e.getMessage().contains("missing tensor 'layers.0.head.bias'"),
                e.getMessage());

        writeWith(null, null, "layers.2.head.bias"); // a third layer: wrong model
        e = assertThrows(ModelFormatException.class, () -> RouterWeights.load(tmp, cfg()));
        assertTrue(e.getMessage().contains("unexpected tensor 'layers.2.head.bias'"),
                e.getMessage());
    }

    @Test
    void missingFileNamesIt() {
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> RouterWeights.load(tmp, cfg()));
        assertTrue(e.getMessage().contains(tmp.resolve("polar/routers.safetensors").toString()),
                e.getMessage());
        assertTrue(e.getMessage().contains("router_file"), e.getMessage());
    }

    @Test
    void bf16RoutersAreAccepted() {
        PolarConfig c = cfg();
        SafetensorsWriter out = new SafetensorsWriter();
        int i = 0;
        for (Map.Entry<String, long[]> e : RouterWeights.expected(c).entrySet()) {
            long numel = 1;
            for (long d : e.getValue()) {
                numel *= d;
            }
            float[] v = new float[(int) numel];
            for (int j = 0; j < v.length; j++) {
                v[j] = (float) (((i * 7 + j * 3) % 17) - 8) / 4f; // exact in bfloat16
            }
            i++;
            out.add(e.getKey(), DType.BF16, v, e.getValue());
        }
        Path f = tmp.resolve("polar/routers.safetensors");
        out.write(f);
        assertEquals("BF16", SafetensorsFile.open(f).tensors().get("layers.1.head.weight")
                .dtype());
        RouterWeights w = RouterWeights.load(tmp, c);
        // layers.0.mlp.down.weight is the third tensor (i = 2).
        float[] down = w.mlpDown(0);
        for (int j = 0; j < down.length; j++) {
            assertEquals((float) (((2 * 7 + j * 3) % 17) - 8) / 4f, down[j], 0f);
        }
    }

    @Test
    void bf16ConversionRoundsToNearestEven() {
        // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even (1.0).
        assertEquals(0x3f80, SafetensorsWriter.toBf16(1f + 0x1p-8f) & 0xffff);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: rounds up to even.
        assertEquals(0x3f82, SafetensorsWriter.toBf16(1f + 3 * 0x1p-8f) & 0xffff);
        assertEquals(0x3f81, SafetensorsWriter.toBf16(1f + 0x1p-7f + 0x1p-12f) & 0xffff);
        assertEquals(0xbf80, SafetensorsWriter.toBf16(-1f) & 0xffff);
        assertTrue(Float.isNaN(Float.intBitsToFloat(SafetensorsWriter.toBf16(Float.NaN) << 16)));
    }

    @Test
    void logitsByHand() {
        // G = 2, H = 3, r = 2, F = 3, one layer.
        PolarConfig c = new PolarConfig("opt", 1, 2, 3, 3, new double[] {1.0}, false,
                new PolarConfig.Mlp(2, new int[] {1}, new int[][] {{1}}), null, null);
        float[][] w = {{1, 2, 3, 0, -1, 0.5f}};
        float[][] b = {{0.5f, -1}};
        float[][] down = {{1, 0, 0, 0, 1, 1}};
        float[][] up = {{1, 1, 2, -1, 0, 0.5f}};
        RouterWeights r = new RouterWeights(c, w, b, down, up);
        float[] x = {9, 9, 9, 1, 1, 2}; // the token starts at offset 3
        assertArrayEquals(new float[] {9.5f, -1f}, r.headLogits(0, x, 3));
        // down x = (1, 3); up (1, 3) = (4, -1, 1.5)
        assertArrayEquals(new float[] {4f, -1f, 1.5f}, r.mlpLogits(0, x, 3));
    }

    @Test
    void constructorChecksLengths() {
        PolarConfig c = cfg();
        RouterWeights ok = RouterWeights.random(c, 3);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new RouterWeights(c, new float[][] {ok.headWeight(0), new float[14]},
                        new float[][] {ok.headBias(0), ok.headBias(1)}, null, null));
        assertTrue(e.getMessage().contains("layers.1.head.weight"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> new RouterWeights(c.withMlp(null), new float[][] {ok.headWeight(0),
                        ok.headWeight(1)}, new float[][] {ok.headBias(0), ok.headBias(1)},
                        new float[][] {ok.mlpDown(0), ok.mlpDown(1)}, null));
        assertTrue(e.getMessage().contains("no mlp"), e.getMessage());
        // Weights with MLP routers serve a heads-only config; the reverse is refused.
        ok.checkMatches(c.withMlp(null));
        RouterWeights heads = RouterWeights.random(c.withMlp(null), 3);
        assertThrows(IllegalArgumentException.class, () -> heads.checkMatches(c));
    }

    @Test
    void randomIsSeeded() {
        PolarConfig c = cfg();
        assertArrayEquals(RouterWeights.random(c, 5).mlpUp(1), RouterWeights.random(c, 5).mlpUp(1));
        assertFalse(java.util.Arrays.equals(RouterWeights.random(c, 5).mlpUp(1),
                RouterWeights.random(c, 6).mlpUp(1)));
    }
}
