package org.polarspark.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.polarspark.cpu.CpuDecoder;
import org.polarspark.cpu.CpuKvCache;
import org.polarspark.cpu.CpuWeights;
import org.polarspark.generate.BatchDecoder;
import org.polarspark.generate.Engine;
import org.polarspark.generate.GenerationRequest;
import org.polarspark.generate.GenerationResult;
import org.polarspark.generate.Generator;
import org.polarspark.generate.Sampler;
import org.polarspark.generate.SamplingParams;
import org.polarspark.model.Checkpoint;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.TextTokenizer;
import org.polarspark.polar.SparsityPolicy;
import org.polarspark.testutil.Golden;

/**
 * The first token after a prompt sampled on the device ({@link CudaDecoder#prefillSample}):
 * greedy tokens and log-probabilities against the CPU reference, sampled tokens against the
 * sampling kernel's definition evaluated on the host from the device's own logits, chunked long
 * prompts batched with short ones, and the {@link Generator} taking this path.
 */
class CudaPrefillSampleTest extends GpuTest {
    /** The logit tolerance of the CUDA decoder against the CPU (see CudaDecoderTest). */
    static final double LOGIT_REL_TOL = CudaDecoderTest.LOGIT_REL_TOL;
    /**
     * Device log-probability of a token against the host's log-softmax of the same fp32 logits:
     * the kernel sums exp in fp32 over the vocabulary (as lmHeadArgmaxAndLogprobs in
     * CudaKernelTest bounds it).
     */
    static final double LP_ATOL = 1e-4;
    static final double LP_RTOL = 1e-5;
    /** fp32 unit roundoff. */
    static final double U32 = 0x1.0p-24;

    static Stream<String> models() {
        return Golden.names();
    }

    private static CudaDecoder decoder(Checkpoint ckpt, int pieceTokens, int maxRows,
                                       int sequences) {
        var c = ckpt.config();
        long perBlock = 2L * c.numLayers() * c.kvDim() * CudaDecoder.BLOCK_SIZE * 2;
        long kv = perBlock * sequences * ((c.maxPositions() + 15) / 16);
        return new CudaDecoder(ctx, kernels, alloc, ckpt, pieceTokens, maxRows, kv);
    }

