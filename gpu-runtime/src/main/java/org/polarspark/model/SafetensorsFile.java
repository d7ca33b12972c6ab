package org.polarspark.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A single .safetensors file: an 8-byte little-endian header length N, N bytes of JSON
 * ({@code name -> {dtype, shape, data_offsets}} plus optional {@code __metadata__}), then the
 * data. The header is parsed and validated eagerly; tensor data is memory-mapped on demand.
 */
public final class SafetensorsFile {
    /** Headers larger than this are not plausible (the format's own reference caps at 100 MB). */
    private static final long MAX_HEADER = 100L << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path path;
    private final long fileSize;
    private final Map<String, TensorInfo> tensors;

    private SafetensorsFile(Path path, long fileSize, Map<String, TensorInfo> tensors) {
        this.path = path;
        this.fileSize = fileSize;
        this.tensors = tensors;
    }

    public static SafetensorsFile open(Path path) {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) {
                throw new ModelFormatException(path + ": truncated safetensors file (" + size
                        + " bytes, no header)");
            }
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lenBuf, 0);
            long headerLen = lenBuf.getLong(0);
            if (headerLen <= 0 || headerLen > MAX_HEADER) {
                throw new ModelFormatException(path + ": bad safetensors header length "
                        + headerLen);
            }
            if (8 + headerLen > size) {
                throw new ModelFormatException(path + ": truncated safetensors file: header of "
                        + headerLen + " bytes but the file has " + size);
            }
            ByteBuffer header = ByteBuffer.allocate((int) headerLen);
            readFully(ch, header, 8);
            JsonNode root;
            try {
                root = JSON.readTree(new String(header.array(), StandardCharsets.UTF_8));
            } catch (IOException e) {
                throw new ModelFormatException(path + ": bad safetensors header (not JSON): "
                        + e.getMessage(), e);
            }
            if (root == null || !root.isObject()) {
                throw new ModelFormatException(path + ": bad safetensors header (not an object)");
            }
            long dataStart = 8 + headerLen;
            long dataLen = size - dataStart;
            Map<String, TensorInfo> out = new LinkedHashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (e.getKey().equals("__metadata__")) {
                    continue;
                }
                out.put(e.getKey(), entry(path, e.getKey(), e.getValue(), dataStart, dataLen));
            }
            return new SafetensorsFile(path, size, Collections.unmodifiableMap(out));
        } catch (IOException e) {
            throw new ModelFormatException(path + ": cannot read: " + e.getMessage(), e);
        }
    }

    private static TensorInfo entry(Path path, String name, JsonNode n, long dataStart,
                                    long dataLen) {
        JsonNode dtype = n.get("dtype");
        JsonNode shape = n.get("shape");
        JsonNode offs = n.get("data_offsets");
        if (dtype == null || !dtype.isTextual() || shape == null || !shape.isArray()
                || offs == null || !offs.isArray() || offs.size() != 2) {
            throw new ModelFormatException(path + ": bad safetensors header entry for tensor '"
                    + name + "': " + n);
        }
        long[] dims = new long[shape.size()];
        for (int i = 0; i < dims.length; i++) {
            if (!shape.get(i).isIntegralNumber() || !shape.get(i).canConvertToLong()
                    || shape.get(i).longValue() < 0) {
                throw new ModelFormatException(path + ": tensor '" + name + "' has a bad shape "
                        + shape);
            }
            dims[i] = shape.get(i).longValue();
        }
        long begin = offs.get(0).isIntegralNumber() ? offs.get(0).asLong(-1) : -1;
        long end = offs.get(1).isIntegralNumber() ? offs.get(1).asLong(-1) : -1;
        if (begin < 0 || end < begin) {
            throw new ModelFormatException(path + ": tensor '" + name + "' has bad data_offsets "
                    + offs);
        }
        if (end > dataLen) {
            throw new ModelFormatException(path + ": truncated safetensors file: tensor '" + name
                    + "' ends at byte " + end + " of the data but only " + dataLen
                    + " bytes are present");
        }
        TensorInfo info = new TensorInfo(name, path, dtype.asText(), dims, dataStart + begin,
                end - begin);
        DType dt = DType.fromSafetensors(info.dtype());
        if (dt != null && info.numel() * dt.size() != info.length()) {
            throw new ModelFormatException(path + ": tensor '" + name + "' of shape "
                    + info.shapeString() + " and dtype " + info.dtype() + " needs "
                    + info.numel() * dt.size() + " bytes but data_offsets give " + info.length());
        }
        return info;
    }

    private static void readFully(FileChannel ch, ByteBuffer dst, long pos) throws IOException {
        while (dst.hasRemaining()) {
            int n = ch.read(dst, pos + dst.position());
            if (n < 0) {
                throw new IOException("unexpected end of file");
            }
        }
    }

    public Path path() {
        return path;
    }

    public long fileSize() {
        return fileSize;
    }

    /** Tensor entries by name, in header order. */
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    /** Memory-maps one tensor's bytes (little-endian, read-only). */
    public static ByteBuffer map(TensorInfo t) {
        try (FileChannel ch = FileChannel.open(t.file(), StandardOpenOption.READ)) {
            if (t.length() > Integer.MAX_VALUE) {
                throw new ModelFormatException(t.file() + ": tensor '" + t.name() + "' is "
                        + t.length() + " bytes; tensors over 2 GiB are not supported");
            }
            return ch.map(FileChannel.MapMode.READ_ONLY, t.offset(), t.length())
                    .order(ByteOrder.LITTLE_ENDIAN);
        } catch (IOException e) {
            throw new ModelFormatException(t.file() + ": cannot map tensor '" + t.name() + "': "
                    + e.getMessage(), e);
        }
    }
}
