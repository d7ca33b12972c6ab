package org.polarspark.generate;

import java.util.ArrayList;
import java.util.List;
import org.polarspark.polar.SparsityPolicy;

/**
 * Polar Sparsity as deployed, applied to scoring: each context is prefilled dense, then its
 * continuation is fed one token per step (teacher forcing) as decode steps under the decode
 * policy, all rows together. Works on any backend's {@link BatchDecoder}.
 */
public final class TeacherForcing {
    private TeacherForcing() {
    }

    /**
     * The scores of each continuation token: [row][i] is continuation[i] scored after context +
     * continuation[0..i) (see {@link BatchDecoder#score}). Sequences must be fresh (empty) and
     * able to hold context + continuation - 1 tokens.
     */
    public static <S> TokenScores continuationScores(BatchDecoder<S> dec, List<S> seqs,
                                                     List<LoglikelihoodRequest> reqs,
                                                     SparsityPolicy decodePolicy) {
        int rows = seqs.size();
        double[][] lp = new double[rows][];
        boolean[][] greedy = new boolean[rows][];
        int[][] contexts = new int[rows][];
        int[][] firsts = new int[rows][];
        int maxCont = 0;
        for (int r = 0; r < rows; r++) {
            int[] cont = reqs.get(r).continuation();
            contexts[r] = reqs.get(r).context();
            firsts[r] = new int[] {cont[0]};
            lp[r] = new double[cont.length];
            greedy[r] = new boolean[cont.length];
            maxCont = Math.max(maxCont, cont.length);
        }
        TokenScores first = dec.score(seqs, contexts, firsts, SparsityPolicy.DENSE);
        for (int r = 0; r < rows; r++) {
            lp[r][0] = first.logprob()[r][0];
            greedy[r][0] = first.greedy()[r][0];
        }
        for (int step = 1; step < maxCont; step++) {
            List<Integer> live = new ArrayList<>();
            for (int r = 0; r < rows; r++) {
                if (step < reqs.get(r).continuation().length) {
                    live.add(r);
                }
            }
            List<S> ls = new ArrayList<>(live.size());
            int[][] t = new int[live.size()][];
            int[][] next = new int[live.size()][];
            for (int i = 0; i < live.size(); i++) {
                int r = live.get(i);
                int[] cont = reqs.get(r).continuation();
                ls.add(seqs.get(r));
                t[i] = new int[] {cont[step - 1]};
                next[i] = new int[] {cont[step]};
            }
            TokenScores s = dec.score(ls, t, next, decodePolicy);
            for (int i = 0; i < live.size(); i++) {
                lp[live.get(i)][step] = s.logprob()[i][0];
                greedy[live.get(i)][step] = s.greedy()[i][0];
            }
        }
        return new TokenScores(lp, greedy);
    }
}
