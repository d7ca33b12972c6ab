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
    private static final CUdeviceptr NULL = new CUdeviceptr();

    KernelArgs ptr(CUdeviceptr p) {
        args.add(Pointer.to(p == null ? NULL : p));
        return this;
    }

    KernelArgs ptr(DeviceBuffer b) {
        return ptr(b == null ? null : b.ptr());
    }

    KernelArgs i(int v) {
        args.add(Pointer.to(new int[] {v}));
        return this;
    }

    KernelArgs l(long v) {
        args.add(Pointer.to(new long[] {v}));
        return this;
    }

    KernelArgs f(float v) {
        args.add(Pointer.to(new float[] {v}));
        return this;
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
