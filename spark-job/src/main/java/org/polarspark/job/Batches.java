package org.polarspark.job;

import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.StructType;
import org.polarspark.generate.Engine;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.TextTokenizer;
import scala.jdk.javaapi.CollectionConverters;

/** What the three modes' batch processors share: column lookup, passthrough, row assembly. */
abstract class Batches implements PartitionRunner.BatchProcessor {
    final JobConfig cfg;
    final Engine engine;
    final BufferAllocator allocator;
    final TextTokenizer tokenizer;
    final ModelConfig model;
    /** The model's context length in tokens. */
    final int context;
    final int rowIdIndex;
    final int inputErrorIndex;
    private final int[] passthrough;

    Batches(JobConfig cfg, StructType input, Engine engine, BufferAllocator allocator) {
        this.cfg = cfg;
        this.engine = engine;
        this.allocator = allocator;
        this.tokenizer = engine.tokenizer();
        this.model = engine.config();
        this.context = model.maxPositions();
        this.rowIdIndex = input.fieldIndex(InputReader.ROW_ID);
        this.inputErrorIndex = input.fieldIndex(InputReader.INPUT_ERROR);
        this.passthrough = new int[cfg.passthrough().size()];
        for (int i = 0; i < passthrough.length; i++) {
            passthrough[i] = input.fieldIndex(cfg.passthrough().get(i));
        }
    }

    /** The job's own columns followed by the row's passthrough values. */
    Row row(Object[] own, Row input) {
        Object[] all = new Object[own.length + passthrough.length];
        System.arraycopy(own, 0, all, 0, own.length);
        for (int i = 0; i < passthrough.length; i++) {
            all[own.length + i] = input.get(passthrough[i]);
        }
        return RowFactory.create(all);
    }

    /**
     * Runs the rows as one batch. Should the engine reject the batch (IllegalArgumentException:
     * a request it cannot take), each row is run alone and the ones it rejects are handed to
     * {@code reject} with the message, so one bad row never fails the task.
     */
    static <P> void runWithFallback(List<P> rows, java.util.function.Consumer<List<P>> run,
                                    java.util.function.BiConsumer<P, String> reject) {
        if (rows.isEmpty()) {
            return;
        }
        try {
            run.accept(rows);
        } catch (IllegalArgumentException e) {
            if (rows.size() == 1) {
                reject.accept(rows.get(0), "the engine rejected the row: " + e.getMessage());
                return;
            }
            for (P p : rows) {
                runWithFallback(List.of(p), run, reject);
            }
        }
    }

    /** The token that starts a scored document or an empty context: BOS, else EOS (lm-eval). */
    int prefixToken() {
        return model.bosTokenId() >= 0 ? model.bosTokenId() : model.eosTokenIds().get(0);
    }

    /**
     * Keeps the last {@code limit} tokens of {@code ids}; a leading BOS stays in front (the model
     * was trained with it there).
     */
    int[] truncateLeft(int[] ids, int limit) {
        int[] out = new int[limit];
        if (ids.length > 0 && ids[0] == model.bosTokenId() && limit > 1) {
            out[0] = ids[0];
            System.arraycopy(ids, ids.length - (limit - 1), out, 1, limit - 1);
        } else {
            System.arraycopy(ids, ids.length - limit, out, 0, limit);
        }
        return out;
    }

    static <T> scala.collection.immutable.Seq<T> seq(List<T> list) {
        return CollectionConverters.asScala(list).toList();
    }

    static scala.collection.immutable.Seq<Integer> seq(int[] a) {
        List<Integer> l = new ArrayList<>(a.length);
        for (int x : a) {
            l.add(x);
        }
        return seq(l);
    }

    static scala.collection.immutable.Seq<Double> seq(double[] a) {
        List<Double> l = new ArrayList<>(a.length);
        for (double x : a) {
            l.add(x);
        }
        return seq(l);
    }
}
