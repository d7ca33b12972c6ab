package org.polarspark.cuda;

import java.util.IdentityHashMap;
import java.util.Map;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.JCudaDriver;

/**
 * Launcher for kernels/attention.cu: split-K flash-decoding over the paged KV cache, GQA-aware,
 * with an optional Polar Sparsity group table, then the split merge.
 * <pre>
 * decode:  token t, group slot y, split s:  g = groupIdx ? groupIdx[t, y] : y
 *          attends positions [s*splitLen, min(posOf[t]+1, (s+1)*splitLen)) of row rowOf[t]
 *          for the G = heads / kvHeads query heads of group g (K/V read once per group)
 *          partO fp32 [n, heads, parts, headDim], partMl fp32 [n, heads, parts, 2]
 * combine: att bf16 [n, heads * headDim]: the selected heads, and zeros for the others
 * pairs:   for one query head per KV group and the pipelined kernel's shapes, adjacent
 *          splits 2p, 2p + 1 are merged in a fixed way before the pairs are combined; with
 *          pairs on, one block runs both splits of a pair and writes the merged pair (parts =
 *          ceil(numSplits / 2)), otherwise each split is a partial (parts = numSplits) and the
 *          combine merges the pairs. Same arithmetic, same bits: only the number of blocks and
 *          the partial traffic change ({@link #pairsFor}). Other grouped-query shapes never
 *          run pairs and merge all splits at once.
 * pipe:    head_dim 128 with 2, 4 or 8 query heads per group runs a kernel that stages K and V
 *          through shared memory (same partials; {@link #pipeFor}).
 * q = first heads*headDim columns of qkv bf16 [n, rowStride]; score = q.k * scale
 * </pre>
 * Every token is a query at its own position, so the same kernels serve causal prefill (after
 * the prompt's K/V are appended). Not checked on the device: table and index values in range.
 */
public final class AttentionKernel {
    static final int TILE = 32;
    private static final int THREADS = 256;
    /** Positions per tile of the decode kernel (its scores are held in shared memory). */
    private static final int SUB = 256;
    private static final int MAX_GROUP = 8;      // query heads per KV group (registers)
    private static final int MAX_HEAD_DIM = 256;
    private final CUfunction[][] decode = new CUfunction[4][2]; // [log2 MAXG][chunks - 1]
    /** The same for exact shapes: G = MAXG, head_dim = 128 * chunks (constant bounds). */
    private final CUfunction[][] decodeFull = new CUfunction[4][2];
    /** Pairs of splits per block, for one query head per group: [chunks - 1][full ? 1 : 0]. */
    private final CUfunction[][] decodePairs = new CUfunction[2][2];
    /** Pipelined kernels for head_dim 128, [log2 G - 1] (see {@link #pipeFor}). */
    private final CUfunction[] decodePipe = new CUfunction[3];
    /** The same with pairs of splits per block. */
    private final CUfunction[] decodePipePairs = new CUfunction[3];
    private final CUfunction combine;
    /** Dynamic shared memory enabled so far, per kernel. */
    private final Map<CUfunction, Integer> sharedOptIn = new IdentityHashMap<>();

    AttentionKernel(CudaModule m) {
        for (int gi = 0; gi < 4; gi++) {
            for (int c = 1; c <= 2; c++) {
                decode[gi][c - 1] = m.function("attention_decode_paged_g" + (1 << gi) + "_c" + c
                        + "_bf16");
                decodeFull[gi][c - 1] = m.function("attention_decode_paged_g" + (1 << gi) + "_c"
                        + c + "_full_bf16");
            }
        }
        for (int c = 1; c <= 2; c++) {
            decodePairs[c - 1][0] = m.function("attention_decode_paged_g1_c" + c + "_pairs_bf16");
            decodePairs[c - 1][1] = m.function("attention_decode_paged_g1_c" + c
                    + "_full_pairs_bf16");
        }
        for (int gi = 1; gi < 4; gi++) {
            decodePipe[gi - 1] = m.function("attention_decode_paged_g" + (1 << gi) + "_pipe_bf16");
            decodePipePairs[gi - 1] = m.function("attention_decode_paged_g" + (1 << gi)
                    + "_pipe_pairs_bf16");
        }
        combine = m.function("attention_combine_bf16");
    }

