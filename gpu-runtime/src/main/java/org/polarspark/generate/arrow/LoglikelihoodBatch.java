package org.polarspark.generate.arrow;

import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.complex.ListVector;
import org.polarspark.generate.LoglikelihoodRequest;

/**
 * Builds a log-likelihood request batch ({@link ArrowSchemas#LOGLIKELIHOOD_REQUESTS}). The
 * {@code row_index} column is the caller's: several requests (rolling windows of one document,
 * the choices of one question) may share it.
 */
public final class LoglikelihoodBatch extends BatchBuilder {
    private final IntVector rowIndex;
    private final ListVector context;
    private final ListVector continuation;

    public LoglikelihoodBatch(BufferAllocator allocator) {
        super(ArrowSchemas.LOGLIKELIHOOD_REQUESTS, allocator, "log-likelihood batch");
        this.rowIndex = (IntVector) root.getVector(ArrowSchemas.ROW_INDEX);
        this.context = (ListVector) root.getVector(ArrowSchemas.CONTEXT_IDS);
        this.continuation = (ListVector) root.getVector(ArrowSchemas.CONTINUATION_IDS);
    }

    public int add(int owner, LoglikelihoodRequest request) {
        int row = nextRow();
        rowIndex.setSafe(row, owner);
        ArrowLists.writeInts(context, row, request.context());
        ArrowLists.writeInts(continuation, row, request.continuation());
        return row;
    }
}
