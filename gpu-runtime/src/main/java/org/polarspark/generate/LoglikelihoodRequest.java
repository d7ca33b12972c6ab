package org.polarspark.generate;

/**
 * log P(continuation | context), as lm-evaluation-harness's {@code loglikelihood}.
 *
 * @param context      token ids of the context (at least one: BOS or the document's prefix)
 * @param continuation token ids to score (at least one)
 */
public record LoglikelihoodRequest(int[] context, int[] continuation) {
    public LoglikelihoodRequest {
        if (context.length == 0) {
            throw new IllegalArgumentException("loglikelihood: the context needs at least one "
                    + "token (BOS)");
        }
        if (continuation.length == 0) {
            throw new IllegalArgumentException("loglikelihood: empty continuation");
        }
    }
}
