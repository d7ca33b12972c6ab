package org.polarspark.cuda;

import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import jcuda.Pointer;
import org.polarspark.cpu.CpuWeights;
import org.polarspark.cpu.DecoderObserver;
import org.polarspark.generate.BatchDecoder;
import org.polarspark.generate.SamplingParams;
import org.polarspark.generate.TokenScores;
import org.polarspark.model.Activation;
import org.polarspark.model.Checkpoint;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.ModelFamily;
import org.polarspark.polar.SparsityPolicy;

/**
 * The dense CUDA decoder: 16-bit weights and activations (bf16, or fp16 with the fp16 kernel
 * image: {@link KernelImage#dtype()}; "bf16" below names either), fp32 residual stream and
 * accumulation,
 * a paged KV cache, and the same forward contract as the CPU reference (any mix of prefill and
 * decode rows per call). Calls larger than the scratch buffers are split into pieces; since
 * every token's K/V are appended before attention reads the cache, a prompt prefilled in pieces
 * (chunked prefill) computes exactly what one piece would.
 *
 * <p>Device layouts (see kernels/*.cu): Linear weights [out, in]; q, k and v concatenated into one
 * [qDim + 2 kvDim, hidden] projection; LLaMA's gate and up interleaved row by row into one
 * [2 ffn, hidden] projection (the SwiGLU epilogue pairs adjacent columns); KV cache per layer
 * [numBlocks, kvHeads, blockSize, headDim] for K and for V.
 *
 * <p>Not thread-safe: one forward at a time (the engine serialises calls).
 */
public final class CudaDecoder implements BatchDecoder<CudaSequence>, AutoCloseable {
    /** Tokens per KV block: 16 keeps internal fragmentation under one block per sequence. */
    public static final int BLOCK_SIZE = 16;
    /** LM-head rows per launch, bounding the fp32 logits buffer. */
    private static final int LM_CHUNK = 256;

    private final GpuContext ctx;
    private final KernelImage k;
    private final ModelConfig c;
    /**
     * Stream priorities where an MLP router runs on a side stream (-Dpolar.router.priority):
     * "low" (default) the main stream above the side one, "high" the side stream above the main
     * one, "same" both alike; graph replays keep them (CudaGraph instantiates with node
     * priorities). Measured on the H100 (opt-6.7b Polar, 2026-11-26, one call): low 4.534 /
     * 8.339 / 12.171 / 19.332 ms at B = 1 / 16 / 32 / 64, same 4.553 / 8.465 / 12.181 / 19.355,
     * high 4.604 / 8.475 / 12.157 / 19.525 (the router's kernels then delay the main stream's).
     */
    private static final String ROUTER_PRIORITY = System.getProperty("polar.router.priority",
            "low");
    private final CudaStream stream = "low".equals(ROUTER_PRIORITY) ? CudaStream.highPriority()
            : new CudaStream();
    private final DeviceAllocator weightsAlloc;
    private final DeviceAllocator kvAlloc;
    private final DeviceAllocator scratchAlloc;
    private final int maxTokens;
    private final int maxRows;
    private final int numBlocks;
    private final int maxBlocksPerSeq;
    private final Deque<Integer> freeBlocks = new ArrayDeque<>();
    private final int qkvDim;
    private final CpuWeights host; // null for synthetic weights
    private final boolean fc2NeuronMajor; // fc2 stored [ffn, hidden] (Polar sparse MLP)
    private final long seed;

    // weights
    private final DeviceBuffer embed;
    private final DeviceBuffer posTable;
    private final DeviceBuffer projIn;
    private final DeviceBuffer projOut;
    private final DeviceBuffer finalW;
    private final DeviceBuffer finalB;
    private final DeviceBuffer lmHead;
    private final DeviceBuffer invFreq;
    private final LayerBuffers[] layers;
    private final DeviceBuffer[] kCache;
    private final DeviceBuffer[] vCache;

    // scratch, sized for maxTokens tokens and maxRows rows per piece
    private final DeviceBuffer x;      // fp32 [T, hidden]
    private final DeviceBuffer y;      // bf16 [T, max(hidden, proj)]
    private final DeviceBuffer e;      // bf16 [T, proj] (OPT project_in) or null
    private final DeviceBuffer qkv;    // bf16 [T, qkvDim]
    private final DeviceBuffer att;    // bf16 [T, qDim]
    private final DeviceBuffer hb;     // bf16 [T, ffn]
    private final DeviceBuffer partO;  // fp32 [T * heads * headDim * PART_SPLITS]
    private final DeviceBuffer partMl; // fp32 [T * heads * 2 * PART_SPLITS]
    private final DeviceBuffer ids;
    private final DeviceBuffer pos;
    private final DeviceBuffer rowOf;
    private final DeviceBuffer blockTable; // int32 [maxRows, maxBlocksPerSeq]
    private final DeviceBuffer gatherRows; // int32 [LM_CHUNK]
    private final DeviceBuffer xg;         // fp32 [LM_CHUNK, hidden]
    private final DeviceBuffer yg;         // bf16 [LM_CHUNK, max(hidden, proj)]
    private final DeviceBuffer yp;         // bf16 [LM_CHUNK, proj] or null
    private final DeviceBuffer logits;     // fp32 [LM_CHUNK, vocab]
    private final DeviceBuffer gemmWork;   // fp32 split-K partials
    // ReLU models: Polar's MLP router runs on its own stream, forked after the attention norm
    // and joined before y is overwritten (it overlaps q/k/v, attention and o_proj), with its own
    // split-K workspace. Null elsewhere, or with -Dpolar.router.sameStream=true.
    private final CudaStream side;
    private final DeviceBuffer routerWork;
    private final CudaEvent forkEvent;
    /** Recorded on the side stream once the MLP router has read y (its first projection). */
    private final CudaEvent inputReadEvent;
    private final CudaEvent joinEvent;
    private boolean routerPending;
    private boolean routerInputPending;
    private final DeviceBuffer sampleQ;    // fp32 [maxRows, vocab]: sampling scratch
    private final DeviceBuffer sampleTemp; // fp32 [maxRows]
    private final DeviceBuffer sampleTopK; // int32 [maxRows]
    private final DeviceBuffer sampleTopP; // fp32 [maxRows]
    private final DeviceBuffer sampleSeed; // uint64 [maxRows]
    private final DeviceBuffer sampleStep; // int32 [maxRows]
    private final DeviceBuffer nextIds;    // int32 [LM_CHUNK]: device argmax of each row
    private final DeviceBuffer nextLp;     // fp32 [LM_CHUNK]: its log-probability
    private final DeviceBuffer argmaxPart;     // the device argmax's per-chunk partials
    private final DeviceBuffer argmaxCounters; // int32 [LM_CHUNK]: its tickets (zero between)
    private final DeviceBuffer sampledIds;     // int32 [LM_CHUNK]: the sampling kernel's ids
    private final DeviceBuffer sampledLp;      // fp32 [LM_CHUNK]: and their log-probabilities
    private final DeviceBuffer scoreIds;       // int32 [LM_CHUNK]: tokens scored (score())
    private final DeviceBuffer scoreGreedy;    // int32 [LM_CHUNK]: 1 where that is the argmax
    private DeviceScoring scoring;             // during score(): where its results go
    // --- tiled prefill attention (PrefillAttentionKernel) ---
    private final DeviceBuffer prefillTiles; // int32 [maxTiles, 4]: the piece's prompt tiles
    /** Flat tokens [prefillFrom, n) of the piece in progress are prompt tokens (see runPiece). */
    private int prefillFrom;
    private int prefillTileCount;            // 0: every token goes to the flash-decoding kernel
    private static final int PART_SPLITS = 4;
    /** Positions per flash-decoding split (a multiple of the kernel's 32-position tile). */
    static final int SPLIT_LEN = 256;
    /** Floats of partial outputs: every decode row's splits, or 4 splits of a full piece. */
    private final long partCapacity;
    private final List<DeviceBuffer> scratch = new ArrayList<>();
    private final java.util.Map<String, CudaGraph> graphsByRows = new java.util.HashMap<>();
    private final DeviceAllocator routerAlloc;
    private final DeviceBuffer[] groupIdx;   // per layer int32 [T, G]: selected groups per token
    private final DeviceBuffer headLogits;   // fp32 [T, G]: head router logits (scratch)
    private final DeviceBuffer headCounters; // int32 [T]: head router blocks done (kept zero)
    /**
     * Diagnostic timeline (-Dpolar.timeline=true): the captured step stamps the GPU's global
     * timer on each stream between the kernels of layers {@link #TIMELINE_LAYERS}; stamp
     * kernels break programmatic-dependent chains, so the step runs a little slower with them.
     */
    private static final boolean TIMELINE = Boolean.getBoolean("polar.timeline");
    private static final Set<Integer> TIMELINE_LAYERS = Set.of(10, 11);
    private final DeviceBuffer stamps;  // int64 [512] with the property, else null
    private final List<String> stampLabels = new ArrayList<>();
    private DeviceRouters routers;           // of the forward in progress, or null (dense)
    /** Polar selections and router time of every routed forward piece and decode step. */
    private final org.polarspark.polar.PolarCounters polarCounters =
            new org.polarspark.polar.PolarCounters();
    /** Router time of one routed piece of n tokens (key), measured once by replaying them. */
    private final Map<Integer, Long> routerNanosByRows = new HashMap<>();
    private boolean graphs = true;
    /**
     * True while a decode-step graph is captured: every token is one new position of its own
     * row, so the attention passes may be launched as programmatic dependents (see
     * AttentionKernel.decode).
     */
    private boolean decodeStep;
    /**
     * Benchmark only: capture Polar steps without their router kernels, the selection tables
     * keeping what the last routed step wrote (see {@link #benchDecodeFrozenRouters}).
     */
    private boolean routersFrozen;
    /**
     * The dense observation in progress ({@link #observeDense}), or null. Off, it costs one null
     * check per layer of an uncaptured piece; captured decode steps never see it (observation
     * pieces never take the graph path).
     */
    private Observation observing;

    /**
     * Whether pieces of at most 64 tokens take the fused path (split-K partials reduced together
     * with the residual add and the next norm, or with RoPE and the K/V append): the same bits
     * as the unfused path, in fewer kernels. System property polar.decode.unfused turns it off.
     */
    private final boolean fusedDecode;

    private static final class LayerBuffers {
        DeviceBuffer attnW, attnB, wqkv, bqkv, wo, bo, mlpW, mlpB, w1, b1, w2, b2;
    }

    /**
     * A decoder for a checkpoint's weights.
     *
     * @param maxTokens tokens per forward piece (scratch size)
     * @param maxRows   rows per forward piece
     * @param kvBytes   device memory for the paged KV cache (all layers, K and V)
     */
    public CudaDecoder(GpuContext ctx, KernelImage kernels, DeviceAllocator root, Checkpoint ckpt,
                       int maxTokens, int maxRows, long kvBytes) {
        this(ctx, kernels, root, ckpt, maxTokens, maxRows, kvBytes, false);
    }

    /**
     * @param neuronMajorFc2 store fc2 neuron-major ([ffn, hidden]) so that Polar's sparse MLP can
     *                       gather the selected neurons' rows (ReLU models); the dense MLP then
     *                       runs the same [K, N] GEMM over all neurons
     */
    public CudaDecoder(GpuContext ctx, KernelImage kernels, DeviceAllocator root, Checkpoint ckpt,
                       int maxTokens, int maxRows, long kvBytes, boolean neuronMajorFc2) {
        this(ctx, kernels, root, ckpt.config(), CpuWeights.load(ckpt), 0L, maxTokens, maxRows,
                kvBytes, neuronMajorFc2);
    }

    /**
     * A decoder of the given shape with pseudo-random weights generated on the device (uniform,
     * scaled by 1/sqrt(fan-in) so activations stay O(1)): real shapes for benchmarks without a
     * checkpoint.
     */
    public static CudaDecoder synthetic(GpuContext ctx, KernelImage kernels, DeviceAllocator root,
                                        ModelConfig config, long seed, int maxTokens, int maxRows,
                                        long kvBytes, boolean neuronMajorFc2) {
        return new CudaDecoder(ctx, kernels, root, config, null, seed, maxTokens, maxRows,
                kvBytes, neuronMajorFc2);
    }

