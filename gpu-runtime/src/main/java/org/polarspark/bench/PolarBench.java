package org.polarspark.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.ZonedDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.stream.Collectors;
import jcuda.Pointer;
import jcuda.driver.JCudaDriver;
import org.polarspark.cuda.Cuda;
import org.polarspark.cuda.CudaDecoder;
import org.polarspark.cuda.CudaEvent;
import org.polarspark.cuda.CudaGraph;
import org.polarspark.cuda.CudaSequence;
import org.polarspark.cuda.CudaStream;
import org.polarspark.cuda.DeviceAllocator;
import org.polarspark.cuda.DeviceBuffer;
import org.polarspark.cuda.DeviceRouters;
import org.polarspark.cuda.GemmKernel;
import org.polarspark.cuda.GpuContext;
import org.polarspark.cuda.CudaDtype;
import org.polarspark.cuda.KernelImage;
import org.polarspark.cuda.LmHeadKernel;
import org.polarspark.generate.TokenScores;
import org.polarspark.polar.SparsityPolicy;

/**
 * polar-bench: decode-step time of synthetic models of real shapes against the memory roofline,
 * and GEMM throughput, on one GPU. Prints a table and writes JSON and Markdown.
 *
 * <pre>
 * polar-bench [--models opt-6.7b,llama-2-7b,llama-3-8b] [--iters 30] [--warmup 5]
 *             [--out bench/results] [--gpu 0] [--only all|gemm|sampling|decode|scoring]
 *             [--polar true]
 *             [--batches 1,32] [--profile dense|polar] [--dtype bf16|fp16]
 * </pre>
 *
 * {@code --dtype}: the element type of weights, activations and KV cache (default bf16; fp16
 * loads the fp16 kernel image, and the random weights and KV are generated in fp16 by its init
 * kernel). Bytes per element are 2 in both, so the roofline is the same.
 *
 * {@code --profile dense} or {@code --profile polar}: for profilers (ncu, nsys), only that decode
 * step of each model and batch is captured and replayed ({@code warmup + iters} times); nothing
 * else runs and no results are written.
 *
 * Definitions. GEMM ms: device time of {@code iters} launches captured as one graph, per launch
 * (median of 5 replays), cycling through weight copies that together exceed L2 so that each
 * launch reads its weights from memory; host launch ms: the same launches issued from the host
 * back to back (what sessions up to 16 reported as GEMM ms; at small M it is the host's time).
 * step ms: median device time of one captured decode step (all layers, LM head and device
 * argmax) over {@code iters} graph replays after {@code warmup}. bytes: every weight once plus
 * the K and V the step attends to (batch x context x layers x 2 x kvDim x 2 bytes).
 * With --polar: the same step with random head routers at the shape's density (layer 0 dense;
 * MLP dense), its speedup, its own roofline ratio (bytes it reads: weights, router weights and the
 * K/V of the selected groups only), router time as a fraction of the step, alone (router GEMMs
 * and top-k replayed by themselves) and exposed (the Polar step minus the same step captured
 * without its router kernels, reusing the selections the routed step left: what the step does not
 * hide of the routers, the MLP router running beside attention on its own stream), and one
 * layer's attention alone at densities 1.0, 0.5 and 0.3 against dense.
 * sampling ({@code --only sampling}, and in {@code all}): the token choice after the LM head
 * alone (device argmax, and the sampling kernel with temperature, top-k, top-p) on random fp32
 * logits of llama-2's and llama-3's vocabularies for 1, 16 and 48 rows.
 * scoring ({@code --only scoring}, and in {@code all}): log-likelihoods of 8 random prompts of 128
 * tokens with their last 32 positions scored, the logits copied to the host and log-softmaxed
 * there against log-probabilities computed on the device (see {@link #scoringBench}).
 * bandwidth: device-to-device copy of 2 GiB measured in the same run, counting bytes read plus
 * bytes written. roofline ratio: step ms / (bytes / bandwidth): 1.0 is the memory bound.
 */
public final class PolarBench {
    private PolarBench() {
    }

