package org.polarspark.job;

import com.fasterxml.jackson.annotation.JsonProperty;
import org.polarspark.generate.EngineStats;
import org.polarspark.polar.PolarStats;

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
 *   <li>Polar Sparsity ({@code sparsity} is {@code PolarSettings.describe()}):
 *       {@code active_head_fraction} = sum of KV groups kept / sum of KV groups over every
 *       (token, layer) the routers were asked about in the partition's engine calls, dense
 *       layers (layer 0) counted as fully kept, null when dense or nothing was routed;
 *       {@code active_neuron_fraction} likewise over MLP neuron selections (per forward and
 *       layer; 1.0 when the MLP ran dense under Polar), null when no MLP selection was made
 *       (dense, or a model without a ReLU MLP); {@code router_ms}: time evaluating routers and
 *       taking top-k, null when dense. The raw sums ({@code polar_*}) let the driver weight
 *       partitions by their totals.</li>
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
    /** The engine's Polar settings, {@code PolarSettings.describe()}: "dense" or "polar(...)". */
    @JsonProperty("sparsity") String sparsity;
    /** Polar Sparsity: groups kept / groups asked about; null when dense or nothing routed. */
    @JsonProperty("active_head_fraction") Double activeHeadFraction;
    /** Polar Sparsity: neurons kept / neurons asked about; null when no MLP selection. */
    @JsonProperty("active_neuron_fraction") Double activeNeuronFraction;
    /** Polar Sparsity: router evaluation and top-k time; null when dense. */
    @JsonProperty("router_ms") Double routerMs;
    @JsonProperty("polar_head_selections") long polarHeadSelections;
    @JsonProperty("polar_groups_total") long polarGroupsTotal;
    @JsonProperty("polar_groups_kept") long polarGroupsKept;
    @JsonProperty("polar_neuron_selections") long polarNeuronSelections;
    @JsonProperty("polar_neurons_total") long polarNeuronsTotal;
    @JsonProperty("polar_neurons_kept") long polarNeuronsKept;
    @JsonProperty("polar_router_nanos") long polarRouterNanos;

    void add(EngineStats s) {
        inputTokens += s.prefillTokens();
        outputTokens += s.decodeTokens();
        prefillMs += s.prefillNanos() / 1e6;
        decodeMs += s.decodeNanos() / 1e6;
        forwardCalls += s.forwardCalls();
        maxBatchRows = Math.max(maxBatchRows, s.maxBatchRows());
        PolarStats p = s.polar();
        if (p != null) {
            polarHeadSelections += p.headSelections();
            polarGroupsTotal += p.groupsTotal();
            polarGroupsKept += p.groupsKept();
            polarNeuronSelections += p.neuronSelections();
            polarNeuronsTotal += p.neuronsTotal();
            polarNeuronsKept += p.neuronsKept();
            polarRouterNanos += p.routerNanos();
        }
    }

    /** The Polar counters summed so far. */
    PolarStats polar() {
        return new PolarStats(polarHeadSelections, polarGroupsTotal, polarGroupsKept,
                polarNeuronSelections, polarNeuronsTotal, polarNeuronsKept, polarRouterNanos);
    }

    void countRow(String status) {
        outputRows++;
        switch (status) {
            case OutputSchemas.OK -> okRows++;
            case OutputSchemas.TRUNCATED -> truncatedRows++;
            default -> errorRows++;
        }
    }

    /**
     * Sets the derived figures.
     *
     * @param polarOn whether the engine ran with Polar Sparsity (else the Polar figures are null)
     */
    void finish(double wallMs, boolean polarOn) {
        this.wallMs = wallMs;
        PolarStats p = polar();
        activeHeadFraction = polarOn ? fraction(p.headFraction()) : null;
        activeNeuronFraction = polarOn ? fraction(p.mlpFraction()) : null;
        routerMs = polarOn ? p.routerNanos() / 1e6 : null;
        double s = wallMs / 1000.0;
        inputTokensPerS = s > 0 ? inputTokens / s : 0;
        outputTokensPerS = s > 0 ? outputTokens / s : 0;
        tokensPerS = s > 0 ? (inputTokens + outputTokens) / s : 0;
    }

    private static Double fraction(double f) {
        return Double.isNaN(f) ? null : f;
    }
}