    /**
     * Which shapes run the pipelined decode kernel (K and V staged through shared memory by
     * cp.async, several stages in flight): head_dim 128 with 2, 4 or 8 query heads per KV group,
     * unless -Dpolar.attention.pipe=false. Chosen by shape alone, so a token's result never
     * depends on its launch. H100, 2026-11-26, polar-bench, same call: llama-3-8b attention at
     * B=48 0.639 -> 0.603 ms a layer (B=1 0.0236 -> 0.0186), steps 27.43 -> 26.21 ms (B=48),
     * 13.52 -> 12.94 (B=16), 6.87 -> 6.71 (B=1). With one query head per group (llama-2-7b,
     * opt-6.7b) the same kernel was 3-7% slower than the kernels with loads in registers.
     */
    static final boolean PIPE = Boolean.parseBoolean(System.getProperty("polar.attention.pipe",
            "true"));

    static boolean pipeFor(int heads, int kvHeads, int headDim) {
        if (!PIPE || headDim != 128 || kvHeads <= 0 || heads % kvHeads != 0) {
            return false;
        }
        int g = heads / kvHeads;
        return g == 2 || g == 4 || g == 8;
    }

    /** Stages (positions) of the pipelined kernel and how many are in its ring. */
    private static final int PIPE_STAGE = 64;
    private static final int PIPE_RING = 3;

    /**
     * Dynamic shared memory of the pipelined kernel (bytes): the ring of K and V stages (rows
     * padded to 136 elements), q fragments, scores [G][stage + 8] and statistics [G][4].
     */
    static int pipeSharedBytes(int groupSize) {
        return PIPE_RING * 2 * PIPE_STAGE * 136 * 2 + 8 * 2 * 32 * 4
                + groupSize * (PIPE_STAGE + 8) * 4 + groupSize * 16 + groupSize * 8;
    }

    /**
     * Whether a launch of this shape may run pairs of splits per block: one query head per
     * group (the kernels with loads in registers), or the pipelined kernel's shapes with splits
     * of whole stages (a stage never straddles the pair's two splits).
     */
    static boolean pairsAllowed(int heads, int kvHeads, int headDim, int splitLen) {
        return heads == kvHeads
                || pipeFor(heads, kvHeads, headDim) && splitLen % PIPE_STAGE == 0;
    }

    /**
     * Pass-1 blocks per SM from which the pipelined kernel runs pairs of splits per block
     * (-Dpolar.attention.pipePairBlocksPerSm). A pair block writes one partial for two splits:
     * the partials' writes cost more than their bytes (standalone harness on the H100,
     * 2026-11-26, llama-3-8b's pass at N = 8192 without its part_o stores: 583 -> 543 us at
     * B=48, 197 -> 186 us at B=16), and pairs halve them: 583 -> 553 us at B=48, 197 -> 192 at
     * B=16 (with the last pair as single splits). polar-bench, same call, two rounds, llama-3-8b
     * dense / Polar ms with / without pairs: B=48 24.58 / 25.01 and 18.09 / 18.39, B=16 12.03 /
     * 12.11 and 9.97 / 10.01; from 8 blocks per SM the same (B=1, 256 blocks, stays single).
     */
    static final int PIPE_PAIR_BLOCKS_PER_SM = Integer.getInteger(
            "polar.attention.pipePairBlocksPerSm", 16);

    /**
     * Dynamic shared memory of the decode kernel (floats): q [G][D], scores [G][SUB], statistics
     * [G][4], the warps' accumulators [warps][G][D] and, with pairs, the pair's first split
     * (o [G][D], m and l [G][2]).
     */
    static int sharedBytes(int groupSize, int headDim, boolean pairs) {
        return 4 * (groupSize * headDim + groupSize * SUB + 4 * groupSize
                + (THREADS / 32) * groupSize * headDim
                + (pairs ? groupSize * headDim + 2 * groupSize : 0));
    }

