package org.polarspark.generate.arrow;

import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.complex.ListVector;
import org.polarspark.model.TextTokenizer;

/**
 * Builds a prompt batch ({@link ArrowSchemas#PROMPTS}): one row per prompt, token ids written by
 * the tokenizer (or given) into the {@code prompt_ids} list vector.
 *
 * <p>The builder owns its root until {@link #build()} hands it over; close the builder to free a
 * batch that was never built.
 */
public final class PromptBatch extends BatchBuilder {
    private final VarCharVector rowId;
    private final VarCharVector prompt;
    private final ListVector ids;
    private final BigIntVector seed;

    public PromptBatch(BufferAllocator allocator) {
        super(ArrowSchemas.PROMPTS, allocator, "prompt batch");
        this.rowId = (VarCharVector) root.getVector(ArrowSchemas.ROW_ID);
        this.prompt = (VarCharVector) root.getVector(ArrowSchemas.PROMPT);
        this.ids = (ListVector) root.getVector(ArrowSchemas.PROMPT_IDS);
        this.seed = (BigIntVector) root.getVector(ArrowSchemas.SEED);
    }

    /** Tokenizes {@code text} with the checkpoint's special tokens and appends it. */
    public int add(String id, String text, TextTokenizer tokenizer, long rowSeed) {
        return add(id, text, tokenizer.encode(text), rowSeed);
    }

    /** Appends a prompt whose ids are already known (e.g. after left truncation). */
    public int add(String id, String text, int[] promptIds, long rowSeed) {
        ensureOpen();
        if (id == null) {
            throw new IllegalArgumentException("row_id must not be null");
        }
        int row = nextRow();
        ArrowLists.writeString(rowId, row, id);
        ArrowLists.writeString(prompt, row, text);
        ArrowLists.writeInts(ids, row, promptIds);
        seed.setSafe(row, rowSeed);
        return row;
    }
}
