package org.polarspark.cuda;

import jcuda.driver.CUfunction;

/**
 * Launcher for kernels/decode_fused.cu: the split-K reduces of the decode step with the work
 * that follows them fused in. Both read the partials of {@link GemmKernel#partials} and give the
 * bits of the unfused path.
 * <pre>
 * residualNorm: x[m] += sum_z work[z][m] + bias; then no norm, LayerNorm or RMSNorm of x into
 *               y bf16 (weights w, b), writeBack: x = the normalised values too
 * qkvRopeKv:    qkv[m] = bf16(sum_z work[z][m] + bias); RoPE on q and k heads (invFreq not null);
 *               K and V appended to the paged cache at (rowOf[m], pos[m])
 * </pre>
 */
public final class DecodeFusedKernel {
    /** What follows the residual add. */
    public enum Norm {
        NONE, LAYER, RMS
    }

    private static final int BLOCK = 256;
    /** Threads of a residual + norm row: NORM_THREADS (kernels/norm_common.cuh). */
    private static final int NORM_BLOCK = 1024;
    private final CUfunction residualNorm;
    private final CUfunction qkvRopeKv;

    DecodeFusedKernel(CudaModule m) {
        residualNorm = m.function("decode_residual_norm_f32");
        qkvRopeKv = m.function("decode_qkv_rope_kv_bf16");
    }

    /** -Dpolar.norm.prefetch=false: no L2 prefetch of the residual row and norm weights. */
    private static final boolean PREFETCH = !"false".equals(System.getProperty(
            "polar.norm.prefetch"));

    public void residualNorm(CudaStream s, DeviceBuffer work, int splits, DeviceBuffer bias,
                             DeviceBuffer x, DeviceBuffer y, Norm norm, DeviceBuffer w,
                             DeviceBuffer b, float eps, int m, int n, boolean writeBack) {
        residualNorm(s, work, splits, bias, x, y, norm, w, b, eps, m, n, writeBack, false);
    }

    /**
     * As above; {@code afterTma}: the partials come from the TMA decode tile just before on the
     * stream, which lets its dependents launch from its start: this kernel is then launched as
     * a programmatic dependent (its launch overlaps the GEMM; -Dpolar.reduce.pdl=false: never).
     * qkvRopeKv is not: as a dependent it let the attention passes after it launch early and
     * sit on the SMs during the q/k/v GEMM (H100, 2026-11-26, same call, B=1: llama-2-7b 6.28
     * -> 6.25 ms and opt-6.7b 5.98 -> 5.93 with it a plain launch, llama-3-8b equal).
     */
    public void residualNorm(CudaStream s, DeviceBuffer work, int splits, DeviceBuffer bias,
                             DeviceBuffer x, DeviceBuffer y, Norm norm, DeviceBuffer w,
                             DeviceBuffer b, float eps, int m, int n, boolean writeBack,
                             boolean afterTma) {
        String k = "decode_residual_norm_f32";
        Check.positive(k, "M", m);
        Check.positive(k, "splits", splits);
        NormKernel.normShape(k, n);
        Check.fits(k, "work", work, (long) splits * m * n, 4);
        Check.fitsOrNull(k, "bias", bias, n, 2);
        Check.fits(k, "x", x, (long) m * n, 4);
        if (norm != Norm.NONE) {
            Check.fits(k, "y", y, (long) m * n, 2);
            Check.fitsOrNull(k, "w", w, n, 2);
            Check.fitsOrNull(k, "b", b, n, 2);
            Check.that(norm == Norm.LAYER || b == null, k, "RMSNorm takes no bias");
        }
        new KernelArgs().ptr(work).i(splits).ptr(bias).ptr(x).ptr(y).ptr(w).ptr(b).f(eps).i(m)
                .i(n).i(norm.ordinal()).i(writeBack ? 1 : 0).i(PREFETCH ? 1 : 0)
                .launch(afterTma && GemmKernel.REDUCE_PDL, residualNorm, k, m, 1, 1, NORM_BLOCK, 0, s,
                        "M=" + m + " N=" + n + " splits=" + splits + " norm=" + norm);
    }

