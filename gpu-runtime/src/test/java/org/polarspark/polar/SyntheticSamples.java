package org.polarspark.polar;

import java.util.SplittableRandom;

/** In-memory router samples for the trainer and tuner tests. */
final class SyntheticSamples implements RouterSamples {
    final float[][] x;
    final float[][] scores;
    final long[][] active;
    final int ffn;

    SyntheticSamples(float[][] x, float[][] scores, long[][] active, int ffn) {
        this.x = x;
        this.scores = scores;
        this.active = active;
        this.ffn = ffn;
    }

    /**
     * n tokens x ~ N(0, 1)^h; group scores = A x (a fixed random A, so the top groups are a
     * linear function of x); neuron j fires when (B C x)_j &gt; threshold, B C of rank r.
     */
    static SyntheticSamples linear(int n, int h, int g, int ffn, int r, double threshold,
                                   long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[][] a = gauss(rnd, g, h);
        float[][] c = gauss(rnd, r, h);
        float[][] b = gauss(rnd, ffn, r);
        float[][] x = new float[n][];
        float[][] s = new float[n][];
        long[][] act = new long[n][];
        for (int i = 0; i < n; i++) {
            x[i] = gauss(rnd, 1, h)[0];
            s[i] = matvec(a, x[i]);
            float[] t = matvec(c, x[i]);
            float[] z = matvec(b, t);
            act[i] = new long[RouterSamples.words(Math.max(ffn, 1))];
            for (int j = 0; j < ffn; j++) {
                if (z[j] / Math.sqrt(h * r) > threshold) {
                    act[i][j >>> 6] |= 1L << (j & 63);
                }
            }
        }
        return new SyntheticSamples(x, s, act, ffn);
    }

    static float[][] gauss(SplittableRandom rnd, int rows, int cols) {
        float[][] m = new float[rows][cols];
        for (float[] row : m) {
            for (int j = 0; j < cols; j++) {
                double u1 = 1.0 - rnd.nextDouble();
                double u2 = rnd.nextDouble();
                row[j] = (float) (Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
            }
        }
        return m;
    }

    static float[] matvec(float[][] m, float[] v) {
        float[] out = new float[m.length];
        for (int i = 0; i < m.length; i++) {
            double s = 0;
            for (int j = 0; j < v.length; j++) {
                s += m[i][j] * v[j];
            }
            out[i] = (float) s;
        }
        return out;
    }

    @Override
    public int size() {
        return x.length;
    }

    @Override
    public int hidden() {
        return x[0].length;
    }

    @Override
    public int groups() {
        return scores[0].length;
    }

    @Override
    public int ffn() {
        return ffn;
    }

    @Override
    public void x(int i, float[] dst, int off) {
        System.arraycopy(x[i], 0, dst, off, x[i].length);
    }

    @Override
    public void groupScores(int i, float[] dst) {
        System.arraycopy(scores[i], 0, dst, 0, scores[i].length);
    }

    @Override
    public void active(int i, long[] dst) {
        System.arraycopy(active[i], 0, dst, 0, active[i].length);
    }
}
