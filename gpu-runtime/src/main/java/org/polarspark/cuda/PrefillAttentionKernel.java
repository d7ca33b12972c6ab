package org.polarspark.cuda;

import java.util.ArrayList;
import java.util.List;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.JCudaDriver;

/**
 * Launcher for kernels/attention_prefill.cu: tiled causal prefill attention over the paged KV
 * cache on the tensor cores (bf16 in, fp32 accumulation, online softmax).
 * <pre>
 * tiles int32 [numTiles, 4] = {t0, row, p0, count}, count in [1, TILE]: flat tokens
 *       t0 .. t0+count-1 are positions p0 .. p0+count-1 of sequence row (index into
 *       blockTable); see {@link #tiles}
 * for each such token t at position p and head h (KV group h / G):
 *   att[t, h*headDim ..] = softmax_{q <= p}(q_t,h . k_q * scale) v_q
 *   att bf16 [n, heads * headDim] (the layout AttentionKernel.combine writes)
 * q = first heads*headDim columns of qkv bf16 [n, rowStride] (after RoPE)
 * cache (K and V): bf16 [numBlocks, kvHeads, blockSize, headDim]; positions < p0 + count appended
 * </pre>
 * Keys are folded in fixed key tiles (64 positions for head dims up to 32, else 32) from position
 * 0, so a token's result, bit for bit, does not depend on how its prompt was chunked or which
 * other tokens or sequences share the launch. Tokens not covered by a tile are left untouched.
 * Preconditions (checked here): headDim % 8 == 0 and at most 128 ({@link #supports});
 * rowStride % 8 == 0; heads a multiple of kvHeads. Not checked on the device: tile counts in
 * [1, TILE] (use {@link #tiles}), table entries in range, positions appended.
 */
public final class PrefillAttentionKernel {
    /** Queries per tile (one thread block: 4 warps x 2 m-tiles of 16 rows). */
    public static final int TILE = 128;
    private static final int THREADS = 128;
    /** The kernels' padded head dims, and the key positions per key tile of each. */
    private static final int[] PADDED_DIMS = {32, 64, 128};
    private static final int[] KEY_TILE = {64, 32, 32};
    private final CUfunction[] fns = new CUfunction[PADDED_DIMS.length];

    PrefillAttentionKernel(CudaModule m) {
        for (int i = 0; i < PADDED_DIMS.length; i++) {
            String name = symbol(PADDED_DIMS[i]);
            fns[i] = m.function(name);
            int smem = sharedBytes(i);
            if (smem > 48 * 1024) {
                Cuda.check(JCudaDriver.cuFuncSetAttribute(fns[i],
                        CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                        smem), "cuFuncSetAttribute(" + name + ", " + smem
                        + " bytes of shared memory)");
            }
        }
    }

    private static String symbol(int paddedDim) {
        return "attention_prefill_paged_d" + paddedDim + "_bf16";
    }

    /** Whether the kernel handles this head dimension (multiples of 8 up to 128). */
    public static boolean supports(int headDim) {
        return headDim > 0 && headDim % 8 == 0 && headDim <= PADDED_DIMS[PADDED_DIMS.length - 1];
    }

    private static int paddedIndex(int headDim) {
        int i = 0;
        while (PADDED_DIMS[i] < headDim) {
            i++;
        }
        return i;
    }

    /** Dynamic shared memory: Q tile plus double-buffered K and V tiles, rows padded by 8. */
    static int sharedBytes(int paddedIndex) {
        return (TILE + 4 * KEY_TILE[paddedIndex]) * (PADDED_DIMS[paddedIndex] + 8) * 2;
    }

    /** Upper bound on {@link #tiles}' count for {@code tokens} tokens in {@code segments} runs. */
    public static int maxTiles(int tokens, int segments) {
        return tokens / TILE + segments;
    }

    /**
     * The tile list of query runs: run i is {@code count[i]} consecutive flat tokens from
     * {@code firstToken[i]}, at positions {@code firstPos[i]}.. of sequence {@code row[i]}.
     * Each run is cut into tiles of at most {@link #TILE} queries, and tiles are ordered by
     * decreasing end position (the longest first: better load balance; order never changes
     * results). Returns int32 [numTiles * 4].
     */
    public static int[] tiles(int[] firstToken, int[] row, int[] firstPos, int[] count) {
        List<int[]> out = new ArrayList<>();
        for (int i = 0; i < firstToken.length; i++) {
            for (int q = 0; q < count[i]; q += TILE) {
                out.add(new int[] {firstToken[i] + q, row[i], firstPos[i] + q,
                    Math.min(TILE, count[i] - q)});
            }
        }
        out.sort((a, b) -> Integer.compare(b[2] + b[3], a[2] + a[3]));
        int[] flat = new int[out.size() * 4];
        for (int i = 0; i < out.size(); i++) {
            System.arraycopy(out.get(i), 0, flat, i * 4, 4);
        }
        return flat;
    }

    /**
     * @param tiles    int32 [numTiles, 4] from {@link #tiles}, on the device
     * @param n        tokens in qkv and att (every tile's tokens lie in [0, n))
     */
    public void run(CudaStream s, DeviceBuffer att, DeviceBuffer qkv, int rowStride, float scale,
                    DeviceBuffer kCache, DeviceBuffer vCache, DeviceBuffer blockTable,
                    int maxBlocks, int blockSize, DeviceBuffer tiles, int numTiles, int heads,
                    int kvHeads, int headDim, int n) {
        String k = "attention_prefill_paged_bf16";
        String shapes = "n=" + n + " tiles=" + numTiles + " heads=" + heads + " kv_heads="
                + kvHeads + " head_dim=" + headDim + " row_stride=" + rowStride;
        Check.positive(k, "n", n);
        Check.positive(k, "tiles", numTiles);
        Check.that(numTiles <= 65535, k, "at most 65535 tiles per launch (" + shapes + ")");
        Check.that(kvHeads > 0 && heads % kvHeads == 0, k,
                "heads must be a multiple of kv_heads (" + shapes + ")");
        Check.that(supports(headDim), k, "head_dim must be a multiple of 8 and at most "
                + PADDED_DIMS[PADDED_DIMS.length - 1] + " (" + shapes + "); other head dims"
                + " use AttentionKernel.decode for prefill");
        Check.that(rowStride % 8 == 0 && rowStride >= heads * headDim, k,
                "row_stride must be a multiple of 8 and hold the q columns (" + shapes + ")");
        Check.positive(k, "block_size", blockSize);
        Check.fits(k, "qkv", qkv, (long) n * rowStride, 2);
        Check.fits(k, "att", att, (long) n * heads * headDim, 2);
        Check.fits(k, "tiles", tiles, numTiles * 4L, 4);
        int pi = paddedIndex(headDim);
        new KernelArgs().ptr(att).ptr(qkv).i(rowStride).f(scale).ptr(kCache).ptr(vCache)
                .ptr(blockTable).i(maxBlocks).i(blockSize).ptr(tiles).i(heads).i(kvHeads)
                .i(headDim)
                .launch(fns[pi], symbol(PADDED_DIMS[pi]), heads, numTiles, 1, THREADS,
                        sharedBytes(pi), s, shapes);
    }
}
