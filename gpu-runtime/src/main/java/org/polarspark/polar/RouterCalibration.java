package org.polarspark.polar;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.Serializable;
import java.nio.file.Path;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Arrays;
import org.polarspark.model.ModelConfig;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one implementation of router training and settings assembly that both calibration drivers
 * share: {@link CalibrateMain} (one JVM, a thread per layer) and the Spark job's calibrate mode
 * (one Spark task per layer). Per layer, {@link #trainLayer} trains the head router, the MLP
 * router (ReLU models) and tunes that layer's MLP k table on the held-out split; then
 * {@link #assemble} builds {@code polar.json} (with its {@code calibration} record) and the router
 * weights from every layer's result.
 */
public final class RouterCalibration {
    private static final Logger LOG = LoggerFactory.getLogger(RouterCalibration.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Held-out fraction of each layer's samples (validation and the k table). */
    public static final double VAL_FRACTION = 0.05;
    /** Random held-out batches per bucket for the k table. */
    public static final int K_BATCHES = 200;
    /** The density written when none is given (layer 0 stays 1.0). */
    public static final double DEFAULT_DENSITY = 0.5;

    private RouterCalibration() {
    }

    /**
     * What training needs (serializable: the Spark job ships it to its tasks).
     *
     * @param density head density written for layers 1.. (layer 0: 1.0)
     * @param train   training hyper-parameters (incl. seed)
     * @param buckets MLP k-table batch buckets
     */
    public record Settings(double density, RouterTrainer.Options train, int[] buckets)
            implements Serializable {
        public Settings {
            if (!(density > 0 && density <= 1)) {
                throw new IllegalArgumentException("density must be in (0, 1], got " + density);
            }
            buckets = buckets.clone();
        }

        public static Settings defaults() {
            return new Settings(DEFAULT_DENSITY, RouterTrainer.Options.defaults(),
                    KTableTuner.DEFAULT_BUCKETS);
        }
    }

    /**
     * Where the samples came from, for the {@code calibration} record.
     *
     * @param corpus       the corpus as the user named it
     * @param corpusTokens tokens in the whole corpus
     * @param samples      tokens recorded per layer
     * @param windows      forwards run
     * @param window       tokens per forward, BOS included
     * @param seconds      wall time of the collection
     */
    public record Collected(String corpus, long corpusTokens, int samples, int windows, int window,
                            double seconds) implements Serializable {
        public static Collected of(Calibration.Result r, Path corpus) {
            return new Collected(corpus.toString(), r.corpusTokens(), r.samples(), r.windows(),
                    r.window(), r.seconds());
        }
    }

    /**
     * One layer's trained routers and k table (serializable: a Spark task returns it).
     *
     * @param layer   the layer
     * @param head    the head router
     * @param mlp     the MLP router, null unless ReLU
     * @param k       the layer's k table, null unless ReLU
     * @param train   training samples
     * @param val     held-out samples
     * @param seconds wall time of this layer's training and tuning
     */
    public record LayerRouters(int layer, RouterTrainer.HeadRouter head,
                               RouterTrainer.MlpRouter mlp, KTableTuner.Layer k, int train,
                               int val, double seconds) implements Serializable {
    }

    /** The calibrated settings and routers (not yet written). */
    public record Calibrated(PolarConfig config, RouterWeights weights) {
        /** Writes polar/polar.json and the router file under dir. */
        public void write(Path dir) {
            weights.write(dir, config);
            config.write(dir);
        }
    }

    /**
     * Trains one layer's routers on its samples and tunes its k table: a seeded 95/5 split
     * (seed = train seed + 7919 x layer, so layers differ and any execution order gives the same
     * result), the head router, and for ReLU models the MLP router plus the k table from the
     * held-out tokens' router logits.
     */
    public static LayerRouters trainLayer(RouterSamples s, int layer, boolean relu, Settings o) {
        long t0 = System.nanoTime();
        RouterTrainer.Options tr = o.train().withSeed(o.train().seed() + 7919L * layer);
        if (s.size() < 2) {
            throw new IllegalArgumentException("layer " + layer + ": " + s.size()
                    + " calibration samples; at least 2 are needed (a training and a held-out "
                    + "one)");
        }
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
        return new LayerRouters(layer, head, mlp, k, train.length, val.length, secs);
    }

    /**
     * Builds the settings (densities, k table, {@code calibration} record) and the router weights
     * from every layer's result.
     *
     * @param mc           the model
     * @param col          where the samples came from
     * @param layers       one result per layer, in layer order
     * @param o            the settings training ran with
     * @param trainSeconds wall time of the training phase
     * @param tool         what made the routers (recorded)
     * @param extra        more entries for the calibration record (may be null)
     */
    public static Calibrated assemble(ModelConfig mc, Collected col, LayerRouters[] layers,
                                      Settings o, double trainSeconds, String tool,
                                      ObjectNode extra) {
        int n = mc.numLayers();
        if (layers.length != n) {
            throw new IllegalArgumentException(layers.length + " layer results for a model of "
                    + n + " layers");
        }
        for (int l = 0; l < n; l++) {
            if (layers[l] == null || layers[l].layer() != l) {
                throw new IllegalArgumentException("layer result " + l + " is missing or "
                        + "belongs to another layer");
            }
        }
        RouterTrainer.Options tr = o.train();
        boolean relu = mc.reluMlp();
        int g = mc.numKvHeads();
        float[][] hw = new float[n][];
        float[][] hb = new float[n][];
        float[][] dn = relu ? new float[n][] : null;
        float[][] up = relu ? new float[n][] : null;
        int[][] k = relu ? new int[n][] : null;
        for (int l = 0; l < n; l++) {
            hw[l] = layers[l].head().weight();
            hb[l] = layers[l].head().bias();
            if (relu) {
                dn[l] = layers[l].mlp().down();
                up[l] = layers[l].mlp().up();
                k[l] = layers[l].k().k();
            }
        }
        PolarConfig.Mlp mlp = relu ? new PolarConfig.Mlp(tr.rank(), o.buckets(), k) : null;
        double[] dens = new double[n];
        Arrays.fill(dens, o.density());
        dens[0] = 1.0;

        ObjectNode cal = JSON.createObjectNode();
        cal.put("tool", tool);
        cal.put("date", Instant.now().truncatedTo(ChronoUnit.SECONDS).toString());
        cal.put("corpus", col.corpus());
        cal.put("corpus_tokens", col.corpusTokens());
        cal.put("tokens", col.samples());
        cal.put("windows", col.windows());
        cal.put("window", col.window());
        cal.put("train_samples", layers[0].train());
        cal.put("validation_samples", layers[0].val());
        cal.put("seed", tr.seed());
        cal.put("label_density", tr.labelDensity());
        cal.put("label_groups", layers[0].head().kLabel());
        cal.put("group_label", g == mc.numHeads()
                ? "top heads by attention-output L2 norm (before o_proj)"
                : "top KV groups by the L2 norm of the group's concatenated head outputs");
        ObjectNode hp = cal.putObject("training");
        hp.put("optimizer", "AdamW");
        hp.put("lr", tr.lr());
        hp.put("weight_decay", tr.weightDecay());
        hp.put("batch", tr.batch());
        hp.put("head_epochs", tr.headEpochs());
        hp.put("mlp_epochs", relu ? tr.mlpEpochs() : 0);
        hp.put("validation_fraction", VAL_FRACTION);
        ArrayNode rec = cal.putArray("recall");
        ArrayNode recEp = cal.putArray("head_best_epoch");
        for (LayerRouters r : layers) {
            rec.add(round4(r.head().bestRecall()));
            recEp.add(r.head().bestEpoch());
        }
        cal.put("random_recall", round4((double) layers[0].head().kLabel() / g));
        if (relu) {
            ObjectNode m = cal.putObject("mlp");
            ArrayNode f1 = m.putArray("f1");
            ArrayNode mr = m.putArray("recall");
            ArrayNode mp = m.putArray("precision");
            ArrayNode pf = m.putArray("firing_fraction");
            ArrayNode ep = m.putArray("best_epoch");
            ArrayNode kr = m.putArray("k_union_recall");
            ArrayNode ku = m.putArray("union_fraction");
            for (LayerRouters r : layers) {
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
        cal.put("collect_seconds", Math.round(col.seconds() * 10) / 10.0);
        cal.put("train_seconds", Math.round(trainSeconds * 10) / 10.0);
        if (extra != null) {
            cal.setAll(extra);
        }
        PolarConfig cfg = new PolarConfig(mc.family().modelType(), n, g, mc.hiddenSize(),
                mc.ffnDim(), dens, false, mlp, PolarConfig.DEFAULT_ROUTER_FILE, cal);
        cfg.validate(mc, "calibrated config");
        return new Calibrated(cfg, new RouterWeights(cfg, hw, hb, dn, up));
    }

    static double round4(double v) {
        return Math.round(v * 10000) / 10000.0;
    }
}