    private CudaDecoder(GpuContext ctx, KernelImage kernels, DeviceAllocator root, ModelConfig c,
                        CpuWeights w, long seed, int maxTokens, int maxRows, long kvBytes,
                        boolean neuronMajorFc2) {
        this.ctx = ctx;
        this.k = kernels;
        this.c = c;
        this.host = w;
        this.seed = seed;
        this.fc2NeuronMajor = neuronMajorFc2 && c.reluMlp();
        if (c.activation() == Activation.GELU) {
            throw new UnsupportedOperationException("the CUDA backend implements ReLU (OPT) and "
                    + "SwiGLU (LLaMA) MLPs; activation_function 'gelu' is not supported");
        }
        if (maxTokens < 1 || maxRows < 1 || maxRows > maxTokens) {
            throw new IllegalArgumentException("need 1 <= maxRows (" + maxRows
                    + ") <= maxTokens (" + maxTokens + ")");
        }
        this.maxTokens = maxTokens;
        this.maxRows = maxRows;
        this.qkvDim = c.qDim() + 2 * c.kvDim();
        this.weightsAlloc = root.child("weights", Long.MAX_VALUE);
        this.kvAlloc = root.child("kv-cache", Long.MAX_VALUE);
        this.scratchAlloc = root.child("scratch", Long.MAX_VALUE);
        this.routerAlloc = root.child("routers", Long.MAX_VALUE);
        this.maxBlocksPerSeq = (c.maxPositions() + BLOCK_SIZE - 1) / BLOCK_SIZE;
        long perBlock = 2L * c.numLayers() * c.numKvHeads() * BLOCK_SIZE * c.headDim() * 2;
        this.numBlocks = (int) Math.min(Integer.MAX_VALUE / 2, kvBytes / perBlock);
        if (numBlocks < 1) {
            throw new IllegalArgumentException("KV cache of " + kvBytes + " bytes holds no "
                    + "block (" + perBlock + " bytes each)");
        }
        for (int b = 0; b < numBlocks; b++) {
            freeBlocks.add(b);
        }

        int h = c.hiddenSize();
        int proj = c.wordEmbedProjDim();
        long v = c.vocabSize();
        long f = c.ffnDim();
        boolean opt = c.family() == ModelFamily.OPT;
        boolean affine = !opt || c.layerNormElementwiseAffine();
        boolean linBias = opt ? c.enableBias() : c.attentionBias();
        boolean mlpBias = opt ? c.enableBias() : c.mlpBias();
        this.embed = tensor("embed_tokens", w == null ? null : w.embed(), v * proj, proj);
        this.posTable = !opt ? null : tensor("embed_positions", w == null ? null : w.positions(),
                (long) (c.maxPositions() + c.positionOffset()) * h, 0);
        this.projIn = !c.hasEmbedProjection() ? null
                : tensor("project_in", w == null ? null : w.projectIn(), (long) h * proj, proj);
        this.projOut = !c.hasEmbedProjection() ? null
                : tensor("project_out", w == null ? null : w.projectOut(), (long) proj * h, h);
        boolean finalNorm = c.finalLayerNorm() && affine;
        this.finalW = !finalNorm ? null
                : tensor("final_norm.weight", w == null ? null : w.finalNormW(), h, -1);
        this.finalB = !finalNorm || !opt ? null
                : tensor("final_norm.bias", w == null ? null : w.finalNormB(), h, 0);
        this.lmHead = c.tieWordEmbeddings() ? embed
                : tensor("lm_head", w == null ? null : w.lmHead(), v * proj, proj);
        if (c.family() == ModelFamily.LLAMA) {
            float[] inv = c.ropeScaling().inverseFrequencies(c.ropeTheta(), c.headDim());
            this.invFreq = weightsAlloc.allocate("rope.inv_freq", inv.length * 4L);
            invFreq.copyFrom(Pointer.to(inv), inv.length * 4L, stream);
            stream.synchronize();
        } else {
            this.invFreq = null;
        }
        this.layers = new LayerBuffers[c.numLayers()];
        for (int l = 0; l < layers.length; l++) {
            CpuWeights.LayerView L = w == null ? null : w.layer(l);
            LayerBuffers B = new LayerBuffers();
            String p = "layer" + l + ".";
            B.attnW = !affine ? null : tensor(p + "attn_norm.weight",
                    L == null ? null : L.attnNormW(), h, -1);
            B.attnB = !affine || !opt ? null : tensor(p + "attn_norm.bias",
                    L == null ? null : L.attnNormB(), h, 0);
            // Spare rows after q/k/v: the head routers' rows when they run inside the
            // projection (installHeadRouters).
            B.wqkv = tensor(p + "qkv.weight", L == null ? null : concat(L.wq(), L.wk(), L.wv()),
                    (long) qkvDim * h, h, (long) c.numKvHeads() * h);
            B.bqkv = !linBias ? null : tensor(p + "qkv.bias",
                    L == null ? null : concat(L.bq(), L.bk(), L.bv()), qkvDim, 0);
            B.wo = tensor(p + "o.weight", L == null ? null : L.wo(), (long) h * c.qDim(),
                    c.qDim());
            B.bo = !linBias ? null : tensor(p + "o.bias", L == null ? null : L.bo(), h, 0);
            B.mlpW = !affine ? null : tensor(p + "mlp_norm.weight",
                    L == null ? null : L.mlpNormW(), h, -1);
            B.mlpB = !affine || !opt ? null : tensor(p + "mlp_norm.bias",
                    L == null ? null : L.mlpNormB(), h, 0);
            if (c.gatedMlp()) {
                B.w1 = tensor(p + "gate_up.weight",
                        L == null ? null : interleaveRows(L.w1(), L.w3(), h), 2 * f * h, h);
                B.b1 = !mlpBias ? null : tensor(p + "gate_up.bias",
                        L == null ? null : interleaveRows(L.b1(), L.b3(), 1), 2 * f, 0);
            } else {
                B.w1 = tensor(p + "fc1.weight", L == null ? null : L.w1(), f * h, h);
                B.b1 = !mlpBias ? null : tensor(p + "fc1.bias", L == null ? null : L.b1(), f, 0);
            }
            B.w2 = tensor(p + "down.weight", L == null ? null
                    : fc2NeuronMajor ? transpose(L.w2(), h, (int) f) : L.w2(), (long) h * f,
                    (int) f);
            B.b2 = !mlpBias ? null : tensor(p + "down.bias", L == null ? null : L.b2(), h, 0);
            layers[l] = B;
        }
        long kvLayer = (long) numBlocks * c.numKvHeads() * BLOCK_SIZE * c.headDim() * 2;
        this.kCache = new DeviceBuffer[c.numLayers()];
        this.vCache = new DeviceBuffer[c.numLayers()];
        for (int l = 0; l < c.numLayers(); l++) {
            kCache[l] = kvAlloc.allocate("layer" + l + ".k", kvLayer);
            vCache[l] = kvAlloc.allocate("layer" + l + ".v", kvLayer);
        }

        long t = maxTokens;
        int wide = Math.max(h, proj);
        this.x = scratchBuf("x", t * h * 4);
        this.y = scratchBuf("y", t * wide * 2);
        this.e = c.hasEmbedProjection() ? scratchBuf("e", t * proj * 2) : null;
        this.qkv = scratchBuf("qkv", t * qkvDim * 2);
        this.att = scratchBuf("att", t * c.qDim() * 2);
        this.hb = scratchBuf("hb", t * c.ffnDim() * 2);
        long maxSplits = (c.maxPositions() + SPLIT_LEN - 1) / SPLIT_LEN;
        this.partCapacity = Math.max(t * PART_SPLITS, maxRows * maxSplits) * c.numHeads()
                * c.headDim();
        this.partO = scratchBuf("part_o", partCapacity * 4);
        this.partMl = scratchBuf("part_ml", partCapacity / c.headDim() * 2 * 4);
        stream.synchronize();
        this.ids = scratchBuf("ids", t * 4);
        this.pos = scratchBuf("pos", t * 4);
        this.rowOf = scratchBuf("row_of", t * 4);
        this.blockTable = scratchBuf("block_table", (long) maxRows * maxBlocksPerSeq * 4);
        int lm = Math.max(LM_CHUNK, maxRows);
        this.gatherRows = scratchBuf("gather_rows", lm * 4L);
        this.xg = scratchBuf("xg", (long) lm * h * 4);
        this.yg = scratchBuf("yg", (long) lm * wide * 2);
        this.yp = projOut == null ? null : scratchBuf("yp", (long) lm * proj * 2);
        this.logits = scratchBuf("logits", (long) lm * c.vocabSize() * 4);
        this.nextIds = scratchBuf("next_ids", lm * 4L);
        this.sampleQ = scratchBuf("sample_q", (long) maxRows * c.vocabSize() * 4);
        this.sampleTemp = scratchBuf("sample_temperature", maxRows * 4L);
        this.sampleTopK = scratchBuf("sample_top_k", maxRows * 4L);
        this.sampleTopP = scratchBuf("sample_top_p", maxRows * 4L);
        this.sampleSeed = scratchBuf("sample_seed", maxRows * 8L);
        this.sampleStep = scratchBuf("sample_step", maxRows * 4L);
        this.groupIdx = new DeviceBuffer[c.numLayers()];
        for (int l = 0; l < c.numLayers(); l++) {
            groupIdx[l] = scratchBuf("group_idx" + l, t * c.numKvHeads() * 4);
        }
        this.headLogits = scratchBuf("head_logits", t * c.numKvHeads() * 4);
        this.headCounters = scratchBuf("head_counters", t * 4);
        headCounters.zero(stream);
        this.stamps = TIMELINE ? scratchBuf("timeline", 512 * 8L) : null;
        // Split-K partials: splits * M * N floats. At least room for the layer projections at
        // 64 rows (the fused decode path, which always reduces partials), and 2 * 4 * SMs tiles.
        long work = 2L * 4 * ctx.multiprocessors() * 64 * 64 * 4;
        int fusedRows = (int) Math.min(GemmKernel.BM, t);
        int ffnOut = c.gatedMlp() ? 2 * c.ffnDim() : c.ffnDim();
        int[][] projections = {{qkvDim, h}, {h, c.qDim()}, {ffnOut, h}, {h, c.ffnDim()}};
        for (int[] nk : projections) {
            work = Math.max(work, kernels.gemm.splitsFor(nk[0], nk[1]) * 4L * fusedRows * nk[0]);
        }
        // q/k/v with the head router's rows (its chunks are q/k/v's).
        work = Math.max(work, kernels.gemm.splitsFor(qkvDim, h) * 4L * fusedRows
                * (qkvDim + c.numKvHeads()));
        this.gemmWork = scratchBuf("gemm_work", work);
        boolean sideRouter = c.reluMlp() && !Boolean.getBoolean("polar.router.sameStream");
        this.side = !sideRouter ? null
                : "high".equals(ROUTER_PRIORITY) ? CudaStream.highPriority() : new CudaStream();
        // The router's projections (hidden -> rank -> ffn, rank <= hidden) split no more than
        // the layer's own (ffn x hidden) one at 64 rows: the same size serves.
        this.routerWork = sideRouter ? scratchBuf("router_work", work) : null;
        this.forkEvent = sideRouter ? new CudaEvent(false) : null;
        this.joinEvent = sideRouter ? new CudaEvent(false) : null;
        this.inputReadEvent = sideRouter ? new CudaEvent(false) : null;
        this.fusedDecode = h % 4 == 0 && h <= NormKernel.MAX_H
                && !Boolean.getBoolean("polar.decode.unfused");
        this.nextLp = scratchBuf("next_logprob", lm * 4L);
        this.argmaxPart = scratchBuf("argmax_part", LmHeadKernel.partBytes(lm, c.vocabSize()));
        this.argmaxCounters = scratchBuf("argmax_counters", lm * 4L);
        argmaxCounters.zero(stream);
        this.sampledIds = scratchBuf("sampled_ids", lm * 4L);
        this.sampledLp = scratchBuf("sampled_logprob", lm * 4L);
        this.scoreIds = scratchBuf("score_ids", lm * 4L);
        this.scoreGreedy = scratchBuf("score_greedy", lm * 4L);
        this.prefillTiles = scratchBuf("prefill_tiles",
                PrefillAttentionKernel.maxTiles(maxTokens, maxRows) * 16L);
        stream.synchronize();
    }

