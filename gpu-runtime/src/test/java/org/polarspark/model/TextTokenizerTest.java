package org.polarspark.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.function.Consumer;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.polarspark.testutil.Golden;

/**
 * BOS/EOS handling of {@link TextTokenizer}: llama3-gqa's post-processor prepends {@code <s>} = 1,
 * OPT's prepends {@code </s>} = 2; tokenizer_config.json's add_bos_token / add_eos_token win.
 */
class TextTokenizerTest {
    @TempDir
    Path tmp;

    static final String[] TEXTS = {"Hello world", "The quick brown fox jumps over the lazy dog.",
        "a", "  leading spaces and trailing  ", "Numbers 0123456789, symbols !@#$%^&*()_+-=[]{};'",
        "line one\nline two\ttabbed", "MiXeD CaSe wOrDs"};

    private static TextTokenizer load(Path dir) {
        return TextTokenizer.load(dir, ModelConfig.load(dir));
    }

    private static int[] concat(int[]... parts) {
        return Arrays.stream(parts).flatMapToInt(Arrays::stream).toArray();
    }

    private static long count(int[] ids, int id) {
        return IntStream.of(ids).filter(i -> i == id).count();
    }

    /** A copy of a golden checkpoint with its tokenizer_config.json edited. */
    private Path withTokenizerConfig(String name, Consumer<ObjectNode> edit) throws IOException {
        Path dir = StTestIO.copyGolden(name, Files.createTempDirectory(tmp, name));
        Path cfg = dir.resolve("tokenizer_config.json");
        ObjectNode n = (ObjectNode) StTestIO.JSON.readTree(cfg.toFile());
        edit.accept(n);
        Files.writeString(cfg, n.toString());
        return dir;
    }

    @ParameterizedTest
    @CsvSource({"llama3-gqa, 1, 2", "opt, 2, 2", "opt-postln, 2, 2", "llama2, 1, 2"})
    void encodePrependsBosOnce(String name, int bos, int eos) {
        Path dir = Golden.goldenRoot().resolve(name);
        ModelConfig c = ModelConfig.load(dir);
        assertEquals(bos, c.bosTokenId());
        assertEquals(eos, c.eosTokenIds().get(0));
        try (TextTokenizer tok = load(dir)) {
            for (String text : TEXTS) {
                int[] plain = tok.encodePlain(text);
                int[] ids = tok.encode(text);
                assertTrue(plain.length > 0, text);
                assertEquals(bos, ids[0], "BOS first: " + text);
                assertEquals(0, count(plain, bos), "no BOS in plain: " + text);
                assertEquals(1, count(ids, bos), "BOS exactly once: " + text);
                assertArrayEquals(concat(new int[] {bos}, plain), ids, text);
                assertNotEquals(eos, plain[plain.length - 1], "no EOS: " + text);
            }
            // The empty prompt is BOS alone.
            assertArrayEquals(new int[] {bos}, tok.encode(""));
            assertArrayEquals(new int[0], tok.encodePlain(""));
        }
    }

    @ParameterizedTest
    @CsvSource({"llama3-gqa", "opt"})
    void decodeRoundTripsAsciiText(String name) {
        try (TextTokenizer tok = load(Golden.goldenRoot().resolve(name))) {
            for (String text : TEXTS) {
                assertEquals(text, tok.decode(tok.encodePlain(text)), name);
                // decode skips special tokens, so the BOS disappears again
                assertEquals(text, tok.decode(tok.encode(text)), name);
            }
            // Every printable ASCII character
            StringBuilder sb = new StringBuilder();
            for (char ch = 32; ch < 127; ch++) {
                sb.append(ch);
            }
            String all = sb.toString();
            assertEquals(all, tok.decode(tok.encodePlain(all)));
        }
    }

    @Test
    void tokenizationIsDeterministicAndSubwordsConcatenate() {
        try (TextTokenizer tok = load(Golden.goldenRoot().resolve("llama3-gqa"))) {
            int[] a = tok.encodePlain("Hello");
            int[] b = tok.encodePlain(" world");
            assertArrayEquals(a, tok.encodePlain("Hello"));
            // Byte-level BPE splits on the space before a word: the pieces concatenate.
            assertArrayEquals(concat(a, b), tok.encodePlain("Hello world"));
            assertEquals(Golden.goldenRoot().resolve("llama3-gqa").resolve("tokenizer.json"),
                    tok.source());
        }
    }

