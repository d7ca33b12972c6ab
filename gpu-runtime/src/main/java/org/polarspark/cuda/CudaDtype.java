package org.polarspark.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Locale;

/**
 * The 16-bit element type of the CUDA backend's weights, activations and KV cache; the residual
 * stream and every accumulation stay fp32 in both. Each has its own kernel image, built from the
 * same sources (kernels/build.sh: {@code <family>.fatbin} and {@code <family>_f16.fatbin}, with
 * the same entry points). The CPU backend is not affected: it computes in fp32.
 *
 * <ul>
 *   <li>{@link #BF16} (default): 8 exponent bits, so fp32's range; 8 significant bits.
 *   <li>{@link #FP16}: 11 significant bits (8x finer rounding than bf16) but finite only up to
 *       65504: a projection or activation beyond it becomes infinity. Checkpoints distributed
 *       in fp16 (OPT) are safe by construction; weights beyond the range are refused on upload.
 * </ul>
 */
public enum CudaDtype {
    BF16("bf16", "", 0),
    FP16("fp16", "_f16", 1);

    /** The default: the type the kernels were first written for. */
    public static final CudaDtype DEFAULT = BF16;

    private final String wire;
    private final String fileSuffix;
    private final int imageId;

    CudaDtype(String wire, String fileSuffix, int imageId) {
        this.wire = wire;
        this.fileSuffix = fileSuffix;
        this.imageId = imageId;
    }

    /**
     * Parses {@code bf16} or {@code fp16} (case and surrounding blanks ignored).
     *
     * @throws IllegalArgumentException naming the allowed values, for anything else
     */
    public static CudaDtype parse(String s) {
        String v = s == null ? "" : s.trim().toLowerCase(Locale.ROOT);
        for (CudaDtype d : values()) {
            if (d.wire.equals(v)) {
                return d;
            }
        }
        throw new IllegalArgumentException("cuda dtype must be one of bf16, fp16; got '" + s
                + "'");
    }

    /** The name in options and logs: {@code bf16} or {@code fp16}. */
    public String wire() {
        return wire;
    }

    /** Suffix of this type's fatbins ({@code <family><suffix>.fatbin}). */
    String fileSuffix() {
        return fileSuffix;
    }

    /** The value of {@code polar_element_dtype} in an image of this type (common.cuh). */
    int imageId() {
        return imageId;
    }

    /** float -> this type's bits, rounded to nearest even as the kernels' f2bf. */
    public short fromFloat(float f) {
        return this == BF16 ? Bf16.fromFloat(f) : Fp16.fromFloat(f);
    }

    /** This type's bits -> float (exact). */
    public float toFloat(short bits) {
        return this == BF16 ? Bf16.toFloat(bits) : Fp16.toFloat(bits);
    }

    /** A direct little-endian buffer of the values in this type, ready to upload. */
    public ByteBuffer pack(float[] a) {
        ByteBuffer b = ByteBuffer.allocateDirect(a.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : a) {
            b.putShort(fromFloat(v));
        }
        b.flip();
        return b;
    }

    /** Every value rounded to this type and back (what the device will see). */
    public float[] round(float[] a) {
        float[] out = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = toFloat(fromFloat(a[i]));
        }
        return out;
    }

    /** Bits -> floats, for device results copied to the host. */
    public float[] widen(short[] bits) {
        float[] out = new float[bits.length];
        for (int i = 0; i < bits.length; i++) {
            out[i] = toFloat(bits[i]);
        }
        return out;
    }

    /**
     * The index of the first finite value that this type cannot hold (it would round to
     * infinity), or -1. Only fp16 has such values (|v| >= 65520); bf16 covers fp32's range.
     */
    public int firstOutOfRange(float[] a) {
        if (this == BF16) {
            return -1;
        }
        for (int i = 0; i < a.length; i++) {
            float v = a[i];
            if (Float.isFinite(v) && Float.isInfinite(Fp16.toFloat(Fp16.fromFloat(v)))) {
                return i;
            }
        }
        return -1;
    }
}
