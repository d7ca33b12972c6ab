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
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.polarspark.cuda.GemmKernel.Epilogue;
import org.polarspark.model.RopeScaling;

/**
 * Every kernel against a host reference computed in double from the same bf16-rounded inputs,
 * on fresh random data over odd shapes (not multiples of the tile sizes), batch 1 and > 1. The
 * GEMM tiles (decode, prefill, wgmma), the norms and paged attention run in both element types
 * (their first parameter: the fp16 image, inputs rounded to fp16); the other kernels in bf16.
 */
class CudaKernelTest extends GpuTest {
    /**
     * bf16 outputs: one rounding of the result (2^-8 relative) plus fp32 summation order. fp16
     * outputs round 8x finer (2^-11), so the same bound holds for them with room.
     */
    static final double BF16_OUT_RTOL = 1e-2;
    /** fp32 outputs of bf16 products: only summation order differs from the double reference. */
    static final double F32_OUT_RTOL = 1e-4;

    static Stream<Arguments> gemmShapes() {
        int[][] shapes = {{1, 64, 64, 64}, {3, 130, 72, 80}, {17, 96, 200, 200},
            {64, 256, 128, 136}, {65, 66, 40, 40}, {130, 514, 264, 264}, {512, 512, 256, 256},
            {5, 96, 1024, 1024}, {1, 128, 2056, 2056}, {70, 200, 1536, 1536}, {16, 4096, 4096, 4096},
            {17, 300, 640, 648}};
        return everyDtype(everyEpilogue(shapes));
    }

    @ParameterizedTest(name = "{0} {1} M={2} N={3} K={4} lda={5}")
    @MethodSource("gemmShapes")
    void gemm(CudaDtype dt, Epilogue epi, int m, int n, int k, int lda) {
        KernelImage img = kernels(dt);
        Random r = new Random(31L * m + 7L * n + k + epi.ordinal());
        float[] a = dt.round(random(r, m * lda, 1.0));
        float[] w = dt.round(random(r, n * k, 1.0 / Math.sqrt(k)));
        float[] bias = m % 2 == 1 ? dt.round(random(r, n, 0.5)) : null;
        int outCols = epi == Epilogue.SWIGLU_BF16 ? n / 2 : n;
        float[] init = random(r, m * outCols, 1.0);
        float[] expected = gemmReference(epi, a, lda, w, bias, init, m, n, k);
        DeviceBuffer da = dev16(dt, a);
        DeviceBuffer dw = dev16(dt, w);
        DeviceBuffer db = bias == null ? null : dev16(dt, bias);
        boolean f32 = epi == Epilogue.ACCUM_F32 || epi == Epilogue.STORE_F32;
        DeviceBuffer out = f32 ? f32(init) : zeros((long) m * outCols * 2);
        img.gemm.run(epi, stream, da, lda, dw, k, db, out, outCols, m, n, k);
        float[] got = f32 ? readF32(out, m * outCols) : read16(dt, out, m * outCols);
        double rtol = f32 ? F32_OUT_RTOL : BF16_OUT_RTOL;
        assertClose(dt.wire() + " " + epi + " M=" + m + " N=" + n + " K=" + k, expected, got, rtol, rtol);
        // Split-K through a workspace (when it splits) gives the same bits as without.
        DeviceBuffer out2 = f32 ? f32(init) : zeros((long) m * outCols * 2);
        DeviceBuffer work = zeros(64L << 20);
        img.gemm.run(epi, stream, da, lda, dw, k, db, out2, outCols, m, n, k, work);
        float[] got2 = f32 ? readF32(out2, m * outCols) : read16(dt, out2, m * outCols);
        assertClose(dt.wire() + " " + epi + " split-K M=" + m + " N=" + n + " K=" + k, got, got2, 0, 0);
    }

    /** Each {M, N, K, lda} shape with every epilogue. */
    private static Stream<Arguments> everyEpilogue(int[][] shapes) {
        return Arrays.stream(shapes).flatMap(sh -> Arrays.stream(Epilogue.values())
                .map(e -> Arguments.of(e, sh[0], sh[1], sh[2], sh[3])));
    }

    static Stream<Arguments> largeTileShapes() {
        // Not tile multiples; K = 2056 and 1032 run in several K chunks (chunk totals folded).
        int[][] shapes = {{130, 258, 264, 264}, {257, 300, 1032, 1040}, {200, 514, 2056, 2056}};
        return everyDtype(everyEpilogue(shapes));
    }

    /**
     * The prefill tiles (gemm_&lt;epi&gt;_l, and gemm_&lt;epi&gt;_wg where the sm_90a image
     * loaded) against the host reference, and bit for bit against the 64 x 64 tile.
     */
    @ParameterizedTest(name = "{0} {1} M={2} N={3} K={4} lda={5}")
    @MethodSource("largeTileShapes")
    void largeTilesMatchTheReferenceAndTheSmallTileBits(CudaDtype dt, Epilogue epi, int m,
                                                        int n, int k, int lda) {
        KernelImage img = kernels(dt);
        List<GemmKernel.Tile> tiles = new ArrayList<>(List.of(GemmKernel.Tile.BASE,
                GemmKernel.Tile.LARGE));
        if (img.gemm.hasWgmma()) {
            tiles.add(GemmKernel.Tile.WGMMA);
        }
        tilesMatchTheReferenceAndEachOther(dt, new Random(17L * m + 5L * n + k + epi.ordinal()),
                epi, m, n, k, lda, tiles, false, "the 64 x 64 tile");
    }

    static Stream<Arguments> decodeTileShapes() {
        // M across the m16 / m64 boundary; K not a multiple of 64 (zero-padded last tile) and
        // K = 2056 / 4096 in several chunks; N not a multiple of 128; more column tiles x
        // splits than an H100 has SMs (the persistent TMA tile's blocks take several units).
        int[][] shapes = {{1, 130, 200, 200}, {7, 64, 648, 656}, {16, 258, 2056, 2056},
            {17, 96, 1032, 1040}, {40, 514, 264, 264}, {64, 1024, 4096, 4096},
            {5, 8450, 1032, 1040}, {64, 10250, 1032, 1040}};
        // The last: 3 splits x 64 x 10250 fp32 = 7.5 MB of partials, which the reduce drops
        // from L2 once read (common.cuh); rows of 41000 bytes, so lines straddle rows.
        return everyDtype(everyEpilogue(shapes));
    }

    /**
     * The wgmma decode tiles (gemm_&lt;epi&gt;_wgd and, where the driver encodes tensor maps,
     * the TMA-fed gemm_&lt;epi&gt;_wgt; where the sm_90a image loaded) against the host
     * reference, and bit for bit against the mma.sync decode tiles (_m16 / _m64), with and
     * without split-K.
     */
    @ParameterizedTest(name = "{0} {1} M={2} N={3} K={4} lda={5}")
    @MethodSource("decodeTileShapes")
    void wgmmaDecodeTileMatchesTheReferenceAndTheMmaTileBits(CudaDtype dt, Epilogue epi, int m,
                                                             int n, int k, int lda) {
        KernelImage img = kernels(dt);
        Assumptions.assumeTrue(img.gemm.hasWgmmaDecode(),
                "no wgmma decode tile on this GPU (needs compute capability 9.0)");
        List<GemmKernel.Tile> tiles = new ArrayList<>(List.of(GemmKernel.Tile.BASE,
                GemmKernel.Tile.WGMMA_DECODE));
        if (img.gemm.hasTmaDecode()) {
            tiles.add(GemmKernel.Tile.WGMMA_TMA);
        }
        tilesMatchTheReferenceAndEachOther(dt, new Random(23L * m + 3L * n + k + epi.ordinal()),
                epi, m, n, k, lda, tiles, true, "the mma.sync tile");
    }

    /** On Hopper the launcher feeds plain decode GEMMs through TMA (the driver encodes maps). */
    @Test
    void hopperDecodeGemmsUseTheTmaTile() {
        Assumptions.assumeTrue(kernels.gemm.hasWgmmaDecode(),
                "no wgmma decode tile on this GPU (needs compute capability 9.0)");
        assertTrue(kernels.gemm.hasTmaDecode(), "cuTensorMapEncodeTiled not found: no TMA tile");
        Random r = new Random(91);
        int m = 3;
        int n = 640;
        int k = 512;
        DeviceBuffer a = bf16(Bf16.round(random(r, m * k, 1.0)));
        DeviceBuffer w = bf16(Bf16.round(random(r, n * k, 1.0 / Math.sqrt(k))));
        DeviceBuffer work = zeros(16L << 20);
        int before = kernels.gemm.tmaMapsCached();
        DeviceBuffer out = zeros((long) m * n * 4);
        kernels.gemm.run(Epilogue.STORE_F32, stream, a, k, w, k, null, out, n, m, n, k, work);
        assertEquals(before + 2, kernels.gemm.tmaMapsCached(), "A's and W's maps encoded once");
        kernels.gemm.run(Epilogue.STORE_F32, stream, a, k, w, k, null, out, n, m, n, k, work);
        assertEquals(before + 2, kernels.gemm.tmaMapsCached(), "maps reused, not re-encoded");
        DeviceBuffer mma = zeros((long) m * n * 4);
        kernels.gemm.runTile(GemmKernel.Tile.BASE, Epilogue.STORE_F32, stream, a, k, w, k, null,
                mma, n, m, n, k, work);
        assertArrayEquals(readF32(mma, m * n), readF32(out, m * n), "launcher's tile vs mma.sync");
    }

