package org.polarspark.cuda;

import jcuda.driver.CUfunction;

/**
 * Launcher for kernels/lm_head.cu.
 * <pre>
 * argmax:  ids[r] = argmax logits[r] (lowest id on ties); logprob[r] = logits[r, ids[r]] - lse(r)
 * logprob: logprob[r] = logits[r, ids[r]] - lse(r) for given ids; greedy[r] = ids[r] is an argmax
 * logits fp32 [rows, vocab]; ids, greedy int32 [rows]; logprob fp32 [rows]
 * </pre>
 */
public final class LmHeadKernel {
    private static final int BLOCK = 256;
    private final CUfunction argmax;
    private final CUfunction logprob;

    LmHeadKernel(CudaModule m) {
        argmax = m.function("lmhead_argmax_f32");
        logprob = m.function("lmhead_logprob_f32");
    }

    public void argmax(CudaStream s, DeviceBuffer logits, int rows, int vocab, DeviceBuffer ids,
                       DeviceBuffer lp) {
        String k = "lmhead_argmax_f32";
        Check.positive(k, "rows", rows);
        Check.fits(k, "logits", logits, (long) rows * vocab, 4);
        Check.fits(k, "ids", ids, rows, 4);
        Check.fits(k, "logprob", lp, rows, 4);
        new KernelArgs().ptr(logits).i(rows).i(vocab).ptr(ids).ptr(lp)
                .launch(argmax, k, rows, 1, 1, BLOCK, 0, s, "rows=" + rows + " vocab=" + vocab);
    }

    public void logprob(CudaStream s, DeviceBuffer logits, int rows, int vocab, DeviceBuffer ids,
                        DeviceBuffer lp, DeviceBuffer greedy) {
        String k = "lmhead_logprob_f32";
        Check.positive(k, "rows", rows);
        Check.fits(k, "logits", logits, (long) rows * vocab, 4);
        Check.fits(k, "ids", ids, rows, 4);
        Check.fits(k, "logprob", lp, rows, 4);
        Check.fits(k, "greedy", greedy, rows, 4);
        new KernelArgs().ptr(logits).i(rows).i(vocab).ptr(ids).ptr(lp).ptr(greedy)
                .launch(logprob, k, rows, 1, 1, BLOCK, 0, s, "rows=" + rows + " vocab=" + vocab);
    }
}
