package org.polarspark.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import jcuda.Pointer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.provider.Arguments;

/**
 * Base of the device tests: tagged gpu (excluded from the default build), skipped with a reason
 * where no GPU is usable, and failing if any device buffer is still allocated at the end.
 */
@Tag("gpu")
abstract class GpuTest {
    static GpuContext ctx;
    static KernelImage kernels;
    static DeviceAllocator alloc;
    static CudaStream stream;
    static final List<DeviceBuffer> buffers = new ArrayList<>();
    /** Kernel images of the other element types, loaded when a test first asks. */
    private static final Map<CudaDtype, KernelImage> images = new EnumMap<>(CudaDtype.class);

    /** The kernel image of an element type ({@link #kernels} for bf16). */
    static KernelImage kernels(CudaDtype dtype) {
        return dtype == CudaDtype.BF16 ? kernels
                : images.computeIfAbsent(dtype, KernelImage::new);
    }

    /** Every argument list once per element type, the type first. */
    static Stream<Arguments> everyDtype(Stream<Arguments> cases) {
        List<Arguments> all = cases.toList();
        return Arrays.stream(CudaDtype.values()).flatMap(d -> all.stream().map(a -> {
            Object[] in = a.get();
            Object[] out = new Object[in.length + 1];
            out[0] = d;
            System.arraycopy(in, 0, out, 1, in.length);
            return Arguments.of(out);
        }));
    }

    @BeforeAll
    static void openGpu() {
        assumeTrue(GpuContext.isAvailable(), "no CUDA device or driver on this machine");
        if (ctx == null) {
            ctx = new GpuContext(0);
            kernels = new KernelImage();
            alloc = DeviceAllocator.root("test", ctx.totalMemory());
            stream = new CudaStream();
        }
        ctx.bind();
    }

    @AfterAll
    static void freeAll() {
        if (ctx == null) {
            return;
        }
        stream.synchronize();
        for (DeviceBuffer b : buffers) {
            b.close();
        }
        buffers.clear();
        assertEquals(0, alloc.allocated(), "device memory leaked:\n" + alloc.tree());
    }

    static DeviceBuffer bf16(float[] a) {
        return dev16(CudaDtype.BF16, a);
    }

    /** The values in {@code dtype} on the device (rounded to nearest even). */
    static DeviceBuffer dev16(CudaDtype dtype, float[] a) {
        ByteBuffer b = dtype.pack(a);
        DeviceBuffer d = alloc.allocate(dtype.wire(), Math.max(2, b.capacity()));
        d.copyFrom(Pointer.to(b), b.capacity(), stream);
        stream.synchronize();
        buffers.add(d);
        return d;
    }

    static DeviceBuffer f32(float[] a) {
        DeviceBuffer d = alloc.allocate("f32", Math.max(4, a.length * 4L));
        d.copyFrom(Pointer.to(a), a.length * 4L, stream);
        buffers.add(d);
        return d;
    }

    static DeviceBuffer i32(int[] a) {
        DeviceBuffer d = alloc.allocate("i32", Math.max(4, a.length * 4L));
        d.copyFrom(Pointer.to(a), a.length * 4L, stream);
        buffers.add(d);
        return d;
    }

    static DeviceBuffer zeros(long bytes) {
        DeviceBuffer d = alloc.allocate("zeros", bytes);
        d.zero(stream);
        buffers.add(d);
        return d;
    }

    static float[] readF32(DeviceBuffer d, int n) {
        float[] out = new float[n];
        d.copyTo(Pointer.to(out), n * 4L, stream);
        stream.synchronize();
        return out;
    }

    static int[] readI32(DeviceBuffer d, int n) {
        int[] out = new int[n];
        d.copyTo(Pointer.to(out), n * 4L, stream);
        stream.synchronize();
        return out;
    }

    static float[] readBf16(DeviceBuffer d, int n) {
        return read16(CudaDtype.BF16, d, n);
    }

    /** n values of {@code dtype} from the device, widened to float. */
    static float[] read16(CudaDtype dtype, DeviceBuffer d, int n) {
        ByteBuffer b = ByteBuffer.allocateDirect(n * 2).order(ByteOrder.LITTLE_ENDIAN);
        d.copyTo(Pointer.to(b), n * 2L, stream);
        stream.synchronize();
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            out[i] = dtype.toFloat(b.getShort(i * 2));
        }
        return out;
    }

    /**
     * Combined absolute + relative check; the failure names the op, shape, worst index and error.
     */
    static void assertClose(String what, float[] expected, float[] actual, double atol,
                            double rtol) {
        assertEquals(expected.length, actual.length, what + ": length");
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(expected[i] - actual[i]);
            double excess = err - (atol + rtol * Math.abs(expected[i]));
            if (excess > worstExcess || Double.isNaN(actual[i])) {
                worstExcess = Double.isNaN(actual[i]) ? Double.POSITIVE_INFINITY : excess;
                worst = i;
            }
        }
        if (worst >= 0) {
            throw new AssertionError(String.format("%s: index %d expected %.6g got %.6g "
                    + "(|err| %.3g > atol %.1g + rtol %.1g * |expected|)", what, worst,
                    expected[worst], actual[worst], Math.abs(expected[worst] - actual[worst]),
                    atol, rtol));
        }
    }

    static float[] random(java.util.Random r, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextGaussian() * scale);
        }
        return a;
    }
}
