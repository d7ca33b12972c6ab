package org.polarspark.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The pipelined attention pass that reduces the q/k/v projection's split-K partials itself
 * (AttentionKernel.QkvPartials: what dense decode steps of llama-3's attention shape run) gives
 * the bits of the q/k/v reduce (DecodeFusedKernel.qkvRopeKv: sum, bias, RoPE, K/V append)
 * followed by the pass reading q from qkv: the same attention output and the same K/V cache,
 * new positions included, for 2, 4 and 8 query heads per group, with and without bias and RoPE,
 * one split per block and pairs (to the end and with tail singles). Tokens sit at position 0, at
 * a stage's start, at a split's start and deep in a row, over a paged cache with shuffled blocks
 * whose new positions start out as garbage.
 */
class FusedQkvAttentionTest extends GpuTest {
    private static final int D = 128;
    private static final int BLOCK = 16;

    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        int[][] shapes = {{16, 8}, {32, 8}, {64, 8}, {8, 2}};  // G = 2, 4, 8, 4
        for (int[] s : shapes) {
            for (int split : new int[] {64, 256}) {
                out.add(Arguments.of(s[0], s[1], split, false, true));
                out.add(Arguments.of(s[0], s[1], split, true, s[1] == 2));
            }
        }
        return everyDtype(out.stream());
    }

    @ParameterizedTest(name = "{0} heads={1} kv={2} split={3} bias={4} rope={5}")
    @MethodSource("cases")
    void passReducingQkvHasTheBitsOfTheReduceThenThePass(CudaDtype dt, int heads, int kvHeads,
                                                         int splitLen, boolean withBias,
                                                         boolean withRope) {
        KernelImage img = kernels(dt);
        Random r = new Random(heads * 31 + kvHeads * 7 + splitLen + (withBias ? 1 : 0));
        int[] lens = {1, 65, 300, 129};  // new positions 0, 64, 299, 128
        int n = lens.length;
        int maxBlocks = (300 + BLOCK - 1) / BLOCK;
        int numBlocks = n * maxBlocks + 3;
        List<Integer> pool = new ArrayList<>();
        for (int b = 0; b < numBlocks; b++) {
            pool.add(b);
        }
        Collections.shuffle(pool, r);
        int[] table = new int[n * maxBlocks];
        for (int i = 0; i < table.length; i++) {
            table[i] = pool.get(i);
        }
        int[] rowOf = new int[n];
        int[] pos = new int[n];
        for (int t = 0; t < n; t++) {
            rowOf[t] = t;
            pos[t] = lens[t] - 1;
        }
        int cols = (heads + 2 * kvHeads) * D;
        int partSplits = 5;
        int cacheElems = numBlocks * kvHeads * BLOCK * D;
        float[] kInit = random(r, cacheElems, 1.0);
        float[] vInit = random(r, cacheElems, 1.0);
        DeviceBuffer work = f32(random(r, partSplits * n * cols, 1.0));
        DeviceBuffer bias = withBias ? dev16(dt, random(r, cols, 0.5)) : null;
        float[] inv = new float[D / 2];
        for (int i = 0; i < inv.length; i++) {
            inv[i] = (float) Math.pow(10000.0, -2.0 * i / D);
        }
        DeviceBuffer invFreq = withRope ? f32(inv) : null;
        DeviceBuffer dTable = i32(table);
        DeviceBuffer dRow = i32(rowOf);
        DeviceBuffer dPos = i32(pos);
        int splits = (300 + splitLen - 1) / splitLen;
        float scale = (float) (1 / Math.sqrt(D));
        DeviceBuffer partO = zeros((long) n * heads * splits * D * 4);
        DeviceBuffer partMl = zeros((long) n * heads * splits * 2 * 4);

        // The reduce, then the pass reading q from qkv.
        DeviceBuffer kcA = dev16(dt, kInit);
        DeviceBuffer vcA = dev16(dt, vInit);
        DeviceBuffer qkv = zeros((long) n * cols * 2);
        img.fused.qkvRopeKv(stream, work, partSplits, bias, qkv, dPos, invFreq, n, heads,
                kvHeads, D, kcA, vcA, dRow, dTable, maxBlocks, BLOCK);
        // The pass reducing the partials itself (no qkv).
        DeviceBuffer kcB = dev16(dt, kInit);
        DeviceBuffer vcB = dev16(dt, vInit);
        AttentionKernel.QkvPartials partials = new AttentionKernel.QkvPartials(work,
                partSplits, cols, bias, invFreq);
        List<int[]> modes = new ArrayList<>();  // {pairs, singleFrom}
        modes.add(new int[] {0, splits + 1});
        if (AttentionKernel.pairsAllowed(heads, kvHeads, D, splitLen) && splits >= 2) {
            modes.add(new int[] {1, splits + 1});
            modes.add(new int[] {1, Math.max(0, 2 * ((splits + 1) / 2 - 1))});
        }
        for (int[] mode : modes) {
            boolean pairs = mode[0] == 1;
            String what = dt.wire() + " heads=" + heads + " kv=" + kvHeads + " split="
                    + splitLen + (pairs ? " pairs from " + mode[1] : "");
            DeviceBuffer attA = zeros((long) n * heads * D * 2);
            img.attention.decode(stream, qkv, cols, scale, kcA, vcA, dTable, maxBlocks, BLOCK,
                    dRow, dPos, null, kvHeads, heads, kvHeads, D, splitLen, splits, pairs,
                    mode[1], false, false, partO, partMl, n);
            img.attention.combine(stream, attA, partO, partMl, null, kvHeads, heads, kvHeads, D,
                    splits, pairs, mode[1], false, false, false, n);
            float[] want = read16(dt, attA, n * heads * D);
            DeviceBuffer attB = zeros((long) n * heads * D * 2);
            img.attention.decode(stream, null, cols, scale, kcB, vcB, dTable, maxBlocks, BLOCK,
                    dRow, dPos, null, kvHeads, heads, kvHeads, D, splitLen, splits, pairs,
                    mode[1], false, false, partials, partO, partMl, n);
            img.attention.combine(stream, attB, partO, partMl, null, kvHeads, heads, kvHeads, D,
                    splits, pairs, mode[1], false, false, false, n);
            assertArrayEquals(want, read16(dt, attB, n * heads * D),
                    "attention output, reduce then pass vs the pass reducing: " + what);
            assertArrayEquals(read16(dt, kcA, cacheElems), read16(dt, kcB, cacheElems),
                    "K cache: " + what);
            assertArrayEquals(read16(dt, vcA, cacheElems), read16(dt, vcB, cacheElems),
                    "V cache: " + what);
        }
        // The new rows were appended (not the garbage they started as).
        float[] kAfter = read16(dt, kcB, cacheElems);
        float[] kBefore = dt.round(kInit);
        int slot = ((table[3 * maxBlocks + 128 / BLOCK] * kvHeads) * BLOCK + 128 % BLOCK) * D;
        int changed = 0;
        for (int d = 0; d < D; d++) {
            changed += kBefore[slot + d] != kAfter[slot + d] ? 1 : 0;
        }
        assertTrue(changed > D / 2, "token 3's K row was appended: " + changed + " of " + D
                + " values changed");
    }
}
