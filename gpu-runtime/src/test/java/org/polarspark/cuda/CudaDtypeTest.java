package org.polarspark.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Host conversions of the two element types (no GPU): fp16 against an oracle that knows only
 * the IEEE binary16 definition (every value computed in double from sign, exponent and
 * significand, nearest by search, ties to the even significand), the dtype's parsing and the
 * choice of fatbins from the kernel index.
 */
class CudaDtypeTest {
    /** binary16 bits -> value, from the format's definition, in double. */
    private static double halfValue(int h) {
        int sign = (h >>> 15) & 1;
        int exp = (h >>> 10) & 0x1f;
        int frac = h & 0x3ff;
        double v;
        if (exp == 0) {
            v = frac / 1024.0 * Math.pow(2, -14);
        } else if (exp == 31) {
            v = frac == 0 ? Double.POSITIVE_INFINITY : Double.NaN;
        } else {
            v = (1 + frac / 1024.0) * Math.pow(2, exp - 15);
        }
        return sign == 1 ? -v : v;
    }

    /** Non-negative finite halves, ascending: bits 0x0000 .. 0x7bff. */
    private static final double[] POSITIVE = new double[0x7c00];

    static {
        for (int h = 0; h < 0x7c00; h++) {
            POSITIVE[h] = halfValue(h);
        }
    }

    /** Round to nearest, ties to even, overflow to infinity, by search over every half. */
    private static int oracleBits(float f) {
        if (Float.isNaN(f)) {
            return -1;
        }
        int sign = (Float.floatToRawIntBits(f) >>> 16) & 0x8000;
        double a = Math.abs((double) f);
        // 65504 + half an ulp (16) = 65520: from there on the rounded value is 2^16 = infinity.
        if (a >= 65520.0) {
            return sign | 0x7c00;
        }
        if (a > 65504.0) { // between the largest half and the overflow midpoint
            return sign | 0x7bff;
        }
        int i = Arrays.binarySearch(POSITIVE, a);
        if (i >= 0) {
            return sign | i;
        }
        int above = -i - 1; // POSITIVE[above - 1] < a < POSITIVE[above]
        int below = above - 1;
        double dBelow = a - POSITIVE[below];
        double dAbove = POSITIVE[above] - a;
        int pick = dBelow < dAbove ? below : dAbove < dBelow ? above
                : (below & 1) == 0 ? below : above;
        return sign | pick;
    }

    private static void checkFp16(float f) {
        int want = oracleBits(f);
        int got = Fp16.fromFloat(f) & 0xffff;
        if (want < 0) {
            assertTrue(Float.isNaN(Fp16.toFloat((short) got)), "NaN " + f + " -> " + got);
            return;
        }
        assertEquals(want, got, () -> String.format("fp16(%s) (bits %08x): want %04x got %04x",
                f, Float.floatToRawIntBits(f), want, got));
    }

    @Test
    void everyHalfWidensToItsValueAndRoundTrips() {
        for (int h = 0; h < 0x10000; h++) {
            double want = halfValue(h);
            float got = Fp16.toFloat((short) h);
            if (Double.isNaN(want)) {
                assertTrue(Float.isNaN(got), "NaN bits " + Integer.toHexString(h));
                continue;
            }
            assertEquals(want, got, 0.0, "bits " + Integer.toHexString(h));
            if (h != 0x8000) { // -0 keeps its sign bit: checked below
                assertEquals(h, Fp16.fromFloat(got) & 0xffff, "round trip " + h);
            }
        }
        assertEquals(0x8000, Fp16.fromFloat(-0f) & 0xffff);
        assertEquals(0x0000, Fp16.fromFloat(0f) & 0xffff);
    }

    @Test
    void roundingMatchesTheNearestHalfTiesToEven() {
        // Every midpoint between adjacent halves and its float neighbours: the ties and the
        // values just off them, over subnormals, normals and the overflow edge.
        for (int h = 0; h < 0x7c00; h++) {
            double lo = POSITIVE[h];
            double hi = h + 1 < 0x7c00 ? POSITIVE[h + 1] : 65536.0;
            float mid = (float) ((lo + hi) / 2); // exact: halves have 11 significant bits
            for (float f : new float[] {mid, Math.nextUp(mid), Math.nextDown(mid), (float) lo,
                    Math.nextUp((float) lo), Math.nextDown((float) lo)}) {
                checkFp16(f);
                checkFp16(-f);
            }
        }
        Random r = new Random(5);
        for (int i = 0; i < 200_000; i++) {
            checkFp16(Float.intBitsToFloat(r.nextInt()));     // any bits, any exponent
            checkFp16((float) (r.nextGaussian() * 10));        // activation-like
            checkFp16((float) (r.nextGaussian() * 1e-6));      // subnormal range
        }
        for (float f : new float[] {65504f, 65519.996f, 65520f, 1e6f, Float.MAX_VALUE,
                Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN, 0x1p-24f, 0x1p-25f,
                Math.nextUp(0x1p-25f), 0x1p-26f, Float.MIN_VALUE, 0x1p-14f,
                Math.nextDown(0x1p-14f)}) {
            checkFp16(f);
            checkFp16(-f);
        }
    }

