package org.polarspark.cpu;

/**
 * Sees the CPU decoder's intermediate values, layer by layer: what calibration collects (router
 * inputs, per-head attention outputs, which MLP neurons fire) and what the mask tests inspect.
 * All arrays are the decoder's own buffers for the call, row-major over the call's tokens;
 * copy what you keep.
 */
public interface DecoderObserver {
    DecoderObserver NONE = new DecoderObserver() {
    };

    /**
     * After attention at one layer.
     *
     * @param layer       decoder layer
     * @param routerInput (tokens, hidden): the q/k/v projections' input (pre-attention norm output)
     * @param attention   (tokens, numHeads * headDim): attention output before o_proj, zero for
     *                    the heads of unselected groups
     * @param rowOf       row of each token in the call
     * @param posOf       position of each token in its sequence
     */
    default void attention(int layer, float[] routerInput, float[] attention, int[] rowOf,
                           int[] posOf) {
    }

    /**
     * After the MLP at one layer.
     *
     * @param layer       decoder layer
     * @param activations (tokens, ffn): what enters fc2 / down_proj (ReLU(fc1) for OPT, zero for
     *                    unselected neurons; silu(gate) * up for LLaMA)
     * @param output      (tokens, hidden): the MLP's output before the residual add
     */
    default void mlp(int layer, float[] activations, float[] output) {
    }
}
