package org.polarspark.cuda;

/**
 * A failed CUDA driver call: names the CUresult, the operation, and where relevant the kernel
 * and the shapes it was launched with. Errors of asynchronous work surface at a later call on
 * the same context (a synchronize, a copy), so the operation named is where it was noticed.
 */
public class CudaException extends RuntimeException {
    private final String result;

    public CudaException(String result, String message) {
        super(result + ": " + message);
        this.result = result;
    }

    /** The CUresult name, e.g. CUDA_ERROR_OUT_OF_MEMORY. */
    public String result() {
        return result;
    }
}
