package org.polarspark.cpu;

import org.polarspark.model.ModelConfig;

/**
 * One sequence's K/V cache for the CPU backend: per layer, position-major
 * {@code [capacity][numKvHeads][headDim]} for K and for V. K is stored after RoPE (LLaMA).
 */
public final class CpuKvCache {
    private final int kvDim;
    private final int headDim;
    private final int capacity;
    final float[][] k; // (layer, capacity * kvDim)
    final float[][] v; // (layer, capacity * kvDim)
    int length;

    public CpuKvCache(ModelConfig c, int capacity) {
        if (capacity <= 0 || capacity > c.maxPositions()) {
            throw new IllegalArgumentException("KV cache capacity must be in [1, "
                    + c.maxPositions() + "] (max_position_embeddings), got " + capacity);
        }
        this.kvDim = c.kvDim();
        this.headDim = c.headDim();
        this.capacity = capacity;
        this.k = new float[c.numLayers()][capacity * kvDim];
        this.v = new float[c.numLayers()][capacity * kvDim];
    }

    /** Tokens cached so far: the next token's position. */
    public int length() {
        return length;
    }

    public int capacity() {
        return capacity;
    }

    /** K of one KV head at one position, copied out (for tests and calibration). */
    public float[] key(int layer, int position, int kvHead) {
        return slice(k[layer], position, kvHead);
    }

    /** V of one KV head at one position, copied out. */
    public float[] value(int layer, int position, int kvHead) {
        return slice(v[layer], position, kvHead);
    }

    private float[] slice(float[] a, int position, int kvHead) {
        if (position < 0 || position >= length) {
            throw new IndexOutOfBoundsException("position " + position + " of " + length);
        }
        float[] out = new float[headDim];
        System.arraycopy(a, position * kvDim + kvHead * headDim, out, 0, headDim);
        return out;
    }
}
