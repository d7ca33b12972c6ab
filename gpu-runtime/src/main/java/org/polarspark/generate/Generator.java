package org.polarspark.generate;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.TextTokenizer;
import org.polarspark.polar.SparsityPolicy;

/**
 * Continuous batching over a fixed number of slots, for any backend: a finished row frees its
 * slot and its KV storage, and the next waiting prompt is prefilled into the free slot in the
 * same forward call as the other rows' decode steps. Admission is by KV room: a prompt whose
 * sequence does not fit yet waits (in order); one that can never fit comes back as a per-row
 * error. Each row's tokens depend only on its prompt, its seed and the model, never on which
 * rows share its batch (under dense decoding).
 */
public final class Generator<S> {
    private final BatchDecoder<S> decoder;
    private final TextTokenizer tokenizer; // may be null: no text, no stop strings
    private final int maxBatch;

    public Generator(BatchDecoder<S> decoder, TextTokenizer tokenizer, int maxBatch) {
        if (maxBatch < 1) {
            throw new IllegalArgumentException("maxBatch must be >= 1, got " + maxBatch);
        }
        this.decoder = decoder;
        this.tokenizer = tokenizer;
        this.maxBatch = maxBatch;
    }

    private final class Row {
        final int index;
        final int[] prompt;
        final SamplingParams params;
        final long seed;
        final int capacity;
        S seq;
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

        Row(int index, int[] prompt, SamplingParams params, long seed, int capacity) {
            this.index = index;
            this.prompt = prompt;
            this.params = params;
            this.seed = seed;
            this.capacity = capacity;
        }
    }

    /** Generates one sequence per request with one policy for prefill and decode. */
    public Engine.Result<GenerationResult> generate(List<GenerationRequest> requests,
                                                    SparsityPolicy policy) {
        return generate(requests, policy, policy);
    }

    /**
     * Generates one sequence per request. Invalid prompts come back as error results.
     *
     * <p>Each iteration runs two forward calls: the newly admitted rows' prompts (prefill, under
     * {@code prefillPolicy}), then one decode step for the running rows (under
     * {@code decodePolicy}). Keeping them apart means a decode row's computation never depends on
     * whether prompts were being prefilled at the same time (Polar Sparsity's MLP selection is
     * shared by the batch), and every decode call is the same graph-captured step.
     *
     * <p>Both calls let the backend sample ({@link BatchDecoder#prefillSample},
     * {@link BatchDecoder#decodeSample}: no logits leave the device) when it can and no row in
     * the call wants top-logprob alternatives; otherwise the call's logits come to the host and
     * {@link Sampler} picks the tokens. Either way step t of a row draws from (its seed, t), the
     * first token being step 0.
     */
    public Engine.Result<GenerationResult> generate(List<GenerationRequest> requests,
                                                    SparsityPolicy prefillPolicy,
                                                    SparsityPolicy decodePolicy) {
        ModelConfig c = decoder.config();
        GenerationResult[] results = new GenerationResult[requests.size()];
        Deque<Row> waiting = new ArrayDeque<>();
        for (int i = 0; i < requests.size(); i++) {
            GenerationRequest q = requests.get(i);
            int[] p = q.promptIds();
            if (p.length == 0 || p.length >= c.maxPositions()) {
                results[i] = GenerationResult.error("prompt has " + p.length + " tokens; it "
                        + "must have between 1 and " + (c.maxPositions() - 1) + " (the context is "
                        + c.maxPositions() + ")");
                continue;
            }
            int bad = firstInvalidToken(p, c.vocabSize());
            if (bad >= 0) {
                results[i] = GenerationResult.error("prompt token " + bad + " has id " + p[bad]
                        + " outside the vocabulary [0, " + c.vocabSize() + ")");
                continue;
            }
            int capacity = Math.min(c.maxPositions(), p.length + q.params().maxTokens());
            if (!decoder.fitsEver(capacity)) {
                results[i] = GenerationResult.error("the sequence needs " + capacity
                        + " KV positions, more than the whole KV cache holds");
                continue;
            }
            waiting.add(new Row(i, p, q.params(), q.seed(), capacity));
        }
        List<Row> active = new ArrayList<>();
        long[] counters = new long[5]; // prefill tokens, decode tokens, prefill ns, decode ns, calls
        int maxRows = 0;
        try {
            while (!waiting.isEmpty() || !active.isEmpty()) {
                long now = System.nanoTime();
                List<Row> admitted = new ArrayList<>();
                while (active.size() + admitted.size() < maxBatch && !waiting.isEmpty()) {
                    Row r = waiting.peek();
                    S seq = decoder.open(r.capacity);
                    if (seq == null) {
                        if (active.isEmpty() && admitted.isEmpty()) {
                            throw new IllegalStateException("KV cache has no room for "
                                    + r.capacity + " positions with no sequence running");
                        }
                        break; // waits for running rows to free their blocks
                    }
                    waiting.poll();
                    r.seq = seq;
                    r.startNs = now;
                    admitted.add(r);
                }
                maxRows = Math.max(maxRows, active.size() + admitted.size());
                List<Row> running = new ArrayList<>();
                if (!admitted.isEmpty()) {
                    running.addAll(step(admitted, true, prefillPolicy, c, results, counters));
                }
                if (!active.isEmpty()) {
                    running.addAll(step(active, false, decodePolicy, c, results, counters));
                }
                active = running;
            }
        } finally {
            for (Row r : active) {
                if (r.seq != null) {
                    decoder.close(r.seq);
                }
            }
        }
        return new Engine.Result<>(Arrays.asList(results), new EngineStats(counters[0],
                counters[1], counters[2], counters[3], counters[4], maxRows));
    }

