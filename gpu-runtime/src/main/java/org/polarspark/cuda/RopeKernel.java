package org.polarspark.cuda;

import jcuda.driver.CUfunction;

/**
 * Launcher for kernels/rope.cu: rotate-half RoPE in place on the q and k heads of the fused QKV
 * output.
 * <pre>
 * qkv bf16 [n, rowStride]: q heads at column 0, k heads at column kOffset
 * pos int32 [n]; invFreq fp32 [headDim / 2] (scaling already applied)
 * angle = pos * invFreq[i];  x[i], x[i + half] -> x[i] cos - x[i+half] sin, x[i+half] cos + x[i] sin
 * </pre>
 */
public final class RopeKernel {
    private static final int BLOCK = 128;
    private final CUfunction fn;

    RopeKernel(CudaModule m) {
        fn = m.function("rope_rotate_half_bf16");
    }

    public void run(CudaStream s, DeviceBuffer qkv, DeviceBuffer pos, DeviceBuffer invFreq, int n,
                    int rowStride, int heads, int kvHeads, int kOffset, int headDim) {
        String k = "rope_rotate_half_bf16";
        Check.positive(k, "n", n);
        Check.that(headDim % 2 == 0, k, "head_dim must be even, got " + headDim);
        Check.that(kOffset + kvHeads * headDim <= rowStride && heads * headDim <= kOffset, k,
                "q/k columns do not fit the row (heads " + heads + ", kv " + kvHeads
                        + ", head_dim " + headDim + ", k offset " + kOffset + ", stride "
                        + rowStride + ")");
        Check.fits(k, "qkv", qkv, (long) n * rowStride, 2);
        Check.fits(k, "pos", pos, n, 4);
        Check.fits(k, "inv_freq", invFreq, headDim / 2, 4);
        new KernelArgs().ptr(qkv).ptr(pos).ptr(invFreq).i(n).i(rowStride).i(heads).i(kvHeads)
                .i(kOffset).i(headDim)
                .launch(fn, k, n, ((heads + kvHeads) * (headDim / 2) + BLOCK - 1) / BLOCK, 1,
                        BLOCK, 0, s, "n=" + n + " heads=" + heads);
    }
}
