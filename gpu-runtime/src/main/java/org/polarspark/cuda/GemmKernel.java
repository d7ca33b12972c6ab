package org.polarspark.cuda;

import jcuda.driver.CUfunction;

/**
 * Launcher for kernels/gemm.cu: tensor-core GEMM with fused epilogues.
 * <pre>
 * acc[m, n] = sum_k A[m, k] W[n, k]      A bf16 [M, K] (stride lda), W bf16 [N, K] (stride ldw)
 * STORE_BF16   out bf16[m, n]  = acc + bias[n]
 * RELU_BF16    out bf16[m, n]  = max(acc + bias[n], 0)
 * ACCUM_F32    out fp32[m, n] += acc + bias[n]          (residual add)
 * STORE_F32    out fp32[m, n]  = acc + bias[n]          (logits)
 * SWIGLU_BF16  W rows interleave gate and up (2j, 2j+1), N = 2F:
 *              out bf16[m, j] = silu(acc[m,2j] + bias[2j]) * (acc[m,2j+1] + bias[2j+1])
 * bias bf16 [N] or null; out row stride ldc.
 * </pre>
 * Preconditions (checked here): K, lda, ldw multiples of 8 (16-byte vector loads); N even.
 */
public final class GemmKernel {
    /** Output tile of one block (rows of A x rows of W). */
    static final int BM = 64;
    static final int BN = 64;
    private static final int THREADS = 128;

    public enum Epilogue {
        STORE_BF16("gemm_store_bf16", 2), RELU_BF16("gemm_relu_bf16", 2),
        ACCUM_F32("gemm_accum_f32", 4), STORE_F32("gemm_store_f32", 4),
        SWIGLU_BF16("gemm_swiglu_bf16", 2);

        final String symbol;
        final int outBytes;

        Epilogue(String symbol, int outBytes) {
            this.symbol = symbol;
            this.outBytes = outBytes;
        }
    }

    private final CUfunction[] fns = new CUfunction[Epilogue.values().length];

    GemmKernel(CudaModule m) {
        for (Epilogue e : Epilogue.values()) {
            fns[e.ordinal()] = m.function(e.symbol);
        }
    }

    public void run(Epilogue epi, CudaStream s, DeviceBuffer a, int lda, DeviceBuffer w, int ldw,
                    DeviceBuffer bias, DeviceBuffer out, int ldc, int m, int n, int k) {
        String name = epi.symbol;
        String shapes = "M=" + m + " N=" + n + " K=" + k + " lda=" + lda + " ldw=" + ldw
                + " ldc=" + ldc;
        Check.positive(name, "M", m);
        Check.positive(name, "N", n);
        Check.positive(name, "K", k);
        Check.that(k % 8 == 0 && lda % 8 == 0 && ldw % 8 == 0, name,
                "K, lda and ldw must be multiples of 8 (" + shapes + ")");
        Check.that(lda >= k && ldw >= k, name, "lda and ldw must be >= K (" + shapes + ")");
        Check.that(n % 2 == 0, name, "N must be even (" + shapes + ")");
        int outCols = epi == Epilogue.SWIGLU_BF16 ? n / 2 : n;
        Check.that(ldc >= outCols, name, "ldc must be >= " + outCols + " (" + shapes + ")");
        Check.fits(name, "A", a, (long) (m - 1) * lda + k, 2);
        Check.fits(name, "W", w, (long) (n - 1) * ldw + k, 2);
        Check.fitsOrNull(name, "bias", bias, n, 2);
        Check.fits(name, "out", out, (long) (m - 1) * ldc + outCols, epi.outBytes);
        new KernelArgs().ptr(a).i(lda).ptr(w).i(ldw).ptr(bias).ptr(out).i(ldc).i(m).i(n).i(k)
                .launch(fns[epi.ordinal()], name, (n + BN - 1) / BN, (m + BM - 1) / BM, 1,
                        THREADS, 0, s, shapes);
    }
}
