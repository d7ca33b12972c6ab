package org.polarspark.polar;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.polarspark.cpu.CpuDecoder;
import org.polarspark.cpu.CpuWeights;
import org.polarspark.model.Checkpoint;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.TextTokenizer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Calibrates Polar Sparsity routers for a checkpoint on the CPU: {@link Calibration} (dense
 * forwards over a corpus, samples spilled per layer), {@link RouterTrainer} (head and MLP routers,
 * layers in parallel), {@link KTableTuner} (the MLP k table on the held-out 5%), then writes
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
 */
public final class CalibrateMain {
    private static final Logger LOG = LoggerFactory.getLogger(CalibrateMain.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    static final double VAL_FRACTION = 0.05;
    /** Random held-out batches per bucket for the k table. */
    static final int K_BATCHES = 200;

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
    }

    /** The calibrated settings and routers (not yet written). */
    public record Calibrated(PolarConfig config, RouterWeights weights) {
        /** Writes polar/polar.json and the router file under dir. */
        public void write(Path dir) {
            weights.write(dir, config);
            config.write(dir);
        }
    }

    private record LayerResult(RouterTrainer.HeadRouter head, RouterTrainer.MlpRouter mlp,
                               KTableTuner.Layer k, int train, int val, double seconds) {
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
        Calibrated c = calibrate(o);
        Path dir = out != null ? out : model;
        c.write(dir);
        System.out.println("wrote " + PolarConfig.file(dir) + " and " + c.config().routerPath(dir));
        System.out.println(JSON.writerWithDefaultPrettyPrinter()
                .writeValueAsString(c.config().calibration()));
    }

