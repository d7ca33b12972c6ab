package org.polarspark.generate;

/**
 * Log-probabilities of given tokens at consecutive positions of each row (the raw model
 * distribution), and whether each token was the greedy choice there (the lowest id among the
 * largest logits, as {@link Sampler#argmax} picks): [row][position].
 */
public record TokenScores(double[][] logprob, boolean[][] greedy) {

    /** Scores to fill, one (0, false) per target: [row][position] as {@code targets}. */
    public static TokenScores shapedLike(int[][] targets) {
        double[][] lp = new double[targets.length][];
        boolean[][] g = new boolean[targets.length][];
        for (int r = 0; r < targets.length; r++) {
            lp[r] = new double[targets[r].length];
            g[r] = new boolean[targets[r].length];
        }
        return new TokenScores(lp, g);
    }

    /** From logits [row][position][vocab] and the token scored at each position. */
    public static TokenScores fromLogits(float[][][] logits, int[][] targets) {
        TokenScores s = shapedLike(targets);
        for (int r = 0; r < targets.length; r++) {
            for (int i = 0; i < targets[r].length; i++) {
                s.logprob[r][i] = Sampler.logProb(logits[r][i], targets[r][i]);
                s.greedy[r][i] = Sampler.argmax(logits[r][i]) == targets[r][i];
            }
        }
        return s;
    }

    /** Row r's log-likelihood: the sum of its log-probabilities. */
    public double sum(int r) {
        double s = 0;
        for (double v : logprob[r]) {
            s += v;
        }
        return s;
    }

    /** Whether every scored token of row r was the greedy choice. */
    public boolean allGreedy(int r) {
        for (boolean b : greedy[r]) {
            if (!b) {
                return false;
            }
        }
        return true;
    }
}
