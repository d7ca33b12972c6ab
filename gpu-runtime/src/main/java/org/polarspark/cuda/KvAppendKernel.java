package org.polarspark.cuda;

import jcuda.driver.CUfunction;

/**
 * Launcher for kernels/kv_cache.cu: appends K and V of every head of n tokens into the paged
 * cache, at positions read from device memory (graph-safe).
 * <pre>
 * cache (K and V): bf16 [numBlocks, kvHeads, blockSize, headDim]
 * token t -> block blockTable[rowOf[t] * maxBlocks + posOf[t] / blockSize], slot posOf[t] % blockSize
 * qkv bf16 [n, rowStride]: K at column kOffset, V at vOffset
 * </pre>
 * Not checked on the device: table entries and positions in range (the scheduler guarantees
 * them when it admits a row).
 */
public final class KvAppendKernel {
    private static final int BLOCK = 128;
    private final CUfunction fn;

    KvAppendKernel(CudaModule m) {
        fn = m.function("kv_append_paged_bf16");
    }

    public void run(CudaStream s, DeviceBuffer kCache, DeviceBuffer vCache, DeviceBuffer qkv,
                    DeviceBuffer rowOf, DeviceBuffer posOf, DeviceBuffer blockTable,
                    int maxBlocks, int blockSize, int n, int rowStride, int kOffset, int vOffset,
                    int kvHeads, int headDim) {
        String k = "kv_append_paged_bf16";
        Check.positive(k, "n", n);
        Check.positive(k, "block_size", blockSize);
        Check.that(vOffset + kvHeads * headDim <= rowStride, k, "v columns exceed the row");
        Check.fits(k, "qkv", qkv, (long) n * rowStride, 2);
        Check.fits(k, "row_of", rowOf, n, 4);
        Check.fits(k, "pos_of", posOf, n, 4);
        Check.that(kCache.bytes() == vCache.bytes(), k, "K and V caches differ in size");
        new KernelArgs().ptr(kCache).ptr(vCache).ptr(qkv).ptr(rowOf).ptr(posOf).ptr(blockTable)
                .i(maxBlocks).i(blockSize).i(n).i(rowStride).i(kOffset).i(vOffset).i(kvHeads)
                .i(headDim).launch(fn, k, n, 1, 1, BLOCK, 0, s, "n=" + n + " kv_heads="
                        + kvHeads + " head_dim=" + headDim);
    }
}
