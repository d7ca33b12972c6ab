package org.polarspark.cuda;

import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;

/** A non-blocking CUDA stream. */
public final class CudaStream implements AutoCloseable {
    private final CUstream stream = new CUstream();
    private boolean closed;

    public CudaStream() {
        Cuda.check(JCudaDriver.cuStreamCreate(stream, CUstream_flags.CU_STREAM_NON_BLOCKING),
                "cuStreamCreate");
    }

    /**
     * A non-blocking stream of the context's highest priority: where its kernels and others
     * wait for the same GPU, the scheduler starts this stream's thread blocks first.
     */
    public static CudaStream highPriority() {
        int[] least = new int[1];
        int[] greatest = new int[1];
        Cuda.check(JCudaDriver.cuCtxGetStreamPriorityRange(least, greatest),
                "cuCtxGetStreamPriorityRange");
        return new CudaStream(greatest[0]);
    }

    private CudaStream(int priority) {
        Cuda.check(JCudaDriver.cuStreamCreateWithPriority(stream,
                CUstream_flags.CU_STREAM_NON_BLOCKING, priority), "cuStreamCreateWithPriority");
    }

    public CUstream handle() {
        return stream;
    }

    /** Work queued on this stream after this call waits for {@code e}'s last record. */
    public void waitFor(CudaEvent e) {
        Cuda.check(JCudaDriver.cuStreamWaitEvent(stream, e.handle(), 0), "cuStreamWaitEvent");
    }

    public void synchronize() {
        Cuda.check(JCudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize");
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            Cuda.check(JCudaDriver.cuStreamDestroy(stream), "cuStreamDestroy");
        }
    }
}
