package org.polarspark.cuda;

import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.JCudaDriver;

/** One loaded fatbin (one kernel family). Functions are looked up by their extern "C" names. */
public final class CudaModule implements AutoCloseable {
    private final String name;
    private final CUmodule module = new CUmodule();
    private boolean closed;

    CudaModule(String name, byte[] image) {
        this.name = name;
        Cuda.check(JCudaDriver.cuModuleLoadData(module, image), "cuModuleLoadData(" + name
                + ", " + image.length + " bytes)");
    }

    /** Resolves a kernel; fails at once, naming it, if the image lacks it. */
    public CUfunction function(String kernel) {
        CUfunction f = new CUfunction();
        int r = JCudaDriver.cuModuleGetFunction(f, module, kernel);
        if (r != 0) {
            Cuda.check(r, "cuModuleGetFunction(" + name + ", " + kernel + "): kernel not found "
                    + "in the image");
        }
        return f;
    }

    /**
     * The image's {@code polar_element_dtype} (kernels/common.cuh: 0 bf16, 1 fp16).
     *
     * @throws IllegalStateException when the image lacks it (built before the fp16 image)
     */
    int elementDtype() {
        jcuda.driver.CUdeviceptr p = new jcuda.driver.CUdeviceptr();
        long[] size = new long[1];
        int r = JCudaDriver.cuModuleGetGlobal(p, size, module, "polar_element_dtype");
        if (r != 0 || size[0] != 4) {
            throw new IllegalStateException("kernel image " + name + " has no "
                    + "polar_element_dtype marker (" + jcuda.driver.CUresult.stringFor(r)
                    + "): it predates the fp16 image; rebuild (mvn package)");
        }
        int[] v = new int[1];
        Cuda.check(JCudaDriver.cuMemcpyDtoH(jcuda.Pointer.to(v), p, 4),
                "cuMemcpyDtoH(" + name + ".polar_element_dtype)");
        return v[0];
    }

    public String name() {
        return name;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            Cuda.check(JCudaDriver.cuModuleUnload(module), "cuModuleUnload(" + name + ")");
        }
    }
}
