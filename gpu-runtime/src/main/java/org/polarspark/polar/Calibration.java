package org.polarspark.polar;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.polarspark.cpu.DecoderObserver;
import org.polarspark.generate.Engine;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.TextTokenizer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Calibration data collection (issue 7, step 1): runs the dense model over a corpus (through an
 * {@link Engine} whose backend can observe its layers, {@link Engine#canObserve}: the cpu
 * backend in fp32, or the cuda backend from its bf16 activations) and writes, per layer and
 * token, the router input, each head's attention-output norm and (ReLU models) which MLP
 * neurons fire, to one file per layer in a work directory (format in
 * {@link CalibrationSamples}).
 *
 * <p>The corpus is tokenized without special tokens (in paragraph chunks of about 64 KiB) and cut
 * into non-overlapping segments of {@code window - 1} tokens; each forward is BOS + one segment.
 * When the token budget needs fewer segments than the corpus has, the segments are spread evenly
 * over it (so a small budget still sees every part of the corpus). Position 0 (BOS) is not
 * recorded: it never goes through a router when prefill is dense, and it is an outlier (an
 * attention sink). Windows run in parallel; their samples are appended in window order, so the
 * files are the same for any thread count. At most {@code 2 x threads} windows of samples are in
 * memory at once.
 *
 * <p>The pieces are public so that the Spark job's calibrate mode runs the same code with its
 * own parallelism: {@link #plan} on the driver, {@link #collectWindow} in the tasks (each task
 * appends its windows' records to its own files), {@link CalibrationSamples} to read them back.
 */
public final class Calibration {
    private static final Logger LOG = LoggerFactory.getLogger(Calibration.class);
    /** The paper's budget (400k tokens of WikiText-2). */
    public static final long DEFAULT_TOKENS = 400_000;
    public static final int DEFAULT_WINDOW = 512;

    private Calibration() {
    }

    /**
     * What a calibration run wrote.
     *
     * @param workDir      where layer-{l}.bin lie
     * @param model        the model's config
     * @param relu         true when MLP bitsets were recorded
     * @param samples      tokens recorded per layer
     * @param windows      forwards run
 * @param window       tokens per forward, BOS included
     * @param corpusTokens tokens in the whole corpus
     * @param seconds      wall time of the collection
     */
    public record Result(Path workDir, ModelConfig model, boolean relu, int samples, int windows,
                         int window, long corpusTokens, double seconds) {
        /** layer-{l}.bin in the work directory. */
        public Path file(int layer) {
            return workDir.resolve("layer-" + layer + ".bin");
        }

        /** The samples of one layer. */
        public CalibrationSamples layer(int layer) {
            return new CalibrationSamples(file(layer), model.hiddenSize(), model.numHeads(),
                    model.numKvHeads(), relu ? model.ffnDim() : 0);
        }
    }

    /** Tokenizes a corpus file without special tokens, in paragraph chunks. */
    public static int[] tokenizeCorpus(TextTokenizer tok, Path corpus) {
        String text;
        try {
            text = Files.readString(corpus, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(corpus + ": cannot read the calibration corpus", e);
        }
        return tokenizeText(tok, text);
    }

    /**
     * Tokenizes a corpus text without special tokens, in chunks of about 64 KiB cut at paragraph
     * breaks (a blank line), so that no chunk boundary splits a word.
     */
    public static int[] tokenizeText(TextTokenizer tok, String text) {
        List<int[]> parts = new ArrayList<>();
        long total = 0;
        int from = 0;
        while (from < text.length()) {
            int to = Math.min(text.length(), from + 65536);
            if (to < text.length()) {
                int para = text.indexOf("\n\n", to);
                to = para < 0 ? text.length() : para + 2;
            }
            int[] ids = tok.encodePlain(text.substring(from, to));
            parts.add(ids);
            total += ids.length;
            from = to;
        }
        int[] out = new int[Math.toIntExact(total)];
        int p = 0;
        for (int[] ids : parts) {
            System.arraycopy(ids, 0, out, p, ids.length);
            p += ids.length;
        }
        return out;
    }

    /**
     * The forwards of a collection: BOS + a segment of {@code window - 1} corpus tokens each
     * (the last one shorter when the budget ends inside it), spread evenly over the corpus.
     *
     * @param c         the model (context length, BOS)
     * @param corpus    token ids of the corpus (no special tokens)
     * @param maxTokens token budget (tokens recorded per layer, at most)
     * @param window    forward length including BOS (clamped to the model's context)
     * @return the windows, in corpus order
     * @throws IllegalArgumentException when the corpus is shorter than one window or the budget
     *                                  or window are out of range
     */
    public static int[][] plan(ModelConfig c, int[] corpus, long maxTokens, int window) {
        window = Math.min(window, c.maxPositions());
        if (window < 2) {
            throw new IllegalArgumentException("window must be >= 2, got " + window);
        }
        if (maxTokens < 1) {
            throw new IllegalArgumentException("token budget must be >= 1, got " + maxTokens);
        }
        int seg = window - 1;
        int available = corpus.length / seg;
        if (available == 0) {
            throw new IllegalArgumentException("the corpus has " + corpus.length
                    + " tokens, fewer than one window of " + seg);
        }
        int needed = (int) Math.min(available, (maxTokens + seg - 1) / seg);
        int[][] windows = new int[needed][];
        long left = maxTokens;
        for (int i = 0; i < needed; i++) {
            int s = (int) ((long) i * available / needed);
            int len = (int) Math.min(seg, left);
            left -= len;
            int[] w = new int[len + 1];
            w[0] = c.bosTokenId() >= 0 ? c.bosTokenId() : c.eosTokenIds().get(0);
            System.arraycopy(corpus, s * seg, w, 1, len);
            windows[i] = w;
        }
        return windows;
    }

    /** Bytes of one token's record for this model (see {@link CalibrationSamples}). */
    public static int recordBytes(ModelConfig c) {
        return CalibrationSamples.recordBytes(c.hiddenSize(), c.numHeads(),
                c.reluMlp() ? c.ffnDim() : 0);
    }

    /**
     * Runs the collection with a thread pool over windows.
     *
     * @param engine    the dense engine (its backend must be able to observe:
     *                  {@link Engine#canObserve})
     * @param corpus    token ids of the corpus (no special tokens)
     * @param maxTokens token budget (tokens recorded per layer, at most)
     * @param window    forward length including BOS (clamped to the model's context)
     * @param threads   parallel windows
     * @param workDir   output directory (created; layer files replaced)
     */
    public static Result run(Engine engine, int[] corpus, long maxTokens, int window,
                             int threads, Path workDir) {
        ModelConfig c = engine.config();
        requireObserver(engine);
        int[][] windows = plan(c, corpus, maxTokens, window);
        window = Math.min(window, c.maxPositions());
        int needed = windows.length;
        boolean relu = c.reluMlp();
        int recBytes = CalibrationSamples.recordBytes(c.hiddenSize(), c.numHeads(),
                relu ? c.ffnDim() : 0);
        long t0 = System.nanoTime();
        int samples = 0;
        FileChannel[] out = new FileChannel[c.numLayers()];
        ExecutorService pool = Executors.newFixedThreadPool(Math.max(1, threads), r -> {
            Thread t = new Thread(r, "calibration");
            t.setDaemon(true);
            return t;
        });
        try {
            Files.createDirectories(workDir);
            for (int l = 0; l < out.length; l++) {
                out[l] = FileChannel.open(workDir.resolve("layer-" + l + ".bin"),
                        StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                        StandardOpenOption.TRUNCATE_EXISTING);
            }
            int group = 2 * Math.max(1, threads);
            for (int from = 0; from < needed; from += group) {
                List<Future<ByteBuffer[]>> fs = new ArrayList<>();
                for (int i = from; i < Math.min(needed, from + group); i++) {
                    int[] w = windows[i];
                    fs.add(pool.submit(() -> collectWindow(engine, w)));
                }
                for (Future<ByteBuffer[]> f : fs) {
                    ByteBuffer[] bufs = f.get();
                    for (int l = 0; l < out.length; l++) {
                        while (bufs[l].hasRemaining()) {
                            out[l].write(bufs[l]);
                        }
                    }
                    samples += bufs[0].limit() / recBytes;
                }
                if ((from / group) % 10 == 0) {
                    LOG.info("calibration: {} of {} windows, {} tokens, {} s", Math.min(needed,
                            from + group), needed, samples, (System.nanoTime() - t0) / 1e9);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(workDir + ": cannot write calibration samples", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("calibration interrupted", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException("calibration failed: " + e.getCause(), e.getCause());
        } finally {
            pool.shutdownNow();
            for (FileChannel ch : out) {
                if (ch != null) {
                    try {
                        ch.close();
                    } catch (IOException ignored) {
                        // best effort
                    }
                }
            }
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        LOG.info("calibration: {} tokens per layer from {} windows in {} s", samples, needed,
                String.format("%.1f", secs));
        return new Result(workDir, c, relu, samples, needed, window, corpus.length, secs);
    }

    /** Fails with a message naming the backend when it cannot run calibration forwards. */
    public static void requireObserver(Engine engine) {
        if (!engine.canObserve()) {
            throw new UnsupportedOperationException("calibration needs a backend that can "
                    + "observe the decoder's layers; the " + engine.backend() + " backend cannot"
                    + ": calibrate with the cpu or cuda backend");
        }
    }

    /**
     * One dense forward of one window; returns each layer's records (position 0 skipped), each
     * buffer positioned at 0 with its limit at the end of the records.
     */
    public static ByteBuffer[] collectWindow(Engine engine, int[] window) {
        ModelConfig c = engine.config();
        boolean relu = c.reluMlp();
        int recBytes = recordBytes(c);
        int n = window.length;
        int hid = c.hiddenSize();
        int heads = c.numHeads();
        int hd = c.headDim();
        int ffn = c.ffnDim();
        int words = RouterSamples.words(ffn);
        ByteBuffer[] bufs = new ByteBuffer[c.numLayers()];
        for (int l = 0; l < bufs.length; l++) {
            bufs[l] = ByteBuffer.allocate((n - 1) * recBytes).order(ByteOrder.LITTLE_ENDIAN);
        }
        DecoderObserver obs = new DecoderObserver() {
            @Override
            public void attention(int layer, float[] routerInput, float[] attention, int[] rowOf,
                                  int[] posOf) {
                ByteBuffer b = bufs[layer];
                for (int t = 1; t < n; t++) {
                    int at = (t - 1) * recBytes;
                    for (int i = 0; i < hid; i++) {
                        b.putFloat(at + 4 * i, routerInput[t * hid + i]);
                    }
                    at += 4 * hid;
                    int base = t * heads * hd;
                    for (int h = 0; h < heads; h++) {
                        double s = 0;
                        for (int d = 0; d < hd; d++) {
                            float v = attention[base + h * hd + d];
                            s += (double) v * v;
                        }
                        b.putFloat(at + 4 * h, (float) Math.sqrt(s));
                    }
                }
            }

            @Override
            public void mlp(int layer, float[] activations, float[] output) {
                if (!relu) {
                    return;
                }
                ByteBuffer b = bufs[layer];
                for (int t = 1; t < n; t++) {
                    int at = (t - 1) * recBytes + 4 * hid + 4 * heads;
                    for (int w = 0; w < words; w++) {
                        long bits = 0;
                        int end = Math.min(ffn, (w + 1) * 64);
                        for (int j = w * 64; j < end; j++) {
                            if (activations[t * ffn + j] > 0) {
                                bits |= 1L << (j & 63);
                            }
                        }
                        b.putLong(at + 8 * w, bits);
                    }
                }
            }
        };
        engine.observeDense(window, obs);
        return bufs;
    }
}
