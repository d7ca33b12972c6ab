package org.polarspark.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.polarspark.cpu.CpuDecoder;
import org.polarspark.cpu.CpuKvCache;
import org.polarspark.cpu.CpuWeights;
import org.polarspark.model.Checkpoint;
import org.polarspark.model.ModelConfig;
import org.polarspark.polar.SparsityPolicy;
import org.polarspark.testutil.Golden;

/**
 * Which path the {@link Generator} takes for prompts and decode steps (backend sampling through
 * {@link BatchDecoder#prefillSample} / {@link BatchDecoder#decodeSample}, or host logits and
 * {@link Sampler}), and that a row's results and the statistics do not depend on it. The
 * "backend" here is the CPU decoder whose optional sampling methods sample its own logits with
 * the host sampler at the seed and step they are given: any difference from the host path is a
 * wrong seed, step, parameter, row order or statistic in the Generator.
 */
class GeneratorDeviceSamplingTest {
    static CpuDecoder cpu;

    @BeforeAll
    static void load() {
        cpu = new CpuDecoder(CpuWeights.load(Checkpoint.open(Golden.load("llama3-gqa")
                .modelDir())));
    }

    /** The CPU decoder, optionally sampling on the "backend", counting which path ran. */
    static final class RecordingDecoder implements BatchDecoder<CpuKvCache> {
        final boolean samplesPrefill;
        final boolean samplesDecode;
        int prefillForwards;
        int decodeForwards;
        int prefillSamples;
        int decodeSamples;
        final List<Integer> prefillSteps = new ArrayList<>();

        RecordingDecoder(boolean samplesPrefill, boolean samplesDecode) {
            this.samplesPrefill = samplesPrefill;
            this.samplesDecode = samplesDecode;
        }

        @Override
        public ModelConfig config() {
            return cpu.config();
        }

        @Override
        public CpuKvCache open(int capacity) {
            return cpu.newCache(capacity);
        }

        @Override
        public boolean fitsEver(int capacity) {
            return capacity <= cpu.config().maxPositions();
        }

        @Override
        public float[][][] forward(List<CpuKvCache> seqs, int[][] tokens, int[] logitsLast,
                                  SparsityPolicy policy) {
            // The Generator never mixes prompts and decode steps in one call.
            if (seqs.get(0).length() == 0) {
                prefillForwards++;
            } else {
                decodeForwards++;
            }
            return run(seqs, tokens, logitsLast, policy);
        }

        private float[][][] run(List<CpuKvCache> seqs, int[][] tokens, int[] logitsLast,
                                SparsityPolicy policy) {
            return cpu.forward(seqs.toArray(new CpuKvCache[0]), tokens, policy, logitsLast,
                    org.polarspark.cpu.DecoderObserver.NONE);
        }

        private int[] sampleLast(List<CpuKvCache> seqs, int[][] tokens, SparsityPolicy policy,
                                 SamplingParams[] params, long[] seeds, int[] steps,
                                 double[] logprobs) {
            int[] last = new int[seqs.size()];
            java.util.Arrays.fill(last, 1);
            float[][][] logits = run(seqs, tokens, last, policy);
            int[] ids = new int[seqs.size()];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = Sampler.sample(logits[i][0], params[i], seeds[i], steps[i]);
                logprobs[i] = Sampler.logProb(logits[i][0], ids[i]);
            }
            return ids;
        }

        @Override
        public int[] prefillSample(List<CpuKvCache> seqs, int[][] tokens, SparsityPolicy policy,
                                   SamplingParams[] params, long[] seeds, int[] steps,
                                   double[] logprobs) {
            if (!samplesPrefill) {
                return null;
            }
            for (CpuKvCache s : seqs) {
                assertEquals(0, s.length(), "prefillSample is given fresh sequences");
            }
            prefillSamples++;
            for (int st : steps) {
                prefillSteps.add(st);
            }
            return sampleLast(seqs, tokens, policy, params, seeds, steps, logprobs);
        }

        @Override
        public int[] decodeSample(List<CpuKvCache> seqs, int[] tokens, SparsityPolicy policy,
                                  SamplingParams[] params, long[] seeds, int[] steps,
                                  double[] logprobs) {
            if (!samplesDecode) {
                return null;
            }
            decodeSamples++;
            int[][] t = new int[tokens.length][];
            for (int i = 0; i < t.length; i++) {
                t[i] = new int[] {tokens[i]};
            }
            return sampleLast(seqs, t, policy, params, seeds, steps, logprobs);
        }

