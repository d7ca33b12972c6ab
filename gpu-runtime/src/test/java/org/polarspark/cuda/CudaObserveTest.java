package org.polarspark.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.polarspark.cpu.CpuDecoder;
import org.polarspark.cpu.CpuEngine;
import org.polarspark.cpu.CpuKvCache;
import org.polarspark.cpu.CpuWeights;
import org.polarspark.cpu.DecoderObserver;
import org.polarspark.generate.Backend;
import org.polarspark.generate.EngineFactory;
import org.polarspark.model.Checkpoint;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.TextTokenizer;
import org.polarspark.polar.Calibration;
import org.polarspark.polar.PolarSettings;
import org.polarspark.polar.SparsityPolicy;
import org.polarspark.testutil.Golden;

/**
 * The CUDA decoder's dense observation (calibration's forward) against the CPU reference's:
 * per layer, the router input, the attention output before o_proj and the MLP activations of
 * the same token window, then the calibration records built from them (head-norm rankings and
 * fc1 firing bitsets).
 */
class CudaObserveTest extends GpuTest {
    /**
     * Max |gpu - cpu| / max |cpu| per layer and array. The device keeps activations in bf16
     * (8 significant bits: 2^-9 relative rounding per value) and its residual stream in fp32;
     * through six layers of bf16 GEMMs the error grows to about 1e-2 of the largest value, as
     * the logits do in CudaDecoderTest (2e-2 there). 3e-2 leaves room for the activations,
     * whose largest values are a few outliers.
     */
    static final double OBSERVE_REL_TOL = 3e-2;
    /**
     * Fraction of (token, neuron) pairs of a ReLU MLP whose firing (activation > 0) agrees. A
     * neuron whose pre-activation lies within bf16 rounding of 0 may flip: on the trained
     * tiny-opt that is a few in a thousand.
     */
    static final double FIRING_AGREEMENT = 0.97;
    /** Fraction of tokens whose top-half head set (by output norm) is identical. */
    static final double HEAD_SET_AGREEMENT = 0.90;

    static final Path CORPUS = Golden.repoRoot().resolve("datasets/corpus/train.txt");

    /** What an observer saw: one call per layer, in order, checked as they come. */
    static final class Recorded implements DecoderObserver {
        final int tokens;
        final float[][] routerIn;
        final float[][] attention;
        final float[][] activations;
        final boolean[] outputNull;
        int nextAttention;
        int nextMlp;

        Recorded(ModelConfig c, int tokens) {
            this.tokens = tokens;
            routerIn = new float[c.numLayers()][];
            attention = new float[c.numLayers()][];
            activations = new float[c.numLayers()][];
            outputNull = new boolean[c.numLayers()];
        }

        @Override
        public void attention(int layer, float[] r, float[] a, int[] rowOf, int[] posOf) {
            assertEquals(nextAttention++, layer, "attention calls in layer order");
            assertEquals(nextMlp, layer, "mlp(layer - 1) before attention(layer)");
            int[] pos = new int[tokens];
            Arrays.setAll(pos, i -> i);
            assertArrayEquals(new int[tokens], rowOf, "rowOf: one row");
            assertArrayEquals(pos, posOf, "posOf: 0..T-1");
            routerIn[layer] = r.clone();
            attention[layer] = a.clone();
        }

        @Override
        public void mlp(int layer, float[] act, float[] output) {
            assertEquals(nextMlp++, layer, "mlp calls in layer order");
            assertEquals(nextAttention, layer + 1, "attention(layer) before mlp(layer)");
            activations[layer] = act.clone();
            outputNull[layer] = output == null;
        }
    }

    static double relErr(float[] cpu, float[] gpu) {
        assertEquals(cpu.length, gpu.length, "length");
        double max = 0;
        double err = 0;
        for (int i = 0; i < cpu.length; i++) {
            max = Math.max(max, Math.abs(cpu[i]));
            err = Math.max(err, Math.abs(cpu[i] - gpu[i]));
        }
        return max == 0 ? err : err / max;
    }