    @Test
    void overflowAndTheEdgesOfTheRange() {
        assertEquals(65504f, Fp16.toFloat(Fp16.fromFloat(65519.99f)));
        assertEquals(Float.POSITIVE_INFINITY, Fp16.toFloat(Fp16.fromFloat(65520f)));
        assertEquals(Float.NEGATIVE_INFINITY, Fp16.toFloat(Fp16.fromFloat(-70000f)));
        assertEquals(0x1p-24f, Fp16.toFloat(Fp16.fromFloat(0x1.8p-25f)));
        assertEquals(0f, Fp16.toFloat(Fp16.fromFloat(0x1p-25f))); // a tie: to even (zero)
        assertEquals(-1, CudaDtype.FP16.firstOutOfRange(new float[] {65504f, -65519f,
                Float.POSITIVE_INFINITY, Float.NaN}));
        assertEquals(2, CudaDtype.FP16.firstOutOfRange(new float[] {1f, 2f, -65520f}));
        assertEquals(-1, CudaDtype.BF16.firstOutOfRange(new float[] {1e38f}));
    }

    @Test
    void bf16KeepsItsBitsAndTheDtypeDispatches() {
        Random r = new Random(9);
        for (int i = 0; i < 100_000; i++) {
            float f = (float) (r.nextGaussian() * 100);
            assertEquals(Bf16.fromFloat(f), CudaDtype.BF16.fromFloat(f));
            assertEquals(Fp16.fromFloat(f), CudaDtype.FP16.fromFloat(f));
        }
        // bf16 keeps 8 significant bits, fp16 11: 1 + 2^-9 survives fp16 only.
        float x = 1f + 0x1p-9f;
        assertEquals(1f, CudaDtype.BF16.round(new float[] {x})[0]);
        assertEquals(x, CudaDtype.FP16.round(new float[] {x})[0]);
        assertEquals(1e30f, CudaDtype.BF16.round(new float[] {1e30f})[0], 1e28f);
        float[] a = {1.5f, -2.25f, 65504f, 3e-5f};
        ByteBuffer b = CudaDtype.FP16.pack(a);
        assertEquals(8, b.remaining());
        assertEquals(0x3e00, b.getShort(0) & 0xffff); // 1.5, little-endian on the wire
        assertEquals(0xc080, b.getShort(2) & 0xffff); // -2.25
        assertEquals(0x7bff, b.getShort(4) & 0xffff); // 65504
        short[] bits = new short[a.length];
        for (int i = 0; i < a.length; i++) {
            bits[i] = b.getShort(2 * i);
        }
        assertEquals(Arrays.toString(CudaDtype.FP16.round(a)),
                Arrays.toString(CudaDtype.FP16.widen(bits)));
    }

    @Test
    void parseAcceptsTheTwoNamesAndRejectsOthersNamingThem() {
        assertEquals(CudaDtype.BF16, CudaDtype.parse("bf16"));
        assertEquals(CudaDtype.FP16, CudaDtype.parse(" FP16 "));
        assertEquals(CudaDtype.BF16, CudaDtype.DEFAULT);
        for (String bad : new String[] {"fp32", "f16", "half", "", null}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> CudaDtype.parse(bad));
            assertTrue(e.getMessage().contains("bf16, fp16")
                    && e.getMessage().contains("'" + bad + "'"), e.getMessage());
        }
        assertEquals("fp16", CudaDtype.FP16.wire());
    }

    @Test
    void eachImageTakesItsOwnFatbinsFromTheIndex() {
        List<String> index = List.of("attention.fatbin", "attention_f16.fatbin",
                "gemm_sm90a.fatbin", "gemm_sm90a_f16.fatbin", "norm.fatbin", "norm_f16.fatbin");
        assertEquals(List.of("attention.fatbin", "gemm_sm90a.fatbin", "norm.fatbin"),
                KernelImage.familyFiles(index, CudaDtype.BF16));
        assertEquals(List.of("attention_f16.fatbin", "gemm_sm90a_f16.fatbin", "norm_f16.fatbin"),
                KernelImage.familyFiles(index, CudaDtype.FP16));
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> KernelImage.familyFiles(List.of("norm.fatbin"), CudaDtype.FP16));
        assertTrue(e.getMessage().contains("no fp16 fatbins"), e.getMessage());
    }
}
