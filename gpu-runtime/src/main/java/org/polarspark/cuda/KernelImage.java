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
 */
public final class KernelImage implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(KernelImage.class);
    static final String ROOT = "/org/polarspark/cuda/kernels/";

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

    /** Loads every family into the current context (call {@link GpuContext#bind()} first). */
    public KernelImage() {
        List<String> files = index();
        try {
            for (String f : files) {
                String family = f.replace(".fatbin", "");
                modules.put(family, new CudaModule(family, read(ROOT + f)));
            }
            embedding = new EmbeddingKernel(module("embedding"));
            norm = new NormKernel(module("norm"));
            gemm = new GemmKernel(module("gemm"));
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
        LOG.info("Loaded kernel image: {} families ({})", modules.size(), files);
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
