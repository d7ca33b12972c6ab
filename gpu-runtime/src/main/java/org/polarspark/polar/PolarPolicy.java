package org.polarspark.polar;

/**
 * A Polar Sparsity policy driven by a {@link PolarConfig} (densities and the MLP k table), with
 * selection counters for the statistics "mean active head fraction", "MLP k fraction" and router
 * time. Implementations are thread-safe: one policy may serve several decoders at once.
 */
public interface PolarPolicy extends SparsityPolicy {
    /** The settings the selections follow. */
    PolarConfig config();

    /** The counters so far (take two snapshots and {@link PolarStats#minus} for an interval). */
    PolarStats stats();
}