    /**
     * Pass-1 blocks (tokens x groups x splits) from which a launch runs pairs of splits per
     * block, in units of SMs (-Dpolar.attention.pairBlocksPerSm): below it one split per block
     * keeps every SM busy (batch 1); above it half the blocks and half the partials win. H100,
     * 2026-11-26, polar-bench, pairs vs one split per block in the same call, at 8192 blocks:
     * llama-2-7b B=16 17.20 -> 17.11 ms, B=32 28.37 -> 28.22 (Polar 17.96 -> 17.89), opt-6.7b
     * B=32 17.02 -> 16.95, B=64 28.60 -> 28.33 (Polar 19.28 -> 19.21); at 4096 blocks it was
     * mixed (llama-2-7b B=8 0.3% faster, opt-6.7b Polar B=32 0.8% slower), hence 48 x 132 =
     * 6336 on an H100 until such launches ended with single splits ({@link #singleFrom}); with
     * those, 24 (same call, two rounds, ms at 24 / 48: llama-2-7b B=8 11.16 / 11.19, opt-6.7b
     * B=16 10.99 / 11.03, Polar B=32 11.25 / 11.31; the others within noise). Since single-split
     * passes read K and V evict-first in L2 (kernels/attention.cu kv_ld_u2; the pair form does
     * not), 48 again (same call, two rounds, ms at 24 / 32 / 64, H100 2026-11-26): launches of
     * 31 blocks per SM gained from single splits (llama-2-7b B=8 10.97 / 10.82 / 10.82, Polar
     * B=16 11.28 / 11.09 / 11.13; opt-6.7b B=16 10.83 / 10.70 / 10.70, Polar B=32 10.62 / 10.55 /
     * 10.55), while at 62 per SM they were mixed (opt-6.7b Polar B=64 17.34 / 17.34 / 17.40,
     * dense B=32 16.35 / 16.35 / 16.27). For llama-3-8b (4 query heads per group, the
     * tensor-core score path of the kernels with loads in registers) pairs were 0.4-2.5%
     * slower, so those grouped-query shapes keep one split per block (the pipelined kernel's
     * shapes: {@link #PIPE_PAIR_BLOCKS_PER_SM}).
     */
    static final int PAIR_BLOCKS_PER_SM = Integer.getInteger("polar.attention.pairBlocksPerSm",
            48);

    /**
     * Whether a launch of n tokens x groupsPerToken groups x numSplits splits, with
     * queryHeadsPerGroup query heads per KV group, runs pairs of splits per block (any choice
     * gives the same bits; only one query head per group takes pairs, see
     * {@link #PAIR_BLOCKS_PER_SM}).
     */
    static boolean pairsFor(int n, int groupsPerToken, int numSplits, int queryHeadsPerGroup,
                            int sms) {
        return numSplits > 1 && queryHeadsPerGroup == 1
                && (long) n * groupsPerToken * numSplits >= (long) PAIR_BLOCKS_PER_SM * sms;
    }

    /**
     * As above for a model's shape: the pipelined kernel's shapes (see {@link #pairsAllowed})
     * run pairs from {@link #PIPE_PAIR_BLOCKS_PER_SM} blocks per SM.
     */
    static boolean pairsFor(int n, int groupsPerToken, int numSplits, int heads, int kvHeads,
                            int headDim, int splitLen, int sms) {
        if (heads == kvHeads || !pairsAllowed(heads, kvHeads, headDim, splitLen)) {
            return pairsFor(n, groupsPerToken, numSplits, heads / Math.max(1, kvHeads), sms);
        }
        return numSplits > 1
                && (long) n * groupsPerToken * numSplits >= (long) PIPE_PAIR_BLOCKS_PER_SM * sms;
    }

    /** Partials per (token, head) of a launch. */
    static int parts(int numSplits, boolean pairs) {
        return parts(numSplits, pairs, numSplits + 1);
    }

    /**
     * Partials per (token, head) of a launch whose pairs end at split {@code singleFrom} (even;
     * later splits are partials of their own, see kernels/attention.cu att_pair_parts).
     */
    static int parts(int numSplits, boolean pairs, int singleFrom) {
        if (!pairs) {
            return numSplits;
        }
        int pairParts = Math.min((numSplits + 1) / 2, singleFrom / 2);
        return pairParts + Math.max(0, numSplits - 2 * pairParts);
    }

