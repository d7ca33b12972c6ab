package org.polarspark.model;

import java.nio.ByteBuffer;

/** Tensor element types we read from safetensors. Others (I64, F8_*, ...) are rejected. */
public enum DType {
    F32(4), F16(2), BF16(2);

    private final int size;

    DType(int size) {
        this.size = size;
    }

    /** Bytes per element. */
    public int size() {
        return size;
    }

    /** Parses a safetensors dtype name; null if we do not support it. */
    public static DType fromSafetensors(String name) {
        switch (name) {
            case "F32":
                return F32;
            case "F16":
                return F16;
            case "BF16":
                return BF16;
            default:
                return null;
        }
    }

    /** Reads element {@code i} of a little-endian buffer as float. */
    public float get(ByteBuffer b, long i) {
        switch (this) {
            case F32:
                return b.getFloat(Math.toIntExact(i * 4));
            case F16:
                return halfToFloat(b.getShort(Math.toIntExact(i * 2)));
            case BF16:
                return Float.intBitsToFloat((b.getShort(Math.toIntExact(i * 2)) & 0xffff) << 16);
            default:
                throw new AssertionError(this);
        }
    }

    /** IEEE 754 binary16 to float, exact for every input (subnormals, infinities, NaN). */
    public static float halfToFloat(short h) {
        int bits = h & 0xffff;
        int sign = (bits & 0x8000) << 16;
        int exp = (bits >>> 10) & 0x1f;
        int mant = bits & 0x3ff;
        if (exp == 0x1f) {
            return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));
        }
        if (exp == 0) {
            if (mant == 0) {
                return Float.intBitsToFloat(sign);
            }
            // Subnormal half: value = mant * 2^-24.
            float v = mant * 0x1p-24f;
            return sign != 0 ? -v : v;
        }
        return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
    }
}
