package org.polarspark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.polarspark.generate.Sampler;

class RowSeedsTest {
    @Test
    void theSeedIsAHashOfJobSeedAndRowIdOnly() {
        // FNV-1a-64 of "a" is 0xaf63dc4c8601ec8c (the published test vector)
        assertEquals(Sampler.mix(7 + Sampler.mix(0xaf63dc4c8601ec8cL)), RowSeeds.forRow(7, "a"));
        assertEquals(RowSeeds.forRow(1, "p-0001"), RowSeeds.forRow(1, "p-0001"));
        assertNotEquals(RowSeeds.forRow(1, "p-0001"), RowSeeds.forRow(2, "p-0001"));
        Set<Long> seen = new HashSet<>();
        for (int i = 0; i < 10_000; i++) {
            seen.add(RowSeeds.forRow(0, "row-" + i));
        }
        assertEquals(10_000, seen.size());
    }
}
