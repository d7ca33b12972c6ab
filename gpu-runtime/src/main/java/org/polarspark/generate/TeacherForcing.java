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
        int[][] contexts = new int[rows][];
        int[][] conts = new int[rows][];
        int[][] firsts = new int[rows][];
        int maxCont = 0;
        for (int r = 0; r < rows; r++) {
            contexts[r] = reqs.get(r).context();
            conts[r] = reqs.get(r).continuation();
            firsts[r] = new int[] {conts[r][0]};
            maxCont = Math.max(maxCont, conts[r].length);
        }
        TokenScores out = TokenScores.shapedLike(conts);
        double[][] lp = out.logprob();
        boolean[][] greedy = out.greedy();
        TokenScores first = dec.score(seqs, contexts, firsts, SparsityPolicy.DENSE);
        for (int r = 0; r < rows; r++) {
            lp[r][0] = first.logprob()[r][0];
            greedy[r][0] = first.greedy()[r][0];
        }
        for (int step = 1; step < maxCont; step++) {
            List<Integer> live = new ArrayList<>();
            for (int r = 0; r < rows; r++) {
                if (step < conts[r].length) {
                    live.add(r);
                }
            }
            List<S> ls = new ArrayList<>(live.size());
            int[][] t = new int[live.size()][];
            int[][] next = new int[live.size()][];
            for (int i = 0; i < live.size(); i++) {
                int r = live.get(i);
                ls.add(seqs.get(r));
                t[i] = new int[] {conts[r][step - 1]};
                next[i] = new int[] {conts[r][step]};
            }
            TokenScores s = dec.score(ls, t, next, decodePolicy);
            for (int i = 0; i < live.size(); i++) {
                lp[live.get(i)][step] = s.logprob()[i][0];
                greedy[live.get(i)][step] = s.greedy()[i][0];
            }
        }
        return out;
    }
}
