package org.polarspark.cuda;

import java.util.ArrayList;
import java.util.List;

/**
 * One sequence's share of the paged KV cache: the blocks reserved for it (enough for its whole
 * capacity, reserved at admission so it can never run out mid-generation) and its length.
 */
public final class CudaSequence {
    final List<Integer> blocks = new ArrayList<>();
    final int capacity;
    int length;
    boolean closed;

    CudaSequence(int capacity) {
        this.capacity = capacity;
    }

    /** Tokens whose K/V are cached. */
    public int length() {
        return length;
    }

    public int capacity() {
        return capacity;
    }

    public List<Integer> blocks() {
        return List.copyOf(blocks);
    }
}
