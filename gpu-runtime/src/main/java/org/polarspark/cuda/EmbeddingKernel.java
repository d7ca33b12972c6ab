package org.polarspark.cuda;

import jcuda.driver.CUfunction;

/**
 * Launcher for kernels/embedding.cu.
 * <pre>
 * tokensF32:  x[i, d]  = table[ids[i], d]              x fp32 [n, dim]
 * tokensBf16: e[i, d]  = table[ids[i], d]              e bf16 [n, dim]
 * positions:  x[i, d] += posTable[pos[i] + offset, d]  x fp32 [n, dim]
 * ids, pos int32 [n]; table bf16 [vocab, dim]; posTable bf16 [maxPos + offset, dim].
 * </pre>
 * Not checked on the device: ids and positions in range (the engine validates token ids and
 * positions on the host before they are uploaded).
 */
public final class EmbeddingKernel {
    private static final int BLOCK = 256;
    /** Elements of a row per block (kernels/embedding.cu EMB_SPAN). */
    private static final int SPAN = 8 * BLOCK;
    private final CUfunction tokF32;
    private final CUfunction tokBf16;
    private final CUfunction pos;

    EmbeddingKernel(CudaModule m) {
        tokF32 = m.function("embedding_tokens_f32");
        tokBf16 = m.function("embedding_tokens_bf16");
        pos = m.function("embedding_positions_f32");
    }

    public void tokensF32(CudaStream s, DeviceBuffer x, DeviceBuffer ids, DeviceBuffer table,
                          int n, int dim) {
        String k = "embedding_tokens_f32";
        Check.positive(k, "n", n);
        Check.positive(k, "dim", dim);
        Check.fits(k, "x", x, (long) n * dim, 4);
        Check.fits(k, "ids", ids, n, 4);
        new KernelArgs().ptr(x).ptr(ids).ptr(table).i(n).i(dim)
                .launch(tokF32, k, n, (dim + SPAN - 1) / SPAN, 1, BLOCK, 0, s, "n=" + n
                        + " dim=" + dim);
    }

    public void tokensBf16(CudaStream s, DeviceBuffer e, DeviceBuffer ids, DeviceBuffer table,
                           int n, int dim) {
        String k = "embedding_tokens_bf16";
        Check.positive(k, "n", n);
        Check.positive(k, "dim", dim);
        Check.fits(k, "e", e, (long) n * dim, 2);
        Check.fits(k, "ids", ids, n, 4);
        new KernelArgs().ptr(e).ptr(ids).ptr(table).i(n).i(dim)
                .launch(tokBf16, k, n, (dim + SPAN - 1) / SPAN, 1, BLOCK, 0, s, "n=" + n
                        + " dim=" + dim);
    }

    public void positions(CudaStream s, DeviceBuffer x, DeviceBuffer positions,
                          DeviceBuffer posTable, int offset, int n, int dim) {
        String k = "embedding_positions_f32";
        Check.positive(k, "n", n);
        Check.positive(k, "dim", dim);
        Check.fits(k, "x", x, (long) n * dim, 4);
        Check.fits(k, "pos", positions, n, 4);
        new KernelArgs().ptr(x).ptr(positions).ptr(posTable).i(offset).i(n).i(dim)
                .launch(pos, k, n, (dim + SPAN - 1) / SPAN, 1, BLOCK, 0, s, "n=" + n
                        + " dim=" + dim);
    }
}
