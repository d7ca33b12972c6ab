package org.polarspark.generate.arrow;

import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * The life cycle shared by the request batch builders: a {@link VectorSchemaRoot} of a fixed
 * schema, owned by the builder until {@link #build()} hands it over (close the builder to free a
 * batch that was never built), and rows appended one at a time.
 */
abstract class BatchBuilder implements AutoCloseable {
    protected final VectorSchemaRoot root;
    private final String what;
    private int rows;
    private boolean built;

    protected BatchBuilder(Schema schema, BufferAllocator allocator, String what) {
        this.root = VectorSchemaRoot.create(schema, allocator);
        this.what = what;
        root.allocateNew();
    }

    /** Fails once the batch is built. */
    protected void ensureOpen() {
        if (built) {
            throw new IllegalStateException(what + " already built");
        }
    }

    /** The index of the row to write next; fails once the batch is built. */
    protected int nextRow() {
        ensureOpen();
        return rows++;
    }

    public int rows() {
        return rows;
    }

    /** Finishes the batch; the caller owns (and closes) the returned root. */
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
