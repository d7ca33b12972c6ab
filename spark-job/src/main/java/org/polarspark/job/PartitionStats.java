package org.polarspark.job;

import com.fasterxml.jackson.annotation.JsonProperty;
import org.polarspark.generate.EngineStats;

/**
 * What one partition (task) did, written to {@code <output>/_stats/part-NNNNN.json} when the
 * partition is done. Definitions (also in the README):
 * <ul>
 *   <li>{@code input_tokens}: prompt/context tokens run through prefill (each of n samples
 *       counts its prompt; every rolling window and choice counts its inputs);</li>
 *   <li>{@code output_tokens}: tokens produced by decoding;</li>
 *   <li>{@code prefill_ms}, {@code decode_ms}: engine wall time in forward calls that did some
 *       prefill, and in decode-only calls;</li>
 *   <li>{@code wall_ms}: from the partition's first row to its last result, including
 *       tokenization and, if this task loaded it, the model ({@code model_load_ms});</li>
 *   <li>{@code *_tokens_per_s}: those tokens divided by {@code wall_ms}.</li>
 * </ul>
 */
final class PartitionStats {
    @JsonProperty("partition") int partition;
    @JsonProperty("attempt") int attempt;
    @JsonProperty("executor_id") String executorId;
    @JsonProperty("host") String host;
    @JsonProperty("device") String device;
    @JsonProperty("backend") String backend;
    @JsonProperty("gpu_address") String gpuAddress;
    @JsonProperty("max_batch") int maxBatch;
    @JsonProperty("batch_rows") int batchRows;
    @JsonProperty("rows") long rows;
    @JsonProperty("output_rows") long outputRows;
    @JsonProperty("ok_rows") long okRows;
    @JsonProperty("truncated_rows") long truncatedRows;
    @JsonProperty("error_rows") long errorRows;
    @JsonProperty("input_tokens") long inputTokens;
    @JsonProperty("output_tokens") long outputTokens;
    @JsonProperty("prefill_ms") double prefillMs;
    @JsonProperty("decode_ms") double decodeMs;
    @JsonProperty("engine_forward_calls") long forwardCalls;
    @JsonProperty("max_batch_rows") int maxBatchRows;
    @JsonProperty("model_load_ms") long modelLoadMs;
    @JsonProperty("model_copied") boolean modelCopied;
    @JsonProperty("wall_ms") double wallMs;
    @JsonProperty("input_tokens_per_s") double inputTokensPerS;
    @JsonProperty("output_tokens_per_s") double outputTokensPerS;
    @JsonProperty("tokens_per_s") double tokensPerS;
    /** Polar Sparsity: mean fraction of attention heads kept in decode; null while dense. */
    @JsonProperty("active_head_fraction") Double activeHeadFraction;
    /** Polar Sparsity: mean fraction of MLP neurons kept in decode; null while dense. */
    @JsonProperty("active_neuron_fraction") Double activeNeuronFraction;

    void add(EngineStats s) {
        inputTokens += s.prefillTokens();
        outputTokens += s.decodeTokens();
        prefillMs += s.prefillNanos() / 1e6;
        decodeMs += s.decodeNanos() / 1e6;
        forwardCalls += s.forwardCalls();
        maxBatchRows = Math.max(maxBatchRows, s.maxBatchRows());
    }

    void countRow(String status) {
        outputRows++;
        switch (status) {
            case OutputSchemas.OK -> okRows++;
            case OutputSchemas.TRUNCATED -> truncatedRows++;
            default -> errorRows++;
        }
    }

    void finish(double wallMs) {
        this.wallMs = wallMs;
        double s = wallMs / 1000.0;
        inputTokensPerS = s > 0 ? inputTokens / s : 0;
        outputTokensPerS = s > 0 ? outputTokens / s : 0;
        tokensPerS = s > 0 ? (inputTokens + outputTokens) / s : 0;
    }
}
