package org.polarspark.cuda;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.JCudaDriver;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Named device memory accounting with limits and children (e.g. root -> weights, kv-cache,
 * scratch). Every allocation goes through one; {@link #close()} fails, listing the leaked
 * buffers, if any are still outstanding. {@code -Dpolar.gpu.debugAlloc=true} records where each
 * buffer was allocated and prints it with leaks.
 */
public final class DeviceAllocator implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DeviceAllocator.class);
    static final boolean DEBUG = Boolean.getBoolean("polar.gpu.debugAlloc");

    static {
        if (DEBUG) {
            LOG.info("polar.gpu.debugAlloc is on: device allocations record their stacks");
        }
    }

    private final String name;
    private final DeviceAllocator parent;
    private final long limit;
    private final Set<DeviceBuffer> live = new LinkedHashSet<>();
    private final List<DeviceAllocator> children = new ArrayList<>();
    private long allocated;
    private long peak;
    private boolean closed;

    private DeviceAllocator(String name, DeviceAllocator parent, long limit) {
        if (limit <= 0) {
            throw new IllegalArgumentException("allocator " + name + ": limit must be > 0");
        }
        this.name = name;
        this.parent = parent;
        this.limit = limit;
    }

    /** A root allocator for one context. */
    public static DeviceAllocator root(String name, long limit) {
        return new DeviceAllocator(name, null, limit);
    }

    public synchronized DeviceAllocator child(String childName, long childLimit) {
        ensureOpen();
        DeviceAllocator c = new DeviceAllocator(childName, this, Math.min(childLimit, limit));
        children.add(c);
        return c;
    }

    String path() {
        return parent == null ? name : parent.path() + "/" + name;
    }

    /** Allocates {@code bytes} of device memory (the context must be current). */
    public DeviceBuffer allocate(String what, long bytes) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("allocate " + what + ": " + bytes + " bytes");
        }
        reserve(what, bytes);
        CUdeviceptr p = new CUdeviceptr();
        int r = JCudaDriver.cuMemAlloc(p, bytes);
        if (r != 0) {
            unreserve(bytes);
            Cuda.check(r, "cuMemAlloc(" + path() + "/" + what + ", " + bytes + " bytes; "
                    + "allocator tree:\n" + root().tree());
        }
        DeviceBuffer b = new DeviceBuffer(this, what, bytes, p,
                DEBUG ? new Throwable("allocated here") : null);
        synchronized (this) {
            live.add(b);
        }
        return b;
    }

    private DeviceAllocator root() {
        return parent == null ? this : parent.root();
    }

    private synchronized void reserve(String what, long bytes) {
        ensureOpen();
        if (allocated + bytes > limit) {
            throw new CudaException("CUDA_ERROR_OUT_OF_MEMORY", "allocator " + path()
                    + " limit " + limit + " bytes: " + what + " needs " + bytes + " with "
                    + allocated + " already allocated");
        }
        if (parent != null) {
            parent.reserve(what, bytes);
        }
        allocated += bytes;
        peak = Math.max(peak, allocated);
    }

    private synchronized void unreserve(long bytes) {
        allocated -= bytes;
        if (parent != null) {
            parent.unreserve(bytes);
        }
    }

    synchronized void released(DeviceBuffer b) {
        if (live.remove(b)) {
            unreserve(b.bytes());
        }
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("allocator " + path() + " is closed");
        }
    }

    public synchronized long allocated() {
        return allocated;
    }

    public synchronized long peak() {
        return peak;
    }

    public synchronized long limit() {
        return limit;
    }

    /** The allocator tree as (allocated/peak/limit) lines, with outstanding buffers. */
    public synchronized String tree() {
        StringBuilder sb = new StringBuilder();
        tree(sb, "");
        return sb.toString();
    }

    private synchronized void tree(StringBuilder sb, String indent) {
        sb.append(indent).append(name).append(" (allocated ").append(allocated).append(", peak ")
                .append(peak).append(", limit ").append(limit).append(")\n");
        for (DeviceBuffer b : live) {
            sb.append(indent).append("  * ").append(b.name()).append(' ').append(b.bytes())
                    .append(" bytes\n");
            if (b.allocatedAt != null) {
                for (StackTraceElement e : b.allocatedAt.getStackTrace()) {
                    sb.append(indent).append("      at ").append(e).append('\n');
                }
            }
        }
        for (DeviceAllocator c : children) {
            c.tree(sb, indent + "  ");
        }
    }

    /** Closes children first; throws IllegalStateException naming leaked bytes if any remain. */
    @Override
    public void close() {
        String leaks;
        synchronized (this) {
            if (closed) {
                return;
            }
            for (DeviceAllocator c : new ArrayList<>(children)) {
                try {
                    c.close();
                } catch (IllegalStateException ignored) {
                    // reported below, with the whole tree
                }
            }
            leaks = allocated > 0 ? tree() : null;
            closed = true;
        }
        if (leaks != null) {
            throw new IllegalStateException("Device memory was leaked by " + path() + ": "
                    + allocated() + " bytes\n" + leaks);
        }
    }
}
