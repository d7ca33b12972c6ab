package org.polarspark.generate.arrow;

import java.util.List;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * The Arrow schemas of the batches that go into the engine and of the results that come back.
 * Every column name is defined here once.
 *
 * <p><b>Prompt batch</b> (generate): {@code row_id} utf8, {@code prompt} utf8 (nullable: the text
 * is informative only), {@code prompt_ids} list&lt;int32&gt; (the tokenizer's output, special
 * tokens included), {@code seed} int64 (the row's sampling seed).
 *
 * <p><b>Generation results</b>: one row per (prompt, sample), prompts in batch order and samples
 * 0..n-1 within a prompt; {@code row_index} points back into the prompt batch.
 *
 * <p><b>Log-likelihood batch</b>: {@code row_index} int32 (the caller's grouping key, e.g. the
 * document a rolling window belongs to), {@code context_ids}, {@code continuation_ids}
 * list&lt;int32&gt;. <b>Log-likelihood results</b>: aligned 1:1 with the requests.
 */
public final class ArrowSchemas {
    private ArrowSchemas() {
    }

    public static final String ROW_ID = "row_id";
    public static final String PROMPT = "prompt";
    public static final String PROMPT_IDS = "prompt_ids";
    public static final String SEED = "seed";

    public static final String ROW_INDEX = "row_index";
    public static final String SAMPLE_INDEX = "sample_index";
    public static final String GENERATED_TEXT = "generated_text";
    public static final String TOKEN_IDS = "token_ids";
    public static final String NUM_INPUT_TOKENS = "num_input_tokens";
    public static final String FINISH_REASON = "finish_reason";
    public static final String STOP_REASON = "stop_reason";
    public static final String CUMULATIVE_LOGPROB = "cumulative_logprob";
    public static final String LOGPROBS = "logprobs";
    public static final String TOP_TOKEN_IDS = "top_token_ids";
    public static final String TOP_LOGPROBS = "top_logprobs";
    public static final String TIME_TO_FIRST_TOKEN_MS = "time_to_first_token_ms";
    public static final String DECODE_MS = "decode_ms";

    public static final String CONTEXT_IDS = "context_ids";
    public static final String CONTINUATION_IDS = "continuation_ids";
    public static final String LOGLIKELIHOOD = "loglikelihood";
    public static final String IS_GREEDY = "is_greedy";
    public static final String NUM_TOKENS = "num_tokens";

    static final ArrowType INT32 = new ArrowType.Int(32, true);
    static final ArrowType INT64 = new ArrowType.Int(64, true);
    static final ArrowType FLOAT64 = new ArrowType.FloatingPoint(FloatingPointPrecision.DOUBLE);

    static Field scalar(String name, ArrowType type, boolean nullable) {
        return new Field(name, nullable ? FieldType.nullable(type) : FieldType.notNullable(type),
                null);
    }

    /** list&lt;element&gt; with non-null elements. */
    static Field list(String name, boolean nullable, Field element) {
        FieldType t = nullable ? FieldType.nullable(ArrowType.List.INSTANCE)
                : FieldType.notNullable(ArrowType.List.INSTANCE);
        return new Field(name, t, List.of(element));
    }

    static Field element(ArrowType type) {
        return scalar("$data$", type, false);
    }

    public static final Schema PROMPTS = new Schema(List.of(
            scalar(ROW_ID, ArrowType.Utf8.INSTANCE, false),
            scalar(PROMPT, ArrowType.Utf8.INSTANCE, true),
            list(PROMPT_IDS, false, element(INT32)),
            scalar(SEED, INT64, false)));

    public static final Schema GENERATIONS = new Schema(List.of(
            scalar(ROW_INDEX, INT32, false),
            scalar(SAMPLE_INDEX, INT32, false),
            scalar(SEED, INT64, false),
            scalar(GENERATED_TEXT, ArrowType.Utf8.INSTANCE, true),
            list(TOKEN_IDS, false, element(INT32)),
            scalar(NUM_INPUT_TOKENS, INT32, false),
            scalar(FINISH_REASON, ArrowType.Utf8.INSTANCE, false),
            scalar(STOP_REASON, ArrowType.Utf8.INSTANCE, true),
            scalar(CUMULATIVE_LOGPROB, FLOAT64, false),
            list(LOGPROBS, true, element(FLOAT64)),
            list(TOP_TOKEN_IDS, true, list("$data$", false, element(INT32))),
            list(TOP_LOGPROBS, true, list("$data$", false, element(FLOAT64))),
            scalar(TIME_TO_FIRST_TOKEN_MS, FLOAT64, false),
            scalar(DECODE_MS, FLOAT64, false)));

    public static final Schema LOGLIKELIHOOD_REQUESTS = new Schema(List.of(
            scalar(ROW_INDEX, INT32, false),
            list(CONTEXT_IDS, false, element(INT32)),
            list(CONTINUATION_IDS, false, element(INT32))));

    public static final Schema LOGLIKELIHOOD_RESULTS = new Schema(List.of(
            scalar(ROW_INDEX, INT32, false),
            scalar(LOGLIKELIHOOD, FLOAT64, false),
            scalar(IS_GREEDY, ArrowType.Bool.INSTANCE, false),
            scalar(NUM_TOKENS, INT32, false)));
}