    static double firingAgreement(float[] cpu, float[] gpu) {
        long same = 0;
        for (int i = 0; i < cpu.length; i++) {
            if ((cpu[i] > 0) == (gpu[i] > 0)) {
                same++;
            }
        }
        return (double) same / cpu.length;
    }

    /** The first 512-token calibration window (BOS + 511 corpus tokens) of a bundled model. */
    static int[][] corpusWindows(Path modelDir, ModelConfig c, int count) {
        assumeTrue(Files.exists(CORPUS), "no corpus at " + CORPUS);
        try (TextTokenizer tok = TextTokenizer.load(modelDir, c)) {
            int[] corpus = Calibration.tokenizeCorpus(tok, CORPUS);
            int window = Math.min(Calibration.DEFAULT_WINDOW, c.maxPositions());
            return Calibration.plan(c, corpus, (long) count * (window - 1), window);
        }
    }

    /** A model's token window: the corpus for the bundled ones, else its golden prompts. */
    static int[] window(String name, Golden g, ModelConfig c) {
        if (name.startsWith("tiny-")) {
            return corpusWindows(g.modelDir(), c, 1)[0];
        }
        List<Integer> ids = new ArrayList<>();
        for (Golden.Case gc : g.cases()) {
            for (int t : gc.inputIds()) {
                if (ids.size() < c.maxPositions()) {
                    ids.add(t);
                }
            }
        }
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    /**
     * Both bundled models in one piece and in pieces of 100 tokens (512 = 5 x 100 + 12: the
     * last piece takes the fused path of pieces of at most 64 tokens), and the post-norm OPT; in
     * both element types (the host copies widen fp16 or bf16 bits as the image's type).
     */
    static Stream<Arguments> cases() {
        return everyDtype(Stream.of(Arguments.of("tiny-opt", 2048), Arguments.of("tiny-llama", 2048),
                Arguments.of("tiny-opt", 100), Arguments.of("tiny-llama", 100),
                Arguments.of("opt-postln", 2048)));
    }

    @ParameterizedTest(name = "{0} {1}, pieces of {2}")
    @MethodSource("cases")
    void observedLayersMatchTheCpu(CudaDtype dt, String name, int pieceTokens) {
        Golden g = Golden.load(name);
        Checkpoint ckpt = Checkpoint.open(g.modelDir());
        ModelConfig c = ckpt.config();
        int[] tokens = window(name, g, c);
        int n = tokens.length;
        CpuDecoder cpu = new CpuDecoder(CpuWeights.load(ckpt));
        Recorded want = new Recorded(c, n);
        cpu.forward(new CpuKvCache[] {cpu.newCache(n)}, new int[][] {tokens},
                SparsityPolicy.DENSE, false, want);
        Recorded got = new Recorded(c, n);
        long perBlock = 2L * c.numLayers() * c.kvDim() * CudaDecoder.BLOCK_SIZE * 2;
        long kvBytes = perBlock * ((c.maxPositions() + 15) / 16);
        try (CudaDecoder gpu = new CudaDecoder(ctx, kernels(dt), alloc, ckpt, pieceTokens, 8,
                kvBytes)) {
            gpu.observeDense(tokens, got);
            assertEquals(gpu.numBlocks(), gpu.freeBlocks(), "the KV blocks are freed");
        }
        assertEquals(c.numLayers(), got.nextAttention, "attention calls");
        assertEquals(c.numLayers(), got.nextMlp, "mlp calls");
        double worst = 0;
        for (int l = 0; l < c.numLayers(); l++) {
            assertTrue(got.outputNull[l], "the CUDA decoder passes a null MLP output");
            double r = relErr(want.routerIn[l], got.routerIn[l]);
            double a = relErr(want.attention[l], got.attention[l]);
            double m = relErr(want.activations[l], got.activations[l]);
            double fire = c.reluMlp() ? firingAgreement(want.activations[l],
                    got.activations[l]) : Double.NaN;
            System.out.printf("[gpu] observe %s %s (%d tokens, pieces of %d) layer %d: router "
                    + "input %.5f, attention %.5f, activations %.5f relative; fc1 firing "
                    + "agreement %.5f%n", dt.wire(), name, n, pieceTokens, l, r, a, m, fire);
            String at = dt.wire() + " " + name + " layer " + l + ": ";
            assertTrue(r <= OBSERVE_REL_TOL, at + "router input relative error " + r);
            assertTrue(a <= OBSERVE_REL_TOL, at + "attention relative error " + a);
            assertTrue(m <= OBSERVE_REL_TOL, at + "activation relative error " + m);
            if (name.equals("tiny-opt")) {
                assertTrue(fire >= FIRING_AGREEMENT, at + "fc1 firing agreement " + fire);
            }
            worst = Math.max(worst, Math.max(r, Math.max(a, m)));
        }
        System.out.printf("[gpu] observe %s, pieces of %d: worst relative error %.5f%n", name,
                pieceTokens, worst);
    }

    /** Top-half heads (by output norm) of one record, as a bit mask. */
    static long topHalf(ByteBuffer b, int at, int heads) {
        Integer[] idx = new Integer[heads];
        float[] norm = new float[heads];
        for (int h = 0; h < heads; h++) {
            idx[h] = h;
            norm[h] = b.getFloat(at + 4 * h);
        }
        Arrays.sort(idx, (p, q) -> Float.compare(norm[q], norm[p]));
        long mask = 0;
        for (int j = 0; j < heads / 2; j++) {
            mask |= 1L << idx[j];
        }
        return mask;
    }

    /**
     * Calibration.collectWindow through the CUDA engine against the CPU engine on two corpus
     * windows: the same record count; per layer, the top-half head sets agree on most tokens
     * and (ReLU) the fc1 firing bitsets on most bits.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("bundled")
    void calibrationRecordsRankHeadsLikeTheCpu(String name) {
        Path dir = Golden.repoRoot().resolve("datasets/models/" + name);
        assertTrue(EngineFactory.canObserve(Backend.CUDA));
        try (CudaEngine gpu = CudaEngine.load(dir, 0, 4);
             CpuEngine cpu = CpuEngine.load(dir, 1)) {
            assertTrue(gpu.canObserve());
            ModelConfig c = gpu.config();
            int hid = c.hiddenSize();
            int heads = c.numHeads();
            int ffn = c.reluMlp() ? c.ffnDim() : 0;
            int words = (ffn + 63) / 64;
            int rec = Calibration.recordBytes(c);
            int[][] windows = corpusWindows(dir, c, 2);
            long[] tokens = new long[c.numLayers()];
            long[] sameSet = new long[c.numLayers()];
            long[] bits = new long[c.numLayers()];
            long[] sameBits = new long[c.numLayers()];
            double[] routerErr = new double[c.numLayers()];
            for (int[] w : windows) {
                ByteBuffer[] want = Calibration.collectWindow(cpu, w);
                ByteBuffer[] got = Calibration.collectWindow(gpu, w);
                for (int l = 0; l < c.numLayers(); l++) {
                    assertEquals(want[l].limit(), got[l].limit(), "layer " + l + " bytes");
                    int records = want[l].limit() / rec;
                    assertEquals(w.length - 1, records, "one record per token after BOS");
                    float[] xw = new float[records * hid];
                    float[] xg = new float[records * hid];
                    for (int t = 0; t < records; t++) {
                        int at = t * rec;
                        for (int i = 0; i < hid; i++) {
                            xw[t * hid + i] = want[l].getFloat(at + 4 * i);
                            xg[t * hid + i] = got[l].getFloat(at + 4 * i);
                        }
                        int hAt = at + 4 * hid;
                        tokens[l]++;
                        if (topHalf(want[l], hAt, heads) == topHalf(got[l], hAt, heads)) {
                            sameSet[l]++;
                        }
                        int bAt = hAt + 4 * heads;
                        for (int q = 0; q < words; q++) {
                            long diff = want[l].getLong(bAt + 8 * q) ^ got[l].getLong(bAt + 8 * q);
                            int valid = Math.min(64, ffn - 64 * q);
                            bits[l] += valid;
                            sameBits[l] += valid - Long.bitCount(diff);
                        }
                    }
                    routerErr[l] = Math.max(routerErr[l], relErr(xw, xg));
                }
            }
            for (int l = 0; l < c.numLayers(); l++) {
                double heads50 = (double) sameSet[l] / tokens[l];
                double fire = bits[l] == 0 ? Double.NaN : (double) sameBits[l] / bits[l];
                System.out.printf("[gpu] collectWindow %s layer %d (%d tokens): top-half head set "
                        + "agreement %.4f, fc1 bitset agreement %.5f, router input relative "
                        + "error %.5f%n", name, l, tokens[l], heads50, fire, routerErr[l]);
                String at = name + " layer " + l + ": ";
                assertTrue(routerErr[l] <= OBSERVE_REL_TOL, at + "router input " + routerErr[l]);
                assertTrue(heads50 >= HEAD_SET_AGREEMENT, at + "top-half head set agreement "
                        + heads50);
                if (bits[l] > 0) {
                    assertTrue(fire >= FIRING_AGREEMENT, at + "fc1 bitset agreement " + fire);
                }
            }
            assertEquals(gpu.decoder().numBlocks(), gpu.decoder().freeBlocks(),
                    "no KV blocks kept after observing");
        }
    }

    static Stream<String> bundled() {
        return Stream.of("tiny-opt", "tiny-llama");
    }

    /**
     * observeDense on an engine loaded with Polar routers (tiny-opt's shipped ones: heads at
     * density 0.5 and the MLP union top-k) is still dense: the same values as the dense engine
     * (within bf16 rounding: its fc2 is stored neuron-major, a different GEMM), where routed
     * attention would zero half the heads. Bad lengths fail as on the CPU, and the engine still
     * generates afterwards.
     */
    @Test
    void observingIgnoresRoutersAndChecksLengths() {
        Path dir = Golden.repoRoot().resolve("datasets/models/tiny-opt");
        assumeTrue(Files.exists(dir.resolve("polar/polar.json")), "no shipped routers");
        try (CudaEngine dense = CudaEngine.load(dir, 0, 2);
             CudaEngine polar = CudaEngine.load(dir, 0, 2,
                     new PolarSettings(true, null, null, true))) {
            ModelConfig c = dense.config();
            int[] w = corpusWindows(dir, c, 1)[0];
            Recorded a = new Recorded(c, w.length);
            Recorded b = new Recorded(c, w.length);
            dense.observeDense(w, a);
            polar.observeDense(w, b);
            double worst = 0;
            for (int l = 0; l < c.numLayers(); l++) {
                worst = Math.max(worst, Math.max(relErr(a.attention[l], b.attention[l]),
                        relErr(a.activations[l], b.activations[l])));
            }
            System.out.printf("[gpu] observe with routers loaded vs dense: worst relative "
                    + "difference %.6f%n", worst);
            assertTrue(worst <= 1e-2, "routers changed the observation: " + worst);
            for (int[] bad : new int[][] {{}, new int[c.maxPositions() + 1]}) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> dense.observeDense(bad, DecoderObserver.NONE));
                assertTrue(e.getMessage().contains("observeDense: " + bad.length + " tokens")
                        && e.getMessage().contains("1.." + c.maxPositions()), e.getMessage());
            }
            Recorded one = new Recorded(c, 1);
            dense.observeDense(new int[] {w[0]}, one); // one token: not the captured graph
            assertNotNull(one.activations[c.numLayers() - 1]);
            var r = dense.generate(List.of(new org.polarspark.generate.GenerationRequest(
                    dense.tokenizer().encode("It was a truth"),
                    org.polarspark.generate.SamplingParams.greedy(8), 1))).results().get(0);
            assertNull(r.error());
            assertTrue(r.tokens().length > 0);
        }
    }
}
