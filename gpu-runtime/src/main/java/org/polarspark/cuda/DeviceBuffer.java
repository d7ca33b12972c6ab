package org.polarspark.cuda;

import java.lang.ref.Cleaner;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Device memory with exactly one owner. {@link #close()} frees it (idempotent; the buffer counts
 * as freed even if the free fails). A buffer that becomes unreachable without being closed is
 * reported by a Cleaner, never freed there: frees need a current context.
 */
public final class DeviceBuffer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DeviceBuffer.class);
    private static final Cleaner CLEANER = Cleaner.create();

    private final DeviceAllocator owner;
    private final String name;
    private final long bytes;
    private final CUdeviceptr ptr;
    private final State state;
    private final Cleaner.Cleanable cleanable;
    final Throwable allocatedAt; // non-null with -Dpolar.gpu.debugAlloc=true

    /** Shared with the Cleaner: must not reference the buffer itself. */
    private static final class State implements Runnable {
        final String description;
        volatile boolean freed;

        State(String description) {
            this.description = description;
        }

        @Override
        public void run() {
            if (!freed) {
                LOG.error("A DEVICE BUFFER WAS LEAKED: {}", description);
            }
        }
    }

    DeviceBuffer(DeviceAllocator owner, String name, long bytes, CUdeviceptr ptr,
                 Throwable allocatedAt) {
        this.owner = owner;
        this.name = name;
        this.bytes = bytes;
        this.ptr = ptr;
        this.allocatedAt = allocatedAt;
        this.state = new State(owner.path() + "/" + name + " (" + bytes + " bytes)");
        this.cleanable = CLEANER.register(this, state);
    }

    public CUdeviceptr ptr() {
        if (state.freed) {
            throw new IllegalStateException("device buffer " + name + " was already freed");
        }
        return ptr;
    }

    /** A device pointer {@code offset} bytes into this buffer. */
    public CUdeviceptr at(long offset) {
        if (offset < 0 || offset > bytes) {
            throw new IndexOutOfBoundsException("offset " + offset + " in " + name + " of "
                    + bytes + " bytes");
        }
        return ptr().withByteOffset(offset);
    }

    public long bytes() {
        return bytes;
    }

    public String name() {
        return name;
    }

    public boolean isClosed() {
        return state.freed;
    }

    public void copyFrom(Pointer host, long n, CudaStream stream) {
        checkRange(n);
        Cuda.check(JCudaDriver.cuMemcpyHtoDAsync(ptr(), host, n, stream.handle()),
                "cuMemcpyHtoDAsync(" + name + ", " + n + " bytes)");
    }

    public void copyTo(Pointer host, long n, CudaStream stream) {
        checkRange(n);
        Cuda.check(JCudaDriver.cuMemcpyDtoHAsync(host, ptr(), n, stream.handle()),
                "cuMemcpyDtoHAsync(" + name + ", " + n + " bytes)");
    }

    public void zero(CudaStream stream) {
        zero(0, bytes, stream);
    }

    public void zero(long offset, long n, CudaStream stream) {
        if (offset < 0 || n < 0 || offset + n > bytes) {
            throw new IndexOutOfBoundsException("zero [" + offset + ", " + (offset + n)
                    + ") of " + name + " (" + bytes + " bytes)");
        }
        Cuda.check(JCudaDriver.cuMemsetD8Async(ptr().withByteOffset(offset), (byte) 0, n,
                stream.handle()), "cuMemsetD8Async(" + name + ")");
    }

    private void checkRange(long n) {
        if (n < 0 || n > bytes) {
            throw new IndexOutOfBoundsException(n + " bytes for " + name + " of " + bytes);
        }
    }

    @Override
    public void close() {
        if (state.freed) {
            return;
        }
        state.freed = true; // freed even if cuMemFree throws: never free twice
        cleanable.clean();
        try {
            Cuda.check(JCudaDriver.cuMemFree(ptr), "cuMemFree(" + name + ")");
        } finally {
            owner.released(this);
        }
    }
}
