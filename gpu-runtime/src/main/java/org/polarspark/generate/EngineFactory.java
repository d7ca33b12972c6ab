package org.polarspark.generate;

import java.nio.file.Path;
import org.polarspark.cpu.CpuEngine;

/** Opens an {@link Engine} for a model directory on a backend. */
public final class EngineFactory {
    private EngineFactory() {
    }

    /**
     * @param modelDir   local checkpoint directory
     * @param backend    CPU or CUDA (AUTO must be resolved by the caller with the task's GPU)
     * @param gpuAddress the device ordinal for CUDA (from Spark's resource scheduling), or null
     * @param maxBatch   rows decoded together
     */
    public static Engine open(Path modelDir, Backend backend, String gpuAddress, int maxBatch) {
        switch (backend) {
            case CPU:
                return CpuEngine.load(modelDir, maxBatch);
            case CUDA:
                throw new UnsupportedOperationException("backend 'cuda' was asked for (GPU "
                        + gpuAddress + ") but this build has no CUDA decoder yet; use backend "
                        + "'cpu'. There is no silent fallback.");
            case AUTO:
            default:
                throw new IllegalArgumentException("resolve backend 'auto' with the task's GPU "
                        + "address before opening an engine");
        }
    }
}
