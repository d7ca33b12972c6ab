package org.polarspark.cuda;

import jcuda.driver.CUfunction;

/**
 * Launcher for kernels/gemm.cu: tensor-core GEMM with fused epilogues.
 * <pre>
 * acc[m, n] = sum_k A[m, k] W[n, k]      A bf16 [M, K] (stride lda), W bf16 [N, K] (stride ldw)
 * STORE_BF16   out bf16[m, n]  = acc + bias[n]
 * RELU_BF16    out bf16[m, n]  = max(acc + bias[n], 0)
 * ACCUM_F32    out fp32[m, n] += acc + bias[n]          (residual add)
 * STORE_F32    out fp32[m, n]  = acc + bias[n]          (logits)
 * SWIGLU_BF16  W rows interleave gate and up (2j, 2j+1), N = 2F:
 *              out bf16[m, j] = silu(acc[m,2j] + bias[2j]) * (acc[m,2j+1] + bias[2j+1])
 * bias bf16 [N] or null; out row stride ldc.
 * </pre>
 * Preconditions (checked here): K, lda, ldw multiples of 8 (16-byte vector loads); N even.
 *
 * <p>The wgmma decode tile is launched with programmatic dependent launch where the driver
 * offers it ({@link PdlLaunch}): its first weight stages stream in while the kernel before it
 * (which triggers its dependents on entry) finishes.
 *
 * <p>Split-K: when a workspace is given and the output has too few 64 x 64 tiles to keep every
 * SM streaming weights (decode shapes), K is split: where the wgmma decode tile runs, into
 * whole waves of its blocks ({@link #waveChunk}); elsewhere so that about
 * {@link #TARGET_BLOCKS_PER_SM_MMA} 64-column tiles per SM run. Partials go to the workspace
 * (fp32 [splits, M, N]) and a reduce kernel adds
 * them in a fixed order and applies the epilogue. Results are deterministic either way, but the
 * split changes the summation order, so the same M, N, K always uses the same split.
 *
 * <p>Tiles: on compute capability 9.0 with the sm_90a image, M <= 64 ([N, K] weights, plain or
 * row-gathered) uses the wgmma decode tile: plain weights through TMA (gemm_&lt;epi&gt;_wgt: a
 * producer warp's bulk tensor copies, persistent blocks over (column tile, split) units, tensor
 * maps from {@link TensorMaps}), row-gathered ones and hosts without the tensor-map encoder
 * through cp.async (gemm_&lt;epi&gt;_wgd); both 64 x 128 x 64, 8 stages, one block per SM;
 * elsewhere M <= 16 uses the decode tile (gemm_&lt;epi&gt;_m16) and 16 < M <= 64
 * gemm_&lt;epi&gt;_m64; larger M the 64 x 64 tile,
 * except for prefill-sized outputs (M > 64, no split, W not gathered, at least
 * {@link #MIN_LARGE_TILES} tiles of 128 x 128), which use the large tile: gemm_&lt;epi&gt;_wg
 * (wgmma, kernels/gemm_sm90a.cu) on compute capability 9.0 when that image loaded, else
 * gemm_&lt;epi&gt;_l (mma.sync, any GPU). Every tile gives the same bits for a row (same K
 * chunks, same k16 steps, same fold order), so the choice never changes a result.
 */
public final class GemmKernel {
    /** Output tile of one block (rows of A x rows of W): the general shape... */
    static final int BM = 64;
    static final int BN = 64;
    private static final int BK = 32;
    /** ...and the decode shape, for M <= 16 (same bits: see kernels/gemm.cu). */
    static final int BM_DECODE = 16;
    static final int BN_DECODE = 64;
    private static final int BK_DECODE = 64;
    private static final int STAGES = 4;
    private static final int PAD = 8;
    private static final int THREADS = 128;
    /** The large tile (gemm_&lt;epi&gt;_l and gemm_&lt;epi&gt;_wg): 128 x 128. */
    static final int BM_LARGE = 128;
    static final int BN_LARGE = 128;
    /** gemm_&lt;epi&gt;_l: 4 warps, 32-deep K steps, 3 stages, plus the fp32 chunk totals. */
    private static final int BK_LARGE = 32;
    private static final int STAGES_LARGE = 3;
    private static final int THREADS_LARGE = 128;
    /** gemm_&lt;epi&gt;_wg: 2 warpgroups, 64-deep K steps, 4 stages, 1 KiB alignment slack. */
    private static final int BK_WG = 64;
    private static final int STAGES_WG = 4;
    private static final int THREADS_WG = 256;
    /**
     * Fewest 128 x 128 output tiles for which the large tile is used. Measured on H100 (K =
     * 4096, N = 4096): at M = 128 (32 tiles) it already runs 1.5x (mma.sync) and 2.4x (wgmma)
     * faster than the 64 x 64 tile; below that it is not measured.
     */
    static final int MIN_LARGE_TILES = 32;
    /**
     * 64-column tiles per SM to aim for with split-K (system property polar.gemm.blocksPerSm, a
     * tuning knob): enough loads in flight to saturate HBM. Default 8 for the mma.sync decode
     * tiles (tuning harness, H100) and 3 (1.5 128-column tiles per SM; the wgmma decode tile
     * runs one block per SM at a time) where the wgmma decode tile runs: the whole decode step
     * on H100 (polar-bench, 2026-11-26, 2, 3, 4 and 6 in one run, 3 and 4 again in another):
     * llama-3-8b 1.5-3.7% faster at 3 than at 4 in both runs, llama-2-7b within 0.4%, opt-6.7b
     * 2.5-4% faster in the first run and within 0.3% in the second; 2 lost at llama-2 batch 1.
     * Since session 5 the wgmma decode tile uses {@link #waveChunk} instead (unless the property
     * is set or -Dpolar.gemm.splits=target): 2-7% faster at batch 1, within 0.4% at 48-64.
     */
    private static final Integer BLOCKS_PER_SM_OVERRIDE = Integer.getInteger(
            "polar.gemm.blocksPerSm");
    static final int TARGET_BLOCKS_PER_SM_MMA = 8;
    static final int TARGET_BLOCKS_PER_SM_WGD = 3;
    /** Smallest K range per split (8 pipeline steps of 32). */
    static final int MIN_SPLIT_K = 256;

