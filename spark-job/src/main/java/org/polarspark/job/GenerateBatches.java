package org.polarspark.job;

import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.StructType;
import org.polarspark.generate.Engine;
import org.polarspark.generate.SamplingParams;
import org.polarspark.generate.arrow.ArrowEngine;
import org.polarspark.generate.arrow.ArrowLists;
import org.polarspark.generate.arrow.ArrowSchemas;
import org.polarspark.generate.arrow.PromptBatch;

/**
 * generate: prompts are validated and tokenized into a prompt batch, generated through
 * {@link ArrowEngine}, and each (prompt, sample) becomes an output row. A row that cannot run
 * becomes n error rows (one per sample index), so the output always has rows x n rows.
 */
final class GenerateBatches extends Batches {
    private final int promptIndex;
    private final SamplingParams sampling;

    GenerateBatches(JobConfig cfg, StructType input, Engine engine, BufferAllocator allocator) {
        super(cfg, input, engine, allocator);
        this.promptIndex = input.fieldIndex(cfg.promptColumn());
        this.sampling = cfg.sampling();
    }

    private static final class Prepared {
        Row input;
        String rowId;
        long seed;
        String prompt;
        int[] ids;
        String status = OutputSchemas.OK;
        String error;
        int truncated;
        Row[] samples;
    }

    @Override
    public List<Row> process(List<Row> batch, PartitionStats stats) {
        List<Prepared> all = new ArrayList<>(batch.size());
        List<Prepared> runnable = new ArrayList<>();
        for (Row r : batch) {
            Prepared p = prepare(r);
            all.add(p);
            if (p.error == null) {
                runnable.add(p);
            }
        }
        runWithFallback(runnable, rows -> run(rows, stats), (p, message) -> p.error = message);
        List<Row> out = new ArrayList<>(batch.size() * cfg.n());
        for (Prepared p : all) {
            if (p.error != null) {
                for (int s = 0; s < cfg.n(); s++) {
                    out.add(row(new Object[] {p.rowId, s, null, null, null, null, null, null,
                        null, null, null, ArrowEngine.sampleSeed(p.seed, s), null, null,
                        OutputSchemas.ERROR, p.error, 0}, p.input));
                    stats.countRow(OutputSchemas.ERROR);
                }
            } else {
                for (Row s : p.samples) {
                    out.add(s);
                    stats.countRow(p.status);
                }
            }
        }
        return out;
    }

    private Prepared prepare(Row r) {
        Prepared p = new Prepared();
        p.input = r;
        p.rowId = r.getString(rowIdIndex);
        p.seed = RowSeeds.forRow(cfg.seed(), p.rowId);
        if (!r.isNullAt(inputErrorIndex)) {
            p.error = r.getString(inputErrorIndex);
            return p;
        }
        try {
            p.prompt = TextChecks.text(r.get(promptIndex), "prompt");
            p.ids = tokenizer.encode(p.prompt);
        } catch (TextChecks.BadRow e) {
            p.error = e.getMessage();
            return p;
        } catch (RuntimeException e) {
            p.error = "the tokenizer failed on the prompt: " + e.getMessage();
            return p;
        }
        int limit = context - 1; // room for at least one generated token
        if (p.ids.length == 0) {
            p.error = "prompt has no tokens";
        } else if (p.ids.length > limit) {
            if (cfg.truncateLeft()) {
                p.truncated = p.ids.length - limit;
                p.ids = truncateLeft(p.ids, limit);
                p.status = OutputSchemas.TRUNCATED;
            } else {
                p.error = "prompt has " + p.ids.length + " tokens; the model's context is "
                        + context + " tokens, so a prompt may have at most " + limit
                        + " (long-prompt-policy=error; truncate_left would keep the last "
                        + limit + ")";
            }
        }
        return p;
    }

    private void run(List<Prepared> rows, PartitionStats stats) {
        VectorSchemaRoot in;
        try (PromptBatch b = new PromptBatch(allocator)) {
            for (Prepared p : rows) {
                b.add(p.rowId, p.prompt, p.ids, p.seed);
            }
            in = b.build();
        }
        try (in; ArrowEngine.Output out = ArrowEngine.generate(engine, in, sampling, allocator)) {
            VectorSchemaRoot r = out.root();
            IntVector rowIndex = (IntVector) r.getVector(ArrowSchemas.ROW_INDEX);
            IntVector sample = (IntVector) r.getVector(ArrowSchemas.SAMPLE_INDEX);
            BigIntVector seed = (BigIntVector) r.getVector(ArrowSchemas.SEED);
            VarCharVector text = (VarCharVector) r.getVector(ArrowSchemas.GENERATED_TEXT);
            ListVector tokens = (ListVector) r.getVector(ArrowSchemas.TOKEN_IDS);
            IntVector numInput = (IntVector) r.getVector(ArrowSchemas.NUM_INPUT_TOKENS);
            VarCharVector finish = (VarCharVector) r.getVector(ArrowSchemas.FINISH_REASON);
            VarCharVector stop = (VarCharVector) r.getVector(ArrowSchemas.STOP_REASON);
            Float8Vector cumulative = (Float8Vector) r.getVector(ArrowSchemas.CUMULATIVE_LOGPROB);
            ListVector logprobs = (ListVector) r.getVector(ArrowSchemas.LOGPROBS);
            ListVector topIds = (ListVector) r.getVector(ArrowSchemas.TOP_TOKEN_IDS);
            ListVector topLps = (ListVector) r.getVector(ArrowSchemas.TOP_LOGPROBS);
            Float8Vector ttft = (Float8Vector) r.getVector(ArrowSchemas.TIME_TO_FIRST_TOKEN_MS);
            Float8Vector decode = (Float8Vector) r.getVector(ArrowSchemas.DECODE_MS);
            for (Prepared p : rows) {
                p.samples = new Row[cfg.n()];
            }
            for (int i = 0; i < r.getRowCount(); i++) {
                Prepared p = rows.get(rowIndex.get(i));
                int[] ids = ArrowLists.ints(tokens, i);
                Object top = null;
                if (!topIds.isNull(i)) {
                    int[][] ti = ArrowLists.intMatrix(topIds, i);
                    double[][] tl = ArrowLists.doubleMatrix(topLps, i);
                    List<Object> steps = new ArrayList<>(ti.length);
                    for (int k = 0; k < ti.length; k++) {
                        List<Row> cands = new ArrayList<>(ti[k].length);
                        for (int c = 0; c < ti[k].length; c++) {
                            cands.add(RowFactory.create(ti[k][c],
                                    tokenizer.decode(new int[] {ti[k][c]}), tl[k][c]));
                        }
                        steps.add(seq(cands));
                    }
                    top = seq(steps);
                }
                p.samples[sample.get(i)] = row(new Object[] {p.rowId, sample.get(i),
                    ArrowLists.string(text, i), seq(ids), numInput.get(i), ids.length,
                    ArrowLists.string(finish, i), ArrowLists.string(stop, i),
                    cumulative.get(i),
                    logprobs.isNull(i) ? null : seq(ArrowLists.doubles(logprobs, i)), top,
                    seed.get(i), ttft.get(i), decode.get(i), p.status, null, p.truncated},
                        p.input);
            }
            stats.add(out.stats());
        }
    }
}
