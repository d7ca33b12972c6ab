package org.polarspark.model;

import java.nio.file.Path;
import java.util.Arrays;

/**
 * One tensor's entry in a safetensors header.
 *
 * @param name   tensor name, e.g. {@code model.layers.0.self_attn.q_proj.weight}
 * @param file   the .safetensors file holding it
 * @param dtype  its dtype name as written in the header (F32, F16, BF16, I64, ...)
 * @param shape  dimensions, outermost first
 * @param offset absolute byte offset of the data in the file
 * @param length bytes of data
 */
public record TensorInfo(String name, Path file, String dtype, long[] shape, long offset,
                         long length) {
    public long numel() {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    public String shapeString() {
        return Arrays.toString(shape);
    }
}