    public enum Epilogue {
        STORE_BF16("gemm_store_bf16", 2), RELU_BF16("gemm_relu_bf16", 2),
        ACCUM_F32("gemm_accum_f32", 4), STORE_F32("gemm_store_f32", 4),
        SWIGLU_BF16("gemm_swiglu_bf16", 2);

        final String symbol;
        final int outBytes;

        Epilogue(String symbol, int outBytes) {
            this.symbol = symbol;
            this.outBytes = outBytes;
        }
    }

    private final CUfunction[] fns = new CUfunction[Epilogue.values().length];
    private final CUfunction[] decode = new CUfunction[Epilogue.values().length];
    private final CUfunction[] kn = new CUfunction[Epilogue.values().length];
    private final CUfunction[] knDecode = new CUfunction[Epilogue.values().length];
    private final CUfunction[] mid = new CUfunction[Epilogue.values().length];
    private final CUfunction[] knMid = new CUfunction[Epilogue.values().length];
    /** The decode tile for 16 < M <= 64 rows (gemm_&lt;epi&gt;_m64): 64 x 128 x 64, 8 warps. */
    private static final int BN_MID = 128;
    private static final int BK_MID = 64;
    private static final int STAGES_MID = 3;
    private static final int THREADS_MID = 256;
    private final CUfunction[] reduce = new CUfunction[Epilogue.values().length];
    private final CUfunction[] large = new CUfunction[Epilogue.values().length];
    /** The wgmma kernels, or null without the sm_90a image (not Hopper, or built without it). */
    private final CUfunction[] wgmma;
    /** gemm_&lt;epi&gt;_wgd (wgmma decode tile), or null: 64 x 128 x 64, 8 stages, 128 threads. */
    private final CUfunction[] wgDecode;
    /** gemm_&lt;epi&gt;_kn_wgd: the same tile for [K, N] weights (MN-major B), or null. */
    private final CUfunction[] wgDecodeKn;
    /**
     * gemm_&lt;epi&gt;_wgt (the same tile fed by TMA, persistent: at most one block per SM), or
     * null where the sm_90a image, the driver's tensor-map encoder or -Dpolar.gemm.tma is
     * missing.
     */
    private final CUfunction[] wgTma;
    private static final int THREADS_WGT = 160;
    private final TensorMaps maps = new TensorMaps();
    private static final int BN_WGD = 128;
    private static final int STAGES_WGD = 8;
    private static final int THREADS_WGD = 128;
    private final int sms;
    /** Split-K target of this instance (see {@link #TARGET_BLOCKS_PER_SM_WGD}). */
    private final int blocksPerSm;

    /** Which tile a launch uses: AUTO chooses (see the class comment); the others force one. */
    enum Tile { AUTO, BASE, LARGE, WGMMA, WGMMA_DECODE, WGMMA_TMA }

    GemmKernel(CudaModule m) {
        this(m, null);
    }