    /**
     * Where a launch with pairs ends them: in launches of fewer than
     * {@link #TAIL_SINGLE_BLOCKS_PER_SM} split blocks per SM, the last pair's two splits run as
     * blocks of their own, so that the last blocks the launch schedules are its shortest (same
     * bits: the combine merges the two splits as a block would); -Dpolar.attention.tailSingles=
     * false: pairs to the end. H100, 2026-11-26, polar-bench, same call, two rounds, ms with /
     * without: Polar (62 split blocks per SM) opt-6.7b B=64 17.86 / 17.95, llama-2-7b B=32
     * 17.45 / 17.47 (attention alone 0.3634 / 0.3657 ms a layer); dense (124 per SM) llama-2-7b
     * B=32 27.93 / 27.93, opt-6.7b B=64 27.95 / 27.91.
     */
    static int singleFrom(int n, int groupsPerToken, int numSplits, boolean pairs, int sms) {
        if (!pairs || !TAIL_SINGLES || numSplits < 4 || (long) n * groupsPerToken * numSplits
                >= (long) TAIL_SINGLE_BLOCKS_PER_SM * sms) {
            return numSplits + 1;
        }
        return Math.max(0, 2 * ((numSplits + 1) / 2 - TAIL_PAIRS));
    }

    private static final int TAIL_SINGLE_BLOCKS_PER_SM = Integer.getInteger(
            "polar.attention.tailSingleBlocksPerSm", 96);
    /** Pairs at the end of such a launch that run as single splits. */
    private static final int TAIL_PAIRS = Integer.getInteger("polar.attention.tailPairs", 1);

    static final boolean TAIL_SINGLES = !"false".equals(System.getProperty(
            "polar.attention.tailSingles"));

    public void decode(CudaStream s, DeviceBuffer qkv, int rowStride, float scale,
                       DeviceBuffer kCache, DeviceBuffer vCache, DeviceBuffer blockTable,
                       int maxBlocks, int blockSize, DeviceBuffer rowOf, DeviceBuffer posOf,
                       DeviceBuffer groupIdx, int groupsPerToken, int heads, int kvHeads,
                       int headDim, int splitLen, int numSplits, DeviceBuffer partO,
                       DeviceBuffer partMl, int n) {
        decode(s, qkv, rowStride, scale, kCache, vCache, blockTable, maxBlocks, blockSize, rowOf,
                posOf, groupIdx, groupsPerToken, heads, kvHeads, headDim, splitLen, numSplits,
                false, partO, partMl, n);
    }

    /** As above; {@code pairs}: one block per pair of splits (see the class comment). */
    public void decode(CudaStream s, DeviceBuffer qkv, int rowStride, float scale,
                       DeviceBuffer kCache, DeviceBuffer vCache, DeviceBuffer blockTable,
                       int maxBlocks, int blockSize, DeviceBuffer rowOf, DeviceBuffer posOf,
                       DeviceBuffer groupIdx, int groupsPerToken, int heads, int kvHeads,
                       int headDim, int splitLen, int numSplits, boolean pairs,
                       DeviceBuffer partO, DeviceBuffer partMl, int n) {
        decode(s, qkv, rowStride, scale, kCache, vCache, blockTable, maxBlocks, blockSize, rowOf,
                posOf, groupIdx, groupsPerToken, heads, kvHeads, headDim, splitLen, numSplits,
                pairs, false, false, partO, partMl, n);
    }

    /**
     * As above; {@code dependent}: a decode step, every token one new position of its own row
     * whose K/V (and q) the kernel just before appended (or, with fused q/k/v partials, the
     * pass itself appends), and no other position it reads:
     * launched as a programmatic dependent, the pipelined kernel's first stages then stream in
     * while that kernel ends. Never for prompt tokens (they read positions appended with them).
     * {@code tableReady}: the group table was written before the kernel just before (its
     * router ran ahead of the q/k/v projection), so the pipelined kernel may read it, and the
     * early stages, before its wait.
     */
    public void decode(CudaStream s, DeviceBuffer qkv, int rowStride, float scale,
                       DeviceBuffer kCache, DeviceBuffer vCache, DeviceBuffer blockTable,
                       int maxBlocks, int blockSize, DeviceBuffer rowOf, DeviceBuffer posOf,
                       DeviceBuffer groupIdx, int groupsPerToken, int heads, int kvHeads,
                       int headDim, int splitLen, int numSplits, boolean pairs,
                       boolean dependent, boolean tableReady, DeviceBuffer partO,
                       DeviceBuffer partMl, int n) {
        decode(s, qkv, rowStride, scale, kCache, vCache, blockTable, maxBlocks, blockSize, rowOf,
                posOf, groupIdx, groupsPerToken, heads, kvHeads, headDim, splitLen, numSplits,
                pairs, numSplits + 1, dependent, tableReady, partO, partMl, n);
    }

