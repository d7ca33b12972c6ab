package org.polarspark.cuda;

import jcuda.driver.CUfunction;

/**
 * Launcher for kernels/router.cu.
 * <pre>
 * topk: idx[t, 0..k) = indices of the k largest logits[t, 0..G), most likely first, ties by the
 *       lower index.   logits fp32 [n, G]; idx int32 [n, k]; G <= 64; 1 <= k <= G
 * unionScores: score[j] = sum over rows r of max(0, logits[r, j])   logits fp32 [n, F]
 * selectTopk:  idx[0..k) = the k largest scores, in increasing index order (ties: lowest ids)
 * </pre>
 */
public final class RouterKernel {
    static final int MAX_UNITS = 64;
    private final CUfunction topk;
    private final CUfunction union;
    private final CUfunction reduceUnion;
    /**
     * Scores the MLP top-k keeps in shared memory: 64 KiB, plus 34 KiB of histograms and
     * candidates, fits every supported GPU (99 KiB per block on sm_86/89).
     */
    static final int SELECT_CACHE = 16 * 1024;
    private final CUfunction head;
    private final CUfunction select;

    RouterKernel(CudaModule m) {
        topk = m.function("router_topk_f32");
        union = m.function("router_union_scores_f32");
        reduceUnion = m.function("router_reduce_union_f32");
        head = m.function("router_head_topk_bf16");
        select = m.function("router_select_topk_f32");
        Cuda.check(jcuda.driver.JCudaDriver.cuFuncSetAttribute(select,
                jcuda.driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                SELECT_CACHE * 4), "cuFuncSetAttribute(router_select_topk_f32, shared memory)");
    }

    /** kernels/router.cu HEAD_ROUTER_GPB and HEAD_ROUTER_WPG: groups per block, warps per group. */
    private static final int HEAD_GROUPS_PER_BLOCK = 2;
    private static final int HEAD_WARPS_PER_GROUP = 4;

    /**
     * Head router and top-k fused (decode): idx[t, 0..k) = the k largest of y[t] . W[g] + b[g]
     * over g < G, most likely first, ties by the lower index. y bf16 [n, hidden] (stride ldy),
     * W bf16 [G, hidden], bias bf16 [G] or null, idx int32 [n, k]. logits: fp32 scratch
     * [n * G]; counters: int32 [n], all zero before the first launch on it (each launch leaves
     * them zero again).
     */
    public void headTopk(CudaStream s, DeviceBuffer y, int ldy, DeviceBuffer w, DeviceBuffer bias,
                         int n, int hidden, int units, int k, DeviceBuffer idx,
                         DeviceBuffer logits, DeviceBuffer counters) {
        String name = "router_head_topk_bf16";
        Check.positive(name, "n", n);
        Check.that(hidden % 8 == 0 && ldy % 8 == 0, name, "hidden and ldy must be multiples of"
                + " 8, got " + hidden + ", " + ldy);
        Check.that(units >= 1 && units <= MAX_UNITS, name, "selection units must be in [1, "
                + MAX_UNITS + "], got " + units);
        Check.that(k >= 1 && k <= units, name, "k must be in [1, " + units + "], got " + k);
        Check.fits(name, "y", y, (long) (n - 1) * ldy + hidden, 2);
        Check.fits(name, "W", w, (long) units * hidden, 2);
        Check.fitsOrNull(name, "bias", bias, units, 2);
        Check.fits(name, "idx", idx, (long) n * k, 4);
        Check.fits(name, "logits", logits, (long) n * units, 4);
        Check.fits(name, "counters", counters, n, 4);
        int blocks = (units + HEAD_GROUPS_PER_BLOCK - 1) / HEAD_GROUPS_PER_BLOCK;
        new KernelArgs().ptr(y).i(ldy).ptr(w).ptr(bias).i(n).i(hidden).i(units).i(k).ptr(idx)
                .ptr(logits).ptr(counters)
                .launch(head, name, n, blocks, 1, 32 * HEAD_WARPS_PER_GROUP * HEAD_GROUPS_PER_BLOCK,
                        0, s, "n=" + n
                        + " G=" + units + " k=" + k);
    }

    public void unionScores(CudaStream s, DeviceBuffer logits, int n, int f, DeviceBuffer score) {
        String name = "router_union_scores_f32";
        Check.positive(name, "n", n);
        Check.fits(name, "logits", logits, (long) n * f, 4);
        Check.fits(name, "score", score, f, 4);
        new KernelArgs().ptr(logits).i(n).i(f).ptr(score)
                .launch(union, name, (f + 255) / 256, 1, 1, 256, 0, s, "n=" + n + " F=" + f);
    }

    /** unionScores over the logits that split-K partials work[splits][n][f] add up to. */
    public void reduceUnion(CudaStream s, DeviceBuffer work, int splits, int n, int f,
                            DeviceBuffer score) {
        String name = "router_reduce_union_f32";
        Check.positive(name, "n", n);
        Check.positive(name, "splits", splits);
        Check.that(n <= 64, name, "at most 64 rows, got " + n);
        Check.fits(name, "work", work, (long) splits * n * f, 4);
        Check.fits(name, "score", score, f, 4);
        new KernelArgs().ptr(work).i(splits).i(n).i(f).ptr(score)
                .launch(reduceUnion, name, (f + 31) / 32, 1, 1, 256, 0, s, "n=" + n + " F="
                        + f + " splits=" + splits);
    }

    /**
     * Threads of the select block. Measured on the H100 (opt-6.7b Polar, 2026-11-26, same run,
     * with the earlier select of 7 passes over all scores): 512 and 256 were slower than 1024 at
     * every batch (the kernel was instruction-bound); not measured again with the current one.
     */
    private static final int SELECT_THREADS = 1024;

    public void selectTopk(CudaStream s, DeviceBuffer score, int f, int k, DeviceBuffer idx) {
        String name = "router_select_topk_f32";
        Check.that(k >= 1 && k <= f, name, "k must be in [1, " + f + "], got " + k);
        Check.fits(name, "score", score, f, 4);
        Check.fits(name, "idx", idx, k, 4);
        int cached = Math.min(f, SELECT_CACHE);
        new KernelArgs().ptr(score).i(f).i(k).ptr(idx).i(cached)
                .launch(select, name, 1, 1, 1, SELECT_THREADS, cached * 4, s, "F=" + f + " k="
                        + k);
    }

    public void topk(CudaStream s, DeviceBuffer logits, int n, int units, int k,
                     DeviceBuffer idx) {
        String name = "router_topk_f32";
        Check.positive(name, "n", n);
        Check.that(units >= 1 && units <= MAX_UNITS, name, "selection units (KV groups) must be in"
                + " [1, " + MAX_UNITS + "], got " + units);
        Check.that(k >= 1 && k <= units, name, "k must be in [1, " + units + "], got " + k);
        Check.fits(name, "logits", logits, (long) n * units, 4);
        Check.fits(name, "idx", idx, (long) n * k, 4);
        new KernelArgs().ptr(logits).i(n).i(units).i(k).ptr(idx)
                .launch(topk, name, (n + 3) / 4, 1, 1, 128, 0, s, "n=" + n + " G=" + units
                        + " k=" + k);
    }
}
