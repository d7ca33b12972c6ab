package org.polarspark.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * The wave rule for split-K of the wgmma decode tile (no GPU needed): worked examples on an
 * H100's 132 SMs, and the invariants every chunk must keep.
 */
class GemmSplitTest {
    private static final int H100_SMS = 132;

    private static int splits(int n, int k) {
        int chunk = GemmKernel.waveChunk(n, k, H100_SMS);
        return (k + chunk - 1) / chunk;
    }

    @Test
    void llama2ProjectionsFillWholeWaves() {
        // q/k/v: 96 tiles of 128 columns. 3 splits = 288 blocks = 2.18 waves (the last one 18%
        // busy); 4 = 384 blocks = 2.91 waves (97%), with a sixth more partial traffic.
        assertEquals(4, splits(12288, 4096));
        // o_proj: 32 tiles; 4 splits = 128 blocks (0.97 of one wave), where 7 gave 1.7 waves.
        assertEquals(4, splits(4096, 4096));
        // gate/up: 172 tiles; 3 splits = 516 blocks = 3.91 waves (98%), 2 = 2.6 (87%).
        assertEquals(3, splits(22016, 4096));
    }

    @Test
    void oneWaveNeedsNoSplit() {
        // opt-6.7b fc1: 128 tiles already fill 0.97 of a wave; splitting adds only traffic.
        assertEquals(1, splits(16384, 4096));
    }

    @Test
    void rowGathersSpreadOverTheSms() {
        // opt-6.7b Polar B=64 fc1 (10160 neurons): 80 tiles of 128 use 80 SMs; 127 blocks of 80
        // columns use 127 (72 columns would need 142 blocks, two waves).
        assertEquals(80, GemmKernel.gatherColumns(10160, H100_SMS));
        // B=32 (8520): 119 blocks of 72 (64 would need 134).
        assertEquals(72, GemmKernel.gatherColumns(8520, H100_SMS));
        // Already a wave of 128-column tiles: stays 128. 100 columns: two blocks of 64.
        assertEquals(128, GemmKernel.gatherColumns(16384, H100_SMS));
        assertEquals(64, GemmKernel.gatherColumns(100, H100_SMS));
        for (int n = 8; n <= 40000; n += 8) {
            int bn = GemmKernel.gatherColumns(n, H100_SMS);
            String what = "N=" + n + " columns=" + bn;
            assertTrue(bn % 8 == 0 && bn >= 64 && bn <= 128, what);
            // never more waves of blocks than 128-column tiles take
            long waves = ((n + bn - 1) / bn + H100_SMS - 1) / H100_SMS;
            long waves128 = ((n + 127) / 128 + H100_SMS - 1) / H100_SMS;
            assertTrue(waves * bn <= waves128 * 128, what);
        }
    }

    @Test
    void wideProjectionsRunUnsplitWhenTheirLastWaveKeepsHalfTheSmsBusy() {
        // llama-3-8b gate/up (28672 columns: 224 tiles, last wave 92 of 132) and LM head (128256:
        // 1002 tiles, last wave 78) run unsplit; llama-2-7b gate/up (22016: 172 tiles, last wave
        // 40) stays split, as do projections of less than a wave (opt-6.7b fc1, 128 tiles).
        assertTrue(GemmKernel.unsplitWide(28672, H100_SMS));
        assertTrue(GemmKernel.unsplitWide(128256, H100_SMS));
        assertFalse(GemmKernel.unsplitWide(22016, H100_SMS));
        assertFalse(GemmKernel.unsplitWide(16384, H100_SMS));
        assertFalse(GemmKernel.unsplitWide(4096, H100_SMS));
        // Whole waves: 264 tiles on 132 SMs; one column past them starts a nearly empty wave.
        assertTrue(GemmKernel.unsplitWide(264 * 128, H100_SMS));
        assertFalse(GemmKernel.unsplitWide(264 * 128 + 1, H100_SMS));
    }

    @Test
    void chunksAreWholeTilesOfAtLeast256AndAtMost16Splits() {
        int[] ns = {64, 1000, 4096, 6144, 12288, 16384, 22016, 28672, 50272};
        int[] ks = {64, 200, 256, 1024, 4096, 11008, 14336, 16384};
        for (int n : ns) {
            for (int k : ks) {
                int chunk = GemmKernel.waveChunk(n, k, H100_SMS);
                String what = "N=" + n + " K=" + k + " chunk=" + chunk;
                assertEquals(0, chunk % 64, what);
                assertTrue(chunk >= Math.min(256, (k + 63) / 64 * 64), what);
                assertTrue(chunk <= (k + 63) / 64 * 64, what);
                assertTrue((k + chunk - 1) / chunk <= 16, what);
            }
        }
    }
}
