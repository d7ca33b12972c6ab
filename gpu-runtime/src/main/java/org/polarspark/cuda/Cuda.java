package org.polarspark.cuda;

import static jcuda.driver.CUresult.CUDA_SUCCESS;

import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * Driver-call checking. JCuda's own exceptions are left disabled: every call's result is
 * checked here, so that the exception names the operation, kernel and shapes, not only the code.
 */
public final class Cuda {
    private Cuda() {
    }

    private static volatile boolean initialised;

    /** cuInit once per process; throws UnsatisfiedLinkError-derived errors as CudaException. */
    static synchronized void init() {
        if (initialised) {
            return;
        }
        try {
            JCudaDriver.setExceptionsEnabled(false);
            check(JCudaDriver.cuInit(0), "cuInit");
        } catch (UnsatisfiedLinkError e) {
            throw new CudaException("CUDA_ERROR_NOT_INITIALIZED", "cannot load JCuda's driver "
                    + "library or libcuda.so.1 (is an NVIDIA driver installed?): " + e.getMessage());
        }
        initialised = true;
    }

    /** Throws a CudaException (or CudaFatalException for sticky errors) unless CUDA_SUCCESS. */
    public static void check(int result, String operation) {
        if (result != CUDA_SUCCESS) {
            String name = CUresult.stringFor(result);
            if (isSticky(result)) {
                throw new CudaFatalException(name, operation);
            }
            throw new CudaException(name, operation);
        }
    }

    /** Errors after which the context cannot be used again. */
    static boolean isSticky(int r) {
        return r == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS || r == CUresult.CUDA_ERROR_LAUNCH_FAILED
                || r == CUresult.CUDA_ERROR_MISALIGNED_ADDRESS
                || r == CUresult.CUDA_ERROR_ILLEGAL_INSTRUCTION
                || r == CUresult.CUDA_ERROR_HARDWARE_STACK_ERROR
                || r == CUresult.CUDA_ERROR_INVALID_PC || r == CUresult.CUDA_ERROR_ASSERT;
    }
}
