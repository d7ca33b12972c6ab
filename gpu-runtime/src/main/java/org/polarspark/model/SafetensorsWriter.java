package org.polarspark.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes a single .safetensors file, the format {@link SafetensorsFile} reads:
 *
 * <ol>
 *   <li>8 bytes: N, the header length, as an unsigned little-endian 64-bit integer;</li>
 *   <li>N bytes: a UTF-8 JSON object {@code {"__metadata__": {str: str}?, name: {"dtype",
 *       "shape", "data_offsets": [begin, end]}}}, padded at the end with spaces (0x20) so that N
 *       is a multiple of 8 (the data then starts 8-byte aligned);</li>
 *   <li>the data: each tensor's elements, row-major, little-endian, contiguous and in the order
 *       they were added; {@code data_offsets} are relative to the start of the data.</li>
 * </ol>
 *
 * <p>Supported element types: F32 (exact) and BF16 (round to nearest even; NaN stays NaN).
 * Tensor data is streamed to the file in chunks, so writing needs no second copy of it in memory.
 * The file is written beside its destination under a temporary name and then moved into place,
 * so a reader never sees a half-written file, and a failed write leaves the old file as it was.
 *
 * <p>The arrays handed to {@link #add} are kept by reference until {@link #write}; do not modify
 * them in between. Not thread-safe.
 */
public final class SafetensorsWriter {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int CHUNK_ELEMENTS = 1 << 16;

    private record Pending(String name, DType dtype, long[] shape, float[] data) {
    }

    private final List<Pending> tensors = new ArrayList<>();
    private final Set<String> names = new HashSet<>();
    private final Map<String, String> metadata = new LinkedHashMap<>();

    /** Adds a float32 tensor. */
    public SafetensorsWriter addF32(String name, float[] data, long... shape) {
        return add(name, DType.F32, data, shape);
    }

    /**
     * Adds a tensor, stored as {@code dtype} (F32 or BF16).
     *
     * @throws IllegalArgumentException for a duplicate or empty name, the reserved name
     *                                  {@code __metadata__}, a negative dimension, a data length
     *                                  that is not the shape's element count, or F16
     */
    public SafetensorsWriter add(String name, DType dtype, float[] data, long... shape) {
        if (name == null || name.isEmpty() || name.equals("__metadata__")) {
            throw new IllegalArgumentException("bad tensor name '" + name + "'");
        }
        if (!names.add(name)) {
            throw new IllegalArgumentException("tensor '" + name + "' added twice");
        }
        if (dtype != DType.F32 && dtype != DType.BF16) {
            throw new IllegalArgumentException("tensor '" + name + "': cannot write dtype "
                    + dtype + " (supported: F32, BF16)");
        }
        long n = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("tensor '" + name + "' has a negative "
                        + "dimension in " + Arrays.toString(shape));
            }
            n *= d;
        }
        if (n != data.length) {
            throw new IllegalArgumentException("tensor '" + name + "' of shape "
                    + Arrays.toString(shape) + " needs " + n + " elements but " + data.length
                    + " were given");
        }
        tensors.add(new Pending(name, dtype, shape.clone(), data));
        return this;
    }

    /** Adds a {@code __metadata__} entry (string to string, as the format requires). */
    public SafetensorsWriter metadata(String key, String value) {
        metadata.put(key, value);
        return this;
    }

    /** Header bytes, padded with spaces to a multiple of 8. */
    byte[] header() {
        ObjectNode root = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode m = root.putObject("__metadata__");
            metadata.forEach(m::put);
        }
        long offset = 0;
        for (Pending t : tensors) {
            ObjectNode n = root.putObject(t.name());
            n.put("dtype", t.dtype().name());
            ArrayNode s = n.putArray("shape");
            for (long d : t.shape()) {
                s.add(d);
            }
            long bytes = (long) t.data().length * t.dtype().size();
            n.putArray("data_offsets").add(offset).add(offset + bytes);
            offset += bytes;
        }
        byte[] h = root.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (h.length + 7) / 8 * 8;
        byte[] out = Arrays.copyOf(h, padded);
        Arrays.fill(out, h.length, padded, (byte) ' ');
        return out;
    }

    /**
     * Writes the file (creating parent directories), replacing any file already there.
     *
     * @throws UncheckedIOException when the file cannot be written
     */
    public void write(Path file) {
        Path parent = file.toAbsolutePath().getParent();
        Path tmp = null;
        try {
            Files.createDirectories(parent);
            tmp = Files.createTempFile(parent, "." + file.getFileName(), ".tmp");
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING)) {
                byte[] h = header();
                ByteBuffer head = ByteBuffer.allocate(8 + h.length).order(ByteOrder.LITTLE_ENDIAN);
                head.putLong(h.length).put(h).flip();
                writeFully(ch, head);
                ByteBuffer buf = ByteBuffer.allocate(CHUNK_ELEMENTS * 4)
                        .order(ByteOrder.LITTLE_ENDIAN);
                for (Pending t : tensors) {
                    float[] d = t.data();
                    for (int i = 0; i < d.length; i += CHUNK_ELEMENTS) {
                        int end = Math.min(d.length, i + CHUNK_ELEMENTS);
                        buf.clear();
                        if (t.dtype() == DType.F32) {
                            buf.asFloatBuffer().put(d, i, end - i);
                            buf.limit((end - i) * 4);
                        } else {
                            for (int j = i; j < end; j++) {
                                buf.putShort(toBf16(d[j]));
                            }
                            buf.flip();
                        }
                        writeFully(ch, buf);
                    }
                }
                ch.force(true);
            }
            try {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING,
                        StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
            tmp = null;
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot write safetensors file: "
                    + e.getMessage(), e);
        } finally {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // best effort: the temporary file is hidden and named after the target
                }
            }
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    /** float32 to bfloat16 bits, rounding to nearest even; NaN stays a (quiet) NaN. */
    public static short toBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) {
            return (short) ((bits >>> 16) | 0x40);
        }
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }
}