    public void qkvRopeKv(CudaStream s, DeviceBuffer work, int splits, DeviceBuffer bias,
                          DeviceBuffer qkv, DeviceBuffer pos, DeviceBuffer invFreq, int m,
                          int heads, int kvHeads, int headDim, DeviceBuffer kCache,
                          DeviceBuffer vCache, DeviceBuffer rowOf, DeviceBuffer blockTable,
                          int maxBlocks, int blockSize) {
        qkvRopeKv(s, work, splits, bias, qkv, pos, invFreq, m, heads, kvHeads, headDim, kCache,
                vCache, rowOf, blockTable, maxBlocks, blockSize, 0, 0, null, null);
    }

    /**
     * As above with a head router fused in: the partials' rows are N + routerUnits wide (the
     * GEMM's weights carry the router's rows after q/k/v), and routerIdx int32 [m, routerK] gets
     * each row's routerK best units (logit = the router columns' sum + routerBias, or + 0):
     * the bits of gemm_store_f32 over the router rows with the same K chunks, then
     * {@link RouterKernel#topk}.
     */
    public void qkvRopeKv(CudaStream s, DeviceBuffer work, int splits, DeviceBuffer bias,
                          DeviceBuffer qkv, DeviceBuffer pos, DeviceBuffer invFreq, int m,
                          int heads, int kvHeads, int headDim, DeviceBuffer kCache,
                          DeviceBuffer vCache, DeviceBuffer rowOf, DeviceBuffer blockTable,
                          int maxBlocks, int blockSize, int routerUnits, int routerK,
                          DeviceBuffer routerBias, DeviceBuffer routerIdx) {
        String k = "decode_qkv_rope_kv_bf16";
        int n = (heads + 2 * kvHeads) * headDim;
        String shapes = "M=" + m + " heads=" + heads + " kv_heads=" + kvHeads + " head_dim="
                + headDim + " splits=" + splits + (routerUnits > 0 ? " router units="
                + routerUnits + " k=" + routerK : "");
        Check.positive(k, "M", m);
        Check.positive(k, "splits", splits);
        Check.that(headDim % 2 == 0, k, "head_dim must be even (" + shapes + ")");
        Check.that(routerUnits >= 0 && routerUnits <= RouterKernel.MAX_UNITS, k, "router units"
                + " must be in [0, " + RouterKernel.MAX_UNITS + "] (" + shapes + ")");
        Check.fits(k, "work", work, (long) splits * m * (n + routerUnits), 4);
        Check.fitsOrNull(k, "bias", bias, n, 2);
        Check.fits(k, "qkv", qkv, (long) m * n, 2);
        Check.fits(k, "pos", pos, m, 4);
        Check.fits(k, "row_of", rowOf, m, 4);
        Check.fitsOrNull(k, "inv_freq", invFreq, headDim / 2, 4);
        if (routerUnits > 0) {
            Check.that(routerK >= 1 && routerK <= routerUnits, k, "router k must be in [1, "
                    + routerUnits + "] (" + shapes + ")");
            Check.fitsOrNull(k, "router bias", routerBias, routerUnits, 2);
            Check.fits(k, "router idx", routerIdx, (long) m * routerK, 4);
        }
        int pairs = n / 2;
        new KernelArgs().ptr(work).i(splits).ptr(bias).ptr(qkv).ptr(pos).ptr(invFreq).i(m)
                .i(heads).i(kvHeads).i(headDim).ptr(kCache).ptr(vCache).ptr(rowOf)
                .ptr(blockTable).i(maxBlocks).i(blockSize).i(routerUnits).i(routerK)
                .ptr(routerBias).ptr(routerIdx)
                .launch(qkvRopeKv, k, (pairs + BLOCK - 1) / BLOCK + (routerUnits > 0 ? 1 : 0), m,
                        1, BLOCK, 0, s, shapes);
    }
}
