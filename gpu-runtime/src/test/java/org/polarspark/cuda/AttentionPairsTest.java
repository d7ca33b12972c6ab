package org.polarspark.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.Test;

/**
 * When flash-decoding runs two splits per block (no GPU needed; that the two modes give the same
 * bits is CudaKernelTest.pagedAttention's job): worked examples of the benchmark shapes on an
 * H100's 132 SMs at full context, and the shapes that must never take pairs; which shapes run
 * the pipelined kernel.
 */
class AttentionPairsTest {
    private static final int H100_SMS = 132;

    @Test
    void largeMhaLaunchesTakePairsAndBatchOneDoesNot() {
        // llama-2-7b, 16 splits of 256 at 4096 positions, 32 groups of one head; pairs from 48
        // split blocks per SM (6336 blocks).
        assertFalse(AttentionKernel.pairsFor(1, 32, 16, 1, H100_SMS), "B=1: 512 blocks");
        assertFalse(AttentionKernel.pairsFor(8, 32, 16, 1, H100_SMS), "B=8: 4096 blocks");
        assertTrue(AttentionKernel.pairsFor(16, 32, 16, 1, H100_SMS), "B=16: 8192 blocks");
        // Polar at density 0.5 selects 16 groups: B=32 has 8192 blocks, B=16 4096, B=8 2048.
        assertTrue(AttentionKernel.pairsFor(32, 16, 16, 1, H100_SMS));
        assertFalse(AttentionKernel.pairsFor(16, 16, 16, 1, H100_SMS));
        assertFalse(AttentionKernel.pairsFor(8, 16, 16, 1, H100_SMS));
        // opt-6.7b, 8 splits at 2048 positions: B=32 dense 8192 blocks, Polar B=64 8192, Polar
        // B=32 4096, dense B=16 4096.
        assertTrue(AttentionKernel.pairsFor(32, 32, 8, 1, H100_SMS));
        assertTrue(AttentionKernel.pairsFor(64, 16, 8, 1, H100_SMS));
        assertFalse(AttentionKernel.pairsFor(32, 16, 8, 1, H100_SMS));
        assertFalse(AttentionKernel.pairsFor(16, 32, 8, 1, H100_SMS));
    }

    @Test
    void shortPairLaunchesEndWithSingleSplits() {
        // Polar llama-2-7b B=32 (16 of 32 groups, 16 splits): 62 split blocks per SM; the
        // last pair (splits 14, 15) runs as two blocks: 7 pair partials + 2.
        int from = AttentionKernel.singleFrom(32, 16, 16, true, H100_SMS);
        assertEquals(14, from);
        assertEquals(9, AttentionKernel.parts(16, true, from));
        // Dense at B=32 (124 per SM), launches without pairs, and too few splits: pairs to the
        // end (or no pairs at all).
        assertEquals(17, AttentionKernel.singleFrom(32, 32, 16, true, H100_SMS));
        assertEquals(8, AttentionKernel.parts(16, true, 17));
        assertEquals(17, AttentionKernel.singleFrom(1, 32, 16, false, H100_SMS));
        assertEquals(16, AttentionKernel.parts(16, false, 17));
        assertEquals(4, AttentionKernel.singleFrom(1000, 16, 3, true, H100_SMS));
        // Polar opt-6.7b B=64, odd split counts and every possible end: the partials the kernel
        // maps (pairs 2z, 2z + 1 below singleFrom, then one split each) cover every split once,
        // in order, and their count is parts().
        assertEquals(6, AttentionKernel.singleFrom(64, 16, 8, true, H100_SMS));
        for (int splits = 1; splits <= 19; splits++) {
            for (int end = 0; end <= splits + 1; end += 2) {
                int next = 0;
                int parts = 0;
                int pairParts = Math.min((splits + 1) / 2, end / 2);
                for (int z = 0; next < splits; z++, parts++) {
                    int first = z < pairParts ? 2 * z : pairParts + z;
                    int last = z < pairParts ? Math.min(splits, first + 2) - 1 : first;
                    assertEquals(next, first, "splits " + splits + " ending at " + end);
                    next = last + 1;
                }
                assertEquals(parts, AttentionKernel.parts(splits, true, end),
                        "splits " + splits + " ending at " + end);
            }
        }
    }

