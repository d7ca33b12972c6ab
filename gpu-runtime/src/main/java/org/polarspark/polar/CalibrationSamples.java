package org.polarspark.polar;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * One layer's calibration file, read through memory maps (so a layer larger than the heap is
 * fine: the OS pages it in). The file is a sequence of fixed-size little-endian records, one per
 * token, written by {@link Calibration}:
 *
 * <pre>
 *   float32 x[hidden]          router input (pre-attention norm output)
 *   float32 headNorm[heads]    L2 norm of each query head's attention output (before o_proj)
 *   int64   active[ceil(ffn/64)]  ReLU models only: bit j set when fc1 output j &gt; 0
 * </pre>
 *
 * <p>Group scores for the head labels: the L2 norm of the group's concatenated head outputs,
 * sqrt(sum of its heads' squared norms), i.e. the magnitude the group feeds into o_proj. For
 * multi-head attention (one head per group) that is the head's own norm, the paper's label.
 */
public final class CalibrationSamples implements RouterSamples {
    /** Records per mapped segment are chosen so that a segment stays under this many bytes. */
    private static final long SEGMENT_BYTES = 1L << 30;

    private final int hidden;
    private final int heads;
    private final int groups;
    private final int ffn; // 0: no MLP labels
    private final int words;
    private final int recordBytes;
    private final int size;
    private final int perSegment;
    private final MappedByteBuffer[] segments;

    /**
     * @param file   the layer's file
     * @param hidden H
     * @param heads  query heads (norms per record)
     * @param groups KV groups (heads must be a multiple)
     * @param ffn    F for ReLU models (bitsets present), else 0
     */
    public CalibrationSamples(Path file, int hidden, int heads, int groups, int ffn) {
        if (heads % groups != 0) {
            throw new IllegalArgumentException(heads + " heads are not a multiple of " + groups
                    + " groups");
        }
        this.hidden = hidden;
        this.heads = heads;
        this.groups = groups;
        this.ffn = ffn;
        this.words = ffn == 0 ? 0 : RouterSamples.words(ffn);
        this.recordBytes = recordBytes(hidden, heads, ffn);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long len = ch.size();
            if (len % recordBytes != 0) {
                throw new IllegalArgumentException(file + ": " + len + " bytes is not a whole "
                        + "number of " + recordBytes + "-byte records");
            }
            long n = len / recordBytes;
            if (n > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(file + ": too many records (" + n + ")");
            }
            this.size = (int) n;
            this.perSegment = (int) Math.max(1, SEGMENT_BYTES / recordBytes);
            int segs = (int) ((n + perSegment - 1) / perSegment);
            this.segments = new MappedByteBuffer[segs];
            for (int s = 0; s < segs; s++) {
                long from = (long) s * perSegment * recordBytes;
                long bytes = Math.min(len - from, (long) perSegment * recordBytes);
                segments[s] = ch.map(FileChannel.MapMode.READ_ONLY, from, bytes);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read calibration samples", e);
        }
    }

    /** Bytes of one record. */
    public static int recordBytes(int hidden, int heads, int ffn) {
        return 4 * hidden + 4 * heads + (ffn == 0 ? 0 : 8 * RouterSamples.words(ffn));
    }

    /** A view of record i positioned at its start (little-endian; private to the caller). */
    private ByteBuffer record(int i) {
        if (i < 0 || i >= size) {
            throw new IndexOutOfBoundsException("sample " + i + " of " + size);
        }
        ByteBuffer b = segments[i / perSegment].duplicate().order(ByteOrder.LITTLE_ENDIAN);
        b.position((i % perSegment) * recordBytes);
        return b;
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public int hidden() {
        return hidden;
    }

    @Override
    public int groups() {
        return groups;
    }

    @Override
    public int ffn() {
        return ffn;
    }

    public int heads() {
        return heads;
    }

    @Override
    public void x(int i, float[] dst, int off) {
        record(i).asFloatBuffer().get(dst, off, hidden);
    }

    /** Token i's per-head norms (heads floats). */
    public void headNorms(int i, float[] dst) {
        ByteBuffer b = record(i);
        b.position(b.position() + 4 * hidden);
        b.asFloatBuffer().get(dst, 0, heads);
    }

    @Override
    public void groupScores(int i, float[] dst) {
        float[] n = new float[heads];
        headNorms(i, n);
        int per = heads / groups;
        for (int g = 0; g < groups; g++) {
            double s = 0;
            for (int h = g * per; h < (g + 1) * per; h++) {
                s += (double) n[h] * n[h];
            }
            dst[g] = (float) Math.sqrt(s);
        }
    }

    @Override
    public void active(int i, long[] dst) {
        if (ffn == 0) {
            throw new IllegalStateException("these samples have no MLP labels");
        }
        ByteBuffer b = record(i);
        b.position(b.position() + 4 * hidden + 4 * heads);
        b.asLongBuffer().get(dst, 0, words);
    }
}
