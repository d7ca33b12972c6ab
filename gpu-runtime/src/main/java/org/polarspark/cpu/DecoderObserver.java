package org.polarspark.cpu;

/**
 * Sees a decoder's intermediate values, layer by layer: what calibration collects (router
 * inputs, per-head attention outputs, which MLP neurons fire) and what the mask tests inspect.
 * All arrays are row-major over the call's tokens. On the CPU decoder they are its own fp32
 * buffers for the call (copy what you keep); through {@code CudaDecoder.observeDense} they are
 * host copies of the device's bf16 activations widened to float, one call per layer covering
 * the whole sequence.
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
     * @param output      (tokens, hidden): the MLP's output before the residual add; null where
     *                    a backend fuses it into the residual add (the CUDA decoder)
     */
    default void mlp(int layer, float[] activations, float[] output) {
    }
}