    @Test
    void groupedQueryShapesOnlyOnThePipelinedKernel() {
        // The kernels with loads in registers: one query head per group only.
        assertFalse(AttentionKernel.pairsFor(48, 8, 32, 4, H100_SMS));
        assertFalse(AttentionKernel.pairsFor(4096, 8, 32, 8, H100_SMS));
        assertFalse(AttentionKernel.pairsFor(4096, 8, 32, 32, 8, 64, 256, H100_SMS),
                "head_dim 64: not the pipelined kernel");
        // One split: nothing to pair.
        assertFalse(AttentionKernel.pairsFor(100_000, 32, 1, 1, H100_SMS));
        assertFalse(AttentionKernel.pairsFor(100_000, 8, 1, 32, 8, 128, 256, H100_SMS));
    }

    @Test
    void pipelinedShapesPairFromSixteenBlocksPerSm() {
        assumeTrue(AttentionKernel.PIPE, "-Dpolar.attention.pipe=false");
        // llama-3-8b, N = 8192 (32 splits of 256): 256 / 2048 / 4096 / 12288 blocks.
        assertFalse(AttentionKernel.pairsFor(1, 8, 32, 32, 8, 128, 256, H100_SMS), "B=1");
        assertFalse(AttentionKernel.pairsFor(8, 8, 32, 32, 8, 128, 256, H100_SMS), "B=8");
        assertTrue(AttentionKernel.pairsFor(16, 8, 32, 32, 8, 128, 256, H100_SMS), "B=16");
        assertTrue(AttentionKernel.pairsFor(48, 8, 32, 32, 8, 128, 256, H100_SMS), "B=48");
        assertTrue(AttentionKernel.pairsFor(48, 5, 32, 32, 8, 128, 256, H100_SMS),
                "B=48, 5 of 8 groups");
        // A stage (64 positions) never straddles a pair's splits.
        assertFalse(AttentionKernel.pairsFor(4096, 8, 32, 32, 8, 128, 32, H100_SMS));
        assertTrue(AttentionKernel.pairsAllowed(32, 8, 128, 64));
        assertFalse(AttentionKernel.pairsAllowed(32, 8, 128, 96));
        // One query head per group keeps its own rule.
        assertEquals(AttentionKernel.pairsFor(16, 32, 16, 1, H100_SMS),
                AttentionKernel.pairsFor(16, 32, 16, 32, 32, 128, 256, H100_SMS));
    }

    @Test
    void pipelinedKernelByShapeAlone() {
        assertTrue(AttentionKernel.pipeFor(32, 8, 128), "llama-3-8b");
        assertTrue(AttentionKernel.pipeFor(64, 8, 128));
        assertTrue(AttentionKernel.pipeFor(16, 8, 128));
        assertFalse(AttentionKernel.pipeFor(32, 32, 128), "llama-2-7b: one query head per group");
        assertFalse(AttentionKernel.pipeFor(24, 8, 128), "3 query heads per group");
        assertFalse(AttentionKernel.pipeFor(32, 2, 128), "16 query heads per group");
        assertFalse(AttentionKernel.pipeFor(32, 8, 64), "head_dim 64");
        assertFalse(AttentionKernel.pipeFor(16, 2, 256), "head_dim 256");
        // Two blocks per SM fit an H100's 228 KB (227 KB a block, 1 KB reserved per block):
        // ring 104448 + q fragments 2048 + scores 8 x 72 x 4 + statistics 8 x 16 + a pair's
        // first m and l 8 x 8.
        int smem = AttentionKernel.pipeSharedBytes(8);
        assertEquals(108_992, smem);
        assertTrue(2 * (smem + 1024) <= 228 * 1024);
    }

    @Test
    void partialsPerHeadHalveRoundingUp() {
        assertEquals(16, AttentionKernel.parts(16, false));
        assertEquals(8, AttentionKernel.parts(16, true));
        assertEquals(3, AttentionKernel.parts(5, true));
        assertEquals(1, AttentionKernel.parts(1, true));
    }
}
