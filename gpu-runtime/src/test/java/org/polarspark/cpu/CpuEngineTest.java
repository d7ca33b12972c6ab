package org.polarspark.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.polarspark.generate.Engine;
import org.polarspark.generate.FinishReason;
import org.polarspark.generate.GenerationRequest;
import org.polarspark.generate.GenerationResult;
import org.polarspark.generate.LoglikelihoodRequest;
import org.polarspark.generate.LoglikelihoodResult;
import org.polarspark.generate.SamplingParams;
import org.polarspark.generate.Scoring;
import org.polarspark.testutil.Golden;

/** Generation and scoring on the CPU engine, checked against itself run differently. */
class CpuEngineTest {
    static CpuEngine batched;
    static CpuEngine alone;

    @BeforeAll
    static void load() {
        batched = CpuEngine.load(Golden.load("llama3-gqa").modelDir(), 3);
        alone = CpuEngine.load(Golden.load("llama3-gqa").modelDir(), 1);
    }

    @AfterAll
    static void close() {
        batched.close();
        alone.close();
    }

    static List<GenerationRequest> requests(SamplingParams p) {
        String[] texts = {"Emma", "It is a truth universally acknowledged", "She was not at all "
                + "surprised, but she was very much disappointed", "Anne", "Captain Wentworth "
                + "had no fortune"};
        List<GenerationRequest> out = new ArrayList<>();
        for (int i = 0; i < texts.length; i++) {
            out.add(new GenerationRequest(batched.tokenizer().encode(texts[i]), p, 1000 + i));
        }
        return out;
    }

    @Test
    void continuousBatchingGivesEachRowTheTokensItGetsAlone() {
        // Different max_tokens per row, so rows finish at different steps and slots are reused.
        List<GenerationRequest> reqs = new ArrayList<>();
        int i = 0;
        for (GenerationRequest q : requests(new SamplingParams(0.8, 0.95, 40, 8, List.of(), 0, 1,
                0))) {
            SamplingParams p = new SamplingParams(0.8, 0.95, 40, 3 + 4 * i++, List.of(), 0, 1, 0);
            reqs.add(new GenerationRequest(q.promptIds(), p, q.seed()));
        }
        Engine.Result<GenerationResult> a = batched.generate(reqs);
        Engine.Result<GenerationResult> b = alone.generate(reqs);
        assertEquals(3, a.stats().maxBatchRows());
        assertEquals(1, b.stats().maxBatchRows());
        for (int r = 0; r < reqs.size(); r++) {
            GenerationResult x = a.results().get(r);
            GenerationResult y = b.results().get(r);
            assertArrayEquals(y.tokens(), x.tokens(), "row " + r);
            assertArrayEquals(y.logprobs(), x.logprobs(), 1e-9, "row " + r);
            assertTrue(x.tokens().length <= reqs.get(r).params().maxTokens());
        }
        long generated = a.results().stream().mapToLong(g -> g.tokens().length).sum();
        assertEquals(generated, a.stats().decodeTokens());
    }

    @Test
    void seededSamplingIsReproducibleAndSeedsMatter() {
        SamplingParams p = new SamplingParams(1.0, 1.0, -1, 12, List.of(), 0, 1, null);
        List<GenerationRequest> reqs = requests(p);
        List<GenerationResult> a = batched.generate(reqs).results();
        List<GenerationResult> b = batched.generate(reqs).results();
        for (int r = 0; r < reqs.size(); r++) {
            assertArrayEquals(a.get(r).tokens(), b.get(r).tokens());
        }
        List<GenerationRequest> other = new ArrayList<>();
        for (GenerationRequest q : reqs) {
            other.add(new GenerationRequest(q.promptIds(), p, q.seed() + 77));
        }
        List<GenerationResult> c = batched.generate(other).results();
        int differ = 0;
        for (int r = 0; r < reqs.size(); r++) {
            differ += java.util.Arrays.equals(a.get(r).tokens(), c.get(r).tokens()) ? 0 : 1;
        }
        assertTrue(differ > 0, "changing every seed changed nothing");
        assertEquals(null, a.get(0).logprobs(), "logprobs were not asked for");
    }

