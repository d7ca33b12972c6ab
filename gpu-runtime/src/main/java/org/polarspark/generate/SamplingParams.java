package org.polarspark.generate;

import java.util.List;

/**
 * Sampling settings, named as vLLM names them.
 *
 * @param temperature 0 for greedy (argmax); otherwise logits are divided by it. Default 1.0.
 * @param topP        nucleus sampling: keep the smallest set of most likely tokens whose
 *                    probability reaches topP; 1.0 keeps all. In (0, 1].
 * @param topK        keep the topK most likely tokens; -1 (or 0) keeps all
 * @param maxTokens   most tokens to generate per sequence (>= 1). vLLM's default is 16.
 * @param stop        strings that end generation when they appear in the generated text; the
 *                    stop string itself is not part of the output text
 * @param seed        base seed; each row's sampling seed derives from it and the row
 * @param n           sequences to sample per prompt
 * @param logprobs    null: no per-token log-probabilities; k >= 0: the sampled token's
 *                    log-probability plus the k most likely alternatives at each step
 */
public record SamplingParams(double temperature, double topP, int topK, int maxTokens,
                             List<String> stop, long seed, int n, Integer logprobs) {
    /** Greedy decoding of up to maxTokens tokens. */
    public static SamplingParams greedy(int maxTokens) {
        return new SamplingParams(0.0, 1.0, -1, maxTokens, List.of(), 0L, 1, null);
    }

    public SamplingParams {
        if (!(temperature >= 0) || Double.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be >= 0, got " + temperature);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("top_p must be in (0, 1], got " + topP);
        }
        if (topK < -1) {
            throw new IllegalArgumentException("top_k must be -1 (disabled) or >= 0, got " + topK);
        }
        if (maxTokens < 1) {
            throw new IllegalArgumentException("max_tokens must be >= 1, got " + maxTokens);
        }
        if (n < 1) {
            throw new IllegalArgumentException("n must be >= 1, got " + n);
        }
        if (logprobs != null && (logprobs < 0 || logprobs > 20)) {
            throw new IllegalArgumentException("logprobs must be in [0, 20], got " + logprobs);
        }
        stop = stop == null ? List.of() : List.copyOf(stop);
        for (String s : stop) {
            if (s.isEmpty()) {
                throw new IllegalArgumentException("stop strings must not be empty");
            }
        }
    }

    public boolean isGreedy() {
        return temperature == 0.0;
    }
}
