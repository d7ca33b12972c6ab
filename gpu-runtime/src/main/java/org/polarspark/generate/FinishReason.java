package org.polarspark.generate;

/** Why a sequence stopped. */
public enum FinishReason {
    /** A stop string appeared in the generated text. */
    STOP,
    /** max_tokens (or the context length) was reached. */
    LENGTH,
    /** The model produced an end-of-sequence token. */
    EOS;

    public String wire() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