    /**
     * A weight tensor on the device: the checkpoint's values, or (synthetic models) uniform
     * pseudo-random ones. {@code fanIn} scales random matrices by 1/sqrt(fanIn); 0 means a small
     * bias-like scale, -1 a norm weight around 1.
     */
    private DeviceBuffer tensor(String name, float[] hostValues, long elems, int fanIn) {
        return tensor(name, hostValues, elems, fanIn, 0);
    }

    /** As above with {@code spare} zeroed elements allocated after the tensor's. */
    private DeviceBuffer tensor(String name, float[] hostValues, long elems, int fanIn,
                                long spare) {
        if (host != null) {
            if (hostValues == null) {
                throw new IllegalStateException("checkpoint lacks " + name);
            }
            return upload(name, hostValues, spare);
        }
        DeviceBuffer d = weightsAlloc.allocate(name, (elems + spare) * 2);
        float scale = fanIn > 0 ? (float) (1.0 / Math.sqrt(fanIn)) : fanIn == 0 ? 0.02f : 1f;
        k.init.uniformBf16(stream, d, elems, seed + name.hashCode() * 0x9E3779B97F4A7C15L, scale);
        if (spare > 0) {
            d.zero(elems * 2, spare * 2, stream);
        }
        return d;
    }

    private DeviceBuffer upload(String name, float[] data) {
        return upload(name, data, 0);
    }

    private DeviceBuffer upload(String name, float[] data, long spare) {
        ByteBuffer b = pack16(name, data);
        DeviceBuffer d = weightsAlloc.allocate(name, b.capacity() + spare * 2);
        d.copyFrom(Pointer.to(b), b.capacity(), stream);
        if (spare > 0) {
            d.zero(b.capacity(), spare * 2, stream);
        }
        stream.synchronize(); // the direct buffer must outlive the copy
        return d;
    }

    private DeviceBuffer scratchBuf(String name, long bytes) {
        DeviceBuffer b = scratchAlloc.allocate(name, bytes);
        scratch.add(b);
        return b;
    }

    private DeviceBuffer uploadOrNull(String name, float[] data) {
        return data == null ? null : upload(name, data);
    }

    private static float[] concat(float[]... parts) {
        int n = 0;
        for (float[] p : parts) {
            n += p.length;
        }
        float[] out = new float[n];
        int o = 0;
        for (float[] p : parts) {
            System.arraycopy(p, 0, out, o, p.length);
            o += p.length;
        }
        return out;
    }

    /** a [rows, cols] row-major -> [cols, rows]. */
    static float[] transpose(float[] a, int rows, int cols) {
        float[] out = new float[a.length];
        for (int r = 0; r < rows; r++) {
            for (int q = 0; q < cols; q++) {
                out[q * rows + r] = a[r * cols + q];
            }
        }
        return out;
    }

    /** Rows of a and b interleaved: out row 2j = a row j, out row 2j+1 = b row j. */
    static float[] interleaveRows(float[] a, float[] b, int width) {
        float[] out = new float[a.length + b.length];
        int rows = a.length / width;
        for (int j = 0; j < rows; j++) {
            System.arraycopy(a, j * width, out, 2 * j * width, width);
            System.arraycopy(b, j * width, out, (2 * j + 1) * width, width);
        }
        return out;
    }

    @Override
    public ModelConfig config() {
        return c;
    }

    public GpuContext context() {
        return ctx;
    }

    public int freeBlocks() {
        return freeBlocks.size();
    }

    public int numBlocks() {
        return numBlocks;
    }

    private static int blocksFor(int capacity) {
        return (capacity + BLOCK_SIZE - 1) / BLOCK_SIZE;
    }

    @Override
    public CudaSequence open(int capacity) {
        if (!fitsEver(capacity)) {
            throw new IllegalArgumentException("a sequence of " + capacity + " positions can never"
                    + " fit (context " + c.maxPositions() + ", KV cache " + numBlocks
                    + " blocks of " + BLOCK_SIZE + ")");
        }
        int need = blocksFor(capacity);
        if (freeBlocks.size() < need) {
            return null;
        }
        CudaSequence s = new CudaSequence(capacity);
        for (int i = 0; i < need; i++) {
            s.blocks.add(freeBlocks.poll());
        }
        return s;
    }

    @Override
    public boolean fitsEver(int capacity) {
        return capacity >= 1 && capacity <= c.maxPositions() && blocksFor(capacity) <= numBlocks;
    }

    @Override
    public void close(CudaSequence s) {
        if (!s.closed) {
            s.closed = true;
            freeBlocks.addAll(s.blocks);
            s.blocks.clear();
        }
    }

    @Override
    public float[][][] forward(List<CudaSequence> seqs, int[][] tokens, int[] logitsLast,
                               SparsityPolicy policy) {
        setPolicy(policy);
        validate(seqs, tokens, logitsLast);
        int rows = seqs.size();
        ctx.bind();
        float[][][] out = new float[rows][][];
        for (int r = 0; r < rows; r++) {
            out[r] = new float[logitsLast[r]][];
        }
        runPieces(seqs, tokens, logitsLast, out, null);
        return out;
    }

    /**
     * Scores on the device: the tokens run in pieces exactly as {@link #forward} runs them, and
     * for each wanted position the LM head and then the log-probability kernel
     * (lmhead_logprob_f32) on the target token; only the log-probability and the greedy flag
     * of each position come back, not its logits.
     */
    @Override
    public TokenScores score(List<CudaSequence> seqs, int[][] tokens, int[][] targets,
                             SparsityPolicy policy) {
        int rows = seqs.size();
        if (targets.length != rows) {
            throw new IllegalArgumentException("score: " + rows + " sequences, " + targets.length
                    + " target rows");
        }
        int[] last = new int[rows];
        for (int r = 0; r < rows; r++) {
            last[r] = targets[r].length;
            for (int i = 0; i < targets[r].length; i++) {
                int t = targets[r][i];
                if (t < 0 || t >= c.vocabSize()) {
                    throw new IllegalArgumentException("score: row " + r + " position " + i
                            + " scores token id " + t + " outside the vocabulary [0, "
                            + c.vocabSize() + ")");
                }
            }
        }
        setPolicy(policy);
        validate(seqs, tokens, last);
        ctx.bind();
        DeviceScoring sc = new DeviceScoring(targets);
        scoring = sc;
        try {
            runPieces(seqs, tokens, last, null, null);
        } finally {
            scoring = null;
        }
        return new TokenScores(sc.logprob, sc.greedy);
    }

    /** Device scoring of one {@link #score} call: its targets and its results, [row][position]. */
    private static final class DeviceScoring {
        final int[][] targets;
        final double[][] logprob;
        final boolean[][] greedy;

        DeviceScoring(int[][] targets) {
            this.targets = targets;
            this.logprob = new double[targets.length][];
            this.greedy = new boolean[targets.length][];
            for (int r = 0; r < targets.length; r++) {
                logprob[r] = new double[targets[r].length];
                greedy[r] = new boolean[targets[r].length];
            }
        }
    }

    /**
     * A prefill sampled on the device: the prompts run in pieces exactly as {@link #forward}
     * runs them (chunked prefill included), and for the piece that holds a row's last token, the
     * LM head and then the sampling kernel (the one {@link #decodeSample} uses) on that position;
     * only the ids and their log-probabilities come back. Never returns null.
     */
    @Override
    public int[] prefillSample(List<CudaSequence> seqs, int[][] tokens, SparsityPolicy policy,
                               SamplingParams[] params, long[] seeds, int[] steps,
                               double[] logprobs) {
        int n = seqs.size();
        int[] last = new int[n];
        Arrays.fill(last, 1);
        setPolicy(policy);
        validate(seqs, tokens, last);
        DeviceSampling sampling = new DeviceSampling(params, seeds, steps, new int[n], logprobs);
        ctx.bind();
        runPieces(seqs, tokens, last, null, sampling);
        return sampling.ids;
    }

    /**
     * Runs a validated call in pieces of at most maxTokens tokens and maxRows rows, in row order;
     * the wanted logits go to {@code out}, or, with {@code sampling}, are sampled on the device.
     */
    private void runPieces(List<CudaSequence> seqs, int[][] tokens, int[] logitsLast,
                           float[][][] out, DeviceSampling sampling) {
        int rows = seqs.size();
        int[] done = new int[rows];
        int r0 = 0;
        while (r0 < rows) {
            List<int[]> segs = new ArrayList<>(); // {row, from, to}
            int budget = maxTokens;
            int r = r0;
            while (r < rows && budget > 0 && segs.size() < maxRows) {
                int take = Math.min(tokens[r].length - done[r], budget);
                segs.add(new int[] {r, done[r], done[r] + take});
                budget -= take;
                done[r] += take;
                if (done[r] < tokens[r].length) {
                    break; // this row continues in the next piece
                }
                r++;
            }
            runPiece(seqs, tokens, logitsLast, segs, out, sampling);
            while (r0 < rows && done[r0] == tokens[r0].length) {
                r0++;
            }
        }
    }

    /**
     * One dense forward of one token sequence that reports every layer to {@code observer}
     * (calibration): the router input (the q/k/v projection's input, [T, hidden]) and the
     * attention output before o_proj ([T, qDim]) to {@link DecoderObserver#attention}, then the
     * activations entering the down projection ([T, ffn]: ReLU(fc1), or silu(gate) * up) to
     * {@link DecoderObserver#mlp} with a null {@code output} (the MLP's output is fused into the
     * residual add here). Values are the device's bf16 activations widened to float; rowOf is
     * all 0 and posOf is 0..T-1, as on the CPU decoder.
     *
     * <p>The observer is called once per layer with the whole sequence, in layer order. A
     * sequence longer than one piece (maxTokens) is prefilled in pieces as usual; the earlier
     * pieces' rows are then kept on the host (bf16, layers x T x (hidden + qDim + ffn) x 2
     * bytes) until the last piece completes each layer. Each layer costs three synchronous
     * device-to-host copies: calibration is not the hot path. The KV blocks are freed
     * afterwards. Routers are not used (dense), whatever the caller decodes with.
     *
     * @throws IllegalArgumentException when tokens.length is not 1..maxPositions, or an id is
     *                                  outside the vocabulary
     * @throws IllegalStateException    when the KV cache has no room for the sequence now
     */
    public void observeDense(int[] tokens, DecoderObserver observer) {
        int n = tokens.length;
        if (n == 0 || n > c.maxPositions()) {
            throw new IllegalArgumentException("observeDense: " + n + " tokens; must be 1.."
                    + c.maxPositions() + " (the model's context)");
        }
        ctx.bind();
        CudaSequence s = open(n);
        if (s == null) {
            throw new IllegalStateException("observeDense: " + n + " tokens need "
                    + blocksFor(n) + " KV blocks; " + freeBlocks.size() + " of " + numBlocks
                    + " are free");
        }
        observing = new Observation(observer, n);
        try {
            forward(List.of(s), new int[][] {tokens}, new int[] {1}, SparsityPolicy.DENSE);
        } finally {
            observing = null;
            close(s);
        }
    }

    /**
     * Host copies of one observed sequence's per-layer values, filled piece by piece and handed
     * to the observer, widened to float, when the piece holding the last token has finished a
     * layer's attention (router input and attention output) or its MLP activations.
     */
    private final class Observation {
        final DecoderObserver observer;
        final int tokens;
        final int[] rowOf;
        final int[] posOf;
        // Per layer, bf16 bits of tokens [0, from + count): allocated at the layer's first
        // piece, released once handed over.
        final short[][] routerIn;
        final short[][] attention;
        final short[][] activations;
        int from;  // first token of the piece in progress
        int count; // its tokens