    /** One forward call for rows (prompts, or one token each); returns the unfinished rows. */
    private List<Row> step(List<Row> rows, boolean prefill, SparsityPolicy policy, ModelConfig c,
                           GenerationResult[] results, long[] counters) {
        long t0 = System.nanoTime();
        // The backend samples (prompts and decode steps alike) unless a row wants top-logprob
        // alternatives, which need its logits on the host.
        if (rows.stream().allMatch(r -> r.params.logprobs() == null
                || r.params.logprobs() == 0)) {
            List<Row> still = deviceStep(rows, prefill, policy, c, results, counters, t0);
            if (still != null) {
                return still;
            }
        }
        List<S> seqs = new ArrayList<>(rows.size());
        int[][] tokens = new int[rows.size()][];
        int[] last = new int[rows.size()];
        for (int i = 0; i < rows.size(); i++) {
            Row r = rows.get(i);
            seqs.add(r.seq);
            last[i] = 1;
            tokens[i] = prefill ? r.prompt : new int[] {r.out.get(r.out.size() - 1)};
            if (prefill) {
                counters[0] += r.prompt.length;
            }
        }
        float[][][] logits = decoder.forward(seqs, tokens, last, policy);
        long t = System.nanoTime();
        counters[prefill ? 2 : 3] += t - t0;
        counters[4]++;
        List<Row> still = new ArrayList<>();
        for (int i = 0; i < rows.size(); i++) {
            Row r = rows.get(i);
            int before = r.out.size();
            boolean done = sample(r, logits[i][0], c, t);
            counters[1] += r.out.size() - before;
            if (done) {
                results[r.index] = finish(r, t);
                decoder.close(r.seq);
                r.seq = null;
            } else {
                still.add(r);
            }
        }
        return still;
    }

    private static int firstInvalidToken(int[] p, int vocab) {
        for (int i = 0; i < p.length; i++) {
            if (p[i] < 0 || p[i] >= vocab) {
                return i;
            }
        }
        return -1;
    }

    /**
     * A prefill ({@link BatchDecoder#prefillSample}) or decode step
     * ({@link BatchDecoder#decodeSample}) sampled by the backend, with the seeds and sampler
     * counters the host sampler would use; null if the backend cannot sample (nothing ran).
     */
    private List<Row> deviceStep(List<Row> rows, boolean prefill, SparsityPolicy policy,
                                 ModelConfig c, GenerationResult[] results, long[] counters,
                                 long t0) {
        int n = rows.size();
        List<S> seqs = new ArrayList<>(n);
        SamplingParams[] params = new SamplingParams[n];
        long[] seeds = new long[n];
        int[] steps = new int[n];
        long promptTokens = 0;
        for (int i = 0; i < n; i++) {
            Row r = rows.get(i);
            seqs.add(r.seq);
            params[i] = r.params;
            seeds[i] = r.seed;
            steps[i] = r.out.size(); // 0 after a prompt
            promptTokens += prefill ? r.prompt.length : 0;
        }
        double[] lps = new double[n];
        int[] ids;
        if (prefill) {
            int[][] prompts = new int[n][];
            for (int i = 0; i < n; i++) {
                prompts[i] = rows.get(i).prompt;
            }
            ids = decoder.prefillSample(seqs, prompts, policy, params, seeds, steps, lps);
        } else {
            int[] tokens = new int[n];
            for (int i = 0; i < n; i++) {
                Row r = rows.get(i);
                tokens[i] = r.out.get(r.out.size() - 1);
            }
            ids = decoder.decodeSample(seqs, tokens, policy, params, seeds, steps, lps);
        }
        if (ids == null) {
            return null;
        }
        long t = System.nanoTime();
        counters[0] += promptTokens;
        counters[prefill ? 2 : 3] += t - t0;
        counters[4]++;
        List<Row> still = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Row r = rows.get(i);
            int before = r.out.size();
            boolean done = accept(r, ids[i], lps[i], null, c, t);
            counters[1] += r.out.size() - before;
            if (done) {
                results[r.index] = finish(r, t);
                decoder.close(r.seq);
                r.seq = null;
            } else {
                still.add(r);
            }
        }
        return still;
    }

    /** Samples one token for a row; returns true when the row is finished. */
    private boolean sample(Row r, float[] logits, ModelConfig c, long now) {
        int token = Sampler.sample(logits, r.params, r.seed, r.out.size());
        return accept(r, token, Sampler.logProb(logits, token), logits, c, now);
    }

    /**
     * Takes a sampled token (and its log-probability) into a row: EOS, stop strings and
     * length end it; returns true when the row is finished. {@code logits} (may be null when
     * the backend sampled) serve the top-logprob alternatives.
     */
    private boolean accept(Row r, int token, double lp, float[] logits, ModelConfig c,
                           long now) {
        SamplingParams p = r.params;
        if (r.out.isEmpty()) {
            r.firstNs = now;
        }
        if (c.isEos(token)) {
            r.finish = FinishReason.EOS;
            return true;
        }
        if (p.logprobs() != null && p.logprobs() > 0 && logits != null) {
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
        // capacity = min(context, prompt + max_tokens): prompt plus output never exceed it, as
        // vLLM's max_model_len. The last token is never fed back, so the KV cache needs
        // capacity - 1 positions.
        if (r.prompt.length + r.out.size() >= r.capacity) {
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
                r.stopReason, (r.firstNs - r.startNs) / 1e6, (now - r.firstNs) / 1e6, null);
    }

    private static int[] toArray(List<Integer> l) {
        int[] a = new int[l.size()];
        for (int i = 0; i < a.length; i++) {
            a[i] = l.get(i);
        }
        return a;
    }
}
