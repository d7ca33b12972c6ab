package org.polarspark.cuda;

/**
 * float32 <-> IEEE 754 binary16 (fp16) on the host, round to nearest even as the device's
 * __float2half_rn: subnormals kept (down to 2^-24), magnitudes from 65520 up (the midpoint
 * between 65504, the largest finite half, and 2^16) overflow to infinity, NaN stays NaN.
 */
public final class Fp16 {
    /** The largest finite fp16 value. */
    public static final float MAX = 65504f;

    private Fp16() {
    }

    public static short fromFloat(float f) {
        int bits = Float.floatToRawIntBits(f);
        int sign = (bits >>> 16) & 0x8000;
        int abs = bits & 0x7fffffff;
        if (abs > 0x7f800000) {
            return (short) (sign | 0x7e00); // a quiet NaN
        }
        if (abs >= 0x477ff000) { // 65520 and above, infinity included
            return (short) (sign | 0x7c00);
        }
        int exp = (abs >>> 23) - 127;
        int mant = abs & 0x7fffff;
        if (exp >= -14) { // a normal half: 10 of the 23 mantissa bits stay
            int h = ((exp + 15) << 10) | (mant >>> 13);
            int rest = mant & 0x1fff;
            if (rest > 0x1000 || (rest == 0x1000 && (h & 1) == 1)) {
                h++; // a carry out of the mantissa steps the exponent, as it should
            }
            return (short) (sign | h);
        }
        if (exp < -25) { // below half the smallest subnormal (2^-24): zero
            return (short) sign;
        }
        // A subnormal half: units of 2^-24. The float is (2^23 + mant) * 2^(exp - 23), so the
        // count of units is (2^23 + mant) >> -(exp + 1), rounded to nearest even.
        int m = mant | 0x800000;
        int shift = -(exp + 1); // 14 .. 24
        int h = m >>> shift;
        int rest = m & ((1 << shift) - 1);
        int halfway = 1 << (shift - 1);
        if (rest > halfway || (rest == halfway && (h & 1) == 1)) {
            h++; // 0x3ff + 1 = 0x400: the smallest normal, correctly
        }
        return (short) (sign | h);
    }

    public static float toFloat(short b) {
        int h = b & 0xffff;
        int sign = (h & 0x8000) << 16;
        int exp = (h >>> 10) & 0x1f;
        int mant = h & 0x3ff;
        if (exp == 0) { // zero or subnormal: mant * 2^-24, exact in float
            float v = mant * 0x1p-24f;
            return sign != 0 ? -v : v;
        }
        if (exp == 31) {
            return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));
        }
        return Float.intBitsToFloat(sign | ((exp - 15 + 127) << 23) | (mant << 13));
    }
}
