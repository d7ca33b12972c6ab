package org.polarspark.cuda;

import jcuda.driver.CUfunction;

/**
 * Launcher for kernels/sampling.cu: one token per row sampled on the device.
 * <pre>
 * T = temperature[r]: 0 -> argmax (lowest id); else q = exp((l - max l) / T), keep the top_k[r]
 * largest (<= 0: all; ties at the threshold kept), then the smallest top mass >= top_p[r], and
 * draw in id order with u = SplitMix64(seed[r] + golden * (step[r] + 1)) >> 11 * 2^-53.
 * logprob[r] = l[id] - logsumexp(l) (the raw distribution).
 * logits fp32 [rows, V]; q scratch fp32 [rows, V]; temperature, top_p fp32 [rows];
 * top_k, steps, ids int32 [rows]; seeds uint64 [rows]; logprob fp32 [rows]
 * </pre>
 */
public final class SamplingKernel {
    private static final int BLOCK = 1024;
    private final CUfunction fn;

    SamplingKernel(CudaModule m) {
        fn = m.function("sampling_rows_f32");
    }

    public void sample(CudaStream s, DeviceBuffer logits, int rows, int vocab,
                       DeviceBuffer temperature, DeviceBuffer topK, DeviceBuffer topP,
                       DeviceBuffer seeds, DeviceBuffer steps, DeviceBuffer q, DeviceBuffer ids,
                       DeviceBuffer logprob) {
        String k = "sampling_rows_f32";
        Check.positive(k, "rows", rows);
        Check.fits(k, "logits", logits, (long) rows * vocab, 4);
        Check.fits(k, "q", q, (long) rows * vocab, 4);
        Check.fits(k, "temperature", temperature, rows, 4);
        Check.fits(k, "top_k", topK, rows, 4);
        Check.fits(k, "top_p", topP, rows, 4);
        Check.fits(k, "seeds", seeds, rows, 8);
        Check.fits(k, "steps", steps, rows, 4);
        Check.fits(k, "ids", ids, rows, 4);
        Check.fits(k, "logprob", logprob, rows, 4);
        new KernelArgs().ptr(logits).i(rows).i(vocab).ptr(temperature).ptr(topK).ptr(topP)
                .ptr(seeds).ptr(steps).ptr(q).ptr(ids).ptr(logprob)
                .launch(fn, k, rows, 1, 1, BLOCK, 0, s, "rows=" + rows + " vocab=" + vocab);
    }
}
