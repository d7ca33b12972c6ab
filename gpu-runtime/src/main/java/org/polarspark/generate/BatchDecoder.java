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

    /**
     * Runs new tokens for each sequence as {@link #forward} does and scores given tokens at each
     * sequence's last {@code targets[i].length} new positions: the log-probability of
     * {@code targets[i][j]} and whether it is the greedy token there. This default takes them
     * from {@link #forward}'s logits; a backend may compute them where the logits are, so that
     * none leave it.
     */
    default TokenScores score(List<S> seqs, int[][] tokens, int[][] targets,
                              SparsityPolicy policy) {
        int[] last = new int[targets.length];
        for (int r = 0; r < targets.length; r++) {
            last[r] = targets[r].length;
        }
        return TokenScores.fromLogits(forward(seqs, tokens, last, policy), targets);
    }

    /**
     * Optional: one decode step (one token per sequence) with the next token sampled on the
     * backend, so no logits leave the device. Returns the sampled ids and writes each one's
     * log-probability (raw distribution) into {@code logprobs}; returns null if the backend
     * cannot (the caller then samples from {@link #forward}'s logits).
     *
     * @param steps index of the token being sampled in each row's output (the sampler counter)
     */
    default int[] decodeSample(List<S> seqs, int[] tokens, SparsityPolicy policy,
                               SamplingParams[] params, long[] seeds, int[] steps,
                               double[] logprobs) {
        return null;
    }

    /**
     * Optional: a prefill (each sequence's new tokens, a prompt of any length, as
     * {@link #forward} runs them, chunked as the backend needs) with the token after each
     * sequence's last position sampled on the backend, so no logits leave the device. The same
     * sampling contract as {@link #decodeSample}: a row's token depends only on its logits, its
     * {@code params}, its seed and its step, so a row samples the same token whichever of the two
     * methods runs it. Returns the sampled ids and writes each one's log-probability (raw
     * distribution) into {@code logprobs}; returns null, having run nothing (no K/V appended),
     * if the backend cannot (the caller then samples from {@link #forward}'s logits).
     *
     * @param steps index of the token being sampled in each row's output (the sampler counter):
     *              0 for a request's first token
     */
    default int[] prefillSample(List<S> seqs, int[][] tokens, SparsityPolicy policy,
                                SamplingParams[] params, long[] seeds, int[] steps,
                                double[] logprobs) {
        return null;
    }

    /** Releases a sequence's KV storage. */
    void close(S seq);
}
