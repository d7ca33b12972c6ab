package org.polarspark.polar;

/**
 * Polar Sparsity's two selections, as the decoders ask for them at each layer.
 *
 * <p>Head (KV-group) selection is per row and per token: the attention output of every query head
 * in an unselected group is zero before the output projection, which itself stays dense. K and V
 * are still computed and appended for every head. For multi-head attention a group is one head.
 *
 * <p>Neuron selection (ReLU MLP models only) is one set for the whole batch at a layer: fc1
 * outputs of unselected neurons are zero, so fc2 sums only over the selected ones.
 *
 * <p>Both receive the layer's router input: the pre-attention norm output (the input of the
 * q/k/v projections). Returning null keeps everything (dense), and the decoders then follow the
 * exact dense arithmetic, so an all-selected policy equals dense bit for bit.
 */
public interface SparsityPolicy {
    /** Keeps every head and neuron. */
    SparsityPolicy DENSE = new SparsityPolicy() {
    };

    /**
     * KV groups kept for one token.
     *
     * @param layer    decoder layer
     * @param row      row of the batch in this forward call
     * @param position the token's position in its sequence
     * @param x        router inputs, row-major [tokens][hidden]
     * @param offset   where this token's vector starts in {@code x}
     * @return a mask of length numKvHeads, or null for all
     */
    default boolean[] selectGroups(int layer, int row, int position, float[] x, int offset) {
        return null;
    }

    /**
     * MLP neurons kept for the whole batch at one layer.
     *
     * @param layer  decoder layer
     * @param x      router inputs of every token of the batch, row-major [tokens][hidden]
     * @param tokens number of tokens in {@code x}
     * @return a mask of length ffnDim, or null for all
     */
    default boolean[] selectNeurons(int layer, float[] x, int tokens) {
        return null;
    }
}
