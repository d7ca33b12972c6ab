package org.polarspark.generate.arrow;

import java.nio.charset.StandardCharsets;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.complex.ListVector;

/**
 * Reads and writes list columns through the vectors' own buffers.
 *
 * <p>A {@code list<int32>} column is two buffers: the offsets (int32, {@code rows + 1} of them)
 * and the child's values (int32, little-endian, contiguous). Row {@code i}'s ids are
 * {@code values[offsets[i] .. offsets[i+1])}. {@link #ints} reads them with
 * {@link ArrowBuf#getInt}, i.e. straight from Arrow's off-heap memory, without going through
 * boxed accessors; a device backend can copy the same range with one memcpy from
 * {@link #intsAddress}.
 */
public final class ArrowLists {
    private ArrowLists() {
    }

    /** Number of elements of row {@code row} of a list column. */
    public static int length(ListVector v, int row) {
        ArrowBuf off = v.getOffsetBuffer();
        return off.getInt((long) (row + 1) * ListVector.OFFSET_WIDTH)
                - off.getInt((long) row * ListVector.OFFSET_WIDTH);
    }

    /** Row {@code row} of a {@code list<int32>} column, read from the offset and value buffers. */
    public static int[] ints(ListVector v, int row) {
        ArrowBuf off = v.getOffsetBuffer();
        int start = off.getInt((long) row * ListVector.OFFSET_WIDTH);
        int end = off.getInt((long) (row + 1) * ListVector.OFFSET_WIDTH);
        IntVector data = (IntVector) v.getDataVector();
        ArrowBuf values = data.getDataBuffer();
        int[] out = new int[end - start];
        for (int k = 0; k < out.length; k++) {
            out[k] = values.getInt((long) (start + k) * IntVector.TYPE_WIDTH);
        }
        return out;
    }

    /** Off-heap address of row {@code row}'s first int32 (valid while the vector lives). */
    public static long intsAddress(ListVector v, int row) {
        int start = v.getOffsetBuffer().getInt((long) row * ListVector.OFFSET_WIDTH);
        return ((IntVector) v.getDataVector()).getDataBuffer().memoryAddress()
                + (long) start * IntVector.TYPE_WIDTH;
    }

    /** Row {@code row} of a {@code list<float64>} column. */
    public static double[] doubles(ListVector v, int row) {
        ArrowBuf off = v.getOffsetBuffer();
        int start = off.getInt((long) row * ListVector.OFFSET_WIDTH);
        int end = off.getInt((long) (row + 1) * ListVector.OFFSET_WIDTH);
        ArrowBuf values = ((Float8Vector) v.getDataVector()).getDataBuffer();
        double[] out = new double[end - start];
        for (int k = 0; k < out.length; k++) {
            out[k] = values.getDouble((long) (start + k) * Float8Vector.TYPE_WIDTH);
        }
        return out;
    }

    /** Row {@code row} of a {@code list<list<int32>>} column. */
    public static int[][] intMatrix(ListVector v, int row) {
        ListVector inner = (ListVector) v.getDataVector();
        int start = v.getElementStartIndex(row);
        int end = v.getElementEndIndex(row);
        int[][] out = new int[end - start][];
        for (int k = 0; k < out.length; k++) {
            out[k] = ints(inner, start + k);
        }
        return out;
    }

    /** Row {@code row} of a {@code list<list<float64>>} column. */
    public static double[][] doubleMatrix(ListVector v, int row) {
        ListVector inner = (ListVector) v.getDataVector();
        int start = v.getElementStartIndex(row);
        int end = v.getElementEndIndex(row);
        double[][] out = new double[end - start][];
        for (int k = 0; k < out.length; k++) {
            out[k] = doubles(inner, start + k);
        }
        return out;
    }

    /** Appends row {@code row} of a {@code list<int32>} column; rows must be written in order. */
    public static void writeInts(ListVector v, int row, int[] values) {
        int start = v.startNewValue(row);
        IntVector data = (IntVector) v.getDataVector();
        for (int k = 0; k < values.length; k++) {
            data.setSafe(start + k, values[k]);
        }
        v.endValue(row, values.length);
    }

    /** Appends row {@code row} of a {@code list<float64>} column; rows must be written in order. */
    public static void writeDoubles(ListVector v, int row, double[] values) {
        int start = v.startNewValue(row);
        Float8Vector data = (Float8Vector) v.getDataVector();
        for (int k = 0; k < values.length; k++) {
            data.setSafe(start + k, values[k]);
        }
        v.endValue(row, values.length);
    }

    /** Appends row {@code row} of a {@code list<list<int32>>} column. */
    public static void writeIntMatrix(ListVector v, int row, int[][] values) {
        int start = v.startNewValue(row);
        ListVector inner = (ListVector) v.getDataVector();
        for (int k = 0; k < values.length; k++) {
            writeInts(inner, start + k, values[k]);
        }
        v.endValue(row, values.length);
    }

    /** Appends row {@code row} of a {@code list<list<float64>>} column. */
    public static void writeDoubleMatrix(ListVector v, int row, double[][] values) {
        int start = v.startNewValue(row);
        ListVector inner = (ListVector) v.getDataVector();
        for (int k = 0; k < values.length; k++) {
            writeDoubles(inner, start + k, values[k]);
        }
        v.endValue(row, values.length);
    }

    /** A null list at {@code row} (its offsets still advance by zero). */
    public static void writeNull(ListVector v, int row) {
        v.setNull(row);
    }

    /** The string at {@code row}, or null. */
    public static String string(VarCharVector v, int row) {
        if (v.isNull(row)) {
            return null;
        }
        return new String(v.get(row), StandardCharsets.UTF_8);
    }

    /** Sets a string, or null. */
    public static void writeString(VarCharVector v, int row, String s) {
        if (s == null) {
            v.setNull(row);
        } else {
            v.setSafe(row, s.getBytes(StandardCharsets.UTF_8));
        }
    }

}
