package org.polarspark.generate;

import java.util.Locale;

/** Which decoder runs the model. There is no silent fallback from one to another. */
public enum Backend {
    /** The fp32 CPU reference decoder. */
    CPU,
    /** The CUDA decoder (needs an NVIDIA GPU and the kernel image). */
    CUDA,
    /** CUDA when a GPU address is given, else CPU: resolved once, before loading. */
    AUTO;

    public static Backend parse(String s) {
        try {
            return valueOf(s.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("backend must be one of cpu, cuda, auto; got '" + s
                    + "'");
        }
    }

    /** AUTO resolved for a task that has (or has not) a GPU address. */
    public Backend resolve(String gpuAddress) {
        if (this != AUTO) {
            return this;
        }
        return gpuAddress != null && !gpuAddress.isEmpty() ? CUDA : CPU;
    }

    public String wire() {
        return name().toLowerCase(Locale.ROOT);
    }
}
