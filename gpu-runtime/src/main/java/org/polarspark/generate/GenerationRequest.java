package org.polarspark.generate;

/**
 * One sequence to generate.
 *
 * @param promptIds prompt token ids (special tokens included), 1 to context-1 tokens
 * @param params    sampling settings
 * @param seed      this sequence's sampling seed (derive it from the job seed and the row id, so
 *                  that a retried task samples the same tokens)
 */
public record GenerationRequest(int[] promptIds, SamplingParams params, long seed) {
}