    /** @param sm90a the kernels/gemm_sm90a.cu image, or null (then gemm_&lt;epi&gt;_l) */
    GemmKernel(CudaModule m, CudaModule sm90a) {
        wgmma = sm90a == null ? null : new CUfunction[Epilogue.values().length];
        wgDecode = sm90a == null || !WGD_ENABLED ? null : new CUfunction[Epilogue.values().length];
        wgDecodeKn = wgDecode == null ? null : new CUfunction[Epilogue.values().length];
        wgTma = wgDecode == null || !TensorMaps.available() ? null
                : new CUfunction[Epilogue.values().length];
        for (Epilogue e : Epilogue.values()) {
            fns[e.ordinal()] = m.function(e.symbol);
            decode[e.ordinal()] = m.function(e.symbol + "_m16");
            kn[e.ordinal()] = m.function(e.symbol + "_kn");
            knDecode[e.ordinal()] = m.function(e.symbol + "_kn_m16");
            mid[e.ordinal()] = m.function(e.symbol + "_m64");
            setSharedMemory(mid[e.ordinal()], e.symbol + "_m64",
                    smemStages(BM, BN_MID, BK_MID, STAGES_MID));
            knMid[e.ordinal()] = m.function(e.symbol + "_kn_m64");
            setSharedMemory(knMid[e.ordinal()], e.symbol + "_kn_m64",
                    smemKnStages(BM, BN_MID, BK_MID, STAGES_MID));
            reduce[e.ordinal()] = m.function(e.symbol + "_reduce");
            // The decode shape's four stages need more than the default 48 KiB of shared memory.
            Cuda.check(jcuda.driver.JCudaDriver.cuFuncSetAttribute(decode[e.ordinal()],
                    jcuda.driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    smem(BM_DECODE, BN_DECODE, BK_DECODE)), "cuFuncSetAttribute(" + e.symbol
                    + "_m16, shared memory)");
            // The large tiles need far more (about 112 and 129 KiB).
            large[e.ordinal()] = m.function(e.symbol + "_l");
            setSharedMemory(large[e.ordinal()], e.symbol + "_l", smemLarge());
            if (wgmma != null) {
                wgmma[e.ordinal()] = sm90a.function(e.symbol + "_wg");
                setSharedMemory(wgmma[e.ordinal()], e.symbol + "_wg", smemWgmma());
            }
            if (wgDecode != null) {
                wgDecode[e.ordinal()] = sm90a.function(e.symbol + "_wgd");
                setSharedMemory(wgDecode[e.ordinal()], e.symbol + "_wgd", smemWgd());
                wgDecodeKn[e.ordinal()] = sm90a.function(e.symbol + "_kn_wgd");
                setSharedMemory(wgDecodeKn[e.ordinal()], e.symbol + "_kn_wgd", smemWgd());
            }
            if (wgTma != null) {
                wgTma[e.ordinal()] = sm90a.function(e.symbol + "_wgt");
                setSharedMemory(wgTma[e.ordinal()], e.symbol + "_wgt", smemWgd());
            }
        }
        jcuda.driver.CUdevice dev = new jcuda.driver.CUdevice();
        Cuda.check(jcuda.driver.JCudaDriver.cuCtxGetDevice(dev), "cuCtxGetDevice");
        int[] v = new int[1];
        Cuda.check(jcuda.driver.JCudaDriver.cuDeviceGetAttribute(v,
                jcuda.driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev),
                "cuDeviceGetAttribute(MULTIPROCESSOR_COUNT)");
        sms = v[0];
        blocksPerSm = BLOCKS_PER_SM_OVERRIDE != null ? BLOCKS_PER_SM_OVERRIDE
                : wgDecode != null ? TARGET_BLOCKS_PER_SM_WGD : TARGET_BLOCKS_PER_SM_MMA;
    }

    /**
     * Where the wgmma decode tile runs (one block per SM at a time), split counts are chosen by
     * {@link #waveChunk}, whole waves of blocks; -Dpolar.gemm.splits=target restores the
     * blocks-per-SM target (a tuning knob).
     */
    private static final boolean WAVE_SPLITS = !"target".equals(System.getProperty(
            "polar.gemm.splits"));
    /** Rows assumed when weighing split-K partial traffic against weight bytes (not M: the
     *  chunks must not depend on the batch). */
    private static final int WAVE_ASSUMED_ROWS = Integer.getInteger("polar.gemm.waveRows", 16);
    private static final int WAVE_MAX_SPLITS = 16;

    /**
     * K chunk for the wgmma decode tile (128 columns, one block per SM): over 1 to 16 splits,
     * the one with the least (weight bytes + partials written and read at 16 rows) / (the
     * fraction of the last wave of blocks that is busy), fewer splits on ties. A partial last
     * wave leaves SMs idle while a bandwidth-bound GEMM ends (llama-2-7b's q/k/v: 96 tiles x 3
     * splits = 2.2 waves of 132 SMs).
     */
    int waveChunk(int n, int k) {
        return waveChunk(n, k, sms);
    }

    /** {@link #waveChunk(int, int)} for a GPU of {@code sms} multiprocessors. */
    static int waveChunk(int n, int k, int sms) {
        long tiles = (n + 127) / 128;
        int steps = (k + 63) / 64;
        int most = Math.max(1, Math.min(WAVE_MAX_SPLITS, k / MIN_SPLIT_K));
        double best = Double.MAX_VALUE;
        int bestSteps = steps;
        for (int s = 1; s <= most; s++) {
            int per = (steps + s - 1) / s;
            int real = (steps + per - 1) / per;
            double waves = (double) (tiles * real) / sms;
            double busy = waves / Math.ceil(waves);
            double bytes = 2.0 * n * k + 2.0 * real * WAVE_ASSUMED_ROWS * n * 4;
            double cost = bytes / busy;
            if (cost < best * (1 - 1e-9)) {
                best = cost;
                bestSteps = per;
            }
        }
        return bestSteps * 64;
    }

    /**
     * Whether a row gather of n output columns walks its K chunks in one block (the same bits
     * as split-K): when its blocks ({@link #gatherColumns} wide; 128 columns in the measurements
     * below) keep at least half the SMs streaming, the partials'
     * traffic and the reduce cost more than the idle SMs (-Dpolar.gemm.rowGatherSplit=true:
     * always split). H100, 2026-11-26, polar-bench, same call, two rounds, opt-6.7b Polar ms
     * unsplit / split: B=64 (80 tiles) 17.93 / 18.00, B=32 (67) 11.23 / 11.28, but B=16 (52)
     * 7.92 / 7.81 and B=1 (14) 4.8 / 4.15, hence the half.
     */
    private boolean wholeRowGather(int n) {
        int bn = gatherColumns(n, sms);
        return !ROW_GATHER_SPLIT && (n + bn - 1) / bn * 2 >= sms;
    }

