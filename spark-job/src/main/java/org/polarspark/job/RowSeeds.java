package org.polarspark.job;

import java.nio.charset.StandardCharsets;
import org.polarspark.generate.Sampler;

/**
 * A row's sampling seed: {@code mix(jobSeed + mix(fnv1a64(utf8(row_id))))}, where {@code mix}
 * is SplitMix64's finaliser. It depends only on the job seed and the row's id, never on the
 * partition, the task attempt or the batch, so a retried or speculative task samples exactly the
 * same tokens. Sample {@code j > 0} of a row (n &gt; 1) derives from it again
 * ({@link org.polarspark.generate.arrow.ArrowEngine#sampleSeed}).
 */
public final class RowSeeds {
    private RowSeeds() {
    }

    private static final long FNV_OFFSET = 0xcbf29ce484222325L;
    private static final long FNV_PRIME = 0x100000001b3L;

    public static long forRow(long jobSeed, String rowId) {
        long h = FNV_OFFSET;
        for (byte b : rowId.getBytes(StandardCharsets.UTF_8)) {
            h ^= b & 0xff;
            h *= FNV_PRIME;
        }
        return Sampler.mix(jobSeed + Sampler.mix(h));
    }
}
