package org.polarspark.cuda;

/** float32 <-> bfloat16 on the host (round to nearest even, as the device's __float2bfloat16_rn). */
public final class Bf16 {
    private Bf16() {
    }

    public static short fromFloat(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x40); // quiet NaN
        }
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

    public static float toFloat(short b) {
        return Float.intBitsToFloat((b & 0xffff) << 16);
    }

    /** Rounds every value to bf16 and back (what the device will see). */
    public static float[] round(float[] a) {
        return CudaDtype.BF16.round(a);
    }
}
