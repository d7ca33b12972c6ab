package org.polarspark.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.polarspark.generate.Sampler;
import org.polarspark.model.Activation;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.ModelFamily;
import org.polarspark.model.RopeScaling;
import org.polarspark.polar.SparsityPolicy;

/**
 * Decode steps of a model with llama-3's attention shape (head_dim 128, four query heads per KV
 * group: the pipelined attention kernel) replayed from captured graphs, where the attention
 * passes are programmatic dependents and the first K/V stages of a token's older positions are
 * read before the wait, give exactly the logits of the same steps run kernel by kernel without
 * graphs (plain launches). Prompts of 380 and 124 positions, then 8 steps: the new positions
 * 380..387 and 124..131 cross the point (a split's start + 128) from which a split's first two
 * stages are read before the wait. The dense graph steps' passes also reduce q/k/v from the
 * projection's partials (no q/k/v reduce launch), so the plain launches are also the oracle of
 * that fusion. The kernel's numerics against the CPU are CudaKernelTest.pagedAttention's job.
 * The same with Polar head routers.
 */
class PipelinedAttentionDecodeTest extends GpuTest {
    /** llama-3's attention shape at a small width: head_dim 128, 4 query heads per group. */
    private static ModelConfig gqa128(int kvHeads) {
        return new ModelConfig(ModelFamily.LLAMA, 512, 512 * kvHeads, 2, 4 * kvHeads, kvHeads,
                128, 1024, 1024, Activation.SILU, 1e-5f, false, true, 512 * kvHeads, false, true,
                true, 0, 10000.0, RopeScaling.NONE, false, false, 1, List.of(2), -1);
    }

    @Test
    void graphDecodeWithEarlyReadsHasTheBitsOfPlainLaunches() {
        graphReplaysMatchPlainLaunches(gqa128(1), 0);
    }

    /**
     * Polar: random head routers keeping 1 of 2 groups in layer 1; the router runs ahead of the
     * q/k/v projection, so the pass reads the group table and its first stages before the wait.
     */
    @Test
    void polarGraphDecodeWithEarlyReadsHasTheBitsOfPlainLaunches() {
        graphReplaysMatchPlainLaunches(gqa128(2), 0.5);
    }

    private void graphReplaysMatchPlainLaunches(ModelConfig c, double density) {
        assertTrue(AttentionKernel.pipeFor(c.numHeads(), c.numKvHeads(), c.headDim()),
                "the shape runs the pipelined kernel");
        long kv = 2L * c.numLayers() * c.kvDim() * CudaDecoder.BLOCK_SIZE * 2 * 2
                * ((c.maxPositions() + 15) / 16);
        Random r = new Random(7);
        int[] lens = {380, 124};
        int[][] prompts = new int[lens.length][];
        for (int i = 0; i < lens.length; i++) {
            prompts[i] = r.ints(lens[i], 3, c.vocabSize()).toArray();
        }
        try (CudaDecoder graphs = CudaDecoder.synthetic(ctx, kernels, alloc, c, 11L, 512, 4, kv,
                false);
             CudaDecoder plain = CudaDecoder.synthetic(ctx, kernels, alloc, c, 11L, 512, 4, kv,
                     false)) {
            plain.useGraphs(false);
            SparsityPolicy gp = density > 0 ? DeviceRouters.random(graphs, density, 5L)
                    : SparsityPolicy.DENSE;
            SparsityPolicy pp = density > 0 ? DeviceRouters.random(plain, density, 5L)
                    : SparsityPolicy.DENSE;
            List<CudaSequence> gs = new ArrayList<>();
            List<CudaSequence> ps = new ArrayList<>();
            for (int len : lens) {
                gs.add(graphs.open(len + 16));
                ps.add(plain.open(len + 16));
            }
            int[] last = {1, 1};
            float[][][] gl = graphs.forward(gs, prompts, last, gp);
            float[][][] pl = plain.forward(ps, prompts, last, pp);
            for (int step = 0; step < 8; step++) {
                int[][] next = new int[lens.length][];
                for (int i = 0; i < lens.length; i++) {
                    assertArrayEquals(pl[i][0], gl[i][0], "row " + i + " (prompt " + lens[i]
                            + "), step " + step + ": graph replay vs plain launches");
                    next[i] = new int[] {Sampler.argmax(pl[i][0])};
                }
                gl = graphs.forward(gs, next, last, gp);
                pl = plain.forward(ps, next, last, pp);
            }
            assertEquals(lens.length, gl.length);
            for (int i = 0; i < lens.length; i++) {
                assertArrayEquals(pl[i][0], gl[i][0], "row " + i + ", last step");
                graphs.close(gs.get(i));
                plain.close(ps.get(i));
            }
            if (gp instanceof DeviceRouters dr) {
                dr.close();
            }
            if (pp instanceof DeviceRouters dr) {
                dr.close();
            }
        }
    }
}
