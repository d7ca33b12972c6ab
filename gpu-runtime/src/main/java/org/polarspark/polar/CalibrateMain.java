package org.polarspark.polar;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.polarspark.cpu.CpuDecoder;
import org.polarspark.cpu.CpuEngine;
import org.polarspark.cpu.CpuWeights;
import org.polarspark.model.Checkpoint;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.TextTokenizer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Calibrates Polar Sparsity routers for a checkpoint on the CPU, in one JVM: {@link Calibration}
 * (dense forwards over a corpus, samples spilled per layer), then per layer, on a thread pool,
 * {@link RouterCalibration#trainLayer} (head and MLP routers by {@link RouterTrainer}, the MLP k
 * table by {@link KTableTuner} on the held-out 5%), then {@link RouterCalibration#assemble} and
 * writes
 * {@code <out>/polar/polar.json} and {@code <out>/polar/routers.safetensors}.
 *
 * <pre>
 * java ... org.polarspark.polar.CalibrateMain --model DIR [--corpus FILE] [--tokens N]
 *     [--out DIR] [--density D] [--seed S] [--threads T] [--work DIR] [--epochs H,M]
 *     [--rank R] [--label-density D] [--keep-work]
 * </pre>
 *
 * Defaults: corpus datasets/corpus/train.txt, 400000 tokens, out = the model directory, density
 * 0.5 (layer 0 stays 1.0), seed 1234, threads = available processors, work = a temporary
 * directory (deleted afterwards unless --keep-work), rank 64 (r of the MLP router).
 *
 * <p>The Spark job's {@code --mode calibrate} runs the same steps as Spark tasks (windows spread
 * over tasks, one training task per layer); both share {@link Calibration} and
 * {@link RouterCalibration}.
 */