    /**
     * A projection wide enough to run unsplit on the wgmma decode tiles ({@link
     * GemmKernel#unsplitWide}: 200 tiles of 128 columns, 68 in the last wave of an H100's 132
     * SMs) leaves the split-K workspace untouched, is within the output tolerance of the host
     * reference, and has the bits of the same GEMM run split-K (3 chunks of 256).
     */
    @Test
    void wideProjectionsRunUnsplitWithTheBitsOfSplitK() {
        int m = 5;
        int n = 25600;
        int k = 768;
        Assumptions.assumeTrue(kernels.gemm.runsUnsplit(n),
                "this GPU runs N=" + n + " split (no wgmma decode tile, or another SM count)");
        Random r = new Random(29);
        float[] a = Bf16.round(random(r, m * k, 1.0));
        float[] w = Bf16.round(random(r, n * k, 1.0 / Math.sqrt(k)));
        float[] bias = Bf16.round(random(r, n, 0.5));
        float[] expected = gemmReference(Epilogue.SWIGLU_BF16, a, k, w, bias, null, m, n, k);
        DeviceBuffer da = bf16(a);
        DeviceBuffer dw = bf16(w);
        DeviceBuffer db = bf16(bias);
        long workBytes = 64L << 20;
        DeviceBuffer work = zeros(workBytes);
        DeviceBuffer unsplit = zeros((long) m * (n / 2) * 2);
        kernels.gemm.run(Epilogue.SWIGLU_BF16, stream, da, k, dw, k, db, unsplit, n / 2, m, n, k,
                work);
        float[] got = read16(CudaDtype.BF16, unsplit, m * (n / 2));
        assertClose("unsplit SwiGLU M=" + m + " N=" + n + " K=" + k, expected, got,
                BF16_OUT_RTOL, BF16_OUT_RTOL);
        float[] untouched = readF32(work, (int) (workBytes / 4));
        for (int i = 0; i < untouched.length; i++) {
            assertEquals(0f, untouched[i], "split-K workspace written at float " + i);
        }
        DeviceBuffer split = zeros((long) m * (n / 2) * 2);
        kernels.gemm.runTile(GemmKernel.Tile.WGMMA_TMA, Epilogue.SWIGLU_BF16, stream, da, k, dw,
                k, db, split, n / 2, m, n, k, work);
        assertArrayEquals(read16(CudaDtype.BF16, split, m * (n / 2)), got,
                "unsplit vs split-K bits");
    }

    /**
     * One random GEMM (bias on odd M) run on each tile, also with a split-K workspace if
     * {@code splitK}: every result within the output tolerance of the host reference and bit for
     * bit equal to the first tile's ({@code firstTile} names it in failures).
     */
    private void tilesMatchTheReferenceAndEachOther(CudaDtype dt, Random r, Epilogue epi, int m,
                                                    int n, int k, int lda,
                                                    List<GemmKernel.Tile> tiles,
                                                    boolean splitK, String firstTile) {
        KernelImage img = kernels(dt);
        float[] a = dt.round(random(r, m * lda, 1.0));
        float[] w = dt.round(random(r, n * k, 1.0 / Math.sqrt(k)));
        float[] bias = m % 2 == 1 ? dt.round(random(r, n, 0.5)) : null;
        int outCols = epi == Epilogue.SWIGLU_BF16 ? n / 2 : n;
        float[] init = random(r, m * outCols, 1.0);
        float[] expected = gemmReference(epi, a, lda, w, bias, init, m, n, k);
        DeviceBuffer da = dev16(dt, a);
        DeviceBuffer dw = dev16(dt, w);
        DeviceBuffer db = bias == null ? null : dev16(dt, bias);
        List<DeviceBuffer> workspaces = splitK ? java.util.Arrays.asList(null, zeros(64L << 20))
                : java.util.Collections.singletonList(null);
        boolean f32 = epi == Epilogue.ACCUM_F32 || epi == Epilogue.STORE_F32;
        double rtol = f32 ? F32_OUT_RTOL : BF16_OUT_RTOL;
        float[] base = null;
        for (GemmKernel.Tile t : tiles) {
            for (DeviceBuffer ws : workspaces) {
                DeviceBuffer out = f32 ? f32(init) : zeros((long) m * outCols * 2);
                img.gemm.runTile(t, epi, stream, da, lda, dw, k, db, out, outCols, m, n, k,
                        ws);
                float[] got = f32 ? readF32(out, m * outCols) : read16(dt, out, m * outCols);
                String what = dt.wire() + " " + epi + " " + t + (ws == null ? "" : " split-K") + " M=" + m + " N="
                        + n + " K=" + k;
                assertClose(what, expected, got, rtol, rtol);
                if (base == null) {
                    base = got;
                } else {
                    assertArrayEquals(base, got, what + ": bits differ from " + firstTile);
                }
            }
        }
    }

    /**
     * Programmatic dependent launch: on Hopper the wgmma decode tile is launched with it (the
     * driver entry point must be found), and a chain in which each GEMM reads what the reduce
     * kernel just before it wrote (the reduce triggers its dependents on entry, the GEMM
     * prefetches weights and then waits) gives the bits of the same chain on the mma.sync tiles,
     * directly and replayed from a captured graph.
     */
    @Test
    void dependentLaunchChainMatchesTheMmaTiles() {
        Assumptions.assumeTrue(kernels.gemm.hasWgmmaDecode(),
                "no wgmma decode tile on this GPU (needs compute capability 9.0)");
        assertTrue(PdlLaunch.available(), "cuLaunchKernelEx not found: no programmatic launch");
        Random r = new Random(77);
        int m = 8;
        int n = 1024;
        DeviceBuffer a = bf16(Bf16.round(random(r, m * n, 1.0)));
        DeviceBuffer[] w = new DeviceBuffer[3];
        for (int i = 0; i < w.length; i++) {
            w[i] = bf16(Bf16.round(random(r, n * n, 1.0 / Math.sqrt(n))));
        }
        DeviceBuffer work = zeros(64L << 20);
        boolean tma = kernels.gemm.hasTmaDecode();
        float[][] results = new float[tma ? 5 : 3][];
        for (int variant = 0; variant < results.length; variant++) {
            GemmKernel.Tile tile = variant == 0 ? GemmKernel.Tile.BASE
                    : variant <= 2 ? GemmKernel.Tile.WGMMA_DECODE : GemmKernel.Tile.WGMMA_TMA;
            DeviceBuffer[] act = {a, zeros((long) m * n * 2), zeros((long) m * n * 2),
                zeros((long) m * n * 2)};
            Runnable chain = () -> {
                for (int i = 0; i < w.length; i++) {
                    kernels.gemm.runTile(tile, Epilogue.STORE_BF16, stream, act[i], n, w[i], n,
                            null, act[i + 1], n, m, n, n, work);
                }
            };
            if (variant == 2 || variant == 4) {
                try (CudaGraph g = CudaGraph.capture(stream, chain, "pdl chain")) {
                    g.launch(stream);
                    g.launch(stream);
                }
            } else {
                chain.run();
            }
            results[variant] = readBf16(act[3], m * n);
        }
        assertArrayEquals(results[0], results[1], "wgmma chain (direct) vs mma.sync chain");
        assertArrayEquals(results[0], results[2], "wgmma chain (graph) vs mma.sync chain");
        if (tma) {
            assertArrayEquals(results[0], results[3], "TMA chain (direct) vs mma.sync chain");
            assertArrayEquals(results[0], results[4], "TMA chain (graph) vs mma.sync chain");
        }
    }

    /**
     * Batch invariance across tiles: rows of a prefill-sized batch (large tile, chosen by the
     * launcher) are the same bits as the same rows run alone (decode tile, split-K) and through
     * the 64 x 64 tile.
     */
    @ParameterizedTest(name = "{0}")
    @EnumSource(CudaDtype.class)
    void prefillRowsMatchDecodeAndSmallTileBits(CudaDtype dt) {
        KernelImage img = kernels(dt);
        Random r = new Random(4242);
        int n = 1536;
        int k = 2048;
        int m = 600;  // 5 x 12 tiles of 128 x 128: the launcher picks the large tile
        float[] a = dt.round(random(r, m * k, 1.0));
        float[] w = dt.round(random(r, n * k, 1.0 / Math.sqrt(k)));
        DeviceBuffer da = dev16(dt, a);
        DeviceBuffer dw = dev16(dt, w);
        DeviceBuffer work = zeros(64L << 20);
        assertTrue(img.gemm.autoTile(m, n, false) != GemmKernel.Tile.BASE,
                "M=600 should take the large tile");
        DeviceBuffer big = zeros((long) m * n * 4);
        img.gemm.run(Epilogue.STORE_F32, stream, da, k, dw, k, null, big, n, m, n, k, work);
        float[] prefill = readF32(big, m * n);
        DeviceBuffer small = zeros((long) m * n * 4);
        img.gemm.runTile(GemmKernel.Tile.BASE, Epilogue.STORE_F32, stream, da, k, dw, k, null,
                small, n, m, n, k, null);
        assertArrayEquals(readF32(small, m * n), prefill, dt.wire() + " large vs 64 x 64 tile");
        DeviceBuffer one = zeros((long) n * 4);
        img.gemm.run(Epilogue.STORE_F32, stream, da, k, dw, k, null, one, n, 1, n, k, work);
        assertArrayEquals(readF32(one, n), java.util.Arrays.copyOf(prefill, n),
                "row 0 alone (decode tile, split-K) vs in the prefill batch");
    }

