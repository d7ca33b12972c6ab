package org.polarspark.cpu;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import org.polarspark.generate.Engine;
import org.polarspark.generate.EngineStats;
import org.polarspark.generate.FinishReason;
import org.polarspark.generate.GenerationRequest;
import org.polarspark.generate.GenerationResult;
import org.polarspark.generate.Sampler;
import org.polarspark.generate.SamplingParams;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.TextTokenizer;
import org.polarspark.polar.SparsityPolicy;

/**
 * Generation on the CPU backend with continuous batching over {@code maxBatch} slots: a finished
 * row frees its slot and the next prompt is prefilled into it, in the same forward call as the
 * other rows' decode steps. Each row's tokens depend only on its prompt, its seed and (under
 * dense decoding) nothing else, so results do not depend on batch composition.
 */
public final class CpuGenerator {
    private final CpuDecoder decoder;
    private final TextTokenizer tokenizer; // may be null: no text, no stop strings
    private final int maxBatch;

    public CpuGenerator(CpuDecoder decoder, TextTokenizer tokenizer, int maxBatch) {
        if (maxBatch < 1) {
            throw new IllegalArgumentException("maxBatch must be >= 1, got " + maxBatch);
        }
        this.decoder = decoder;
        this.tokenizer = tokenizer;
        this.maxBatch = maxBatch;
    }

    private static final class Row {
        final int index;
        final int[] prompt;
        final SamplingParams params;
        final long seed;
        final CpuKvCache cache;
        final List<Integer> out = new ArrayList<>();
        final List<Double> logprobs = new ArrayList<>();
        final List<int[]> topIds = new ArrayList<>();
        final List<double[]> topLps = new ArrayList<>();
        double cumulative;
        long startNs;
        long firstNs;
        FinishReason finish;
        String stopReason;
        String text;

        Row(int index, int[] prompt, SamplingParams params, long seed, CpuKvCache cache) {
            this.index = index;
            this.prompt = prompt;
            this.params = params;
            this.seed = seed;
            this.cache = cache;
        }
    }

    /**
     * Generates for each request (one sequence each), in continuous batches.
     *
     * @param requests prompts (each 1 to context-1 tokens), sampling settings and seeds
     * @param policy   Polar Sparsity applied in every forward call (DENSE for none)
     */
    public Engine.Result<GenerationResult> generate(List<GenerationRequest> requests,
                                                    SparsityPolicy policy) {
        ModelConfig c = decoder.config();
        Deque<Row> waiting = new ArrayDeque<>();
        for (int i = 0; i < requests.size(); i++) {
            GenerationRequest q = requests.get(i);
            int[] p = q.promptIds();
            if (p.length == 0 || p.length >= c.maxPositions()) {
                throw new IllegalArgumentException("prompt " + i + " has " + p.length
                        + " tokens; it must have between 1 and " + (c.maxPositions() - 1)
                        + " (the context is " + c.maxPositions() + ")");
            }
            int capacity = Math.min(c.maxPositions(), p.length + q.params().maxTokens());
            waiting.add(new Row(i, p, q.params(), q.seed(), decoder.newCache(capacity)));
        }
        GenerationResult[] results = new GenerationResult[requests.size()];
        List<Row> active = new ArrayList<>();
        long prefillTokens = 0;
        long decodeTokens = 0;
        long prefillNs = 0;
        long decodeNs = 0;
        long calls = 0;
        int maxRows = 0;
        while (!waiting.isEmpty() || !active.isEmpty()) {
            long now = System.nanoTime();
            while (active.size() < maxBatch && !waiting.isEmpty()) {
                Row r = waiting.poll();
                r.startNs = now;
                active.add(r);
            }
            CpuKvCache[] caches = new CpuKvCache[active.size()];
            int[][] tokens = new int[active.size()][];
            boolean prefill = false;
            for (int i = 0; i < active.size(); i++) {
                Row r = active.get(i);
                caches[i] = r.cache;
                if (r.out.isEmpty()) {
                    tokens[i] = r.prompt;
                    prefill = true;
                    prefillTokens += r.prompt.length;
                } else {
                    tokens[i] = new int[] {r.out.get(r.out.size() - 1)};
                }
            }
            float[][][] logits = decoder.forward(caches, tokens, policy, false);
            long t = System.nanoTime();
            if (prefill) {
                prefillNs += t - now;
            } else {
                decodeNs += t - now;
            }
            calls++;
            maxRows = Math.max(maxRows, active.size());
            List<Row> still = new ArrayList<>();
            for (int i = 0; i < active.size(); i++) {
                Row r = active.get(i);
                int before = r.out.size();
                boolean done = step(r, logits[i][0], c, t);
                decodeTokens += r.out.size() - before;
                if (done) {
                    results[r.index] = finish(r, t);
                } else {
                    still.add(r);
                }
            }
            active = still;
        }
        return new Engine.Result<>(Arrays.asList(results), new EngineStats(prefillTokens,
                decodeTokens, prefillNs, decodeNs, calls, maxRows));
    }

    /** Samples one token for a row; returns true when the row is finished. */
    private boolean step(Row r, float[] logits, ModelConfig c, long now) {
        SamplingParams p = r.params;
        int token = Sampler.sample(logits, p, r.seed, r.out.size());
        if (r.out.isEmpty()) {
            r.firstNs = now;
        }
        if (c.isEos(token)) {
            r.finish = FinishReason.EOS;
            return true;
        }
        double lp = Sampler.logProb(logits, token);
        if (p.logprobs() != null && p.logprobs() > 0) {
            int[] ids = Sampler.topK(logits, p.logprobs());
            double[] lps = new double[ids.length];
            double shift = lp - logits[token]; // log-probability = logit - logsumexp
            for (int i = 0; i < ids.length; i++) {
                lps[i] = logits[ids[i]] + shift;
            }
            r.topIds.add(ids);
            r.topLps.add(lps);
        }
        r.out.add(token);
        r.logprobs.add(lp);
        r.cumulative += lp;
        if (tokenizer != null && !p.stop().isEmpty()) {
            String text = tokenizer.decode(toArray(r.out));
            for (String s : p.stop()) {
                int at = text.indexOf(s);
                if (at >= 0) {
                    r.finish = FinishReason.STOP;
                    r.stopReason = s;
                    r.text = text.substring(0, at);
                    return true;
                }
            }
        }
        if (r.out.size() >= p.maxTokens() || r.cache.length() >= r.cache.capacity()) {
            r.finish = FinishReason.LENGTH;
            return true;
        }
        return false;
    }

    private GenerationResult finish(Row r, long now) {
        int[] toks = toArray(r.out);
        String text = r.text != null ? r.text : tokenizer != null ? tokenizer.decode(toks) : null;
        boolean want = r.params.logprobs() != null;
        double[] lps = want ? r.logprobs.stream().mapToDouble(Double::doubleValue).toArray()
                : null;
        boolean top = want && r.params.logprobs() > 0;
        return new GenerationResult(toks, text, lps,
                top ? r.topIds.toArray(new int[0][]) : null,
                top ? r.topLps.toArray(new double[0][]) : null, r.cumulative, r.finish,
                r.stopReason,
                (r.firstNs - r.startNs) / 1e6, (now - r.firstNs) / 1e6);
    }

    private static int[] toArray(List<Integer> l) {
        int[] a = new int[l.size()];
        for (int i = 0; i < a.length; i++) {
            a[i] = l.get(i);
        }
        return a;
    }
}