public final class CalibrateMain {
    private static final Logger LOG = LoggerFactory.getLogger(CalibrateMain.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    private CalibrateMain() {
    }

    /**
     * Everything a calibration needs.
     *
     * @param modelDir  checkpoint directory
     * @param corpus    calibration text
     * @param tokens    token budget
     * @param density   head density written for layers 1.. (layer 0: 1.0)
     * @param threads   parallel windows / layers
     * @param workDir   sample directory, or null for a temporary one
     * @param keepWork  keep the samples
     * @param train     training hyper-parameters (incl. seed)
     * @param buckets   MLP k-table batch buckets
     */
    public record Options(Path modelDir, Path corpus, long tokens, double density, int threads,
                          Path workDir, boolean keepWork, RouterTrainer.Options train,
                          int[] buckets) {
        public static Options defaults(Path modelDir) {
            return new Options(modelDir, Path.of("datasets/corpus/train.txt"),
                    Calibration.DEFAULT_TOKENS, 0.5,
                    Runtime.getRuntime().availableProcessors(), null, false,
                    RouterTrainer.Options.defaults(), KTableTuner.DEFAULT_BUCKETS);
        }

        /** The training settings shared with the Spark job's calibrate mode. */
        public RouterCalibration.Settings settings() {
            return new RouterCalibration.Settings(density, train, buckets);
        }
    }

    public static void main(String[] args) throws Exception {
        Path model = null;
        Path out = null;
        Options o = null;
        Path corpus = null;
        Long tokens = null;
        Double density = null;
        Integer threads = null;
        Path work = null;
        boolean keep = false;
        RouterTrainer.Options tr = RouterTrainer.Options.defaults();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "--model" -> model = Path.of(args[++i]);
                case "--corpus" -> corpus = Path.of(args[++i]);
                case "--tokens" -> tokens = Long.parseLong(args[++i]);
                case "--out" -> out = Path.of(args[++i]);
                case "--density" -> density = Double.parseDouble(args[++i]);
                case "--seed" -> tr = tr.withSeed(Long.parseLong(args[++i]));
                case "--threads" -> threads = Integer.parseInt(args[++i]);
                case "--work" -> work = Path.of(args[++i]);
                case "--keep-work" -> keep = true;
                case "--rank" -> tr = tr.withRank(Integer.parseInt(args[++i]));
                case "--epochs" -> {
                    String[] p = args[++i].split(",");
                    tr = tr.withEpochs(Integer.parseInt(p[0]),
                            Integer.parseInt(p[p.length - 1]));
                }
                case "--label-density" -> tr = new RouterTrainer.Options(
                        Double.parseDouble(args[++i]), tr.lr(), tr.weightDecay(), tr.batch(),
                        tr.headEpochs(), tr.mlpEpochs(), tr.rank(), tr.seed());
                case "-h", "--help" -> {
                    System.out.println("usage: CalibrateMain --model DIR [--corpus FILE] "
                            + "[--tokens N] [--out DIR] [--density D] [--seed S] [--threads T]"
                            + " [--work DIR] [--keep-work] [--epochs HEAD,MLP] [--rank R]"
                            + " [--label-density D]");
                    return;
                }
                default -> throw new IllegalArgumentException("unknown argument: " + a);
            }
        }
        if (model == null) {
            throw new IllegalArgumentException("--model DIR is required");
        }
        Options d = Options.defaults(model);
        o = new Options(model, corpus != null ? corpus : d.corpus(),
                tokens != null ? tokens : d.tokens(), density != null ? density : d.density(),
                threads != null ? threads : d.threads(), work, keep, tr, d.buckets());
        RouterCalibration.Calibrated c = calibrate(o);
        Path dir = out != null ? out : model;
        c.write(dir);
        System.out.println("wrote " + PolarConfig.file(dir) + " and " + c.config().routerPath(dir));
        System.out.println(JSON.writerWithDefaultPrettyPrinter()
                .writeValueAsString(c.config().calibration()));
    }

    /** Runs calibration, training and k-table tuning. */
    public static RouterCalibration.Calibrated calibrate(Options o) {
        Checkpoint ckpt = Checkpoint.open(o.modelDir());
        ModelConfig mc = ckpt.config();
        if (!Files.isRegularFile(o.corpus())) {
            throw new IllegalArgumentException(o.corpus() + ": the calibration corpus does not "
                    + "exist or is not a file");
        }
        int[] corpus;
        TextTokenizer tok = TextTokenizer.load(o.modelDir(), mc);
        try (CpuEngine engine = new CpuEngine(new CpuDecoder(CpuWeights.load(ckpt)), tok, 1)) {
            corpus = Calibration.tokenizeCorpus(tok, o.corpus());
            boolean tmp = o.workDir() == null;
            Path work;
            try {
                work = tmp ? Files.createTempDirectory("polar-calibration") : o.workDir();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            try {
                Calibration.Result cal = Calibration.run(engine, corpus, o.tokens(),
                        Calibration.DEFAULT_WINDOW, o.threads(), work);
                return train(cal, o);
            } finally {
                if (!o.keepWork()) {
                    deleteTree(work, tmp);
                }
            }
        }
    }

    /**
     * Trains and tunes on collected samples, layers in parallel on a thread pool (each layer by
     * {@link RouterCalibration#trainLayer}), and builds the config (calibration record included)
     * by {@link RouterCalibration#assemble}.
     */
    public static RouterCalibration.Calibrated train(Calibration.Result cal, Options o) {
        ModelConfig mc = cal.model();
        int layers = mc.numLayers();
        RouterCalibration.Settings st = o.settings();
        long t0 = System.nanoTime();
        ExecutorService pool = Executors.newFixedThreadPool(Math.max(1, o.threads()));
        RouterCalibration.LayerRouters[] res = new RouterCalibration.LayerRouters[layers];
        try {
            List<Future<RouterCalibration.LayerRouters>> fs = new ArrayList<>();
            for (int l = 0; l < layers; l++) {
                int layer = l;
                fs.add(pool.submit(() -> RouterCalibration.trainLayer(cal.layer(layer), layer,
                        cal.relu(), st)));
            }
            for (int l = 0; l < layers; l++) {
                res[l] = fs.get(l).get();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("training interrupted", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException("router training failed: " + e.getCause(),
                    e.getCause());
        } finally {
            pool.shutdownNow();
        }
        double trainSeconds = (System.nanoTime() - t0) / 1e9;
        return RouterCalibration.assemble(mc, RouterCalibration.Collected.of(cal, o.corpus()),
                res, st, trainSeconds, "org.polarspark.polar.CalibrateMain (CPU, fp32, "
                        + o.threads() + " threads)", null);
    }

    private static void deleteTree(Path dir, boolean self) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                if (self || !p.equals(dir)) {
                    if (p.equals(dir) || p.getFileName().toString().startsWith("layer-")) {
                        Files.deleteIfExists(p);
                    }
                }
            }
        } catch (IOException e) {
            LOG.warn("cannot delete calibration samples in {}: {}", dir, e.toString());
        }
    }
}