    private static final boolean ROW_GATHER_SPLIT = Boolean.getBoolean(
            "polar.gemm.rowGatherSplit");

    /**
     * Whether a plain projection of n output columns (a launcher-chosen tile, its own epilogue,
     * not partials for a fused reduce) walks its K chunks in one block on the wgmma decode tiles
     * (the same bits as split-K: the tile folds at the same chunk boundaries): when its
     * 128-column tiles fill at least one wave of SMs and the last wave keeps at least
     * {@link #UNSPLIT_LAST_WAVE} of the SMs streaming, enough of them to keep DRAM busy to the
     * end, so the partials' traffic and the reduce cost more than the tail. H100, 2026-11-26,
     * polar-bench, same call, two rounds, ms unsplit / split: llama-3-8b (gate/up 224 tiles, last
     * wave 92 of 132; LM head 1002, last wave 78) B=16 11.98-11.99 / 12.06-12.08, B=48
     * 24.84-24.86 / 24.97, Polar B=48 18.26-18.27 / 18.45-18.46, B=1 equal; but llama-2-7b
     * (gate/up 172 tiles, last wave 40) B=1 6.20 / 6.01, B=8 10.92-10.94 / 10.77.
     */
    static boolean unsplitWide(int n, int sms) {
        long tiles = (n + BN_WGD - 1) / BN_WGD;
        long last = tiles % sms == 0 ? sms : tiles % sms;  // SMs busy in the last wave
        return tiles >= sms && last >= UNSPLIT_LAST_WAVE * sms;
    }

    /** Whether the launcher runs a plain n-column projection unsplit here ({@link #unsplitWide}). */
    boolean runsUnsplit(int n) {
        return wgDecode != null && unsplitWide(n, sms);
    }

    /** Fraction of the SMs the last wave must keep busy (-Dpolar.gemm.unsplitLastWave; > 1: never). */
    static final double UNSPLIT_LAST_WAVE = nonNegative("polar.gemm.unsplitLastWave", 0.5);

