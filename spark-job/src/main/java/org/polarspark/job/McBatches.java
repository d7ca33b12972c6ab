package org.polarspark.job;

import java.util.ArrayList;
import java.util.Arrays;
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
 * mc: lm-eval {@code multiple_choice}. Each choice is scored as {@code loglikelihood(context,
 * choice)} (context and choice encoded as lm-eval encodes them; an empty context is the BOS/EOS
 * prefix token). {@code pred} = argmax of the log-likelihoods, {@code pred_norm} = argmax of
 * log-likelihood / length of the choice in characters (Unicode code points, Python's
 * {@code len}); ties go to the lower index (numpy argmax). {@code acc} = 1.0 if pred == label,
 * else 0.0; {@code acc_norm} likewise with pred_norm.
 */
final class McBatches extends Batches {
    private final int contextIndex;
    private final int choicesIndex;
    private final int labelIndex;

    McBatches(JobConfig cfg, StructType input, Engine engine, BufferAllocator allocator) {
        super(cfg, input, engine, allocator);
        this.contextIndex = input.fieldIndex(cfg.contextColumn());
        this.choicesIndex = input.fieldIndex(cfg.choicesColumn());
        this.labelIndex = input.fieldIndex(cfg.labelColumn());
    }

    private static final class Prepared {
        Row input;
        String rowId;
        Integer label;
        List<String> choices;
        List<LoglikelihoodRequest> requests;
        int truncated;
        String error;
        double[] ll;
    }

    @Override
    public List<Row> process(List<Row> batch, PartitionStats stats) {
        List<Prepared> all = new ArrayList<>();
        List<Prepared> runnable = new ArrayList<>();
        for (Row r : batch) {
            Prepared p = prepare(r);
            all.add(p);
            if (p.error == null) {
                runnable.add(p);
            }
        }
        runWithFallback(runnable, rows -> run(rows, stats), (p, message) -> p.error = message);
        List<Row> out = new ArrayList<>(all.size());
        for (Prepared p : all) {
            if (p.error != null) {
                out.add(row(new Object[] {p.rowId, p.label, null, null, null, null, null, null,
                    OutputSchemas.ERROR, p.error, 0}, p.input));
                stats.countRow(OutputSchemas.ERROR);
                continue;
            }
            int k = p.choices.size();
            int[] lengths = new int[k];
            double[] norm = new double[k];
            for (int j = 0; j < k; j++) {
                lengths[j] = TextChecks.codePoints(p.choices.get(j));
                norm[j] = p.ll[j] / lengths[j];
            }
            int pred = argmax(p.ll);
            int predNorm = argmax(norm);
            String status = p.truncated > 0 ? OutputSchemas.TRUNCATED : OutputSchemas.OK;
            out.add(row(new Object[] {p.rowId, p.label, seq(p.ll), seq(lengths), pred, predNorm,
                pred == p.label ? 1.0 : 0.0, predNorm == p.label ? 1.0 : 0.0, status, null,
                p.truncated}, p.input));
            stats.countRow(status);
        }
        return out;
    }

    /** Index of the largest value; the lowest index among equal ones. */
    static int argmax(double[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

    private Prepared prepare(Row r) {
        Prepared p = new Prepared();
        p.input = r;
        p.rowId = r.getString(rowIdIndex);
        p.label = r.isNullAt(labelIndex) ? null : r.getInt(labelIndex);
        if (!r.isNullAt(inputErrorIndex)) {
            p.error = r.getString(inputErrorIndex);
            return p;
        }
        try {
            Object ctxValue = r.get(contextIndex);
            // An empty context is allowed (lm-eval scores the choice after the prefix token).
            String context = ctxValue instanceof String s && s.isEmpty() ? ""
                    : TextChecks.text(ctxValue, "context");
            if (r.isNullAt(choicesIndex) || r.getList(choicesIndex).isEmpty()) {
                throw new TextChecks.BadRow("choices are null or empty");
            }
            List<Object> raw = r.getList(choicesIndex);
            p.choices = new ArrayList<>(raw.size());
            for (int j = 0; j < raw.size(); j++) {
                p.choices.add(TextChecks.text(raw.get(j), "choice " + j));
            }
            if (p.label == null) {
                throw new TextChecks.BadRow("label is null or not an integer");
            }
            if (p.label < 0 || p.label >= p.choices.size()) {
                throw new TextChecks.BadRow("label " + p.label + " is not the index of one of "
                        + "the " + p.choices.size() + " choices");
            }
            p.requests = new ArrayList<>(p.choices.size());
            for (int j = 0; j < p.choices.size(); j++) {
                LoglikelihoodRequest q = context.isEmpty()
                        ? new LoglikelihoodRequest(new int[] {prefixToken()},
                        tokenizer.encodePlain(p.choices.get(j)))
                        : Scoring.contextContinuation(tokenizer, context, p.choices.get(j));
                p.requests.add(fit(q, j, p));
            }
        } catch (TextChecks.BadRow e) {
            p.error = e.getMessage();
        } catch (RuntimeException e) {
            p.error = "cannot encode the row: " + e.getMessage();
        }
        return p;
    }

    /**
     * A request needs context + continuation - 1 positions. Over the context length: an error
     * row, or with truncate_left the context loses its oldest tokens, as lm-eval does
     * ({@code (context + continuation)[-(max_length + 1):]}).
     */
    private LoglikelihoodRequest fit(LoglikelihoodRequest q, int choice, Prepared p)
            throws TextChecks.BadRow {
        int[] ctx = q.context();
        int[] cont = q.continuation();
        int positions = ctx.length + cont.length - 1;
        if (positions <= context) {
            return q;
        }
        if (cont.length > context) {
            throw new TextChecks.BadRow("choice " + choice + " has " + cont.length + " tokens,"
                    + " more than the model's context of " + context);
        }
        if (!cfg.truncateLeft()) {
            throw new TextChecks.BadRow("context + choice " + choice + " need " + positions
                    + " positions; the model's context is " + context
                    + " (long-prompt-policy=error)");
        }
        int keep = context + 1 - cont.length;
        p.truncated = Math.max(p.truncated, ctx.length - keep);
        return new LoglikelihoodRequest(Arrays.copyOfRange(ctx, ctx.length - keep, ctx.length),
                cont);
    }

    private void run(List<Prepared> rows, PartitionStats stats) {
        VectorSchemaRoot in;
        try (LoglikelihoodBatch b = new LoglikelihoodBatch(allocator)) {
            for (int i = 0; i < rows.size(); i++) {
                for (LoglikelihoodRequest q : rows.get(i).requests) {
                    b.add(i, q);
                }
            }
            in = b.build();
        }
        try (in; ArrowEngine.Output out = ArrowEngine.loglikelihood(engine, in, allocator)) {
            IntVector owner = (IntVector) out.root().getVector(ArrowSchemas.ROW_INDEX);
            Float8Vector ll = (Float8Vector) out.root().getVector(ArrowSchemas.LOGLIKELIHOOD);
            int[] next = new int[rows.size()];
            for (Prepared p : rows) {
                p.ll = new double[p.requests.size()];
            }
            for (int i = 0; i < out.root().getRowCount(); i++) {
                int o = owner.get(i);
                rows.get(o).ll[next[o]++] = ll.get(i);
            }
            stats.add(out.stats());
        }
    }
}