    /**
     * As above; {@code singleFrom} (with pairs): the first split that runs as a partial of its
     * own ({@link #singleFrom}; numSplits or more: pairs to the end).
     */
    public void decode(CudaStream s, DeviceBuffer qkv, int rowStride, float scale,
                       DeviceBuffer kCache, DeviceBuffer vCache, DeviceBuffer blockTable,
                       int maxBlocks, int blockSize, DeviceBuffer rowOf, DeviceBuffer posOf,
                       DeviceBuffer groupIdx, int groupsPerToken, int heads, int kvHeads,
                       int headDim, int splitLen, int numSplits, boolean pairs, int singleFrom,
                       boolean dependent, boolean tableReady, DeviceBuffer partO,
                       DeviceBuffer partMl, int n) {
        decode(s, qkv, rowStride, scale, kCache, vCache, blockTable, maxBlocks, blockSize, rowOf,
                posOf, groupIdx, groupsPerToken, heads, kvHeads, headDim, splitLen, numSplits,
                pairs, singleFrom, dependent, tableReady, null, partO, partMl, n);
    }

    /**
     * The q/k/v projection's split-K partials for a pipelined pass that reduces them itself
     * (see {@link #decode(CudaStream, DeviceBuffer, int, float, DeviceBuffer, DeviceBuffer,
     * DeviceBuffer, int, int, DeviceBuffer, DeviceBuffer, DeviceBuffer, int, int, int, int, int,
     * int, boolean, int, boolean, boolean, QkvPartials, DeviceBuffer, DeviceBuffer, int)}):
     * work fp32 [splits][n][ldw] with q, k and v in its first (heads + 2 kv_heads) x head_dim
     * columns, the projection's bias (or null) and RoPE's inverse frequencies (or null: none).
     */
    public record QkvPartials(DeviceBuffer work, int splits, int ldw, DeviceBuffer bias,
                              DeviceBuffer invFreq) {
    }

