package org.polarspark.cuda;

import com.sun.jna.Function;
import com.sun.jna.Memory;
import com.sun.jna.NativeLibrary;
import java.util.HashMap;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Tensor maps for the Tensor Memory Accelerator (compute capability 9.0+): the 128-byte
 * descriptors that kernels/gemm_sm90a.cu's TMA decode tile (gemm_&lt;epi&gt;_wgt) takes by
 * value. Encoded by the driver's cuTensorMapEncodeTiled, which JCuda 12.6 does not bind, called
 * through JNA on the same libcuda.so.1 (as {@link PdlLaunch} does for cuLaunchKernelEx), and
 * cached per matrix and box, so that a decode step encodes each map once.
 *
 * <p>A map describes a row-major matrix of 16-bit elements, [rows, cols] with a row stride of
 * {@code ld} elements, read in boxes of 64 columns (128 bytes) x {@code boxRows} rows that land
 * in shared memory with the 128-byte swizzle the wgmma descriptors expect; elements outside the
 * matrix arrive as zeros. Off with -Dpolar.gemm.tma=false, or where the driver lacks the entry
 * point (then the cp.async decode tile runs: same bits).
 */
final class TensorMaps {
    private static final Logger LOG = LoggerFactory.getLogger(TensorMaps.class);
    /** sizeof(CUtensorMap). */
    static final int BYTES = 128;
    /** cuda.h enum values. */
    private static final int DATA_TYPE_UINT16 = 1;
    private static final int INTERLEAVE_NONE = 0;
    private static final int SWIZZLE_128B = 3;
    private static final int L2_PROMOTION_256B = 3;
    private static final int OOB_FILL_ZERO = 0;
    /** Box width in elements: one 128-byte swizzle row. */
    static final int BOX_COLS = 64;
    /** Cached maps beyond which the cache starts over (buffers come and go across models). */
    private static final int MAX_CACHED = 4096;

    private static final Function ENCODE;

    static {
        Function f = null;
        if (!"false".equals(System.getProperty("polar.gemm.tma"))) {
            try {
                f = NativeLibrary.getInstance("libcuda.so.1").getFunction(
                        "cuTensorMapEncodeTiled");
            } catch (Throwable t) {
                LOG.info("TMA tensor maps unavailable ({}); the cp.async decode tile runs",
                        t.toString());
            }
        }
        ENCODE = f;
    }

    private record Key(long address, int rows, int cols, int ld, int boxRows) {
    }

    private final Map<Key, byte[]> cache = new HashMap<>();

    /**
     * True where the driver offers cuTensorMapEncodeTiled, device addresses can be read from
     * JCuda handles ({@link PdlLaunch#addressable}) and -Dpolar.gemm.tma is not false.
     */
    static boolean available() {
        return ENCODE != null && PdlLaunch.addressable();
    }

    /**
     * Whether a matrix at this address and row stride can be described: 16-byte aligned base and
     * row stride (TMA's requirements).
     */
    static boolean describable(long address, int ld) {
        return address % 16 == 0 && ((long) ld * 2) % 16 == 0;
    }

    /** The map of a [rows, cols] matrix (row stride ld elements) at {@code address}. */
    synchronized byte[] map(long address, int rows, int cols, int ld, int boxRows) {
        Key key = new Key(address, rows, cols, ld, boxRows);
        byte[] m = cache.get(key);
        if (m == null) {
            if (cache.size() >= MAX_CACHED) {
                cache.clear();
            }
            m = encode(address, rows, cols, ld, boxRows);
            cache.put(key, m);
        }
        return m;
    }

    /** Number of cached maps (tests). */
    synchronized int cached() {
        return cache.size();
    }

    private static byte[] encode(long address, int rows, int cols, int ld, int boxRows) {
        if (ENCODE == null) {
            throw new IllegalStateException("cuTensorMapEncodeTiled is not available");
        }
        if (!describable(address, ld) || rows <= 0 || cols <= 0 || ld < cols || boxRows <= 0
                || boxRows > 256) {
            throw new IllegalArgumentException("tensor map of [" + rows + ", " + cols + "] ld "
                    + ld + " at 0x" + Long.toHexString(address) + ", box " + BOX_COLS + " x "
                    + boxRows + ": needs a 16-byte aligned base and row stride, ld >= cols,"
                    + " 1..256 box rows");
        }
        Memory map = new Memory(BYTES + 64);
        Memory aligned = map.align(64);
        Memory dims = new Memory(16);
        dims.setLong(0, cols);
        dims.setLong(8, rows);
        Memory strides = new Memory(8);
        strides.setLong(0, (long) ld * 2);
        Memory box = new Memory(8);
        box.setInt(0, BOX_COLS);
        box.setInt(4, boxRows);
        Memory elementStrides = new Memory(8);
        elementStrides.setInt(0, 1);
        elementStrides.setInt(4, 1);
        int r = ENCODE.invokeInt(new Object[] {aligned, DATA_TYPE_UINT16, 2,
            new com.sun.jna.Pointer(address), dims, strides, box, elementStrides,
            INTERLEAVE_NONE, SWIZZLE_128B, L2_PROMOTION_256B, OOB_FILL_ZERO});
        if (r != 0) {
            Cuda.check(r, "cuTensorMapEncodeTiled([" + rows + ", " + cols + "] ld " + ld
                    + ", box " + BOX_COLS + " x " + boxRows + ")");
        }
        byte[] out = aligned.getByteArray(0, BYTES);
        java.lang.ref.Reference.reachabilityFence(map);
        return out;
    }
}