    private static double nonNegative(String key, double fallback) {
        String v = System.getProperty(key);
        if (v == null) {
            return fallback;
        }
        try {
            double d = Double.parseDouble(v.trim());
            if (d >= 0) {
                return d;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException("-D" + key + "=" + v + ": expected a number >= 0");
    }

    /**
     * Columns per block of an unsplit row gather on the wgmma decode tile (which takes any
     * multiple of 8 up to 128, from its grid): the width whose blocks, one per SM, finish
     * soonest (fewest waves x columns; the wider on ties), so that the gather spreads over
     * the SMs instead of leaving those past its 128-column tiles idle (opt-6.7b B=64's 10160
     * neurons: 127 blocks of 80 columns instead of 80 of 128). The same bits for every width.
     * -Dpolar.gemm.gatherColumns=false keeps 128.
     */
    static int gatherColumns(int n, int sms) {
        if (!GATHER_COLUMNS) {
            return BN_WGD;
        }
        int best = BN_WGD;
        long bestCost = Long.MAX_VALUE;
        for (int bn = BN_WGD; bn >= MIN_GATHER_COLUMNS; bn -= 8) {
            long blocks = (n + bn - 1) / bn;
            long cost = (blocks + sms - 1) / sms * bn;
            if (cost < bestCost) {
                bestCost = cost;
                best = bn;
            }
        }
        return best;
    }

    private static final int MIN_GATHER_COLUMNS = 64;
    private static final boolean GATHER_COLUMNS = !"false".equals(System.getProperty(
            "polar.gemm.gatherColumns"));

    /** System property polar.gemm.wgd=false keeps decode shapes on the mma.sync tiles. */
    private static final boolean WGD_ENABLED = !"false".equals(System.getProperty(
            "polar.gemm.wgd"));

    private static int smem(int bm, int bn, int bk) {
        return STAGES * (bm + bn) * (bk + PAD) * 2;
    }

    /** gemm_&lt;epi&gt;_l: swizzled stages (no padding) and the fp32 chunk totals of the tile. */
    static int smemLarge() {
        return STAGES_LARGE * (BM_LARGE + BN_LARGE) * BK_LARGE * 2 + BM_LARGE * BN_LARGE * 4;
    }

    /** gemm_&lt;epi&gt;_wg: 1024-byte aligned swizzled stages (+ 1 KiB to align). */
    static int smemWgmma() {
        return STAGES_WG * (BM_LARGE + BN_LARGE) * BK_WG * 2 + 1024;
    }

    /** gemm_&lt;epi&gt;_wgd: the same layout for a 64 x 128 tile, 8 stages (193 KiB). */
    static int smemWgd() {
        return STAGES_WGD * (BM + BN_WGD) * BK_WG * 2 + 1024;
    }

    /** True if M <= 64 launches on [N, K] weights use the wgmma decode tile. */
    public boolean hasWgmmaDecode() {
        return wgDecode != null;
    }

    private static void setSharedMemory(CUfunction f, String name, int bytes) {
        Cuda.check(jcuda.driver.JCudaDriver.cuFuncSetAttribute(f,
                jcuda.driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                bytes), "cuFuncSetAttribute(" + name + ", shared memory " + bytes + ")");
    }

    /** True if plain M <= 64 launches use the TMA decode tile (gemm_&lt;epi&gt;_wgt). */
    public boolean hasTmaDecode() {
        return wgTma != null;
    }

    /** Tensor maps encoded so far (tests: the launcher's choice and the cache). */
    int tmaMapsCached() {
        return maps.cached();
    }

    /** Whether the TMA tile can describe A and W (16-byte aligned bases; strides are). */
    private static boolean tmaDescribable(DeviceBuffer a, DeviceBuffer w) {
        return TensorMaps.describable(PdlLaunch.address(a.ptr()), 8)
                && TensorMaps.describable(PdlLaunch.address(w.ptr()), 8);
    }

    /** Whether an M <= 64 launch of these operands takes the TMA decode tile (AUTO). */
    private boolean tmaTile(boolean knLayout, DeviceBuffer idx, DeviceBuffer a, DeviceBuffer w) {
        return !knLayout && idx == null && wgDecode != null && wgTma != null
                && tmaDescribable(a, w);
    }

    /**
     * Whether {@link #partials} of these operands runs the TMA decode tile, which lets its
     * dependents launch from its start (a split-K reduce after it may then be launched as a
     * programmatic dependent).
     */
    public boolean partialsUseTma(boolean knLayout, DeviceBuffer a, DeviceBuffer w) {
        return tmaTile(knLayout, null, a, w);
    }

    /** True if the wgmma (sm_90a) kernels are loaded and used for large outputs. */
    public boolean hasWgmma() {
        return wgmma != null;
    }

    /** The tile AUTO picks for a plain (not gathered, not [K, N]) launch. */
    Tile autoTile(int m, int n, boolean split) {
        long tiles = (long) ((m + BM_LARGE - 1) / BM_LARGE) * ((n + BN_LARGE - 1) / BN_LARGE);
        if (split || m <= BM || tiles < MIN_LARGE_TILES) {
            return Tile.BASE;
        }
        return wgmma != null ? Tile.WGMMA : Tile.LARGE;
    }

    private static int smemStages(int bm, int bn, int bk, int stages) {
        return stages * (bm + bn) * (bk + PAD) * 2;
    }

    private static int smemKnStages(int bm, int bn, int bk, int stages) {
        return stages * (bm * (bk + PAD) + bk * (bn + PAD)) * 2;
    }

    private static int smemKn(int bm, int bn, int bk) {
        return STAGES * (bm * (bk + PAD) + bk * (bn + PAD)) * 2;
    }

    /**
     * K chunk for an output of N columns and depth K: a function of N and K only (never of M),
     * so that every row is summed in the same order whatever the batch. Where the wgmma decode
     * tile runs, {@link #waveChunk}; otherwise chosen so that a one-tile-high output (decode)
     * split into chunks runs about this instance's blocks per SM (64-column tiles; see
     * {@link #TARGET_BLOCKS_PER_SM_MMA}).
     */
    int chunkFor(int n, int k) {
        if (wgDecode != null && WAVE_SPLITS && BLOCKS_PER_SM_OVERRIDE == null) {
            return waveChunk(n, k);
        }
        long tiles = (n + BN - 1) / BN;
        long target = (long) blocksPerSm * sms;
        int splits = (int) Math.max(1, Math.min((target + tiles - 1) / tiles, k / MIN_SPLIT_K));
        // A multiple of 64: whole K tiles of both shapes.
        int chunk = ((k + splits - 1) / splits + 63) / 64 * 64;
        return Math.min(((k + 63) / 64) * 64, chunk);
    }

    /** As {@link #run(Epilogue, CudaStream, DeviceBuffer, int, DeviceBuffer, int, DeviceBuffer,
     *  DeviceBuffer, int, int, int, int, DeviceBuffer)} without split-K. */
    public void run(Epilogue epi, CudaStream s, DeviceBuffer a, int lda, DeviceBuffer w, int ldw,
                    DeviceBuffer bias, DeviceBuffer out, int ldc, int m, int n, int k) {
        run(epi, s, a, lda, w, ldw, bias, out, ldc, m, n, k, null);
    }

    /**
     * @param workspace fp32 scratch for split-K partials, or null for no split
     */
    public void run(Epilogue epi, CudaStream s, DeviceBuffer a, int lda, DeviceBuffer w, int ldw,
                    DeviceBuffer bias, DeviceBuffer out, int ldc, int m, int n, int k,
                    DeviceBuffer workspace) {
        launch(epi, false, s, a, lda, w, ldw, bias, out, ldc, m, n, k, workspace, null, 0,
                Tile.AUTO);
    }

    /**
     * As {@link #run} with the K chunks of an n = {@code chunkN} projection: the bits that
     * columns of a wider GEMM of chunkN columns would get (the head router's rows, which the
     * fused decode path runs inside the q/k/v projection).
     */
    public void runChunked(Epilogue epi, CudaStream s, DeviceBuffer a, int lda, DeviceBuffer w,
                           int ldw, DeviceBuffer bias, DeviceBuffer out, int ldc, int m, int n,
                           int k, DeviceBuffer workspace, int chunkN) {
        Check.positive(epi.symbol, "chunk N", chunkN);
        launch(epi, false, s, a, lda, w, ldw, bias, out, ldc, m, n, k, workspace, null, 0,
                Tile.AUTO, false, chunkN);
    }

    /** As {@link #run} with the tile forced (tests: every tile must give the same bits). */
    void runTile(Tile tile, Epilogue epi, CudaStream s, DeviceBuffer a, int lda, DeviceBuffer w,
                 int ldw, DeviceBuffer bias, DeviceBuffer out, int ldc, int m, int n, int k,
                 DeviceBuffer workspace) {
        launch(epi, false, s, a, lda, w, ldw, bias, out, ldc, m, n, k, workspace, null, 0, tile);
    }

    /**
     * Row-gathered weights (Polar's fc1): output column j uses W row {@code rows[j]} and bias
     * entry {@code rows[j]}; W is [rowsOfW, K]. rows int32 [n] (not checked on the device).
     */
    public void runGatherRows(Epilogue epi, CudaStream s, DeviceBuffer a, int lda, DeviceBuffer w,
                              int ldw, long wRows, DeviceBuffer bias, DeviceBuffer out, int ldc,
                              int m, int n, int k, DeviceBuffer workspace, DeviceBuffer rows) {
        runGatherRowsTile(Tile.AUTO, epi, s, a, lda, w, ldw, wRows, bias, out, ldc, m, n, k,
                workspace, rows);
    }

    /** As {@link #runGatherRows} with the tile forced (tests: every tile, the same bits). */
    void runGatherRowsTile(Tile tile, Epilogue epi, CudaStream s, DeviceBuffer a, int lda,
                           DeviceBuffer w, int ldw, long wRows, DeviceBuffer bias,
                           DeviceBuffer out, int ldc, int m, int n, int k,
                           DeviceBuffer workspace, DeviceBuffer rows) {
        Check.fits("gemm gather", "rows", rows, n, 4);
        launch(epi, false, s, a, lda, w, ldw, bias, out, ldc, m, n, k, workspace, rows, wRows,
                tile);
    }

    /**
     * Weights stored [K, N] (N contiguous; Polar's neuron-major fc2): acc[m, n] = sum_j A[m, j]
     * W[kRows[j], n] (kRows null: row j). W is [wRows, N], row stride ldw; N % 8 == 0.
     */
    public void runKn(Epilogue epi, CudaStream s, DeviceBuffer a, int lda, DeviceBuffer w, int ldw,
                      long wRows, DeviceBuffer bias, DeviceBuffer out, int ldc, int m, int n,
                      int k, DeviceBuffer workspace, DeviceBuffer kRows) {
        runKnTile(Tile.AUTO, epi, s, a, lda, w, ldw, wRows, bias, out, ldc, m, n, k, workspace,
                kRows);
    }

    /** As {@link #runKn} with the tile forced (tests: BASE or WGMMA_DECODE, same bits). */
    void runKnTile(Tile tile, Epilogue epi, CudaStream s, DeviceBuffer a, int lda, DeviceBuffer w,
                   int ldw, long wRows, DeviceBuffer bias, DeviceBuffer out, int ldc, int m,
                   int n, int k, DeviceBuffer workspace, DeviceBuffer kRows) {
        Check.that(n % 8 == 0 && ldw % 8 == 0, epi.symbol + "_kn", "N and ldw must be multiples"
                + " of 8, got N=" + n + " ldw=" + ldw);
        Check.fitsOrNull(epi.symbol + "_kn", "k rows", kRows, k, 4);
        launch(epi, true, s, a, lda, w, ldw, bias, out, ldc, m, n, k, workspace, kRows, wRows,
                tile);
    }

    /** Number of K chunks (split-K partials) of an n x k projection. */
    int splitsFor(int n, int k) {
        int chunk = chunkFor(n, k);
        return (k + chunk - 1) / chunk;
    }

    /** Whether {@link #partials} can run m rows of an n-column output in this workspace. */
    public boolean partialsFit(int m, int n, int k, DeviceBuffer workspace) {
        return partialsFit(m, n, k, workspace, n);
    }

    /** As {@link #partialsFit(int, int, int, DeviceBuffer)} with the chunks of chunkN columns. */
    public boolean partialsFit(int m, int n, int k, DeviceBuffer workspace, int chunkN) {
        return m <= BM && workspace != null
                && (long) splitsFor(chunkN, k) * m * n * 4 <= workspace.bytes();
    }

    /**
     * Split-K partial sums only, for a fused reduce (kernels/decode_fused.cu): workspace fp32
     * [splits, m, n] gets acc of each K chunk (no bias, no epilogue); returns splits. The chunks
     * are those of every other path ({@link #chunkFor}), so a reduce that adds them in order has
     * the bits of {@link #run}. Needs m <= 64 and {@link #partialsFit}.
     *
     * @param kRows null, or for the [K, N] layout (knLayout) W's row of each k (Polar's fc2)
     */
    public int partials(boolean knLayout, CudaStream s, DeviceBuffer a, int lda, DeviceBuffer w,
                        int ldw, long wRows, int m, int n, int k, DeviceBuffer workspace,
                        DeviceBuffer kRows) {
        return partials(knLayout, s, a, lda, w, ldw, wRows, m, n, k, workspace, kRows, n);
    }

    /**
     * As above with the K chunks of a chunkN-column projection (a wider output that carries
     * extra rows of W, e.g. q/k/v with the head router's rows, keeps the chunks, and so the
     * bits, of q/k/v alone).
     */
    public int partials(boolean knLayout, CudaStream s, DeviceBuffer a, int lda, DeviceBuffer w,
                        int ldw, long wRows, int m, int n, int k, DeviceBuffer workspace,
                        DeviceBuffer kRows, int chunkN) {
        String name = "gemm partials";
        Check.positive(name, "chunk N", chunkN);
        Check.that(partialsFit(m, n, k, workspace, chunkN), name, "needs M <= " + BM
                + " and a workspace for the partials (M=" + m + " N=" + n + " K=" + k + ")");
        if (knLayout) {
            Check.that(n % 8 == 0 && ldw % 8 == 0, name, "N and ldw must be multiples of 8, got N="
                    + n + " ldw=" + ldw);
            Check.fitsOrNull(name, "k rows", kRows, k, 4);
        } else {
            Check.that(kRows == null, name, "row gathers are for the [K, N] layout only");
        }
        return launch(Epilogue.STORE_BF16, knLayout, s, a, lda, w, ldw, null, null, 0, m, n, k,
                workspace, kRows, kRows == null ? 0 : wRows, Tile.AUTO, true, chunkN);
    }

    private void launch(Epilogue epi, boolean knLayout, CudaStream s, DeviceBuffer a, int lda,
                        DeviceBuffer w, int ldw, DeviceBuffer bias, DeviceBuffer out, int ldc,
                        int m, int n, int k, DeviceBuffer workspace, DeviceBuffer idx,
                        long wRows, Tile tile) {
        launch(epi, knLayout, s, a, lda, w, ldw, bias, out, ldc, m, n, k, workspace, idx, wRows,
                tile, false, n);
    }

    /** chunkN: the output width whose K chunks are used (n itself, except for runChunked). */
    private int launch(Epilogue epi, boolean knLayout, CudaStream s, DeviceBuffer a, int lda,
                       DeviceBuffer w, int ldw, DeviceBuffer bias, DeviceBuffer out, int ldc,
                       int m, int n, int k, DeviceBuffer workspace, DeviceBuffer idx,
                       long wRows, Tile tile, boolean partialsOnly, int chunkN) {
        String name = partialsOnly ? "gemm_partials" + (knLayout ? "_kn" : "")
                : epi.symbol + (knLayout ? "_kn" : "");
        String shapes = "M=" + m + " N=" + n + " K=" + k + " lda=" + lda + " ldw=" + ldw
                + " ldc=" + ldc;
        Check.positive(name, "M", m);
        Check.positive(name, "N", n);
        Check.positive(name, "K", k);
        Check.that(k % 8 == 0 && lda % 8 == 0 && ldw % 8 == 0, name,
                "K, lda and ldw must be multiples of 8 (" + shapes + ")");
        Check.that(lda >= k && ldw >= (knLayout ? n : k), name, "lda >= K and ldw >= "
                + (knLayout ? "N" : "K") + " needed (" + shapes + ")");
        Check.that(n % 2 == 0, name, "N must be even (" + shapes + ")");
        int outCols = epi == Epilogue.SWIGLU_BF16 ? n / 2 : n;
        Check.that(partialsOnly || ldc >= outCols, name, "ldc must be >= " + outCols + " ("
                + shapes + ")");
        Check.fits(name, "A", a, (long) (m - 1) * lda + k, 2);
        if (idx == null) {
            Check.fits(name, "W", w, knLayout ? (long) (k - 1) * ldw + n
                    : (long) (n - 1) * ldw + k, 2);
            Check.fitsOrNull(name, "bias", bias, n, 2);
        } else {
            Check.fits(name, "W", w, (wRows - 1) * ldw + (knLayout ? n : k), 2);
            Check.fitsOrNull(name, "bias", bias, knLayout ? n : wRows, 2);
        }
        if (!partialsOnly) {
            Check.fits(name, "out", out, (long) (m - 1) * ldc + outCols, epi.outBytes);
        }
        int chunk = chunkFor(chunkN, k);
        int splits = (k + chunk - 1) / chunk;
        // Split across blocks only for one-tile-high outputs whose partials fit the workspace;
        // otherwise each block walks the chunks itself (same bits either way).
        boolean split = partialsOnly || splits > 1 && m <= BM && workspace != null
                && (long) splits * m * n * 4 <= workspace.bytes()
                && (idx == null || knLayout || !wholeRowGather(n))
                && !(tile == Tile.AUTO && idx == null && !knLayout && runsUnsplit(n));
        DeviceBuffer work = split ? workspace : null;
        if (!split) {
            splits = 1;
        }
        if (tile == Tile.AUTO) {
            tile = knLayout || idx != null ? Tile.BASE : autoTile(m, n, split);
            if (tile == Tile.BASE && m <= BM && wgDecode != null) {
                tile = tmaTile(knLayout, idx, a, w) ? Tile.WGMMA_TMA : Tile.WGMMA_DECODE;
            }
        }
        CUfunction f;
        String kname;
        int bm = 0;
        int bn = 0;
        int threads;
        int shared;
        boolean dependent = false;
        KernelArgs args = null; // the TMA tile's (by-value tensor maps, persistent grid)
        int persistentBlocks = 0;
        if (tile == Tile.WGMMA_TMA) {
            Check.that(m <= BM, name, "the TMA decode tile takes M <= " + BM + " (" + shapes
                    + ")");
            Check.that(wgTma != null, name, "no TMA decode tile loaded");
            Check.that(!knLayout && idx == null, name, "the TMA decode tile takes plain [N, K] W"
                    + " only");
            Check.that(tmaDescribable(a, w), name, "A and W must be 16-byte aligned for TMA");
            byte[] mapA = maps.map(PdlLaunch.address(a.ptr()), m, k, lda, BM);
            byte[] mapW = maps.map(PdlLaunch.address(w.ptr()), n, k, ldw, BN_WGD);
            int units = (n + BN_WGD - 1) / BN_WGD * splits;
            args = new KernelArgs().bytes(mapA).bytes(mapW).ptr(bias).ptr(out).i(ldc).i(m).i(n)
                    .i(k).i(chunk).ptr(work);
            f = wgTma[epi.ordinal()];
            kname = name + "_wgt";
            persistentBlocks = Math.min(units, sms);
            threads = THREADS_WGT;
            shared = smemWgd();
            dependent = true;
        } else if (tile == Tile.WGMMA_DECODE) {
            Check.that(m <= BM, name, "the wgmma decode tile takes M <= " + BM + " (" + shapes
                    + ")");
            Check.that(wgDecode != null, name, "no wgmma (sm_90a) decode tile loaded");
            f = (knLayout ? wgDecodeKn : wgDecode)[epi.ordinal()];
            kname = name + "_wgd";
            bm = BM;
            bn = knLayout || idx == null || split ? BN_WGD : gatherColumns(n, sms);
            threads = THREADS_WGD;
            shared = smemWgd();
            dependent = true; // launched as a programmatic dependent (weights prefetched early)
        } else if (tile != Tile.BASE) {
            Check.that(!knLayout && idx == null, name, "the large tiles take plain [N, K] W only");
            boolean wg = tile == Tile.WGMMA;
            Check.that(!wg || wgmma != null, name, "no wgmma (sm_90a) image loaded");
            f = (wg ? wgmma : large)[epi.ordinal()];
            kname = epi.symbol + (wg ? "_wg" : "_l");
            bm = BM_LARGE;
            bn = BN_LARGE;
            threads = wg ? THREADS_WG : THREADS_LARGE;
            shared = wg ? smemWgmma() : smemLarge();
        } else if (m > BM_DECODE && m <= BM) {
            // 16 < M <= 64: the wider decode tile (same bits: the same K steps in order).
            f = (knLayout ? knMid : mid)[epi.ordinal()];
            kname = name + "_m64";
            bm = BM;
            bn = BN_MID;
            threads = THREADS_MID;
            shared = knLayout ? smemKnStages(BM, BN_MID, BK_MID, STAGES_MID)
                    : smemStages(BM, BN_MID, BK_MID, STAGES_MID);
        } else {
            boolean small = m <= BM_DECODE;
            bm = small ? BM_DECODE : BM;
            bn = small ? BN_DECODE : BN;
            int bk = small ? BK_DECODE : BK;
            f = knLayout ? (small ? knDecode : kn)[epi.ordinal()]
                    : (small ? decode : fns)[epi.ordinal()];
            kname = small ? name + "_m16" : name;
            threads = THREADS;
            shared = knLayout ? smemKn(bm, bn, bk) : smem(bm, bn, bk);
        }
        int gx = persistentBlocks;
        int gy = 1;
        int gz = 1;
        if (args == null) {
            args = new KernelArgs().ptr(a).i(lda).ptr(w).i(ldw).ptr(bias).ptr(out).i(ldc).i(m)
                    .i(n).i(k).i(chunk).ptr(work).ptr(idx);
            gx = (n + bn - 1) / bn;
            gy = (m + bm - 1) / bm;
            gz = splits;
        }
        String what = shapes + " splits=" + splits;
        args.launch(dependent, f, kname, gx, gy, gz, threads, shared, s, what);
        if (!partialsOnly) {
            reduce(epi, s, work, splits, bias, out, ldc, m, n, knLayout ? null : idx, name,
                    shapes, tile == Tile.WGMMA_TMA);
        }
        return splits;
    }

    /**
     * Split-K reduces after the TMA decode tile (here, and DecodeFusedKernel's residual + norm)
     * are launched as programmatic dependents: the tile lets its dependents launch from its
     * start, so their launch overlaps the GEMM (-Dpolar.reduce.pdl=false: plain launches).
     * H100, 2026-11-26, polar-bench, same call, B=1: llama-2-7b 6.39 -> 6.25 ms, llama-3-8b
     * 6.83 -> 6.58 (6.74 -> 6.58 repeat), opt-6.7b 5.94 -> 5.93; B=16: llama-3-8b 12.81 ->
     * 12.56; Polar opt-6.7b B=32 11.87 -> 11.65.
     */
    static final boolean REDUCE_PDL = !"false".equals(System.getProperty("polar.reduce.pdl"));

    /** With a split (work != null): adds the partials in order and applies the epilogue. */
    private void reduce(Epilogue epi, CudaStream s, DeviceBuffer work, int splits,
                        DeviceBuffer bias, DeviceBuffer out, int ldc, int m, int n,
                        DeviceBuffer biasIdx, String name, String shapes, boolean afterTma) {
        if (work != null) {
            long pairs = (long) m * n / 2;
            new KernelArgs().ptr(work).i(splits).ptr(bias).ptr(out).i(ldc).i(m).i(n)
                    .ptr(biasIdx)
                    .launch(afterTma && REDUCE_PDL, reduce[epi.ordinal()], name + "_reduce",
                            (int) ((pairs + 255) / 256), 1, 1, 256, 0, s,
                            shapes + " splits=" + splits);
        }
    }
}
