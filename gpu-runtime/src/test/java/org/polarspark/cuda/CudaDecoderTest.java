package org.polarspark.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.polarspark.cpu.CpuDecoder;
import org.polarspark.cpu.CpuKvCache;
import org.polarspark.cpu.CpuWeights;
import org.polarspark.generate.GenerationRequest;
import org.polarspark.generate.GenerationResult;
import org.polarspark.generate.Generator;
import org.polarspark.generate.Sampler;
import org.polarspark.generate.SamplingParams;
import org.polarspark.generate.TokenScores;
import org.polarspark.model.Checkpoint;
import org.polarspark.polar.SparsityPolicy;
import org.polarspark.testutil.Golden;

/**
 * The CUDA decoder end to end against the CPU reference, on every golden checkpoint (random
 * HF-initialised ones and the two trained bundled models). The teacher-forced logits and the
 * greedy tokens are checked in both element types (bf16 and fp16 images).
 */
class CudaDecoderTest extends GpuTest {
    /**
     * Max |gpu - cpu| over the vocabulary, relative to max |cpu|, at every step. bf16 weights
     * and activations carry ~2^-8 relative rounding per value; through a few layers that grows to
     * about 1%, so 2e-2 is the bound. fp16 rounds 8x finer (2^-11) and is held to the
     * same bound (the issue's); the golden models' activations stay far inside its range.
     */
    static final double LOGIT_REL_TOL = 2e-2;
    static final int STEPS = 64;

    static Stream<String> models() {
        return Golden.names();
    }

    /** (element type, golden model name) for every pair. */
    static Stream<org.junit.jupiter.params.provider.Arguments> modelsInEveryDtype() {
        return everyDtype(Golden.names().map(org.junit.jupiter.params.provider.Arguments::of));
    }

    private static CudaDecoder cudaDecoder(Checkpoint ckpt, long kvBytes) {
        return cudaDecoder(CudaDtype.BF16, ckpt, kvBytes);
    }

    private static CudaDecoder cudaDecoder(CudaDtype dt, Checkpoint ckpt, long kvBytes) {
        return new CudaDecoder(ctx, kernels(dt), alloc, ckpt, 256, 8, kvBytes);
    }

    private static long kvFor(Checkpoint ckpt, int sequences) {
        var c = ckpt.config();
        long perBlock = 2L * c.numLayers() * c.kvDim() * CudaDecoder.BLOCK_SIZE * 2;
        return perBlock * sequences * ((c.maxPositions() + 15) / 16);
    }

    static double relErr(float[] cpu, float[] gpu) {
        double max = 0;
        double err = 0;
        for (int i = 0; i < cpu.length; i++) {
            max = Math.max(max, Math.abs(cpu[i]));
            err = Math.max(err, Math.abs(cpu[i] - gpu[i]));
        }
        return err / max;
    }

    /** Teacher-forced: both decoders see the CPU's greedy tokens; logits compared each step. */
    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("modelsInEveryDtype")
    void teacherForcedLogitsMatchTheCpu(CudaDtype dt, String name) {
        Golden g = Golden.load(name);
        Checkpoint ckpt = Checkpoint.open(g.modelDir());
        CpuDecoder cpu = new CpuDecoder(CpuWeights.load(ckpt));
        int[] prompt = g.cases().get(g.cases().size() - 1).inputIds();
        int steps = Math.min(STEPS, ckpt.config().maxPositions() - prompt.length - 1);
        try (CudaDecoder gpu = cudaDecoder(dt, ckpt, kvFor(ckpt, 2))) {
            CpuKvCache cc = cpu.newCache(prompt.length + steps + 1);
            CudaSequence gs = gpu.open(prompt.length + steps + 1);
            float[] cl = cpu.forward(new CpuKvCache[] {cc}, new int[][] {prompt},
                    SparsityPolicy.DENSE, false)[0][0];
            float[] gl = gpu.forward(List.of(gs), new int[][] {prompt}, new int[] {1},
                    SparsityPolicy.DENSE)[0][0];
            double worst = 0;
            for (int s = 0; s <= steps; s++) {
                double e = relErr(cl, gl);
                worst = Math.max(worst, e);
                assertTrue(e <= LOGIT_REL_TOL, String.format("%s %s step %d: relative logit "
                        + "error %.4f > %.3f", dt.wire(), name, s, e, LOGIT_REL_TOL));
                if (s == steps) {
                    break;
                }
                int next = Sampler.argmax(cl);
                cl = cpu.forward(new CpuKvCache[] {cc}, new int[][] {{next}},
                        SparsityPolicy.DENSE, false)[0][0];
                gl = gpu.forward(List.of(gs), new int[][] {{next}}, new int[] {1},
                        SparsityPolicy.DENSE)[0][0];
            }
            System.out.printf("[gpu] %s %s: %d teacher-forced steps, worst relative logit "
                    + "error %.5f%n", dt.wire(), name, steps, worst);
            gpu.close(gs);
        }
    }