    /** Host reference (double) of the GEMM and its epilogue; init is out's prior content. */
    private static float[] gemmReference(Epilogue epi, float[] a, int lda, float[] w,
                                         float[] bias, float[] init, int m, int n, int k) {
        int outCols = epi == Epilogue.SWIGLU_BF16 ? n / 2 : n;
        double[] acc = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = bias == null ? 0 : bias[j];
                for (int q = 0; q < k; q++) {
                    s += (double) a[i * lda + q] * w[j * k + q];
                }
                acc[i * n + j] = s;
            }
        }
        float[] expected = new float[m * outCols];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < outCols; j++) {
                double v = acc[i * n + j];
                switch (epi) {
                    case RELU_BF16:
                        v = Math.max(v, 0);
                        break;
                    case ACCUM_F32:
                        v += init[i * outCols + j];
                        break;
                    case SWIGLU_BF16: {
                        double g = acc[i * n + 2 * j];
                        double u = acc[i * n + 2 * j + 1];
                        v = g / (1 + Math.exp(-g)) * u;
                        break;
                    }
                    default:
                        break;
                }
                expected[i * outCols + j] = (float) v;
            }
        }
        return expected;
    }

    /**
     * Batch invariance: a row's GEMM result is the same bits whether it runs alone (decode tile,
     * maybe split-K), in a small batch, or inside a large prefill batch (64-row tile, no split).
     */
    @Test
    void gemmRowResultsDoNotDependOnTheBatch() {
        Random r = new Random(99);
        int n = 1536;
        int k = 2048;
        int big = 150;
        float[] a = Bf16.round(random(r, big * k, 1.0));
        float[] w = Bf16.round(random(r, n * k, 1.0 / Math.sqrt(k)));
        DeviceBuffer da = bf16(a);
        DeviceBuffer dw = bf16(w);
        DeviceBuffer work = zeros(64L << 20);
        float[] reference = null;
        for (int m : new int[] {1, 3, 16, 17, 64, big}) {
            DeviceBuffer out = zeros((long) m * n * 4);
            kernels.gemm.run(Epilogue.STORE_F32, stream, da, k, dw, k, null, out, n, m, n, k,
                    work);
            float[] row0 = readF32(out, n);
            if (reference == null) {
                reference = row0;
            } else {
                assertArrayEquals(reference, row0, "row 0 of a batch of " + m);
            }
        }
    }

    /**
     * Polar's MLP GEMMs against a host reference: fc1 over gathered weight rows (with gathered
     * bias, ReLU) and fc2 with neuron-major [K, N] weights over gathered K rows, accumulated
     * into the residual; with and without split-K.
     */
    @ParameterizedTest(name = "M={0} F={1} H={2} k={3}")
    @MethodSource("gatherShapes")
    void gatherGemms(int m, int ffn, int hidden, int kept) {
        Random r = new Random(m * 31 + ffn + kept);
        float[] x = Bf16.round(random(r, m * hidden, 1.0));
        float[] w1 = Bf16.round(random(r, ffn * hidden, 1.0 / Math.sqrt(hidden)));
        float[] b1 = Bf16.round(random(r, ffn, 0.3));
        float[] w2t = Bf16.round(random(r, ffn * hidden, 1.0 / Math.sqrt(kept)));
        float[] b2 = Bf16.round(random(r, hidden, 0.3));
        List<Integer> all = new ArrayList<>();
        for (int j = 0; j < ffn; j++) {
            all.add(j);
        }
        Collections.shuffle(all, r);
        int[] idx = all.subList(0, kept).stream().mapToInt(Integer::intValue).sorted().toArray();
        // host: h = relu(x W1[idx]^T + b1[idx]) rounded to bf16, out = init + h W2t[idx] + b2
        float[] h = new float[m * kept];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < kept; j++) {
                double a = b1[idx[j]];
                for (int q = 0; q < hidden; q++) {
                    a += (double) x[i * hidden + q] * w1[idx[j] * hidden + q];
                }
                h[i * kept + j] = (float) Math.max(0, a);
            }
        }
        float[] init = random(r, m * hidden, 1.0);
        DeviceBuffer dx = bf16(x);
        DeviceBuffer dw1 = bf16(w1);
        DeviceBuffer db1 = bf16(b1);
        DeviceBuffer dw2 = bf16(w2t);
        DeviceBuffer db2 = bf16(b2);
        DeviceBuffer didx = i32(idx);
        DeviceBuffer work = zeros(64L << 20);
        DeviceBuffer dh = zeros((long) m * kept * 2);
        kernels.gemm.runGatherRows(Epilogue.RELU_BF16, stream, dx, hidden, dw1, hidden, ffn, db1,
                dh, kept, m, kept, hidden, work, didx);
        float[] gotH = readBf16(dh, m * kept);
        assertClose("fc1 gather", h, gotH, 1e-2, BF16_OUT_RTOL);
        // Every tile that takes a row gather gives the launcher's bits, with and without
        // split-K (on Hopper the wgmma decode tile).
        List<GemmKernel.Tile> fc1Tiles = new ArrayList<>(List.of(GemmKernel.Tile.BASE));
        if (kernels.gemm.hasWgmmaDecode() && m <= 64) {
            fc1Tiles.add(GemmKernel.Tile.WGMMA_DECODE);
        }
        for (GemmKernel.Tile t : fc1Tiles) {
            for (DeviceBuffer ws : new DeviceBuffer[] {null, work}) {
                DeviceBuffer h2 = zeros((long) m * kept * 2);
                kernels.gemm.runGatherRowsTile(t, Epilogue.RELU_BF16, stream, dx, hidden, dw1,
                        hidden, ffn, db1, h2, kept, m, kept, hidden, ws, didx);
                assertArrayEquals(gotH, readBf16(h2, m * kept), "fc1 gather on tile " + t
                        + (ws == null ? "" : " split-K") + " vs the launcher's choice");
            }
        }
        float[] expected = new float[m * hidden];
        for (int i = 0; i < m; i++) {
            for (int o = 0; o < hidden; o++) {
                double a = init[i * hidden + o] + b2[o];
                for (int j = 0; j < kept; j++) {
                    a += (double) gotH[i * kept + j] * w2t[idx[j] * hidden + o];
                }
                expected[i * hidden + o] = (float) a;
            }
        }
        for (DeviceBuffer ws : new DeviceBuffer[] {null, work}) {
            DeviceBuffer out = f32(init);
            kernels.gemm.runKn(Epilogue.ACCUM_F32, stream, dh, kept, dw2, hidden, ffn, db2, out,
                    hidden, m, hidden, kept, ws, didx);
            float[] got = readF32(out, m * hidden);
            assertClose("fc2 [K, N] gather, workspace " + (ws != null), expected, got, 1e-3,
                    1e-3);
            // Batch invariance of the [K, N] tiles: row 0 alone gives the same bits.
            DeviceBuffer one = f32(Arrays.copyOf(init, hidden));
            kernels.gemm.runKn(Epilogue.ACCUM_F32, stream, dh, kept, dw2, hidden, ffn, db2, one,
                    hidden, 1, hidden, kept, ws, didx);
            assertArrayEquals(Arrays.copyOf(got, hidden), readF32(one, hidden),
                    "fc2 [K, N] gather: row 0 alone vs in a batch of " + m);
            // Every tile that takes this shape gives the same bits (mma.sync, and on Hopper the
            // wgmma decode tile with its MN-major B), gathered and over the first kept rows.
            List<GemmKernel.Tile> tiles = new ArrayList<>(List.of(GemmKernel.Tile.BASE));
            if (kernels.gemm.hasWgmmaDecode() && m <= 64) {
                tiles.add(GemmKernel.Tile.WGMMA_DECODE);
            }
            float[] plain = null;
            for (GemmKernel.Tile t : tiles) {
                DeviceBuffer o2 = f32(init);
                kernels.gemm.runKnTile(t, Epilogue.ACCUM_F32, stream, dh, kept, dw2, hidden, ffn,
                        db2, o2, hidden, m, hidden, kept, ws, didx);
                assertArrayEquals(got, readF32(o2, m * hidden), "fc2 [K, N] gather on tile " + t
                        + " vs the launcher's choice");
                DeviceBuffer o3 = f32(init);
                kernels.gemm.runKnTile(t, Epilogue.ACCUM_F32, stream, dh, kept, dw2, hidden, ffn,
                        db2, o3, hidden, m, hidden, kept, ws, null);
                float[] g3 = readF32(o3, m * hidden);
                if (plain == null) {
                    plain = g3;
                    float[] want = new float[m * hidden];
                    for (int i = 0; i < m; i++) {
                        for (int o = 0; o < hidden; o++) {
                            double a = init[i * hidden + o] + b2[o];
                            for (int j = 0; j < kept; j++) {
                                a += (double) gotH[i * kept + j] * w2t[j * hidden + o];
                            }
                            want[i * hidden + o] = (float) a;
                        }
                    }
                    assertClose("fc2 [K, N] over rows 0..k-1", want, g3, 1e-3, 1e-3);
                } else {
                    assertArrayEquals(plain, g3, "fc2 [K, N] (no gather) on tile " + t);
                }
            }
        }
    }

    static Stream<Arguments> gatherShapes() {
        return Stream.of(Arguments.of(1, 768, 192, 256), Arguments.of(5, 1000, 136, 520),
                Arguments.of(20, 4096, 256, 2048), Arguments.of(64, 2048, 520, 1000),
                Arguments.of(70, 768, 192, 96), Arguments.of(64, 16384, 1024, 10240),
                Arguments.of(33, 6144, 4104, 4600));
    }

    /**
     * The MLP router's union scores straight from split-K partials (router_reduce_union_f32)
     * are the bits of the two-kernel path (GEMM into fp32 logits, then union scores).
     */
    @ParameterizedTest(name = "n={0} F={1} rank={2}")
    @MethodSource("reduceUnionShapes")
    void reduceUnionMatchesLogitsThenUnion(int n, int f, int rank) {
        Random r = new Random(n * 13 + f + rank);
        DeviceBuffer a = bf16(Bf16.round(random(r, n * rank, 1.0)));
        DeviceBuffer w = bf16(Bf16.round(random(r, f * rank, 1.0 / Math.sqrt(rank))));
        DeviceBuffer work = zeros(64L << 20);
        DeviceBuffer logits = zeros((long) n * f * 4);
        DeviceBuffer s1 = zeros(f * 4L);
        DeviceBuffer s2 = zeros(f * 4L);
        kernels.gemm.run(Epilogue.STORE_F32, stream, a, rank, w, rank, null, logits, f, n, f,
                rank, work);
        kernels.router.unionScores(stream, logits, n, f, s1);
        int splits = kernels.gemm.partials(false, stream, a, rank, w, rank, 0, n, f, rank, work,
                null);
        kernels.router.reduceUnion(stream, work, splits, n, f, s2);
        assertArrayEquals(readF32(s1, f), readF32(s2, f), "union scores from partials, splits="
                + splits);
    }

    static Stream<Arguments> reduceUnionShapes() {
        // The last: 12 MB of partials, which the reduce drops from L2 once read (common.cuh).
        return Stream.of(Arguments.of(1, 768, 64), Arguments.of(7, 1000, 136),
                Arguments.of(33, 4096, 1024), Arguments.of(64, 2050, 256),
                Arguments.of(64, 25000, 1024));
    }

    /** Bytes of split-K partials from which a reduce drops them from L2 (POLAR_DISCARD_MIN). */
    static final long DISCARD_MIN = 6L << 20;

    /**
     * The fused decode reduces on partials large enough to be dropped from L2 once read
     * (kernels/common.cuh, l2_discard_span): 64 rows of opt-6.7b's q/k/v width over 4 K splits
     * (12 MB). decode_qkv_rope_kv gives the bits of the unsplit GEMM (STORE_BF16 with bias),
     * and decode_residual_norm_f32 (LayerNorm and RMSNorm) those of the unsplit GEMM
     * accumulating into x followed by the norm kernel; each twice through the same workspace
     * (a line dropped while another block still needed it would read back stale).
     */
    @Test
    void decodeReducesOfPartialsDroppedFromL2() {
        Random r = new Random(61);
        int m = 64;
        int k = 1032;
        int heads = 32;
        int headDim = 128;
        int n = 3 * heads * headDim;  // 12288, also the norm's width
        int blockSize = 16;
        DeviceBuffer a = bf16(Bf16.round(random(r, m * k, 1.0)));
        DeviceBuffer w = bf16(Bf16.round(random(r, n * k, 1.0 / Math.sqrt(k))));
        DeviceBuffer bias = bf16(Bf16.round(random(r, n, 0.3)));
        DeviceBuffer normW = bf16(Bf16.round(random(r, n, 1.0)));
        DeviceBuffer normB = bf16(Bf16.round(random(r, n, 0.2)));
        float[] x0 = random(r, m * n, 1.0);
        DeviceBuffer work = zeros(64L << 20);
        DeviceBuffer want = zeros((long) m * n * 2);
        kernels.gemm.run(Epilogue.STORE_BF16, stream, a, k, w, k, bias, want, n, m, n, k);
        float[] wantQkv = readBf16(want, m * n);
        int[] pos = new int[m];
        for (int i = 0; i < m; i++) {
            pos[i] = i % blockSize;
        }
        int[] rows = java.util.stream.IntStream.range(0, m).toArray();
        long cacheBytes = (long) m * heads * blockSize * headDim * 2;
        for (int round = 0; round < 2; round++) {
            int sp = kernels.gemm.partials(false, stream, a, k, w, k, 0, m, n, k, work, null);
            assertTrue((long) sp * m * n * 4 >= DISCARD_MIN, "partials to drop: " + sp
                    + " splits");
            DeviceBuffer qkv = zeros((long) m * n * 2);
            kernels.fused.qkvRopeKv(stream, work, sp, bias, qkv, i32(pos), null, m, heads, heads,
                    headDim, zeros(cacheBytes), zeros(cacheBytes), i32(rows), i32(rows), 1,
                    blockSize);
            assertArrayEquals(wantQkv, readBf16(qkv, m * n), "q/k/v from " + sp
                    + " splits, round " + round);
        }
        for (DecodeFusedKernel.Norm norm : List.of(DecodeFusedKernel.Norm.LAYER,
                DecodeFusedKernel.Norm.RMS)) {
            DeviceBuffer b = norm == DecodeFusedKernel.Norm.LAYER ? normB : null;
            DeviceBuffer xWant = f32(x0);
            DeviceBuffer yWant = zeros((long) m * n * 2);
            kernels.gemm.run(Epilogue.ACCUM_F32, stream, a, k, w, k, bias, xWant, n, m, n, k);
            if (b != null) {
                kernels.norm.layer(stream, xWant, yWant, normW, b, 1e-5f, m, n, false);
            } else {
                kernels.norm.rms(stream, xWant, yWant, normW, 1e-5f, m, n, false);
            }
            for (int round = 0; round < 2; round++) {
                int sp = kernels.gemm.partials(false, stream, a, k, w, k, 0, m, n, k, work, null);
                DeviceBuffer x = f32(x0);
                DeviceBuffer y = zeros((long) m * n * 2);
                kernels.fused.residualNorm(stream, work, sp, bias, x, y, norm, normW, b, 1e-5f,
                        m, n, false);
                String what = norm + " from " + sp + " splits, round " + round;
                assertArrayEquals(readF32(xWant, m * n), readF32(x, m * n), "x, " + what);
                assertArrayEquals(readBf16(yWant, m * n), readBf16(y, m * n), "y, " + what);
            }
        }
    }

    /**
     * MLP union top-k: exact k, index order, ties to the lowest ids, against a host sort. Logits
     * are small integers (many zeros after ReLU and many ties: most scores share a few values),
     * Gaussian (distinct values; the k-th largest among positives or among the zeros), or all
     * negative (every score zero).
     */
    @ParameterizedTest(name = "n={0} F={1} k={2} {3}")
    @MethodSource("unionShapes")
    void unionTopk(int n, int ffn, int k, String logitKind) {
        Random r = new Random(n * 7 + ffn + k);
        float[] logits = new float[n * ffn];
        for (int i = 0; i < logits.length; i++) {
            switch (logitKind) {
                case "ties":
                    logits[i] = r.nextInt(9) - 5;
                    break;
                case "gaussian":
                    logits[i] = (float) r.nextGaussian();
                    break;
                default:
                    logits[i] = -1f - r.nextFloat();
            }
        }
        DeviceBuffer score = zeros(ffn * 4L);
        DeviceBuffer idx = zeros(k * 4L);
        kernels.router.unionScores(stream, f32(logits), n, ffn, score);
        kernels.router.selectTopk(stream, score, ffn, k, idx);
        float[] s = new float[ffn];
        for (int j = 0; j < ffn; j++) {
            for (int i = 0; i < n; i++) {
                s[j] += Math.max(0, logits[i * ffn + j]);
            }
        }
        assertClose("union scores", s, readF32(score, ffn), 0, 0);
        Integer[] order = new Integer[ffn];
        for (int j = 0; j < ffn; j++) {
            order[j] = j;
        }
        java.util.Arrays.sort(order, (a, b) -> Float.compare(s[b], s[a])); // stable
        int[] want = new int[k];
        for (int j = 0; j < k; j++) {
            want[j] = order[j];
        }
        java.util.Arrays.sort(want);
        assertArrayEquals(want, readI32(idx, k));
    }

    static Stream<Arguments> unionShapes() {
        return Stream.of(Arguments.of(1, 768, 8, "ties"), Arguments.of(4, 768, 256, "ties"),
                Arguments.of(64, 16384, 10240, "ties"), Arguments.of(3, 1000, 1000, "ties"),
                Arguments.of(2, 30000, 777, "ties"), Arguments.of(64, 16384, 10240, "gaussian"),
                Arguments.of(1, 16384, 1671, "gaussian"), Arguments.of(1, 16384, 12000, "gaussian"),
                Arguments.of(1, 768, 700, "gaussian"), Arguments.of(16, 30000, 20000, "gaussian"),
                Arguments.of(3, 5000, 100, "negative"));
    }

    @Test
    void gemmRejectsMisalignedShapes() {
        DeviceBuffer a = zeros(4096);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> kernels.gemm.run(Epilogue.STORE_BF16, stream, a, 12, a, 12, null, a, 8, 4,
                        8, 12));
        assertEquals(true, e.getMessage().contains("gemm_store_bf16"), e.getMessage());
    }

    @ParameterizedTest(name = "{0} n={1} h={2} rms={3} affine={4}")
    @MethodSource("normShapes")
    void norm(CudaDtype dt, int n, int h, boolean rms, boolean affine) {
        KernelImage img = kernels(dt);
        Random r = new Random(n * 131 + h);
        float[] x = random(r, n * h, 3.0);
        for (int i = 0; i < x.length; i++) {
            x[i] += 1.5f; // a non-zero mean, so LayerNorm's centring matters
        }
        float[] w = affine || rms ? dt.round(random(r, h, 1.0)) : null;
        float[] b = affine && !rms ? dt.round(random(r, h, 1.0)) : null;
        float eps = 1e-5f;
        float[] expected = new float[n * h];
        for (int i = 0; i < n; i++) {
            double mean = 0;
            if (!rms) {
                for (int d = 0; d < h; d++) {
                    mean += x[i * h + d];
                }
                mean /= h;
            }
            double var = 0;
            for (int d = 0; d < h; d++) {
                double t = x[i * h + d] - mean;
                var += t * t;
            }
            double inv = 1 / Math.sqrt(var / h + eps);
            for (int d = 0; d < h; d++) {
                double v = (x[i * h + d] - mean) * inv;
                if (w != null) {
                    v *= w[d];
                }
                if (b != null) {
                    v += b[d];
                }
                expected[i * h + d] = (float) v;
            }
        }
        DeviceBuffer dx = f32(x);
        DeviceBuffer dy = zeros((long) n * h * 2);
        DeviceBuffer dw = w == null ? null : dev16(dt, w);
        DeviceBuffer db = b == null ? null : dev16(dt, b);
        if (rms) {
            img.norm.rms(stream, dx, dy, dw, eps, n, h, true);
        } else {
            img.norm.layer(stream, dx, dy, dw, db, eps, n, h, true);
        }
        assertClose(dt.wire() + " norm y", expected, read16(dt, dy, n * h), 1e-2, BF16_OUT_RTOL);
        assertClose("norm write-back", expected, readF32(dx, n * h), 1e-4, 1e-4);
    }

    static Stream<Arguments> normShapes() {
        List<Arguments> out = new ArrayList<>();
        for (int[] s : new int[][] {{1, 64}, {5, 200}, {33, 769}, {3, 4096}}) {
            out.add(Arguments.of(s[0], s[1], false, true));
            out.add(Arguments.of(s[0], s[1], false, false));
            out.add(Arguments.of(s[0], s[1], true, true));
        }
        return everyDtype(out.stream());
    }

    @Test
    void castAndGather() {
        Random r = new Random(5);
        int n = 9;
        int h = 75;
        float[] x = random(r, n * h, 2.0);
        DeviceBuffer dx = f32(x);
        DeviceBuffer dy = zeros((long) n * h * 2);
        kernels.norm.cast(stream, dx, dy, n, h);
        assertClose("cast", Bf16.round(x), readBf16(dy, n * h), 0, 0);
        int[] rows = {8, 0, 3};
        DeviceBuffer out = zeros(3L * h * 4);
        kernels.norm.gather(stream, out, dx, i32(rows), 3, h);
        float[] got = readF32(out, 3 * h);
        for (int j = 0; j < rows.length; j++) {
            for (int d = 0; d < h; d++) {
                assertEquals(x[rows[j] * h + d], got[j * h + d], 0f);
            }
        }
    }

    /** Dims that are multiples of 8 (16-byte loads) or not, over one block per row or several. */
    @ParameterizedTest
    @ValueSource(ints = {72, 70, 4096, 4100})
    void embeddings(int dim) {
        Random r = new Random(9 + dim);
        int vocab = 37;
        int n = 11;
        float[] table = Bf16.round(random(r, vocab * dim, 1.0));
        float[] posTable = Bf16.round(random(r, 40 * dim, 1.0));
        int[] ids = new int[n];
        int[] pos = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = r.nextInt(vocab);
            pos[i] = r.nextInt(38);
        }
        DeviceBuffer dx = zeros((long) n * dim * 4);
        DeviceBuffer dt = bf16(table);
        kernels.embedding.tokensF32(stream, dx, i32(ids), dt, n, dim);
        DeviceBuffer dpos = i32(pos);
        kernels.embedding.positions(stream, dx, dpos, bf16(posTable), 2, n, dim);
        float[] expected = new float[n * dim];
        for (int i = 0; i < n; i++) {
            for (int d = 0; d < dim; d++) {
                expected[i * dim + d] = table[ids[i] * dim + d] + posTable[(pos[i] + 2) * dim + d];
            }
        }
        assertClose("embedding+positions", expected, readF32(dx, n * dim), 1e-6, 1e-6);
        DeviceBuffer de = zeros((long) n * dim * 2);
        kernels.embedding.tokensBf16(stream, de, i32(ids), dt, n, dim);
        float[] e = readBf16(de, n * dim);
        for (int i = 0; i < n; i++) {
            for (int d = 0; d < dim; d++) {
                assertEquals(table[ids[i] * dim + d], e[i * dim + d], 0f);
            }
        }
    }

    @ParameterizedTest(name = "heads={0} kv={1} D={2}")
    @MethodSource("ropeShapes")
    void rope(int heads, int kvHeads, int headDim) {
        Random r = new Random(heads * 7 + headDim);
        int n = 7;
        int stride = (heads + 2 * kvHeads) * headDim;
        float[] qkv = Bf16.round(random(r, n * stride, 1.0));
        int[] pos = new int[n];
        for (int i = 0; i < n; i++) {
            pos[i] = r.nextInt(3000);
        }
        RopeScaling sc = new RopeScaling(RopeScaling.Type.LLAMA3, 8, 1, 4, 64);
        float[] inv = sc.inverseFrequencies(500000, headDim);
        float[] expected = qkv.clone();
        int half = headDim / 2;
        for (int t = 0; t < n; t++) {
            for (int h = 0; h < heads + kvHeads; h++) {
                int off = t * stride + h * headDim;
                for (int i = 0; i < half; i++) {
                    double ang = (float) (pos[t] * inv[i]);
                    double x1 = qkv[off + i];
                    double x2 = qkv[off + i + half];
                    expected[off + i] = (float) (x1 * Math.cos(ang) - x2 * Math.sin(ang));
                    expected[off + i + half] = (float) (x2 * Math.cos(ang) + x1 * Math.sin(ang));
                }
            }
        }
        DeviceBuffer d = bf16(qkv);
        kernels.rope.run(stream, d, i32(pos), f32(inv), n, stride, heads, kvHeads,
                heads * headDim, headDim);
        assertClose("rope", expected, readBf16(d, n * stride), 2e-2, BF16_OUT_RTOL);
    }

    static Stream<Arguments> ropeShapes() {
        return Stream.of(Arguments.of(8, 2, 16), Arguments.of(4, 4, 24), Arguments.of(32, 8, 128));
    }

    /**
     * The combine's one-round form (every load of a head at once, where the shape allows) gives
     * {@code want}, the bits of its general form (dependent rounds of loads), over the same
     * partials; so does, last (the partials are undefined after it), the general form that
     * drops the o partials from L2 once merged.
     */
    private void assertCombineForms(CudaDtype dt, float[] want, DeviceBuffer partO,
                                    DeviceBuffer partMl, DeviceBuffer groupIdx, int groups,
                                    int heads, int kvHeads, int headDim, int splits,
                                    boolean pairs, int n) {
        KernelImage img = kernels(dt);
        DeviceBuffer oneRound = dev16(dt, random(new Random(splits), n * heads * headDim, 1.0));
        img.attention.combine(stream, oneRound, partO, partMl, groupIdx, groups, heads, kvHeads,
                headDim, splits, pairs, splits + 1, false, true, false, n);
        assertArrayEquals(want, read16(dt, oneRound, n * heads * headDim), "combine, one round"
                + " vs general form: " + splits + " splits" + (pairs ? " (pairs)" : "")
                + (groupIdx != null ? ", group table" : ""));
        DeviceBuffer dropping = dev16(dt, random(new Random(splits + 1), n * heads * headDim,
                1.0));
        img.attention.combine(stream, dropping, partO, partMl, groupIdx, groups, heads, kvHeads,
                headDim, splits, pairs, splits + 1, false, false, true, n);
        assertArrayEquals(want, read16(dt, dropping, n * heads * headDim), "combine dropping"
                + " its partials from L2 vs keeping them: " + splits + " splits"
                + (pairs ? " (pairs)" : "") + (groupIdx != null ? ", group table" : ""));
    }

    /**
     * Pairs of splits per block that end early (the last pair's splits as blocks of their own,
     * at every even split where pairs may end) give {@code want}, the bits of one split per
     * block, with the combine in both forms. Shapes that may run pairs only.
     */
    private void assertTailSingles(CudaDtype dt, float[] want, DeviceBuffer qkv, int stride,
                                   float scale, DeviceBuffer kc, DeviceBuffer vc,
                                   DeviceBuffer table, int maxBlocks, int blockSize,
                                   DeviceBuffer rowOf, DeviceBuffer posOf, DeviceBuffer groupIdx,
                                   int groups, int heads, int kvHeads, int headDim, int splitLen,
                                   int splits, DeviceBuffer partO, DeviceBuffer partMl, int n) {
        if (!AttentionKernel.pairsAllowed(heads, kvHeads, headDim, splitLen) || splits < 2) {
            return;
        }
        KernelImage img = kernels(dt);
        for (int from = 0; from < splits; from += 2) {
            assertEquals(from / 2 + splits - from, AttentionKernel.parts(splits, true, from));
            img.attention.decode(stream, qkv, stride, scale, kc, vc, table, maxBlocks, blockSize,
                    rowOf, posOf, groupIdx, groups, heads, kvHeads, headDim, splitLen, splits,
                    true, from, false, false, partO, partMl, n);
            for (boolean regs : new boolean[] {false, true}) {
                DeviceBuffer att = dev16(dt, random(new Random(from), n * heads * headDim, 1.0));
                img.attention.combine(stream, att, partO, partMl, groupIdx, groups, heads,
                        kvHeads, headDim, splits, true, from, false, regs, false, n);
                assertArrayEquals(want, read16(dt, att, n * heads * headDim), "pairs ending at"
                        + " split " + from + " of " + splits + (regs ? ", one-round combine" : "")
                        + (groupIdx != null ? ", group table" : ""));
            }
        }
    }

    static Stream<Arguments> attentionShapes() {
        List<Arguments> out = new ArrayList<>();
        // {32, 8, 128}, {64, 8, 128} and {16, 2, 256}: the exact shapes whose scores use
        // tensor cores (4 or 8 query heads per group, head_dim 128 or 256); head_dim 128 with
        // 2, 4 or 8 query heads per group ({16, 8, 128} too) runs the pipelined kernel.
        int[][] heads = {{8, 2, 16}, {4, 4, 24}, {8, 8, 32}, {32, 8, 128}, {12, 4, 64},
                {16, 2, 256}, {4, 2, 96}, {2, 2, 256}, {64, 8, 128}, {8, 8, 128}, {16, 8, 128}};
        int[][] lens = {{1, 54, 97}, {17, 300, 5}};
        for (int[] h : heads) {
            for (int[] l : lens) {
                for (int split : new int[] {32, 64, 512}) {
                    out.add(Arguments.of(h[0], h[1], h[2], l, split));
                }
            }
        }
        // A long row: 19 partials (the one-round combine's second chunk), with one and four
        // query heads per group.
        for (int[] h : new int[][] {{8, 8, 128}, {32, 8, 128}}) {
            out.add(Arguments.of(h[0], h[1], h[2], new int[] {600, 7, 40}, 32));
        }
        // The pipelined kernel's pairs over many splits (10: five pairs, then tail singles).
        out.add(Arguments.of(32, 8, 128, new int[] {600, 7, 40}, 64));
        out.add(Arguments.of(16, 2, 128, new int[] {600, 7, 40}, 128));
        return everyDtype(out.stream());
    }

    /**
     * Appends K/V of every token of three rows of different lengths into a paged cache with
     * shuffled blocks, then runs every token as a query at its own position (causal prefill,
     * and decode for each row's last token) with and without a Polar group table.
     */
    @ParameterizedTest(name = "{0} heads={1} kv={2} D={3} lens={4} split={5}")
    @MethodSource("attentionShapes")
    void pagedAttention(CudaDtype dt, int heads, int kvHeads, int headDim, int[] lens,
                        int splitLen) {
        KernelImage img = kernels(dt);
        Random r = new Random(heads * 1000 + headDim * 10 + lens[1] + splitLen);
        int blockSize = 16;
        int rows = lens.length;
        int maxBlocks = 0;
        for (int l : lens) {
            maxBlocks = Math.max(maxBlocks, (l + blockSize - 1) / blockSize);
        }
        int numBlocks = rows * maxBlocks + 5;
        List<Integer> pool = new ArrayList<>();
        for (int b = 0; b < numBlocks; b++) {
            pool.add(b);
        }
        Collections.shuffle(pool, r);
        int[] table = new int[rows * maxBlocks];
        for (int i = 0; i < table.length; i++) {
            table[i] = pool.get(i);
        }
        int n = 0;
        for (int l : lens) {
            n += l;
        }
        int stride = (heads + 2 * kvHeads) * headDim;
        float[] qkv = dt.round(random(r, n * stride, 1.0));
        int[] rowOf = new int[n];
        int[] posOf = new int[n];
        int i = 0;
        for (int row = 0; row < rows; row++) {
            for (int p = 0; p < lens[row]; p++) {
                rowOf[i] = row;
                posOf[i] = p;
                i++;
            }
        }
        long cacheBytes = (long) numBlocks * kvHeads * blockSize * headDim * 2;
        DeviceBuffer kc = zeros(cacheBytes);
        DeviceBuffer vc = zeros(cacheBytes);
        DeviceBuffer dqkv = dev16(dt, qkv);
        DeviceBuffer dRow = i32(rowOf);
        DeviceBuffer dPos = i32(posOf);
        DeviceBuffer dTable = i32(table);
        int kOff = heads * headDim;
        int vOff = kOff + kvHeads * headDim;
        img.kvAppend.run(stream, kc, vc, dqkv, dRow, dPos, dTable, maxBlocks, blockSize, n,
                stride, kOff, vOff, kvHeads, headDim);

        float scale = (float) (1 / Math.sqrt(headDim));
        int g = heads / kvHeads;
        float[] expected = new float[n * heads * headDim];
        int[] first = new int[rows]; // flat index of each row's first token
        for (int row = 1; row < rows; row++) {
            first[row] = first[row - 1] + lens[row - 1];
        }
        for (int t = 0; t < n; t++) {
            int base = first[rowOf[t]];
            for (int h = 0; h < heads; h++) {
                int grp = h / g;
                int len = posOf[t] + 1;
                double[] s = new double[len];
                double max = Double.NEGATIVE_INFINITY;
                for (int p = 0; p < len; p++) {
                    double dot = 0;
                    for (int d = 0; d < headDim; d++) {
                        dot += (double) qkv[t * stride + h * headDim + d]
                                * qkv[(base + p) * stride + kOff + grp * headDim + d];
                    }
                    s[p] = dot * scale;
                    max = Math.max(max, s[p]);
                }
                double sum = 0;
                for (int p = 0; p < len; p++) {
                    s[p] = Math.exp(s[p] - max);
                    sum += s[p];
                }
                for (int d = 0; d < headDim; d++) {
                    double o = 0;
                    for (int p = 0; p < len; p++) {
                        o += s[p] * qkv[(base + p) * stride + vOff + grp * headDim + d];
                    }
                    expected[(t * heads + h) * headDim + d] = (float) (o / sum);
                }
            }
        }
        int maxLen = 0;
        for (int l : lens) {
            maxLen = Math.max(maxLen, l);
        }
        int splits = (maxLen + splitLen - 1) / splitLen;
        DeviceBuffer partO = zeros((long) n * heads * splits * headDim * 4);
        DeviceBuffer partMl = zeros((long) n * heads * splits * 2 * 4);
        DeviceBuffer att = zeros((long) n * heads * headDim * 2);
        img.attention.decode(stream, dqkv, stride, scale, kc, vc, dTable, maxBlocks,
                blockSize, dRow, dPos, null, kvHeads, heads, kvHeads, headDim, splitLen, splits,
                partO, partMl, n);
        img.attention.combine(stream, att, partO, partMl, null, kvHeads, heads, kvHeads,
                headDim, splits, n);
        float[] dense = read16(dt, att, n * heads * headDim);
        assertCombineForms(dt, dense, partO, partMl, null, kvHeads, heads, kvHeads, headDim,
                splits, false, n);
        assertClose(dt.wire() + " attention heads=" + heads + " kv=" + kvHeads + " D=" + headDim, expected,
                dense, 1e-2, BF16_OUT_RTOL);
        // A block per pair of splits (large launches, one query head per group or the
        // pipelined kernel's shapes) gives the bits of a block per split.
        boolean pairs = AttentionKernel.pairsAllowed(heads, kvHeads, headDim, splitLen);
        String second = pairs ? "pairs of splits per block vs one split per block, "
                : "second run (grouped heads: no pairs), ";
        DeviceBuffer attPairs = zeros((long) n * heads * headDim * 2);
        img.attention.decode(stream, dqkv, stride, scale, kc, vc, dTable, maxBlocks,
                blockSize, dRow, dPos, null, kvHeads, heads, kvHeads, headDim, splitLen, splits,
                pairs, partO, partMl, n);
        img.attention.combine(stream, attPairs, partO, partMl, null, kvHeads, heads, kvHeads,
                headDim, splits, pairs, n);
        assertArrayEquals(dense, read16(dt, attPairs, n * heads * headDim),
                second + splits + " splits");
        assertCombineForms(dt, dense, partO, partMl, null, kvHeads, heads, kvHeads, headDim,
                splits, pairs, n);
        assertTailSingles(dt, dense, dqkv, stride, scale, kc, vc, dTable, maxBlocks, blockSize,
                dRow, dPos, null, kvHeads, heads, kvHeads, headDim, splitLen, splits, partO,
                partMl, n);

        // Polar: a per-token table of selected groups (unsorted); other heads stay zero. With
        // every group in the table the result is the dense one, bit for bit.
        for (int sel : new int[] {Math.max(1, kvHeads / 2), kvHeads}) {
        int[] groupIdx = new int[n * sel];
        boolean[][] chosen = new boolean[n][kvHeads];
        for (int t = 0; t < n; t++) {
            List<Integer> gs = new ArrayList<>();
            for (int q = 0; q < kvHeads; q++) {
                gs.add(q);
            }
            Collections.shuffle(gs, r);
            for (int j = 0; j < sel; j++) {
                groupIdx[t * sel + j] = gs.get(j);
                chosen[t][gs.get(j)] = true;
            }
        }
        DeviceBuffer dIdx = i32(groupIdx);
        // att starts non-zero: the combine itself must write the unselected heads' zeros.
        DeviceBuffer att2 = dev16(dt, random(r, n * heads * headDim, 1.0));
        img.attention.decode(stream, dqkv, stride, scale, kc, vc, dTable, maxBlocks,
                blockSize, dRow, dPos, dIdx, sel, heads, kvHeads, headDim, splitLen, splits,
                partO, partMl, n);
        img.attention.combine(stream, att2, partO, partMl, dIdx, sel, heads, kvHeads,
                headDim, splits, n);
        float[] sparse = read16(dt, att2, n * heads * headDim);
        assertCombineForms(dt, sparse, partO, partMl, dIdx, sel, heads, kvHeads, headDim,
                splits, false, n);
        DeviceBuffer att3 = dev16(dt, random(r, n * heads * headDim, 1.0));
        img.attention.decode(stream, dqkv, stride, scale, kc, vc, dTable, maxBlocks,
                blockSize, dRow, dPos, dIdx, sel, heads, kvHeads, headDim, splitLen, splits,
                pairs, partO, partMl, n);
        img.attention.combine(stream, att3, partO, partMl, dIdx, sel, heads, kvHeads,
                headDim, splits, pairs, n);
        assertArrayEquals(sparse, read16(dt, att3, n * heads * headDim),
                "Polar table: " + second + splits + " splits");
        assertTailSingles(dt, sparse, dqkv, stride, scale, kc, vc, dTable, maxBlocks, blockSize,
                dRow, dPos, dIdx, sel, heads, kvHeads, headDim, splitLen, splits, partO, partMl,
                n);
        for (int t = 0; t < n; t++) {
            for (int h = 0; h < heads; h++) {
                for (int d = 0; d < headDim; d++) {
                    int at = (t * heads + h) * headDim + d;
                    float want = chosen[t][h / g] ? dense[at] : 0f;
                    assertEquals(want, sparse[at], 0f, "token " + t + " head " + h);
                }
            }
        }
        }
    }

    /** Router top-k on the device equals a stable descending sort, ties included. */
    @ParameterizedTest(name = "G={0} k={1}")
    @MethodSource("topkShapes")
    void routerTopkEqualsASort(int groups, int k) {
        Random r = new Random(groups * 100 + k);
        int n = 37;
        float[] logits = new float[n * groups];
        for (int i = 0; i < logits.length; i++) {
            logits[i] = r.nextInt(7) - 3; // few distinct values: many ties
        }
        DeviceBuffer idx = zeros((long) n * k * 4);
        kernels.router.topk(stream, f32(logits), n, groups, k, idx);
        int[] got = readI32(idx, n * k);
        for (int t = 0; t < n; t++) {
            Integer[] order = new Integer[groups];
            for (int g = 0; g < groups; g++) {
                order[g] = g;
            }
            final int tt = t;
            java.util.Arrays.sort(order, (a, b) -> Float.compare(logits[tt * groups + b],
                    logits[tt * groups + a])); // stable: equal scores keep the lower index first
            for (int j = 0; j < k; j++) {
                assertEquals((int) order[j], got[t * k + j], "token " + t + " rank " + j);
            }
        }
    }

    /**
     * The fused head router + top-k picks the groups a host computation ranks first (9 tokens of
     * hidden 264, 70 of hidden 1000); a token's picks do not depend on the tokens launched with
     * it.
     */
    @ParameterizedTest(name = "G={0} k={1}")
    @MethodSource("topkShapes")
    void fusedHeadRouterPicksTheTopGroups(int groups, int k) {
        int[] firstNine = null;
        for (int[] shape : new int[][] {{9, 264}, {70, 1000}, {9, 1000}}) {
            int n = shape[0];
            int hidden = shape[1];
            Random r = new Random(groups * 13 + k + hidden);
            float[] y = Bf16.round(random(r, n * hidden, 1.0));
            float[] w = Bf16.round(random(r, groups * hidden, 1.0 / Math.sqrt(hidden)));
            float[] b = Bf16.round(random(r, groups, 1.0));
            if (hidden == 1000 && n == 9) {
                // The first 9 rows of the 70-token launch again, alone.
                r = new Random(groups * 13 + k + hidden);
                float[] y70 = Bf16.round(random(r, 70 * hidden, 1.0));
                w = Bf16.round(random(r, groups * hidden, 1.0 / Math.sqrt(hidden)));
                b = Bf16.round(random(r, groups, 1.0));
                y = java.util.Arrays.copyOf(y70, n * hidden);
            }
            DeviceBuffer idx = zeros((long) n * k * 4);
            DeviceBuffer counters = zeros(n * 4L);
            DeviceBuffer part = zeros((long) n * groups * 4);
            kernels.router.headTopk(stream, bf16(y), hidden, bf16(w), bf16(b), n, hidden, groups,
                    k, idx, part, counters);
            int[] got = readI32(idx, n * k);
            // Launched again on the same counters (left at zero): the same picks.
            DeviceBuffer idx2 = zeros((long) n * k * 4);
            kernels.router.headTopk(stream, bf16(y), hidden, bf16(w), bf16(b), n, hidden, groups,
                    k, idx2, part, counters);
            assertArrayEquals(got, readI32(idx2, n * k), "second launch on the same counters");
            assertArrayEquals(new int[n], readI32(counters, n), "counters left at zero");
            if (hidden == 1000 && n == 70) {
                firstNine = java.util.Arrays.copyOf(got, 9 * k);
            } else if (hidden == 1000) {
                assertArrayEquals(firstNine, got, "the first 9 tokens alone pick as in a launch of 70");
            }
            for (int t = 0; t < n; t++) {
                double[] logit = hostRouterLogits(y, w, b, t, groups, hidden);
                double[] sorted = logit.clone();
                java.util.Arrays.sort(sorted);
                java.util.Set<Integer> seen = new java.util.HashSet<>();
                for (int j = 0; j < k; j++) {
                    int g = got[t * k + j];
                    assertTrue(seen.add(g), "group chosen twice");
                    // the j-th pick has (up to fp32 summation order) the j-th largest logit
                    assertEquals(sorted[groups - 1 - j], logit[g], 1e-4, "n=" + n + " hidden="
                            + hidden + " token " + t + " rank " + j);
                }
            }
        }
    }

    /**
     * The head router inside the q/k/v projection: partials of q/k/v plus the router's rows (with
     * q/k/v's K chunks) reduced by decode_qkv_rope_kv with the router fused in give q/k/v and the
     * K/V cache the bits of the plain reduce, and each token's selection the bits of the router's
     * own GEMM over the same chunks plus router_topk_f32; the picks are the host's top groups.
     */
    @ParameterizedTest(name = "G={0} k={1}")
    @MethodSource("topkShapes")
    void headRouterInsideTheQkvReduce(int groups, int k) {
        Random r = new Random(groups * 7 + k);
        int m = 6;
        int hidden = 264;
        int heads = 4;
        int kvHeads = 2;
        int headDim = 16;
        int qkvDim = (heads + 2 * kvHeads) * headDim;
        int blockSize = 16;
        float[] y = Bf16.round(random(r, m * hidden, 1.0));
        float[] wq = Bf16.round(random(r, qkvDim * hidden, 1.0 / Math.sqrt(hidden)));
        float[] wr = Bf16.round(random(r, groups * hidden, 1.0 / Math.sqrt(hidden)));
        float[] bq = Bf16.round(random(r, qkvDim, 0.3));
        float[] br = Bf16.round(random(r, groups, 1.0));
        float[] both = Arrays.copyOf(wq, (qkvDim + groups) * hidden);
        System.arraycopy(wr, 0, both, qkvDim * hidden, groups * hidden);
        DeviceBuffer dy = bf16(y);
        DeviceBuffer dBoth = bf16(both);
        DeviceBuffer dq = bf16(wq);
        DeviceBuffer dr = bf16(wr);
        DeviceBuffer dbq = bf16(bq);
        DeviceBuffer dbr = bf16(br);
        int[] pos = new int[m];
        int[] rowOf = new int[m];
        for (int i = 0; i < m; i++) {
            pos[i] = 3 * i;
            rowOf[i] = i;
        }
        DeviceBuffer dPos = i32(pos);
        DeviceBuffer dRowOf = i32(rowOf);
        DeviceBuffer table = i32(java.util.stream.IntStream.range(0, m).toArray());
        long cacheBytes = (long) m * kvHeads * blockSize * headDim * 2;
        DeviceBuffer work = zeros(16L << 20);
        int[][] picks = new int[2][];
        float[][] qkvOut = new float[2][];
        float[][] kOut = new float[2][];
        for (int fusedIn = 0; fusedIn < 2; fusedIn++) {
            DeviceBuffer kc = zeros(cacheBytes);
            DeviceBuffer vc = zeros(cacheBytes);
            DeviceBuffer qkv = zeros((long) m * qkvDim * 2);
            DeviceBuffer idx = zeros((long) m * k * 4);
            int units = fusedIn == 1 ? groups : 0;
            int sp = kernels.gemm.partials(false, stream, dy, hidden, fusedIn == 1 ? dBoth : dq,
                    hidden, 0, m, qkvDim + units, hidden, work, null, qkvDim);
            kernels.fused.qkvRopeKv(stream, work, sp, dbq, qkv, dPos, null, m, heads, kvHeads,
                    headDim, kc, vc, dRowOf, table, 1, blockSize, units, k,
                    fusedIn == 1 ? dbr : null, fusedIn == 1 ? idx : null);
            qkvOut[fusedIn] = readBf16(qkv, m * qkvDim);
            kOut[fusedIn] = readBf16(kc, (int) (cacheBytes / 2));
            if (fusedIn == 1) {
                picks[1] = readI32(idx, m * k);
            }
        }
        assertArrayEquals(qkvOut[0], qkvOut[1], "q/k/v with the router fused in vs without");
        assertArrayEquals(kOut[0], kOut[1], "K cache with the router fused in vs without");
        DeviceBuffer logits = zeros((long) m * groups * 4);
        kernels.gemm.runChunked(Epilogue.STORE_F32, stream, dy, hidden, dr, hidden, dbr, logits,
                groups, m, groups, hidden, work, qkvDim);
        DeviceBuffer idx = zeros((long) m * k * 4);
        kernels.router.topk(stream, logits, m, groups, k, idx);
        picks[0] = readI32(idx, m * k);
        assertArrayEquals(picks[0], picks[1], "fused picks vs the router's own GEMM + top-k");
        float[] got = readF32(logits, m * groups);
        for (int t = 0; t < m; t++) {
            double[] logit = hostRouterLogits(y, wr, br, t, groups, hidden);
            for (int g = 0; g < groups; g++) {
                assertEquals(logit[g], got[t * groups + g], 1e-4, "logit t=" + t + " g=" + g);
            }
            double[] sorted = logit.clone();
            Arrays.sort(sorted);
            for (int j = 0; j < k; j++) {
                assertEquals(sorted[groups - 1 - j], logit[picks[1][t * k + j]], 1e-4,
                        "token " + t + " rank " + j);
            }
        }
    }

    /** Head router logits of token t on the host, in double: b[g] + y[t] . w[g]. */
    private static double[] hostRouterLogits(float[] y, float[] w, float[] b, int t, int groups,
                                             int hidden) {
        double[] logit = new double[groups];
        for (int g = 0; g < groups; g++) {
            logit[g] = b[g];
            for (int d = 0; d < hidden; d++) {
                logit[g] += (double) y[t * hidden + d] * w[g * hidden + d];
            }
        }
        return logit;
    }

    static Stream<Arguments> topkShapes() {
        return Stream.of(Arguments.of(2, 1), Arguments.of(8, 4), Arguments.of(8, 5),
                Arguments.of(32, 16), Arguments.of(40, 13), Arguments.of(64, 64));
    }

    /**
     * Device sampling: greedy and top-k = 1 give the argmax; the empirical distribution over
     * many seeds matches softmax(l / T) restricted by top-k and top-p; same seeds, same tokens;
     * log-probabilities are the raw log-softmax of the chosen token.
     */
    @Test
    void deviceSamplingFollowsTheDistribution() {
        float[] base = {1.0f, 2.5f, 0.3f, 2.0f, -1.0f, 0.9f};
        int v = base.length;
        int rows = 4000;
        float[] logits = new float[rows * v];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(base, 0, logits, r * v, v);
        }
        DeviceBuffer dl = f32(logits);
        DeviceBuffer q = zeros((long) rows * v * 4);
        DeviceBuffer ids = zeros(rows * 4L);
        DeviceBuffer lp = zeros(rows * 4L);
        long[] seeds = new long[rows];
        int[] steps = new int[rows];
        for (int r = 0; r < rows; r++) {
            seeds[r] = 1000 + r;
            steps[r] = r % 7;
        }
        DeviceBuffer dSeeds = alloc.allocate("seeds", rows * 8L);
        buffers.add(dSeeds);
        dSeeds.copyFrom(jcuda.Pointer.to(seeds), rows * 8L, stream);
        DeviceBuffer dSteps = i32(steps);
        double lse = 0;
        double max = Double.NEGATIVE_INFINITY;
        for (float b : base) {
            max = Math.max(max, b);
        }
        for (float b : base) {
            lse += Math.exp(b - max);
        }
        lse = max + Math.log(lse);
        // (temperature, top_k, top_p) -> allowed tokens and their expected probabilities
        Object[][] cases = {{0.0f, -1, 1.0f}, {1.0f, 1, 1.0f}, {1.0f, -1, 1.0f},
            {0.7f, -1, 1.0f}, {1.0f, 2, 1.0f}, {1.0f, -1, 0.6f}};
        for (Object[] cs : cases) {
            float t = (float) cs[0];
            int k = (int) cs[1];
            float p = (float) cs[2];
            float[] temp = new float[rows];
            int[] topK = new int[rows];
            float[] topP = new float[rows];
            java.util.Arrays.fill(temp, t);
            java.util.Arrays.fill(topK, k);
            java.util.Arrays.fill(topP, p);
            kernels.sampling.sample(stream, dl, rows, v, f32(temp), i32(topK), f32(topP), dSeeds,
                    dSteps, q, ids, lp);
            int[] got = readI32(ids, rows);
            float[] gotLp = readF32(lp, rows);
            // expected distribution, computed independently on the host
            double[] w = new double[v];
            Integer[] order = {0, 1, 2, 3, 4, 5};
            java.util.Arrays.sort(order, (a, b) -> Float.compare(base[b], base[a]));
            if (t == 0f || k == 1) {
                w[order[0]] = 1;
            } else {
                double z = 0;
                for (int i = 0; i < v; i++) {
                    w[i] = Math.exp((base[i] - max) / t);
                }
                if (k > 0) {
                    for (int j = k; j < v; j++) {
                        w[order[j]] = 0;
                    }
                }
                for (double x : w) {
                    z += x;
                }
                if (p < 1f) { // smallest top set with mass >= p
                    double cum = 0;
                    int keep = v;
                    for (int j = 0; j < v; j++) {
                        cum += w[order[j]] / z;
                        if (cum >= p) {
                            keep = j + 1;
                            break;
                        }
                    }
                    for (int j = keep; j < v; j++) {
                        w[order[j]] = 0;
                    }
                }
            }
            double z = java.util.Arrays.stream(w).sum();
            int[] counts = new int[v];
            for (int r = 0; r < rows; r++) {
                counts[got[r]]++;
                assertEquals(base[got[r]] - lse, gotLp[r], 1e-5, "raw log-probability");
            }
            for (int i = 0; i < v; i++) {
                double pi = w[i] / z;
                double sigma = Math.sqrt(rows * pi * (1 - pi));
                assertTrue(Math.abs(counts[i] - rows * pi) <= 5 * sigma + 1e-9, String.format(
                        "T=%s k=%d p=%s token %d: %d draws, expected %.1f", t, k, p, i,
                        counts[i], rows * pi));
            }
            // deterministic: the same seeds and steps draw the same tokens again
            kernels.sampling.sample(stream, dl, rows, v, f32(temp), i32(topK), f32(topP), dSeeds,
                    dSteps, q, ids, lp);
            assertArrayEquals(got, readI32(ids, rows));
        }
    }

    /**
     * The device argmax and log-probabilities against a double-precision host pass, over shapes
     * that split a row into one chunk or many (the row's last block merging them), vocabularies
     * that are not multiples of 4 (scalar loads), ties across chunks (the lowest id wins), rows
     * with -inf logits, and repeated launches (the tickets reset themselves).
     */
    @ParameterizedTest
    @CsvSource({"5, 8193", "1, 128256", "16, 128256", "3, 50272", "300, 1031", "1, 7"})
    void lmHeadArgmaxAndLogprobs(int rows, int vocab) {
        Random r = new Random(77L * rows + vocab);
        float[] logits = random(r, rows * vocab, 3.0);
        if (rows > 2 && vocab > 4000) {
            logits[2 * vocab + 100] = 50f; // a tie (in different chunks when split): lower id
            logits[2 * vocab + vocab - 3] = 50f;
        }
        if (rows > 1) {
            for (int v = 0; v < vocab; v += 2) {
                logits[vocab + v] = Float.NEGATIVE_INFINITY; // masked half of row 1
            }
        }
        DeviceBuffer dl = f32(logits);
        DeviceBuffer ids = zeros(rows * 4L);
        DeviceBuffer lp = zeros(rows * 4L);
        DeviceBuffer part = zeros(LmHeadKernel.partBytes(rows, vocab));
        DeviceBuffer counters = zeros(rows * 4L);
        int[] want = new int[rows];
        float[] wantLp = new float[rows];
        int[] given = new int[rows];
        float[] givenLp = new float[rows];
        for (int row = 0; row < rows; row++) {
            int best = 0;
            double max = Double.NEGATIVE_INFINITY;
            for (int v = 0; v < vocab; v++) {
                if (logits[row * vocab + v] > max) {
                    max = logits[row * vocab + v];
                    best = v;
                }
            }
            double sum = 0;
            for (int v = 0; v < vocab; v++) {
                sum += Math.exp(logits[row * vocab + v] - max);
            }
            double lse = max + Math.log(sum);
            want[row] = best;
            wantLp[row] = (float) (logits[row * vocab + best] - lse);
            given[row] = (row * 37 + 1) % vocab;
            givenLp[row] = (float) (logits[row * vocab + given[row]] - lse);
        }
        for (int launch = 0; launch < 3; launch++) {
            kernels.lmHead.argmax(stream, dl, rows, vocab, ids, lp, part, counters);
            int[] got = readI32(ids, rows);
            if (rows > 2 && vocab > 4000) {
                assertEquals(100, got[2], "tie: the lowest id");
            }
            assertArrayEquals(want, got, "argmax, launch " + launch);
            assertClose("argmax logprob", wantLp, readF32(lp, rows), 1e-4, 1e-5);
            assertArrayEquals(new int[rows], readI32(counters, rows), "tickets reset");
        }
        DeviceBuffer greedy = zeros(rows * 4L);
        DeviceBuffer givenIds = i32(given);
        for (int launch = 0; launch < 2; launch++) {
            kernels.lmHead.logprob(stream, dl, rows, vocab, givenIds, lp, greedy, part,
                    counters);
            float[] got = readF32(lp, rows);
            float[] expect = givenLp.clone();
            for (int row = 0; row < rows; row++) {
                if (expect[row] == Float.NEGATIVE_INFINITY) {
                    assertEquals(Float.NEGATIVE_INFINITY, got[row], "masked id, row " + row);
                    expect[row] = got[row] = 0f;
                }
            }
            assertClose("logprob of given ids, launch " + launch, expect, got, 1e-4, 1e-5);
            int[] g = readI32(greedy, rows);
            for (int row = 0; row < rows; row++) {
                assertEquals(given[row] == want[row] ? 1 : 0, g[row], "greedy flag, row " + row);
            }
        }
    }
}
