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
 * @param cumulativeLogprob sum of the generated tokens' log-probabilities
 * @param finishReason    stop, length or eos
 * @param stopReason      the stop string that matched, or null
 * @param timeToFirstTokenMs time from the start of the row's prefill to its first token
 * @param decodeMs        time from the first token to the last
 */
public record GenerationResult(int[] tokens, String text, double[] logprobs,
                               double cumulativeLogprob, FinishReason finishReason,
                               String stopReason, double timeToFirstTokenMs, double decodeMs) {
}