    /** Runs calibration, training and k-table tuning. */
    public static Calibrated calibrate(Options o) {
        long t0 = System.nanoTime();
        Checkpoint ckpt = Checkpoint.open(o.modelDir());
        ModelConfig mc = ckpt.config();
        CpuDecoder dec = new CpuDecoder(CpuWeights.load(ckpt));
        int[] corpus;
        try (TextTokenizer tok = TextTokenizer.load(o.modelDir(), mc)) {
            corpus = Calibration.tokenizeCorpus(tok, o.corpus());
        }
        boolean tmp = o.workDir() == null;
        Path work;
        try {
            work = tmp ? Files.createTempDirectory("polar-calibration") : o.workDir();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        try {
            Calibration.Result cal = Calibration.run(dec, corpus, o.tokens(),
                    Calibration.DEFAULT_WINDOW, o.threads(), work);
            return train(cal, o, (System.nanoTime() - t0) / 1e9);
        } finally {
            if (!o.keepWork()) {
                deleteTree(work, tmp);
            }
        }
    }

    /** Trains and tunes on collected samples; builds the config (calibration record included). */
    public static Calibrated train(Calibration.Result cal, Options o, double collectSeconds) {
        ModelConfig mc = cal.model();
        int layers = mc.numLayers();
        RouterTrainer.Options tr = o.train();
        boolean relu = cal.relu();
        long t0 = System.nanoTime();
        ExecutorService pool = Executors.newFixedThreadPool(Math.max(1, o.threads()));
        LayerResult[] res = new LayerResult[layers];
        try {
            List<Future<LayerResult>> fs = new ArrayList<>();
            for (int l = 0; l < layers; l++) {
                int layer = l;
                fs.add(pool.submit(() -> trainLayer(cal.layer(layer), layer, relu, o)));
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

        int g = mc.numKvHeads();
        float[][] hw = new float[layers][];
        float[][] hb = new float[layers][];
        float[][] dn = relu ? new float[layers][] : null;
        float[][] up = relu ? new float[layers][] : null;
        int[][] k = relu ? new int[layers][] : null;
        for (int l = 0; l < layers; l++) {
            hw[l] = res[l].head().weight();
            hb[l] = res[l].head().bias();
            if (relu) {
                dn[l] = res[l].mlp().down();
                up[l] = res[l].mlp().up();
                k[l] = res[l].k().k();
            }
        }
        PolarConfig.Mlp mlp = relu ? new PolarConfig.Mlp(tr.rank(), o.buckets(), k) : null;
        double[] dens = new double[layers];
        Arrays.fill(dens, o.density());
        dens[0] = 1.0;

        ObjectNode cal0 = JSON.createObjectNode();
        cal0.put("tool", "org.polarspark.polar.CalibrateMain (CPU, fp32)");
        cal0.put("date", Instant.now().truncatedTo(ChronoUnit.SECONDS).toString());
        cal0.put("corpus", o.corpus().toString());
        cal0.put("corpus_tokens", cal.corpusTokens());
        cal0.put("tokens", cal.samples());
        cal0.put("windows", cal.windows());
        cal0.put("window", cal.window());
        cal0.put("train_samples", res[0].train());
        cal0.put("validation_samples", res[0].val());
        cal0.put("seed", tr.seed());
        cal0.put("label_density", tr.labelDensity());
        cal0.put("label_groups", res[0].head().kLabel());
        cal0.put("group_label", g == mc.numHeads()
                ? "top heads by attention-output L2 norm (before o_proj)"
                : "top KV groups by the L2 norm of the group's concatenated head outputs");
        ObjectNode hp = cal0.putObject("training");
        hp.put("optimizer", "AdamW");
        hp.put("lr", tr.lr());
        hp.put("weight_decay", tr.weightDecay());
        hp.put("batch", tr.batch());
        hp.put("head_epochs", tr.headEpochs());
        hp.put("mlp_epochs", relu ? tr.mlpEpochs() : 0);
        hp.put("validation_fraction", VAL_FRACTION);
        ArrayNode rec = cal0.putArray("recall");
        ArrayNode recEp = cal0.putArray("head_best_epoch");
        for (LayerResult r : res) {
            rec.add(round4(r.head().bestRecall()));
            recEp.add(r.head().bestEpoch());
        }
        if (relu) {
            ObjectNode m = cal0.putObject("mlp");
            ArrayNode f1 = m.putArray("f1");
            ArrayNode mr = m.putArray("recall");
            ArrayNode mp = m.putArray("precision");
            ArrayNode pf = m.putArray("firing_fraction");
            ArrayNode ep = m.putArray("best_epoch");
            ArrayNode kr = m.putArray("k_union_recall");
            ArrayNode ku = m.putArray("union_fraction");
            for (LayerResult r : res) {
                int b = r.mlp().bestEpoch();
                f1.add(round4(r.mlp().valF1()[b]));
                mr.add(round4(r.mlp().valRecall()[b]));
                mp.add(round4(r.mlp().valPrecision()[b]));
                pf.add(round4(r.mlp().positiveFraction()));
                ep.add(b);
                ArrayNode a = kr.addArray();
                for (double v : r.k().recall()) {
                    a.add(round4(v));
                }
                ArrayNode u = ku.addArray();
                for (double v : r.k().union()) {
                    u.add(round4(v));
                }
            }
            m.put("k_target_union_recall", KTableTuner.DEFAULT_TARGET);
            m.put("k_step", KTableTuner.step(mc.ffnDim()));
            m.put("k_batches_per_bucket", K_BATCHES);
        }
        cal0.put("collect_seconds", Math.round(collectSeconds * 10) / 10.0);
        cal0.put("train_seconds", Math.round(trainSeconds * 10) / 10.0);
        PolarConfig cfg = new PolarConfig(mc.family().modelType(), layers, g, mc.hiddenSize(),
                mc.ffnDim(), dens, false, mlp, PolarConfig.DEFAULT_ROUTER_FILE, cal0);
        cfg.validate(mc, "calibrated config");
        return new Calibrated(cfg, new RouterWeights(cfg, hw, hb, dn, up));
    }

    private static LayerResult trainLayer(RouterSamples s, int layer, boolean relu, Options o) {
        long t0 = System.nanoTime();
        RouterTrainer.Options tr = o.train().withSeed(o.train().seed() + 7919L * layer);
        int[][] split = RouterTrainer.split(s.size(), VAL_FRACTION, tr.seed());
        int[] train = split[0];
        int[] val = split[1];
        RouterTrainer.HeadRouter head = RouterTrainer.trainHeads(s, train, val, tr);
        RouterTrainer.MlpRouter mlp = null;
        KTableTuner.Layer k = null;
        if (relu) {
            mlp = RouterTrainer.trainMlp(s, train, val, tr);
            int f = s.ffn();
            float[][] logits = new float[val.length][];
            long[][] act = new long[val.length][];
            PolarConfig one = new PolarConfig("opt", 1, s.groups(), s.hidden(), f,
                    new double[] {1.0}, false, PolarConfig.Mlp.uniform(tr.rank(), 1, f, 1.0),
                    null, null);
            RouterWeights rw = new RouterWeights(one, new float[][] {head.weight()},
                    new float[][] {head.bias()}, new float[][] {mlp.down()},
                    new float[][] {mlp.up()});
            float[] x = new float[s.hidden()];
            for (int i = 0; i < val.length; i++) {
                s.x(val[i], x, 0);
                logits[i] = rw.mlpLogits(0, x, 0);
                act[i] = new long[RouterSamples.words(f)];
                s.active(val[i], act[i]);
            }
            k = KTableTuner.tuneLayer(logits, act, f, o.buckets(), KTableTuner.step(f),
                    KTableTuner.DEFAULT_TARGET, K_BATCHES, tr.seed() + 1);
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        LOG.info("layer {}: head recall {} (epoch {}){}, {} s", layer,
                String.format("%.4f", head.bestRecall()), head.bestEpoch(),
                mlp == null ? "" : String.format(", MLP F1 %.4f recall %.4f firing %.4f, k %s",
                        mlp.valF1()[mlp.bestEpoch()], mlp.valRecall()[mlp.bestEpoch()],
                        mlp.positiveFraction(), Arrays.toString(k.k())),
                String.format("%.1f", secs));
        return new LayerResult(head, mlp, k, train.length, val.length, secs);
    }

    private static double round4(double v) {
        return Math.round(v * 10000) / 10000.0;
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
