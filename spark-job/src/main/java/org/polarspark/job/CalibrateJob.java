package org.polarspark.job;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.function.Function;
import org.apache.spark.sql.SparkSession;
import org.polarspark.generate.Engine;
import org.polarspark.generate.EngineFactory;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.ModelFormatException;
import org.polarspark.model.TextTokenizer;
import org.polarspark.polar.Calibration;
import org.polarspark.polar.CalibrationSamples;
import org.polarspark.polar.KTableTuner;
import org.polarspark.polar.PolarConfig;
import org.polarspark.polar.RouterCalibration;
import org.polarspark.polar.RouterTrainer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code --mode calibrate}: Polar Sparsity router calibration as Spark work, with the same code
 * as {@code org.polarspark.polar.CalibrateMain} ({@link Calibration} and
 * {@link RouterCalibration}).
 *
 * <ol>
 *   <li>Driver: check the model and the corpus, tokenize the corpus, plan the windows
 *       ({@link Calibration#plan}: BOS + up to 511 tokens each, spread evenly over the corpus,
 *       {@code calibration-tokens} in all).</li>
 *   <li>Stage "collect": the windows are cut into {@code partitions} contiguous slices, one task
 *       each. A task runs its windows densely through the executor's engine
 *       ({@link Engine#observeDense}: cpu in fp32 or cuda from its bf16 activations; a
 *       backend must be able to observe, {@link EngineFactory#canObserve}), appending each
 *       layer's records to a local file as it goes (one window's records in memory at a time),
 *       then copies the files to {@code <spill>/layer-<l>/part-<task>.bin} (written under a
 *       temporary name and renamed, so a retried task replaces its part).</li>
 *   <li>Stage "train": one task per layer. It concatenates its layer's parts in task order (the
 *       windows' order: the same samples as a one-JVM run) into a local file, trains the head
 *       router, the MLP router and the layer's k table ({@link RouterCalibration#trainLayer}) and
 *       returns them.</li>
 *   <li>Driver: {@link RouterCalibration#assemble}, then writes {@code <output>/polar/polar.json},
 *       {@code <output>/polar/routers.safetensors} and {@code <output>/_summary.json}; the spill
 *       is deleted unless {@code calibration-keep-spill}.</li>
 * </ol>
 */
final class CalibrateJob {
    private static final Logger LOG = LoggerFactory.getLogger(CalibrateJob.class);
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(SerializationFeature.INDENT_OUTPUT);
    /** Job descriptions of the two stages (tests find the training tasks by them). */
    static final String COLLECT_STAGE = "polar calibrate: collect samples";
    static final String TRAIN_STAGE = "polar calibrate: train routers, one task per layer";
    static final String SPILL_DEFAULT = "_calibration-spill";

    private CalibrateJob() {
    }

    /** What the run produced: the {@code _summary.json} document. */
    record Summary(ObjectNode json) {
        /** A printable table: one line per layer. */
        String table() {
            StringBuilder sb = new StringBuilder();
            ObjectNode cal = (ObjectNode) json.get("calibration");
            sb.append(String.format(Locale.ROOT, "samples per layer %d (%d windows) from %s; "
                            + "%d collection tasks, %d training tasks; collect %.1f s, train "
                            + "%.1f s%n", cal.get("tokens").asInt(), cal.get("windows").asInt(),
                    cal.get("corpus").asText(), json.get("collect_tasks").asInt(),
                    json.get("train_tasks").asInt(), cal.get("collect_seconds").asDouble(),
                    cal.get("train_seconds").asDouble()));
            boolean mlp = cal.has("mlp");
            sb.append(mlp ? "layer  head recall (random)  MLP F1  MLP recall  k table\n"
                    : "layer  head recall (random)\n");
            for (int l = 0; l < cal.get("recall").size(); l++) {
                sb.append(String.format(Locale.ROOT, "%5d  %11.4f (%6.4f)", l,
                        cal.get("recall").get(l).asDouble(),
                        cal.get("random_recall").asDouble()));
                if (mlp) {
                    ObjectNode m = (ObjectNode) cal.get("mlp");
                    sb.append(String.format(Locale.ROOT, "  %6.4f  %10.4f  %s",
                            m.get("f1").get(l).asDouble(), m.get("recall").get(l).asDouble(),
                            json.get("k").get(l).toString()));
                }
                sb.append('\n');
            }
            return sb.toString();
        }
    }

    /** One collection task's windows (a contiguous run of the plan). */
    record Slice(int task, int[][] windows) implements Serializable {
    }

    /** What a collection task reports. */
    record Collected(int task, int windows, long samples, double seconds, String backend,
                     String executor) implements Serializable {
    }

    /** What a training task returns. */
    record Trained(RouterCalibration.LayerRouters routers, int partition, String executor)
            implements Serializable {
    }

    static Summary run(SparkSession spark, JobConfig cfg) {
        Configuration conf = spark.sparkContext().hadoopConfiguration();
        String model = PolarJob.checkModel(cfg, conf);
        if (cfg.backend() != org.polarspark.generate.Backend.AUTO
                && !EngineFactory.canObserve(cfg.backend())) {
            throw new JobConfigException("mode calibrate: the " + cfg.backend().wire()
                    + " backend cannot collect calibration samples (its engine has no decoder "
                    + "observer); use --backend cpu or --backend cuda");
        }
        String output = PolarJob.prepareOutput(cfg, conf);
        String corpusText = readCorpus(cfg, conf);

        // The model's config and tokenizer on the driver (a non-local model is copied once).
        java.nio.file.Path cacheRoot = cfg.modelCacheDir() != null
                ? Paths.get(cfg.modelCacheDir()) : ModelLocalizer.defaultCacheRoot();
        ModelConfig mc;
        int[] tokens;
        try {
            java.nio.file.Path local = ModelLocalizer.localize(cfg.model(), conf, cacheRoot)
                    .dir();
            mc = ModelConfig.load(local.resolve("config.json"));
            try (TextTokenizer tok = TextTokenizer.load(local, mc)) {
                tokens = Calibration.tokenizeText(tok, corpusText);
            }
        } catch (ModelFormatException | IllegalArgumentException e) {
            throw new JobConfigException("model '" + cfg.model() + "': " + e.getMessage(), e);
        }
        int[][] windows;
        try {
            windows = Calibration.plan(mc, tokens, cfg.calibrationTokens(),
                    Calibration.DEFAULT_WINDOW);
        } catch (IllegalArgumentException e) {
            throw new JobConfigException("corpus '" + cfg.corpus() + "': " + e.getMessage(), e);
        }
        int window = Math.min(Calibration.DEFAULT_WINDOW, mc.maxPositions());
        String spill = prepareSpill(cfg, conf, output);
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        int tasks = Math.min(windows.length, cfg.partitions() > 0 ? cfg.partitions()
                : jsc.defaultParallelism());
        List<Slice> slices = new ArrayList<>();
        for (int t = 0; t < tasks; t++) {
            int from = (int) ((long) t * windows.length / tasks);
            int to = (int) ((long) (t + 1) * windows.length / tasks);
            slices.add(new Slice(t, Arrays.copyOfRange(windows, from, to)));
        }
        LOG.info("Polar Spark calibrate: model {}, corpus {} ({} tokens), {} windows of <= {} "
                        + "tokens ({} samples per layer) over {} tasks; spill {}", model,
                cfg.corpus(), tokens.length, windows.length, window, cfg.calibrationTokens(),
                tasks, spill);
        HadoopConf hconf = new HadoopConf(conf);
        boolean relu = mc.reluMlp();
        long expected = 0;
        for (int[] w : windows) {
            expected += w.length - 1;
        }

        long t0 = System.nanoTime();
        List<Collected> collected;
        try {
            jsc.setJobDescription(COLLECT_STAGE);
            collected = jsc.parallelize(slices, tasks)
                    .map(new CollectTask(cfg, hconf, spill, mc.numLayers())).collect();
        } catch (Exception e) {
            throw new JobFailedException("calibration (collect) failed: "
                    + PolarJob.failureReason(e, cfg), e);
        } finally {
            jsc.setJobDescription(null);
        }
        double collectSeconds = (System.nanoTime() - t0) / 1e9;
        long samples = collected.stream().mapToLong(Collected::samples).sum();
        if (samples != expected) {
            throw new IllegalStateException("the collection tasks recorded " + samples
                    + " samples per layer; the plan has " + expected);
        }

        RouterCalibration.Settings settings = new RouterCalibration.Settings(
                cfg.polarDensity() != null ? cfg.polarDensity()
                        : RouterCalibration.DEFAULT_DENSITY,
                RouterTrainer.Options.defaults()
                        .withEpochs(cfg.calibrationHeadEpochs(), cfg.calibrationMlpEpochs())
                        .withRank(cfg.calibrationRank()).withSeed(cfg.calibrationSeed()),
                KTableTuner.DEFAULT_BUCKETS);
        List<Integer> layers = new ArrayList<>();
        for (int l = 0; l < mc.numLayers(); l++) {
            layers.add(l);
        }
        long t1 = System.nanoTime();
        List<Trained> trained;
        try {
            jsc.setJobDescription(TRAIN_STAGE);
            trained = jsc.parallelize(layers, layers.size())
                    .map(new TrainTask(hconf, spill, tasks, samples, mc.hiddenSize(),
                            mc.numHeads(), mc.numKvHeads(), relu ? mc.ffnDim() : 0, settings))
                    .collect();
        } catch (Exception e) {
            throw new JobFailedException("calibration (router training) failed: "
                    + PolarJob.failureReason(e, cfg), e);
        } finally {
            jsc.setJobDescription(null);
        }
        double trainSeconds = (System.nanoTime() - t1) / 1e9;
        RouterCalibration.LayerRouters[] res = new RouterCalibration.LayerRouters[layers.size()];
        for (Trained t : trained) {
            res[t.routers().layer()] = t.routers();
        }

        ObjectNode extra = JSON.createObjectNode();
        ObjectNode sp = extra.putObject("spark");
        sp.put("master", spark.sparkContext().master());
        sp.put("collect_tasks", tasks);
        sp.put("train_tasks", trained.size());
        sp.put("backend", collected.get(0).backend());
        ArrayNode by = sp.putArray("layer_trained_by");
        for (Trained t : trained) {
            by.addObject().put("layer", t.routers().layer()).put("partition", t.partition())
                    .put("executor", t.executor());
        }
        RouterCalibration.Calibrated c = RouterCalibration.assemble(mc,
                new RouterCalibration.Collected(cfg.corpus(), tokens.length, (int) samples,
                        windows.length, window, collectSeconds), res, settings, trainSeconds,
                "org.polarspark.job.PolarJob --mode calibrate (Spark " + spark.version()
                        + ", " + collected.get(0).backend() + " backend, "
                        + ("cpu".equals(collected.get(0).backend()) ? "fp32"
                                : cfg.cudaDtype().wire() + " activations")
                        + ")",
                extra);
        writePolar(c, conf, output);

        ObjectNode sum = JSON.createObjectNode();
        sum.put("mode", "calibrate");
        sum.put("version", PolarJob.version());
        sum.put("model", model);
        sum.put("output", output);
        sum.put("polar_json", new Path(new Path(output, PolarConfig.DIR), PolarConfig.FILE)
                .toString());
        sum.put("router_file", new Path(new Path(output, PolarConfig.DIR),
                c.config().routerFile()).toString());
        sum.put("spill_dir", spill);
        sum.put("spill_kept", cfg.calibrationKeepSpill());
        sum.put("collect_tasks", tasks);
        sum.put("train_tasks", trained.size());
        sum.set("k", relu ? JSON.valueToTree(c.config().mlp().k()) : JSON.createArrayNode());
        sum.set("calibration", c.config().calibration());
        sum.set("options", JSON.valueToTree(cfg.describe()));
        try {
            writeText(conf, new Path(output, "_summary.json"), JSON.writeValueAsString(sum));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        if (!cfg.calibrationKeepSpill()) {
            delete(conf, spill);
        }
        LOG.info("Polar Spark calibrate: wrote {}", sum.get("polar_json").asText());
        return new Summary(sum);
    }

    /** The corpus as text; a startup error naming it when missing, empty or not UTF-8. */
    static String readCorpus(JobConfig cfg, Configuration conf) {
        Path p = new Path(cfg.corpus());
        Path q = p;
        try {
            FileSystem fs = p.getFileSystem(conf);
            q = fs.makeQualified(p);
            if (!fs.isFile(q)) {
                throw new JobConfigException("corpus '" + cfg.corpus() + "' (" + q + ") does not "
                        + "exist or is not a file (option 'corpus')");
            }
            byte[] bytes;
            try (InputStream in = fs.open(q)) {
                bytes = in.readAllBytes();
            }
            String text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes)).toString();
            if (text.isBlank()) {
                throw new JobConfigException("corpus '" + cfg.corpus() + "' (" + q + ") is "
                        + "empty");
            }
            return text;
        } catch (CharacterCodingException e) {
            throw new JobConfigException("corpus '" + cfg.corpus() + "' (" + q + ") is not "
                    + "valid UTF-8 text: " + e, e);
        } catch (IOException e) {
            throw new JobConfigException("cannot read corpus '" + cfg.corpus() + "' (" + q
                    + "): " + e, e);
        }
    }

    /** The qualified spill directory; refuses an existing non-empty one. */
    private static String prepareSpill(JobConfig cfg, Configuration conf, String output) {
        Path p = cfg.calibrationSpillDir() != null ? new Path(cfg.calibrationSpillDir())
                : new Path(output, SPILL_DEFAULT);
        try {
            FileSystem fs = p.getFileSystem(conf);
            Path q = fs.makeQualified(p);
            if (fs.exists(q) && (!fs.getFileStatus(q).isDirectory()
                    || fs.listStatus(q).length > 0)) {
                throw new JobConfigException("calibration-spill-dir '" + q + "' exists and is "
                        + "not an empty directory: remove it or name another");
            }
            fs.mkdirs(q);
            return q.toString();
        } catch (IOException e) {
            throw new JobConfigException("cannot create calibration-spill-dir '" + p + "': "
                    + e, e);
        }
    }

    /** Writes polar/ locally, then copies it to {@code <output>/polar/}. */
    private static void writePolar(RouterCalibration.Calibrated c, Configuration conf,
                                   String output) {
        java.nio.file.Path tmp = null;
        try {
            tmp = Files.createTempDirectory("polar-calibrate-out");
            c.write(tmp);
            Path dst = new Path(output, PolarConfig.DIR);
            FileSystem fs = dst.getFileSystem(conf);
            fs.mkdirs(dst);
            for (String f : new String[] {PolarConfig.FILE, c.config().routerFile()}) {
                fs.copyFromLocalFile(false, true,
                        new Path(tmp.resolve(PolarConfig.DIR).resolve(f).toUri()),
                        new Path(dst, f));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + output + "/" + PolarConfig.DIR, e);
        } finally {
            deleteLocal(tmp);
        }
    }

    private static void writeText(Configuration conf, Path file, String text) {
        try {
            FileSystem fs = file.getFileSystem(conf);
            try (var out = fs.create(file, true)) {
                out.write(text.getBytes(StandardCharsets.UTF_8));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file, e);
        }
    }

    private static void delete(Configuration conf, String dir) {
        try {
            Path p = new Path(dir);
            p.getFileSystem(conf).delete(p, true);
        } catch (IOException e) {
            LOG.warn("cannot delete the calibration spill {}: {}", dir, e.toString());
        }
    }

    static void deleteLocal(java.nio.file.Path dir) {
        if (dir == null || !Files.exists(dir)) {
            return;
        }
        try (Stream<java.nio.file.Path> s = Files.walk(dir)) {
            for (java.nio.file.Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            LOG.warn("cannot delete {}: {}", dir, e.toString());
        }
    }

    static Path part(String spill, int layer, int task) {
        return new Path(new Path(spill, "layer-" + layer),
                String.format(Locale.ROOT, "part-%05d.bin", task));
    }


    /** The collection task: its windows through the engine, records spilled per layer. */
    static final class CollectTask implements Function<Slice, Collected> {
        private final JobConfig cfg;
        private final HadoopConf hadoop;
        private final String spill;
        private final int layers;

        CollectTask(JobConfig cfg, HadoopConf hadoop, String spill, int layers) {
            this.cfg = cfg;
            this.hadoop = hadoop;
            this.spill = spill;
            this.layers = layers;
        }

        @Override
        public Collected call(Slice s) throws IOException {
            long t0 = System.nanoTime();
            TaskContext tc = TaskContext.get();
            Configuration conf = hadoop.get();
            Engine engine = EngineCache.get(cfg, conf, PartitionRunner.gpuAddress(tc)).engine();
            Calibration.requireObserver(engine);
            int recBytes = Calibration.recordBytes(engine.config());
            java.nio.file.Path local = Files.createTempDirectory("polar-calibrate-collect");
            long samples = 0;
            try {
                FileChannel[] out = new FileChannel[layers];
                try {
                    for (int l = 0; l < layers; l++) {
                        out[l] = FileChannel.open(local.resolve("layer-" + l + ".bin"),
                                StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
                    }
                    int done = 0;
                    for (int[] w : s.windows()) {
                        ByteBuffer[] bufs = Calibration.collectWindow(engine, w);
                        if (++done % 50 == 0) {
                            LOG.info("calibrate: task {}: {} of {} windows, {} s", s.task(), done,
                                    s.windows().length, String.format("%.0f",
                                            (System.nanoTime() - t0) / 1e9));
                        }
                        for (int l = 0; l < layers; l++) {
                            while (bufs[l].hasRemaining()) {
                                out[l].write(bufs[l]);
                            }
                        }
                        samples += bufs[0].limit() / recBytes;
                    }
                } finally {
                    for (FileChannel ch : out) {
                        if (ch != null) {
                            ch.close();
                        }
                    }
                }
                int attempt = tc != null ? tc.attemptNumber() : 0;
                for (int l = 0; l < layers; l++) {
                    Path dst = part(spill, l, s.task());
                    FileSystem fs = dst.getFileSystem(conf);
                    Path tmp = new Path(dst.getParent(), "." + dst.getName() + ".attempt-"
                            + attempt);
                    fs.copyFromLocalFile(false, true,
                            new Path(local.resolve("layer-" + l + ".bin").toUri()), tmp);
                    if (fs.exists(dst)) {
                        fs.delete(dst, false); // an earlier attempt's part
                    }
                    if (!fs.rename(tmp, dst)) {
                        throw new IOException("cannot rename " + tmp + " to " + dst);
                    }
                }
            } finally {
                deleteLocal(local);
            }
            double secs = (System.nanoTime() - t0) / 1e9;
            LOG.info("calibrate: task {} collected {} windows, {} samples per layer in {} s",
                    s.task(), s.windows().length, samples, String.format("%.1f", secs));
            return new Collected(s.task(), s.windows().length, samples, secs, engine.backend(),
                    PartitionRunner.executorId());
        }
    }

    /** The training task of one layer. */
    static final class TrainTask implements Function<Integer, Trained> {
        private final HadoopConf hadoop;
        private final String spill;
        private final int parts;
        private final long samples;
        private final int hidden;
        private final int heads;
        private final int groups;
        private final int ffn;
        private final RouterCalibration.Settings settings;

        TrainTask(HadoopConf hadoop, String spill, int parts, long samples, int hidden,
                  int heads, int groups, int ffn, RouterCalibration.Settings settings) {
            this.hadoop = hadoop;
            this.spill = spill;
            this.parts = parts;
            this.samples = samples;
            this.hidden = hidden;
            this.heads = heads;
            this.groups = groups;
            this.ffn = ffn;
            this.settings = settings;
        }

        @Override
        public Trained call(Integer layer) throws IOException {
            TaskContext tc = TaskContext.get();
            Configuration conf = hadoop.get();
            java.nio.file.Path local = Files.createTempFile("polar-calibrate-layer-" + layer,
                    ".bin");
            try {
                // The parts in task order: the windows' order, as a one-JVM run writes them.
                try (var out = Files.newOutputStream(local)) {
                    for (int t = 0; t < parts; t++) {
                        Path p = part(spill, layer, t);
                        FileSystem fs = p.getFileSystem(conf);
                        if (!fs.isFile(p)) {
                            throw new IOException(p + ": the calibration samples of layer "
                                    + layer + " from collection task " + t + " are missing "
                                    + "(is calibration-spill-dir shared by all executors?)");
                        }
                        try (InputStream in = fs.open(p)) {
                            in.transferTo(out);
                        }
                    }
                }
                CalibrationSamples s = new CalibrationSamples(local, hidden, heads, groups, ffn);
                if (s.size() != samples) {
                    throw new IllegalStateException("layer " + layer + ": " + s.size()
                            + " samples in " + spill + "/layer-" + layer + "; expected "
                            + samples);
                }
                RouterCalibration.LayerRouters r = RouterCalibration.trainLayer(s, layer,
                        ffn > 0, settings);
                return new Trained(r, tc != null ? tc.partitionId() : layer,
                        PartitionRunner.executorId());
            } finally {
                Files.deleteIfExists(local);
            }
        }
    }
}
