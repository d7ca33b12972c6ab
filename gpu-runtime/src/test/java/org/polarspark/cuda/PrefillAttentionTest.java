package org.polarspark.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The tiled causal prefill attention (kernels/attention_prefill.cu) against a host reference in
 * double and against the flash-decoding kernel, over odd shapes: several sequences of different
 * lengths in one launch, prompt chunks starting at nonzero positions (earlier chunks' K/V already
 * in the cache), lengths that are not multiples of the tile, GQA groups of 1 to 8, head dims
 * 24 to 128, scattered block tables, and cache slots never appended poisoned with NaN. A token's
 * result must not depend on how its prompt is chunked or on the other sequences of the launch.
 * The main test runs in both element types (bf16 and fp16 images, inputs rounded to each).
 */
class PrefillAttentionTest extends GpuTest {
    private static final int BLOCK = 16;

    static Stream<Arguments> shapes() {
        // heads, kvHeads, headDim, sequence lengths, first queried position of each sequence
        return everyDtype(Stream.of(
                Arguments.of(8, 8, 64, new int[] {1, 77, 130}, new int[] {0, 0, 0}),
                Arguments.of(16, 4, 128, new int[] {429, 65, 5}, new int[] {129, 0, 0}),
                Arguments.of(32, 4, 128, new int[] {300, 171, 64}, new int[] {299, 100, 0}),
                Arguments.of(8, 4, 32, new int[] {97, 250}, new int[] {0, 63}),
                Arguments.of(8, 2, 24, new int[] {54, 97}, new int[] {0, 0}),
                Arguments.of(4, 4, 96, new int[] {150, 3}, new int[] {0, 1}),
                Arguments.of(16, 2, 64, new int[] {1100, 513}, new int[] {0, 257}),
                Arguments.of(32, 32, 128, new int[] {200, 130}, new int[] {0, 65}),
                Arguments.of(32, 8, 128, new int[] {129, 64, 1, 300}, new int[] {0, 0, 0, 1})));
    }

    /** One problem: cache filled for every sequence, a query batch of one run per sequence. */
    private static final class Problem {
        CudaDtype dt;              // element type of the image, the inputs and the cache
        KernelImage img;           // that type's kernels
        int heads, kvHeads, headDim, stride, maxBlocks, n;
        int[] lens, starts, first; // first: flat index of each run's first query
        float[] qkv;               // query rows [n, stride] (rounded to dt)
        float[] allQkv;            // every position's row, per sequence, concatenated
        int[] allFirst;            // index of each sequence's position 0 in allQkv rows
        DeviceBuffer kc, vc, table, dqkv;
    }

    private static Problem build(CudaDtype dt, Random r, int heads, int kvHeads, int headDim,
                                 int[] lens, int[] starts) {
        Problem p = new Problem();
        p.dt = dt;
        p.img = kernels(dt);
        p.heads = heads;
        p.kvHeads = kvHeads;
        p.headDim = headDim;
        p.lens = lens;
        p.starts = starts;
        int rows = lens.length;
        p.stride = (heads + 2 * kvHeads) * headDim;
        for (int l : lens) {
            p.maxBlocks = Math.max(p.maxBlocks, (l + BLOCK - 1) / BLOCK);
        }
        int numBlocks = rows * p.maxBlocks + 7;
        List<Integer> pool = new ArrayList<>();
        for (int b = 0; b < numBlocks; b++) {
            pool.add(b);
        }
        Collections.shuffle(pool, r); // scattered, non-contiguous blocks
        int[] table = new int[rows * p.maxBlocks];
        for (int i = 0; i < table.length; i++) {
            table[i] = pool.get(i);
        }
        // Every position of every sequence: K/V appended through the real append kernel into a
        // cache whose other slots are NaN (a read of a slot never appended would show).
        int all = Arrays.stream(lens).sum();
        p.allQkv = dt.round(random(r, all * p.stride, 1.5));
        p.allFirst = new int[rows];
        int[] rowOf = new int[all];
        int[] posOf = new int[all];
        for (int row = 0, i = 0; row < rows; row++) {
            p.allFirst[row] = i;
            for (int q = 0; q < lens[row]; q++, i++) {
                rowOf[i] = row;
                posOf[i] = q;
            }
        }
        float[] nan = new float[numBlocks * kvHeads * BLOCK * headDim];
        Arrays.fill(nan, Float.NaN);
        p.kc = dev16(dt, nan);
        p.vc = dev16(dt, nan);
        p.table = i32(table);
        p.img.kvAppend.run(stream, p.kc, p.vc, dev16(dt, p.allQkv), i32(rowOf), i32(posOf), p.table,
                p.maxBlocks, BLOCK, all, p.stride, heads * headDim,
                (heads + kvHeads) * headDim, kvHeads, headDim);
        // The query batch: positions starts[row] .. lens[row]-1 of each row, in row order.
        p.first = new int[rows];
        for (int row = 0; row < rows; row++) {
            p.first[row] = p.n;
            p.n += lens[row] - starts[row];
        }
        p.qkv = new float[p.n * p.stride];
        for (int row = 0; row < rows; row++) {
            System.arraycopy(p.allQkv, (p.allFirst[row] + starts[row]) * p.stride, p.qkv,
                    p.first[row] * p.stride, (lens[row] - starts[row]) * p.stride);
        }
        p.dqkv = dev16(dt, p.qkv);
        return p;
    }

