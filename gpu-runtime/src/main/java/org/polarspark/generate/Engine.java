package org.polarspark.generate;

import java.util.List;
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

    /** Results of one call with the counters it accumulated. */
    record Result<T>(List<T> results, EngineStats stats) {
    }

    @Override
    void close();
}
