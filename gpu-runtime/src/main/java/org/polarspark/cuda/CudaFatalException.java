package org.polarspark.cuda;

/**
 * A sticky error (illegal address, launch failure, ...): the context is corrupt and every later
 * call on it fails. The task and its executor must not retry on the same context.
 */
public class CudaFatalException extends CudaException {
    public CudaFatalException(String result, String message) {
        super(result, message);
    }
}