        Observation(DecoderObserver observer, int tokens) {
            this.observer = observer;
            this.tokens = tokens;
            this.rowOf = new int[tokens];
            this.posOf = new int[tokens];
            for (int t = 0; t < tokens; t++) {
                posOf[t] = t;
            }
            int layersN = c.numLayers();
            this.routerIn = new short[layersN][];
            this.attention = new short[layersN][];
            this.activations = new short[layersN][];
        }

        void piece(int first, int n) {
            if (routers != null) {
                throw new IllegalStateException("observeDense runs dense; routers are set");
            }
            from = first;
            count = n;
        }

        private boolean last() {
            return from + count == tokens;
        }

        /** Rows [from, from + count) of a bf16 [count, dim] device buffer into dst[layer]. */
        private void read(short[][] dst, int layer, DeviceBuffer src, int dim) {
            if (dst[layer] == null) {
                dst[layer] = new short[tokens * dim];
            }
            short[] rows = new short[count * dim];
            src.copyTo(Pointer.to(rows), rows.length * 2L, stream);
            stream.synchronize();
            System.arraycopy(rows, 0, dst[layer], from * dim, rows.length);
        }

        private float[] widen(short[][] src, int layer) {
            short[] b = src[layer];
            src[layer] = null;
            float[] out = new float[b.length];
            for (int i = 0; i < b.length; i++) {
                out[i] = k.dtype().toFloat(b[i]);
            }
            return out;
        }

        void routerInput(int layer, DeviceBuffer yNormed) {
            read(routerIn, layer, yNormed, c.hiddenSize());
        }

        void attention(int layer, DeviceBuffer attOut) {
            read(attention, layer, attOut, c.qDim());
            if (last()) {
                observer.attention(layer, widen(routerIn, layer), widen(attention, layer), rowOf,
                        posOf);
            }
        }

        void mlp(int layer, DeviceBuffer act) {
            read(activations, layer, act, c.ffnDim());
            if (last()) {
                observer.mlp(layer, widen(activations, layer), null);
            }
        }
    }

    private void runPiece(List<CudaSequence> seqs, int[][] tokens, int[] logitsLast,
                          List<int[]> segs, float[][][] out, DeviceSampling sampling) {
        int n = 0;
        for (int[] sg : segs) {
            n += sg[2] - sg[1];
        }
        int[] hIds = new int[n];
        int[] hPos = new int[n];
        int[] hRow = new int[n];
        int[] table = new int[segs.size() * maxBlocksPerSeq];
        List<int[]> want = new ArrayList<>(); // {flat index, row, logit slot}
        int i = 0;
        int maxLen = 0;
        // Tiled prefill attention: prompt rows' tokens are laid out last (see prefillOrder).
        List<int[]> runs = new ArrayList<>(); // {first flat token, segment, first position, count}
        prefillFrom = 0;
        for (int j : prefillOrder(segs, tokens)) {
            int[] sg = segs.get(j);
            CudaSequence s = seqs.get(sg[0]);
            for (int b = 0; b < s.blocks.size(); b++) {
                table[j * maxBlocksPerSeq + b] = s.blocks.get(b);
            }
            if (isPromptRow(tokens[sg[0]])) {
                runs.add(new int[] {i, j, s.length, sg[2] - sg[1]});
            }
            int firstLogit = tokens[sg[0]].length - logitsLast[sg[0]];
            for (int t = sg[1]; t < sg[2]; t++) {
                hIds[i] = tokens[sg[0]][t];
                hPos[i] = s.length + (t - sg[1]);
                hRow[i] = j;
                if (t >= firstLogit) {
                    want.add(new int[] {i, sg[0], t - firstLogit});
                }
                maxLen = Math.max(maxLen, hPos[i] + 1);
                i++;
            }
            if (!isPromptRow(tokens[sg[0]])) {
                prefillFrom = i;
            }
        }
        uploadPrefillTiles(runs);
        ids.copyFrom(Pointer.to(hIds), n * 4L, stream);
        pos.copyFrom(Pointer.to(hPos), n * 4L, stream);
        rowOf.copyFrom(Pointer.to(hRow), n * 4L, stream);
        blockTable.copyFrom(Pointer.to(table), table.length * 4L, stream);

        boolean decodeOnly = want.size() == n && n == segs.size() && graphs
                && prefillTileCount == 0 && observing == null;
        if (observing != null) {
            observing.piece(segs.get(0)[1], n); // one row: flat token i is token from + i
        }
        if (decodeOnly) {
            // One new token per row, logits for each: the captured decode step for n slots.
            int[] identity = new int[n];
            for (int j = 0; j < n; j++) {
                identity[j] = j;
            }
            gatherRows.copyFrom(Pointer.to(identity), n * 4L, stream);
            timeRoutersOnce(n);
            graph(n).launch(stream);
            countPolar(n);
            takeLogits(want, 0, n, out, sampling);
        } else {
            int splitLen = splitLength(n, maxLen);
            try {
                timeRoutersOnce(n);
            compute(n, splitLen, (maxLen + splitLen - 1) / splitLen);
            countPolar(n);
            } finally {
                prefillTileCount = 0; // graphs and later pieces see decode-only attention
            }
            lmHead(want, out, sampling);
        }
        for (int[] sg : segs) {
            seqs.get(sg[0]).length += sg[2] - sg[1];
        }
    }

    // --- tiled prefill attention: piece layout (see runPiece and layer) ---

    /**
     * Whether a row's tokens in this forward call take the tiled prefill kernel: rows with more
     * than one token (prompts, also when split across pieces), for head dims it supports. The
     * choice depends only on the call, never on batching, so a row gets the same bits alone or
     * batched; one-token rows (decode steps) keep the flash-decoding kernel.
     */
    private boolean isPromptRow(int[] rowTokens) {
        return rowTokens.length > 1 && PrefillAttentionKernel.supports(c.headDim());
    }

    /** Segment indices, the other rows first and then prompt rows, each in their order. */
    private int[] prefillOrder(List<int[]> segs, int[][] tokens) {
        int[] order = new int[segs.size()];
        int o = 0;
        for (int pass = 0; pass < 2; pass++) {
            for (int j = 0; j < segs.size(); j++) {
                if (isPromptRow(tokens[segs.get(j)[0]]) == (pass == 1)) {
                    order[o++] = j;
                }
            }
        }
        return order;
    }

    /** The tile list of the piece's prompt runs {first flat token, segment, position, count}. */
    private void uploadPrefillTiles(List<int[]> runs) {
        prefillTileCount = 0;
        if (runs.isEmpty()) {
            return;
        }
        int[][] cols = new int[4][runs.size()];
        for (int q = 0; q < runs.size(); q++) {
            for (int f = 0; f < 4; f++) {
                cols[f][q] = runs.get(q)[f];
            }
        }
        int[] tiles = PrefillAttentionKernel.tiles(cols[0], cols[1], cols[2], cols[3]);
        prefillTiles.copyFrom(Pointer.to(tiles), tiles.length * 4L, stream);
        prefillTileCount = tiles.length / 4;
    }

    private void setPolicy(SparsityPolicy policy) {
        if (policy instanceof DeviceRouters) {
            routers = (DeviceRouters) policy;
            installHeadRouters(routers);
        } else if (policy == SparsityPolicy.DENSE) {
            routers = null;
        } else {
            throw new UnsupportedOperationException("the CUDA decoder applies Polar Sparsity "
                    + "with routers on the device (DeviceRouters); got " + policy.getClass()
                    .getName());
        }
    }

    private void validate(List<CudaSequence> seqs, int[][] tokens, int[] logitsLast) {
        int rows = seqs.size();
        if (tokens.length != rows || logitsLast.length != rows) {
            throw new IllegalArgumentException("forward: " + rows + " sequences, "
                    + tokens.length + " token rows, " + logitsLast.length + " logit counts");
        }
        for (int r = 0; r < rows; r++) {
            CudaSequence s = seqs.get(r);
            int n = tokens[r].length;
            if (s.closed) {
                throw new IllegalArgumentException("forward: row " + r + " is closed");
            }
            if (n == 0 || logitsLast[r] < 1 || logitsLast[r] > n) {
                throw new IllegalArgumentException("forward: row " + r + " has " + n
                        + " tokens and asks for logits at " + logitsLast[r]);
            }
            if (s.length + n > s.capacity) {
                throw new IllegalArgumentException("forward: row " + r + " needs "
                        + (s.length + n) + " positions, its capacity is " + s.capacity);
            }
            for (int t : tokens[r]) {
                if (t < 0 || t >= c.vocabSize()) {
                    throw new IllegalArgumentException("forward: row " + r + " has token id " + t
                            + " outside the vocabulary [0, " + c.vocabSize() + ")");
                }
            }
        }
    }

    /**
     * One decode step sampled on the device: the captured step (logits stay on the device),
     * then the sampling kernel; only the ids and their log-probabilities come back.
     */
    @Override
    public int[] decodeSample(List<CudaSequence> seqs, int[] tokens, SparsityPolicy policy,
                              SamplingParams[] params, long[] seeds, int[] steps,
                              double[] logprobs) {
        int n = seqs.size();
        if (n > maxRows || !graphs) {
            return null;
        }
        int[][] tok = new int[n][];
        int[] ones = new int[n];
        for (int i = 0; i < n; i++) {
            tok[i] = new int[] {tokens[i]};
            ones[i] = 1;
        }
        validate(seqs, tok, ones);
        setPolicy(policy);
        DeviceSampling sampling = new DeviceSampling(params, seeds, steps, new int[n], logprobs);
        ctx.bind();
        int[] hPos = new int[n];
        int[] hRow = new int[n];
        int[] table = new int[n * maxBlocksPerSeq];
        for (int i = 0; i < n; i++) {
            CudaSequence s = seqs.get(i);
            for (int b = 0; b < s.blocks.size(); b++) {
                table[i * maxBlocksPerSeq + b] = s.blocks.get(b);
            }
            hPos[i] = s.length;
            hRow[i] = i;
        }
        ids.copyFrom(Pointer.to(tokens), n * 4L, stream);
        pos.copyFrom(Pointer.to(hPos), n * 4L, stream);
        rowOf.copyFrom(Pointer.to(hRow), n * 4L, stream);
        blockTable.copyFrom(Pointer.to(table), table.length * 4L, stream);
        gatherRows.copyFrom(Pointer.to(hRow), n * 4L, stream); // identity
        timeRoutersOnce(n);
        graph(n).launch(stream);
        countPolar(n);
        sampleLogits(n, hRow, sampling); // logits row i is row i
        for (int i = 0; i < n; i++) {
            seqs.get(i).length++;
        }
        return sampling.ids;
    }

    /**
     * Device sampling of one call ({@link #decodeSample}, {@link #prefillSample}): each row's
     * settings, seed and sampler counter, and where its id and log-probability go. Rows are the
     * call's rows, whatever logits row they occupy in a piece.
     */
    private record DeviceSampling(SamplingParams[] params, long[] seeds, int[] steps, int[] ids,
                                  double[] logprobs) {
        DeviceSampling {
            int n = ids.length;
            if (params.length != n || seeds.length != n || steps.length != n
                    || logprobs.length != n) {
                throw new IllegalArgumentException("device sampling: " + n + " rows, "
                        + params.length + " params, " + seeds.length + " seeds, " + steps.length
                        + " steps, " + logprobs.length + " logprob slots");
            }
        }
    }

