package org.polarspark.cuda;

import jcuda.driver.CUfunction;

/**
 * Launcher for kernels/init.cu: {@code p[i] = bf16(scale * (2 u(seed, i) - 1))} with u a
 * SplitMix64 hash of (seed, i) in [0, 1). p bf16 [n]. Used for synthetic benchmark weights and
 * KV caches, generated on the device.
 */
public final class InitKernel {
    private static final int BLOCK = 256;
    private final CUfunction fn;
    private final CUfunction stamp;

    InitKernel(CudaModule m) {
        fn = m.function("init_uniform_bf16");
        stamp = m.function("timeline_stamp");
    }

    /** stamps[slot] = the GPU's global timer in ns, when the stream reaches this point. */
    public void stamp(CudaStream s, DeviceBuffer stamps, int slot) {
        String k = "timeline_stamp";
        Check.fits(k, "stamps", stamps, slot + 1L, 8);
        new KernelArgs().ptr(stamps).i(slot).launch(stamp, k, 1, 1, 1, 1, 0, s, "slot=" + slot);
    }

    public void uniformBf16(CudaStream s, DeviceBuffer p, long n, long seed, float scale) {
        String k = "init_uniform_bf16";
        Check.positive(k, "n", n);
        Check.fits(k, "p", p, n, 2);
        int grid = (int) Math.min(65535, (n + BLOCK - 1) / BLOCK);
        KernelArgs a = new KernelArgs().ptr(p);
        a.l(n).l(seed).f(scale).launch(fn, k, grid, 1, 1, BLOCK, 0, s, "n=" + n);
    }
}
