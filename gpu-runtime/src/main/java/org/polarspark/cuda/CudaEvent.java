package org.polarspark.cuda;

import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.JCudaDriver;

/** A CUDA event: a timing event, or (without timing) a point one stream waits for in another. */
public final class CudaEvent implements AutoCloseable {
    private final CUevent event = new CUevent();
    private boolean closed;

    /** A timing event. */
    public CudaEvent() {
        this(true);
    }

    /** An event; {@code timing} false makes it a cheaper ordering-only event. */
    public CudaEvent(boolean timing) {
        Cuda.check(JCudaDriver.cuEventCreate(event, timing ? 0
                : CUevent_flags.CU_EVENT_DISABLE_TIMING), "cuEventCreate");
    }

    CUevent handle() {
        return event;
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
