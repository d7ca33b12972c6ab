package org.polarspark.model;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * A checkpoint's {@code tokenizer.json}, through DJL's binding of Hugging Face tokenizers, with
 * the checkpoint's BOS/EOS settings.
 *
 * <p>The tokenizer's own post-processor decides which special tokens {@link #encode} adds, as
 * Hugging Face's fast tokenizers do; where {@code tokenizer_config.json} states
 * {@code add_bos_token} or {@code add_eos_token} explicitly, that setting wins (the slow LLaMA
 * tokenizers are configured this way). No truncation, no padding: the caller decides what a
 * prompt longer than the context means.
 *
 * <p>Thread-safe for encode/decode (the native tokenizer is immutable). Close it once.
 */
public final class TextTokenizer implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    static {
        // DJL picks a CUDA build of its tokenizer library on GPU hosts and downloads it at run
        // time; the CPU build inside the jar is what we want everywhere (tokenizing is not GPU
        // work), and nothing may be downloaded. Users can still override both.
        if (System.getenv("RUST_FLAVOR") == null && System.getProperty("RUST_FLAVOR") == null) {
            System.setProperty("RUST_FLAVOR", "cpu");
        }
        if (System.getenv("DJL_OFFLINE") == null && System.getProperty("ai.djl.offline") == null) {
            System.setProperty("ai.djl.offline", "true");
        }
    }

    private final HuggingFaceTokenizer tok;
    private final Path source;
    private final int bosId;
    private final Boolean addBos; // null: leave to the post-processor
    private final Boolean addEos;
    private final int eosId;

    private TextTokenizer(HuggingFaceTokenizer tok, Path source, int bosId, Boolean addBos,
                          int eosId, Boolean addEos) {
        this.tok = tok;
        this.source = source;
        this.bosId = bosId;
        this.addBos = addBos;
        this.eosId = eosId;
        this.addEos = addEos;
    }

    /** Loads {@code tokenizer.json} (and {@code tokenizer_config.json} if present) from dir. */
    public static TextTokenizer load(Path dir, ModelConfig config) {
        Path file = dir.resolve("tokenizer.json");
        if (!Files.isRegularFile(file)) {
            throw new ModelFormatException(dir + ": tokenizer.json not found (a Hugging Face fast"
                    + " tokenizer is required)");
        }
        HuggingFaceTokenizer tok;
        try {
            tok = HuggingFaceTokenizer.newInstance(file, Map.of(
                    "addSpecialTokens", "true", "truncation", "false", "padding", "false"));
        } catch (IOException | RuntimeException e) {
            throw new ModelFormatException(file + ": cannot load tokenizer: " + e.getMessage(), e);
        }
        Boolean addBos = null;
        Boolean addEos = null;
        Path cfg = dir.resolve("tokenizer_config.json");
        if (Files.isRegularFile(cfg)) {
            try {
                JsonNode n = JSON.readTree(cfg.toFile());
                if (n.has("add_bos_token") && n.get("add_bos_token").isBoolean()) {
                    addBos = n.get("add_bos_token").booleanValue();
                }
                if (n.has("add_eos_token") && n.get("add_eos_token").isBoolean()) {
                    addEos = n.get("add_eos_token").booleanValue();
                }
            } catch (IOException e) {
                tok.close();
                throw new ModelFormatException(cfg + ": not valid JSON: " + e.getMessage(), e);
            }
        }
        return new TextTokenizer(tok, file, config.bosTokenId(), addBos,
                config.eosTokenIds().get(0), addEos);
    }

    /** Token ids of a prompt, with the checkpoint's special tokens. */
    public int[] encode(String text) {
        Encoding e = tok.encode(text, true, false);
        long[] ids = e.getIds();
        // Only tokens the post-processor added count as added: a BOS or EOS written in the text
        // itself stays (and BOS == EOS, as in OPT, is not mistaken for an appended EOS).
        int added = ids.length - tok.encode(text, false, false).getIds().length;
        boolean hasBos = added > 0 && ids[0] == bosId;
        boolean hasEos = added > (hasBos ? 1 : 0) && ids[ids.length - 1] == eosId;
        int from = Boolean.FALSE.equals(addBos) && hasBos ? 1 : 0;
        int to = Boolean.FALSE.equals(addEos) && hasEos && ids.length > from ? ids.length - 1
                : ids.length;
        boolean prependBos = Boolean.TRUE.equals(addBos) && !hasBos && bosId >= 0;
        boolean appendEos = Boolean.TRUE.equals(addEos) && !hasEos && eosId >= 0;
        int[] out = new int[(prependBos ? 1 : 0) + (to - from) + (appendEos ? 1 : 0)];
        int j = 0;
        if (prependBos) {
            out[j++] = bosId;
        }
        for (int i = from; i < to; i++) {
            out[j++] = Math.toIntExact(ids[i]);
        }
        if (appendEos) {
            out[j] = eosId;
        }
        return out;
    }

    /** Token ids of a text with no special tokens (a continuation to score, say). */
    public int[] encodePlain(String text) {
        long[] ids = tok.encode(text, false, false).getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = Math.toIntExact(ids[i]);
        }
        return out;
    }

    /** Text of generated ids, special tokens skipped. */
    public String decode(int[] ids) {
        long[] l = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            l[i] = ids[i];
        }
        return tok.decode(l, true);
    }

    public Path source() {
        return source;
    }

    @Override
    public void close() {
        tok.close();
    }
}
