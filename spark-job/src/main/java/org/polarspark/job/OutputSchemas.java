package org.polarspark.job;

import java.util.LinkedHashSet;
import java.util.Set;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * The output schema of each mode (passthrough columns follow these). The README documents each
 * column; the tests check the written files against these.
 */
final class OutputSchemas {
    private OutputSchemas() {
    }

    static final String OK = "ok";
    static final String ERROR = "error";
    static final String TRUNCATED = "truncated";

    /** One element of top_logprobs: a candidate token at one step. */
    static final StructType TOP_LOGPROB = new StructType()
            .add("token_id", DataTypes.IntegerType, false)
            .add("token", DataTypes.StringType, true)
            .add("logprob", DataTypes.DoubleType, false);

    static final StructType GENERATE = new StructType()
            .add("row_id", DataTypes.StringType, false)
            .add("sample_index", DataTypes.IntegerType, false)
            .add("generated_text", DataTypes.StringType, true)
            .add("token_ids", DataTypes.createArrayType(DataTypes.IntegerType, false), true)
            .add("num_input_tokens", DataTypes.IntegerType, true)
            .add("num_generated_tokens", DataTypes.IntegerType, true)
            .add("finish_reason", DataTypes.StringType, true)
            .add("stop_reason", DataTypes.StringType, true)
            .add("cumulative_logprob", DataTypes.DoubleType, true)
            .add("logprobs", DataTypes.createArrayType(DataTypes.DoubleType, false), true)
            .add("top_logprobs", DataTypes.createArrayType(DataTypes.createArrayType(
                    TOP_LOGPROB, false), false), true)
            .add("seed", DataTypes.LongType, false)
            .add("time_to_first_token_ms", DataTypes.DoubleType, true)
            .add("decode_ms", DataTypes.DoubleType, true)
            .add("status", DataTypes.StringType, false)
            .add("error", DataTypes.StringType, true)
            .add("truncated_tokens", DataTypes.IntegerType, false);

    static final StructType SCORE = new StructType()
            .add("row_id", DataTypes.StringType, false)
            .add("num_tokens", DataTypes.IntegerType, true)
            .add("num_bytes", DataTypes.LongType, true)
            .add("num_words", DataTypes.IntegerType, true)
            .add("loglikelihood", DataTypes.DoubleType, true)
            .add("perplexity", DataTypes.DoubleType, true)
            .add("bits_per_byte", DataTypes.DoubleType, true)
            .add("status", DataTypes.StringType, false)
            .add("error", DataTypes.StringType, true);

    static final StructType MC = new StructType()
            .add("row_id", DataTypes.StringType, false)
            .add("label", DataTypes.IntegerType, true)
            .add("choice_loglikelihoods", DataTypes.createArrayType(DataTypes.DoubleType, false),
                    true)
            .add("choice_lengths", DataTypes.createArrayType(DataTypes.IntegerType, false), true)
            .add("pred", DataTypes.IntegerType, true)
            .add("pred_norm", DataTypes.IntegerType, true)
            .add("acc", DataTypes.DoubleType, true)
            .add("acc_norm", DataTypes.DoubleType, true)
            .add("status", DataTypes.StringType, false)
            .add("error", DataTypes.StringType, true)
            .add("truncated_tokens", DataTypes.IntegerType, false);

    static StructType of(Mode mode) {
        return switch (mode) {
            case GENERATE -> GENERATE;
            case SCORE -> SCORE;
            case MC -> MC;
            case CALIBRATE -> throw new IllegalArgumentException("calibrate writes polar/, not "
                    + "rows");
        };
    }

    /** The job's own column names of a mode (a passthrough column may not take one). */
    static Set<String> reserved(Mode mode) {
        Set<String> s = new LinkedHashSet<>();
        for (StructField f : of(mode).fields()) {
            s.add(f.name());
        }
        return s;
    }

    /** The mode's schema followed by the passthrough columns as read from the input. */
    static StructType withPassthrough(Mode mode, StructType standardized, JobConfig cfg) {
        StructType out = of(mode);
        for (String c : cfg.passthrough()) {
            StructField f = standardized.apply(c);
            out = out.add(f.name(), f.dataType(), true);
        }
        return out;
    }
}
