package org.polarspark.generate.arrow;

import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.ListVector;
import org.polarspark.generate.LoglikelihoodRequest;

/**
 * Builds a log-likelihood request batch ({@link ArrowSchemas#LOGLIKELIHOOD_REQUESTS}). The
 * {@code row_index} column is the caller's: several requests (rolling windows of one document,
 * the choices of one question) may share it.
 */
public final class LoglikelihoodBatch implements AutoCloseable {
    private final VectorSchemaRoot root;
    private final IntVector rowIndex;
    private final ListVector context;
    private final ListVector continuation;
    private int rows;
    private boolean built;

    public LoglikelihoodBatch(BufferAllocator allocator) {
        this.root = VectorSchemaRoot.create(ArrowSchemas.LOGLIKELIHOOD_REQUESTS, allocator);
        this.rowIndex = (IntVector) root.getVector(ArrowSchemas.ROW_INDEX);
        this.context = (ListVector) root.getVector(ArrowSchemas.CONTEXT_IDS);
        this.continuation = (ListVector) root.getVector(ArrowSchemas.CONTINUATION_IDS);
        root.allocateNew();
    }

    public int add(int owner, LoglikelihoodRequest request) {
        if (built) {
            throw new IllegalStateException("log-likelihood batch already built");
        }
        int row = rows++;
        rowIndex.setSafe(row, owner);
        ArrowLists.writeInts(context, row, request.context());
        ArrowLists.writeInts(continuation, row, request.continuation());
        return row;
    }

    public int rows() {
        return rows;
    }

    public VectorSchemaRoot build() {
        built = true;
        root.setRowCount(rows);
        return root;
    }

    @Override
    public void close() {
        if (!built) {
            root.close();
        }
    }
}
