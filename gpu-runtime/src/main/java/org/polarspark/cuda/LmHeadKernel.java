package org.polarspark.cuda;

import jcuda.driver.CUfunction;

/**
 * Launcher for kernels/lm_head.cu.
 * <pre>
 * argmax:  ids[r] = argmax logits[r] (lowest id on ties); logprob[r] = logits[r, ids[r]] - lse(r)
 * logprob: logprob[r] = logits[r, ids[r]] - lse(r) for given ids; greedy[r] = ids[r] is an argmax
 * logits fp32 [rows, vocab]; ids, greedy int32 [rows]; logprob fp32 [rows]
 * </pre>
 * Each row is read once by {@link #chunks} blocks, whose partial results go to {@code part}
 * ({@link #partBytes} for the most rows a caller launches) and are merged by the row's last
 * block; {@code counters} (int32, one per row, zero before the first launch) hold the tickets,
 * and every launch leaves them zero again. Both are the caller's: one pair per stream.
 */
public final class LmHeadKernel {
    private static final int BLOCK = 256;
    /** Chunks are multiples of this many logits (four per thread of a block). */
    private static final int CHUNK_UNIT = 4 * BLOCK;
    /** No chunk of fewer logits than this unless the row is shorter. */
    private static final int MIN_CHUNK = 2 * CHUNK_UNIT;
    /** Blocks per SM a launch aims at (rows x chunks). */
    private static final int BLOCKS_PER_SM = 2;

    private final CUfunction argmax;
    private final CUfunction logprob;
    private final int sms;

    LmHeadKernel(CudaModule m, int multiprocessors) {
        argmax = m.function("lmhead_argmax_f32");
        logprob = m.function("lmhead_logprob_f32");
        sms = Math.max(1, multiprocessors);
    }

    /** Logits per block of a launch over rows x vocab on a device of {@code sms} SMs. */
    static int chunkFor(int rows, int vocab, int sms) {
        long target = ((long) BLOCKS_PER_SM * sms + rows - 1) / rows;
        long most = Math.max(1, (vocab + MIN_CHUNK - 1) / MIN_CHUNK);
        long per = Math.max(1, Math.min(target, most));
        long chunk = (vocab + per - 1) / per;
        return (int) ((chunk + CHUNK_UNIT - 1) / CHUNK_UNIT * CHUNK_UNIT);
    }

    /** Blocks per row (chunks) of a launch over rows x vocab. */
    int chunks(int rows, int vocab) {
        int chunk = chunkFor(rows, vocab, sms);
        return (vocab + chunk - 1) / chunk;
    }

    /** Bytes of {@code part} that launches of 1 to maxRows rows need. */
    public long partBytes(int maxRows, int vocab) {
        long most = 1;
        for (int rows = 1; rows <= maxRows; rows++) {
            most = Math.max(most, (long) rows * chunks(rows, vocab));
        }
        return most * 12;
    }

    public void argmax(CudaStream s, DeviceBuffer logits, int rows, int vocab, DeviceBuffer ids,
                       DeviceBuffer lp, DeviceBuffer part, DeviceBuffer counters) {
        String k = "lmhead_argmax_f32";
        int chunk = check(k, logits, rows, vocab, ids, lp, part, counters);
        new KernelArgs().ptr(logits).i(rows).i(vocab).i(chunk).ptr(ids).ptr(lp).ptr(part)
                .ptr(counters).launch(true, argmax, k, (vocab + chunk - 1) / chunk, rows, 1,
                        BLOCK, 0, s, "rows=" + rows + " vocab=" + vocab + " chunk=" + chunk);
    }

    public void logprob(CudaStream s, DeviceBuffer logits, int rows, int vocab, DeviceBuffer ids,
                        DeviceBuffer lp, DeviceBuffer greedy, DeviceBuffer part,
                        DeviceBuffer counters) {
        String k = "lmhead_logprob_f32";
        int chunk = check(k, logits, rows, vocab, ids, lp, part, counters);
        Check.fits(k, "greedy", greedy, rows, 4);
        new KernelArgs().ptr(logits).i(rows).i(vocab).i(chunk).ptr(ids).ptr(lp).ptr(greedy)
                .ptr(part).ptr(counters).launch(true, logprob, k, (vocab + chunk - 1) / chunk,
                        rows, 1, BLOCK, 0, s, "rows=" + rows + " vocab=" + vocab + " chunk="
                                + chunk);
    }

    private int check(String k, DeviceBuffer logits, int rows, int vocab, DeviceBuffer ids,
                      DeviceBuffer lp, DeviceBuffer part, DeviceBuffer counters) {
        Check.positive(k, "rows", rows);
        Check.positive(k, "vocab", vocab);
        Check.that(rows <= 65535, k, "at most 65535 rows a launch, got " + rows);
        Check.fits(k, "logits", logits, (long) rows * vocab, 4);
        Check.fits(k, "ids", ids, rows, 4);
        Check.fits(k, "logprob", lp, rows, 4);
        Check.fits(k, "counters", counters, rows, 4);
        int chunk = chunkFor(rows, vocab, sms);
        Check.fits(k, "part", part, (long) rows * ((vocab + chunk - 1) / chunk) * 3, 4);
        return chunk;
    }
}
