package org.polarspark.cuda;

import jcuda.driver.CUfunction;

/**
 * Launcher for kernels/lm_head.cu.
 * <pre>
 * argmax:  ids[r] = argmax logits[r] (lowest id on ties); logprob[r] = logits[r, ids[r]] - lse(r)
 * logprob: logprob[r] = logits[r, ids[r]] - lse(r) for given ids; greedy[r] = ids[r] is the argmax
 * logits fp32 [rows, vocab]; ids, greedy int32 [rows]; logprob fp32 [rows]
 * </pre>
 * Each row is read once by {@link #chunks} blocks of {@link #CHUNK} logits, whose partial
 * results go to {@code part} ({@link #partBytes} for the most rows a caller launches) and are
 * merged by the row's last block; {@code counters} (int32, one per row, zero before the first
 * launch) hold the tickets, and every launch leaves them zero again. Both are the caller's: one
 * pair per stream. The chunks depend on the vocabulary only, so a row's results have the same
 * bits whatever else is in the launch.
 */
public final class LmHeadKernel {
    private static final int BLOCK = 256;
    /**
     * Logits per block: 8 per thread (two 16-byte loads). One row of a 128K vocabulary fills
     * about half the H100's SMs; many rows, many waves of short blocks.
     */
    static final int CHUNK = 8 * BLOCK;

    private final CUfunction argmax;
    private final CUfunction logprob;

    LmHeadKernel(CudaModule m) {
        argmax = m.function("lmhead_argmax_f32");
        logprob = m.function("lmhead_logprob_f32");
    }

    /** Blocks per row (chunks) for a vocabulary. */
    static int chunks(int vocab) {
        return (vocab + CHUNK - 1) / CHUNK;
    }

    /** Bytes of {@code part} that launches of 1 to maxRows rows need. */
    public static long partBytes(int maxRows, int vocab) {
        return (long) Math.max(1, maxRows) * chunks(vocab) * 12;
    }

    public void argmax(CudaStream s, DeviceBuffer logits, int rows, int vocab, DeviceBuffer ids,
                       DeviceBuffer lp, DeviceBuffer part, DeviceBuffer counters) {
        String k = "lmhead_argmax_f32";
        check(k, logits, rows, vocab, ids, lp, part, counters);
        new KernelArgs().ptr(logits).i(rows).i(vocab).i(CHUNK).ptr(ids).ptr(lp).ptr(part)
                .ptr(counters).launch(true, argmax, k, chunks(vocab), rows, 1, BLOCK, 0, s,
                        "rows=" + rows + " vocab=" + vocab);
    }

    public void logprob(CudaStream s, DeviceBuffer logits, int rows, int vocab, DeviceBuffer ids,
                        DeviceBuffer lp, DeviceBuffer greedy, DeviceBuffer part,
                        DeviceBuffer counters) {
        String k = "lmhead_logprob_f32";
        check(k, logits, rows, vocab, ids, lp, part, counters);
        Check.fits(k, "greedy", greedy, rows, 4);
        new KernelArgs().ptr(logits).i(rows).i(vocab).i(CHUNK).ptr(ids).ptr(lp).ptr(greedy)
                .ptr(part).ptr(counters).launch(true, logprob, k, chunks(vocab), rows, 1, BLOCK,
                        0, s, "rows=" + rows + " vocab=" + vocab);
    }

    private static void check(String k, DeviceBuffer logits, int rows, int vocab,
                              DeviceBuffer ids, DeviceBuffer lp, DeviceBuffer part,
                              DeviceBuffer counters) {
        Check.positive(k, "rows", rows);
        Check.positive(k, "vocab", vocab);
        Check.that(rows <= 65535, k, "at most 65535 rows a launch, got " + rows);
        Check.fits(k, "logits", logits, (long) rows * vocab, 4);
        Check.fits(k, "ids", ids, rows, 4);
        Check.fits(k, "logprob", lp, rows, 4);
        Check.fits(k, "counters", counters, rows, 4);
        Check.fits(k, "part", part, (long) rows * chunks(vocab) * 3, 4);
    }
}