    /** A prompt of {@code len} tokens: Austen text for the bundled models, else golden ids. */
    static int[] longPrompt(String name, Golden g, ModelConfig c, int len) {
        List<Integer> ids = new ArrayList<>();
        Path text = Golden.repoRoot().resolve("datasets/corpus/test.txt");
        if (name.startsWith("tiny-") && Files.exists(text)) {
            try (TextTokenizer tok = TextTokenizer.load(g.modelDir(), c)) {
                String s = Files.readString(text);
                for (int t : tok.encode(s.substring(0, Math.min(s.length(), 20 * len)))) {
                    ids.add(t);
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        } else {
            for (Golden.Case gc : g.cases()) {
                for (int t : gc.inputIds()) {
                    ids.add(t);
                }
            }
        }
        for (int j = ids.size(); j < len; j++) {
            ids.add(3 + (j * 17 + 5) % (c.vocabSize() - 3));
        }
        return ids.subList(0, len).stream().mapToInt(Integer::intValue).toArray();
    }

    private static List<CudaSequence> open(CudaDecoder gpu, int[][] prompts) {
        List<CudaSequence> seqs = new ArrayList<>();
        for (int[] p : prompts) {
            seqs.add(gpu.open(p.length + 1));
        }
        return seqs;
    }

    private static void closeAll(CudaDecoder gpu, List<CudaSequence> seqs) {
        for (CudaSequence s : seqs) {
            gpu.close(s);
        }
    }

    private static float[] cpuLastLogits(CpuDecoder cpu, int[] prompt) {
        CpuKvCache cc = cpu.newCache(prompt.length + 1);
        return cpu.forward(new CpuKvCache[] {cc}, new int[][] {prompt}, SparsityPolicy.DENSE,
                false)[0][0];
    }

    private static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }

    /**
     * Greedy first tokens of every golden prompt and a long one, prefilled together and sampled
     * on the device: the argmax of the device's own logits (forward of the same batch) with
     * its log-probability; against the CPU, the same token unless the CPU's top-2 gap is within
     * the bf16 error bound, and a log-probability within the bound the logit tolerance implies
     * (every logit within tol * max|l| moves l[id] - logsumexp(l) by at most twice that).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void greedyFirstTokensMatchTheCpu(String name) {
        Golden g = Golden.load(name);
        Checkpoint ckpt = Checkpoint.open(g.modelDir());
        ModelConfig c = ckpt.config();
        CpuDecoder cpu = new CpuDecoder(CpuWeights.load(ckpt));
        List<int[]> ps = new ArrayList<>();
        for (Golden.Case gc : g.cases()) {
            ps.add(gc.inputIds());
        }
        ps.add(longPrompt(name, g, c, Math.min(300, c.maxPositions() - 2)));
        ps.add(new int[] {ps.get(0)[0]}); // a one-token prompt
        int[][] prompts = ps.toArray(new int[0][]);
        int n = prompts.length;
        SamplingParams[] params = new SamplingParams[n];
        Arrays.fill(params, SamplingParams.greedy(1));
        long[] seeds = new long[n];
        int[] steps = new int[n];
        int[] ones = new int[n];
        Arrays.fill(ones, 1);
        // 64-token pieces: the long prompt is prefilled in several chunks
        try (CudaDecoder gpu = decoder(ckpt, 64, 4, 2 * n)) {
            List<CudaSequence> a = open(gpu, prompts);
            float[][][] gl = gpu.forward(a, prompts, ones, SparsityPolicy.DENSE);
            List<CudaSequence> b = open(gpu, prompts);
            double[] lps = new double[n];
            int[] ids = gpu.prefillSample(b, prompts, SparsityPolicy.DENSE, params, seeds, steps,
                    lps);
            for (int r = 0; r < n; r++) {
                String at = name + " prompt " + r + " (" + prompts[r].length + " tokens)";
                assertEquals(prompts[r].length, b.get(r).length(), at + ": K/V appended");
                float[] dl = gl[r][0];
                assertEquals(Sampler.argmax(dl), ids[r], at + ": argmax of the device logits");
                double own = Sampler.logProb(dl, ids[r]);
                assertEquals(own, lps[r], LP_ATOL + LP_RTOL * Math.abs(own), at + ": logprob");

                float[] cl = cpuLastLogits(cpu, prompts[r]);
                double bound = 2 * LOGIT_REL_TOL * maxAbs(cl);
                int ct = Sampler.argmax(cl);
                if (ct != ids[r]) {
                    int[] top = Sampler.topK(cl, 2);
                    double gap = cl[top[0]] - cl[top[1]];
                    System.out.printf("[gpu] %s: first token differs (cpu %d, gpu %d): cpu top-2 "
                            + "gap %.5f <= bf16 bound %.5f%n", at, ct, ids[r], gap, bound);
                    assertTrue(gap <= bound, at + ": tokens differ (cpu " + ct + ", gpu " + ids[r]
                            + ") but the CPU's top-2 gap " + gap + " exceeds " + bound);
                }
                double cpuLp = Sampler.logProb(cl, ids[r]);
                assertTrue(Math.abs(cpuLp - lps[r]) <= bound, String.format("%s: logprob gpu "
                        + "%.5f cpu %.5f, |diff| > %.5f", at, lps[r], cpuLp, bound));
            }
            closeAll(gpu, a);
            closeAll(gpu, b);
        }
    }

    /**
     * Checks a device draw against the sampling kernel's definition (kernels/sampling.cu,
     * SamplingKernel) evaluated on the host in double: q = exp((l - max l) / T); top-k keeps
     * q >= the k-th largest, then top-p the largest threshold whose kept mass is still >= top_p x
     * the top-k mass (ties at a threshold kept); the token is the first id, in id order, at which
     * the running kept mass exceeds {@link Sampler#uniform}(seed, step) x the kept mass. (Not
     * {@link Sampler#sample}: the host sampler walks tokens from most to least likely, so from
     * the same uniform it draws a different token by definition.)
     *
     * <p>The device sums in fp32, so the check allows its rounding: kept-set decisions within
     * {@code keepEps} = 4 x (ceil(V/1024) + 13) fp32 roundoffs of the kept mass (block sums: a
     * thread's ceil(V/1024) terms, two 32-way trees; 2-ulp expf; the top_p product), and the
     * inverse CDF within {@code cdfEps} = 2 x (1024 + ceil(V/1024) + 13) roundoffs (a serial
     * scan over 1024 segment sums). Where the top-k or top-p cut is that close, only membership
     * of the generous kept set is checked ({@code loose[0]} counts those rows).
     *
     * @return null if consistent, else why not
     */
    static String checkDraw(float[] l, SamplingParams p, long seed, int step, int id,
                            int[] loose) {
        if (p.temperature() == 0) {
            return id == Sampler.argmax(l) ? null : "greedy: not the lowest argmax "
                    + Sampler.argmax(l);
        }
        int v = l.length;
        double seg = Math.ceil(v / 1024.0);
        double keepEps = 4 * (seg + 13) * U32;
        double cdfEps = 2 * (1024 + seg + 13) * U32;
        double t = (float) p.temperature();
        float max = Float.NEGATIVE_INFINITY;
        for (float x : l) {
            max = Math.max(max, x);
        }
        double[] q = new double[v];
        for (int i = 0; i < v; i++) {
            q[i] = Math.exp((l[i] - max) / t);
        }
        double[] sorted = q.clone();
        Arrays.sort(sorted);
        for (int i = 0; i < v / 2; i++) { // most likely first
            double x = sorted[i];
            sorted[i] = sorted[v - 1 - i];
            sorted[v - 1 - i] = x;
        }
        double floor = 0; // kept: q >= floor
        double generous = 0; // the lowest floor that fp32 rounding could give instead
        boolean kClose = false;
        int k = p.topK();
        if (k > 0 && k < v) {
            floor = sorted[k - 1];
            generous = floor;
            if (sorted[k] != floor && sorted[k] >= floor * (1 - keepEps)) {
                kClose = true; // a near tie at the top-k threshold: fp32 may keep one more
                generous = sorted[k];
            }
        }
        boolean cutClose = kClose;
        double total = 0;
        for (double x : q) {
            total += x >= floor ? x : 0;
        }
        if (p.topP() < 1) {
            double need = (float) p.topP() * total;
            double cum = 0;
            int j = 0;
            while (true) {
                cum += sorted[j];
                if (cum >= need || j == v - 1) {
                    break;
                }
                j++;
            }
            double pGenerous = sorted[j];
            if (cum - need < keepEps * total && j + 1 < v) {
                cutClose = true; // fp32 may find this mass short of top_p: one more token
                pGenerous = sorted[j + 1];
            }
            if (need - (cum - sorted[j]) < keepEps * total) {
                cutClose = true; // or the mass above it enough: one fewer (still kept below)
            }
            // top-p keeps a prefix of the top-k set; a close top-k cut may add its next token
            generous = kClose ? Math.min(pGenerous, generous) : pGenerous;
            floor = Math.max(floor, sorted[j]);
            total = 0;
            for (double x : q) {
                total += x >= floor ? x : 0;
            }
        }
        if (cutClose) {
            loose[0]++;
            return q[id] >= generous ? null : "token outside even the generous kept set (q "
                    + q[id] + " < " + generous + ")";
        }
        if (q[id] < floor) {
            return "token outside the kept set (q " + q[id] + " < " + floor + ")";
        }
        double before = 0;
        for (int i = 0; i < id; i++) {
            before += q[i] >= floor ? q[i] : 0;
        }
        double target = Sampler.uniform(seed, step) * total;
        if (target < before - cdfEps * total || target >= before + q[id] + cdfEps * total) {
            return String.format("the uniform's target %.8g of mass %.8g is not in the token's "
                    + "interval [%.8g, %.8g)", target, total, before, before + q[id]);
        }
        return null;
    }

    /**
     * Temperature, top-k and top-p rows (several seeds per prompt and setting, sampler steps 0
     * and later ones, more rows than one piece holds), against two oracles: (1) the kernels
     * that decode steps use (the sampling kernel; for greedy rows the argmax after the LM head),
     * launched here on the logits of a forward of the same batch copied back to the device, with
     * the same settings, seeds and steps: the same ids and log-probabilities, bit for bit (so a
     * row's tokens do not depend on which path sampled them, nor on the other rows); (2) the kernel's definition on the host ({@link #checkDraw}), and log-probabilities
     * against the host's log-softmax of those logits.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void sampledFirstTokensFollowTheSamplingKernel(String name) {
        Golden g = Golden.load(name);
        Checkpoint ckpt = Checkpoint.open(g.modelDir());
        ModelConfig c = ckpt.config();
        int v = c.vocabSize();
        SamplingParams[] settings = {
            new SamplingParams(0.8, 0.9, 40, 1, List.of(), 0, 1, null),
            new SamplingParams(1.0, 1.0, -1, 1, List.of(), 0, 1, null),
            new SamplingParams(0.7, 0.95, -1, 1, List.of(), 0, 1, null),
            new SamplingParams(1.3, 0.6, 20, 1, List.of(), 0, 1, null),
            new SamplingParams(1.0, 1.0, 5, 1, List.of(), 0, 1, null),
            new SamplingParams(2.0, 1.0, -1, 1, List.of(), 0, 1, null),
            SamplingParams.greedy(1),
        };
        List<int[]> base = new ArrayList<>();
        for (Golden.Case gc : g.cases()) {
            base.add(gc.inputIds());
        }
        base.add(longPrompt(name, g, c, Math.min(200, c.maxPositions() - 2)));
        int seedsPer = 4;
        int n = base.size() * settings.length * seedsPer;
        int[][] prompts = new int[n][];
        SamplingParams[] params = new SamplingParams[n];
        long[] seeds = new long[n];
        int[] steps = new int[n];
        int r = 0;
        for (int[] p : base) {
            for (SamplingParams sp : settings) {
                for (int s = 0; s < seedsPer; s++) {
                    prompts[r] = p;
                    params[r] = sp;
                    seeds[r] = Sampler.mix(7919L * r + 13); // full 64-bit range, signs mixed
                    steps[r] = s == 0 ? 0 : s * 3 - 1;   // the first token, and later steps
                    r++;
                }
            }
        }
        int[] ones = new int[n];
        Arrays.fill(ones, 1);
        try (CudaDecoder gpu = decoder(ckpt, 256, 8, 2 * n)) {
            List<CudaSequence> a = open(gpu, prompts);
            float[][][] gl = gpu.forward(a, prompts, ones, SparsityPolicy.DENSE);
            List<CudaSequence> b = open(gpu, prompts);
            double[] lps = new double[n];
            int[] ids = gpu.prefillSample(b, prompts, SparsityPolicy.DENSE, params, seeds, steps,
                    lps);
            closeAll(gpu, a);
            closeAll(gpu, b);

            // (1) the decode path's kernel on the same logits
            float[] flat = new float[n * v];
            float[] temp = new float[n];
            int[] topK = new int[n];
            float[] topP = new float[n];
            for (int i = 0; i < n; i++) {
                System.arraycopy(gl[i][0], 0, flat, i * v, v);
                temp[i] = (float) params[i].temperature();
                topK[i] = params[i].topK();
                topP[i] = (float) params[i].topP();
            }
            DeviceBuffer dSeeds = alloc.allocate("seeds", n * 8L);
            buffers.add(dSeeds);
            dSeeds.copyFrom(jcuda.Pointer.to(seeds), n * 8L, stream);
            DeviceBuffer dIds = zeros(n * 4L);
            DeviceBuffer dLp = zeros(n * 4L);
            DeviceBuffer dFlat = f32(flat);
            kernels.sampling.sample(stream, dFlat, n, v, f32(temp), i32(topK), f32(topP),
                    dSeeds, i32(steps), zeros((long) n * v * 4), dIds, dLp);
            int[] kIds = readI32(dIds, n);
            float[] kLp = readF32(dLp, n);
            // greedy rows: the device argmax (its bits do not depend on the launch's other rows)
            DeviceBuffer aIds = zeros(n * 4L);
            DeviceBuffer aLp = zeros(n * 4L);
            kernels.lmHead.argmax(stream, dFlat, n, v, aIds, aLp,
                    zeros(LmHeadKernel.partBytes(n, v)), zeros(n * 4L));
            int[] argIds = readI32(aIds, n);
            float[] argLp = readF32(aLp, n);
            for (int i = 0; i < n; i++) {
                if (temp[i] == 0f) {
                    assertEquals(argIds[i], kIds[i], "row " + i + ": argmax = greedy sampling");
                    kIds[i] = argIds[i];
                    kLp[i] = argLp[i];
                }
            }

            int[] loose = new int[1];
            java.util.Set<Integer> distinct = new java.util.HashSet<>();
            for (int i = 0; i < n; i++) {
                String at = String.format("%s row %d (prompt of %d tokens, T=%s top_p=%s top_k=%d, "
                        + "seed %d, step %d)", name, i, prompts[i].length,
                        params[i].temperature(), params[i].topP(), params[i].topK(), seeds[i],
                        steps[i]);
                assertEquals(kIds[i], ids[i], at + ": the decode path's kernels on these logits");
                assertEquals(kLp[i], lps[i], 0.0, at + ": its log-probability");
                float[] dl = gl[i][0];
                double own = Sampler.logProb(dl, ids[i]);
                assertEquals(own, lps[i], LP_ATOL + LP_RTOL * Math.abs(own), at + ": logprob");
                String why = checkDraw(dl, params[i], seeds[i], steps[i], ids[i], loose);
                assertNull(why, at + ": token " + ids[i] + " against the kernel's definition");
                distinct.add(ids[i]);
            }
            System.out.printf("[gpu] %s: %d first tokens (%d distinct) sampled on the device; "
                    + "%d checked against the inverse CDF, %d (top-k/top-p cut within fp32 "
                    + "rounding) against the kept set only%n", name, n, distinct.size(),
                    n - loose[0], loose[0]);
            assertTrue(loose[0] * 4 < n, name + ": " + loose[0] + " of " + n + " rows only "
                    + "checked loosely");
        }
    }

    /**
     * A long prompt prefilled in several 48-token pieces, batched with a short and a one-token
     * prompt (in both orders, so the short rows share a piece with the long one's first or
     * last chunk): every row's token and log-probability equal what it gets alone, bit for bit
     * (the decoder's results do not depend on the batch), and the greedy long row's token is the
     * CPU's unless its top-2 gap is within the bf16 bound.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"tiny-opt", "tiny-llama", "opt"})
    void chunkedLongPromptBatchedWithShortOnesGetsWhatEachGetsAlone(String name) {
        Golden g = Golden.load(name);
        Checkpoint ckpt = Checkpoint.open(g.modelDir());
        ModelConfig c = ckpt.config();
        int piece = 48;
        int[] longP = longPrompt(name, g, c, Math.min(300, c.maxPositions() - 2));
        assertTrue(longP.length > 2 * piece, "the long prompt spans at least three pieces");
        int[] shortP = Arrays.copyOf(g.cases().get(0).inputIds(),
                Math.min(7, g.cases().get(0).inputIds().length));
        int[] oneP = {longP[1]};
        SamplingParams greedy = SamplingParams.greedy(1);
        SamplingParams nucleus = new SamplingParams(0.9, 0.9, -1, 1, List.of(), 0, 1, null);
        SamplingParams topK = new SamplingParams(1.0, 1.0, 20, 1, List.of(), 0, 1, null);
        int[][][] orders = {{longP, shortP, oneP}, {shortP, oneP, longP}};
        SamplingParams[][] paramOrders = {{greedy, nucleus, topK}, {nucleus, topK, greedy}};
        long[][] seedOrders = {{11, -22, 33}, {-22, 33, 11}};
        CpuDecoder cpu = new CpuDecoder(CpuWeights.load(ckpt));
        try (CudaDecoder gpu = decoder(ckpt, piece, 4, 4)) {
            for (int o = 0; o < orders.length; o++) {
                int[][] prompts = orders[o];
                int n = prompts.length;
                int[] alone = new int[n];
                double[] aloneLp = new double[n];
                for (int r = 0; r < n; r++) {
                    List<CudaSequence> s = open(gpu, new int[][] {prompts[r]});
                    double[] lp = new double[1];
                    alone[r] = gpu.prefillSample(s, new int[][] {prompts[r]},
                            SparsityPolicy.DENSE, new SamplingParams[] {paramOrders[o][r]},
                            new long[] {seedOrders[o][r]}, new int[1], lp)[0];
                    aloneLp[r] = lp[0];
                    closeAll(gpu, s);
                }
                List<CudaSequence> s = open(gpu, prompts);
                double[] lps = new double[n];
                int[] ids = gpu.prefillSample(s, prompts, SparsityPolicy.DENSE, paramOrders[o],
                        seedOrders[o], new int[n], lps);
                for (int r = 0; r < n; r++) {
                    assertEquals(prompts[r].length, s.get(r).length(), "K/V appended");
                }
                closeAll(gpu, s);
                assertArrayEquals(alone, ids, name + " order " + o + ": batched vs alone");
                assertArrayEquals(aloneLp, lps, name + " order " + o + ": log-probabilities");
                int g0 = o == 0 ? 0 : 2; // the greedy long row
                float[] cl = cpuLastLogits(cpu, longP);
                int ct = Sampler.argmax(cl);
                if (ct != ids[g0]) {
                    int[] top = Sampler.topK(cl, 2);
                    double gap = cl[top[0]] - cl[top[1]];
                    double bound = 2 * LOGIT_REL_TOL * maxAbs(cl);
                    assertTrue(gap <= bound, name + ": long prompt's token " + ids[g0] + ", cpu "
                            + ct + ", top-2 gap " + gap + " > " + bound);
                }
            }
            assertEquals(gpu.numBlocks(), gpu.freeBlocks(), "every KV block is back");
        }
    }

    /** Counts which of the decoder's paths the Generator takes. */
    static final class Counting implements BatchDecoder<CudaSequence> {
        final CudaDecoder d;
        int prefillForwards;
        int prefillSamples;

        Counting(CudaDecoder d) {
            this.d = d;
        }

        @Override
        public ModelConfig config() {
            return d.config();
        }

        @Override
        public CudaSequence open(int capacity) {
            return d.open(capacity);
        }

        @Override
        public boolean fitsEver(int capacity) {
            return d.fitsEver(capacity);
        }

        @Override
        public float[][][] forward(List<CudaSequence> seqs, int[][] tokens, int[] logitsLast,
                                  SparsityPolicy policy) {
            if (seqs.get(0).length() == 0) {
                prefillForwards++;
            }
            return d.forward(seqs, tokens, logitsLast, policy);
        }

        @Override
        public int[] prefillSample(List<CudaSequence> seqs, int[][] tokens,
                                   SparsityPolicy policy, SamplingParams[] params, long[] seeds,
                                   int[] steps, double[] logprobs) {
            int[] ids = d.prefillSample(seqs, tokens, policy, params, seeds, steps, logprobs);
            prefillSamples += ids == null ? 0 : 1;
            return ids;
        }

        @Override
        public int[] decodeSample(List<CudaSequence> seqs, int[] tokens, SparsityPolicy policy,
                                  SamplingParams[] params, long[] seeds, int[] steps,
                                  double[] logprobs) {
            return d.decodeSample(seqs, tokens, policy, params, seeds, steps, logprobs);
        }

        @Override
        public void close(CudaSequence seq) {
            d.close(seq);
        }
    }

    /**
     * Through the Generator with continuous batching: greedy rows that need no top-logprob
     * alternatives are prefilled and sampled on the device; asking for one alternative keeps
     * every call on host logits. Both give the same tokens (the argmax of the same logits, bit
     * for bit) and log-probabilities within the fp32 bound, and the same prefill statistics.
     */
    @Test
    void generatorSamplesPromptsOnTheDevice() {
        Golden g = Golden.load("tiny-llama");
        Checkpoint ckpt = Checkpoint.open(g.modelDir());
        ModelConfig c = ckpt.config();
        int[] longP = longPrompt("tiny-llama", g, c, 300);
        List<GenerationRequest> device = new ArrayList<>();
        List<GenerationRequest> host = new ArrayList<>();
        for (int i = 0; i < 9; i++) {
            int len = i == 4 ? longP.length : 1 + (i * 37) % 90;
            int[] p = Arrays.copyOfRange(longP, i == 4 ? 0 : 1 + i, (i == 4 ? 0 : 1 + i) + len);
            int max = 4 + i % 5;
            device.add(new GenerationRequest(p, new SamplingParams(0.0, 1.0, -1, max, List.of(),
                    0, 1, 0), 100 + i));
            host.add(new GenerationRequest(p, new SamplingParams(0.0, 1.0, -1, max, List.of(),
                    0, 1, 1), 100 + i));
        }
        try (CudaDecoder gpu = decoder(ckpt, 128, 4, 8)) {
            Counting dc = new Counting(gpu);
            Engine.Result<GenerationResult> a = new Generator<>(dc, null, 4).generate(device,
                    SparsityPolicy.DENSE);
            Counting hc = new Counting(gpu);
            Engine.Result<GenerationResult> b = new Generator<>(hc, null, 4).generate(host,
                    SparsityPolicy.DENSE);
            assertEquals(0, dc.prefillForwards, "no prompt took host logits");
            assertTrue(dc.prefillSamples >= 3, "prompts admitted over several calls: "
                    + dc.prefillSamples);
            assertEquals(0, hc.prefillSamples, "top-logprob rows stay on host logits");
            assertEquals(dc.prefillSamples, hc.prefillForwards);
            for (int i = 0; i < device.size(); i++) {
                GenerationResult x = a.results().get(i);
                GenerationResult y = b.results().get(i);
                assertNull(x.error());
                assertArrayEquals(y.tokens(), x.tokens(), "row " + i);
                for (int s = 0; s < x.tokens().length; s++) {
                    double want = y.logprobs()[s];
                    assertEquals(want, x.logprobs()[s], LP_ATOL + LP_RTOL * Math.abs(want),
                            "row " + i + " step " + s);
                }
            }
            assertEquals(device.stream().mapToLong(q -> q.promptIds().length).sum(),
                    a.stats().prefillTokens());
            assertEquals(b.stats().prefillTokens(), a.stats().prefillTokens());
            assertEquals(b.stats().decodeTokens(), a.stats().decodeTokens());
            assertEquals(b.stats().forwardCalls(), a.stats().forwardCalls());
            assertTrue(a.stats().prefillNanos() > 0);
            assertEquals(gpu.numBlocks(), gpu.freeBlocks(), "every KV block is back");
        }
    }
}