    /**
     * Scoring on the device (the log-probability and greedy flag of given tokens; no logits leave
     * it) against the host's log-softmax of the same decoder's logits for the same tokens: three
     * prompts of different lengths with several scored positions each, in pieces of at most 16
     * tokens, then one-token steps (the captured decode step). Targets alternate between each
     * position's argmax and a random token; out-of-vocabulary targets are refused, naming them.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void deviceScoresMatchTheHostOnTheSameLogits(String name) {
        Golden g = Golden.load(name);
        Checkpoint ckpt = Checkpoint.open(g.modelDir());
        int vocab = ckpt.config().vocabSize();
        int[] base = g.cases().get(g.cases().size() - 1).inputIds();
        int rows = 3;
        int steps = 4;
        int[][] prompts = new int[rows][];
        int[] last = new int[rows];
        for (int r = 0; r < rows; r++) {
            prompts[r] = java.util.Arrays.copyOf(base, Math.max(2, base.length - 3 * r));
            last[r] = Math.min(prompts[r].length, 1 + 2 * r);
        }
        Random rnd = new Random(5);
        try (CudaDecoder gpu = new CudaDecoder(ctx, kernels, alloc, ckpt, 16, 8,
                kvFor(ckpt, 2 * rows))) {
            List<CudaSequence> a = new ArrayList<>();
            List<CudaSequence> b = new ArrayList<>();
            for (int r = 0; r < rows; r++) {
                a.add(gpu.open(prompts[r].length + steps));
                b.add(gpu.open(prompts[r].length + steps));
            }
            float[][][] logits = gpu.forward(a, prompts, last, SparsityPolicy.DENSE);
            int[][] targets = new int[rows][];
            for (int r = 0; r < rows; r++) {
                targets[r] = new int[last[r]];
                for (int i = 0; i < last[r]; i++) {
                    targets[r][i] = (r + i) % 2 == 0 ? Sampler.argmax(logits[r][i])
                            : rnd.nextInt(vocab);
                }
            }
            int[][] bad = {targets[0], {vocab}, targets[2]};
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> gpu.score(b, prompts, bad, SparsityPolicy.DENSE));
            assertTrue(e.getMessage().contains("row 1 position 0"), e.getMessage());
            int[][] feedB = prompts; // what b runs: the tokens a ran before its logits
            for (int s = 0; s <= steps; s++) {
                TokenScores want = TokenScores.fromLogits(logits, targets);
                TokenScores got = gpu.score(b, feedB, targets, SparsityPolicy.DENSE);
                for (int r = 0; r < rows; r++) {
                    for (int i = 0; i < targets[r].length; i++) {
                        String at = name + " step " + s + " row " + r + " position " + i;
                        assertEquals(want.logprob()[r][i], got.logprob()[r][i],
                                1e-4 + 1e-5 * Math.abs(want.logprob()[r][i]), at);
                        assertEquals(want.greedy()[r][i], got.greedy()[r][i], at + " greedy");
                    }
                }
                if (s == steps) {
                    break;
                }
                int[][] feed = new int[rows][];
                for (int r = 0; r < rows; r++) {
                    feed[r] = new int[] {targets[r][targets[r].length - 1]};
                }
                logits = gpu.forward(a, feed, new int[] {1, 1, 1}, SparsityPolicy.DENSE);
                for (int r = 0; r < rows; r++) {
                    targets[r] = new int[] {(r + s) % 2 == 0 ? Sampler.argmax(logits[r][0])
                            : rnd.nextInt(vocab)};
                }
                feedB = feed;
            }
            for (int r = 0; r < rows; r++) {
                gpu.close(a.get(r));
                gpu.close(b.get(r));
            }
        }
    }

    /**
     * The fused decode path (split-K partials reduced together with the residual add and the
     * next norm, or with RoPE and the K/V append) gives exactly the bits of the unfused kernels,
     * for prefill and decode pieces of three rows of different lengths.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void fusedDecodeHasTheBitsOfTheUnfusedPath(String name) {
        Golden g = Golden.load(name);
        Checkpoint ckpt = Checkpoint.open(g.modelDir());
        int[] base = g.cases().get(g.cases().size() - 1).inputIds();
        int[][] prompts = new int[3][];
        for (int r = 0; r < 3; r++) {
            prompts[r] = java.util.Arrays.copyOf(base, Math.max(1, base.length - 2 * r));
        }
        int steps = 12;
        float[][][][] logits = new float[2][][][];
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) {
                System.setProperty("polar.decode.unfused", "true");
            }
            try (CudaDecoder gpu = cudaDecoder(ckpt, kvFor(ckpt, 4))) {
                List<CudaSequence> seqs = new java.util.ArrayList<>();
                for (int[] p : prompts) {
                    seqs.add(gpu.open(p.length + steps + 1));
                }
                logits[pass] = new float[steps + 1][][];
                float[][][] out = gpu.forward(seqs, prompts, new int[] {1, 1, 1},
                        SparsityPolicy.DENSE);
                logits[pass][0] = new float[][] {out[0][0], out[1][0], out[2][0]};
                for (int s = 1; s <= steps; s++) {
                    int[][] next = new int[3][];
                    for (int r = 0; r < 3; r++) {
                        // Both passes follow the fused pass's tokens.
                        next[r] = new int[] {Sampler.argmax(logits[0][s - 1][r])};
                    }
                    out = gpu.forward(seqs, next, new int[] {1, 1, 1}, SparsityPolicy.DENSE);
                    logits[pass][s] = new float[][] {out[0][0], out[1][0], out[2][0]};
                }
                for (CudaSequence q : seqs) {
                    gpu.close(q);
                }
            } finally {
                System.clearProperty("polar.decode.unfused");
            }
        }
        for (int s = 0; s <= steps; s++) {
            for (int r = 0; r < 3; r++) {
                assertTrue(java.util.Arrays.equals(logits[0][s][r], logits[1][s][r]), name
                        + ": fused and unfused logits differ at step " + s + ", row " + r
                        + " (max |diff| " + maxAbsDiff(logits[0][s][r], logits[1][s][r]) + ")");
            }
        }
    }

    private static double maxAbsDiff(float[] a, float[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]));
        }
        return m;
    }

    /**
     * Free-running greedy decoding for 64 steps gives the CPU's tokens; a divergence is accepted
     * only at a step where the CPU's top-2 logit gap is within the logit error bound (the same
     * for bf16 and fp16).
     */
    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("modelsInEveryDtype")
    void greedyTokensMatchTheCpu(CudaDtype dt, String name) {
        Golden g = Golden.load(name);
        Checkpoint ckpt = Checkpoint.open(g.modelDir());
        CpuDecoder cpu = new CpuDecoder(CpuWeights.load(ckpt));
        for (Golden.Case c : g.cases()) {
            int[] prompt = c.inputIds();
            int steps = Math.min(STEPS, ckpt.config().maxPositions() - prompt.length - 1);
            try (CudaDecoder gpu = cudaDecoder(dt, ckpt, kvFor(ckpt, 2))) {
                CpuKvCache cc = cpu.newCache(prompt.length + steps + 1);
                CudaSequence gs = gpu.open(prompt.length + steps + 1);
                float[] cl = cpu.forward(new CpuKvCache[] {cc}, new int[][] {prompt},
                        SparsityPolicy.DENSE, false)[0][0];
                float[] gl = gpu.forward(List.of(gs), new int[][] {prompt}, new int[] {1},
                        SparsityPolicy.DENSE)[0][0];
                for (int s = 0; s < steps; s++) {
                    int ct = Sampler.argmax(cl);
                    int gt = Sampler.argmax(gl);
                    if (ct != gt) {
                        int[] top = Sampler.topK(cl, 2);
                        double gap = cl[top[0]] - cl[top[1]];
                        double max = 0;
                        for (float v : cl) {
                            max = Math.max(max, Math.abs(v));
                        }
                        double bound = 2 * LOGIT_REL_TOL * max;
                        System.out.printf("[gpu] %s %s: greedy diverged at step %d (cpu %d, gpu "
                                + "%d): cpu top-2 gap %.5f <= %s bound %.5f%n", dt.wire(), name, s,
                                ct, gt, gap, dt.wire(), bound);
                        assertTrue(gap <= bound, dt.wire() + " " + name + " step " + s
                                + ": tokens differ (cpu " + ct + ", gpu " + gt + ") but the CPU's "
                                + "top-2 gap " + gap + " exceeds the " + dt.wire()
                                + " error bound " + bound);
                        break;
                    }
                    cl = cpu.forward(new CpuKvCache[] {cc}, new int[][] {{ct}},
                            SparsityPolicy.DENSE, false)[0][0];
                    gl = gpu.forward(List.of(gs), new int[][] {{gt}}, new int[] {1},
                            SparsityPolicy.DENSE)[0][0];
                }
            }
        }
    }