    /**
     * Scores logits rows [0, m), those of wanted positions [from, from + m), on their targets
     * into {@link #scoring}. Synchronises.
     */
    private void scoreLogits(List<int[]> want, int from, int m) {
        int[] ids = new int[m];
        for (int j = 0; j < m; j++) {
            int[] w = want.get(from + j);
            ids[j] = scoring.targets[w[1]][w[2]];
        }
        scoreIds.copyFrom(Pointer.to(ids), m * 4L, stream);
        k.lmHead.logprob(stream, logits, m, c.vocabSize(), scoreIds, nextLp, scoreGreedy,
                argmaxPart, argmaxCounters);
        float[] lp = new float[m];
        int[] greedy = new int[m];
        nextLp.copyTo(Pointer.to(lp), m * 4L, stream);
        scoreGreedy.copyTo(Pointer.to(greedy), m * 4L, stream);
        stream.synchronize();
        for (int j = 0; j < m; j++) {
            int[] w = want.get(from + j);
            scoring.logprob[w[1]][w[2]] = lp[j];
            scoring.greedy[w[1]][w[2]] = greedy[j] != 0;
        }
    }

    /**
     * Samples logits rows [0, m) (logits row j belongs to the call's row {@code rowOf[j]}): greedy
     * rows from the device argmax already run on them, the others with the sampling kernel; writes
     * each row's id and log-probability into {@code sampling}.
     * m <= maxRows (a piece has at most maxRows rows). Synchronises.
     */
    private void sampleLogits(int m, int[] rowOf, DeviceSampling sampling) {
        float[] temp = new float[m];
        int[] topK = new int[m];
        float[] topP = new float[m];
        long[] seeds = new long[m];
        int[] steps = new int[m];
        boolean allGreedy = true;
        for (int j = 0; j < m; j++) {
            int r = rowOf[j];
            SamplingParams p = sampling.params[r];
            temp[j] = (float) p.temperature();
            topK[j] = p.topK();
            topP[j] = (float) p.topP();
            seeds[j] = sampling.seeds[r];
            steps[j] = sampling.steps[r];
            allGreedy &= temp[j] == 0f;
        }
        // Greedy rows (temperature 0) take the device argmax that ran after the LM head
        // (lmHeadDevice, also in the captured step: the lowest id among the maxima, as the
        // sampling kernel's greedy rows) and its log-probability, whatever else the piece holds,
        // so their bits never depend on batching; the sampling kernel runs only for a piece with
        // other rows, into its own buffers.
        int[] got = new int[m];
        float[] lp = new float[m];
        nextIds.copyTo(Pointer.to(got), m * 4L, stream);
        nextLp.copyTo(Pointer.to(lp), m * 4L, stream);
        int[] sampled = allGreedy ? null : new int[m];
        float[] sampledLogprob = allGreedy ? null : new float[m];
        if (!allGreedy) {
            sampleTemp.copyFrom(Pointer.to(temp), m * 4L, stream);
            sampleTopK.copyFrom(Pointer.to(topK), m * 4L, stream);
            sampleTopP.copyFrom(Pointer.to(topP), m * 4L, stream);
            sampleSeed.copyFrom(Pointer.to(seeds), m * 8L, stream);
            sampleStep.copyFrom(Pointer.to(steps), m * 4L, stream);
            k.sampling.sample(stream, logits, m, c.vocabSize(), sampleTemp, sampleTopK,
                    sampleTopP, sampleSeed, sampleStep, sampleQ, sampledIds, sampledLp);
            sampledIds.copyTo(Pointer.to(sampled), m * 4L, stream);
            sampledLp.copyTo(Pointer.to(sampledLogprob), m * 4L, stream);
        }
        stream.synchronize();
        for (int j = 0; j < m; j++) {
            boolean greedy = temp[j] == 0f;
            sampling.ids[rowOf[j]] = greedy ? got[j] : sampled[j];
            sampling.logprobs[rowOf[j]] = greedy ? lp[j] : sampledLogprob[j];
        }
    }

    /** Embedding and every layer for n tokens whose metadata is on the device. */
    private void compute(int n, int splitLen, int splits) {
        stampLabels.clear();
        embedTokens(n);
        for (int l = 0; l < c.numLayers(); l++) {
            layer(l, n, splitLen, splits);
        }
    }

    /** Splits of the captured decode step: enough for a full context. */
    private int graphSplits() {
        return (c.maxPositions() + SPLIT_LEN - 1) / SPLIT_LEN;
    }

    /**
     * The decode step for n slots (one token per row; metadata, gather rows 0..n-1), captured as
     * a CUDA graph on first use and replayed afterwards: embedding, all layers, final norm, LM
     * head logits and the device argmax. Inputs live at fixed device addresses, so only their
     * contents change between replays.
     */
    private CudaGraph graph(int n) {
        String key = n + (routers == null ? "" : "|" + System.identityHashCode(routers))
                + (routersFrozen ? "|frozen" : "");
        CudaGraph g = graphsByRows.get(key);
        if (g == null) {
            g = CudaGraph.capture(stream, () -> {
                decodeStep = true;
                try {
                    compute(n, SPLIT_LEN, graphSplits());
                } finally {
                    decodeStep = false;
                }
                lmHeadDevice(n);
            }, "decode step, " + n + " rows" + (routers == null ? "" : ", Polar"));
            graphsByRows.put(key, g);
        }
        return g;
    }

    /** Whether decode-only calls replay captured graphs (default true). */
    public void useGraphs(boolean on) {
        this.graphs = on;
    }

    /**
     * Split length of the flash-decoding pass. A fixed 256 positions, so that a token's partial
     * sums (and hence its result, bit for bit) do not depend on which other rows share its batch;
     * grown only when a very large prefill piece would overflow the partial buffers.
     */
    private int splitLength(int n, int maxLen) {
        int splitLen = SPLIT_LEN;
        while ((long) n * c.numHeads() * c.headDim() * ((maxLen + splitLen - 1) / splitLen)
                > partCapacity) {
            splitLen *= 2;
        }
        return splitLen;
    }

    private void embedTokens(int n) {
        int h = c.hiddenSize();
        if (projIn != null) {
            int p = c.wordEmbedProjDim();
            k.embedding.tokensBf16(stream, e, ids, embed, n, p);
            x.zero(0, (long) n * h * 4, stream);
            k.gemm.run(GemmKernel.Epilogue.ACCUM_F32, stream, e, p, projIn, p, null, x, h, n, h, p, gemmWork);
        } else {
            k.embedding.tokensF32(stream, x, ids, embed, n, h);
        }
        if (posTable != null) {
            k.embedding.positions(stream, x, pos, posTable, c.positionOffset(), n, h);
        }
    }

    private void norm(DeviceBuffer w, DeviceBuffer b, int n, boolean writeBack) {
        int h = c.hiddenSize();
        if (c.family() == ModelFamily.LLAMA) {
            k.norm.rms(stream, x, y, w, c.normEps(), n, h, writeBack);
        } else {
            k.norm.layer(stream, x, y, w, b, c.normEps(), n, h, writeBack);
        }
    }

    /**
     * Flash-decoding of the first n tokens into att: the split-K pass then the combine kernel.
     * (A combine fused into the pass, its last split block merging, was measured on the H100 on
     * 2026-11-26: equal at batch 1 and 0.1-1.5% slower at batch 8-64; removed.)
     */
    private void attention(DeviceBuffer kc, DeviceBuffer vc, DeviceBuffer table, int groups,
                           int splitLen, int splits, int n) {
        attention(kc, vc, table, groups, splitLen, splits, n, false, null);
    }

    /**
     * Dependent attention passes also where the group table comes from the kernel just before
     * (the head router inside the q/k/v reduce: the passes then wait before reading it), in
     * launches of many waves and unless an MLP router runs on the side stream;
     * -Dpolar.attention.pdlAfterRouter=false: plain. H100, 2026-11-26, same call, two rounds,
     * Polar ms on/off: llama-2-7b B=8 8.61/8.66, B=16 11.52/11.62, B=32 17.51/17.55, llama-3-8b
     * B=16 10.45/10.54, B=48 19.20/19.25; llama-3-8b B=1 (few waves) 6.61/6.50, so not there.
     */
    private static final boolean PDL_AFTER_ROUTER = !"false".equals(System.getProperty(
            "polar.attention.pdlAfterRouter"));

    /** Pass-1 blocks per SM from which the register-load attention kernels run as dependents. */
    private static final int DEPENDENT_ATTENTION_BLOCKS_PER_SM = Integer.getInteger(
            "polar.attention.pdlBlocksPerSm", 8);

    /**
     * As above; {@code tableReady}: a group table written before the q/k/v projection (the
     * head router ran first, or the selection is frozen).
     */
    private void attention(DeviceBuffer kc, DeviceBuffer vc, DeviceBuffer table, int groups,
                           int splitLen, int splits, int n, boolean tableReady,
                           AttentionKernel.QkvPartials fusedQkv) {
        float scale = (float) (1.0 / Math.sqrt(c.headDim()));
        boolean pairs = AttentionKernel.pairsFor(n, groups, splits, c.numHeads(),
                c.numKvHeads(), c.headDim(), splitLen, ctx.multiprocessors());
        // Programmatic dependents in decode steps, unless the group table comes from a router
        // run just before (then the pass must wait for it first anyway, and its early-resident
        // blocks only take SMs from the MLP router on the side stream: H100, 2026-11-26, same
        // call, opt-6.7b Polar B=1 4.25 -> 4.32 ms with them; dense llama-3-8b B=1 6.94 -> 6.73,
        // B=16 12.91 -> 12.80). The kernels with loads in registers (one query head per group)
        // read nothing before their wait: for them it pays only in launches of many waves
        // (same call: llama-2-7b B=1 6.22 -> 6.25 ms, Polar 6.13 -> 6.23, but B=8 11.24 ->
        // 11.15, opt-6.7b B=16 11.10 -> 11.00).
        boolean pipe = AttentionKernel.pipeFor(c.numHeads(), c.numKvHeads(), c.headDim());
        boolean manyWaves = (long) n * groups * splits
                >= (long) DEPENDENT_ATTENTION_BLOCKS_PER_SM * ctx.multiprocessors();
        boolean dependent = decodeStep && (table == null || tableReady ? pipe || manyWaves
                : side == null && PDL_AFTER_ROUTER && manyWaves);
        int singleFrom = AttentionKernel.singleFrom(n, groups, splits, pairs,
                ctx.multiprocessors());
        k.attention.decode(stream, qkv, qkvDim, scale, kc, vc, blockTable, maxBlocksPerSeq,
                BLOCK_SIZE, rowOf, pos, table, groups, c.numHeads(), c.numKvHeads(), c.headDim(),
                splitLen, splits, pairs, singleFrom, dependent, tableReady, fusedQkv, partO,
                partMl, n);
        // The combine's one-round form (every load of a head at once, more registers) where
        // its blocks could not have been resident early anyway (a pass of many waves) and
        // one query head per group. H100, 2026-11-26, polar-bench, same call, two rounds, ms
        // with / without: llama-2-7b B=32 27.84 / 27.91 (Polar 17.39 / 17.48), B=16 16.63 /
        // 16.74, Polar B=8 8.44 / 8.51; but B=1 (a one-wave pass) 6.21 / 6.19, opt-6.7b B=1
        // 5.91 / 5.86, llama-3-8b (32 partials a head) B=16 12.68 / 12.61.
        boolean regs = manyWaves && c.numHeads() == c.numKvHeads()
                && AttentionKernel.COMBINE_REGS;
        // The pipelined kernel's partials are dropped from L2 once merged (never written back
        // to HBM) in decode steps of many waves (see AttentionKernel.DISCARD_PARTIALS).
        boolean discard = decodeStep && pipe && manyWaves && AttentionKernel.DISCARD_PARTIALS;
        k.attention.combine(stream, att, partO, partMl, table, groups, c.numHeads(),
                c.numKvHeads(), c.headDim(), splits, pairs, singleFrom, dependent, regs, discard,
                n);
    }

