package org.polarspark.generate;

/**
 * One generated sequence.
 *
 * @param tokens          generated token ids (EOS not included; tokens after a stop string are
 *                        not included either)
 * @param text            decoded text, cut before the stop string if one matched (null when no
 *                        tokenizer was given)
 * @param logprobs        log-probability of each generated token under the model's raw
 *                        distribution (null unless asked for)
 * @param topIds          per step, the ids of the most likely tokens (params.logprobs of them),
 *                        most likely first; null unless logprobs > 0 was asked for
 * @param topLogprobs     their log-probabilities, aligned with topIds
 * @param cumulativeLogprob sum of the generated tokens' log-probabilities
 * @param finishReason    stop, length or eos
 * @param stopReason      the stop string that matched, or null
 * @param timeToFirstTokenMs time from the start of the row's prefill to its first token
 * @param decodeMs        time from the first token to the last
 * @param error           null, or why this row could not be generated (then tokens is empty
 *                        and finishReason null)
 */
public record GenerationResult(int[] tokens, String text, double[] logprobs,
                               int[][] topIds, double[][] topLogprobs, double cumulativeLogprob, FinishReason finishReason,
                               String stopReason, double timeToFirstTokenMs, double decodeMs, String error) {
    /** A row that could not be generated. */
    public static GenerationResult error(String message) {
        return new GenerationResult(new int[0], null, null, null, null, 0.0, null, null, 0, 0,
                message);
    }

    public boolean ok() {
        return error == null;
    }
}