    /** Tiles for the runs of the given rows, each run cut into chunks of {@code chunk}. */
    private static int[] tiles(Problem p, int[] rowsIn, int chunk) {
        List<int[]> runs = new ArrayList<>();
        for (int row : rowsIn) {
            int len = p.lens[row] - p.starts[row];
            for (int c = 0; c < len; c += chunk) {
                runs.add(new int[] {p.first[row] + c, row, p.starts[row] + c,
                    Math.min(chunk, len - c)});
            }
        }
        int[][] cols = new int[4][runs.size()];
        for (int i = 0; i < runs.size(); i++) {
            for (int j = 0; j < 4; j++) {
                cols[j][i] = runs.get(i)[j];
            }
        }
        return PrefillAttentionKernel.tiles(cols[0], cols[1], cols[2], cols[3]);
    }

    private static float[] prefill(Problem p, int[] tiles) {
        float[] nan = new float[p.n * p.heads * p.headDim];
        Arrays.fill(nan, Float.NaN);
        DeviceBuffer att = dev16(p.dt, nan); // poisoned: every queried element must be written
        p.img.prefillAttention.run(stream, att, p.dqkv, p.stride,
                (float) (1 / Math.sqrt(p.headDim)), p.kc, p.vc, p.table, p.maxBlocks, BLOCK,
                i32(tiles), tiles.length / 4, p.heads, p.kvHeads, p.headDim, p.n);
        return read16(p.dt, att, p.n * p.heads * p.headDim);
    }

    private static int[] allRows(Problem p) {
        int[] rows = new int[p.lens.length];
        for (int i = 0; i < rows.length; i++) {
            rows[i] = i;
        }
        return rows;
    }

    /** fp64 causal attention of every query token, from the same 16-bit values. */
    private static float[] reference(Problem p) {
        int g = p.heads / p.kvHeads;
        int d = p.headDim;
        int kOff = p.heads * d;
        int vOff = kOff + p.kvHeads * d;
        double scale = 1 / Math.sqrt(d);
        float[] out = new float[p.n * p.heads * d];
        for (int row = 0; row < p.lens.length; row++) {
            for (int pos = p.starts[row]; pos < p.lens[row]; pos++) {
                int t = p.first[row] + pos - p.starts[row];
                for (int h = 0; h < p.heads; h++) {
                    int grp = h / g;
                    double[] s = new double[pos + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int q = 0; q <= pos; q++) {
                        int kr = (p.allFirst[row] + q) * p.stride + kOff + grp * d;
                        double dot = 0;
                        for (int e = 0; e < d; e++) {
                            dot += (double) p.qkv[t * p.stride + h * d + e] * p.allQkv[kr + e];
                        }
                        s[q] = dot * scale;
                        max = Math.max(max, s[q]);
                    }
                    double sum = 0;
                    for (int q = 0; q <= pos; q++) {
                        s[q] = Math.exp(s[q] - max);
                        sum += s[q];
                    }
                    for (int e = 0; e < d; e++) {
                        double o = 0;
                        for (int q = 0; q <= pos; q++) {
                            o += s[q] * p.allQkv[(p.allFirst[row] + q) * p.stride + vOff
                                    + grp * d + e];
                        }
                        out[(t * p.heads + h) * d + e] = (float) (o / sum);
                    }
                }
            }
        }
        return out;
    }

