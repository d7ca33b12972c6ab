package org.polarspark.generate.arrow;

import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.BitVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.Schema;
import org.polarspark.generate.Engine;
import org.polarspark.generate.EngineStats;
import org.polarspark.generate.GenerationRequest;
import org.polarspark.generate.GenerationResult;
import org.polarspark.generate.LoglikelihoodRequest;
import org.polarspark.generate.LoglikelihoodResult;
import org.polarspark.generate.Sampler;
import org.polarspark.generate.SamplingParams;

/**
 * Runs an {@link Engine} on Arrow batches: token ids are read from the request batch's list
 * buffers ({@link ArrowLists}), results are written into a new {@link VectorSchemaRoot}. The
 * engine API itself stays Arrow-free, so every backend gets this for nothing.
 *
 * <p>Ownership: the input root stays the caller's; the returned {@link Output} owns its root and
 * must be closed.
 */
public final class ArrowEngine {
    private ArrowEngine() {
    }

    /** Results of one call: an Arrow root the caller closes, and the engine's counters. */
    public record Output(VectorSchemaRoot root, EngineStats stats) implements AutoCloseable {
        @Override
        public void close() {
            root.close();
        }
    }

    /** A 64-bit odd constant (2^64 / golden ratio) that spreads consecutive sample indices. */
    private static final long SAMPLE_STRIDE = 0x9E3779B97F4A7C15L;

    /**
     * The seed of sample {@code sample} of a row: sample 0 uses the row's seed itself (so n = 1
     * and the first of n samples agree), later samples a SplitMix64 mix of it.
     */
    public static long sampleSeed(long rowSeed, int sample) {
        return sample == 0 ? rowSeed : Sampler.mix(rowSeed + SAMPLE_STRIDE * sample);
    }

