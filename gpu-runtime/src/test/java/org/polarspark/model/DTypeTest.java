package org.polarspark.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

/** Element decoding: every binary16 pattern, known bfloat16 patterns, float32. */
class DTypeTest {

    @Test
    void halfToFloatExhaustive() {
        int nans = 0;
        for (int bits = 0; bits < 0x10000; bits++) {
            float actual = DType.halfToFloat((short) bits);
            double expected = StTestIO.halfRef(bits);
            if (Double.isNaN(expected)) {
                assertTrue(Float.isNaN(actual), String.format("0x%04x should be NaN", bits));
                nans++;
                continue;
            }
            // Every half is exactly representable as a float: compare bit for bit (signed zeros
            // included).
            assertEquals(Float.floatToRawIntBits((float) expected),
                    Float.floatToRawIntBits(actual),
                    String.format("0x%04x: expected %s, got %s", bits, expected, actual));
            assertEquals(expected, (double) actual, 0.0, String.format("0x%04x exact", bits));
        }
        assertEquals(2 * 1023, nans); // exponent 31, mantissa != 0, both signs
    }

    @Test
    void halfKnownValues() {
        assertEquals(1.0f, DType.halfToFloat((short) 0x3C00));
        assertEquals(-2.0f, DType.halfToFloat((short) 0xC000));
        assertEquals(65504.0f, DType.halfToFloat((short) 0x7BFF)); // largest finite
        assertEquals(0x1p-14f, DType.halfToFloat((short) 0x0400)); // smallest normal
        assertEquals(0x1p-24f, DType.halfToFloat((short) 0x0001)); // smallest subnormal
        assertEquals(0x3FFp-24f, DType.halfToFloat((short) 0x03FF)); // largest subnormal
        assertEquals(0.333251953125f, DType.halfToFloat((short) 0x3555));
        assertEquals(Float.POSITIVE_INFINITY, DType.halfToFloat((short) 0x7C00));
        assertEquals(Float.NEGATIVE_INFINITY, DType.halfToFloat((short) 0xFC00));
        assertEquals(Float.floatToRawIntBits(-0.0f),
                Float.floatToRawIntBits(DType.halfToFloat((short) 0x8000)));
        assertTrue(Float.isNaN(DType.halfToFloat((short) 0x7E00)));
        assertTrue(Float.isNaN(DType.halfToFloat((short) 0xFC01)));
    }

    private static ByteBuffer shorts(int... values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (int v : values) {
            b.putShort((short) v);
        }
        return b;
    }

    @Test
    void bf16KnownPatterns() {
        ByteBuffer b = shorts(0x3F80, 0xC000, 0x4049, 0x7F80, 0xFF80, 0x7FC0, 0x8000, 0x0001,
                0x3EAB, 0x7F7F);
        assertEquals(1.0f, DType.BF16.get(b, 0));
        assertEquals(-2.0f, DType.BF16.get(b, 1));
        assertEquals(3.140625f, DType.BF16.get(b, 2));
        assertEquals(Float.POSITIVE_INFINITY, DType.BF16.get(b, 3));
        assertEquals(Float.NEGATIVE_INFINITY, DType.BF16.get(b, 4));
        assertTrue(Float.isNaN(DType.BF16.get(b, 5)));
        assertEquals(Float.floatToRawIntBits(-0.0f), Float.floatToRawIntBits(DType.BF16.get(b, 6)));
        assertEquals(0x1p-133f, DType.BF16.get(b, 7)); // smallest subnormal
        assertEquals(0.333984375f, DType.BF16.get(b, 8)); // 0x3EAB = 1.0101011b * 2^-2
        assertEquals(0x1.FEp127f, DType.BF16.get(b, 9)); // largest finite
    }

    @Test
    void bf16AgreesWithIndependentDecoderOnAllPatterns() {
        ByteBuffer b = ByteBuffer.allocate(0x20000).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 0x10000; i++) {
            b.putShort((short) i);
        }
        float[] ref = StTestIO.decode("BF16", b.array());
        for (int i = 0; i < 0x10000; i++) {
            float actual = DType.BF16.get(b, i);
            if (Float.isNaN(ref[i])) {
                assertTrue(Float.isNaN(actual), String.format("0x%04x should be NaN", i));
            } else {
                assertEquals(Float.floatToRawIntBits(ref[i]), Float.floatToRawIntBits(actual),
                        String.format("0x%04x", i));
            }
        }
    }

    @Test
    void f16GetReadsLittleEndianElements() {
        ByteBuffer b = shorts(0x0000, 0x3C00, 0xC500, 0x3555);
        assertEquals(0.0f, DType.F16.get(b, 0));
        assertEquals(1.0f, DType.F16.get(b, 1));
        assertEquals(-5.0f, DType.F16.get(b, 2));
        assertEquals(0.333251953125f, DType.F16.get(b, 3));
    }

    @Test
    void f32() {
        float[] vals = {0f, -1.5f, Float.MIN_VALUE, Float.MAX_VALUE, 3.1415927f, -0.0f,
            Float.NEGATIVE_INFINITY};
        ByteBuffer b = ByteBuffer.allocate(vals.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : vals) {
            b.putFloat(v);
        }
        float[] ref = StTestIO.decode("F32", b.array());
        for (int i = 0; i < vals.length; i++) {
            assertEquals(Float.floatToRawIntBits(vals[i]),
                    Float.floatToRawIntBits(DType.F32.get(b, i)), "element " + i);
            assertEquals(Float.floatToRawIntBits(ref[i]),
                    Float.floatToRawIntBits(DType.F32.get(b, i)), "element " + i);
        }
        // Explicit little-endian bytes of 1.0f: 00 00 80 3F
        ByteBuffer one = ByteBuffer.wrap(new byte[] {0, 0, (byte) 0x80, 0x3F})
                .order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(1.0f, DType.F32.get(one, 0));
    }

    @Test
    void sizesAndNames() {
        assertEquals(4, DType.F32.size());
        assertEquals(2, DType.F16.size());
        assertEquals(2, DType.BF16.size());
        assertSame(DType.F32, DType.fromSafetensors("F32"));
        assertSame(DType.F16, DType.fromSafetensors("F16"));
        assertSame(DType.BF16, DType.fromSafetensors("BF16"));
        for (String s : new String[] {"F64", "I32", "I64", "U8", "BOOL", "F8_E4M3", "f32", ""}) {
            assertNull(DType.fromSafetensors(s), s);
        }
    }
}
