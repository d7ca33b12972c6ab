package org.polarspark.polar;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Router training for one layer (issue 7, step 2), plain fp32 Java, single-threaded per layer
 * (run layers in parallel). See {@code TRAINING.md} next to this class.
 *
 * <ul>
 *   <li><b>Head router</b>: linear H -&gt; G with bias. Labels per token: the top
 *       {@code kLabel} groups by {@link RouterSamples#groupScores} (for multi-head attention the
 *       paper's top heads by output norm). Loss: BCE on the sigmoid with negatives weighted by
 *       the positive fraction kLabel / G (the paper's weighting), mean over the batch and G.
 *       Metric: validation recall of the true top-kLabel groups within the router's top-kLabel.
 *       </li>
 *   <li><b>MLP router</b> (ReLU models): low rank H -&gt; r -&gt; F, no bias, no activation.
 *       Labels: fc1 output &gt; 0. Loss: BCE with negatives weighted by (positive fraction +
 *       0.005), positive fraction measured on the training split. Metric: validation F1 (and
 *       precision, recall) of logit &gt; 0; the best-F1 epoch is kept.</li>
 * </ul>
 *
 * <p>Both use AdamW (beta 0.9/0.999, eps 1e-8, decoupled weight decay), shuffled mini-batches,
 * and keep the parameters of the best validation epoch. Deterministic for a given seed.
 */
public final class RouterTrainer {
    private RouterTrainer() {
    }

    /**
     * Hyper-parameters.
     *
     * @param labelDensity fraction of G labelled positive per token (kLabel = max(1,
     *                     round(labelDensity x G)))
     * @param lr           AdamW learning rate
     * @param weightDecay  AdamW decoupled weight decay
     * @param batch        mini-batch size
     * @param headEpochs   epochs of the head router
     * @param mlpEpochs    epochs of the MLP router
     * @param rank         r of the MLP router
     * @param seed         shuffling and initialisation
     */
    public record Options(double labelDensity, double lr, double weightDecay, int batch,
                          int headEpochs, int mlpEpochs, int rank, long seed)
            implements java.io.Serializable {
        public static Options defaults() {
            return new Options(0.5, 1e-3, 0.01, 128, 10, 6, 64, 1234);
        }

        public Options withSeed(long s) {
            return new Options(labelDensity, lr, weightDecay, batch, headEpochs, mlpEpochs, rank,
                    s);
        }

        public Options withEpochs(int head, int mlp) {
            return new Options(labelDensity, lr, weightDecay, batch, head, mlp, rank, seed);
        }

        public Options withRank(int r) {
            return new Options(labelDensity, lr, weightDecay, batch, headEpochs, mlpEpochs, r,
                    seed);
        }
    }

    /** kLabel for G groups. */
    public static int labelCount(double labelDensity, int groups) {
        return Math.max(1, Math.min(groups, (int) Math.round(labelDensity * groups)));
    }

    /**
     * A seeded train/validation split of n samples: validation = max(1, round(valFraction x n))
     * samples (none when n &lt; 2), the rest training.
     *
     * @return {train indices, validation indices}
     */
    public static int[][] split(int n, double valFraction, long seed) {
        int[] perm = permutation(n, new SplittableRandom(seed));
        int nv = n < 2 ? 0 : Math.max(1, (int) Math.round(valFraction * n));
        int[] val = Arrays.copyOfRange(perm, 0, nv);
        int[] train = Arrays.copyOfRange(perm, nv, n);
        Arrays.sort(val);
        Arrays.sort(train);
        return new int[][] {train, val};
    }

    static int[] permutation(int n, SplittableRandom rnd) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        shuffle(p, rnd);
        return p;
    }

    static void shuffle(int[] p, SplittableRandom rnd) {
        for (int i = p.length - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
    }

    // -----------------------------------------------------------------------------------------
    // Head router
    // -----------------------------------------------------------------------------------------

    /**
     * A trained head router.
     *
     * @param weight     [G, H] row-major
     * @param bias       [G]
     * @param kLabel     positives per token
     * @param bestEpoch  the epoch kept (0-based)
     * @param trainLoss  mean weighted BCE per epoch, over the epoch's batches
     * @param valRecall  validation recall per epoch
     * @param initialValLoss validation loss before training
     * @param valLoss    validation loss per epoch
     */
    public record HeadRouter(float[] weight, float[] bias, int kLabel, int bestEpoch,
                             double[] trainLoss, double[] valRecall, double initialValLoss,
                             double[] valLoss) implements java.io.Serializable {
        public double bestRecall() {
            return valRecall[bestEpoch];
        }
    }

    /** Trains the head router on the train indices, selecting on the validation indices. */
    public static HeadRouter trainHeads(RouterSamples s, int[] train, int[] val, Options o) {
        int h = s.hidden();
        int g = s.groups();
        int k = labelCount(o.labelDensity(), g);
        float posW = 1f;
        float negW = (float) k / g; // the paper: negatives weighted by the positive fraction
        SplittableRandom rnd = new SplittableRandom(o.seed());
        float[] w = new float[g * h];
        float[] b = new float[g];
        float bound = (float) (1.0 / Math.sqrt(h));
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) ((rnd.nextDouble() * 2 - 1) * bound);
        }
        Adam aw = new Adam(w.length);
        Adam ab = new Adam(g);
        float[] gw = new float[w.length];
        float[] gb = new float[g];
        float[] x = new float[h];
        float[] scores = new float[g];
        float[] z = new float[g];
        boolean[] y = new boolean[g];
        int[] order = train.clone();
        double[] trainLoss = new double[o.headEpochs()];
        double[] valRecall = new double[o.headEpochs()];
        double[] valLoss = new double[o.headEpochs()];
        double initialValLoss = headEval(s, val, w, b, k, negW)[1];
        float[] bestW = w.clone();
        float[] bestB = b.clone();
        int best = 0;
        for (int ep = 0; ep < o.headEpochs(); ep++) {
            shuffle(order, rnd);
            double lossSum = 0;
            long lossN = 0;
            for (int from = 0; from < order.length; from += o.batch()) {
                int to = Math.min(order.length, from + o.batch());
                Arrays.fill(gw, 0f);
                Arrays.fill(gb, 0f);
                float scale = 1f / ((to - from) * g);
                for (int q = from; q < to; q++) {
                    int i = order[q];
                    s.x(i, x, 0);
                    s.groupScores(i, scores);
                    labels(scores, k, y);
                    for (int j = 0; j < g; j++) {
                        z[j] = RouterWeights.dot(x, 0, w, j * h, h) + b[j];
                        float wt = y[j] ? posW : negW;
                        lossSum += wt * bce(z[j], y[j]);
                        float d = wt * (sigmoid(z[j]) - (y[j] ? 1f : 0f)) * scale;
                        gb[j] += d;
                        axpy(d, x, 0, gw, j * h, h);
                    }
                    lossN += g;
                }
                aw.step(w, gw, o.lr(), o.weightDecay());
                ab.step(b, gb, o.lr(), o.weightDecay());
            }
            trainLoss[ep] = lossSum / Math.max(1, lossN);
            double[] ev = headEval(s, val, w, b, k, negW);
            valRecall[ep] = ev[0];
            valLoss[ep] = ev[1];
            if (ep == 0 || valRecall[ep] > valRecall[best]) {
                best = ep;
                bestW = w.clone();
                bestB = b.clone();
            }
        }
        return new HeadRouter(bestW, bestB, k, best, trainLoss, valRecall, initialValLoss,
                valLoss);
    }

    /** {validation recall at kLabel, validation weighted BCE}. */
    static double[] headEval(RouterSamples s, int[] val, float[] w, float[] b, int k,
                             float negW) {
        int h = s.hidden();
        int g = s.groups();
        float[] x = new float[h];
        float[] scores = new float[g];
        float[] z = new float[g];
        boolean[] y = new boolean[g];
        double recall = 0;
        double loss = 0;
        for (int i : val) {
            s.x(i, x, 0);
            s.groupScores(i, scores);
            labels(scores, k, y);
            for (int j = 0; j < g; j++) {
                z[j] = RouterWeights.dot(x, 0, w, j * h, h) + b[j];
                loss += (y[j] ? 1f : negW) * bce(z[j], y[j]);
            }
            int hit = 0;
            for (int j : TopK.topK(z, k)) {
                if (y[j]) {
                    hit++;
                }
            }
            recall += (double) hit / k;
        }
        int n = Math.max(1, val.length);
        return new double[] {recall / n, loss / ((double) n * g)};
    }

    /** y = mask of the top k scores (TopK order). */
    static void labels(float[] scores, int k, boolean[] y) {
        Arrays.fill(y, false);
        for (int j : TopK.topK(scores, k)) {
            y[j] = true;
        }
    }

    // -----------------------------------------------------------------------------------------
    // MLP router
    // -----------------------------------------------------------------------------------------

    /**
     * A trained MLP router.
     *
     * @param down         [r, H] row-major
     * @param up           [F, r] row-major
     * @param positiveFraction mean firing fraction on the training split
     * @param bestEpoch    the epoch kept
     * @param trainLoss    mean weighted BCE per epoch
     * @param valF1        validation F1 (logit &gt; 0) per epoch
     * @param valRecall    validation recall per epoch
     * @param valPrecision validation precision per epoch
     * @param initialValLoss validation loss before training
     * @param valLoss      validation loss per epoch
     */
    public record MlpRouter(float[] down, float[] up, int rank, double positiveFraction,
                            int bestEpoch, double[] trainLoss, double[] valF1, double[] valRecall,
                            double[] valPrecision, double initialValLoss, double[] valLoss)
            implements java.io.Serializable {
    }

    /** Trains the MLP router on the train indices, selecting on validation F1. */
    public static MlpRouter trainMlp(RouterSamples s, int[] train, int[] val, Options o) {
        int h = s.hidden();
        int f = s.ffn();
        int r = o.rank();
        int words = RouterSamples.words(f);
        if (f == 0) {
            throw new IllegalArgumentException("the samples have no MLP labels");
        }
        SplittableRandom rnd = new SplittableRandom(o.seed() ^ 0x9E3779B97F4A7C15L);
        // Training layouts: dt = down^T [H, r], ut = up^T [r, F], u = up [F, r] (refreshed).
        float[] dt = new float[h * r];
        float[] ut = new float[r * f];
        float bd = (float) (1.0 / Math.sqrt(h));
        float bu = (float) (1.0 / Math.sqrt(r));
        for (int i = 0; i < dt.length; i++) {
            dt[i] = (float) ((rnd.nextDouble() * 2 - 1) * bd);
        }
        for (int i = 0; i < ut.length; i++) {
            ut[i] = (float) ((rnd.nextDouble() * 2 - 1) * bu);
        }
        float[] u = new float[f * r];
        transpose(ut, r, f, u);

        // Positive fraction on the training split.
        long[] bits = new long[words];
        long pos = 0;
        for (int i : train) {
            s.active(i, bits);
            for (long v : bits) {
                pos += Long.bitCount(v);
            }
        }
        double posFrac = train.length == 0 ? 0 : (double) pos / ((double) train.length * f);
        float negW = (float) (posFrac + 0.005);

        int bs = o.batch();
        float[] xb = new float[bs * h];
        long[] yb = new long[bs * words];
        float[] tb = new float[bs * r];
        float[] lb = new float[bs * f];
        float[] dtb = new float[bs * r];
        float[] gDt = new float[dt.length];
        float[] gUt = new float[ut.length];
        Adam aD = new Adam(dt.length);
        Adam aU = new Adam(ut.length);
        int[] order = train.clone();
        int epochs = o.mlpEpochs();
        double[] trainLoss = new double[epochs];
        double[] f1 = new double[epochs];
        double[] rec = new double[epochs];
        double[] prec = new double[epochs];
        double[] vloss = new double[epochs];
        double initialValLoss = mlpEval(s, val, dt, ut, r, negW)[3];
        float[] bestDt = dt.clone();
        float[] bestUt = ut.clone();
        int best = 0;
        for (int ep = 0; ep < epochs; ep++) {
            shuffle(order, rnd);
            double lossSum = 0;
            long lossN = 0;
            for (int from = 0; from < order.length; from += bs) {
                int n = Math.min(order.length, from + bs) - from;
                for (int q = 0; q < n; q++) {
                    s.x(order[from + q], xb, q * h);
                    s.active(order[from + q], bits);
                    System.arraycopy(bits, 0, yb, q * words, words);
                }
                forward(xb, n, h, r, f, dt, ut, tb, lb);
                // lb becomes the loss gradient wrt the logits
                float scale = 1f / ((float) n * f);
                for (int q = 0; q < n; q++) {
                    int lo = q * f;
                    int yo = q * words;
                    for (int j = 0; j < f; j++) {
                        float zz = lb[lo + j];
                        boolean yy = (yb[yo + (j >>> 6)] & (1L << (j & 63))) != 0;
                        float wt = yy ? 1f : negW;
                        lossSum += wt * bce(zz, yy);
                        lb[lo + j] = wt * (sigmoid(zz) - (yy ? 1f : 0f)) * scale;
                    }
                }
                lossN += (long) n * f;
                Arrays.fill(gDt, 0f);
                Arrays.fill(gUt, 0f);
                Arrays.fill(dtb, 0, n * r, 0f);
                for (int q = 0; q < n; q++) {
                    int lo = q * f;
                    int to = q * r;
                    // gUt[j, :] += t[q, j] * g[q, :]
                    for (int j = 0; j < r; j++) {
                        axpy(tb[to + j], lb, lo, gUt, j * f, f);
                    }
                    // dt[q, :] = sum_f g[q, f] * u[f, :]
                    for (int jf = 0; jf < f; jf++) {
                        float gv = lb[lo + jf];
                        if (gv != 0f) {
                            axpy(gv, u, jf * r, dtb, to, r);
                        }
                    }
                    // gDt[i, :] += x[q, i] * dt[q, :]
                    int xo = q * h;
                    for (int i = 0; i < h; i++) {
                        axpy(xb[xo + i], dtb, to, gDt, i * r, r);
                    }
                }
                aD.step(dt, gDt, o.lr(), o.weightDecay());
                aU.step(ut, gUt, o.lr(), o.weightDecay());
                transpose(ut, r, f, u);
            }
            trainLoss[ep] = lossSum / Math.max(1, lossN);
            double[] ev = mlpEval(s, val, dt, ut, r, negW);
            f1[ep] = ev[0];
            rec[ep] = ev[1];
            prec[ep] = ev[2];
            vloss[ep] = ev[3];
            if (ep == 0 || f1[ep] > f1[best]) {
                best = ep;
                bestDt = dt.clone();
                bestUt = ut.clone();
            }
        }
        float[] down = new float[r * h];
        transpose(bestDt, h, r, down);
        float[] up = new float[f * r];
        transpose(bestUt, r, f, up);
        return new MlpRouter(down, up, r, posFrac, best, trainLoss, f1, rec, prec,
                initialValLoss, vloss);
    }

    /** t = x dt ([n,H]x[H,r]), l = t ut ([n,r]x[r,F]). */
    private static void forward(float[] xb, int n, int h, int r, int f, float[] dt, float[] ut,
                                float[] tb, float[] lb) {
        Arrays.fill(tb, 0, n * r, 0f);
        Arrays.fill(lb, 0, n * f, 0f);
        for (int q = 0; q < n; q++) {
            int xo = q * h;
            int to = q * r;
            for (int i = 0; i < h; i++) {
                axpy(xb[xo + i], dt, i * r, tb, to, r);
            }
            int lo = q * f;
            for (int j = 0; j < r; j++) {
                axpy(tb[to + j], ut, j * f, lb, lo, f);
            }
        }
    }

    /** {F1, recall, precision, weighted BCE} of logit &gt; 0 over the validation indices. */
    static double[] mlpEval(RouterSamples s, int[] val, float[] dt, float[] ut, int r,
                            float negW) {
        int h = s.hidden();
        int f = s.ffn();
        int words = RouterSamples.words(f);
        float[] x = new float[h];
        long[] bits = new long[words];
        float[] t = new float[r];
        float[] l = new float[f];
        long tp = 0;
        long fp = 0;
        long fn = 0;
        double loss = 0;
        for (int i : val) {
            s.x(i, x, 0);
            s.active(i, bits);
            forward(x, 1, h, r, f, dt, ut, t, l);
            for (int j = 0; j < f; j++) {
                boolean yy = RouterSamples.bit(bits, j);
                boolean pp = l[j] > 0;
                loss += (yy ? 1f : negW) * bce(l[j], yy);
                if (pp && yy) {
                    tp++;
                } else if (pp) {
                    fp++;
                } else if (yy) {
                    fn++;
                }
            }
        }
        double recall = tp + fn == 0 ? 1 : (double) tp / (tp + fn);
        double precision = tp + fp == 0 ? 1 : (double) tp / (tp + fp);
        double f1 = recall + precision == 0 ? 0 : 2 * recall * precision / (recall + precision);
        return new double[] {f1, recall, precision, loss / Math.max(1.0, (double) val.length * f)};
    }

    // -----------------------------------------------------------------------------------------
    // Math
    // -----------------------------------------------------------------------------------------

    /** y[yo..yo+n) += a * x[xo..xo+n) (a loop the JIT vectorises). */
    static void axpy(float a, float[] x, int xo, float[] y, int yo, int n) {
        for (int i = 0; i < n; i++) {
            y[yo + i] += a * x[xo + i];
        }
    }

    static void transpose(float[] a, int rows, int cols, float[] out) {
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                out[j * rows + i] = a[i * cols + j];
            }
        }
    }

    static float sigmoid(float z) {
        return z >= 0 ? 1f / (1f + (float) Math.exp(-z)) : (float) (Math.exp(z) / (1 + Math.exp(z)));
    }

    /** BCE of sigmoid(z) against y, computed stably: softplus(z) - y z. */
    static double bce(float z, boolean y) {
        double softplus = z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
        return softplus - (y ? z : 0);
    }

    /** AdamW state for one parameter array (torch defaults: betas 0.9/0.999, eps 1e-8). */
    static final class Adam {
        private final float[] m;
        private final float[] v;
        private int t;

        Adam(int n) {
            m = new float[n];
            v = new float[n];
        }

        void step(float[] p, float[] g, double lr, double wd) {
            t++;
            double c1 = 1 - Math.pow(0.9, t);
            double c2 = 1 - Math.pow(0.999, t);
            float decay = (float) (1 - lr * wd);
            float stepSize = (float) (lr / c1);
            float c2s = (float) Math.sqrt(c2);
            for (int i = 0; i < p.length; i++) {
                float gi = g[i];
                m[i] = 0.9f * m[i] + 0.1f * gi;
                v[i] = 0.999f * v[i] + 0.001f * gi * gi;
                p[i] = p[i] * decay - stepSize * m[i] / ((float) Math.sqrt(v[i]) / c2s + 1e-8f);
            }
        }
    }
}