    /**
     * As above; {@code fusedQkv} (the pipelined kernel's shapes, no group table, a decode step
     * whose q/k/v projection wrote these partials, nothing reduced yet): each block reduces its
     * group's query heads from the partials (bias and RoPE as DecodeFusedKernel.qkvRopeKv: the
     * same bits) and the block holding a token's own position appends its group's new K and V
     * rows first, so the q/k/v reduce is not launched; qkv is neither read nor written.
     */
    public void decode(CudaStream s, DeviceBuffer qkv, int rowStride, float scale,
                       DeviceBuffer kCache, DeviceBuffer vCache, DeviceBuffer blockTable,
                       int maxBlocks, int blockSize, DeviceBuffer rowOf, DeviceBuffer posOf,
                       DeviceBuffer groupIdx, int groupsPerToken, int heads, int kvHeads,
                       int headDim, int splitLen, int numSplits, boolean pairs, int singleFrom,
                       boolean dependent, boolean tableReady, QkvPartials fusedQkv,
                       DeviceBuffer partO, DeviceBuffer partMl, int n) {
        int gi = 0;
        while ((1 << gi) < heads / Math.max(1, kvHeads) && gi < 3) {
            gi++;
        }
        int chunks = headDim <= 128 ? 1 : 2;
        boolean full = heads == (kvHeads << gi) && headDim == 128 * chunks;
        boolean pipe = pipeFor(heads, kvHeads, headDim);
        String k = "attention_decode_paged_g" + (1 << gi) + (pipe ? "_pipe" : "_c" + chunks
                + (full ? "_full" : "")) + (pairs ? "_pairs" : "") + "_bf16";
        String shapes = "n=" + n + " heads=" + heads + " kv_heads=" + kvHeads + " head_dim="
                + headDim + " splits=" + numSplits + "x" + splitLen + (pairs ? " (pairs)" : "");
        Check.positive(k, "n", n);
        Check.that(heads % kvHeads == 0, k, "heads must be a multiple of kv_heads (" + shapes + ")");
        int g = heads / kvHeads;
        Check.that(!pairs || pairsAllowed(heads, kvHeads, headDim, splitLen), k, "pairs of"
                + " splits per block take one query head per KV group, or the pipelined kernel's"
                + " shapes with splits of whole " + PIPE_STAGE + "-position stages (" + shapes
                + ")");
        Check.that(g <= MAX_GROUP, k, "at most " + MAX_GROUP + " query heads per KV group, got "
                + g + " (" + shapes + ")");
        Check.that(headDim % 4 == 0 && headDim <= MAX_HEAD_DIM, k, "head_dim must be a multiple"
                + " of 4 and at most " + MAX_HEAD_DIM + " (" + shapes + ")");
        Check.that(splitLen > 0 && splitLen % TILE == 0, k, "split length must be a positive "
                + "multiple of " + TILE + " (" + shapes + ")");
        Check.that(groupsPerToken >= 1 && groupsPerToken <= kvHeads, k, "groups per token "
                + groupsPerToken + " outside [1, " + kvHeads + "]");
        Check.that(groupIdx != null || groupsPerToken == kvHeads, k,
                "without a group table every group is computed");
        Check.that(singleFrom % 2 == 0 || singleFrom > numSplits, k, "pairs end at an even"
                + " split, got " + singleFrom + " (" + shapes + ")");
        if (fusedQkv != null) {
            int qkvCols = (heads + 2 * kvHeads) * headDim;
            Check.that(pipe && groupIdx == null, k, "the q/k/v reduce runs inside the pipelined"
                    + " kernel's shapes without a group table only (" + shapes + ")");
            Check.that(fusedQkv.splits() >= 1 && fusedQkv.ldw() >= qkvCols, k, "q/k/v partials"
                    + " need >= 1 split and rows of >= " + qkvCols + " columns, got "
                    + fusedQkv.splits() + " x " + fusedQkv.ldw());
            Check.fits(k, "qkv_work", fusedQkv.work(),
                    (long) fusedQkv.splits() * n * fusedQkv.ldw(), 4);
            Check.fitsOrNull(k, "qkv_bias", fusedQkv.bias(), qkvCols, 2);
            Check.fitsOrNull(k, "inv_freq", fusedQkv.invFreq(), headDim / 2, 4);
        } else {
            Check.fits(k, "qkv", qkv, (long) n * rowStride, 2);
        }
        int parts = parts(numSplits, pairs, singleFrom);
        Check.fits(k, "part_o", partO, (long) n * heads * parts * headDim, 4);
        Check.fits(k, "part_ml", partMl, (long) n * heads * parts * 2, 4);
        Check.fitsOrNull(k, "group_idx", groupIdx, (long) n * groupsPerToken, 4);
        int smem = pipe ? pipeSharedBytes(g) : sharedBytes(g, headDim, pairs);
        CUfunction fn = pipe ? (pairs ? decodePipePairs : decodePipe)[gi - 1]
                : pairs ? decodePairs[chunks - 1][full ? 1 : 0]
                : (full ? decodeFull : decode)[gi][chunks - 1];
        if (smem > 48 * 1024 && smem > sharedOptIn.getOrDefault(fn, 0)) {
            Cuda.check(JCudaDriver.cuFuncSetAttribute(fn,
                    CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem),
                    "cuFuncSetAttribute(" + k + ", " + smem + " bytes of shared memory)");
            sharedOptIn.put(fn, smem);
        }
        KernelArgs args = new KernelArgs().ptr(qkv).i(rowStride).f(scale).ptr(kCache)
                .ptr(vCache).ptr(blockTable).i(maxBlocks).i(blockSize).ptr(rowOf).ptr(posOf)
                .ptr(groupIdx).i(groupsPerToken).i(heads).i(kvHeads).i(headDim).i(splitLen)
                .i(numSplits).ptr(partO).ptr(partMl);
        if (pipe) {
            args.i(tableReady ? 1 : 0);
        }
        args.i(singleFrom);
        if (pipe) {
            args.ptr(fusedQkv != null ? fusedQkv.work() : null)
                    .i(fusedQkv != null ? fusedQkv.splits() : 0)
                    .i(fusedQkv != null ? fusedQkv.ldw() : 0)
                    .ptr(fusedQkv != null ? fusedQkv.bias() : null)
                    .ptr(fusedQkv != null ? fusedQkv.invFreq() : null);
        }
        args.launch(dependent && PDL, fn, k, n, groupsPerToken, parts, THREADS, smem, s,
                shapes);
    }

    /**
     * Decode steps launch both passes as programmatic dependents (-Dpolar.attention.pdl=false:
     * plain launches).
     */
    static final boolean PDL = !"false".equals(System.getProperty("polar.attention.pdl"));

