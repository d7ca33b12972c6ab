package org.polarspark.polar;

import java.nio.file.Path;

/**
 * How an engine applies Polar Sparsity.
 *
 * @param enabled    off: dense everywhere (the routers are not even loaded)
 * @param routerDir  the directory holding {@code polar/polar.json} and the router file; null
 *                   means the model directory
 * @param density    overrides every layer's head density except layer 0 (null: the file's)
 * @param everyToken false (deployed): prompts and contexts are prefilled dense and only decode
 *                   steps are sparse; true: every token, prompt included, goes through the
 *                   routers (stricter, as the paper measured accuracy)
 */
public record PolarSettings(boolean enabled, Path routerDir, Double density, boolean everyToken) {
    public static final PolarSettings OFF = new PolarSettings(false, null, null, false);

    public PolarSettings {
        if (density != null && !(density > 0 && density <= 1)) {
            throw new IllegalArgumentException("polar density must be in (0, 1], got " + density);
        }
    }

    /** Polar on, with the routers beside the model and their own densities. */
    public static PolarSettings on() {
        return new PolarSettings(true, null, null, false);
    }

    /** The directory whose {@code polar/} holds the routers. */
    public Path dir(Path modelDir) {
        return routerDir != null ? routerDir : modelDir;
    }

    /** A short description for logs and output metadata. */
    public String describe() {
        if (!enabled) {
            return "dense";
        }
        return "polar(" + (density == null ? "file densities" : "density " + density)
                + (everyToken ? ", every token" : ", decode only") + ")";
    }
}
