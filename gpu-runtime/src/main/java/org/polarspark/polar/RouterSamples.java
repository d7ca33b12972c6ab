package org.polarspark.polar;

/**
 * Training samples for one layer's routers: per token, the router input x, a score per KV group
 * (from which the head labels are the top groups) and, for ReLU models, which MLP neurons fire.
 * {@link CalibrationSamples} reads them from the calibration files; tests build them in memory.
 * Implementations must allow concurrent reads.
 */
public interface RouterSamples {
    /** Number of tokens. */
    int size();

    /** H: the router input width. */
    int hidden();

    /** G: KV groups (head router outputs). */
    int groups();

    /** F: MLP neurons, or 0 when there are no MLP labels. */
    int ffn();

    /** Copies token i's router input (H floats) into dst at off. */
    void x(int i, float[] dst, int off);

    /**
     * Token i's group scores (G floats; a higher score is a more important group). The head
     * labels are the top {@code kLabel} groups of these.
     */
    void groupScores(int i, float[] dst);

    /** Token i's firing MLP neurons as a bitset of ceil(F / 64) words (bit j of word j / 64). */
    void active(int i, long[] dst);

    /** Words of an {@link #active} bitset for F neurons. */
    static int words(int ffn) {
        return (ffn + 63) >>> 6;
    }

    /** True when bit j is set. */
    static boolean bit(long[] bits, int j) {
        return (bits[j >>> 6] & (1L << (j & 63))) != 0;
    }
}