    /**
     * Generates {@code params.n()} samples for every prompt of a batch with schema
     * {@link ArrowSchemas#PROMPTS}. Output rows ({@link ArrowSchemas#GENERATIONS}) are in prompt
     * order, samples 0..n-1 within a prompt.
     *
     * @throws IllegalArgumentException if the batch does not have the prompt schema, or a
     *                                  prompt is empty or does not fit the model's context
     */
    public static Output generate(Engine engine, VectorSchemaRoot prompts, SamplingParams params,
                                  BufferAllocator allocator) {
        requireFields(prompts, ArrowSchemas.PROMPTS, "prompt batch");
        VarCharVector rowId = (VarCharVector) prompts.getVector(ArrowSchemas.ROW_ID);
        ListVector ids = (ListVector) prompts.getVector(ArrowSchemas.PROMPT_IDS);
        BigIntVector seeds = (BigIntVector) prompts.getVector(ArrowSchemas.SEED);
        requireNoNullElements(ids, "prompt batch");
        int rows = prompts.getRowCount();
        int context = engine.config().maxPositions();
        int n = params.n();
        List<GenerationRequest> requests = new ArrayList<>(rows * n);
        int[] inputTokens = new int[rows];
        for (int r = 0; r < rows; r++) {
            if (ids.isNull(r) || seeds.isNull(r)) {
                throw new IllegalArgumentException("prompt batch: row " + r + " ("
                        + ArrowLists.string(rowId, r) + ") has no prompt_ids or no seed");
            }
            int[] p = ArrowLists.ints(ids, r);
            if (p.length == 0 || p.length >= context) {
                throw new IllegalArgumentException("prompt batch: row " + r + " ("
                        + ArrowLists.string(rowId, r) + ") has " + p.length + " prompt tokens;"
                        + " it must have between 1 and " + (context - 1) + " (the context is "
                        + context + ")");
            }
            inputTokens[r] = p.length;
            long rowSeed = seeds.get(r);
            for (int s = 0; s < n; s++) {
                requests.add(new GenerationRequest(p, params, sampleSeed(rowSeed, s)));
            }
        }
        Engine.Result<GenerationResult> result = engine.generate(requests);
        if (result.results().size() != requests.size()) {
            throw new IllegalStateException("engine returned " + result.results().size()
                    + " results for " + requests.size() + " requests");
        }
        VectorSchemaRoot out = VectorSchemaRoot.create(ArrowSchemas.GENERATIONS, allocator);
        try {
            out.allocateNew();
            IntVector rowIndex = (IntVector) out.getVector(ArrowSchemas.ROW_INDEX);
            IntVector sampleIndex = (IntVector) out.getVector(ArrowSchemas.SAMPLE_INDEX);
            BigIntVector seed = (BigIntVector) out.getVector(ArrowSchemas.SEED);
            VarCharVector text = (VarCharVector) out.getVector(ArrowSchemas.GENERATED_TEXT);
            ListVector tokens = (ListVector) out.getVector(ArrowSchemas.TOKEN_IDS);
            IntVector numInput = (IntVector) out.getVector(ArrowSchemas.NUM_INPUT_TOKENS);
            VarCharVector finish = (VarCharVector) out.getVector(ArrowSchemas.FINISH_REASON);
            VarCharVector stop = (VarCharVector) out.getVector(ArrowSchemas.STOP_REASON);
            Float8Vector cumulative = (Float8Vector) out.getVector(ArrowSchemas.CUMULATIVE_LOGPROB);
            ListVector logprobs = (ListVector) out.getVector(ArrowSchemas.LOGPROBS);
            ListVector topIds = (ListVector) out.getVector(ArrowSchemas.TOP_TOKEN_IDS);
            ListVector topLps = (ListVector) out.getVector(ArrowSchemas.TOP_LOGPROBS);
            Float8Vector ttft = (Float8Vector) out.getVector(ArrowSchemas.TIME_TO_FIRST_TOKEN_MS);
            Float8Vector decode = (Float8Vector) out.getVector(ArrowSchemas.DECODE_MS);
            for (int i = 0; i < requests.size(); i++) {
                GenerationResult g = result.results().get(i);
                int r = i / n;
                rowIndex.setSafe(i, r);
                sampleIndex.setSafe(i, i % n);
                seed.setSafe(i, requests.get(i).seed());
                ArrowLists.writeString(text, i, g.text());
                ArrowLists.writeInts(tokens, i, g.tokens());
                numInput.setSafe(i, inputTokens[r]);
                ArrowLists.writeString(finish, i, g.finishReason().wire());
                ArrowLists.writeString(stop, i, g.stopReason());
                cumulative.setSafe(i, g.cumulativeLogprob());
                if (g.logprobs() != null) {
                    ArrowLists.writeDoubles(logprobs, i, g.logprobs());
                } else {
                    ArrowLists.writeNull(logprobs, i);
                }
                if (g.topIds() != null) {
                    ArrowLists.writeIntMatrix(topIds, i, g.topIds());
                    ArrowLists.writeDoubleMatrix(topLps, i, g.topLogprobs());
                } else {
                    ArrowLists.writeNull(topIds, i);
                    ArrowLists.writeNull(topLps, i);
                }
                ttft.setSafe(i, g.timeToFirstTokenMs());
                decode.setSafe(i, g.decodeMs());
            }
            out.setRowCount(requests.size());
            return new Output(out, result.stats());
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
    }

    /**
     * Scores every request of a batch with schema {@link ArrowSchemas#LOGLIKELIHOOD_REQUESTS};
     * output rows ({@link ArrowSchemas#LOGLIKELIHOOD_RESULTS}) are aligned with the requests.
     */
    public static Output loglikelihood(Engine engine, VectorSchemaRoot requests,
                                       BufferAllocator allocator) {
        requireFields(requests, ArrowSchemas.LOGLIKELIHOOD_REQUESTS, "log-likelihood batch");
        IntVector owner = (IntVector) requests.getVector(ArrowSchemas.ROW_INDEX);
        ListVector context = (ListVector) requests.getVector(ArrowSchemas.CONTEXT_IDS);
        ListVector continuation = (ListVector) requests.getVector(ArrowSchemas.CONTINUATION_IDS);
        requireNoNullElements(context, "log-likelihood batch");
        requireNoNullElements(continuation, "log-likelihood batch");
        int rows = requests.getRowCount();
        List<LoglikelihoodRequest> list = new ArrayList<>(rows);
        for (int r = 0; r < rows; r++) {
            list.add(new LoglikelihoodRequest(ArrowLists.ints(context, r),
                    ArrowLists.ints(continuation, r)));
        }
        Engine.Result<LoglikelihoodResult> result = engine.loglikelihood(list);
        VectorSchemaRoot out = VectorSchemaRoot.create(ArrowSchemas.LOGLIKELIHOOD_RESULTS,
                allocator);
        try {
            out.allocateNew();
            IntVector rowIndex = (IntVector) out.getVector(ArrowSchemas.ROW_INDEX);
            Float8Vector ll = (Float8Vector) out.getVector(ArrowSchemas.LOGLIKELIHOOD);
            BitVector greedy = (BitVector) out.getVector(ArrowSchemas.IS_GREEDY);
            IntVector numTokens = (IntVector) out.getVector(ArrowSchemas.NUM_TOKENS);
            for (int r = 0; r < rows; r++) {
                LoglikelihoodResult x = result.results().get(r);
                rowIndex.setSafe(r, owner.get(r));
                ll.setSafe(r, x.loglikelihood());
                greedy.setSafe(r, x.isGreedy() ? 1 : 0);
                numTokens.setSafe(r, x.tokens());
            }
            out.setRowCount(rows);
            return new Output(out, result.stats());
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
    }

    private static void requireFields(VectorSchemaRoot root, Schema expected, String what) {
        for (Field f : expected.getFields()) {
            FieldVector v = root.getVector(f.getName());
            if (v == null || !v.getField().getType().equals(f.getType())) {
                throw new IllegalArgumentException(what + ": column '" + f.getName() + "' of type "
                        + f.getType() + " is missing; the batch has " + root.getSchema());
            }
        }
    }

    private static void requireNoNullElements(ListVector v, String what) {
        FieldVector data = v.getDataVector();
        if (data.getNullCount() != 0) {
            throw new IllegalArgumentException(what + ": column '" + v.getName()
                    + "' has null token ids");
        }
    }
}
