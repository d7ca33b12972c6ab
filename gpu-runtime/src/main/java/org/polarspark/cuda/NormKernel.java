package org.polarspark.cuda;

import jcuda.driver.CUfunction;

/**
 * Launcher for kernels/norm.cu.
 * <pre>
 * layer:  y = (x - mean) / sqrt(var + eps) * w + b     (LayerNorm)
 * rms:    y = x / sqrt(mean(x^2) + eps) * w            (RMSNorm)
 *         x fp32 [n, h]; y bf16 [n, h]; w, b bf16 [h] or null; writeBack: also x = normalised
 * cast:   y = bf16(x)
 * gather: out[j] = x[rows[j]]                          out fp32 [n, h], rows int32 [n]
 * </pre>
 * Not checked on the device: rows[j] within x.
 */
public final class NormKernel {
    private static final int BLOCK = 1024;  // NORM_THREADS (kernels/norm_common.cuh)
    private final CUfunction layer;
    private final CUfunction rms;
    private final CUfunction cast;
    private final CUfunction gather;

    NormKernel(CudaModule m) {
        layer = m.function("norm_layer_f32");
        rms = m.function("norm_rms_f32");
        cast = m.function("norm_cast_f32");
        gather = m.function("norm_gather_f32");
    }

    /** Largest row of the register-resident norms (kernels/norm_common.cuh). */
    static final int MAX_H = 4 * BLOCK * 4;  // NORM_MAXJ float4 groups a thread

    /** The fused decode reduce (register-resident rows): h % 4 == 0 and h <= MAX_H. */
    static void normShape(String k, int h) {
        Check.that(h % 4 == 0 && h <= MAX_H, k, "hidden size must be a multiple of 4 and at most "
                + MAX_H + ", got " + h);
    }

    /** The standalone norms: rows of at most MAX_H (any length if not a multiple of 4). */
    private static void standaloneShape(String k, int h) {
        Check.that(h % 4 != 0 || h <= MAX_H, k, "hidden size must be at most " + MAX_H + ", got "
                + h);
    }

    private static void shapes(String k, DeviceBuffer x, DeviceBuffer y, int n, int h) {
        Check.positive(k, "n", n);
        Check.positive(k, "h", h);
        Check.fits(k, "x", x, (long) n * h, 4);
        Check.fits(k, "y", y, (long) n * h, 2);
    }

    public void layer(CudaStream s, DeviceBuffer x, DeviceBuffer y, DeviceBuffer w,
                      DeviceBuffer b, float eps, int n, int h, boolean writeBack) {
        String k = "norm_layer_f32";
        shapes(k, x, y, n, h);
        standaloneShape(k, h);
        Check.fitsOrNull(k, "w", w, h, 2);
        Check.fitsOrNull(k, "b", b, h, 2);
        new KernelArgs().ptr(x).ptr(y).ptr(w).ptr(b).f(eps).i(n).i(h).i(writeBack ? 1 : 0)
                .launch(layer, k, n, 1, 1, BLOCK, 0, s, "n=" + n + " h=" + h);
    }

    public void rms(CudaStream s, DeviceBuffer x, DeviceBuffer y, DeviceBuffer w, float eps,
                    int n, int h, boolean writeBack) {
        String k = "norm_rms_f32";
        shapes(k, x, y, n, h);
        standaloneShape(k, h);
        Check.fits(k, "w", w, h, 2);
        new KernelArgs().ptr(x).ptr(y).ptr(w).f(eps).i(n).i(h).i(writeBack ? 1 : 0)
                .launch(rms, k, n, 1, 1, BLOCK, 0, s, "n=" + n + " h=" + h);
    }

    public void cast(CudaStream s, DeviceBuffer x, DeviceBuffer y, int n, int h) {
        String k = "norm_cast_f32";
        shapes(k, x, y, n, h);
        new KernelArgs().ptr(x).ptr(y).i(n).i(h)
                .launch(cast, k, n, 1, 1, BLOCK, 0, s, "n=" + n + " h=" + h);
    }

    public void gather(CudaStream s, DeviceBuffer out, DeviceBuffer x, DeviceBuffer rows, int n,
                       int h) {
        String k = "norm_gather_f32";
        Check.positive(k, "n", n);
        Check.fits(k, "out", out, (long) n * h, 4);
        Check.fits(k, "rows", rows, n, 4);
        new KernelArgs().ptr(out).ptr(x).ptr(rows).i(n).i(h)
                .launch(gather, k, n, 1, 1, BLOCK, 0, s, "n=" + n + " h=" + h);
    }
}