    /** attention_combine_bf16: a warp per (token, head), this many heads per block. */
    private static final int COMBINE_WARPS = 8;

    public void combine(CudaStream s, DeviceBuffer att, DeviceBuffer partO, DeviceBuffer partMl,
                        DeviceBuffer groupIdx, int groupsPerToken, int heads, int kvHeads,
                        int headDim, int numSplits, int n) {
        combine(s, att, partO, partMl, groupIdx, groupsPerToken, heads, kvHeads, headDim,
                numSplits, false, n);
    }

    /** As above, for partials written with {@code pairs} as given to decode. */
    public void combine(CudaStream s, DeviceBuffer att, DeviceBuffer partO, DeviceBuffer partMl,
                        DeviceBuffer groupIdx, int groupsPerToken, int heads, int kvHeads,
                        int headDim, int numSplits, boolean pairs, int n) {
        combine(s, att, partO, partMl, groupIdx, groupsPerToken, heads, kvHeads, headDim,
                numSplits, pairs, false, n);
    }

    /** As above; {@code dependent}: launched as the decode pass's programmatic dependent. */
    public void combine(CudaStream s, DeviceBuffer att, DeviceBuffer partO, DeviceBuffer partMl,
                        DeviceBuffer groupIdx, int groupsPerToken, int heads, int kvHeads,
                        int headDim, int numSplits, boolean pairs, boolean dependent, int n) {
        combine(s, att, partO, partMl, groupIdx, groupsPerToken, heads, kvHeads, headDim,
                numSplits, pairs, numSplits + 1, dependent, false, false, n);
    }

    /**
     * Whether the combine may take its one-round form where the shape allows (head_dim 128, at
     * most 32 partials and 32 table entries a head: every load of a head issued at once, the
     * same bits as the general form; the decoder picks the launches, see
     * CudaDecoder.attention); -Dpolar.attention.combineRegs=false: always the general form.
     */
    static final boolean COMBINE_REGS = !"false".equals(System.getProperty(
            "polar.attention.combineRegs"));

    /**
     * Whether decode steps drop the pipelined kernel's o partials from L2 once the combine has
     * merged them, in launches of many waves (-Dpolar.attention.discardPartials=false: never;
     * kernels/attention.cu, the combine's discard).
     */
    static final boolean DISCARD_PARTIALS = !"false".equals(System.getProperty(
            "polar.attention.discardPartials"));

    /**
     * As above, for partials written with {@code pairs} and {@code singleFrom} as given to
     * decode; {@code regs}: the one-round form where the shape allows (tests compare both);
     * {@code discard}: the general form drops the o partials from L2 once merged (they are
     * then undefined: only for partials nothing reads again).
     */
    void combine(CudaStream s, DeviceBuffer att, DeviceBuffer partO, DeviceBuffer partMl,
                 DeviceBuffer groupIdx, int groupsPerToken, int heads, int kvHeads, int headDim,
                 int numSplits, boolean pairs, int singleFrom, boolean dependent, boolean regs,
                 boolean discard, int n) {
        String k = "attention_combine_bf16";
        Check.fits(k, "att", att, (long) n * heads * headDim, 2);
        boolean pipe = pipeFor(heads, kvHeads, headDim);
        Check.that(!pairs || heads == kvHeads || pipe, k, "pairs of splits take one query head"
                + " per KV group, or the pipelined kernel's shapes");
        // Shapes that may run pairs merge the splits pair by pair in either mode (schemes 1
        // and 2: the same bits); the others all at once (0).
        int scheme = heads != kvHeads && !pipe ? 0 : pairs ? 2 : 1;
        KernelArgs args = new KernelArgs().ptr(att).ptr(partO).ptr(partMl).ptr(groupIdx)
                .i(groupsPerToken).i(heads).i(kvHeads).i(headDim).i(numSplits).i(scheme)
                .i(regs ? 1 : 0).i(singleFrom).i(discard ? 1 : 0);
        int gy = (heads + COMBINE_WARPS - 1) / COMBINE_WARPS;
        String shapes = "n=" + n + " heads=" + heads + " splits=" + numSplits
                + (pairs ? " (pairs)" : "");
        args.launch(dependent && PDL, combine, k, n, gy, 1, COMBINE_WARPS * 32, 0, s, shapes);
    }
}
