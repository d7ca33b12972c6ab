package org.polarspark.generate.arrow;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.BitVector;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.ListVector;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.polarspark.cpu.CpuEngine;
import org.polarspark.generate.Engine;
import org.polarspark.generate.GenerationRequest;
import org.polarspark.generate.GenerationResult;
import org.polarspark.generate.LoglikelihoodRequest;
import org.polarspark.generate.LoglikelihoodResult;
import org.polarspark.generate.SamplingParams;
import org.polarspark.generate.Scoring;
import org.polarspark.testutil.Golden;

/**
 * The Arrow adapter against the engine called directly with the same requests: the adapter
 * must read exactly the token ids the tokenizer wrote and return exactly the engine's results.
 */
class ArrowEngineTest {
    static CpuEngine engine;
    BufferAllocator allocator;

    static final String[] PROMPTS = {"Emma", "It is a truth universally acknowledged",
        "She was not at all surprised, but she was very much disappointed", "Anne",
        "Captain Wentworth had no fortune"};

    @BeforeAll
    static void load() {
        engine = CpuEngine.load(Golden.load("llama3-gqa").modelDir(), 3);
    }

    @AfterAll
    static void close() {
        engine.close();
    }

    @BeforeEach
    void alloc() {
        allocator = new RootAllocator(64L << 20);
    }

    @AfterEach
    void noLeaks() {
        assertEquals(0, allocator.getAllocatedMemory(), "Arrow memory leaked");
        allocator.close();
    }

    private VectorSchemaRoot prompts() {
        try (PromptBatch b = new PromptBatch(allocator)) {
            for (int i = 0; i < PROMPTS.length; i++) {
                b.add("r" + i, PROMPTS[i], engine.tokenizer(), 1000L + i);
            }
            return b.build();
        }
    }

    @Test
    void promptIdsAreReadBackFromTheListBuffersAsTheTokenizerWroteThem() {
        try (VectorSchemaRoot root = prompts()) {
            assertEquals(PROMPTS.length, root.getRowCount());
            ListVector ids = (ListVector) root.getVector(ArrowSchemas.PROMPT_IDS);
            VarCharVector rowId = (VarCharVector) root.getVector(ArrowSchemas.ROW_ID);
            int total = 0;
            for (int i = 0; i < PROMPTS.length; i++) {
                int[] expected = engine.tokenizer().encode(PROMPTS[i]);
                assertArrayEquals(expected, ArrowLists.ints(ids, i), "row " + i);
                assertEquals(expected.length, ArrowLists.length(ids, i));
                // the boxed accessor of Arrow agrees with the buffer reads
                assertEquals(Arrays.stream(expected).boxed().toList(), ids.getObject(i));
                assertEquals("r" + i, ArrowLists.string(rowId, i));
                total += expected.length;
            }
            assertEquals(total, ids.getDataVector().getValueCount());
            assertEquals(1003L, ((BigIntVector) root.getVector(ArrowSchemas.SEED)).get(3));
        }
    }

    @Test
    void generateReturnsTheEnginesResultsForEverySample() {
        SamplingParams p = new SamplingParams(0.9, 0.95, 40, 7, List.of(" the"), 5, 3, 2);
        List<GenerationRequest> direct = new ArrayList<>();
        for (int i = 0; i < PROMPTS.length; i++) {
            for (int s = 0; s < 3; s++) {
                direct.add(new GenerationRequest(engine.tokenizer().encode(PROMPTS[i]), p,
                        ArrowEngine.sampleSeed(1000L + i, s)));
            }
        }
        List<GenerationResult> expected = engine.generate(direct).results();
        try (VectorSchemaRoot in = prompts();
             ArrowEngine.Output out = ArrowEngine.generate(engine, in, p, allocator)) {
            VectorSchemaRoot r = out.root();
            assertEquals(PROMPTS.length * 3, r.getRowCount());
            IntVector rowIndex = (IntVector) r.getVector(ArrowSchemas.ROW_INDEX);
            IntVector sample = (IntVector) r.getVector(ArrowSchemas.SAMPLE_INDEX);
            BigIntVector seed = (BigIntVector) r.getVector(ArrowSchemas.SEED);
            VarCharVector text = (VarCharVector) r.getVector(ArrowSchemas.GENERATED_TEXT);
            ListVector tokens = (ListVector) r.getVector(ArrowSchemas.TOKEN_IDS);
            IntVector numInput = (IntVector) r.getVector(ArrowSchemas.NUM_INPUT_TOKENS);
            VarCharVector finish = (VarCharVector) r.getVector(ArrowSchemas.FINISH_REASON);
            VarCharVector stop = (VarCharVector) r.getVector(ArrowSchemas.STOP_REASON);
            Float8Vector cum = (Float8Vector) r.getVector(ArrowSchemas.CUMULATIVE_LOGPROB);
            ListVector lps = (ListVector) r.getVector(ArrowSchemas.LOGPROBS);
            ListVector topIds = (ListVector) r.getVector(ArrowSchemas.TOP_TOKEN_IDS);
            ListVector topLps = (ListVector) r.getVector(ArrowSchemas.TOP_LOGPROBS);
            long distinctTexts = 0;
            for (int i = 0; i < r.getRowCount(); i++) {
                GenerationResult g = expected.get(i);
                assertEquals(i / 3, rowIndex.get(i));
                assertEquals(i % 3, sample.get(i));
                assertEquals(direct.get(i).seed(), seed.get(i));
                assertEquals(g.text(), ArrowLists.string(text, i));
                assertArrayEquals(g.tokens(), ArrowLists.ints(tokens, i));
                assertEquals(direct.get(i).promptIds().length, numInput.get(i));
                assertEquals(g.finishReason().wire(), ArrowLists.string(finish, i));
                assertEquals(g.stopReason(), ArrowLists.string(stop, i));
                assertEquals(g.cumulativeLogprob(), cum.get(i));
                assertArrayEquals(g.logprobs(), ArrowLists.doubles(lps, i));
                int[][] ti = ArrowLists.intMatrix(topIds, i);
                double[][] tl = ArrowLists.doubleMatrix(topLps, i);
                assertEquals(g.tokens().length, ti.length);
                for (int k = 0; k < ti.length; k++) {
                    assertArrayEquals(g.topIds()[k], ti[k]);
                    assertArrayEquals(g.topLogprobs()[k], tl[k]);
                    assertEquals(2, ti[k].length);
                }
                if (i % 3 != 0 && !ArrowLists.string(text, i).equals(ArrowLists.string(text,
                        i - 1))) {
                    distinctTexts++;
                }
            }
            assertTrue(distinctTexts > 0, "different samples of a prompt should differ");
            long generated = expected.stream().mapToLong(g -> g.tokens().length).sum();
            assertEquals(generated, out.stats().decodeTokens());
        }
    }