    @ParameterizedTest
    @CsvSource({"llama3-gqa", "opt"})
    void addBosTokenFalseRemovesTheBos(String name) throws IOException {
        Path dir = withTokenizerConfig(name, n -> n.put("add_bos_token", false));
        try (TextTokenizer tok = load(dir)) {
            for (String text : TEXTS) {
                assertArrayEquals(tok.encodePlain(text), tok.encode(text), text);
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"llama3-gqa, 1", "opt, 2"})
    void addEosTokenTrueAppendsEos(String name, int bos) throws IOException {
        Path dir = withTokenizerConfig(name, n -> n.put("add_eos_token", true));
        try (TextTokenizer tok = load(dir)) {
            for (String text : TEXTS) {
                int[] ids = tok.encode(text);
                assertEquals(2, ids[ids.length - 1], "EOS last: " + text);
                assertArrayEquals(concat(new int[] {bos}, tok.encodePlain(text), new int[] {2}),
                        ids, text);
            }
        }
    }

    @Test
    void addBosFalseAndAddEosTrueTogether() throws IOException {
        Path dir = withTokenizerConfig("llama3-gqa", n -> {
            n.put("add_bos_token", false);
            n.put("add_eos_token", true);
        });
        try (TextTokenizer tok = load(dir)) {
            assertArrayEquals(concat(tok.encodePlain("Hello world"), new int[] {2}),
                    tok.encode("Hello world"));
        }
    }

    @Test
    void addBosTokenTrueDoesNotDoubleTheBos() throws IOException {
        Path dir = withTokenizerConfig("llama3-gqa", n -> n.put("add_bos_token", true));
        try (TextTokenizer tok = load(dir)) {
            int[] ids = tok.encode("Hello world");
            assertEquals(1, count(ids, 1));
            assertArrayEquals(concat(new int[] {1}, tok.encodePlain("Hello world")), ids);
        }
    }

    @Test
    void specialTokenTextIsParsedAsTheSpecialToken() {
        try (TextTokenizer tok = load(Golden.goldenRoot().resolve("llama3-gqa"))) {
            int[] plain = tok.encodePlain("Hello</s>");
            assertEquals(2, plain[plain.length - 1]);
            assertArrayEquals(concat(tok.encodePlain("Hello"), new int[] {2}), plain);
        }
    }

    /**
     * add_eos_token: false (as Llama 2's tokenizer_config.json states) means "do not add an EOS";
     * an EOS the text itself spells must stay, as Hugging Face keeps it.
     */
    @Test
    void addEosFalseKeepsAnEosWrittenInTheText() throws IOException {
        Path dir = withTokenizerConfig("llama3-gqa", n -> n.put("add_eos_token", false));
        try (TextTokenizer tok = load(dir)) {
            assertArrayEquals(concat(new int[] {1}, tok.encodePlain("Hello</s>")),
                    tok.encode("Hello</s>"));
        }
    }

    /**
     * OPT's BOS and EOS are the same id (2): with add_eos_token false, the BOS the post-processor
     * adds to an empty prompt must not be taken for a trailing EOS and removed.
     */
    @Test
    void optEmptyPromptKeepsBosWhenAddEosIsFalse() throws IOException {
        Path dir = withTokenizerConfig("opt", n -> n.put("add_eos_token", false));
        try (TextTokenizer tok = load(dir)) {
            assertArrayEquals(new int[] {2}, tok.encode(""));
            assertArrayEquals(concat(new int[] {2}, tok.encodePlain("Hi")), tok.encode("Hi"));
        }
    }

    @Test
    void missingTokenizerJson() throws IOException {
        Path dir = StTestIO.copyGolden("opt", tmp);
        Files.delete(dir.resolve("tokenizer.json"));
        ModelConfig c = ModelConfig.load(dir);
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> TextTokenizer.load(dir, c));
        assertTrue(e.getMessage().contains(dir.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("tokenizer.json"), e.getMessage());
    }

    @Test
    void badTokenizerConfigJson() throws IOException {
        Path dir = StTestIO.copyGolden("opt", tmp);
        Files.writeString(dir.resolve("tokenizer_config.json"), "{ not json");
        ModelConfig c = ModelConfig.load(dir);
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> TextTokenizer.load(dir, c));
        assertTrue(e.getMessage().contains(dir.resolve("tokenizer_config.json").toString()),
                e.getMessage());
    }
}
