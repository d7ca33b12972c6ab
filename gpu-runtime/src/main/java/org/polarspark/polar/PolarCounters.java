package org.polarspark.polar;

import java.util.concurrent.atomic.LongAdder;

/**
 * Thread-safe selection counters (LongAdder), shared by every policy of this package and usable
 * by other backends that select on the device. A {@link #snapshot} taken while other threads
 * count is a consistent-enough sum (each field is exact for the updates it saw; fields may
 * disagree by the updates in flight).
 */
public final class PolarCounters {
    private final LongAdder headSelections = new LongAdder();
    private final LongAdder groupsTotal = new LongAdder();
    private final LongAdder groupsKept = new LongAdder();
    private final LongAdder neuronSelections = new LongAdder();
    private final LongAdder neuronsTotal = new LongAdder();
    private final LongAdder neuronsKept = new LongAdder();
    private final LongAdder routerNanos = new LongAdder();

    /** Counts {@code selections} head selections of G = total groups each, kept in all. */
    public void groups(long selections, long total, long kept) {
        headSelections.add(selections);
        groupsTotal.add(total);
        groupsKept.add(kept);
    }

    /** Counts one union neuron selection keeping {@code kept} of {@code total} (F). */
    public void neurons(long total, long kept) {
        neuronSelections.increment();
        neuronsTotal.add(total);
        neuronsKept.add(kept);
    }

    public void routerNanos(long nanos) {
        routerNanos.add(nanos);
    }

    public PolarStats snapshot() {
        return new PolarStats(headSelections.sum(), groupsTotal.sum(), groupsKept.sum(),
                neuronSelections.sum(), neuronsTotal.sum(), neuronsKept.sum(), routerNanos.sum());
    }
}