    @Test
    void logprobsColumnsAreNullUnlessAskedFor() {
        SamplingParams p = SamplingParams.greedy(4);
        try (VectorSchemaRoot in = prompts();
             ArrowEngine.Output out = ArrowEngine.generate(engine, in, p, allocator)) {
            ListVector lps = (ListVector) out.root().getVector(ArrowSchemas.LOGPROBS);
            ListVector top = (ListVector) out.root().getVector(ArrowSchemas.TOP_LOGPROBS);
            for (int i = 0; i < out.root().getRowCount(); i++) {
                assertTrue(lps.isNull(i));
                assertTrue(top.isNull(i));
                assertNull(lps.getObject(i));
            }
        }
    }

    @Test
    void sampleZeroUsesTheRowSeed() {
        assertEquals(42L, ArrowEngine.sampleSeed(42L, 0));
        assertNotEquals(ArrowEngine.sampleSeed(42L, 1), ArrowEngine.sampleSeed(42L, 2));
        assertNotEquals(42L, ArrowEngine.sampleSeed(42L, 1));
    }

    @Test
    void loglikelihoodReturnsTheEnginesScoresAlignedWithTheRequests() {
        int[] doc = engine.tokenizer().encodePlain(String.join(" ", PROMPTS));
        List<LoglikelihoodRequest> reqs = new ArrayList<>(Scoring.rollingWindows(doc,
                engine.config().bosTokenId(), 6));
        reqs.add(Scoring.contextContinuation(engine.tokenizer(), "It is a truth", " universally"));
        List<LoglikelihoodResult> expected = engine.loglikelihood(reqs).results();
        VectorSchemaRoot in;
        try (LoglikelihoodBatch b = new LoglikelihoodBatch(allocator)) {
            for (int i = 0; i < reqs.size(); i++) {
                b.add(i / 2, reqs.get(i));
            }
            in = b.build();
        }
        try (in; ArrowEngine.Output out = ArrowEngine.loglikelihood(engine, in, allocator)) {
            VectorSchemaRoot r = out.root();
            assertEquals(reqs.size(), r.getRowCount());
            IntVector owner = (IntVector) r.getVector(ArrowSchemas.ROW_INDEX);
            Float8Vector ll = (Float8Vector) r.getVector(ArrowSchemas.LOGLIKELIHOOD);
            BitVector greedy = (BitVector) r.getVector(ArrowSchemas.IS_GREEDY);
            IntVector n = (IntVector) r.getVector(ArrowSchemas.NUM_TOKENS);
            for (int i = 0; i < reqs.size(); i++) {
                assertEquals(i / 2, owner.get(i));
                assertEquals(expected.get(i).loglikelihood(), ll.get(i));
                assertEquals(expected.get(i).isGreedy(), greedy.get(i) == 1);
                assertEquals(reqs.get(i).continuation().length, n.get(i));
            }
        }
    }

    @Test
    void aBatchWithoutThePromptSchemaIsRejectedNamingTheColumn() {
        try (VectorSchemaRoot wrong = VectorSchemaRoot.create(
                ArrowSchemas.LOGLIKELIHOOD_REQUESTS, allocator)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> ArrowEngine.generate(engine, wrong, SamplingParams.greedy(1),
                            allocator));
            assertTrue(e.getMessage().contains("'row_id'"), e.getMessage());
        }
    }

    @Test
    void aPromptThatDoesNotFitTheContextIsRejectedNamingTheRow() {
        int context = engine.config().maxPositions();
        int[] tooLong = new int[context];
        Arrays.fill(tooLong, 5);
        VectorSchemaRoot in;
        try (PromptBatch b = new PromptBatch(allocator)) {
            b.add("ok", "x", new int[] {5}, 1);
            b.add("long-one", null, tooLong, 2);
            in = b.build();
        }
        try (in) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> ArrowEngine.generate(engine, in, SamplingParams.greedy(1), allocator));
            assertTrue(e.getMessage().contains("long-one"), e.getMessage());
            assertFalse(allocator.getAllocatedMemory() == 0, "the input is still open");
        }
    }
}
