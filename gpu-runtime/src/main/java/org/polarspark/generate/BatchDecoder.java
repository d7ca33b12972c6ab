package org.polarspark.generate;

import java.util.List;
import org.polarspark.model.ModelConfig;
import org.polarspark.polar.SparsityPolicy;

/**
 * What the {@link Generator} needs from a backend: sequences with KV storage, and a batched
 * forward over any mix of prefill and decode rows.
 *
 * @param <S> the backend's sequence handle (its KV cache or KV blocks)
 */
public interface BatchDecoder<S> {
    ModelConfig config();

    /**
     * A new empty sequence that can grow to {@code capacity} tokens, or null if the KV cache has
     * no room for it now (it may after other sequences close).
     */
    S open(int capacity);

    /** Whether a sequence of this capacity could fit an otherwise empty KV cache. */
    boolean fitsEver(int capacity);

    /**
     * Runs new tokens for each sequence (appending their K/V) and returns logits at each
     * sequence's last {@code logitsLast[i]} new positions: [row][position][vocab].
     */
    float[][][] forward(List<S> seqs, int[][] tokens, int[] logitsLast, SparsityPolicy policy);

    /** Releases a sequence's KV storage. */
    void close(S seq);
}
