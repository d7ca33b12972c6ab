package org.polarspark.job;

import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.polarspark.cuda.CudaDtype;
import org.polarspark.generate.Backend;
import org.polarspark.generate.SamplingParams;
import org.polarspark.polar.PolarSettings;

/**
 * The job's settings, immutable and validated; built from {@link JobOptions} (see
 * {@link #fromArgs}). Serializable: executors receive it with the partition function.
 */
public record JobConfig(
        Mode mode, String input, String inputFormat, String idColumn, String promptColumn,
        String textColumn, String contextColumn, String choicesColumn, String labelColumn,
        List<String> passthrough, int partitions, boolean truncateLeft,
        String output, boolean overwrite, int progressIntervalS,
        String model, Backend backend, CudaDtype cudaDtype, int maxBatch, int batchRows, String modelCacheDir,
        boolean polar, String polarDir, Double polarDensity, boolean polarEveryToken,
        double temperature, double topP, int topK, int maxTokens, List<String> stop, long seed,
        int n, Integer logprobs,
        String corpus, int calibrationTokens, String calibrationSpillDir,
        boolean calibrationKeepSpill, int calibrationHeadEpochs, int calibrationMlpEpochs,
        int calibrationRank, long calibrationSeed,
        String testFailOnceMarker, int testFailPartition, int testRowDelayMs)
        implements Serializable {

    public JobConfig {
        if (cudaDtype == null) {
            throw new JobConfigException("option 'cuda-dtype' must be one of bf16, fp16");
        }
        passthrough = List.copyOf(passthrough);
        stop = List.copyOf(stop);
        if (mode != Mode.GENERATE) {
            n = 1;
        }
        if (mode == Mode.CALIBRATE) {
            // Calibration runs the dense model; polar-density is the density it writes.
            polar = false;
            polarDir = null;
            polarEveryToken = false;
        }
        if (calibrationSpillDir != null && calibrationSpillDir.isEmpty()) {
            calibrationSpillDir = null;
        }
        // Cross-option checks; single options were checked by their parsers.
        if (idColumn != null && idColumn.isEmpty()) {
            idColumn = null;
        }
        if (testFailOnceMarker != null && testFailOnceMarker.isEmpty()) {
            testFailOnceMarker = null;
        }
        if (modelCacheDir != null && modelCacheDir.isEmpty()) {
            modelCacheDir = null;
        }
        if (polarDir != null && polarDir.isEmpty()) {
            polarDir = null;
        }
        if (polarDensity != null && !(polarDensity > 0 && polarDensity <= 1)) {
            throw new JobConfigException("option 'polar-density' must be in (0, 1]; got "
                    + polarDensity);
        }
        if (passthrough.stream().distinct().count() != passthrough.size()) {
            throw new JobConfigException("option 'passthrough' names a column twice: "
                    + passthrough);
        }
        try { // SamplingParams validates its own ranges once more (fields are not set yet)
            new SamplingParams(temperature, topP, topK, maxTokens, stop, seed, n, logprobs);
        } catch (IllegalArgumentException e) {
            throw new JobConfigException("sampling options: " + e.getMessage(), e);
        }
    }

    /** Parses a command line plus Spark's {@code spark.polar.*} settings. */
    public static JobConfig fromArgs(List<String> args, Map<String, String> sparkPolar) {
        return from(RawOptions.collect(args, sparkPolar));
    }

    static JobConfig from(RawOptions o) {
        Mode mode = Mode.parse(o.get(JobOptions.MODE));
        return new JobConfig(mode,
                mode == Mode.CALIBRATE ? o.get(JobOptions.INPUT_PATH)
                        : o.require(JobOptions.INPUT_PATH), o.get(JobOptions.INPUT_FORMAT),
                o.get(JobOptions.ID_COLUMN), o.get(JobOptions.PROMPT_COLUMN),
                o.get(JobOptions.TEXT_COLUMN), o.get(JobOptions.CONTEXT_COLUMN),
                o.get(JobOptions.CHOICES_COLUMN), o.get(JobOptions.LABEL_COLUMN),
                o.get(JobOptions.PASSTHROUGH), o.get(JobOptions.PARTITIONS),
                o.get(JobOptions.LONG_PROMPT_POLICY).equals("truncate_left"),
                o.require(JobOptions.OUTPUT), o.get(JobOptions.OUTPUT_MODE).equals("overwrite"),
                o.get(JobOptions.PROGRESS_INTERVAL),
                o.require(JobOptions.MODEL_PATH), Backend.parse(o.get(JobOptions.BACKEND)),
                CudaDtype.parse(o.get(JobOptions.CUDA_DTYPE)),
                o.get(JobOptions.MAX_BATCH), o.get(JobOptions.BATCH_ROWS),
                o.get(JobOptions.MODEL_CACHE_DIR),
                o.get(JobOptions.POLAR_ON), o.get(JobOptions.POLAR_DIR),
                o.get(JobOptions.POLAR_DENSITY), o.get(JobOptions.POLAR_EVERY_TOKEN),
                o.get(JobOptions.TEMPERATURE), o.get(JobOptions.TOP_P), o.get(JobOptions.TOP_K),
                o.get(JobOptions.MAX_TOKENS), o.get(JobOptions.STOP), o.get(JobOptions.SEED),
                o.get(JobOptions.N), o.get(JobOptions.LOGPROBS),
                o.get(JobOptions.CORPUS), o.get(JobOptions.CALIBRATION_TOKENS),
                o.get(JobOptions.CALIBRATION_SPILL_DIR), o.get(JobOptions.CALIBRATION_KEEP_SPILL),
                o.get(JobOptions.CALIBRATION_HEAD_EPOCHS), o.get(JobOptions.CALIBRATION_MLP_EPOCHS),
                o.get(JobOptions.CALIBRATION_RANK), o.get(JobOptions.CALIBRATION_SEED),
                o.get(JobOptions.TEST_FAIL_ONCE_MARKER), o.get(JobOptions.TEST_FAIL_PARTITION),
                o.get(JobOptions.TEST_ROW_DELAY_MS));
    }

    /** The sampling settings handed to the engine (generate mode). */
    public SamplingParams sampling() {
        return new SamplingParams(temperature, topP, topK, maxTokens, stop, seed, n, logprobs);
    }

    /**
     * The engine's Polar Sparsity settings.
     *
     * @param localPolarDir the local directory holding {@code polar/}, or null for the model
     *                      directory
     */
    public PolarSettings polarSettings(java.nio.file.Path localPolarDir) {
        if (!polar) {
            return PolarSettings.OFF;
        }
        return new PolarSettings(true, localPolarDir, polarDensity, polarEveryToken);
    }

    /** Polar options that were set although Polar is off (they have no effect). */
    public List<String> idlePolarOptions() {
        List<String> out = new java.util.ArrayList<>();
        if (!polar && mode != Mode.CALIBRATE) {
            if (polarDir != null) {
                out.add(JobOptions.POLAR_DIR.name());
            }
            if (polarDensity != null) {
                out.add(JobOptions.POLAR_DENSITY.name());
            }
            if (polarEveryToken) {
                out.add(JobOptions.POLAR_EVERY_TOKEN.name());
            }
        }
        return out;
    }

    /** The input columns each row needs, by mode. */
    public List<String> requiredColumns() {
        return switch (mode) {
            case GENERATE -> List.of(promptColumn);
            case SCORE -> List.of(textColumn);
            case MC -> List.of(contextColumn, choicesColumn, labelColumn);
            case CALIBRATE -> List.of();
        };
    }

    /** Sampling settings in vLLM's names, as recorded in the Parquet metadata and summary. */
    public Map<String, Object> samplingSettings() {
        Map<String, Object> m = new LinkedHashMap<>();
        if (mode != Mode.GENERATE) {
            return m;
        }
        m.put("temperature", temperature);
        m.put("top_p", topP);
        m.put("top_k", topK);
        m.put("max_tokens", maxTokens);
        m.put("stop", stop);
        m.put("seed", seed);
        m.put("n", n);
        m.put("logprobs", logprobs);
        return m;
    }

    /** The effective options that describe the result (test hooks left out). */
    public Map<String, Object> describe() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("mode", mode.wire());
        if (mode == Mode.CALIBRATE) {
            m.put("corpus", corpus);
            m.put("calibration-tokens", calibrationTokens);
            m.put("calibration-spill-dir", calibrationSpillDir);
            m.put("calibration-head-epochs", calibrationHeadEpochs);
            m.put("calibration-mlp-epochs", calibrationMlpEpochs);
            m.put("calibration-rank", calibrationRank);
            m.put("calibration-seed", calibrationSeed);
            m.put("polar-density", polarDensity);
            m.put("output", output);
            m.put("model", model);
            m.put("backend", backend.wire());
            m.put("cuda-dtype", cudaDtype.wire());
            m.put("partitions", partitions);
            return m;
        }
        m.put("input", input);
        m.put("input-format", inputFormat);
        m.put("id-column", idColumn);
        switch (mode) {
            case GENERATE -> m.put("prompt-column", promptColumn);
            case SCORE -> m.put("text-column", textColumn);
            case MC -> {
                m.put("context-column", contextColumn);
                m.put("choices-column", choicesColumn);
                m.put("label-column", labelColumn);
            }
            default -> throw new AssertionError(mode);
        }
        m.put("passthrough", passthrough);
        m.put("long-prompt-policy", truncateLeft ? "truncate_left" : "error");
        m.put("output", output);
        m.put("model", model);
        m.put("backend", backend.wire());
        m.put("cuda-dtype", cudaDtype.wire());
        m.put("max-batch", maxBatch);
        m.put("batch-rows", batchRows);
        m.put("polar", polar);
        if (polar) {
            m.put("polar-dir", polarDir);
            m.put("polar-density", polarDensity);
            m.put("polar-every-token", polarEveryToken);
        }
        m.putAll(samplingSettings());
        return m;
    }
}
