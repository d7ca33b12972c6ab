package org.polarspark.cuda;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.polarspark.cpu.DecoderObserver;
import org.polarspark.generate.Engine;
import org.polarspark.generate.EngineStats;
import org.polarspark.generate.GenerationRequest;
import org.polarspark.generate.GenerationResult;
import org.polarspark.generate.Generator;
import org.polarspark.generate.LoglikelihoodRequest;
import org.polarspark.generate.LoglikelihoodResult;
import org.polarspark.generate.TeacherForcing;
import org.polarspark.generate.TokenScores;
import org.polarspark.model.Checkpoint;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.TextTokenizer;
import org.polarspark.polar.PolarConfig;
import org.polarspark.polar.PolarSettings;
import org.polarspark.polar.PolarStats;
import org.polarspark.polar.RouterWeights;
import org.polarspark.polar.SparsityPolicy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@link Engine} on one GPU. Calls are serialised (one GPU, one stream); each call binds the
 * context to the calling thread, so any task thread may use it.
 */
public final class CudaEngine implements Engine {
    private static final Logger LOG = LoggerFactory.getLogger(CudaEngine.class);
    /** Tokens per forward piece: long prompts are prefilled in chunks of this many. */
    static final int PIECE_TOKENS = 2048;

    private final GpuContext ctx;
    private final KernelImage kernels;
    private final DeviceAllocator root;
    private final CudaDecoder decoder;
    private final TextTokenizer tokenizer;
    private final int maxBatch;
    private final DeviceRouters routers; // null: dense
    private final boolean everyToken;

    private CudaEngine(GpuContext ctx, KernelImage kernels, DeviceAllocator root,
                       CudaDecoder decoder, TextTokenizer tokenizer, int maxBatch,
                       DeviceRouters routers, boolean everyToken) {
        this.ctx = ctx;
        this.kernels = kernels;
        this.root = root;
        this.decoder = decoder;
        this.tokenizer = tokenizer;
        this.maxBatch = maxBatch;
        this.routers = routers;
        this.everyToken = everyToken;
    }

    public static CudaEngine load(Path modelDir, int ordinal, int maxBatch) {
        return load(modelDir, ordinal, maxBatch, PolarSettings.OFF);
    }

    /** As {@link #load(Path, int, int, PolarSettings, CudaDtype)} in bf16. */
    public static CudaEngine load(Path modelDir, int ordinal, int maxBatch,
                                  PolarSettings polar) {
        return load(modelDir, ordinal, maxBatch, polar, CudaDtype.DEFAULT);
    }

    /**
     * Loads a checkpoint onto GPU {@code ordinal}. The KV cache gets enough blocks for
     * {@code maxBatch} full-context sequences, or 60% of the memory left after the weights and
     * scratch, whichever is smaller.
     *
     * @param dtype the element type of weights, activations and KV cache: the kernel image
     *              loaded and what the weights are converted to on upload
     */
    public static CudaEngine load(Path modelDir, int ordinal, int maxBatch,
                                  PolarSettings polar, CudaDtype dtype) {
        long t0 = System.nanoTime();
        Checkpoint ckpt = Checkpoint.open(modelDir);
        ModelConfig c = ckpt.config();
        GpuContext ctx = new GpuContext(ordinal);
        KernelImage kernels = null;
        DeviceAllocator root = null;
        CudaDecoder decoder = null;
        try {
            kernels = new KernelImage(dtype);
            root = DeviceAllocator.root("gpu" + ordinal, ctx.totalMemory());
            long perSeq = 2L * c.numLayers() * c.kvDim() * 2
                    * ((c.maxPositions() + CudaDecoder.BLOCK_SIZE - 1) / CudaDecoder.BLOCK_SIZE
                    * CudaDecoder.BLOCK_SIZE);
            long wanted = perSeq * maxBatch;
            long free = ctx.memInfo()[0];
            long weights = Checkpoint.parameterBytesBf16(ckpt);
            long kvBytes = Math.max(perSeq, Math.min(wanted, (long) ((free - weights) * 0.6)));
            int piece = Math.max(PIECE_TOKENS, maxBatch);
            PolarConfig polarCfg = null;
            if (polar.enabled()) {
                polarCfg = PolarConfig.load(polar.dir(modelDir), c);
                if (polar.density() != null) {
                    polarCfg = polarCfg.withDensity(polar.density());
                }
            }
            boolean sparseMlp = polarCfg != null && polarCfg.mlp() != null && c.reluMlp();
            decoder = new CudaDecoder(ctx, kernels, root, ckpt, piece, maxBatch, kvBytes,
                    sparseMlp);
            TextTokenizer tok = TextTokenizer.load(modelDir, c);
            DeviceRouters routers = null;
            if (polar.enabled()) {
                Path dir = polar.dir(modelDir);
                routers = DeviceRouters.fromConfig(decoder, polarCfg,
                        RouterWeights.load(dir, polarCfg));
                LOG.info("Polar Sparsity on {}: {} from {}", ctx.name(), polar.describe(), dir);
            }
            LOG.info("Loaded {} on {} in {} ms ({}): {} KV blocks of {} tokens, batch {}",
                    modelDir, ctx.name(), (System.nanoTime() - t0) / 1_000_000, dtype.wire(),
                    decoder.numBlocks(), CudaDecoder.BLOCK_SIZE, maxBatch);
            return new CudaEngine(ctx, kernels, root, decoder, tok, maxBatch, routers,
                    polar.everyToken());
        } catch (RuntimeException e) {
            if (decoder != null) {
                decoder.close();
            }
            if (kernels != null) {
                kernels.close();
            }
            ctx.close();
            throw e;
        }
    }

