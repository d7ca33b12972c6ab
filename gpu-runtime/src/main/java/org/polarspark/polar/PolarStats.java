package org.polarspark.polar;

/**
 * A snapshot of a policy's selection counters (see {@link PolarCounters}).
 *
 * <p>Head counts are per (token, layer) the decoder asked about, dense layers (layer 0,
 * density 1.0) included, each adding G to {@code groupsTotal} and the kept count to
 * {@code groupsKept}. Neuron counts are per (forward, layer) union selection, each adding F to
 * {@code neuronsTotal} and k to {@code neuronsKept} (F when the MLP ran dense: no table, or the
 * 0.8 x F fallback).
 *
 * @param headSelections   selectGroups calls
 * @param groupsTotal      sum of G over those calls
 * @param groupsKept       sum of the groups kept
 * @param neuronSelections selectNeurons calls
 * @param neuronsTotal     sum of F over those calls
 * @param neuronsKept      sum of the neurons kept
 * @param routerNanos      wall time spent evaluating routers and taking top-k, in nanoseconds
 */
public record PolarStats(long headSelections, long groupsTotal, long groupsKept,
                         long neuronSelections, long neuronsTotal, long neuronsKept,
                         long routerNanos) {
    public static final PolarStats ZERO = new PolarStats(0, 0, 0, 0, 0, 0, 0);

    /** Mean active head (KV group) fraction: groupsKept / groupsTotal; NaN when nothing counted. */
    public double headFraction() {
        return groupsTotal == 0 ? Double.NaN : (double) groupsKept / groupsTotal;
    }

    /** Mean MLP k fraction: neuronsKept / neuronsTotal; NaN when nothing counted. */
    public double mlpFraction() {
        return neuronsTotal == 0 ? Double.NaN : (double) neuronsKept / neuronsTotal;
    }

    /** Field-wise sum (to aggregate partitions). */
    public PolarStats plus(PolarStats o) {
        return new PolarStats(headSelections + o.headSelections, groupsTotal + o.groupsTotal,
                groupsKept + o.groupsKept, neuronSelections + o.neuronSelections,
                neuronsTotal + o.neuronsTotal, neuronsKept + o.neuronsKept,
                routerNanos + o.routerNanos);
    }

    /** Field-wise difference (what happened between two snapshots). */
    public PolarStats minus(PolarStats o) {
        return new PolarStats(headSelections - o.headSelections, groupsTotal - o.groupsTotal,
                groupsKept - o.groupsKept, neuronSelections - o.neuronSelections,
                neuronsTotal - o.neuronsTotal, neuronsKept - o.neuronsKept,
                routerNanos - o.routerNanos);
    }
}
