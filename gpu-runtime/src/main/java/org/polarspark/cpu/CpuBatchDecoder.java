package org.polarspark.cpu;

import java.util.List;
import org.polarspark.generate.BatchDecoder;
import org.polarspark.model.ModelConfig;
import org.polarspark.polar.SparsityPolicy;

/** The CPU decoder as a {@link BatchDecoder}: each sequence owns a heap KV cache. */
final class CpuBatchDecoder implements BatchDecoder<CpuKvCache> {
    private final CpuDecoder decoder;

    CpuBatchDecoder(CpuDecoder decoder) {
        this.decoder = decoder;
    }

    @Override
    public ModelConfig config() {
        return decoder.config();
    }

    @Override
    public CpuKvCache open(int capacity) {
        return decoder.newCache(capacity);
    }

    @Override
    public boolean fitsEver(int capacity) {
        return capacity <= decoder.config().maxPositions();
    }

    @Override
    public float[][][] forward(List<CpuKvCache> seqs, int[][] tokens, int[] logitsLast,
                               SparsityPolicy policy) {
        return decoder.forward(seqs.toArray(new CpuKvCache[0]), tokens, policy, logitsLast,
                DecoderObserver.NONE);
    }

    @Override
    public void close(CpuKvCache seq) {
        // heap memory: the garbage collector frees it
    }
}
