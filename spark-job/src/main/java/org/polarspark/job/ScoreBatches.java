package org.polarspark.job;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.StructType;
import org.polarspark.generate.Engine;
import org.polarspark.generate.LoglikelihoodRequest;
import org.polarspark.generate.Scoring;
import org.polarspark.generate.arrow.ArrowEngine;
import org.polarspark.generate.arrow.ArrowSchemas;
import org.polarspark.generate.arrow.LoglikelihoodBatch;

/**
 * score: lm-eval {@code loglikelihood_rolling}. The text is tokenized without special tokens,
 * split into rolling windows of at most the model's context (the first conditioned on BOS, or
 * EOS for models without one), and every token is scored exactly once. Per row:
 * {@code loglikelihood} = the sum, {@code perplexity} = exp(-loglikelihood / num_tokens),
 * {@code bits_per_byte} = -loglikelihood / num_bytes / ln 2 (num_bytes: UTF-8 bytes).
 */
final class ScoreBatches extends Batches {
    private final int textIndex;

    ScoreBatches(JobConfig cfg, StructType input, Engine engine, BufferAllocator allocator) {
        super(cfg, input, engine, allocator);
        this.textIndex = input.fieldIndex(cfg.textColumn());
    }

    private static final class Prepared {
        Row input;
        String rowId;
        String text;
        int tokens;
        List<LoglikelihoodRequest> windows;
        String error;
        double loglikelihood;
    }

    @Override
    public List<Row> process(List<Row> batch, PartitionStats stats) {
        List<Prepared> all = new ArrayList<>();
        List<Prepared> runnable = new ArrayList<>();
        for (Row r : batch) {
            Prepared p = new Prepared();
            p.input = r;
            p.rowId = r.getString(rowIdIndex);
            all.add(p);
            if (!r.isNullAt(inputErrorIndex)) {
                p.error = r.getString(inputErrorIndex);
                continue;
            }
            try {
                p.text = TextChecks.text(r.get(textIndex), "text");
                int[] ids = tokenizer.encodePlain(p.text);
                if (ids.length == 0) {
                    p.error = "text has no tokens";
                    continue;
                }
                p.tokens = ids.length;
                p.windows = Scoring.rollingWindows(ids, prefixToken(), context);
                runnable.add(p);
            } catch (TextChecks.BadRow e) {
                p.error = e.getMessage();
            } catch (RuntimeException e) {
                p.error = "the tokenizer failed on the text: " + e.getMessage();
            }
        }
        runWithFallback(runnable, rows -> run(rows, stats), (p, message) -> p.error = message);
        List<Row> out = new ArrayList<>(all.size());
        for (Prepared p : all) {
            if (p.error != null) {
                out.add(row(new Object[] {p.rowId, null, null, null, null, null, null,
                    OutputSchemas.ERROR, p.error}, p.input));
                stats.countRow(OutputSchemas.ERROR);
                continue;
            }
            long bytes = p.text.getBytes(StandardCharsets.UTF_8).length;
            double ll = p.loglikelihood;
            out.add(row(new Object[] {p.rowId, p.tokens, bytes, TextChecks.words(p.text), ll,
                Math.exp(-ll / p.tokens), -ll / bytes / Math.log(2), OutputSchemas.OK, null},
                    p.input));
            stats.countRow(OutputSchemas.OK);
        }
        return out;
    }

    private void run(List<Prepared> rows, PartitionStats stats) {
        VectorSchemaRoot in;
        try (LoglikelihoodBatch b = new LoglikelihoodBatch(allocator)) {
            for (int i = 0; i < rows.size(); i++) {
                for (LoglikelihoodRequest w : rows.get(i).windows) {
                    b.add(i, w);
                }
            }
            in = b.build();
        }
        try (in; ArrowEngine.Output out = ArrowEngine.loglikelihood(engine, in, allocator)) {
            IntVector owner = (IntVector) out.root().getVector(ArrowSchemas.ROW_INDEX);
            Float8Vector ll = (Float8Vector) out.root().getVector(ArrowSchemas.LOGLIKELIHOOD);
            double[] sums = new double[rows.size()];
            for (int i = 0; i < out.root().getRowCount(); i++) {
                sums[owner.get(i)] += ll.get(i);
            }
            for (int i = 0; i < rows.size(); i++) {
                rows.get(i).loglikelihood = sums[i];
            }
            stats.add(out.stats());
        }
    }
}
