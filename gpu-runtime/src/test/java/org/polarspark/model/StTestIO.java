package org.polarspark.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collection;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.polarspark.testutil.Golden;

/**
 * Test-side safetensors reader and writer, written from the format's description (8-byte
 * little-endian header length, JSON header, data) and independent of {@link SafetensorsFile},
 * plus an independent element decoder for F32 / F16 / BF16.
 */
final class StTestIO {
    static final ObjectMapper JSON = new ObjectMapper();

    private StTestIO() {
    }

    /** One tensor as stored: name, dtype string, shape and its raw little-endian bytes. */
    record Entry(String name, String dtype, long[] shape, byte[] data) {
        Entry withName(String n) {
            return new Entry(n, dtype, shape, data);
        }

        Entry withShape(long... s) {
            return new Entry(name, dtype, s, data);
        }

        Entry withDtype(String d, byte[] bytes) {
            return new Entry(name, d, shape, bytes);
        }

        long numel() {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            return n;
        }
    }

    /** A file split into its parts: header length, parsed header, data section. */
    record Raw(long headerLen, ObjectNode header, byte[] data) {
    }

    static Raw readRaw(Path file) {
        try {
            byte[] all = Files.readAllBytes(file);
            long n = ByteBuffer.wrap(all, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
            ObjectNode header = (ObjectNode) JSON.readTree(
                    new String(all, 8, (int) n, StandardCharsets.UTF_8));
            byte[] data = Arrays.copyOfRange(all, (int) (8 + n), all.length);
            return new Raw(n, header, data);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Tensors in header order (metadata skipped). */
    static LinkedHashMap<String, Entry> read(Path file) {
        Raw raw = readRaw(file);
        LinkedHashMap<String, Entry> out = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = raw.header().fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (e.getKey().equals("__metadata__")) {
                continue;
            }
            JsonNode n = e.getValue();
            long[] shape = new long[n.get("shape").size()];
            for (int i = 0; i < shape.length; i++) {
                shape[i] = n.get("shape").get(i).longValue();
            }
            int b = n.get("data_offsets").get(0).intValue();
            int end = n.get("data_offsets").get(1).intValue();
            out.put(e.getKey(), new Entry(e.getKey(), n.get("dtype").asText(), shape,
                    Arrays.copyOfRange(raw.data(), b, end)));
        }
        return out;
    }

    /** Writes tensors contiguously, in the given order. */
    static void write(Path file, Collection<Entry> tensors) {
        ObjectNode header = JSON.createObjectNode();
        header.putObject("__metadata__").put("format", "pt");
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        for (Entry t : tensors) {
            ObjectNode n = header.putObject(t.name());
            n.put("dtype", t.dtype());
            ArrayNode s = n.putArray("shape");
            for (long d : t.shape()) {
                s.add(d);
            }
            ArrayNode o = n.putArray("data_offsets");
            o.add(data.size());
            data.writeBytes(t.data());
            o.add(data.size());
        }
        writeRaw(file, header, data.toByteArray());
    }

    /** Writes a header (padded with spaces to a multiple of 8) and a data section. */
    static void writeRaw(Path file, JsonNode header, byte[] data) {
        byte[] h = header.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (h.length + 7) / 8 * 8;
        byte[] hp = Arrays.copyOf(h, padded);
        Arrays.fill(hp, h.length, padded, (byte) ' ');
        writeRaw(file, padded, hp, data);
    }

    /** Writes an arbitrary header length field, header bytes and data. */
    static void writeRaw(Path file, long headerLenField, byte[] headerBytes, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(8 + headerBytes.length + data.length)
                .order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(headerLenField).put(headerBytes).put(data);
        try {
            Files.write(file, b.array());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Copies golden/{name} (flat) into dir/{name} and returns the copy. */
    static Path copyGolden(String name, Path tmp) {
        Path src = Golden.goldenRoot().resolve(name);
        Path dst = tmp.resolve(name);
        try {
            Files.createDirectories(dst);
            try (Stream<Path> s = Files.list(src)) {
                for (Path p : s.toList()) {
                    Path q = dst.resolve(p.getFileName().toString());
                    Files.copy(p, q);
                    q.toFile().setWritable(true);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return dst;
    }

    // -----------------------------------------------------------------------------------------
    // Independent element decoding
    // -----------------------------------------------------------------------------------------

    /** IEEE binary16 decoded from its fields, in double, by powers of two. */
    static double halfRef(int bits) {
        int sign = (bits >> 15) & 1;
        int exp = (bits >> 10) & 0x1f;
        int mant = bits & 0x3ff;
        double s = sign == 1 ? -1.0 : 1.0;
        if (exp == 0x1f) {
            return mant == 0 ? s * Double.POSITIVE_INFINITY : Double.NaN;
        }
        if (exp == 0) {
            return s * Math.scalb((double) mant, -24); // 0.mant * 2^-14
        }
        return s * Math.scalb(1.0 + mant / 1024.0, exp - 15);
    }

    /** Decodes raw little-endian bytes of dtype F32, F16 or BF16 independently. */
    static float[] decode(String dtype, byte[] raw) {
        switch (dtype) {
            case "F32": {
                float[] out = new float[raw.length / 4];
                for (int i = 0; i < out.length; i++) {
                    int bits = (raw[4 * i] & 0xff) | (raw[4 * i + 1] & 0xff) << 8
                            | (raw[4 * i + 2] & 0xff) << 16 | (raw[4 * i + 3] & 0xff) << 24;
                    out[i] = Float.intBitsToFloat(bits);
                }
                return out;
            }
            case "F16": {
                float[] out = new float[raw.length / 2];
                for (int i = 0; i < out.length; i++) {
                    out[i] = (float) halfRef((raw[2 * i] & 0xff) | (raw[2 * i + 1] & 0xff) << 8);
                }
                return out;
            }
            case "BF16": {
                float[] out = new float[raw.length / 2];
                for (int i = 0; i < out.length; i++) {
                    // bfloat16 is the top half of a float32: sign, 8-bit exponent, 7-bit mantissa
                    int b = (raw[2 * i] & 0xff) | (raw[2 * i + 1] & 0xff) << 8;
                    int sign = (b >> 15) & 1;
                    int exp = (b >> 7) & 0xff;
                    int mant = b & 0x7f;
                    double s = sign == 1 ? -1 : 1;
                    double v;
                    if (exp == 0xff) {
                        v = mant == 0 ? s * Double.POSITIVE_INFINITY : Double.NaN;
                    } else if (exp == 0) {
                        v = s * Math.scalb((double) mant, -126 - 7);
                    } else {
                        v = s * Math.scalb(1.0 + mant / 128.0, exp - 127);
                    }
                    out[i] = (float) v;
                }
                return out;
            }
            default:
                throw new IllegalArgumentException(dtype);
        }
    }
}
