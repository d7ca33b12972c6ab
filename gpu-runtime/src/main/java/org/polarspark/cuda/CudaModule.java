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
