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
import org.polarspark.generate.Sampler;
import org.polarspark.model.Checkpoint;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.TextTokenizer;
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
    private final SparsityPolicy policy;

    public CpuEngine(CpuDecoder decoder, TextTokenizer tokenizer, int maxBatch,
                     SparsityPolicy policy) {
        if (maxBatch < 1) {
            throw new IllegalArgumentException("maxBatch must be >= 1, got " + maxBatch);
        }
        this.decoder = decoder;
        this.config = decoder.config();
        this.tokenizer = tokenizer;
        this.maxBatch = maxBatch;
        this.policy = policy;
    }

    /** Loads a checkpoint directory (config.json, safetensors, tokenizer.json). */
    public static CpuEngine load(Path modelDir, int maxBatch) {
        long t0 = System.nanoTime();
        Checkpoint ckpt = Checkpoint.open(modelDir);
        CpuDecoder dec = new CpuDecoder(CpuWeights.load(ckpt));
        TextTokenizer tok = TextTokenizer.load(modelDir, ckpt.config());
        LOG.info("Loaded {} ({} layers, hidden {}, {} heads / {} KV heads) on the CPU backend"
                        + " in {} ms", modelDir, ckpt.config().numLayers(),
                ckpt.config().hiddenSize(), ckpt.config().numHeads(), ckpt.config().numKvHeads(),
                (System.nanoTime() - t0) / 1_000_000);
        return new CpuEngine(dec, tok, maxBatch, SparsityPolicy.DENSE);
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
    public Result<GenerationResult> generate(List<GenerationRequest> requests) {
        return new Generator<>(new CpuBatchDecoder(decoder), tokenizer, maxBatch)
                .generate(requests, policy);
    }

    @Override
    public Result<LoglikelihoodResult> loglikelihood(List<LoglikelihoodRequest> requests) {
        List<LoglikelihoodResult> out = new ArrayList<>(requests.size());
        EngineStats stats = EngineStats.ZERO;
        for (int from = 0; from < requests.size(); from += maxBatch) {
            List<LoglikelihoodRequest> batch =
                    requests.subList(from, Math.min(requests.size(), from + maxBatch));
            int rows = batch.size();
            CpuKvCache[] caches = new CpuKvCache[rows];
            int[][] tokens = new int[rows][];
            int[] last = new int[rows];
            long prefill = 0;
            for (int r = 0; r < rows; r++) {
                LoglikelihoodRequest q = batch.get(r);
                int n = q.context().length + q.continuation().length - 1;
                if (n > config.maxPositions()) {
                    throw new IllegalArgumentException("loglikelihood: request " + (from + r)
                            + " needs " + n + " positions; the context is "
                            + config.maxPositions());
                }
                tokens[r] = new int[n];
                System.arraycopy(q.context(), 0, tokens[r], 0, q.context().length);
                System.arraycopy(q.continuation(), 0, tokens[r], q.context().length,
                        q.continuation().length - 1);
                caches[r] = decoder.newCache(n);
                last[r] = q.continuation().length;
                prefill += n;
            }
            long t0 = System.nanoTime();
            float[][][] logits = decoder.forward(caches, tokens, policy, last,
                    DecoderObserver.NONE);
            long dt = System.nanoTime() - t0;
            for (int r = 0; r < rows; r++) {
                int[] cont = batch.get(r).continuation();
                double ll = 0;
                boolean greedy = true;
                for (int i = 0; i < cont.length; i++) {
                    ll += Sampler.logProb(logits[r][i], cont[i]);
                    greedy &= Sampler.argmax(logits[r][i]) == cont[i];
                }
                out.add(new LoglikelihoodResult(ll, greedy, cont.length));
            }
            stats = stats.plus(new EngineStats(prefill, 0, dt, 0, 1, rows));
        }
        return new Result<>(out, stats);
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