    /**
     * Whether a decode step's pipelined attention pass reduces the q/k/v partials itself (see
     * AttentionKernel.QkvPartials; the same bits as the q/k/v reduce, one launch boundary fewer
     * a layer): grouped-query shapes of the pipelined kernel without a group table, while the
     * partials stay under {@link #QKV_IN_ATTENTION_MAX_BYTES} (larger ones are dropped from L2
     * by the reduce that reads them once, which the pass's blocks, each reading its group's,
     * cannot do). -Dpolar.attention.reduceQkv=false: never.
     */
    private boolean reduceQkvInAttention(int n, int splits, int ldw, DeviceBuffer table) {
        return QKV_IN_ATTENTION && decodeStep && prefillTileCount == 0 && table == null
                && observing == null
                && AttentionKernel.pipeFor(c.numHeads(), c.numKvHeads(), c.headDim())
                && (long) splits * n * ldw * 4 < QKV_IN_ATTENTION_MAX_BYTES;
    }

    private static final boolean QKV_IN_ATTENTION = !"false".equals(System.getProperty(
            "polar.attention.reduceQkv"));
    /** kernels/common.cuh POLAR_DISCARD_MIN: the reduces drop partials of this size from L2. */
    private static final long QKV_IN_ATTENTION_MAX_BYTES = 6L << 20;

    /**
     * Where the head router runs: ahead of the q/k/v projection (the projection launched as its
     * programmatic dependent), unless the layer also runs an MLP router (on the side stream);
     * then, and always with -Dpolar.router.headFirst=false, after the K/V append, just before
     * attention. Measured on the H100 (2026-11-26, same run): ahead is 0.4-2.4% faster
     * for llama-2-7b and llama-3-8b at B = 1..48; for opt-6.7b with its MLP router it was up to
     * 6% slower (B = 1), after is used there.
     */
    private static final boolean HEAD_ROUTER_FIRST = !"false".equals(System.getProperty(
            "polar.router.headFirst"));

    /**
     * The head router inside the q/k/v projection: its rows, copied after q/k/v's in the layer's
     * weights, stream with them, and the q/k/v reduce adds its columns and selects (decode
     * pieces on the fused path); elsewhere its own GEMM over the same K chunks, then a top-k, so
     * a token's selection has the same bits on either path. -Dpolar.router.fuseHead=false: the
     * fused head router + top-k kernel (router_head_topk) everywhere. H100, 2026-11-26: that
     * kernel took 8 us a layer at llama-2-7b B=32 and 27 us at opt-6.7b B=64 beside the MLP
     * router's GEMM on the side stream.
     */
    static final boolean FUSE_HEAD_ROUTER = !"false".equals(System.getProperty(
            "polar.router.fuseHead"));

    /** The routers whose head-router rows sit after each layer's q/k/v weights, or null. */
    private DeviceRouters installedHeadRouters;

    /** FUSE_HEAD_ROUTER where the GEMMs can take it (an even number of selection units). */
    private boolean headRouterAsGemm() {
        return FUSE_HEAD_ROUTER && c.numKvHeads() % 2 == 0;
    }

    /**
     * Copies the head routers' rows into the spare rows after each layer's q/k/v weights (read
     * there by the fused decode path), unless these routers are there already. Stream-ordered:
     * a replay of an earlier step with other routers has read its rows before.
     */
    private void installHeadRouters(DeviceRouters r) {
        if (r == null || r == installedHeadRouters || !headRouterAsGemm()) {
            return;
        }
        int h = c.hiddenSize();
        long offset = (long) qkvDim * h * 2;
        long bytes = (long) c.numKvHeads() * h * 2;
        for (int l = 0; l < c.numLayers(); l++) {
            if (r.weight[l] != null) {
                Cuda.check(jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync(layers[l].wqkv.at(offset),
                        r.weight[l].ptr(), bytes, stream.handle()), "cuMemcpyDtoDAsync(layer "
                        + l + " head router rows)");
            }
        }
        installedHeadRouters = r;
    }

    /** Whether a layer's head router (table not null) runs inside the q/k/v projection. */
    private boolean fusedHead(boolean fusedPath, DeviceBuffer table) {
        return table != null && fusedPath && headRouterAsGemm() && installedHeadRouters == routers;
    }

    /**
     * The head router of layer l, unfused: logits = y W^T + b by a GEMM over the K chunks of
     * the q/k/v projection (the bits of the fused path), then the top-k into the layer's table.
     */
    private void headRouter(DeviceRouters r, int l, int n, DeviceBuffer table) {
        int h = c.hiddenSize();
        int g = c.numKvHeads();
        if (headRouterAsGemm()) {
            k.gemm.runChunked(GemmKernel.Epilogue.STORE_F32, stream, y, h, r.weight[l], h,
                    r.bias[l], headLogits, g, n, g, h, gemmWork, qkvDim);
            k.router.topk(stream, headLogits, n, g, r.kept[l], table);
        } else {
            k.router.headTopk(stream, y, h, r.weight[l], r.bias[l], n, h, g, r.kept[l], table,
                    headLogits, headCounters);
        }
    }

    /** A timeline stamp on stream s (with -Dpolar.timeline=true, in the timeline's layers). */
    private void stamp(CudaStream s, int l, String what) {
        if (!TIMELINE || !TIMELINE_LAYERS.contains(l) || stampLabels.size() >= 512) {
            return;
        }
        k.init.stamp(s, stamps, stampLabels.size());
        stampLabels.add("layer " + l + (s == stream ? " main " : " side ") + what);
    }

    /**
     * The timeline of the last step run with -Dpolar.timeline=true: one line per stamp, in time
     * order, microseconds from the first stamp (empty without the property).
     */
    public List<String> timeline() {
        List<String> out = new ArrayList<>();
        if (stamps == null || stampLabels.isEmpty()) {
            return out;
        }
        long[] t = new long[stampLabels.size()];
        stream.synchronize();
        stamps.copyTo(Pointer.to(t), t.length * 8L, stream);
        stream.synchronize();
        Integer[] order = new Integer[t.length];
        for (int i = 0; i < t.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Long.compare(t[a], t[b]));
        for (int i : order) {
            out.add(String.format(Locale.ROOT, "%9.1f us  %s", (t[i] - t[order[0]]) / 1e3,
                    stampLabels.get(i)));
        }
        return out;
    }

    private void layer(int l, int n, int splitLen, int splits) {
        LayerBuffers B = layers[l];
        stamp(stream, l, "layer start");
        int h = c.hiddenSize();
        boolean pre = c.doLayerNormBefore();
        // Fused path: y already holds this layer's input (the previous layer's last reduce
        // normalised it), and each projection's partials are reduced by a fused kernel.
        boolean fused = fusedDecode && n <= GemmKernel.BM;
        if (!fused || l == 0) {
            if (pre) {
                norm(B.attnW, B.attnB, n, false);
            } else {
                k.norm.cast(stream, x, y, n, h);
            }
        }
        if (observing != null) {
            observing.routerInput(l, y); // what the q/k/v projection (and a head router) reads
        }
        int f = c.ffnDim();
        int mlpKept = routers != null ? routers.mlpK(l, n) : f;
        boolean headFirst = HEAD_ROUTER_FIRST;
        if (mlpKept < f && !routersFrozen) {
            headFirst = false;
            startMlpRouter(l, n, mlpKept);
        }
        int groups = c.numKvHeads();
        DeviceBuffer table = null;
        boolean headInQkv = false;
        if (routers != null && routers.kept[l] < groups) {
            // Polar: the router picks each token's KV groups from the same normed input; the
            // heads of the other groups stay zero, so o_proj (dense) sees zeros for them. It
            // runs inside the q/k/v projection (FUSE_HEAD_ROUTER), else here, ahead of it
            // (launched as its programmatic dependent, so the projection's weights stream in
            // while the router works), or after the K/V append (see HEAD_ROUTER_FIRST).
            groups = routers.kept[l];
            table = groupIdx[l];
            headInQkv = !routersFrozen && fusedHead(fused, table);
            if (!routersFrozen && headFirst && !headInQkv) {
                headRouter(routers, l, n, table);
                stamp(stream, l, "head router");
            }
        }
        int kOff = c.qDim();
        int vOff = c.qDim() + c.kvDim();
        AttentionKernel.QkvPartials qkvInAttention = null;
        if (fused) {
            // With the head router inside: its rows after q/k/v's, q/k/v's K chunks.
            int units = headInQkv ? c.numKvHeads() : 0;
            int sp = k.gemm.partials(false, stream, y, h, B.wqkv, h, 0, n, qkvDim + units, h,
                    gemmWork, null, qkvDim);
            stamp(stream, l, "q/k/v GEMM");
            if (reduceQkvInAttention(n, sp, qkvDim + units, table)) {
                qkvInAttention = new AttentionKernel.QkvPartials(gemmWork, sp, qkvDim + units,
                        B.bqkv, invFreq);
            } else {
                k.fused.qkvRopeKv(stream, gemmWork, sp, B.bqkv, qkv, pos, invFreq, n,
                        c.numHeads(), c.numKvHeads(), c.headDim(), kCache[l], vCache[l], rowOf,
                        blockTable, maxBlocksPerSeq, BLOCK_SIZE, units, groups,
                        headInQkv ? routers.bias[l] : null, headInQkv ? table : null);
                stamp(stream, l, "q/k/v reduce, RoPE, K/V append" + (headInQkv
                        ? ", head router" : ""));
            }
        } else {
            k.gemm.run(GemmKernel.Epilogue.STORE_BF16, stream, y, h, B.wqkv, h, B.bqkv, qkv,
                    qkvDim, n, qkvDim, h, gemmWork);
            if (invFreq != null) {
                k.rope.run(stream, qkv, pos, invFreq, n, qkvDim, c.numHeads(), c.numKvHeads(),
                        kOff, c.headDim());
            }
            k.kvAppend.run(stream, kCache[l], vCache[l], qkv, rowOf, pos, blockTable,
                    maxBlocksPerSeq, BLOCK_SIZE, n, qkvDim, kOff, vOff, c.numKvHeads(),
                    c.headDim());
        }
        if (table != null && !routersFrozen && !headFirst && !headInQkv) {
            headRouter(routers, l, n, table);
            stamp(stream, l, "head router");
        }
        float scale = (float) (1.0 / Math.sqrt(c.headDim()));
        int decodeN = n;
        if (prefillTileCount > 0 && table == null) {
            // Prompt tokens [prefillFrom, n): tiled causal prefill attention (dense layers).
            k.prefillAttention.run(stream, att, qkv, qkvDim, scale, kCache[l], vCache[l],
                    blockTable, maxBlocksPerSeq, BLOCK_SIZE, prefillTiles, prefillTileCount,
                    c.numHeads(), c.numKvHeads(), c.headDim(), n);
            decodeN = prefillFrom;
        }
        if (decodeN > 0) {
            attention(kCache[l], vCache[l], table, groups, splitLen, splits, decodeN,
                    table != null && (routersFrozen || headFirst && !headInQkv), qkvInAttention);
        }
        stamp(stream, l, "attention");
        if (observing != null) {
            observing.attention(l, att);
        }
        waitRouterInput();  // y (the router's input) is overwritten below
        if (fused) {
            // x += o_proj(att); then the MLP's input: pre-norm y = norm_mlp(x), post-norm
            // x = norm_attn(x) and y = x.
            int sp = k.gemm.partials(false, stream, att, c.qDim(), B.wo, c.qDim(), 0, n, h,
                    c.qDim(), gemmWork, null);
            stamp(stream, l, "o_proj GEMM");
            k.fused.residualNorm(stream, gemmWork, sp, B.bo, x, y, normKind(),
                    pre ? B.mlpW : B.attnW, pre ? B.mlpB : B.attnB, c.normEps(), n, h, !pre,
                    k.gemm.partialsUseTma(false, att, B.wo));
            stamp(stream, l, "o_proj reduce, residual, norm");
        } else {
            k.gemm.run(GemmKernel.Epilogue.ACCUM_F32, stream, att, c.qDim(), B.wo, c.qDim(), B.bo,
                    x, h, n, h, c.qDim(), gemmWork);
            if (!pre) {
                norm(B.attnW, B.attnB, n, true);
            }
            if (pre) {
                norm(B.mlpW, B.mlpB, n, false);
            } else {
                k.norm.cast(stream, x, y, n, h);
            }
        }
        // MLP: its output projection either accumulates into x (unfused) or leaves partials.
        boolean kn = false;
        DeviceBuffer downIn;
        int downK;
        DeviceBuffer downRows = null;
        if (c.gatedMlp()) {
            k.gemm.run(GemmKernel.Epilogue.SWIGLU_BF16, stream, y, h, B.w1, h, B.b1, hb, f, n,
                    2 * f, h, gemmWork);
            downIn = hb;
            downK = f;
        } else if (mlpKept < f) {
            // Sparse MLP: fc1 over the selected neurons' rows into a compact [n, kept] buffer,
            // then fc2 over the same neurons' rows of the neuron-major fc2 (the selection, from
            // the side stream, is waited for only here: the router's top-k overlaps o_proj too).
            joinRouter();
            stamp(stream, l, "router joined");
            k.gemm.runGatherRows(GemmKernel.Epilogue.RELU_BF16, stream, y, h, B.w1, h, f, B.b1,
                    hb, mlpKept, n, mlpKept, h, gemmWork, routers.mlpIdx[l]);
            downIn = hb;
            downK = mlpKept;
            kn = true;
            downRows = routers.mlpIdx[l];
        } else {
            k.gemm.run(GemmKernel.Epilogue.RELU_BF16, stream, y, h, B.w1, h, B.b1, hb, f, n, f, h,
                    gemmWork);
            downIn = hb;
            downK = f;
            kn = fc2NeuronMajor;
        }
        stamp(stream, l, "fc1 / gate-up GEMM");
        if (observing != null) {
            observing.mlp(l, hb); // dense here: every neuron's activation, [n, f]
        }
        if (fused) {
            // x += fc2(...); then the next layer's input (pre-norm: its attention norm; the last
            // layer leaves x for the final norm), or post-norm x = norm_mlp(x) and y = x.
            int sp = k.gemm.partials(kn, stream, downIn, downK, B.w2, kn ? h : downK, f, n, h,
                    downK, gemmWork, downRows);
            stamp(stream, l, "fc2 / down GEMM");
            boolean downTma = k.gemm.partialsUseTma(kn, downIn, B.w2);
            boolean last = l == c.numLayers() - 1;
            LayerBuffers next = last ? null : layers[l + 1];
            if (pre) {
                k.fused.residualNorm(stream, gemmWork, sp, B.b2, x, y,
                        last ? DecodeFusedKernel.Norm.NONE : normKind(),
                        last ? null : next.attnW, last ? null : next.attnB, c.normEps(), n, h,
                        false, downTma);
            } else {
                k.fused.residualNorm(stream, gemmWork, sp, B.b2, x, y, normKind(), B.mlpW,
                        B.mlpB, c.normEps(), n, h, true, downTma);
            }
            stamp(stream, l, "fc2 / down reduce, residual, norm");
            return;
        }
        if (kn) {
            k.gemm.runKn(GemmKernel.Epilogue.ACCUM_F32, stream, downIn, downK, B.w2, h, f, B.b2,
                    x, h, n, h, downK, gemmWork, downRows);
        } else {
            k.gemm.run(GemmKernel.Epilogue.ACCUM_F32, stream, downIn, downK, B.w2, downK, B.b2, x,
                    h, n, h, downK, gemmWork);
        }
        if (!pre) {
            norm(B.mlpW, B.mlpB, n, true);
        }
    }

