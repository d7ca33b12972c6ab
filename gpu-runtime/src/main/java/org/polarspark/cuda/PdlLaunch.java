package org.polarspark.cuda;

import com.sun.jna.Function;
import com.sun.jna.Memory;
import com.sun.jna.NativeLibrary;
import java.lang.reflect.Method;
import java.util.List;
import jcuda.NativePointerObject;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUstream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Programmatic dependent launch (compute capability 9.0+): cuLaunchKernelEx with
 * CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION, which JCuda 12.6 does not bind, called
 * through JNA on the same libcuda.so.1. A kernel launched this way may start while the previous
 * kernel on the stream is still running (once that kernel executes griddepcontrol
 * .launch_dependents); it must call pdl_wait() (kernels/common.cuh) before reading the previous
 * kernel's output or writing anything. Stream capture turns it into a programmatic graph edge.
 *
 * <p>Used for the wgmma decode GEMM only (its weight prefetch overlaps the kernel before it):
 * H100, one run, 2026-11-26: decode step 0.5-2.5% faster than with plain launches. Launching
 * the reduce, norm, router and attention kernels as dependents too (each waiting first thing)
 * was measured in another run and made batch 1 up to 2.6% slower than plain launches, so they
 * launch plainly.
 *
 * <p>Off with -Dpolar.cuda.pdl=false, or where the driver has no cuLaunchKernelEx or the JCuda
 * handles cannot be read (then launches are plain cuLaunchKernel: same results, no overlap).
 */
final class PdlLaunch {
    private static final Logger LOG = LoggerFactory.getLogger(PdlLaunch.class);
    /** CUlaunchAttributeID CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION (cuda.h). */
    private static final int ATTR_PROGRAMMATIC_STREAM_SERIALIZATION = 6;
    /** sizeof(CUlaunchConfig) on 64-bit: 7 uints, pad, CUstream, attrs pointer, uint, pad. */
    private static final int CONFIG_BYTES = 56;
    /** sizeof(CUlaunchAttribute): id + pad to 8, then a 64-byte value union. */
    private static final int ATTRIBUTE_BYTES = 72;

    private static final Function LAUNCH_EX;
    private static final Method NATIVE_POINTER;
    private static final Method BYTE_OFFSET;

    static {
        Method np = null;
        Method bo = null;
        try {
            np = NativePointerObject.class.getDeclaredMethod("getNativePointer");
            np.setAccessible(true);
            bo = Pointer.class.getDeclaredMethod("getByteOffset");
            bo.setAccessible(true);
        } catch (Throwable t) {
            LOG.info("JCuda handles cannot be read ({}): kernels launch plainly and the TMA"
                    + " decode tile is off", t.toString());
            np = null;
            bo = null;
        }
        Function f = null;
        if (np != null && !"false".equals(System.getProperty("polar.cuda.pdl"))) {
            try {
                f = NativeLibrary.getInstance("libcuda.so.1").getFunction("cuLaunchKernelEx");
            } catch (Throwable t) {
                LOG.info("programmatic dependent launch unavailable ({}); kernels launch plainly",
                        t.toString());
                f = null;
            }
        }
        LAUNCH_EX = f;
        NATIVE_POINTER = np;
        BYTE_OFFSET = bo;
    }

    private PdlLaunch() {
    }

    /**
     * True when {@link #address} can read JCuda handles (independent of -Dpolar.cuda.pdl: the
     * TMA tile's tensor maps need device addresses too).
     */
    static boolean addressable() {
        return NATIVE_POINTER != null;
    }

    /** True when {@link #launch} can be used (the device must also be compute capability 9.0+). */
    static boolean available() {
        return LAUNCH_EX != null;
    }

    /** The address a JCuda handle or device pointer holds (plus a Pointer's byte offset). */
    static long address(NativePointerObject p) {
        if (p == null) {
            return 0L;
        }
        if (NATIVE_POINTER == null) {
            throw new IllegalStateException("JCuda handles cannot be read on this JVM");
        }
        try {
            long a = (Long) NATIVE_POINTER.invoke(p);
            if (p instanceof Pointer) {
                a += (Long) BYTE_OFFSET.invoke(p);
            }
            return a;
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot read a JCuda handle", e);
        }
    }

    /**
     * cuLaunchKernelEx with programmatic stream serialization. values: the kernel's arguments in
     * order, each a CUdeviceptr (or null), Integer, Long, Float or byte[] (a by-value struct).
     * Returns the CUresult.
     */
    static int launch(CUfunction f, int gx, int gy, int gz, int block, int sharedBytes,
                      CUstream stream, List<Object> values) {
        int n = values.size();
        Memory vals = new Memory(8L * Math.max(1, n));
        Memory ptrs = new Memory(8L * Math.max(1, n));
        List<Memory> blobs = new java.util.ArrayList<>();
        for (int i = 0; i < n; i++) {
            Object v = values.get(i);
            long at = 8L * i;
            if (v == null || v instanceof CUdeviceptr) {
                vals.setLong(at, address((CUdeviceptr) v));
            } else if (v instanceof Integer iv) {
                vals.setInt(at, iv);
            } else if (v instanceof Long lv) {
                vals.setLong(at, lv);
            } else if (v instanceof Float fv) {
                vals.setFloat(at, fv);
            } else if (v instanceof byte[] bytes) {  // a by-value struct: its own 64-aligned copy
                Memory blob = new Memory(bytes.length + 64L);
                blobs.add(blob);
                Memory aligned = blob.align(64);
                aligned.write(0, bytes, 0, bytes.length);
                ptrs.setPointer(at, aligned);
                continue;
            } else {
                throw new IllegalArgumentException("kernel argument of type " + v.getClass());
            }
            ptrs.setPointer(at, vals.share(at));
        }
        Memory attr = new Memory(ATTRIBUTE_BYTES);
        attr.clear();
        attr.setInt(0, ATTR_PROGRAMMATIC_STREAM_SERIALIZATION);
        attr.setInt(8, 1);  // value.programmaticStreamSerializationAllowed
        Memory cfg = new Memory(CONFIG_BYTES);
        cfg.clear();
        cfg.setInt(0, gx);
        cfg.setInt(4, gy);
        cfg.setInt(8, gz);
        cfg.setInt(12, block);
        cfg.setInt(16, 1);
        cfg.setInt(20, 1);
        cfg.setInt(24, sharedBytes);
        cfg.setLong(32, address(stream));
        cfg.setPointer(40, attr);
        cfg.setInt(48, 1);
        int r = LAUNCH_EX.invokeInt(new Object[] {cfg, new com.sun.jna.Pointer(address(f)), ptrs,
            null});
        java.lang.ref.Reference.reachabilityFence(vals);  // the native call read them
        java.lang.ref.Reference.reachabilityFence(blobs);
        java.lang.ref.Reference.reachabilityFence(attr);
        return r;
    }
}
