package org.polarspark.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * How the device argmax splits its rows into chunks (no GPU needed): worked examples on an
 * H100's 132 SMs, and the invariants every split keeps.
 */
class LmHeadChunkTest {
    private static final int H100_SMS = 132;

    private static int chunks(int rows, int vocab) {
        int chunk = LmHeadKernel.chunkFor(rows, vocab, H100_SMS);
        return (vocab + chunk - 1) / chunk;
    }

    @Test
    void workedExamples() {
        // llama-3-8b, one row: 63 blocks of 2048 logits (the smallest chunk), not one block.
        assertEquals(2048, LmHeadKernel.chunkFor(1, 128256, H100_SMS));
        assertEquals(63, chunks(1, 128256));
        // 16 rows: 17 chunks wanted for 2 blocks per SM; 8192-logit chunks give 16 a row.
        assertEquals(8192, LmHeadKernel.chunkFor(16, 128256, H100_SMS));
        assertEquals(16, chunks(16, 128256));
        // Many rows: two chunks a row while rows < 2 blocks per SM, then one.
        assertEquals(2, chunks(256, 32000));
        assertEquals(2, chunks(200, 128256));
        assertEquals(1, chunks(264, 128256));
        // a vocabulary shorter than one unit: one chunk.
        assertEquals(1, chunks(1, 7));
    }

    @Test
    void chunksCoverTheRowInWholeUnitsAndStayNearTheTarget() {
        for (int vocab : new int[] {7, 1031, 8193, 32000, 50272, 128256, 256000}) {
            for (int rows = 1; rows <= 300; rows++) {
                int chunk = LmHeadKernel.chunkFor(rows, vocab, H100_SMS);
                int n = (vocab + chunk - 1) / chunk;
                String at = "rows=" + rows + " vocab=" + vocab;
                assertEquals(0, chunk % 1024, at + ": whole 1024-logit units");
                assertTrue((long) n * chunk >= vocab && (long) (n - 1) * chunk < vocab,
                        at + ": every chunk non-empty");
                assertTrue(chunk >= 2048 || n == 1, at + ": no chunk under 2048 logits");
                assertTrue((long) rows * n <= Math.max(rows, 2L * H100_SMS + rows), at
                        + ": about two blocks per SM at most");
            }
        }
    }
}
