package org.polarspark.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The kernel fatbins built from kernels/*.cu, shipped as resources of this jar, loaded into the
 * current context with cuModuleLoadData, and every launcher's functions resolved at once.
 * Families built for one architecture only (kernels/*_sm90a.cu: Hopper's wgmma) are loaded only
 * on a GPU of compute capability 9.0, and are optional: without them (other GPUs, a build
 * without sm_90, a load failure, or -D{@value #SM90A_PROPERTY}=false) the launchers use the
 * portable kernels, which give the same bits.
 *
 * <p>An image is of one {@link CudaDtype}: the bf16 fatbins ({@code <family>.fatbin}) or the
 * fp16 ones ({@code <family>_f16.fatbin}), built from the same sources with the same entry
 * points, so the launchers do not depend on the type. Each loaded module's
 * {@code polar_element_dtype} (common.cuh) is checked against the type asked for.
 */
public final class KernelImage implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(KernelImage.class);
    static final String ROOT = "/org/polarspark/cuda/kernels/";
    /** Suffix of the families compiled for sm_90a only (kernels/build.sh). */
    static final String SM90A_SUFFIX = "_sm90a";
    /** System property that turns the sm_90a kernels off (default on). */
    public static final String SM90A_PROPERTY = "polar.cuda.sm90a";

    private final CudaDtype dtype;
    private final Map<String, CudaModule> modules = new HashMap<>();
    public final EmbeddingKernel embedding;
    public final NormKernel norm;
    public final GemmKernel gemm;
    public final RopeKernel rope;
    public final KvAppendKernel kvAppend;
    public final AttentionKernel attention;
    public final PrefillAttentionKernel prefillAttention;
    public final LmHeadKernel lmHead;
    public final InitKernel init;
    public final RouterKernel router;
    public final SamplingKernel sampling;
    public final DecodeFusedKernel fused;

    /** The bf16 image: see {@link #KernelImage(CudaDtype)}. */
    public KernelImage() {
        this(CudaDtype.DEFAULT);
    }

    /**
     * Loads every family of the {@code dtype} image into the current context (call
     * {@link GpuContext#bind()} first).
     */
    public KernelImage(CudaDtype dtype) {
        this.dtype = dtype;
        List<String> files = familyFiles(index(), dtype);
        try {
            boolean hopper = computeCapability() == 90
                    && Boolean.parseBoolean(System.getProperty(SM90A_PROPERTY, "true"));
            for (String f : files) {
                String family = f.substring(0, f.length() - dtype.fileSuffix().length()
                        - ".fatbin".length());
                if (family.endsWith(SM90A_SUFFIX)) {
                    if (hopper) {
                        loadOptional(family, f);
                    }
                    continue;
                }
                modules.put(family, checked(new CudaModule(family, read(ROOT + f)), f));
            }
            embedding = new EmbeddingKernel(module("embedding"));
            norm = new NormKernel(module("norm"));
            gemm = new GemmKernel(module("gemm"), modules.get("gemm" + SM90A_SUFFIX));
            rope = new RopeKernel(module("rope"));
            kvAppend = new KvAppendKernel(module("kv_cache"));
            attention = new AttentionKernel(module("attention"));
            prefillAttention = new PrefillAttentionKernel(module("attention_prefill"));
            lmHead = new LmHeadKernel(module("lm_head"));
            init = new InitKernel(module("init"));
            router = new RouterKernel(module("router"));
            sampling = new SamplingKernel(module("sampling"));
            fused = new DecodeFusedKernel(module("decode_fused"));
        } catch (RuntimeException e) {
            close();
            throw e;
        }
        LOG.info("Loaded the {} kernel image: {} families ({})", dtype.wire(), modules.size(),
                files);
    }

    /** The element type of this image's weights, activations and KV cache. */
    public CudaDtype dtype() {
        return dtype;
    }

    /**
     * The fatbins of one element type from the index (which lists both types'):
     * {@code <family>.fatbin} for bf16, {@code <family>_f16.fatbin} for fp16.
     *
     * @throws IllegalStateException when the index has no fatbin of that type (a build that
     *                               predates the fp16 image)
     */
    static List<String> familyFiles(List<String> index, CudaDtype dtype) {
        List<String> out = new ArrayList<>();
        String fp16 = CudaDtype.FP16.fileSuffix() + ".fatbin";
        for (String f : index) {
            boolean isFp16 = f.endsWith(fp16);
            if (isFp16 == (dtype == CudaDtype.FP16) && f.endsWith(".fatbin")) {
                out.add(f);
            }
        }
        if (out.isEmpty()) {
            throw new IllegalStateException("this build's kernel image has no " + dtype.wire()
                    + " fatbins (kernels.index lists " + index + "): rebuild with "
                    + "kernels/build.sh, which compiles both element types");
        }
        return out;
    }

    /** The module, if it was built for this image's element type; closes it and throws if not. */
    private CudaModule checked(CudaModule m, String file) {
        int id;
        try {
            id = m.elementDtype();
        } catch (RuntimeException e) {
            m.close();
            throw e;
        }
        if (id != dtype.imageId()) {
            m.close();
            throw new IllegalStateException("kernel image " + file + " holds element type "
                    + id + " (0: bf16, 1: fp16) but the " + dtype.wire() + " image was asked "
                    + "for: the build's fatbins are mixed up; rebuild (mvn package)");
        }
        return m;
    }

    /** The fatbins this build contains; empty if it was built without nvcc. */
    public static List<String> index() {
        List<String> out = new ArrayList<>();
        try (InputStream in = KernelImage.class.getResourceAsStream(ROOT + "kernels.index")) {
            if (in != null) {
                for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8)
                        .split("\n")) {
                    if (!line.isBlank()) {
                        out.add(line.trim());
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        if (out.isEmpty()) {
            throw new IllegalStateException("this build has no CUDA kernel image: it was built "
                    + "without nvcc. Install the CUDA toolkit (nvcc on the PATH) and rebuild "
                    + "(mvn package) to use backend=cuda; see kernels/README.md");
        }
        return out;
    }

    /** Loads an architecture-specific family; on a (non-sticky) failure logs and goes on. */
    private void loadOptional(String family, String file) {
        try {
            modules.put(family, checked(new CudaModule(family, read(ROOT + file)), file));
        } catch (CudaFatalException e) {
            throw e;
        } catch (CudaException e) {
            LOG.warn("Not using {} ({}): the portable kernels run instead", file, e.getMessage());
        }
    }

    /** Compute capability of the current context's device, as 10 * major + minor. */
    private static int computeCapability() {
        jcuda.driver.CUdevice dev = new jcuda.driver.CUdevice();
        Cuda.check(jcuda.driver.JCudaDriver.cuCtxGetDevice(dev), "cuCtxGetDevice");
        int[] major = new int[1];
        int[] minor = new int[1];
        Cuda.check(jcuda.driver.JCudaDriver.cuDeviceGetAttribute(major,
                jcuda.driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev),
                "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MAJOR)");
        Cuda.check(jcuda.driver.JCudaDriver.cuDeviceGetAttribute(minor,
                jcuda.driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev),
                "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MINOR)");
        return 10 * major[0] + minor[0];
    }

    private CudaModule module(String family) {
        CudaModule m = modules.get(family);
        if (m == null) {
            throw new IllegalStateException("kernel image lacks " + family + ".fatbin (built from "
                    + "kernels/" + family + ".cu)");
        }
        return m;
    }

    private static byte[] read(String resource) {
        try (InputStream in = KernelImage.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException("kernel resource " + resource + " not found");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public void close() {
        for (CudaModule m : modules.values()) {
            m.close();
        }
        modules.clear();
    }
}
