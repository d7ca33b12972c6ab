package org.polarspark.cuda;

import jcuda.driver.CUevent;
import jcuda.driver.JCudaDriver;

/** A timing event. */
public final class CudaEvent implements AutoCloseable {
    private final CUevent event = new CUevent();
    private boolean closed;

    public CudaEvent() {
        Cuda.check(JCudaDriver.cuEventCreate(event, 0), "cuEventCreate");
    }

    public void record(CudaStream s) {
        Cuda.check(JCudaDriver.cuEventRecord(event, s.handle()), "cuEventRecord");
    }

    public void synchronize() {
        Cuda.check(JCudaDriver.cuEventSynchronize(event), "cuEventSynchronize");
    }

    /** Milliseconds from {@code start} to this event (both recorded and complete). */
    public float elapsedSince(CudaEvent start) {
        float[] ms = new float[1];
        Cuda.check(JCudaDriver.cuEventElapsedTime(ms, start.event, event), "cuEventElapsedTime");
        return ms[0];
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            Cuda.check(JCudaDriver.cuEventDestroy(event), "cuEventDestroy");
        }
    }
}
