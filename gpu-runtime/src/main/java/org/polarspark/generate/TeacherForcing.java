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
     * Logits predicting each continuation token: [row][i] are the logits after context +
     * continuation[0..i). Sequences must be fresh (empty) and able to hold context +
     * continuation - 1 tokens.
     */
    public static <S> float[][][] continuationLogits(BatchDecoder<S> dec, List<S> seqs,
                                                     List<LoglikelihoodRequest> reqs,
                                                     SparsityPolicy decodePolicy) {
        int rows = seqs.size();
        float[][][] out = new float[rows][][];
        int[][] contexts = new int[rows][];
        int[] ones = new int[rows];
        int maxCont = 0;
        for (int r = 0; r < rows; r++) {
            contexts[r] = reqs.get(r).context();
            ones[r] = 1;
            out[r] = new float[reqs.get(r).continuation().length][];
            maxCont = Math.max(maxCont, reqs.get(r).continuation().length);
        }
        float[][][] first = dec.forward(seqs, contexts, ones, SparsityPolicy.DENSE);
        for (int r = 0; r < rows; r++) {
            out[r][0] = first[r][0];
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
            int[] one = new int[live.size()];
            for (int i = 0; i < live.size(); i++) {
                int r = live.get(i);
                ls.add(seqs.get(r));
                t[i] = new int[] {reqs.get(r).continuation()[step - 1]};
                one[i] = 1;
            }
            float[][][] l = dec.forward(ls, t, one, decodePolicy);
            for (int i = 0; i < live.size(); i++) {
                out[live.get(i)][step] = l[i][0];
            }
        }
        return out;
    }
}