        @Override
        public void close(CpuKvCache seq) {
            // heap memory
        }
    }

    /** Mixed prompts (1 to 40 tokens) and settings: greedy, temperature, top-k, top-p. */
    static List<GenerationRequest> requests(Integer logprobsOfRow3) {
        SamplingParams[] ps = {
            new SamplingParams(0.0, 1.0, -1, 6, List.of(), 0, 1, null),
            new SamplingParams(0.8, 0.9, 40, 9, List.of(), 0, 1, 0),
            new SamplingParams(1.0, 1.0, -1, 1, List.of(), 0, 1, 0), // ends at its first token
            new SamplingParams(0.7, 1.0, 5, 12, List.of(), 0, 1, logprobsOfRow3),
            new SamplingParams(1.2, 0.5, -1, 7, List.of(), 0, 1, null),
            new SamplingParams(1.0, 0.95, -1, 10, List.of(), 0, 1, 0),
            new SamplingParams(0.0, 1.0, -1, 3, List.of(), 0, 1, 0),
        };
        List<GenerationRequest> out = new ArrayList<>();
        for (int i = 0; i < ps.length; i++) {
            int len = 1 + (i * 13) % 40;
            int[] p = new int[len];
            for (int j = 0; j < len; j++) {
                p[j] = 3 + (i * 131 + j * 17) % 500;
            }
            out.add(new GenerationRequest(p, ps[i], 5000 + 31L * i));
        }
        return out;
    }

    static void assertSameResults(Engine.Result<GenerationResult> want,
                                  Engine.Result<GenerationResult> got, String what) {
        for (int r = 0; r < want.results().size(); r++) {
            GenerationResult x = want.results().get(r);
            GenerationResult y = got.results().get(r);
            assertNull(y.error(), what + " row " + r);
            assertArrayEquals(x.tokens(), y.tokens(), what + " row " + r + " tokens");
            assertArrayEquals(x.logprobs(), y.logprobs(), what + " row " + r + " logprobs");
            assertEquals(x.cumulativeLogprob(), y.cumulativeLogprob(), what + " row " + r);
            assertEquals(x.finishReason(), y.finishReason(), what + " row " + r);
            assertEquals(x.topIds() == null, y.topIds() == null, what + " row " + r);
            if (x.topIds() != null) {
                assertArrayEquals(x.topIds(), y.topIds(), what + " row " + r + " top ids");
                assertArrayEquals(x.topLogprobs(), y.topLogprobs(), what + " row " + r);
            }
        }
        EngineStats a = want.stats();
        EngineStats b = got.stats();
        assertEquals(a.prefillTokens(), b.prefillTokens(), what + ": prefill tokens");
        assertEquals(a.decodeTokens(), b.decodeTokens(), what + ": generated tokens");
        assertEquals(a.forwardCalls(), b.forwardCalls(), what + ": calls");
        assertEquals(a.maxBatchRows(), b.maxBatchRows(), what + ": batch rows");
        assertTrue(b.prefillNanos() > 0 && b.decodeNanos() > 0, what + ": times are measured");
    }

    /**
     * With continuous batching over 3 slots, every prefill call is sampled by the backend when
     * it can (step 0 for every row), and each row's tokens, log-probabilities and the
     * statistics equal the host path's, whichever of the two calls the backend samples.
     */
    @Test
    void backendSampledPrefillGivesTheHostPathsResults() {
        List<GenerationRequest> reqs = requests(null);
        RecordingDecoder host = new RecordingDecoder(false, false);
        var want = new Generator<>(host, null, 3).generate(reqs, SparsityPolicy.DENSE);
        assertTrue(host.prefillForwards >= 3, "several prefill calls: " + host.prefillForwards);
        assertEquals(reqs.stream().mapToLong(q -> q.promptIds().length).sum(),
                want.stats().prefillTokens());
        assertEquals(want.results().stream().mapToLong(g -> g.tokens().length).sum(),
                want.stats().decodeTokens(), "every generated token is counted once");

        for (boolean decodeToo : new boolean[] {false, true}) {
            RecordingDecoder dev = new RecordingDecoder(true, decodeToo);
            var got = new Generator<>(dev, null, 3).generate(reqs, SparsityPolicy.DENSE);
            String what = decodeToo ? "prefill and decode on the backend" : "prefill on the "
                    + "backend";
            assertSameResults(want, got, what);
            assertEquals(0, dev.prefillForwards, what + ": no prompt took host logits");
            assertEquals(host.prefillForwards, dev.prefillSamples, what);
            assertEquals(reqs.size(), dev.prefillSteps.size(), what + ": one row per prompt");
            assertTrue(dev.prefillSteps.stream().allMatch(s -> s == 0),
                    what + ": the first token is sampler step 0: " + dev.prefillSteps);
            assertEquals(host.decodeForwards, dev.decodeForwards + dev.decodeSamples, what);
            assertEquals(decodeToo ? 0 : host.decodeForwards, dev.decodeForwards, what);
        }
    }

    /**
     * A row that wants top-logprob alternatives needs its logits on the host: a call holding it
     * is prefilled through forward, the others are not, and results are unchanged.
     */
    @Test
    void rowsWantingTopLogprobsKeepHostLogits() {
        List<GenerationRequest> reqs = requests(2);
        RecordingDecoder host = new RecordingDecoder(false, false);
        var want = new Generator<>(host, null, 3).generate(reqs, SparsityPolicy.DENSE);
        RecordingDecoder dev = new RecordingDecoder(true, true);
        var got = new Generator<>(dev, null, 3).generate(reqs, SparsityPolicy.DENSE);
        assertSameResults(want, got, "top logprobs");
        GenerationResult top = got.results().get(3);
        assertNotNull(top.topIds());
        assertEquals(top.tokens().length, top.topIds().length);
        assertEquals(2, top.topIds()[0].length);
        assertTrue(dev.prefillForwards >= 1, "the call with row 3 prefilled on the host");
        assertTrue(dev.prefillSamples >= 1, "calls without it sampled on the backend");
        assertEquals(host.prefillForwards, dev.prefillForwards + dev.prefillSamples);

        // All rows in one call: one host prefill, no backend prefill.
        var wantAll = new Generator<>(new RecordingDecoder(false, false), null, reqs.size())
                .generate(reqs, SparsityPolicy.DENSE);
        RecordingDecoder one = new RecordingDecoder(true, true);
        var all = new Generator<>(one, null, reqs.size()).generate(reqs, SparsityPolicy.DENSE);
        assertSameResults(wantAll, all, "one batch with top logprobs");
        assertEquals(1, one.prefillForwards);
        assertEquals(0, one.prefillSamples);
    }
}
