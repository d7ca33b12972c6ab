package org.polarspark.cpu;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
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
import org.polarspark.polar.PolarPolicy;
import org.polarspark.polar.PolarSettings;
import org.polarspark.polar.PolarStats;
import org.polarspark.polar.RouterPolicy;
import org.polarspark.polar.RouterWeights;
import org.polarspark.polar.SparsityPolicy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@link Engine} on the CPU reference decoder. Thread-safe: the decoder keeps no state
 * between calls (each call owns its KV caches), so concurrent tasks may share one instance.
 */
public final class CpuEngine implements Engine {
    private static final Logger LOG = LoggerFactory.getLogger(CpuEngine.class);

    private final ModelConfig config;
    private final CpuDecoder decoder;
    private final TextTokenizer tokenizer;
    private final int maxBatch;
    private final PolarConfig polarConfig;   // null: dense
    private final RouterWeights routers;
    private final boolean everyToken;

    public CpuEngine(CpuDecoder decoder, TextTokenizer tokenizer, int maxBatch) {
        this(decoder, tokenizer, maxBatch, null, null, false);
    }

    /**
     * @param polarConfig null for dense; else the routers' settings (density override applied)
     * @param everyToken  Polar on prompt tokens too (else prefill is dense, as deployed)
     */
    public CpuEngine(CpuDecoder decoder, TextTokenizer tokenizer, int maxBatch,
                     PolarConfig polarConfig, RouterWeights routers, boolean everyToken) {
        if (maxBatch < 1) {
            throw new IllegalArgumentException("maxBatch must be >= 1, got " + maxBatch);
        }
        this.decoder = decoder;
        this.config = decoder.config();
        this.tokenizer = tokenizer;
        this.maxBatch = maxBatch;
        this.polarConfig = polarConfig;
        this.routers = routers;
        this.everyToken = everyToken;
    }

    /** A fresh policy per call, so its counters are exactly that call's selections. */
    private SparsityPolicy newPolicy() {
        return polarConfig == null ? SparsityPolicy.DENSE
                : new RouterPolicy(polarConfig, routers, config);
    }

    private static PolarStats statsOf(SparsityPolicy p) {
        return p instanceof PolarPolicy ? ((PolarPolicy) p).stats() : PolarStats.ZERO;
    }

    /** Loads a checkpoint directory (config.json, safetensors, tokenizer.json), dense. */
    public static CpuEngine load(Path modelDir, int maxBatch) {
        return load(modelDir, maxBatch, PolarSettings.OFF);
    }