    @Override
    public ModelConfig config() {
        return decoder.config();
    }

    @Override
    public TextTokenizer tokenizer() {
        return tokenizer;
    }

    @Override
    public String backend() {
        return "cuda";
    }

    @Override
    public String deviceName() {
        return ctx.name();
    }

    /** The element type this engine runs in. */
    public CudaDtype dtype() {
        return kernels.dtype();
    }

    public CudaDecoder decoder() {
        return decoder;
    }

    @Override
    public boolean canObserve() {
        return true;
    }

    /**
     * One dense prefill of {@code tokens} on the GPU, copying each layer's router input,
     * attention output and MLP activations to the host ({@link CudaDecoder#observeDense}: bf16
     * or fp16 values, as {@link #dtype()}, widened to float; the MLP output is passed as null). Routers, if loaded, are not
     * used; no KV is kept. Serialised with the other calls.
     */
    @Override
    public synchronized void observeDense(int[] tokens, DecoderObserver observer) {
        ctx.bind();
        decoder.observeDense(tokens, observer);
    }

    @Override
    public synchronized Result<GenerationResult> generate(List<GenerationRequest> requests) {
        ctx.bind();
        SparsityPolicy decode = routers == null ? SparsityPolicy.DENSE : routers;
        PolarStats before = decoder.polarStats();
        Result<GenerationResult> r = new Generator<>(decoder, tokenizer, maxBatch).generate(
                requests, everyToken ? decode : SparsityPolicy.DENSE, decode);
        return new Result<>(r.results(), r.stats().withPolar(
                decoder.polarStats().minus(before)));
    }

    @Override
    public synchronized Result<LoglikelihoodResult> loglikelihood(
            List<LoglikelihoodRequest> requests) {
        ctx.bind();
        List<LoglikelihoodResult> out = new ArrayList<>(requests.size());
        EngineStats stats = EngineStats.ZERO;
        PolarStats before = decoder.polarStats();
        int from = 0;
        while (from < requests.size()) {
            List<CudaSequence> seqs = new ArrayList<>();
            List<int[]> toks = new ArrayList<>();
            long prefill = 0;
            try {
                while (from + seqs.size() < requests.size() && seqs.size() < maxBatch) {
                    LoglikelihoodRequest q = requests.get(from + seqs.size());
                    int n = q.context().length + q.continuation().length - 1;
                    if (!decoder.fitsEver(n)) {
                        throw new IllegalArgumentException("loglikelihood: request "
                                + (from + seqs.size()) + " needs " + n + " positions; the "
                                + "context is " + config().maxPositions());
                    }
                    CudaSequence s = decoder.open(n);
                    if (s == null) {
                        break; // KV cache full: run what we have
                    }
                    int[] t = new int[n];
                    System.arraycopy(q.context(), 0, t, 0, q.context().length);
                    System.arraycopy(q.continuation(), 0, t, q.context().length,
                            q.continuation().length - 1);
                    seqs.add(s);
                    toks.add(t);
                    prefill += n;
                }
                int rows = seqs.size();
                long t0 = System.nanoTime();
                // Log-probabilities on the device (CudaDecoder.score): only two numbers per
                // scored position come back, not its logits.
                TokenScores scores;
                if (routers != null && !everyToken) {
                    scores = TeacherForcing.continuationScores(decoder, seqs,
                            requests.subList(from, from + rows), routers);
                } else {
                    int[][] conts = new int[rows][];
                    for (int r = 0; r < rows; r++) {
                        conts[r] = requests.get(from + r).continuation();
                    }
                    scores = decoder.score(seqs, toks.toArray(new int[0][]), conts,
                            routers == null ? SparsityPolicy.DENSE : routers);
                }
                long dt = System.nanoTime() - t0;
                for (int r = 0; r < rows; r++) {
                    int[] cont = requests.get(from + r).continuation();
                    out.add(new LoglikelihoodResult(scores.sum(r), scores.allGreedy(r),
                            cont.length));
                }
                stats = stats.plus(new EngineStats(prefill, 0, dt, 0, 1, rows));
                from += rows;
            } finally {
                for (CudaSequence s : seqs) {
                    decoder.close(s);
                }
            }
        }
        return new Result<>(out, stats.withPolar(decoder.polarStats().minus(before)));
    }

    /** Bytes of device memory still allocated (weights, KV cache, scratch). */
    public long allocatedBytes() {
        return root.allocated();
    }

    @Override
    public synchronized void close() {
        ctx.bind();
        try {
            if (routers != null) {
                routers.close();
            }
            decoder.close();
            kernels.close();
            tokenizer.close();
            root.close(); // throws, listing them, if any device buffer leaked
        } finally {
            ctx.close();
        }
    }
}