    private static List<GenerationRequest> mixedRequests(int count, int maxTokens) {
        List<GenerationRequest> out = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            int len = 1 + (i * 37) % 90;
            int[] p = new int[len];
            p[0] = 1;
            for (int j = 1; j < len; j++) {
                p[j] = 3 + (i * 131 + j * 17) % 8000;
            }
            SamplingParams sp = new SamplingParams(0.7, 0.9, 50, maxTokens - i % 5, List.of(), 0,
                    1, null);
            out.add(new GenerationRequest(p, sp, 100 + i));
        }
        return out;
    }

    /** Continuous batching with mixed lengths: each row gets the tokens it gets alone. */
    @Test
    void continuousBatchingMatchesRunningAlone() {
        Checkpoint ckpt = Checkpoint.open(Golden.load("tiny-llama").modelDir());
        List<GenerationRequest> reqs = mixedRequests(11, 24);
        try (CudaDecoder gpu = cudaDecoder(ckpt, kvFor(ckpt, 8))) {
            List<GenerationResult> batched = new Generator<>(gpu, null, 4).generate(reqs,
                    SparsityPolicy.DENSE).results();
            List<GenerationResult> alone = new Generator<>(gpu, null, 1).generate(reqs,
                    SparsityPolicy.DENSE).results();
            for (int i = 0; i < reqs.size(); i++) {
                assertNull(batched.get(i).error());
                assertArrayEquals(alone.get(i).tokens(), batched.get(i).tokens(), "row " + i);
            }
            assertEquals(gpu.numBlocks(), gpu.freeBlocks(), "every KV block is back in the pool");
        }
    }

    /**
     * A KV cache too small for the whole batch at once: rows wait for blocks, all finish with
     * the tokens they get alone, and a row that can never fit is a per-row error.
     */
    @Test
    void smallKvCacheAdmitsByFreeBlocksWithoutOom() {
        Checkpoint ckpt = Checkpoint.open(Golden.load("tiny-opt").modelDir());
        var c = ckpt.config();
        long perBlock = 2L * c.numLayers() * c.kvDim() * CudaDecoder.BLOCK_SIZE * 2;
        List<GenerationRequest> reqs = new ArrayList<>(mixedRequests(9, 20));
        // capacity ~ prompt + 20 <= 110 tokens = 7 blocks; 16 blocks hold two rows at a time
        int[] huge = new int[300];
        huge[0] = 1;
        reqs.add(new GenerationRequest(huge, SamplingParams.greedy(100), 7)); // 25 blocks: never
        try (CudaDecoder small = cudaDecoder(ckpt, perBlock * 16);
             CudaDecoder big = cudaDecoder(ckpt, kvFor(ckpt, 8))) {
            assertEquals(16, small.numBlocks());
            List<GenerationResult> tight = new Generator<>(small, null, 8).generate(reqs,
                    SparsityPolicy.DENSE).results();
            List<GenerationResult> roomy = new Generator<>(big, null, 1).generate(
                    reqs.subList(0, 9), SparsityPolicy.DENSE).results();
            for (int i = 0; i < 9; i++) {
                assertNull(tight.get(i).error(), "row " + i);
                assertArrayEquals(roomy.get(i).tokens(), tight.get(i).tokens(), "row " + i);
            }
            assertNotNull(tight.get(9).error());
            assertTrue(tight.get(9).error().contains("KV"), tight.get(9).error());
            assertEquals(16, small.freeBlocks());
        }
    }

    /**
     * Polar decode steps on the GPU (routers select KV groups on the device) against the CPU
     * reference running the very same selections as masks: logits within the bf16 tolerance at
     * every step; every token keeps exactly the configured number of groups, distinct.
     */
    @ParameterizedTest(name = "{0}")
    @org.junit.jupiter.params.provider.ValueSource(strings = {"tiny-opt", "tiny-llama",
        "llama3-gqa"})
    void polarDecodeMatchesCpuMasksOfTheSameSelection(String name) {
        Golden g = Golden.load(name);
        Checkpoint ckpt = Checkpoint.open(g.modelDir());
        var c = ckpt.config();
        CpuDecoder cpu = new CpuDecoder(CpuWeights.load(ckpt));
        int groups = c.numKvHeads();
        int keep = Math.max(1, groups / 2);
        java.util.Random r = new java.util.Random(5);
        float[][] w = new float[c.numLayers()][];
        float[][] b = new float[c.numLayers()][];
        int[] kept = new int[c.numLayers()];
        for (int l = 0; l < c.numLayers(); l++) {
            kept[l] = l == 0 ? groups : keep;
            w[l] = random(r, groups * c.hiddenSize(), 1.0);
            b[l] = random(r, groups, 0.5);
        }
        int[][] prompts = {g.cases().get(0).inputIds(), g.cases().get(1).inputIds()};
        int steps = 12;
        try (CudaDecoder gpu = cudaDecoder(ckpt, kvFor(ckpt, 2));
             DeviceRouters routers = DeviceRouters.upload(gpu, w, b, kept)) {
            List<CudaSequence> gs = new ArrayList<>();
            CpuKvCache[] cc = new CpuKvCache[prompts.length];
            for (int i = 0; i < prompts.length; i++) {
                gs.add(gpu.open(prompts[i].length + steps + 1));
                cc[i] = cpu.newCache(prompts[i].length + steps + 1);
            }
            // Dense prefill on both, as deployed.
            float[][][] cl = cpu.forward(cc, prompts, SparsityPolicy.DENSE, false);
            gpu.forward(gs, prompts, new int[] {1, 1}, SparsityPolicy.DENSE);
            double worst = 0;
            for (int s = 0; s < steps; s++) {
                int[][] next = new int[prompts.length][];
                for (int i = 0; i < prompts.length; i++) {
                    next[i] = new int[] {Sampler.argmax(cl[i][0])};
                }
                float[][][] gl = gpu.forward(gs, next, new int[] {1, 1}, routers);
                boolean[][][] masks = new boolean[c.numLayers()][][];
                for (int l = 1; l < c.numLayers(); l++) {
                    int[][] table = gpu.lastGroupTable(l, prompts.length, keep);
                    masks[l] = new boolean[prompts.length][groups];
                    for (int i = 0; i < prompts.length; i++) {
                        for (int q : table[i]) {
                            assertTrue(q >= 0 && q < groups, "group id " + q);
                            assertTrue(!masks[l][i][q], "group " + q + " chosen twice");
                            masks[l][i][q] = true;
                        }
                    }
                }
                SparsityPolicy replay = new SparsityPolicy() {
                    @Override
                    public boolean[] selectGroups(int layer, int row, int position, float[] x,
                                                  int offset) {
                        return masks[layer] == null ? null : masks[layer][row];
                    }
                };
                cl = cpu.forward(cc, next, replay, false);
                for (int i = 0; i < prompts.length; i++) {
                    double e = relErr(cl[i][0], gl[i][0]);
                    worst = Math.max(worst, e);
                    assertTrue(e <= LOGIT_REL_TOL, name + " step " + s + " row " + i
                            + ": relative logit error " + e);
                }
            }
            System.out.printf("[gpu] %s Polar (%d of %d groups): %d steps, worst relative logit "
                    + "error %.5f%n", name, keep, groups, steps, worst);
            for (CudaSequence q : gs) {
                gpu.close(q);
            }
        }
    }

    /**
     * Polar with the sparse MLP (OPT): fc2 stored neuron-major (dense prefill then runs the
     * [K, N] GEMM and must still match the CPU), heads and neurons chosen on the device, and the
     * CPU reference replaying exactly those groups and neurons as masks.
     */
    @Test
    void polarSparseMlpMatchesCpuMasksOfTheSameSelection() {
        Golden g = Golden.load("tiny-opt");
        Checkpoint ckpt = Checkpoint.open(g.modelDir());
        var c = ckpt.config();
        CpuDecoder cpu = new CpuDecoder(CpuWeights.load(ckpt));
        int groups = c.numKvHeads();
        int keep = groups / 2;
        int rank = 32;
        int kept = 256; // of 768 neurons
        java.util.Random r = new java.util.Random(11);
        float[][] w = new float[c.numLayers()][];
        float[][] b = new float[c.numLayers()][];
        float[][] down = new float[c.numLayers()][];
        float[][] up = new float[c.numLayers()][];
        int[] keptGroups = new int[c.numLayers()];
        int[][] table = new int[c.numLayers()][];
        for (int l = 0; l < c.numLayers(); l++) {
            keptGroups[l] = l == 0 ? groups : keep;
            w[l] = random(r, groups * c.hiddenSize(), 1.0);
            b[l] = random(r, groups, 0.5);
            down[l] = random(r, rank * c.hiddenSize(), 0.2);
            up[l] = random(r, c.ffnDim() * rank, 0.2);
            table[l] = new int[] {kept, kept};
        }
        int[][] prompts = {g.cases().get(0).inputIds(), g.cases().get(1).inputIds()};
        int steps = 8;
        try (CudaDecoder gpu = new CudaDecoder(ctx, kernels, alloc, ckpt, 256, 8, kvFor(ckpt, 2),
                true); DeviceRouters routers = DeviceRouters.upload(gpu, w, b, keptGroups)) {
            routers.attachMlp(gpu, down, up, rank, new int[] {1, 8}, table, false, 0);
            assertEquals(kept, routers.mlpK(1, 2));
            List<CudaSequence> gs = new ArrayList<>();
            CpuKvCache[] cc = new CpuKvCache[prompts.length];
            for (int i = 0; i < prompts.length; i++) {
                gs.add(gpu.open(prompts[i].length + steps + 1));
                cc[i] = cpu.newCache(prompts[i].length + steps + 1);
            }
            float[][][] cl = cpu.forward(cc, prompts, SparsityPolicy.DENSE, false);
            float[][][] pl = gpu.forward(gs, prompts, new int[] {1, 1}, SparsityPolicy.DENSE);
            for (int i = 0; i < prompts.length; i++) {
                assertTrue(relErr(cl[i][0], pl[i][0]) <= LOGIT_REL_TOL, "dense prefill with a "
                        + "neuron-major fc2, row " + i + ": " + relErr(cl[i][0], pl[i][0]));
            }
            double worst = 0;
            for (int s = 0; s < steps; s++) {
                int[][] next = new int[prompts.length][];
                for (int i = 0; i < prompts.length; i++) {
                    next[i] = new int[] {Sampler.argmax(cl[i][0])};
                }
                float[][][] gl = gpu.forward(gs, next, new int[] {1, 1}, routers);
                boolean[][][] gm = new boolean[c.numLayers()][][];
                boolean[][] nm = new boolean[c.numLayers()][];
                for (int l = 0; l < c.numLayers(); l++) {
                    if (l > 0) {
                        int[][] tab = gpu.lastGroupTable(l, prompts.length, keep);
                        gm[l] = new boolean[prompts.length][groups];
                        for (int i = 0; i < prompts.length; i++) {
                            for (int q : tab[i]) {
                                gm[l][i][q] = true;
                            }
                        }
                    }
                    int[] sel = gpu.lastNeuronSelection(routers, l, kept);
                    nm[l] = new boolean[c.ffnDim()];
                    for (int j = 0; j < kept; j++) {
                        assertTrue(j == 0 || sel[j] > sel[j - 1], "neurons in index order");
                        nm[l][sel[j]] = true;
                    }
                }
                SparsityPolicy replay = new SparsityPolicy() {
                    @Override
                    public boolean[] selectGroups(int layer, int row, int position, float[] x,
                                                  int offset) {
                        return gm[layer] == null ? null : gm[layer][row];
                    }

                    @Override
                    public boolean[] selectNeurons(int layer, float[] x, int tokens) {
                        return nm[layer];
                    }
                };
                cl = cpu.forward(cc, next, replay, false);
                for (int i = 0; i < prompts.length; i++) {
                    double e = relErr(cl[i][0], gl[i][0]);
                    worst = Math.max(worst, e);
                    assertTrue(e <= LOGIT_REL_TOL, "step " + s + " row " + i + ": " + e);
                }
            }
            System.out.printf("[gpu] tiny-opt Polar heads %d/%d + MLP %d/%d neurons: worst "
                    + "relative logit error %.5f%n", keep, groups, kept, c.ffnDim(), worst);
            for (CudaSequence q : gs) {
                gpu.close(q);
            }
        }
    }

    /**
     * The CUDA engine with Polar settings read from files beside the model, against the CPU
     * engine with the same files: routers whose bias fixes the choice (so bf16 and fp32 router
     * logits choose alike) give continuation log-likelihoods within the bf16 tolerance, in
     * decode-only and every-token modes, and both report the same active head fraction.
     */
    @Test
    void polarEngineMatchesTheCpuEngineWithTheSameRouterFiles(@org.junit.jupiter.api.io.TempDir
                                                              java.nio.file.Path tmp)
            throws java.io.IOException {
        java.nio.file.Path src = Golden.load("tiny-llama").modelDir();
        java.nio.file.Path dir = tmp.resolve("tiny-llama");
        java.nio.file.Files.createDirectories(dir);
        try (var files = java.nio.file.Files.list(src)) {
            for (java.nio.file.Path f : (Iterable<java.nio.file.Path>) files::iterator) {
                java.nio.file.Files.copy(f, dir.resolve(f.getFileName()));
            }
        }
        var c = Checkpoint.open(dir).config();
        var pc = org.polarspark.polar.PolarConfig.uniform(c, 0.5);
        pc.write(dir);
        int g = c.numKvHeads();
        float[][] hw = new float[c.numLayers()][];
        float[][] hb = new float[c.numLayers()][];
        for (int l = 0; l < c.numLayers(); l++) {
            hw[l] = new float[g * c.hiddenSize()]; // zero weights: the bias decides
            hb[l] = new float[g];
            for (int q = 0; q < g; q++) {
                hb[l][q] = (q + l) % g * 4f;
            }
        }
        new org.polarspark.polar.RouterWeights(pc, hw, hb, null, null).write(dir, pc);
        for (boolean every : new boolean[] {false, true}) {
            var settings = new org.polarspark.polar.PolarSettings(true, null, null, every);
            try (CudaEngine gpu = CudaEngine.load(dir, 0, 4, settings);
                 org.polarspark.cpu.CpuEngine cpu = org.polarspark.cpu.CpuEngine.load(dir, 4,
                         settings)) {
                var reqs = halfContextRequests("tiny-llama");
                var a = gpu.loglikelihood(reqs);
                var b = cpu.loglikelihood(reqs);
                for (int i = 0; i < reqs.size(); i++) {
                    double x = a.results().get(i).loglikelihood();
                    double y = b.results().get(i).loglikelihood();
                    assertTrue(Math.abs(x - y) <= 2e-2 * Math.abs(y) + 0.05, "every-token " + every
                            + " row " + i + ": gpu " + x + " cpu " + y);
                }
                assertEquals(b.stats().polar().headFraction(), a.stats().polar().headFraction(),
                        1e-12);
                assertEquals(b.stats().polar().headSelections(),
                        a.stats().polar().headSelections());
                assertTrue(a.stats().polar().routerNanos() > 0, "router time is measured");
                System.out.printf("[gpu] Polar engine (every token %s): head fraction %.3f, "
                        + "ll gpu %.4f cpu %.4f%n", every, a.stats().polar().headFraction(),
                        a.results().get(0).loglikelihood(), b.results().get(0).loglikelihood());
            }
        }
    }

    /**
     * The bundled tiny-opt with its shipped routers (heads and the MLP union top-k) through the
     * CUDA engine: the same log-likelihoods as the CPU engine with the same router files (within
     * bf16 rounding: a near-tie neuron or group may be chosen differently), and per-call Polar
     * statistics (head and MLP fractions, router time).
     */
    @Test
    void shippedTinyOptRoutersOnTheGpu() {
        java.nio.file.Path dir = Golden.repoRoot().resolve("datasets/models/tiny-opt");
        org.junit.jupiter.api.Assumptions.assumeTrue(java.nio.file.Files.exists(
                dir.resolve("polar/polar.json")), "no shipped routers under " + dir);
        var settings = new org.polarspark.polar.PolarSettings(true, null, null, false);
        try (CudaEngine gpu = CudaEngine.load(dir, 0, 4, settings);
             org.polarspark.cpu.CpuEngine cpu = org.polarspark.cpu.CpuEngine.load(dir, 4,
                     settings)) {
            var reqs = halfContextRequests("tiny-opt");
            var a = gpu.loglikelihood(reqs);
            var b = cpu.loglikelihood(reqs);
            for (int i = 0; i < reqs.size(); i++) {
                double x = a.results().get(i).loglikelihood();
                double y = b.results().get(i).loglikelihood();
                assertTrue(Math.abs(x - y) <= 3e-2 * Math.abs(y) + 0.1, "row " + i + ": gpu " + x
                        + " cpu " + y);
            }
            var p = a.stats().polar();
            assertEquals(b.stats().polar().headFraction(), p.headFraction(), 1e-12);
            assertTrue(p.routerNanos() > 0, "router time is measured");
            assertTrue(p.neuronsTotal() > 0 && p.mlpFraction() > 0 && p.mlpFraction() <= 1,
                    "MLP fraction " + p.mlpFraction());
            System.out.printf("[gpu] tiny-opt shipped routers: head fraction %.3f, MLP fraction "
                    + "%.3f (cpu %.3f), router time %.2f ms, ll gpu %.4f cpu %.4f%n",
                    p.headFraction(), p.mlpFraction(), b.stats().polar().mlpFraction(),
                    p.routerNanos() / 1e6, a.results().get(0).loglikelihood(),
                    b.results().get(0).loglikelihood());
        }
    }

    /** Each golden case of a model: the first half of its prompt, then its greedy tokens. */
    private static List<org.polarspark.generate.LoglikelihoodRequest> halfContextRequests(
            String model) {
        List<org.polarspark.generate.LoglikelihoodRequest> reqs = new ArrayList<>();
        for (Golden.Case gc : Golden.load(model).cases()) {
            int[] ids = gc.inputIds();
            int cut = Math.max(1, ids.length / 2);
            reqs.add(new org.polarspark.generate.LoglikelihoodRequest(
                    java.util.Arrays.copyOf(ids, cut), gc.greedyIds()));
        }
        return reqs;
    }

    /**
     * The engine frees everything it allocated (close() would throw listing leaks), in both
     * element types, and runs in the type it was asked for.
     */
    @ParameterizedTest(name = "{0}")
    @org.junit.jupiter.params.provider.EnumSource(CudaDtype.class)
    void engineClosesWithoutLeaks(CudaDtype dt) {
        try (CudaEngine e = CudaEngine.load(Golden.load("tiny-opt").modelDir(), 0, 4,
                org.polarspark.polar.PolarSettings.OFF, dt)) {
            assertEquals(dt, e.dtype());
            assertTrue(e.allocatedBytes() > 0);
            GenerationResult r = e.generate(List.of(new GenerationRequest(
                    e.tokenizer().encode("It was a truth"), SamplingParams.greedy(8), 1)))
                    .results().get(0);
            assertNull(r.error());
            assertTrue(r.tokens().length > 0);
        }
    }
}
