package org.polarspark.generate;

/**
 * Counters of one engine call (or a sum of calls).
 *
 * @param prefillTokens prompt/context tokens run through prefill
 * @param decodeTokens  tokens produced by decode steps
 * @param prefillNanos  wall time in forward calls that prefilled
 * @param decodeNanos   wall time in decode-only forward calls
 * @param forwardCalls  forward calls (batches)
 * @param maxBatchRows  largest number of rows in one forward call
 * @param polar         Polar Sparsity selections made in the call (ZERO when dense)
 */
public record EngineStats(long prefillTokens, long decodeTokens, long prefillNanos,
                          long decodeNanos, long forwardCalls, int maxBatchRows,
                          org.polarspark.polar.PolarStats polar) {
    public static final EngineStats ZERO = new EngineStats(0, 0, 0, 0, 0, 0,
            org.polarspark.polar.PolarStats.ZERO);

    /** Counters without Polar selections. */
    public EngineStats(long prefillTokens, long decodeTokens, long prefillNanos, long decodeNanos,
                       long forwardCalls, int maxBatchRows) {
        this(prefillTokens, decodeTokens, prefillNanos, decodeNanos, forwardCalls, maxBatchRows,
                org.polarspark.polar.PolarStats.ZERO);
    }

    public EngineStats plus(EngineStats o) {
        return new EngineStats(prefillTokens + o.prefillTokens, decodeTokens + o.decodeTokens,
                prefillNanos + o.prefillNanos, decodeNanos + o.decodeNanos,
                forwardCalls + o.forwardCalls, Math.max(maxBatchRows, o.maxBatchRows),
                polar.plus(o.polar));
    }

    public EngineStats withPolar(org.polarspark.polar.PolarStats p) {
        return new EngineStats(prefillTokens, decodeTokens, prefillNanos, decodeNanos,
                forwardCalls, maxBatchRows, p);
    }
}