    private static double relativeError(float[] expected, float[] actual) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < expected.length; i++) {
            double e = actual[i] - expected[i];
            num += e * e;
            den += (double) expected[i] * expected[i];
        }
        return Math.sqrt(num / den);
    }

    @ParameterizedTest(name = "{0} heads={1} kv={2} D={3} lens={4} starts={5}")
    @MethodSource("shapes")
    void matchesReferenceAndDecodeKernel(CudaDtype dt, int heads, int kvHeads, int headDim,
                                         int[] lens, int[] starts) {
        Random r = new Random(heads * 7919L + kvHeads * 131 + headDim + lens[0]);
        Problem p = build(dt, r, heads, kvHeads, headDim, lens, starts);
        String what = dt.wire() + " prefill heads=" + heads + " kv=" + kvHeads + " D=" + headDim;
        float[] got = prefill(p, tiles(p, allRows(p), Integer.MAX_VALUE));

        float[] expected = reference(p);
        assertClose(what + " vs fp64", expected, got, 1e-2, CudaKernelTest.BF16_OUT_RTOL);
        double rel = relativeError(expected, got);
        assertTrue(rel < 1e-2, what + ": relative error " + rel);

        // The flash-decoding kernel on the same queries (each token at its own position).
        int[] rowOf = new int[p.n];
        int[] posOf = new int[p.n];
        int maxLen = 0;
        for (int row = 0; row < lens.length; row++) {
            for (int pos = starts[row]; pos < lens[row]; pos++) {
                rowOf[p.first[row] + pos - starts[row]] = row;
                posOf[p.first[row] + pos - starts[row]] = pos;
            }
            maxLen = Math.max(maxLen, lens[row]);
        }
        int splitLen = 256;
        int splits = (maxLen + splitLen - 1) / splitLen;
        DeviceBuffer partO = zeros((long) p.n * heads * splits * headDim * 4);
        DeviceBuffer partMl = zeros((long) p.n * heads * splits * 2 * 4);
        DeviceBuffer att = zeros((long) p.n * heads * headDim * 2);
        p.img.attention.decode(stream, p.dqkv, p.stride, (float) (1 / Math.sqrt(headDim)),
                p.kc, p.vc, p.table, p.maxBlocks, BLOCK, i32(rowOf), i32(posOf), null, kvHeads,
                heads, kvHeads, headDim, splitLen, splits, partO, partMl, p.n);
        p.img.attention.combine(stream, att, partO, partMl, null, kvHeads, heads, kvHeads,
                headDim, splits, p.n);
        float[] decode = read16(dt, att, p.n * heads * headDim);
        // Two 16-bit results of the same function: within two output roundings of each other.
        assertClose(what + " vs decode kernel", decode, got, 2e-2, 2e-2);
        assertTrue(relativeError(decode, got) < 1e-2, what + " vs decode kernel");

        // Invariance, bit for bit: other chunkings of the same prompts, and each sequence alone.
        for (int chunk : new int[] {1, 7, 37, 64, 100, 128, 200}) {
            float[] again = prefill(p, tiles(p, allRows(p), chunk));
            assertArrayEquals(got, again, what + ": chunks of " + chunk + " change the result");
        }
        int per = heads * headDim;
        for (int row = 0; row < lens.length; row++) {
            float[] alone = prefill(p, tiles(p, new int[] {row}, 29));
            int from = p.first[row] * per;
            int to = from + (lens[row] - starts[row]) * per;
            assertArrayEquals(Arrays.copyOfRange(got, from, to),
                    Arrays.copyOfRange(alone, from, to), what + ": row " + row + " alone differs");
        }
    }

    @Test
    void tilesCoverEveryQueryOnceLongestFirst() {
        int tile = PrefillAttentionKernel.TILE;
        int[] counts = {2 * tile + 3, 1, tile};
        int[] t = PrefillAttentionKernel.tiles(new int[] {0, counts[0], counts[0] + 1},
                new int[] {0, 1, 2}, new int[] {5, 0, 300}, counts);
        assertEquals(4 * (3 + 1 + 1), t.length);
        int covered = 0;
        int lastEnd = Integer.MAX_VALUE;
        for (int i = 0; i < t.length; i += 4) {
            assertTrue(t[i + 3] >= 1 && t[i + 3] <= PrefillAttentionKernel.TILE);
            int end = t[i + 2] + t[i + 3];
            assertTrue(end <= lastEnd, "ordered by decreasing end position");
            lastEnd = end;
            covered += t[i + 3];
        }
        assertEquals(counts[0] + counts[1] + counts[2], covered);
        assertTrue(PrefillAttentionKernel.maxTiles(covered, 3) >= t.length / 4);
    }

    @Test
    void rejectsUnsupportedShapes() {
        DeviceBuffer any = zeros(1 << 16);
        for (int headDim : new int[] {12, 136, 256}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> kernels.prefillAttention.run(stream, any, any, 8 * headDim, 1f, any, any,
                            any, 1, BLOCK, any, 1, 4, 2, headDim, 1));
            assertTrue(e.getMessage().contains("head_dim"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> kernels.prefillAttention.run(stream,
                any, any, 8 * 64, 1f, any, any, any, 1, BLOCK, any, 1, 6, 4, 64, 1));
    }
}
