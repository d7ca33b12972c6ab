package org.polarspark.job;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The registry: every option of the job, each defined once. {@code --help} and the README's
 * option table are generated from it ({@link #help}, {@link #markdown}).
 *
 * <p>Where a value comes from, lowest precedence first: the default here, a properties file
 * ({@code --conf-file}), Spark settings {@code spark.polar.<name>} (spark-defaults.conf or
 * {@code --conf}), the command line ({@code --name value} or {@code --name=value}).
 */
public final class JobOptions {
    private JobOptions() {
    }

    private static final String JOB = "job";
    private static final String INPUT = "input";
    private static final String MODEL = "model and engine";
    private static final String POLAR = "polar sparsity";
    private static final String SAMPLING = "sampling (generate)";
    private static final String CALIBRATION = "calibration (calibrate)";
    private static final String TEST = "test hooks";

    public static final JobOption<String> MODE = JobOption.builder("mode", JOB,
                    "generate: sample continuations of each prompt; score: log-likelihood and "
                            + "perplexity of each text (lm-eval loglikelihood_rolling); mc: "
                            + "multiple-choice log-likelihoods, acc and acc_norm (lm-eval); "
                            + "calibrate: train Polar Sparsity routers for the model on a text "
                            + "corpus and write <output>/polar/ (polar.json, routers.safetensors;"
                            + " see the README, \"Calibration\").")
            .defaultValue("generate").choice("generate", "score", "mc", "calibrate");
    public static final JobOption<String> INPUT_PATH = JobOption.builder("input", INPUT,
                    "Input file, directory or glob, on any Hadoop file system (file:, hdfs:, "
                            + "s3a:, ...). Not used by calibrate (see corpus).")
            .modes(Mode.GENERATE, Mode.SCORE, Mode.MC).nonEmpty();
    public static final JobOption<String> INPUT_FORMAT = JobOption.builder("input-format", INPUT,
                    "parquet, jsonl (one JSON object per line) or text (one prompt per line; "
                            + "every line is a row). auto: from the extension (.parquet; .jsonl/"
                            + ".json/.ndjson; .txt), of the first file for a directory.")
            .defaultValue("auto").modes(Mode.GENERATE, Mode.SCORE, Mode.MC).choice("auto", "parquet", "jsonl", "text");
    public static final JobOption<String> ID_COLUMN = JobOption.builder("id-column", INPUT,
                    "Column whose value (as a string) becomes row_id. Empty: row_id is derived "
                            + "from the input, '<file>:<position>' (see the README).")
            .defaultValue("").modes(Mode.GENERATE, Mode.SCORE, Mode.MC).string();
    public static final JobOption<String> PROMPT_COLUMN = JobOption.builder("prompt-column",
                    INPUT, "Column holding the prompt (generate).")
            .defaultValue("prompt").modes(Mode.GENERATE).nonEmpty();
    public static final JobOption<String> TEXT_COLUMN = JobOption.builder("text-column", INPUT,
                    "Column holding the text to score (score).")
            .defaultValue("text").modes(Mode.SCORE).nonEmpty();
    public static final JobOption<String> CONTEXT_COLUMN = JobOption.builder("context-column",
                    INPUT, "Column holding the question's context (mc).")
            .defaultValue("context").modes(Mode.MC).nonEmpty();
    public static final JobOption<String> CHOICES_COLUMN = JobOption.builder("choices-column",
                    INPUT, "Column holding the choices, an array of strings, each scored as a "
                            + "continuation of the context (mc).")
            .defaultValue("choices").modes(Mode.MC).nonEmpty();
    public static final JobOption<String> LABEL_COLUMN = JobOption.builder("label-column", INPUT,
                    "Column holding the index of the correct choice (mc).")
            .defaultValue("label").modes(Mode.MC).nonEmpty();
    public static final JobOption<List<String>> PASSTHROUGH = JobOption.builder("passthrough",
                    INPUT, "Input columns copied unchanged into every output row (after the "
                            + "job's own columns).")
            .defaultValue("").modes(Mode.GENERATE, Mode.SCORE, Mode.MC).list();
    public static final JobOption<Integer> PARTITIONS = JobOption.builder("partitions", INPUT,
                    "Partitions (tasks) to process the rows in. 0: the input's own "
                            + "partitioning, or twice spark.default.parallelism when the input "
                            + "has fewer partitions than that. When the input is repartitioned, "
                            + "rows are hashed by row_id and sorted by row_id within a "
                            + "partition. calibrate: the tasks the calibration windows are "
                            + "spread over (0: spark.default.parallelism).")
            .defaultValue("0").intRange(0, 1_000_000);
    public static final JobOption<String> LONG_PROMPT_POLICY = JobOption.builder(
                    "long-prompt-policy", INPUT,
                    "A prompt (generate) or context + choice (mc) longer than the model's "
                            + "context: error makes it an error row; truncate_left drops its "
                            + "oldest tokens (keeping a leading BOS) and marks it truncated.")
            .defaultValue("error").modes(Mode.GENERATE, Mode.MC).choice("error", "truncate_left");

    public static final JobOption<String> OUTPUT = JobOption.builder("output", JOB,
                    "Output directory (Parquet part files, _stats/, _summary.json), on any "
                            + "Hadoop file system.")
            .nonEmpty();
    public static final JobOption<String> OUTPUT_MODE = JobOption.builder("output-mode", JOB,
                    "error: refuse to write into an existing output; overwrite: replace it.")
            .defaultValue("error").choice("error", "overwrite");
    public static final JobOption<Integer> PROGRESS_INTERVAL = JobOption.builder(
                    "progress-interval-s", JOB, "Seconds between progress log lines (rows "
                            + "done, total, ETA); a line is also logged when a task ends.")
            .defaultValue("10").intRange(1, 3600);

    public static final JobOption<String> MODEL_PATH = JobOption.builder("model", MODEL,
                    "Model directory (config.json, *.safetensors, tokenizer.json) on any Hadoop "
                            + "file system. Non-local models are copied once per executor to "
                            + "model-cache-dir.")
            .nonEmpty();
    public static final JobOption<String> BACKEND = JobOption.builder("backend", MODEL,
                    "cpu, cuda, or auto (cuda when the task was given a GPU by Spark's resource "
                            + "scheduling, else cpu). cuda where it cannot run fails the job; "
                            + "there is no silent fallback.")
            .defaultValue("auto").choice("cpu", "cuda", "auto");
    public static final JobOption<String> CUDA_DTYPE = JobOption.builder("cuda-dtype", MODEL,
                    "Element type of the cuda backend's weights, activations and KV cache "
                            + "(residual stream and accumulation are fp32 in both): bf16 "
                            + "(fp32's range, 8 significant bits) or fp16 (11 significant bits, "
                            + "finite only up to 65504: a weight beyond it fails the engine's "
                            + "load, an activation beyond it becomes inf; suits models trained "
                            + "in fp16, such as OPT). The cpu backend computes in fp32 whatever "
                            + "this says.")
            .defaultValue("bf16").choice("bf16", "fp16");
    public static final JobOption<Integer> MAX_BATCH = JobOption.builder("max-batch", MODEL,
                    "Sequences decoded together by the engine (continuous-batching slots).")
            .defaultValue("8").intRange(1, 4096);
    public static final JobOption<Integer> BATCH_ROWS = JobOption.builder("batch-rows", MODEL,
                    "Rows per Arrow batch handed to the engine in one call; the engine keeps "
                            + "max-batch of them in flight. Progress is counted per batch.")
            .defaultValue("64").intRange(1, 1_000_000);
    public static final JobOption<String> MODEL_CACHE_DIR = JobOption.builder("model-cache-dir",
                    MODEL, "Executor-local directory for copies of non-local models (and "
                            + "polar-dirs). Empty: <java.io.tmpdir>/polar-spark-models.")
            .defaultValue("").string();

    public static final JobOption<Boolean> POLAR_ON = JobOption.builder("polar", POLAR,
                    "Polar Sparsity: routers choose, per token and layer, the attention heads "
                            + "(KV groups) to compute and, for ReLU-MLP models whose polar.json "
                            + "has an MLP table, the MLP neurons. Needs polar/polar.json and its "
                            + "router file under polar-dir; missing or mismatched routers are a "
                            + "startup error (or fail the job), never a silent dense run. false: "
                            + "dense.")
            .defaultValue("false").modes(Mode.GENERATE, Mode.SCORE, Mode.MC).bool();
    public static final JobOption<String> POLAR_DIR = JobOption.builder("polar-dir", POLAR,
                    "Directory holding polar/ (polar.json and the router file), on any Hadoop "
                            + "file system; a non-local one is copied once per executor to "
                            + "model-cache-dir, as the model is. Empty: the model directory.")
            .defaultValue("").modes(Mode.GENERATE, Mode.SCORE, Mode.MC).string();
    public static final JobOption<Double> POLAR_DENSITY = JobOption.builder("polar-density",
                    POLAR, "Head density for every layer but layer 0 (which keeps polar.json's, "
                            + "dense unless the file allows otherwise), overriding polar.json's: "
                            + "each token keeps max(1, floor(density x KV groups)) groups. "
                            + "Empty: polar.json's densities. calibrate: the head density "
                            + "written into the new polar.json for layers 1.. (empty: 0.5).")
            .defaultValue("").optionalDoubleRange(0, true, 1, false);
    public static final JobOption<Boolean> POLAR_EVERY_TOKEN = JobOption.builder(
                    "polar-every-token", POLAR,
                    "false: Polar in decode steps only, prompts and contexts prefilled dense (as "
                            + "deployed; score and mc feed each continuation token as a decode "
                            + "step); true: every token, prompt included, goes through the "
                            + "routers (as the paper measured accuracy).")
            .defaultValue("false").modes(Mode.GENERATE, Mode.SCORE, Mode.MC).bool();

    public static final JobOption<String> CORPUS = JobOption.builder("corpus", CALIBRATION,
                    "Calibration text (UTF-8 plain text, paragraphs separated by blank lines), "
                            + "on any Hadoop file system; read by the driver, tokenized without "
                            + "special tokens and cut into windows of the model's context (at "
                            + "most 512) spread evenly over it.")
            .defaultValue("datasets/corpus/train.txt").modes(Mode.CALIBRATE).nonEmpty();
    public static final JobOption<Integer> CALIBRATION_TOKENS = JobOption.builder(
                    "calibration-tokens", CALIBRATION,
                    "Token budget: tokens whose router inputs and labels are recorded per layer "
                            + "(the paper's 400k); capped by the corpus. 5% are held out for "
                            + "validation and the MLP k table.")
            .defaultValue("400000").modes(Mode.CALIBRATE).intRange(2, Integer.MAX_VALUE);
    public static final JobOption<String> CALIBRATION_SPILL_DIR = JobOption.builder(
                    "calibration-spill-dir", CALIBRATION,
                    "Where the collection tasks spill their samples (layer-<l>/part-<task>.bin) "
                            + "for the training tasks, on any Hadoop file system. On a cluster it "
                            + "must be shared by the executors (HDFS, S3A, an NFS path): a "
                            + "training task reads its layer's files from every collection task. "
                            + "Empty: <output>/_calibration-spill.")
            .defaultValue("").modes(Mode.CALIBRATE).string();
    public static final JobOption<Boolean> CALIBRATION_KEEP_SPILL = JobOption.builder(
                    "calibration-keep-spill", CALIBRATION,
                    "Keep the spilled samples after a successful run (else they are deleted).")
            .defaultValue("false").modes(Mode.CALIBRATE).bool();
    public static final JobOption<Integer> CALIBRATION_HEAD_EPOCHS = JobOption.builder(
                    "calibration-head-epochs", CALIBRATION,
                    "Epochs of head-router training (the best validation-recall epoch is kept).")
            .defaultValue("10").modes(Mode.CALIBRATE).intRange(1, 1000);
    public static final JobOption<Integer> CALIBRATION_MLP_EPOCHS = JobOption.builder(
                    "calibration-mlp-epochs", CALIBRATION,
                    "Epochs of MLP-router training, ReLU models only (the best validation-F1 "
                            + "epoch is kept).")
            .defaultValue("6").modes(Mode.CALIBRATE).intRange(1, 1000);
    public static final JobOption<Integer> CALIBRATION_RANK = JobOption.builder(
                    "calibration-rank", CALIBRATION,
                    "r, the MLP router's inner width (hidden -> r -> ffn).")
            .defaultValue("64").modes(Mode.CALIBRATE).intRange(1, 65536);
    public static final JobOption<Long> CALIBRATION_SEED = JobOption.builder(
                    "calibration-seed", CALIBRATION,
                    "Seed of the train/validation split, initialisation and shuffling (layer l "
                            + "uses seed + 7919 l).")
            .defaultValue("1234").modes(Mode.CALIBRATE).anyLong();

    public static final JobOption<Double> TEMPERATURE = JobOption.builder("temperature",
                    SAMPLING, "0 for greedy decoding; otherwise logits are divided by it.")
            .defaultValue("1.0").modes(Mode.GENERATE).doubleRange(0, false,
                    Double.POSITIVE_INFINITY, true);
    public static final JobOption<Double> TOP_P = JobOption.builder("top-p", SAMPLING,
                    "Nucleus sampling: keep the most likely tokens whose probability reaches "
                            + "top-p (1 keeps all).")
            .defaultValue("1.0").modes(Mode.GENERATE).doubleRange(0, true, 1, false);
    public static final JobOption<Integer> TOP_K = JobOption.builder("top-k", SAMPLING,
                    "Keep the top-k most likely tokens; -1 keeps all.")
            .defaultValue("-1").modes(Mode.GENERATE).intRange(-1, Integer.MAX_VALUE);
    public static final JobOption<Integer> MAX_TOKENS = JobOption.builder("max-tokens",
                    SAMPLING, "Most tokens generated per sequence (generation also ends at the "
                            + "model's context).")
            .defaultValue("16").modes(Mode.GENERATE).intRange(1, 1_000_000);
    public static final JobOption<List<String>> STOP = JobOption.builder("stop", SAMPLING,
                    "Stop strings: generation ends when one appears; it is not part of "
                            + "generated_text. Repeat the option or separate with commas.")
            .defaultValue("").modes(Mode.GENERATE).list();
    public static final JobOption<Long> SEED = JobOption.builder("seed", SAMPLING,
                    "Job seed. A row's seed is a hash of (seed, row_id), so a retried task "
                            + "samples the same tokens.")
            .defaultValue("0").modes(Mode.GENERATE).anyLong();
    public static final JobOption<Integer> N = JobOption.builder("n", SAMPLING,
                    "Samples per prompt; each is an output row (sample_index 0..n-1).")
            .defaultValue("1").modes(Mode.GENERATE).intRange(1, 1024);
    public static final JobOption<Integer> LOGPROBS = JobOption.builder("logprobs", SAMPLING,
                    "Empty: no per-token log-probabilities. k: the sampled tokens' "
                            + "log-probabilities (logprobs column) plus the k most likely "
                            + "tokens at each step (top_logprobs).")
            .defaultValue("").modes(Mode.GENERATE).optionalIntRange(0, 20);

    public static final JobOption<String> TEST_FAIL_ONCE_MARKER = JobOption.builder(
                    "test.fail-once-marker", TEST,
                    "Test hook: the first attempt of partition test.fail-partition creates "
                            + "this file and fails after its first batch.")
            .defaultValue("").hidden().string();
    public static final JobOption<Integer> TEST_FAIL_PARTITION = JobOption.builder(
                    "test.fail-partition", TEST, "Test hook: see test.fail-once-marker.")
            .defaultValue("0").hidden().intRange(0, Integer.MAX_VALUE);
    public static final JobOption<Integer> TEST_ROW_DELAY_MS = JobOption.builder(
                    "test.row-delay-ms", TEST, "Test hook: sleep this long per row, to keep "
                            + "tasks running while a test kills a worker.")
            .defaultValue("0").hidden().intRange(0, 60_000);

    /** Every option, in the order {@code --help} lists them. */
    public static final List<JobOption<?>> ALL = List.of(MODE, OUTPUT, OUTPUT_MODE,
            PROGRESS_INTERVAL, INPUT_PATH, INPUT_FORMAT, ID_COLUMN, PROMPT_COLUMN, TEXT_COLUMN,
            CONTEXT_COLUMN, CHOICES_COLUMN, LABEL_COLUMN, PASSTHROUGH, PARTITIONS,
            LONG_PROMPT_POLICY, MODEL_PATH, BACKEND, CUDA_DTYPE, MAX_BATCH, BATCH_ROWS, MODEL_CACHE_DIR,
            POLAR_ON, POLAR_DIR, POLAR_DENSITY, POLAR_EVERY_TOKEN,
            CORPUS, CALIBRATION_TOKENS, CALIBRATION_SPILL_DIR, CALIBRATION_KEEP_SPILL,
            CALIBRATION_HEAD_EPOCHS, CALIBRATION_MLP_EPOCHS, CALIBRATION_RANK, CALIBRATION_SEED,
            TEMPERATURE, TOP_P, TOP_K, MAX_TOKENS, STOP, SEED, N, LOGPROBS,
            TEST_FAIL_ONCE_MARKER, TEST_FAIL_PARTITION, TEST_ROW_DELAY_MS);

    private static final Map<String, JobOption<?>> BY_NAME = new LinkedHashMap<>();

    static {
        for (JobOption<?> o : ALL) {
            if (BY_NAME.put(o.name(), o) != null) {
                throw new AssertionError("option defined twice: " + o.name());
            }
        }
    }

    /** The option called {@code name}, or null. */
    public static JobOption<?> find(String name) {
        return BY_NAME.get(name);
    }

    /** The closest option name to a misspelled one (edit distance <= 3), or null. */
    static String suggest(String name) {
        String best = null;
        int bestD = 4;
        for (String n : BY_NAME.keySet()) {
            int d = distance(name, n);
            if (d < bestD) {
                bestD = d;
                best = n;
            }
        }
        return best;
    }

    private static int distance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            prev[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int sub = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(sub, Math.min(prev[j] + 1, cur[j - 1] + 1));
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }

    private static String modes(JobOption<?> o) {
        if (o.modes().size() == Mode.values().length) {
            return "all";
        }
        StringBuilder sb = new StringBuilder();
        for (Mode m : o.modes()) {
            sb.append(sb.length() == 0 ? "" : ", ").append(m.wire());
        }
        return sb.toString();
    }

    private static String shownDefault(JobOption<?> o) {
        if (o.defaultValue() == null) {
            return "(required)";
        }
        return o.defaultValue().isEmpty() ? "(empty)" : o.defaultValue();
    }

    /** The text {@code --help} prints. */
    public static String help() {
        StringBuilder sb = new StringBuilder();
        sb.append("Usage: PolarJob [--conf-file FILE] [--OPTION VALUE | --OPTION=VALUE]...\n\n")
                .append("Offline LLM inference over a corpus on Spark. Options may also be set")
                .append(" as Spark\nsettings spark.polar.OPTION (spark-defaults.conf, --conf) or")
                .append(" in a properties file\n(--conf-file, keys OPTION or spark.polar.OPTION).")
                .append(" Precedence, lowest first:\ndefault < --conf-file < spark.polar.* <")
                .append(" command line.\n");
        String group = null;
        for (JobOption<?> o : ALL) {
            if (o.hidden()) {
                continue;
            }
            if (!o.group().equals(group)) {
                group = o.group();
                sb.append("\n").append(group.toUpperCase(java.util.Locale.ROOT)).append("\n");
            }
            sb.append("  --").append(o.name()).append("  (").append(o.defaultValue() == null
                            ? "required" : "default: " + shownDefault(o))
                    .append("; modes: ").append(modes(o)).append(")\n");
            sb.append(wrap(o.doc() + " Allowed: " + o.allowed() + ".", 6, 92));
        }
        sb.append("\n  --conf-file FILE  a properties file of options\n")
                .append("  --help            this text\n");
        return sb.toString();
    }

    /** The option table of the README, in Markdown. */
    public static String markdown() {
        StringBuilder sb = new StringBuilder();
        sb.append("| option | default | modes | allowed | meaning |\n")
                .append("| --- | --- | --- | --- | --- |\n");
        for (JobOption<?> o : ALL) {
            if (o.hidden()) {
                continue;
            }
            sb.append("| `").append(o.name()).append("` | ").append(shownDefault(o))
                    .append(" | ").append(modes(o)).append(" | ")
                    .append(o.allowed().replace("|", "\\|")).append(" | ")
                    .append(o.doc().replace("|", "\\|")).append(" |\n");
        }
        return sb.toString();
    }

    private static String wrap(String text, int indent, int width) {
        StringBuilder sb = new StringBuilder();
        StringBuilder line = new StringBuilder(" ".repeat(indent));
        for (String word : text.split(" ")) {
            if (line.length() + word.length() + 1 > width && line.length() > indent) {
                sb.append(line).append('\n');
                line = new StringBuilder(" ".repeat(indent));
            }
            if (line.length() > indent) {
                line.append(' ');
            }
            line.append(word);
        }
        sb.append(line).append('\n');
        return sb.toString();
    }
}
