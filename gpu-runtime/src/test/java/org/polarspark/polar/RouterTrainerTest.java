package org.polarspark.polar;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class RouterTrainerTest {
    @Test
    void headRouterLearnsALinearlySeparableTopK() {
        SyntheticSamples s = SyntheticSamples.linear(3000, 16, 8, 0, 1, 0, 7);
        int[][] split = RouterTrainer.split(s.size(), 0.05, 1);
        RouterTrainer.Options o = new RouterTrainer.Options(0.5, 1e-2, 0.01, 32, 8, 1, 8, 1);
        RouterTrainer.HeadRouter r = RouterTrainer.trainHeads(s, split[0], split[1], o);
        assertEquals(4, r.kLabel());
        double[] loss = r.trainLoss();
        assertTrue(loss[loss.length - 1] < loss[0], Arrays.toString(loss));
        assertTrue(r.valLoss()[r.bestEpoch()] < 0.7 * r.initialValLoss(),
                r.initialValLoss() + " -> " + Arrays.toString(r.valLoss()));
        // Random routing would recall 0.5 of the top 4 of 8.
        assertTrue(r.bestRecall() > 0.9, "recall " + r.bestRecall());
        assertEquals(16 * 8, r.weight().length);
    }

    /**
     * The recall metric on routers whose answer is known: scores = A x, so the router W = A
     * ranks the groups exactly (recall 1), W = -A ranks them reversed (its top half is the true
     * bottom half: recall 0 with kLabel = G / 2), and a random W recalls kLabel / G on average
     * (the random baseline), within 3 standard errors.
     */
    @Test
    void headRecallOnKnownRouters() {
        int n = 4000;
        int h = 12;
        int g = 8;
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(5);
        float[][] a = SyntheticSamples.gauss(rnd, g, h);
        float[][] x = SyntheticSamples.gauss(rnd, n, h);
        float[][] sc = new float[n][];
        for (int i = 0; i < n; i++) {
            sc[i] = SyntheticSamples.matvec(a, x[i]);
        }
        SyntheticSamples s = new SyntheticSamples(x, sc, new long[n][1], 0);
        int[] all = new int[n];
        for (int i = 0; i < n; i++) {
            all[i] = i;
        }
        float[] w = new float[g * h];
        float[] neg = new float[g * h];
        for (int j = 0; j < g; j++) {
            for (int c = 0; c < h; c++) {
                w[j * h + c] = a[j][c];
                neg[j * h + c] = -a[j][c];
            }
        }
        float[] zero = new float[g];
        assertEquals(1.0, RouterTrainer.headEval(s, all, w, zero, 4, 1f)[0], 1e-12);
        assertEquals(0.0, RouterTrainer.headEval(s, all, neg, zero, 4, 1f)[0], 1e-12);
        float[][] r = SyntheticSamples.gauss(new java.util.SplittableRandom(99), g, h);
        float[] rw = new float[g * h];
        for (int j = 0; j < g; j++) {
            System.arraycopy(r[j], 0, rw, j * h, h);
        }
        double random = RouterTrainer.headEval(s, all, rw, zero, 4, 1f)[0];
        // per token, hits of 4 among 4 of 8 is hypergeometric: variance 4*0.5*0.5*4/7 / 16
        double se = Math.sqrt(4 * 0.25 * 4.0 / 7 / 16 / n);
        assertEquals(0.5, random, 3 * se + 0.02, "random router recall " + random);
    }

    @Test
    void headTrainingIsDeterministicForASeed() {
        SyntheticSamples s = SyntheticSamples.linear(400, 8, 4, 0, 1, 0, 3);
        int[][] split = RouterTrainer.split(s.size(), 0.05, 1);
        RouterTrainer.Options o = RouterTrainer.Options.defaults().withEpochs(2, 1);
        assertArrayEquals(RouterTrainer.trainHeads(s, split[0], split[1], o).weight(),
                RouterTrainer.trainHeads(s, split[0], split[1], o).weight());
    }

    @Test
    void mlpRouterLearnsLowRankFiring() {
        SyntheticSamples s = SyntheticSamples.linear(3000, 16, 2, 128, 4, 0.8, 11);
        int[][] split = RouterTrainer.split(s.size(), 0.05, 1);
        RouterTrainer.Options o = new RouterTrainer.Options(0.5, 1e-2, 0.01, 32, 1, 8, 8, 5);
        RouterTrainer.MlpRouter r = RouterTrainer.trainMlp(s, split[0], split[1], o);
        assertTrue(r.positiveFraction() > 0.1 && r.positiveFraction() < 0.4,
                "firing " + r.positiveFraction());
        double[] loss = r.trainLoss();
        assertTrue(loss[loss.length - 1] < loss[0], Arrays.toString(loss));
        assertTrue(r.valLoss()[r.bestEpoch()] < 0.7 * r.initialValLoss(),
                r.initialValLoss() + " -> " + Arrays.toString(r.valLoss()));
        assertTrue(r.valRecall()[r.bestEpoch()] > 0.9, "recall "
                + r.valRecall()[r.bestEpoch()]);
        // Negatives are down-weighted (by the firing fraction), so the router favours recall;
        // its precision must still beat firing everything (precision = firing fraction).
        assertTrue(r.valPrecision()[r.bestEpoch()] > 1.5 * r.positiveFraction(), "precision "
                + r.valPrecision()[r.bestEpoch()]);
        assertEquals(8 * 16, r.down().length);
        assertEquals(128 * 8, r.up().length);
    }

    @Test
    void splitIsADisjointCoverWithFivePercentHeldOut() {
        int[][] sp = RouterTrainer.split(1000, 0.05, 9);
        assertEquals(50, sp[1].length);
        assertEquals(950, sp[0].length);
        Set<Integer> all = new HashSet<>();
        for (int[] part : sp) {
            for (int i : part) {
                assertTrue(all.add(i));
            }
        }
        assertEquals(1000, all.size());
        assertArrayEquals(sp[1], RouterTrainer.split(1000, 0.05, 9)[1]);
        assertEquals(0, RouterTrainer.split(1, 0.05, 9)[1].length);
    }

    @Test
    void labelCountRoundsAndClamps() {
        assertEquals(4, RouterTrainer.labelCount(0.5, 8));
        assertEquals(1, RouterTrainer.labelCount(0.5, 2));
        assertEquals(1, RouterTrainer.labelCount(0.01, 8));
        assertEquals(8, RouterTrainer.labelCount(1.0, 8));
    }

    @Test
    void lossIsStable() {
        assertEquals(Math.log(2), RouterTrainer.bce(0f, true), 1e-12);
        assertTrue(Double.isFinite(RouterTrainer.bce(-1000f, true)));
        assertEquals(1000, RouterTrainer.bce(-1000f, true), 1e-6);
        assertEquals(0, RouterTrainer.bce(1000f, true), 1e-6);
        assertEquals(0.5f, RouterTrainer.sigmoid(0f));
        assertEquals(0f, RouterTrainer.sigmoid(-200f));
    }
}