    /**
     * Polar MLP router of layer l on the normed input y: hidden -> rank -> ffn, batch-union
     * scores, then the {@code kept} best neurons (in index order) into r.mlpIdx[l].
     */
    /**
     * Runs the MLP router of layer l: forked onto the side stream right after the attention
     * norm, or on the main stream. (Forking it just before attention instead, after the q/k/v
     * projection, was measured slower at every batch on the H100, 2026-11-26.)
     */
    private void startMlpRouter(int l, int n, int kept) {
        if (side != null) {
            forkEvent.record(stream);
            side.waitFor(forkEvent);
            stamp(side, l, "router forked");
            mlpRouter(side, routerWork, routers, l, n, kept, inputReadEvent);
            joinEvent.record(side);
            routerPending = true;
            routerInputPending = true;
        } else {
            mlpRouter(stream, gemmWork, routers, l, n, kept, null);
        }
    }

    private void mlpRouter(CudaStream s, DeviceBuffer work, DeviceRouters r, int l, int n,
                           int kept, CudaEvent inputRead) {
        int h = c.hiddenSize();
        int f = c.ffnDim();
        k.gemm.run(GemmKernel.Epilogue.STORE_BF16, s, y, h, r.mlpDown[l], h, null, r.mlpT,
                r.rank, n, r.rank, h, work);
        stamp(s, l, "router GEMM 1 (and its reduce)");
        if (inputRead != null) {
            inputRead.record(s);  // y is read: the main stream may overwrite it
        }
        if (k.gemm.partialsFit(n, f, r.rank, work)) {
            // The batch-union scores straight from the split-K partials (same bits).
            int sp = k.gemm.partials(false, s, r.mlpT, r.rank, r.mlpUp[l], r.rank, 0, n, f,
                    r.rank, work, null);
            stamp(s, l, "router GEMM 2");
            k.router.reduceUnion(s, work, sp, n, f, r.mlpScore);
        } else {
            k.gemm.run(GemmKernel.Epilogue.STORE_F32, s, r.mlpT, r.rank, r.mlpUp[l], r.rank,
                    null, r.mlpLogits, f, n, f, r.rank, work);
            k.router.unionScores(s, r.mlpLogits, n, f, r.mlpScore);
        }
        stamp(s, l, "router union scores");
        k.router.selectTopk(s, r.mlpScore, f, kept, r.mlpIdx[l]);
        stamp(s, l, "router select");
    }

    /** The main stream waits until the MLP router forked in this layer has read y, if any. */
    private void waitRouterInput() {
        if (routerInputPending) {
            stream.waitFor(inputReadEvent);
            routerInputPending = false;
        }
    }

    /** The main stream waits for the MLP router forked in this layer, if any. */
    private void joinRouter() {
        waitRouterInput();
        if (routerPending) {
            stream.waitFor(joinEvent);
            routerPending = false;
        }
    }

    /**
     * Polar statistics of every routed piece and decode step so far (all calls on this
     * decoder): head selections and kept groups per token and layer, MLP union selections per
     * layer and call (f of f where the MLP runs dense), and router time. Router time is that of
     * the router kernels of a piece of the same size replayed alone (measured once per size):
     * inside a captured step they cannot be timed apart.
     */
    public org.polarspark.polar.PolarStats polarStats() {
        return polarCounters.snapshot();
    }

    private void countPolar(int n) {
        if (routers == null) {
            return;
        }
        int layersN = c.numLayers();
        int g = c.numKvHeads();
        int f = c.ffnDim();
        long kept = 0;
        for (int l = 0; l < layersN; l++) {
            kept += Math.min(g, routers.kept[l]);
            if (c.reluMlp()) {
                polarCounters.neurons(f, Math.min(f, routers.mlpK(l, n)));
            }
        }
        polarCounters.groups((long) n * layersN, (long) n * layersN * g, n * kept);
        polarCounters.routerNanos(routerNanosByRows.getOrDefault(n, 0L));
    }

    /**
     * Before a routed piece of n tokens runs: times its routers alone if no piece of that size
     * has been timed. It runs before the piece, so the piece itself then writes the selection
     * tables that {@link #lastGroupTable} and {@link #lastNeuronSelection} read back.
     */
    private void timeRoutersOnce(int n) {
        if (routers != null && !routerNanosByRows.containsKey(n)) {
            routerNanosByRows.put(n, timeRouters(routers, n));
        }
    }

    /**
     * Device time of the routers of one piece of n tokens (every layer's head router and top-k,
     * MLP router and union top-k) on the current normed input: median of 3 replays of a graph
     * of them alone. It overwrites the selection tables, so it runs before a piece, never after.
     */
    private long timeRouters(DeviceRouters r, int n) {
        CudaGraph g = CudaGraph.capture(stream, () -> routerKernels(r, n), "routers, " + n
                + " rows");
        try (CudaEvent start = new CudaEvent(); CudaEvent end = new CudaEvent()) {
            float[] ms = new float[3];
            for (int i = 0; i < ms.length; i++) {
                start.record(stream);
                g.launch(stream);
                end.record(stream);
                end.synchronize();
                ms[i] = end.elapsedSince(start);
            }
            Arrays.sort(ms);
            return (long) (ms[1] * 1e6);
        } finally {
            stream.synchronize();
            g.close();
        }
    }

    /** The router kernels of every layer for n rows (what {@link #layer} runs for Polar). */
    private void routerKernels(DeviceRouters r, int n) {
        for (int l = 0; l < c.numLayers(); l++) {
            if (r.kept[l] < c.numKvHeads()) {
                headRouter(r, l, n, groupIdx[l]);
            }
            int kept = r.mlpK(l, n);
            if (kept < c.ffnDim()) {
                mlpRouter(stream, gemmWork, r, l, n, kept, null);
            }
        }
    }

    private DecodeFusedKernel.Norm normKind() {
        return c.family() == ModelFamily.LLAMA ? DecodeFusedKernel.Norm.RMS
                : DecodeFusedKernel.Norm.LAYER;
    }

    /**
     * Final norm, projection and LM head for the wanted positions; logits copied to the host, or
     * sampled on the device ({@code sampling} not null).
     */
    private void lmHead(List<int[]> want, float[][][] out, DeviceSampling sampling) {
        for (int from = 0; from < want.size(); from += LM_CHUNK) {
            int m = Math.min(LM_CHUNK, want.size() - from);
            int[] rows = new int[m];
            for (int j = 0; j < m; j++) {
                rows[j] = want.get(from + j)[0];
            }
            gatherRows.copyFrom(Pointer.to(rows), m * 4L, stream);
            lmHeadDevice(m);
            takeLogits(want, from, m, out, sampling);
        }
    }

    /**
     * The m logits rows of wanted positions [from, from + m): copied to the host, or (sampling
     * not null: one wanted position per row, the last) sampled on the device, or (during
     * {@link #score}) scored on the device.
     */
    private void takeLogits(List<int[]> want, int from, int m, float[][][] out,
                            DeviceSampling sampling) {
        if (scoring != null) {
            scoreLogits(want, from, m);
            return;
        }
        if (sampling == null) {
            copyLogits(want, from, m, out);
            return;
        }
        int[] rowOf = new int[m];
        for (int j = 0; j < m; j++) {
            rowOf[j] = want.get(from + j)[1];
        }
        sampleLogits(m, rowOf, sampling);
    }

    /**
     * For the m token rows listed in gatherRows: final norm, projection, LM head into logits
     * and the device argmax (nextIds, nextLp). No host synchronisation.
     */
    private void lmHeadDevice(int m) {
        int h = c.hiddenSize();
        int v = c.vocabSize();
        int p = c.wordEmbedProjDim();
        k.norm.gather(stream, xg, x, gatherRows, m, h);
        if (c.finalLayerNorm()) {
            if (c.family() == ModelFamily.LLAMA) {
                k.norm.rms(stream, xg, yg, finalW, c.normEps(), m, h, false);
            } else {
                k.norm.layer(stream, xg, yg, finalW, finalB, c.normEps(), m, h, false);
            }
        } else {
            k.norm.cast(stream, xg, yg, m, h);
        }
        DeviceBuffer in = yg;
        int d = h;
        if (projOut != null) {
            k.gemm.run(GemmKernel.Epilogue.STORE_BF16, stream, yg, h, projOut, h, null, yp, p, m,
                    p, h, gemmWork);
            in = yp;
            d = p;
        }
        k.gemm.run(GemmKernel.Epilogue.STORE_F32, stream, in, d, lmHead, d, null, logits, v, m, v,
                d, gemmWork);
        k.lmHead.argmax(stream, logits, m, v, nextIds, nextLp, argmaxPart, argmaxCounters);
    }

