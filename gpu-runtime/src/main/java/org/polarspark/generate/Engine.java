package org.polarspark.generate;

import java.util.List;
import org.polarspark.cpu.DecoderObserver;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.TextTokenizer;

/**
 * What the Spark job runs: one loaded model on one backend. The CPU and CUDA backends implement
 * it identically, so the job never knows which one it has.
 *
 * <p>Implementations are thread-safe: an executor's concurrent tasks may share one engine. Each
 * call's results depend only on its requests (and seeds), never on other concurrent calls.
 */
public interface Engine extends AutoCloseable {
    ModelConfig config();

    TextTokenizer tokenizer();

    /** "cpu" or "cuda". */
    String backend();

    /** Human-readable device, e.g. "NVIDIA H100 80GB HBM3" or "cpu". */
    String deviceName();

    /** One result per request, in order. Requests must be valid (see GenerationRequest). */
    Result<GenerationResult> generate(List<GenerationRequest> requests);

    /** One result per request, in order. */
    Result<LoglikelihoodResult> loglikelihood(List<LoglikelihoodRequest> requests);

    /**
     * True when this backend can run {@link #observeDense}: calibration (collecting router
     * training samples) needs it. The CPU and CUDA engines can (the CUDA one copies its
     * prefill's bf16 activations to the host, layer by layer); the default is false, for an
     * engine without decoder hooks.
     */
    default boolean canObserve() {
        return false;
    }

    /**
     * One dense forward of one token sequence (no KV cache kept), reporting every layer's
     * intermediate values to {@code observer} (see {@link DecoderObserver} for the arrays'
     * shapes), once per layer over the whole sequence, in layer order. This is what calibration
     * runs. Thread-safe like the other calls.
     *
     * @throws IllegalArgumentException when tokens.length is not 1..maxPositions
     * @throws UnsupportedOperationException when {@link #canObserve} is false, naming the
     *                                       backend
     */
    default void observeDense(int[] tokens, DecoderObserver observer) {
        throw new UnsupportedOperationException("the " + backend() + " backend cannot collect "
                + "calibration samples (it has no decoder observer); calibrate with the cpu "
                + "or cuda backend (option --backend cpu or --backend cuda)");
    }

    /** Results of one call with the counters it accumulated. */
    record Result<T>(List<T> results, EngineStats stats) {
    }

    @Override
    void close();
}
