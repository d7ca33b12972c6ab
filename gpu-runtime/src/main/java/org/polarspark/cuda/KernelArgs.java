package org.polarspark.cuda;

import java.util.ArrayList;
import java.util.List;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.JCudaDriver;

/**
 * Kernel parameters in declaration order, and the launch itself. Used only by the launchers,
 * which are the single place that knows each kernel's argument order, grid and block.
 */
final class KernelArgs {
    private final List<Pointer> args = new ArrayList<>();
    /** The same arguments as values (CUdeviceptr or null, Integer, Long, Float, byte[]), for
     *  PDL. */
    private final List<Object> values = new ArrayList<>();
    private static final CUdeviceptr NULL = new CUdeviceptr();

    KernelArgs ptr(CUdeviceptr p) {
        args.add(Pointer.to(p == null ? NULL : p));
        values.add(p);
        return this;
    }

    KernelArgs ptr(DeviceBuffer b) {
        return ptr(b == null ? null : b.ptr());
    }

    KernelArgs i(int v) {
        args.add(Pointer.to(new int[] {v}));
        values.add(v);
        return this;
    }

    KernelArgs l(long v) {
        args.add(Pointer.to(new long[] {v}));
        values.add(v);
        return this;
    }

    /** A by-value struct argument (its bytes, e.g. a 128-byte tensor map). */
    KernelArgs bytes(byte[] v) {
        args.add(Pointer.to(v));
        values.add(v);
        return this;
    }

    KernelArgs f(float v) {
        args.add(Pointer.to(new float[] {v}));
        values.add(v);
        return this;
    }

    /**
     * Launches with programmatic dependent launch where available ({@link PdlLaunch}), else as
     * {@link #launch}. Only for kernels that call pdl_wait() before reading the preceding
     * kernel's output or writing (kernels/common.cuh).
     */
    void launchDependent(CUfunction f, String kernel, int gx, int gy, int gz, int block,
                         int sharedBytes, CudaStream stream, String shapes) {
        if (!PdlLaunch.available()) {
            launch(f, kernel, gx, gy, gz, block, sharedBytes, stream, shapes);
            return;
        }
        if (gx <= 0 || gy <= 0 || gz <= 0) {
            throw new IllegalArgumentException(kernel + ": empty grid (" + gx + ", " + gy + ", "
                    + gz + ") for " + shapes);
        }
        int r = PdlLaunch.launch(f, gx, gy, gz, block, sharedBytes, stream.handle(), values);
        if (r != 0) {
            Cuda.check(r, "cuLaunchKernelEx(" + kernel + ", programmatic dependent launch, grid ("
                    + gx + ", " + gy + ", " + gz + "), block " + block + ", smem " + sharedBytes
                    + ") for " + shapes);
        }
    }

    /** {@link #launchDependent} when {@code dependent}, else {@link #launch}. */
    void launch(boolean dependent, CUfunction f, String kernel, int gx, int gy, int gz,
                int block, int sharedBytes, CudaStream stream, String shapes) {
        if (dependent) {
            launchDependent(f, kernel, gx, gy, gz, block, sharedBytes, stream, shapes);
        } else {
            launch(f, kernel, gx, gy, gz, block, sharedBytes, stream, shapes);
        }
    }

    /** Launches; a failed launch names the kernel and the shapes given. */
    void launch(CUfunction f, String kernel, int gx, int gy, int gz, int block, int sharedBytes,
                CudaStream stream, String shapes) {
        if (gx <= 0 || gy <= 0 || gz <= 0) {
            throw new IllegalArgumentException(kernel + ": empty grid (" + gx + ", " + gy + ", "
                    + gz + ") for " + shapes);
        }
        Pointer params = Pointer.to(args.toArray(new Pointer[0]));
        int r = JCudaDriver.cuLaunchKernel(f, gx, gy, gz, block, 1, 1, sharedBytes,
                stream.handle(), params, null);
        if (r != 0) {
            Cuda.check(r, "cuLaunchKernel(" + kernel + ", grid (" + gx + ", " + gy + ", " + gz
                    + "), block " + block + ", smem " + sharedBytes + ") for " + shapes);
        }
    }
}
