package org.polarspark.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

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

    /** A direct little-endian buffer of bf16 values, ready to upload. */
    public static ByteBuffer pack(float[] a) {
        ByteBuffer b = ByteBuffer.allocateDirect(a.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : a) {
            b.putShort(fromFloat(v));
        }
        b.flip();
        return b;
    }

    /** Rounds every value to bf16 and back (what the device will see). */
    public static float[] round(float[] a) {
        float[] out = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = toFloat(fromFloat(a[i]));
        }
        return out;
    }
}