    @Test
    void greedyLogprobsEqualLoglikelihoodOfTheContinuation() {
        SamplingParams p = new SamplingParams(0.0, 1.0, -1, 10, List.of(), 0, 1, 3);
        List<GenerationRequest> reqs = requests(p);
        List<GenerationResult> gen = batched.generate(reqs).results();
        List<LoglikelihoodRequest> ll = new ArrayList<>();
        for (int r = 0; r < reqs.size(); r++) {
            ll.add(new LoglikelihoodRequest(reqs.get(r).promptIds(), gen.get(r).tokens()));
        }
        List<LoglikelihoodResult> scored = batched.loglikelihood(ll).results();
        for (int r = 0; r < reqs.size(); r++) {
            GenerationResult g = gen.get(r);
            assertEquals(g.cumulativeLogprob(), scored.get(r).loglikelihood(), 1e-3, "row " + r);
            assertTrue(scored.get(r).isGreedy(), "greedy tokens must be greedy");
            assertEquals(g.tokens().length, g.topIds().length);
            for (int s = 0; s < g.tokens().length; s++) {
                // greedy: the sampled token is the most likely one
                assertEquals(g.tokens()[s], g.topIds()[s][0]);
                assertEquals(g.logprobs()[s], g.topLogprobs()[s][0], 1e-9);
                assertTrue(g.topLogprobs()[s][0] >= g.topLogprobs()[s][1]);
            }
        }
    }

    @Test
    void stopStringEndsGenerationAndIsCutFromTheText() {
        SamplingParams free = SamplingParams.greedy(24);
        GenerationRequest q = requests(free).get(1);
        GenerationResult full = batched.generate(List.of(q)).results().get(0);
        String text = full.text();
        assertTrue(text.length() > 6, "need some text to cut: '" + text + "'");
        String stop = text.substring(3, 6);
        int at = text.indexOf(stop);
        SamplingParams p = new SamplingParams(0.0, 1.0, -1, 24, List.of(stop), 0, 1, null);
        GenerationResult cut = batched.generate(List.of(new GenerationRequest(q.promptIds(), p,
                q.seed()))).results().get(0);
        assertEquals(FinishReason.STOP, cut.finishReason());
        assertEquals(stop, cut.stopReason());
        assertEquals(text.substring(0, at), cut.text());
        assertTrue(cut.tokens().length < full.tokens().length);
        assertEquals(FinishReason.LENGTH, full.finishReason());
    }

    @Test
    void rollingWindowsScoreEveryTokenOnceWithinTheContext() {
        int[] doc = new int[50];
        for (int i = 0; i < doc.length; i++) {
            doc[i] = 3 + (i * 37) % 400;
        }
        int maxLen = 16;
        List<LoglikelihoodRequest> w = Scoring.rollingWindows(doc, 1, maxLen);
        List<Integer> scored = new ArrayList<>();
        for (LoglikelihoodRequest q : w) {
            assertTrue(q.context().length + q.continuation().length - 1 <= maxLen);
            for (int t : q.continuation()) {
                scored.add(t);
            }
        }
        assertArrayEquals(doc, scored.stream().mapToInt(Integer::intValue).toArray());
        assertArrayEquals(new int[] {1}, w.get(0).context());
        // Later windows use the longest context that fits.
        for (int i = 1; i < w.size(); i++) {
            assertEquals(maxLen, w.get(i).context().length + w.get(i).continuation().length - 1);
        }
        double total = 0;
        for (LoglikelihoodResult r : batched.loglikelihood(w).results()) {
            total += r.loglikelihood();
            assertFalse(Double.isNaN(r.loglikelihood()));
        }
        assertTrue(total < 0);
    }

    @Test
    void contextContinuationSplitsLikeLmEval() {
        LoglikelihoodRequest q = Scoring.contextContinuation(batched.tokenizer(),
                "It is a truth universally ", "acknowledged");
        int[] whole = batched.tokenizer().encode("It is a truth universally acknowledged");
        int[] joined = new int[q.context().length + q.continuation().length];
        System.arraycopy(q.context(), 0, joined, 0, q.context().length);
        System.arraycopy(q.continuation(), 0, joined, q.context().length,
                q.continuation().length);
        assertArrayEquals(whole, joined);
        assertNotEquals(0, q.continuation().length);
        assertEquals(1, q.context()[0], "BOS on the context");
    }
}