    /** Loads a checkpoint and, when Polar is enabled, its routers (validated against it). */
    public static CpuEngine load(Path modelDir, int maxBatch, PolarSettings polar) {
        long t0 = System.nanoTime();
        Checkpoint ckpt = Checkpoint.open(modelDir);
        CpuDecoder dec = new CpuDecoder(CpuWeights.load(ckpt));
        TextTokenizer tok = TextTokenizer.load(modelDir, ckpt.config());
        LOG.info("Loaded {} ({} layers, hidden {}, {} heads / {} KV heads) on the CPU backend"
                        + " in {} ms", modelDir, ckpt.config().numLayers(),
                ckpt.config().hiddenSize(), ckpt.config().numHeads(), ckpt.config().numKvHeads(),
                (System.nanoTime() - t0) / 1_000_000);
        if (!polar.enabled()) {
            return new CpuEngine(dec, tok, maxBatch);
        }
        Path dir = polar.dir(modelDir);
        PolarConfig pc = PolarConfig.load(dir, ckpt.config());
        if (polar.density() != null) {
            pc = pc.withDensity(polar.density());
        }
        RouterWeights rw = RouterWeights.load(dir, pc);
        LOG.info("Polar Sparsity on the CPU backend: {} from {}", polar.describe(), dir);
        return new CpuEngine(dec, tok, maxBatch, pc, rw, polar.everyToken());
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public TextTokenizer tokenizer() {
        return tokenizer;
    }

    @Override
    public String backend() {
        return "cpu";
    }

    @Override
    public String deviceName() {
        return "cpu";
    }

    public CpuDecoder decoder() {
        return decoder;
    }

    @Override
    public boolean canObserve() {
        return true;
    }

    @Override
    public void observeDense(int[] tokens, DecoderObserver observer) {
        if (tokens.length == 0 || tokens.length > config.maxPositions()) {
            throw new IllegalArgumentException("observeDense: " + tokens.length + " tokens; "
                    + "must be 1.." + config.maxPositions() + " (the model's context)");
        }
        CpuKvCache[] caches = {decoder.newCache(tokens.length)};
        decoder.forward(caches, new int[][] {tokens}, SparsityPolicy.DENSE, false, observer);
    }

    @Override
    public Result<GenerationResult> generate(List<GenerationRequest> requests) {
        SparsityPolicy policy = newPolicy();
        Result<GenerationResult> r = new Generator<>(new CpuBatchDecoder(decoder), tokenizer,
                maxBatch).generate(requests, everyToken ? policy : SparsityPolicy.DENSE, policy);
        return new Result<>(r.results(), r.stats().withPolar(statsOf(policy)));
    }

    @Override
    public Result<LoglikelihoodResult> loglikelihood(List<LoglikelihoodRequest> requests) {
        SparsityPolicy policy = newPolicy();
        List<LoglikelihoodResult> out = new ArrayList<>(requests.size());
        EngineStats stats = EngineStats.ZERO;
        for (int from = 0; from < requests.size(); from += maxBatch) {
            List<LoglikelihoodRequest> batch =
                    requests.subList(from, Math.min(requests.size(), from + maxBatch));
            for (int r = 0; r < batch.size(); r++) {
                LoglikelihoodRequest q = batch.get(r);
                int n = q.context().length + q.continuation().length - 1;
                if (n > config.maxPositions()) {
                    throw new IllegalArgumentException("loglikelihood: request " + (from + r)
                            + " needs " + n + " positions; the context is "
                            + config.maxPositions());
                }
            }
            boolean stepwise = polarConfig != null && !everyToken;
            long[] nanos = new long[1];
            TokenScores scores = stepwise ? decodeContinuations(batch, policy, nanos)
                    : forwardWhole(batch, policy, nanos);
            long prefill = 0;
            for (int r = 0; r < batch.size(); r++) {
                int[] cont = batch.get(r).continuation();
                prefill += batch.get(r).context().length + cont.length - 1;
                out.add(new LoglikelihoodResult(scores.sum(r), scores.allGreedy(r), cont.length));
            }
            stats = stats.plus(new EngineStats(prefill, 0, nanos[0], 0, 1, batch.size()));
        }
        return new Result<>(out, stats.withPolar(statsOf(policy)));
    }

    /** One forward over context + continuation[:-1] (dense, or Polar at every token). */
    private TokenScores forwardWhole(List<LoglikelihoodRequest> batch, SparsityPolicy policy,
                                     long[] nanos) {
        int rows = batch.size();
        CpuKvCache[] caches = new CpuKvCache[rows];
        int[][] tokens = new int[rows][];
        int[] last = new int[rows];
        for (int r = 0; r < rows; r++) {
            LoglikelihoodRequest q = batch.get(r);
            int n = q.context().length + q.continuation().length - 1;
            tokens[r] = new int[n];
            System.arraycopy(q.context(), 0, tokens[r], 0, q.context().length);
            System.arraycopy(q.continuation(), 0, tokens[r], q.context().length,
                    q.continuation().length - 1);
            caches[r] = decoder.newCache(n);
            last[r] = q.continuation().length;
        }
        long t0 = System.nanoTime();
        float[][][] logits = decoder.forward(caches, tokens, polarConfig != null ? policy
                : SparsityPolicy.DENSE, last, DecoderObserver.NONE);
        nanos[0] = System.nanoTime() - t0;
        int[][] conts = new int[rows][];
        for (int r = 0; r < rows; r++) {
            conts[r] = batch.get(r).continuation();
        }
        return TokenScores.fromLogits(logits, conts);
    }

    /** Polar as deployed (see {@link TeacherForcing}), on the CPU decoder. */
    private TokenScores decodeContinuations(List<LoglikelihoodRequest> batch,
                                            SparsityPolicy policy, long[] nanos) {
        long t0 = System.nanoTime();
        List<CpuKvCache> caches = new ArrayList<>(batch.size());
        for (LoglikelihoodRequest q : batch) {
            caches.add(decoder.newCache(q.context().length + q.continuation().length - 1));
        }
        TokenScores out = TeacherForcing.continuationScores(new CpuBatchDecoder(decoder), caches,
                batch, policy);
        nanos[0] = System.nanoTime() - t0;
        return out;
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
