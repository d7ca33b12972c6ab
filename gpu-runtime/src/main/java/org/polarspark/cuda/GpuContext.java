package org.polarspark.cuda;

import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.JCudaDriver;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The primary context of one device. Threads that issue work call {@link #bind()} first (the
 * driver's current context is per thread). Closing releases the primary context.
 */
public final class GpuContext implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(GpuContext.class);

    private final int ordinal;
    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final String name;
    private final int major;
    private final int minor;
    private final long totalMemory;
    private final int multiprocessors;
    private boolean closed;

    public GpuContext(int ordinal) {
        Cuda.init();
        this.ordinal = ordinal;
        int[] count = new int[1];
        Cuda.check(JCudaDriver.cuDeviceGetCount(count), "cuDeviceGetCount");
        if (ordinal < 0 || ordinal >= count[0]) {
            throw new CudaException("CUDA_ERROR_INVALID_DEVICE", "GPU " + ordinal
                    + " asked for, but this host has " + count[0] + " CUDA device(s)");
        }
        Cuda.check(JCudaDriver.cuDeviceGet(device, ordinal), "cuDeviceGet(" + ordinal + ")");
        byte[] buf = new byte[256];
        Cuda.check(JCudaDriver.cuDeviceGetName(buf, buf.length, device), "cuDeviceGetName");
        int len = 0;
        while (len < buf.length && buf[len] != 0) {
            len++;
        }
        this.name = new String(buf, 0, len, java.nio.charset.StandardCharsets.UTF_8);
        this.major = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        this.minor = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        this.multiprocessors =
                attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        long[] total = new long[1];
        Cuda.check(JCudaDriver.cuDeviceTotalMem(total, device), "cuDeviceTotalMem");
        this.totalMemory = total[0];
        Cuda.check(JCudaDriver.cuDevicePrimaryCtxRetain(context, device),
                "cuDevicePrimaryCtxRetain(" + ordinal + ")");
        bind();
        LOG.info("Using GPU {}: {} (sm_{}{}, {} MiB)", ordinal, name, major, minor,
                totalMemory >> 20);
    }

    /** True if the driver loads and at least one CUDA device is present. Never throws. */
    public static boolean isAvailable() {
        try {
            Cuda.init();
            int[] count = new int[1];
            return JCudaDriver.cuDeviceGetCount(count) == 0 && count[0] > 0;
        } catch (Throwable t) {
            return false;
        }
    }

    private int attribute(int attr) {
        int[] v = new int[1];
        Cuda.check(JCudaDriver.cuDeviceGetAttribute(v, attr, device), "cuDeviceGetAttribute");
        return v[0];
    }

    /** Makes this context current on the calling thread. */
    public void bind() {
        Cuda.check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent(GPU " + ordinal + ")");
    }

    /** Waits for all work on the device. */
    public void synchronize() {
        Cuda.check(JCudaDriver.cuCtxSynchronize(), "cuCtxSynchronize(GPU " + ordinal + ")");
    }

    public int ordinal() {
        return ordinal;
    }

    public String name() {
        return name;
    }

    public int computeCapability() {
        return major * 10 + minor;
    }

    /** Streaming multiprocessors: how many thread blocks run at once, roughly. */
    public int multiprocessors() {
        return multiprocessors;
    }

    public long totalMemory() {
        return totalMemory;
    }

    /** Free and total device memory now, in bytes. */
    public long[] memInfo() {
        long[] free = new long[1];
        long[] total = new long[1];
        Cuda.check(JCudaDriver.cuMemGetInfo(free, total), "cuMemGetInfo");
        return new long[] {free[0], total[0]};
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        Cuda.check(JCudaDriver.cuDevicePrimaryCtxRelease(device),
                "cuDevicePrimaryCtxRelease(" + ordinal + ")");
    }
}