    /** Copies m rows of logits to the host into out at the wanted slots (synchronises). */
    private void copyLogits(List<int[]> want, int from, int m, float[][][] out) {
        int v = c.vocabSize();
        float[] hostLogits = new float[m * v];
        logits.copyTo(Pointer.to(hostLogits), (long) m * v * 4, stream);
        stream.synchronize();
        for (int j = 0; j < m; j++) {
            int[] wnt = want.get(from + j);
            float[] row = new float[v];
            System.arraycopy(hostLogits, j * v, row, 0, v);
            out[wnt[1]][wnt[2]] = row;
        }
    }

    // ---------------------------------------------------------------------------------------
    // Benchmark support: decode steps of a given batch at a given context, on the device only.
    // ---------------------------------------------------------------------------------------

    /** Fills every layer's K and V cache with pseudo-random values (a "full" cache). */
    public void fillKvRandom(long fillSeed) {
        ctx.bind();
        for (int l = 0; l < c.numLayers(); l++) {
            k.init.uniformBf16(stream, kCache[l], kCache[l].bytes() / 2, fillSeed + 2L * l, 1f);
            k.init.uniformBf16(stream, vCache[l], vCache[l].bytes() / 2, fillSeed + 2L * l + 1,
                    1f);
        }
        stream.synchronize();
    }

    /**
     * Times the captured decode step for {@code batch} rows whose KV caches hold
     * {@code context - 1} tokens (each step attends to {@code context} positions and overwrites
     * the same last position, so the context stays fixed). Returns each replay's device time in
     * milliseconds, after {@code warmup} untimed replays.
     */
    public float[] benchDecode(int batch, int context, int warmup, int iters, long tokenSeed,
                               DeviceRouters polar) {
        return benchGraph(batch, context, warmup, iters, tokenSeed, polar, () -> graph(batch));
    }

    /**
     * As {@link #benchDecode} with routers, but the captured step leaves the router kernels
     * out: attention and the MLP use the selections that the last routed step of the same
     * routers and batch left in the tables (run that first). The difference to the routed step
     * is the router time the step does not hide (the MLP router overlaps attention on its own
     * stream).
     */
    public float[] benchDecodeFrozenRouters(int batch, int context, int warmup, int iters,
                                            long tokenSeed, DeviceRouters polar) {
        return benchGraph(batch, context, warmup, iters, tokenSeed, polar, () -> {
            routersFrozen = true;
            try {
                return graph(batch);
            } finally {
                routersFrozen = false;
            }
        });
    }

    /**
     * Times only the attention of one layer (decode and split merge) for {@code batch} rows at
     * {@code context}, dense (density 1.0) or with a random group table keeping
     * max(1, floor(density * G)) groups per row: the selective-attention kernel against the
     * dense one.
     */
    public float[] benchAttention(int batch, int context, double density, int warmup, int iters,
                                  long seed) {
        int g = c.numKvHeads();
        int keep = Math.max(1, (int) Math.floor(density * g));
        return benchGraph(batch, context, warmup, iters, seed, null, () -> {
            java.util.Random r = new java.util.Random(seed);
            int[] table = new int[batch * keep];
            for (int t = 0; t < batch; t++) {
                List<Integer> all = new ArrayList<>();
                for (int q = 0; q < g; q++) {
                    all.add(q);
                }
                java.util.Collections.shuffle(all, r);
                for (int j = 0; j < keep; j++) {
                    table[t * keep + j] = all.get(j);
                }
            }
            groupIdx[0].copyFrom(Pointer.to(table), table.length * 4L, stream);
            k.init.uniformBf16(stream, qkv, (long) batch * qkvDim, seed, 1f);
            stream.synchronize();
            DeviceBuffer tab = keep < g ? groupIdx[0] : null;
            int groups = keep < g ? keep : g;
            return CudaGraph.capture(stream, () -> {
                attention(kCache[0], vCache[0], tab, groups, SPLIT_LEN, graphSplits(), batch);
            }, "attention, " + batch + " rows, density " + density);
        });
    }

    /** Times the routers alone (head routers, and MLP routers with their top-k) for batch rows. */
    public float[] benchRouters(int batch, DeviceRouters polar, int warmup, int iters) {
        return benchGraph(batch, 2, warmup, iters, 1, null, () -> {
            k.init.uniformBf16(stream, y, (long) batch * c.hiddenSize(), 5, 1f);
            return CudaGraph.capture(stream, () -> routerKernels(polar, batch),
                    "routers, " + batch + " rows");
        });
    }

    /**
     * Sets up batch rows at a context (KV blocks, decode metadata), then times replays of the
     * graph that {@code graphFor} returns (captured after the setup).
     */
    private float[] benchGraph(int batch, int context, int warmup, int iters, long tokenSeed,
                               DeviceRouters polar, java.util.function.Supplier<CudaGraph> graphFor) {
        ctx.bind();
        List<CudaSequence> seqs = new ArrayList<>();
        routers = polar;
        installHeadRouters(polar);
        CudaGraph owned = null;
        try {
            int[] tokens = new int[batch];
            java.util.Random r = new java.util.Random(tokenSeed);
            int[] table = new int[batch * maxBlocksPerSeq];
            int[] hPos = new int[batch];
            int[] hRow = new int[batch];
            int[] identity = new int[batch];
            for (int i = 0; i < batch; i++) {
                CudaSequence s = open(context);
                if (s == null) {
                    throw new IllegalStateException("KV cache too small for " + batch + " x "
                            + context + " positions");
                }
                seqs.add(s);
                for (int b = 0; b < s.blocks.size(); b++) {
                    table[i * maxBlocksPerSeq + b] = s.blocks.get(b);
                }
                tokens[i] = r.nextInt(c.vocabSize());
                hPos[i] = context - 1;
                hRow[i] = i;
                identity[i] = i;
            }
            ids.copyFrom(Pointer.to(tokens), batch * 4L, stream);
            pos.copyFrom(Pointer.to(hPos), batch * 4L, stream);
            rowOf.copyFrom(Pointer.to(hRow), batch * 4L, stream);
            blockTable.copyFrom(Pointer.to(table), table.length * 4L, stream);
            gatherRows.copyFrom(Pointer.to(identity), batch * 4L, stream);
            CudaGraph g = graphFor.get();
            if (!graphsByRows.containsValue(g)) {
                owned = g; // a one-off graph: closed below
            }
            for (int i = 0; i < warmup; i++) {
                g.launch(stream);
            }
            float[] ms = new float[iters];
            try (CudaEvent start = new CudaEvent(); CudaEvent end = new CudaEvent()) {
                for (int i = 0; i < iters; i++) {
                    start.record(stream);
                    g.launch(stream);
                    end.record(stream);
                    end.synchronize();
                    ms[i] = end.elapsedSince(start);
                }
            }
            return ms;
        } finally {
            if (owned != null) {
                stream.synchronize();
                owned.close();
            }
            routers = null;
            for (CudaSequence s : seqs) {
                close(s);
            }
        }
    }

    /** Bytes one decode step must read: every weight once plus the K/V it attends to. */
    public long decodeBytes(int batch, int context) {
        // The embedding table is read only at B rows (unless it is also the tied LM head);
        // the learned position table likewise.
        long weights = weightsAlloc.allocated() - (c.tieWordEmbeddings() ? 0 : embed.bytes())
                - (posTable == null ? 0 : posTable.bytes());
        long kv = 2L * batch * context * c.numLayers() * c.kvDim() * 2;
        return weights + kv;
    }

    /** Device memory for router weights (owned by the caller, freed before this decoder). */
    DeviceBuffer routerBuffer(String name, long elems) {
        return routerAlloc.allocate(name, elems * 2);
    }

    DeviceBuffer routerScratch(String name, long bytes) {
        return routerAlloc.allocate(name, bytes);
    }

    int maxRows() {
        return maxRows;
    }

    /** Whether fc2 is stored neuron-major (needed for Polar's sparse MLP). */
    public boolean fc2NeuronMajor() {
        return fc2NeuronMajor;
    }

    /** The neurons the MLP router kept at a layer in the last forward call (index order). */
    public int[] lastNeuronSelection(DeviceRouters r, int layer, int kept) {
        int[] out = new int[kept];
        r.mlpIdx[layer].copyTo(Pointer.to(out), kept * 4L, stream);
        stream.synchronize();
        return out;
    }

    /**
     * Host weights in the image's element type ({@link KernelImage#dtype()}). A finite value
     * that type cannot hold (fp16 beyond +-65504) is an error naming the tensor, not a silent
     * infinity.
     */
    private ByteBuffer pack16(String name, float[] data) {
        CudaDtype dt = k.dtype();
        int bad = dt.firstOutOfRange(data);
        if (bad >= 0) {
            throw new IllegalArgumentException("weight " + name + "[" + bad + "] = " + data[bad]
                    + " is beyond the " + dt.wire() + " range (+-" + Fp16.MAX + "); run this "
                    + "model with cuda dtype bf16");
        }
        return dt.pack(data);
    }

    DeviceBuffer uploadRouter(String name, float[] values) {
        java.nio.ByteBuffer b = pack16(name, values);
        DeviceBuffer d = routerAlloc.allocate(name, b.capacity());
        d.copyFrom(Pointer.to(b), b.capacity(), stream);
        stream.synchronize();
        return d;
    }

    /**
     * The KV groups the routers chose at a layer in the last forward call: [tokens][kept], in
     * the order of the call's tokens (for tests that replay them on the CPU reference).
     */
    public int[][] lastGroupTable(int layer, int tokens, int kept) {
        int[] flat = new int[tokens * kept];
        groupIdx[layer].copyTo(Pointer.to(flat), flat.length * 4L, stream);
        stream.synchronize();
        int[][] out = new int[tokens][kept];
        for (int t = 0; t < tokens; t++) {
            System.arraycopy(flat, t * kept, out[t], 0, kept);
        }
        return out;
    }

    /** Bytes a Polar decode step reads: weights, router weights, the selected groups' K/V. */
    public long polarDecodeBytes(int batch, int context, DeviceRouters polar) {
        long weights = decodeBytes(batch, 0) + polar.weightBytes();
        long mlpLayer = 2L * c.ffnDim() * c.hiddenSize() * 2; // fc1 + fc2 weights of a layer
        for (int l = 0; l < c.numLayers(); l++) {
            int kept = polar.mlpK(l, batch);
            weights -= mlpLayer * (c.ffnDim() - kept) / c.ffnDim();
        }
        double kvLayer = 2.0 * batch * context * c.kvDim() * 2;
        double kv = 0;
        for (int l = 0; l < c.numLayers(); l++) {
            kv += kvLayer * polar.kept(l) / c.numKvHeads();
        }
        return weights + (long) kv;
    }

    public CudaStream stream() {
        return stream;
    }

    public KernelImage kernels() {
        return k;
    }

    @Override
    public void close() {
        ctx.bind();
        stream.synchronize();
        for (CudaGraph g : graphsByRows.values()) {
            g.close();
        }
        graphsByRows.clear();
        for (DeviceBuffer b : scratch) {
            b.close();
        }
        scratchAlloc.close();
        for (DeviceBuffer b : kCache) {
            b.close();
        }
        for (DeviceBuffer b : vCache) {
            b.close();
        }
        kvAlloc.close();
        routerAlloc.close();
        closeWeights();
        if (side != null) {
            side.synchronize();
            forkEvent.close();
            inputReadEvent.close();
            joinEvent.close();
            side.close();
        }
        stream.close();
    }

    private void closeWeights() {
        for (LayerBuffers B : layers) {
            for (DeviceBuffer b : new DeviceBuffer[] {B.attnW, B.attnB, B.wqkv, B.bqkv, B.wo, B.bo,
                    B.mlpW, B.mlpB, B.w1, B.b1, B.w2, B.b2}) {
                if (b != null) {
                    b.close();
                }
            }
        }
        for (DeviceBuffer b : new DeviceBuffer[] {embed, posTable, projIn, projOut, finalW, finalB,
                lmHead, invFreq}) {
            if (b != null) {
                b.close();
            }
        }
        weightsAlloc.close();
    }
}
