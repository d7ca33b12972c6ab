package org.polarspark.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jcuda.driver.CUdeviceptr;
import org.junit.jupiter.api.Test;

/**
 * Device addresses read from JCuda handles (no GPU needed): they do not depend on whether
 * programmatic dependent launch is on, because the TMA tile's tensor maps need them too (with
 * -Dpolar.cuda.pdl=false the launcher once failed on a null reflection handle).
 */
class PdlLaunchAddressTest {
    @Test
    void addressesIncludeByteOffsetsAndNullIsZero() {
        assertTrue(PdlLaunch.addressable(), "JCuda handles must be readable on this JVM");
        assertEquals(0L, PdlLaunch.address(null));
        CUdeviceptr base = new CUdeviceptr();
        assertEquals(0L, PdlLaunch.address(base));
        assertEquals(4096L, PdlLaunch.address(base.withByteOffset(4096)));
        assertEquals(4096L + 96, PdlLaunch.address(base.withByteOffset(4096).withByteOffset(96)));
    }

    @Test
    void tensorMapBasesMustBeSixteenByteAligned() {
        assertTrue(TensorMaps.describable(4096, 4096));
        assertTrue(!TensorMaps.describable(4104, 4096), "8-byte aligned base");
        assertTrue(!TensorMaps.describable(4096, 4100), "row stride of 8200 bytes");
    }
}
