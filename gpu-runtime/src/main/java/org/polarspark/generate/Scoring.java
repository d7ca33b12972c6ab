package org.polarspark.generate;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.polarspark.model.TextTokenizer;

/** Request construction with lm-evaluation-harness semantics. */
public final class Scoring {
    private Scoring() {
    }

    /**
     * {@code loglikelihood_rolling}: the whole document scored, split into windows of at most
     * {@code maxLen} tokens. The first window is conditioned on {@code prefixToken} (EOT/BOS)
     * alone; each later window predicts the next {@code maxLen} unscored tokens with as much
     * preceding document as fits in {@code maxLen} inputs. Every token is scored exactly once.
     */
    public static List<LoglikelihoodRequest> rollingWindows(int[] tokens, int prefixToken,
                                                            int maxLen) {
        if (maxLen < 1) {
            throw new IllegalArgumentException("maxLen must be >= 1, got " + maxLen);
        }
        List<LoglikelihoodRequest> out = new ArrayList<>();
        if (tokens.length == 0) {
            return out;
        }
        int first = Math.min(maxLen, tokens.length);
        out.add(new LoglikelihoodRequest(new int[] {prefixToken},
                Arrays.copyOfRange(tokens, 0, first)));
        int predicted = first;
        while (predicted < tokens.length) {
            int len = Math.min(tokens.length - predicted, maxLen);
            int end = predicted + len;
            // inputs are tokens[end - maxLen - 1 .. end - 2]; of those, the first
            // (maxLen - len + 1) are context and the rest are continuation inputs
            int ctxStart = Math.max(0, end - maxLen - 1);
            out.add(new LoglikelihoodRequest(Arrays.copyOfRange(tokens, ctxStart, predicted),
                    Arrays.copyOfRange(tokens, predicted, end)));
            predicted = end;
        }
        return out;
    }

    /**
     * Context and continuation ids for {@code loglikelihood(context, continuation)}, as lm-eval
     * encodes them: trailing spaces of the context move to the continuation, the whole string is
     * encoded once, and the continuation is what follows the context's own tokens. Special
     * tokens (BOS) are on the context.
     */
    public static LoglikelihoodRequest contextContinuation(TextTokenizer tok, String context,
                                                           String continuation) {
        int spaces = 0;
        while (spaces < context.length()
                && context.charAt(context.length() - 1 - spaces) == ' ') {
            spaces++;
        }
        if (spaces > 0) {
            continuation = context.substring(context.length() - spaces) + continuation;
            context = context.substring(0, context.length() - spaces);
        }
        int[] whole = tok.encode(context + continuation);
        int[] ctx = tok.encode(context);
        int[] cont;
        if (whole.length > ctx.length && Arrays.equals(ctx, Arrays.copyOf(whole, ctx.length))) {
            cont = Arrays.copyOfRange(whole, ctx.length, whole.length);
        } else {
            cont = tok.encodePlain(continuation); // the token boundary merged across: fall back
        }
        return new LoglikelihoodRequest(ctx, cont);
    }
}
