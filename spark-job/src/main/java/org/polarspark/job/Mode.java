package org.polarspark.job;

import java.util.Locale;

/** What the job computes for each input row. */
public enum Mode {
    /** Sample continuations of a prompt (vLLM's sampling parameters). */
    GENERATE,
    /** lm-eval {@code loglikelihood_rolling} of a text: log-likelihood, perplexity, bits/byte. */
    SCORE,
    /** lm-eval multiple choice: log-likelihood of each choice given a context; acc, acc_norm. */
    MC,
    /**
     * Calibrate Polar Sparsity routers: dense forwards over a corpus collect per-layer samples,
     * one Spark task per layer trains that layer's routers; writes {@code polar/} to the output.
     */
    CALIBRATE;

    public String wire() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static Mode parse(String s) {
        return valueOf(s.trim().toUpperCase(Locale.ROOT));
    }
}