    public static void main(String[] args) throws IOException {
        Map<String, String> opt = parse(args);
        List<String> models = Arrays.asList(opt.getOrDefault("models",
                "llama-2-7b,opt-6.7b,llama-3-8b").split(","));
        int iters = Integer.parseInt(opt.getOrDefault("iters", "30"));
        int warmup = Integer.parseInt(opt.getOrDefault("warmup", "5"));
        Path out = Path.of(opt.getOrDefault("out", "bench/results"));
        int gpu = Integer.parseInt(opt.getOrDefault("gpu", "0"));
        String only = opt.getOrDefault("only", "all"); // all, gemm, sampling, decode or scoring
        if (!Set.of("all", "gemm", "sampling", "decode", "scoring").contains(only)) {
            throw new IllegalArgumentException("--only takes all, gemm, sampling, decode or "
                    + "scoring, got '" + only + "'");
        }
        boolean polar = Boolean.parseBoolean(opt.getOrDefault("polar", "false"));
        CudaDtype dtype = CudaDtype.parse(opt.getOrDefault("dtype", CudaDtype.DEFAULT.wire()));
        // Optional subset of each shape's batch sizes (e.g. --batches 1,32), for profiling runs.
        String profile = opt.get("profile"); // null, "dense" or "polar"
        if (profile != null && !profile.equals("dense") && !profile.equals("polar")) {
            throw new IllegalArgumentException("--profile takes dense or polar, got '" + profile
                    + "'");
        }
        Set<Integer> onlyBatches = opt.containsKey("batches") ? Arrays.stream(
                opt.get("batches").split(",")).map(String::trim).map(Integer::valueOf)
                .collect(Collectors.toSet()) : null;

        Map<String, Object> report = new LinkedHashMap<>();
        List<Map<String, Object>> decode = new ArrayList<>();
        List<Map<String, Object>> gemm = new ArrayList<>();
        List<Map<String, Object>> attention = new ArrayList<>();
        List<Map<String, Object>> scoring = new ArrayList<>();
        List<Map<String, Object>> sampling = new ArrayList<>();
        try (GpuContext ctx = new GpuContext(gpu); KernelImage k = new KernelImage(dtype)) {
            DeviceAllocator root = DeviceAllocator.root("bench", ctx.totalMemory());
            double bw = copyBandwidth(root, iters);
            report.put("gpu", ctx.name());
            report.put("date", ZonedDateTime.now(ZoneOffset.UTC).toString());
            report.put("dtype", dtype.wire());
            report.put("copy_bandwidth_GBps", bw / 1e9);
            System.out.printf(Locale.ROOT, "GPU %s, %s, device copy bandwidth %.0f GB/s (read "
                    + "+ write)%n", ctx.name(), dtype.wire(), bw / 1e9);
            if ((only.equals("all") || only.equals("gemm")) && profile == null) {
                gemm.addAll(gemmBench(root, k, iters, warmup));
            }
            if ((only.equals("all") || only.equals("sampling")) && profile == null) {
                sampling.addAll(samplingBench(root, k, iters, warmup));
            }
            for (String name : only.equals("gemm") || only.equals("sampling") ? List.<String>of()
                    : models) {
                BenchShapes s = BenchShapes.byName(name.trim());
                int maxB = s.batches().stream().mapToInt(Integer::intValue).max().orElse(1);
                long perBlock = 2L * s.config().numLayers() * s.config().kvDim()
                        * CudaDecoder.BLOCK_SIZE * 2;
                long blocks = (long) maxB * ((s.context() + CudaDecoder.BLOCK_SIZE - 1)
                        / CudaDecoder.BLOCK_SIZE);
                // With --polar, OPT stores fc2 neuron-major for the sparse MLP, and its dense rows
                // use the same [K, N] fc2 GEMM over every neuron.
                boolean neuronMajor = polar && s.config().reluMlp();
                try (CudaDecoder dec = CudaDecoder.synthetic(ctx, k, root, s.config(), 42,
                        Math.max(64, maxB), maxB, blocks * perBlock, neuronMajor)) {
                    dec.fillKvRandom(7);
                    if (only.equals("scoring")) {
                        scoring.add(scoringBench(dec, s, maxB));
                        continue;
                    }
                    for (int b : s.batches()) {
                        if (onlyBatches != null && !onlyBatches.contains(b)) {
                            continue;
                        }
                        if (profile != null) {
                            try (DeviceRouters routers = profile.equals("polar")
                                    ? polarRouters(dec, s) : null) {
                                System.out.printf(Locale.ROOT, "%-11s N=%5d B=%3d  %s step "
                                        + "(profile) %8.3f ms%n", s.name(), s.context(), b,
                                        profile, median(dec.benchDecode(b, s.context(), warmup,
                                                iters, 11, routers)));
                                for (String line : dec.timeline()) {
                                    System.out.println("timeline " + line);
                                }
                            }
                            continue;
                        }
                        float[] ms = dec.benchDecode(b, s.context(), warmup, iters, 11, null);
                        double med = median(ms);
                        long bytes = dec.decodeBytes(b, s.context());
                        double ratio = med / 1e3 / (bytes / bw);
                        Map<String, Object> row = new LinkedHashMap<>();
                        row.put("model", s.name());
                        row.put("context", s.context());
                        row.put("batch", b);
                        row.put("step_ms", med);
                        row.put("tokens_per_s", b / (med / 1e3));
                        row.put("bytes_read", bytes);
                        row.put("roofline_ratio", ratio);
                        row.put("target_ratio", b == 1 ? 1.25 : 1.10);
                        System.out.printf(Locale.ROOT, "%-11s N=%5d B=%3d  step %8.3f ms  %9.1f "
                                + "tok/s  %6.2f GB  roofline x%.2f%n", s.name(), s.context(), b,
                                med, b / (med / 1e3), bytes / 1e9, ratio);
                        if (polar) {
                            try (DeviceRouters routers = polarRouters(dec, s)) {
                                double pm = median(dec.benchDecode(b, s.context(), warmup, iters,
                                        11, routers));
                                double rm = median(dec.benchRouters(b, routers, warmup, iters));
                                double fm = median(dec.benchDecodeFrozenRouters(b, s.context(),
                                        warmup, iters, 11, routers));
                                long pbytes = dec.polarDecodeBytes(b, s.context(), routers);
                                row.put("polar_head_density", s.polarDensity());
                                row.put("polar_mlp_k_fraction", (double) routers.mlpK(1, b)
                                        / s.config().ffnDim());
                                row.put("polar_step_ms", pm);
                                row.put("polar_speedup", med / pm);
                                row.put("polar_bytes_read", pbytes);
                                row.put("polar_roofline_ratio", pm / 1e3 / (pbytes / bw));
                                row.put("router_ms", rm);
                                row.put("router_fraction", rm / pm);
                                row.put("step_without_routers_ms", fm);
                                row.put("router_exposed_ms", pm - fm);
                                row.put("router_exposed_fraction", (pm - fm) / pm);
                                System.out.printf(Locale.ROOT, "%-11s N=%5d B=%3d  polar(heads %.3f)"
                                        + " %8.3f ms  speedup x%.2f  %6.2f GB  roofline x%.2f  "
                                        + "routers %.1f%% alone, %.1f%% exposed%n", s.name(),
                                        s.context(), b, s.polarDensity(), pm, med / pm,
                                        pbytes / 1e9, pm / 1e3 / (pbytes / bw), 100 * rm / pm,
                                        100 * (pm - fm) / pm);
                            }
                        }
                        decode.add(row);
                    }
                    if (profile != null) {
                        continue;
                    }
                    {
                        double a1 = median(dec.benchAttention(1, s.context(), 1.0, warmup, iters,
                                3));
                        System.out.printf(Locale.ROOT, "%-11s N=%5d B=  1  attention (one layer,"
                                + " dense): %.4f ms%n", s.name(), s.context(), a1);
                    }
                    if (polar) {
                        int b = s.batches().get(s.batches().size() - 1);
                        double dense = median(dec.benchAttention(b, s.context(), 1.0, warmup,
                                iters, 3));
                        for (double d : new double[] {1.0, 0.5, 0.3}) {
                            double am = median(dec.benchAttention(b, s.context(), d, warmup, iters,
                                    3));
                            Map<String, Object> row = new LinkedHashMap<>();
                            row.put("model", s.name());
                            row.put("context", s.context());
                            row.put("batch", b);
                            row.put("density", d);
                            row.put("attention_ms", am);
                            row.put("vs_dense", am / dense);
                            attention.add(row);
                            System.out.printf(Locale.ROOT, "%-11s N=%5d B=%3d  attention (one "
                                    + "layer) density %.1f: %.4f ms = x%.2f of dense%n", s.name(),
                                    s.context(), b, d, am, am / dense);
                        }
                    }
                    if (only.equals("all")) {
                        scoring.add(scoringBench(dec, s, maxB));
                    }
                }
            }
            root.close();
        }
        if (profile != null) {
            return;
        }
        report.put("decode", decode);
        report.put("gemm", gemm);
        report.put("attention", attention);
        report.put("scoring", scoring);
        report.put("sampling", sampling);
        write(out, report);
    }

