package org.polarspark.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Scores from host logits: closed-form log-softmax values and the greedy rule (lowest id). */
class TokenScoresTest {

    @Test
    void logProbabilitiesAndGreedyFlagsFromLogits() {
        float ln3 = (float) Math.log(3);
        float[][][] logits = {
            {{0f, ln3}, {2f, 2f}},      // p = 1/4, 3/4; a tie
            {{-1f, 5f, Float.NEGATIVE_INFINITY}},
        };
        int[][] targets = {{1, 1}, {2}};
        TokenScores s = TokenScores.fromLogits(logits, targets);
        assertEquals(Math.log(3.0 / 4), s.logprob()[0][0], 1e-7);
        assertEquals(Math.log(0.5), s.logprob()[0][1], 1e-12);
        assertEquals(Double.NEGATIVE_INFINITY, s.logprob()[1][0]);
        // the tie goes to the lower id: token 1 is not the greedy choice there
        assertArrayEquals(new boolean[] {true, false}, s.greedy()[0]);
        assertFalse(s.greedy()[1][0]);
        assertEquals(Math.log(3.0 / 4) + Math.log(0.5), s.sum(0), 1e-7);
        assertFalse(s.allGreedy(0));
        assertTrue(TokenScores.fromLogits(new float[][][] {{{1f, 0f}}}, new int[][] {{0}})
                .allGreedy(0));
    }
}
