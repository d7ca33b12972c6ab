package org.polarspark.generate;

import java.nio.file.Path;
import org.polarspark.cpu.CpuEngine;
import org.polarspark.cuda.CudaDtype;
import org.polarspark.cuda.CudaEngine;
import org.polarspark.cuda.GpuContext;
import org.polarspark.polar.PolarSettings;

/** Opens an {@link Engine} for a model directory on a backend. */
public final class EngineFactory {
    private EngineFactory() {
    }

    /**
     * True when engines of this backend implement {@link Engine#observeDense} (calibration):
     * both backends do (the CUDA one copies its 16-bit activations from its prefill), so AUTO,
     * which resolves to one of them, does too.
     */
    public static boolean canObserve(Backend backend) {
        switch (backend) {
            case CPU:
            case CUDA:
            case AUTO:
                return true;
            default:
                return false;
        }
    }

    /**
     * @param modelDir   local checkpoint directory
     * @param backend    CPU or CUDA (AUTO must be resolved by the caller with the task's GPU)
     * @param gpuAddress the device ordinal for CUDA (from Spark's resource scheduling), or null
     * @param maxBatch   rows decoded together
     */
    public static Engine open(Path modelDir, Backend backend, String gpuAddress, int maxBatch) {
        return open(modelDir, backend, gpuAddress, maxBatch, PolarSettings.OFF);
    }

    /**
     * As {@link #open(Path, Backend, String, int)}, with Polar Sparsity settings: when enabled,
     * the routers ({@code polar/polar.json} and its router file, beside the model or in
     * {@code polar.routerDir()}) are loaded and validated against the model, and missing or
     * mismatched routers are an error naming the file, never a silent dense run.
     */
    public static Engine open(Path modelDir, Backend backend, String gpuAddress, int maxBatch,
                              PolarSettings polar) {
        return open(modelDir, backend, gpuAddress, maxBatch, polar, CudaDtype.DEFAULT);
    }

    /**
     * As {@link #open(Path, Backend, String, int, PolarSettings)}, with the CUDA backend's
     * element type ({@code bf16} or {@code fp16} weights, activations and KV cache; fp32
     * residual and accumulation in both). The CPU backend, the oracle, computes in fp32 whatever
     * {@code cudaDtype} says.
     */
    public static Engine open(Path modelDir, Backend backend, String gpuAddress, int maxBatch,
                              PolarSettings polar, CudaDtype cudaDtype) {
        java.util.Objects.requireNonNull(cudaDtype, "cudaDtype");
        switch (backend) {
            case CPU:
                return CpuEngine.load(modelDir, maxBatch, polar);
            case CUDA: {
                int ordinal;
                try {
                    ordinal = gpuAddress == null || gpuAddress.isBlank() ? 0
                            : Integer.parseInt(gpuAddress.trim());
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("GPU address '" + gpuAddress
                            + "' is not a device ordinal");
                }
                if (!GpuContext.isAvailable()) {
                    throw new IllegalStateException("backend 'cuda' was asked for (GPU "
                            + ordinal + ") but no CUDA device or driver is usable here; there "
                            + "is no silent fallback: use backend 'cpu' or run on a GPU host");
                }
                return CudaEngine.load(modelDir, ordinal, maxBatch, polar, cudaDtype);
            }
            case AUTO:
            default:
                throw new IllegalArgumentException("resolve backend 'auto' with the task's GPU "
                        + "address before opening an engine");
        }
    }
}