    /** Scoring bench: rows, prompt tokens each, and the scored last positions of each. */
    static final int SCORE_ROWS = 8;
    static final int SCORE_PROMPT = 128;
    static final int SCORE_LAST = 32;
    static final int SCORE_REPEATS = 5;

    /**
     * Scoring (log-likelihoods, as lm-eval's loglikelihood asks): SCORE_ROWS random prompts of
     * SCORE_PROMPT tokens, each with its last SCORE_LAST positions scored on random targets, two
     * ways on the same decoder: the logits of every scored position copied to the host and
     * log-softmaxed there ({@link CudaDecoder#forward} + {@link TokenScores#fromLogits}), and on
     * the device ({@link CudaDecoder#score}). Wall ms (median of SCORE_REPEATS after one
     * warm-up, fresh sequences each time: prefill included) and the largest log-probability
     * difference between the two.
     */
    static Map<String, Object> scoringBench(CudaDecoder dec, BenchShapes s, int maxRows) {
        int rows = Math.min(SCORE_ROWS, maxRows);
        int vocab = s.config().vocabSize();
        Random rnd = new Random(3);
        int[][] toks = new int[rows][SCORE_PROMPT];
        int[][] targets = new int[rows][SCORE_LAST];
        int[] last = new int[rows];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < SCORE_PROMPT; i++) {
                toks[r][i] = rnd.nextInt(vocab);
            }
            for (int i = 0; i < SCORE_LAST; i++) {
                targets[r][i] = rnd.nextInt(vocab);
            }
            last[r] = SCORE_LAST;
        }
        float[] hostMs = new float[SCORE_REPEATS];
        float[] deviceMs = new float[SCORE_REPEATS];
        double worst = 0;
        for (int it = -1; it < SCORE_REPEATS; it++) {
            List<CudaSequence> a = open(dec, rows, SCORE_PROMPT);
            long t0 = System.nanoTime();
            TokenScores host = TokenScores.fromLogits(dec.forward(a, toks, last,
                    SparsityPolicy.DENSE), targets);
            long t1 = System.nanoTime();
            a.forEach(dec::close);
            List<CudaSequence> b = open(dec, rows, SCORE_PROMPT);
            long t2 = System.nanoTime();
            TokenScores device = dec.score(b, toks, targets, SparsityPolicy.DENSE);
            long t3 = System.nanoTime();
            b.forEach(dec::close);
            if (it >= 0) {
                hostMs[it] = (t1 - t0) / 1e6f;
                deviceMs[it] = (t3 - t2) / 1e6f;
            }
            for (int r = 0; r < rows; r++) {
                for (int i = 0; i < SCORE_LAST; i++) {
                    worst = Math.max(worst, Math.abs(host.logprob()[r][i]
                            - device.logprob()[r][i]));
                }
            }
        }
        double hm = median(hostMs);
        double dm = median(deviceMs);
        Map<String, Object> row = new LinkedHashMap<>();
        row.put("model", s.name());
        row.put("rows", rows);
        row.put("prompt_tokens", SCORE_PROMPT);
        row.put("scored_positions", SCORE_LAST);
        row.put("host_logsoftmax_ms", hm);
        row.put("device_logprob_ms", dm);
        row.put("speedup", hm / dm);
        row.put("max_abs_logprob_diff", worst);
        System.out.printf(Locale.ROOT, "%-11s scoring %d x %d tokens, last %d scored: logits to "
                + "the host %.1f ms, log-probabilities on the device %.1f ms (x%.2f), largest "
                + "difference %.2e%n", s.name(), rows, SCORE_PROMPT, SCORE_LAST, hm, dm, hm / dm,
                worst);
        return row;
    }

    private static List<CudaSequence> open(CudaDecoder dec, int rows, int capacity) {
        List<CudaSequence> out = new ArrayList<>(rows);
        for (int r = 0; r < rows; r++) {
            out.add(dec.open(capacity));
        }
        return out;
    }

    /** OPT-6.7B's calibrated MLP k table of the paper (mean k / ffn by batch size). */
    static final int[] MLP_BUCKETS = {1, 8, 16, 32, 64, 128, 256};
    static final double[] MLP_FRACTIONS = {0.095, 0.29, 0.40, 0.52, 0.62, 0.70, 0.77};
    /** The MLP router's rank in the paper (d -> 1024 -> ffn). */
    static final int MLP_RANK = 1024;

    /** Random head routers at the shape's density, plus MLP routers for ReLU models. */
    static DeviceRouters polarRouters(CudaDecoder dec, BenchShapes s) {
        DeviceRouters r = DeviceRouters.random(dec, s.polarDensity(), 99);
        if (s.config().reluMlp()) {
            r.withRandomMlp(dec, MLP_RANK, MLP_BUCKETS, MLP_FRACTIONS, 7);
        }
        return r;
    }

    /** D2D copy of 2 GiB: (read + written bytes) / median time. */
    static double copyBandwidth(DeviceAllocator root, int iters) {
        long n = 2L << 30;
        try (DeviceBuffer a = root.allocate("copy.src", n); DeviceBuffer b = root.allocate(
                "copy.dst", n); CudaStream s = new CudaStream(); CudaEvent t0 = new CudaEvent();
             CudaEvent t1 = new CudaEvent()) {
            float[] ms = new float[iters];
            for (int i = -2; i < iters; i++) {
                t0.record(s);
                Cuda.check(JCudaDriver.cuMemcpyDtoDAsync(b.ptr(), a.ptr(), n, s.handle()),
                        "cuMemcpyDtoDAsync");
                t1.record(s);
                t1.synchronize();
                if (i >= 0) {
                    ms[i] = t1.elapsedSince(t0);
                }
            }
            return 2.0 * n / (median(ms) / 1e3);
        }
    }

    /** Bytes of weight copies a GEMM bench shape cycles through (five times an H100's L2). */
    static final long GEMM_ROTATE_BYTES = 256L << 20;

    static List<Map<String, Object>> gemmBench(DeviceAllocator root, KernelImage k, int iters,
                                               int warmup) {
        int[][] shapes = {{4096, 4096, 4096}, {1, 4096, 4096}, {16, 4096, 4096},
            {64, 4096, 4096}, {64, 22016, 4096}, {64, 4096, 11008}};
        List<Map<String, Object>> rows = new ArrayList<>();
        try (CudaStream s = new CudaStream(); CudaEvent t0 = new CudaEvent();
             CudaEvent t1 = new CudaEvent()) {
            for (int[] sh : shapes) {
                int m = sh[0];
                int n = sh[1];
                int kk = sh[2];
                // Weight copies cycled through so that together they exceed L2 (50 MB on an
                // H100): each launch streams its weights from memory, as in a decode step.
                long wBytes = 2L * n * kk;
                int copies = (int) Math.max(1, (GEMM_ROTATE_BYTES + wBytes - 1) / wBytes);
                List<DeviceBuffer> ws = new ArrayList<>();
                try (DeviceBuffer work = root.allocate("gemm.work", 64L << 20);
                     DeviceBuffer a = root.allocate("gemm.a", 2L * m * kk);
                     DeviceBuffer o = root.allocate("gemm.out", 2L * m * n)) {
                    k.init.uniformBf16(s, a, (long) m * kk, 1, 1f);
                    // The launches captured as one graph and replayed: device time only, none of
                    // the host's per-launch work (argument checks, tensor maps), as in the
                    // captured decode step. Back-to-back host launches (sessions <= 16) measured
                    // the host at small M: M=1 took 0.12-0.29 ms for 32 MB of weights.
                    float[] ms = new float[5];
                    float[] hostMs = new float[5];
                    try {
                        for (int c = 0; c < copies; c++) {
                            ws.add(root.allocate("gemm.w" + c, wBytes));
                            k.init.uniformBf16(s, ws.get(c), (long) n * kk, 2 + c, 0.02f);
                        }
                        s.synchronize();
                        java.util.function.IntConsumer launch = i -> k.gemm.run(
                                GemmKernel.Epilogue.STORE_BF16, s, a, kk, ws.get(i % ws.size()),
                                kk, null, o, n, m, n, kk, work);
                        benchGraph(s, t0, t1, ms, iters, warmup, "gemm bench " + m + "x" + n
                                + "x" + kk, launch);
                        timeReps(s, t0, t1, hostMs, iters, () -> {
                            for (int i = 0; i < iters; i++) {
                                launch.accept(i);
                            }
                        });
                    } finally {
                        ws.forEach(DeviceBuffer::close);
                    }
                    double med = median(ms);
                    double tflops = 2.0 * m * n * kk / (med / 1e3) / 1e12;
                    double gbps = 2.0 * ((long) n * kk + (long) m * kk + (long) m * n)
                            / (med / 1e3) / 1e9;
                    Map<String, Object> row = new LinkedHashMap<>();
                    row.put("M", m);
                    row.put("N", n);
                    row.put("K", kk);
                    row.put("ms", med);
                    row.put("TFLOPs", tflops);
                    row.put("GBps", gbps);
                    row.put("host_launch_ms", median(hostMs));
                    row.put("weight_copies", copies);
                    rows.add(row);
                    System.out.printf(Locale.ROOT, "GEMM M=%5d N=%5d K=%5d  %8.4f ms  %7.1f "
                            + "TFLOP/s  %7.0f GB/s  (host launches %.4f ms)%n", m, n, kk, med,
                            tflops, gbps, median(hostMs));
                }
            }
        }
        return rows;
    }

    /** A token choice of the sampling bench: temperature 0 is the device argmax. */
    record SampleMode(String name, float temperature, int topK, float topP) {
    }

    /** Sampling bench: vocabularies (llama-2's, llama-3's) and rows. */
    static final int[] SAMPLE_VOCABS = {32000, 128256};
    static final int[] SAMPLE_ROWS = {1, 16, 48};

    /**
     * The token choice after the LM head, alone, on random fp32 logits (N(0, 3^2)): the device
     * argmax that greedy rows take, and the sampling kernel with temperature 1 and nothing
     * else, with top-p 0.95, and with temperature 0.8, top-k 50 and top-p 0.9 (every row the
     * same). Device ms per launch, graph-replayed as the GEMM rows.
     */
    static List<Map<String, Object>> samplingBench(DeviceAllocator root, KernelImage k,
                                                   int iters, int warmup) {
        List<SampleMode> modes = List.of(new SampleMode("argmax", 0f, 0, 1f),
                new SampleMode("T=1", 1f, 0, 1f), new SampleMode("T=1 top-p 0.95", 1f, 0, 0.95f),
                new SampleMode("T=0.8 top-k 50 top-p 0.9", 0.8f, 50, 0.9f));
        List<Map<String, Object>> rows = new ArrayList<>();
        int maxRows = Arrays.stream(SAMPLE_ROWS).max().getAsInt();
        for (int vocab : SAMPLE_VOCABS) {
            try (CudaStream s = new CudaStream(); CudaEvent t0 = new CudaEvent();
                 CudaEvent t1 = new CudaEvent();
                 DeviceBuffer logits = root.allocate("sample.logits", 4L * maxRows * vocab);
                 DeviceBuffer q = root.allocate("sample.q", 4L * maxRows * vocab);
                 DeviceBuffer temp = root.allocate("sample.temperature", 4L * maxRows);
                 DeviceBuffer topK = root.allocate("sample.top_k", 4L * maxRows);
                 DeviceBuffer topP = root.allocate("sample.top_p", 4L * maxRows);
                 DeviceBuffer seeds = root.allocate("sample.seeds", 8L * maxRows);
                 DeviceBuffer steps = root.allocate("sample.steps", 4L * maxRows);
                 DeviceBuffer ids = root.allocate("sample.ids", 4L * maxRows);
                 DeviceBuffer lp = root.allocate("sample.logprob", 4L * maxRows);
                 DeviceBuffer part = root.allocate("sample.part",
                         LmHeadKernel.partBytes(maxRows, vocab));
                 DeviceBuffer counters = root.allocate("sample.counters", 4L * maxRows)) {
                Random rnd = new Random(vocab);
                float[] l = new float[maxRows * vocab];
                for (int i = 0; i < l.length; i++) {
                    l[i] = (float) (3 * rnd.nextGaussian());
                }
                logits.copyFrom(Pointer.to(l), 4L * l.length, s);
                long[] seed = new long[maxRows];
                int[] step = new int[maxRows];
                for (int r = 0; r < maxRows; r++) {
                    seed[r] = 1000 + r;
                    step[r] = r;
                }
                seeds.copyFrom(Pointer.to(seed), 8L * maxRows, s);
                steps.copyFrom(Pointer.to(step), 4L * maxRows, s);
                counters.zero(s);
                for (SampleMode mode : modes) {
                    boolean argmax = mode.temperature() == 0f;
                    if (!argmax) {
                        float[] tv = new float[maxRows];
                        int[] kv = new int[maxRows];
                        float[] pv = new float[maxRows];
                        Arrays.fill(tv, mode.temperature());
                        Arrays.fill(kv, mode.topK());
                        Arrays.fill(pv, mode.topP());
                        temp.copyFrom(Pointer.to(tv), 4L * maxRows, s);
                        topK.copyFrom(Pointer.to(kv), 4L * maxRows, s);
                        topP.copyFrom(Pointer.to(pv), 4L * maxRows, s);
                    }
                    s.synchronize();
                    for (int n : SAMPLE_ROWS) {
                        float[] ms = new float[5];
                        benchGraph(s, t0, t1, ms, iters, warmup, "sampling " + mode.name() + ", "
                                + n + " rows", i -> {
                                    if (argmax) {
                                        k.lmHead.argmax(s, logits, n, vocab, ids, lp, part,
                                                counters);
                                    } else {
                                        k.sampling.sample(s, logits, n, vocab, temp, topK, topP,
                                                seeds, steps, q, ids, lp);
                                    }
                                });
                        double med = median(ms);
                        Map<String, Object> row = new LinkedHashMap<>();
                        row.put("vocab", vocab);
                        row.put("rows", n);
                        row.put("mode", mode.name());
                        row.put("ms", med);
                        rows.add(row);
                        System.out.printf(Locale.ROOT, "token choice V=%6d rows=%2d  %-26s "
                                + "%8.4f ms%n", vocab, n, mode.name(), med);
                    }
                }
            }
        }
        return rows;
    }

    /**
     * Captures {@code iters} calls of {@code launch} (given the call's index) as one graph,
     * replays it {@code max(1, warmup)} times, then times ms.length replays: ms[r] = replay r's
     * device time / iters.
     */
    static void benchGraph(CudaStream s, CudaEvent t0, CudaEvent t1, float[] ms, int iters,
                           int warmup, String what, java.util.function.IntConsumer launch) {
        try (CudaGraph g = CudaGraph.capture(s, () -> {
            for (int i = 0; i < iters; i++) {
                launch.accept(i);
            }
        }, what)) {
            for (int i = 0; i < Math.max(1, warmup); i++) {
                g.launch(s);
            }
            timeReps(s, t0, t1, ms, iters, () -> g.launch(s));
        }
    }

    /** ms[r] = device time of what {@code body} enqueues on s, the r-th time, / perCall. */
    static void timeReps(CudaStream s, CudaEvent t0, CudaEvent t1, float[] ms, int perCall,
                         Runnable body) {
        for (int rep = 0; rep < ms.length; rep++) {
            t0.record(s);
            body.run();
            t1.record(s);
            t1.synchronize();
            ms[rep] = t1.elapsedSince(t0) / perCall;
        }
    }

    static double median(float[] a) {
        float[] c = a.clone();
        Arrays.sort(c);
        return c.length % 2 == 1 ? c[c.length / 2] : (c[c.length / 2 - 1] + c[c.length / 2]) / 2.0;
    }

    @SuppressWarnings("unchecked")
    static void write(Path out, Map<String, Object> report) throws IOException {
        Files.createDirectories(out);
        String stamp = ((String) report.get("date")).substring(0, 10);
        String gpuName = ((String) report.get("gpu")).replaceAll("[^A-Za-z0-9]+", "-")
                + ("fp16".equals(report.get("dtype")) ? "-fp16" : "");
        Path json = out.resolve("decode-" + gpuName + "-" + stamp + ".json");
        new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(json.toFile(),
                report);
        StringBuilder md = new StringBuilder();
        md.append("# polar-bench: dense decode step vs memory roofline\n\n");
        md.append("GPU: ").append(report.get("gpu")).append(", ").append(report.get("dtype"))
                .append(", date: ").append(report.get("date"))
                .append(String.format(Locale.ROOT, ", device copy bandwidth %.0f GB/s",
                        (double) report.get("copy_bandwidth_GBps"))).append("\n\n");
        md.append("| model | context | batch | step ms | tokens/s | GB read | roofline ratio |"
                + " target |\n|---|---|---|---|---|---|---|---|\n");
        for (Map<String, Object> r : (List<Map<String, Object>>) report.get("decode")) {
            md.append(String.format(Locale.ROOT, "| %s | %d | %d | %.3f | %.1f | %.2f | %.2f | "
                            + "<= %.2f |%n", r.get("model"), r.get("context"), r.get("batch"),
                    r.get("step_ms"), r.get("tokens_per_s"), ((long) r.get("bytes_read")) / 1e9,
                    r.get("roofline_ratio"), r.get("target_ratio")));
        }
        List<Map<String, Object>> dec = (List<Map<String, Object>>) report.get("decode");
        if (!dec.isEmpty() && dec.get(0).containsKey("polar_step_ms")) {
            md.append("\n| model | context | batch | head density | MLP k / ffn | dense ms | "
                    + "Polar ms | speedup | Polar GB | Polar roofline | routers alone, % of step |"
                    + " routers exposed, % of step |\n"
                    + "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
            for (Map<String, Object> r : dec) {
                md.append(String.format(Locale.ROOT, "| %s | %d | %d | %.3f | %.3f | %.3f | %.3f |"
                                + " %.2f | %.2f | %.2f | %.1f | %.1f |%n", r.get("model"),
                        r.get("context"),
                        r.get("batch"), r.get("polar_head_density"),
                        r.get("polar_mlp_k_fraction"), r.get("step_ms"),
                        r.get("polar_step_ms"), r.get("polar_speedup"),
                        ((long) r.get("polar_bytes_read")) / 1e9, r.get("polar_roofline_ratio"),
                        100 * (double) r.get("router_fraction"),
                        100 * (double) r.get("router_exposed_fraction")));
            }
            md.append("\n| attention (one layer) | context | batch | density | ms | vs dense |\n"
                    + "|---|---|---|---|---|---|\n");
            for (Map<String, Object> r : (List<Map<String, Object>>) report.get("attention")) {
                md.append(String.format(Locale.ROOT, "| %s | %d | %d | %.1f | %.4f | %.2f |%n",
                        r.get("model"), r.get("context"), r.get("batch"), r.get("density"),
                        r.get("attention_ms"), r.get("vs_dense")));
            }
        }
        List<Map<String, Object>> scoring = (List<Map<String, Object>>) report.get("scoring");
        if (!scoring.isEmpty()) {
            md.append("\n| scoring | rows x prompt tokens | scored positions a row | logits to the host,"
                    + " ms | on the device, ms | speedup | largest logprob difference |\n"
                    + "|---|---|---|---|---|---|---|\n");
            for (Map<String, Object> r : scoring) {
                md.append(String.format(Locale.ROOT, "| %s | %d x %d | %d | %.1f | %.1f | %.2f |"
                        + " %.2e |%n", r.get("model"), r.get("rows"), r.get("prompt_tokens"),
                        r.get("scored_positions"), r.get("host_logsoftmax_ms"),
                        r.get("device_logprob_ms"), r.get("speedup"),
                        r.get("max_abs_logprob_diff")));
            }
        }
        md.append("\n| GEMM M | N | K | ms (graph) | TFLOP/s | GB/s | weight copies | ms (host "
                + "launches) |\n|---|---|---|---|---|---|---|---|\n");
        for (Map<String, Object> r : (List<Map<String, Object>>) report.get("gemm")) {
            md.append(String.format(Locale.ROOT, "| %d | %d | %d | %.4f | %.1f | %.0f | %d | %.4f "
                    + "|%n", r.get("M"), r.get("N"), r.get("K"), r.get("ms"), r.get("TFLOPs"),
                    r.get("GBps"), r.get("weight_copies"), r.get("host_launch_ms")));
        }
        List<Map<String, Object>> sampled = (List<Map<String, Object>>) report.get("sampling");
        if (!sampled.isEmpty()) {
            md.append("\n| token choice | vocab | rows | ms |\n|---|---|---|---|\n");
            for (Map<String, Object> r : sampled) {
                md.append(String.format(Locale.ROOT, "| %s | %d | %d | %.4f |%n", r.get("mode"),
                        r.get("vocab"), r.get("rows"), r.get("ms")));
            }
        }
        Files.writeString(out.resolve("decode-" + gpuName + "-" + stamp + ".md"), md.toString());
        System.out.println("wrote " + json);
    }

    private static Map<String, String> parse(String[] args) {
        Map<String, String> m = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i++) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException("usage: polar-bench [--models a,b] [--batches 1,32] [--iters N]"
                        + " [--warmup N] [--out DIR] [--gpu N] [--dtype bf16|fp16]; bad argument '"
                        + args[i] + "'");
            }
            m.put(args[i].substring(2), args[++i]);
        }
        return m;
    }
}
