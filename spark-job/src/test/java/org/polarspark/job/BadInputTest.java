package org.polarspark.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.polarspark.generate.GenerationRequest;
import org.polarspark.generate.GenerationResult;
import org.polarspark.generate.SamplingParams;
import org.polarspark.generate.arrow.ArrowEngine;

/** Bad rows become error rows and the job succeeds; bad set-up fails at startup. */
class BadInputTest extends JobTestBase {
    Path input;
    /** ~200 words: more than the golden model's context of 128 tokens. */
    static final String LONG = String.join(" ", java.util.Collections.nCopies(40,
            "She was not at all surprised"));
    long offsetBadJson;
    long offsetBadUtf8;
    long offsetNoId;
    long offsetSurrogate;

    @BeforeEach
    void input() throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        String[] good = {
            "{\"id\":\"ok-1\",\"prompt\":\"Emma Woodhouse, handsome, clever\"}",
            "{\"id\":\"null-prompt\",\"prompt\":null}",
            "{\"id\":\"empty\",\"prompt\":\"\"}",
            "{\"id\":\"long\",\"prompt\":\"" + LONG + "\"}",
            "{\"id\":\"surrogate\",\"prompt\":\"bad \\ud800 text\"}",
            "{\"id\":\"number\",\"prompt\":12345}",
            "{\"id\":\"replacement\",\"prompt\":\"caf\ufffd\"}",
            "{\"id\":\"pair\",\"prompt\":\"a \\\\ud800 \\ud83d\\ude00 b\"}",
        };
        for (String s : good) {
            if (s.contains("surrogate")) {
                offsetSurrogate = b.size(); // rejected before parsing: identified by position
            }
            b.write((s + "\n").getBytes(StandardCharsets.UTF_8));
        }
        offsetBadJson = b.size();
        b.write("{\"id\": \"broken\", \"prompt\": \"unterminated\n".getBytes(StandardCharsets.UTF_8));
        offsetBadUtf8 = b.size();
        b.write("{\"id\":\"bad-utf8\",\"prompt\":\"caf".getBytes(StandardCharsets.UTF_8));
        b.write(new byte[] {(byte) 0xC3, (byte) 0x28});
        b.write("\"}\n".getBytes(StandardCharsets.UTF_8));
        b.write("\n".getBytes(StandardCharsets.UTF_8)); // blank lines are not records in JSONL
        offsetNoId = b.size();
        b.write("{\"prompt\":\"no id here\"}\n".getBytes(StandardCharsets.UTF_8));
        input = tmp.resolve("in.jsonl");
        Files.write(input, b.toByteArray());
    }

    JobConfig config(String out, String... more) {
        String[] base = {"input", input.toString(), "output", out, "model", OPT.toString(),
            "id-column", "id", "max-tokens", "4", "n", "2", "temperature", "0.7",
            "backend", "cpu"};
        String[] all = Arrays.copyOf(base, base.length + more.length);
        System.arraycopy(more, 0, all, base.length, more.length);
        return SparkTests.config(all);
    }

    @Test
    void badRowsBecomeErrorRowsWithClearMessagesAndTheJobSucceeds() {
        String out = tmp.resolve("out").toString();
        int failed = SparkTests.failedTasks();
        JobSummary summary = PolarJob.run(spark(), config(out));
        assertEquals(failed, SparkTests.failedTasks());
        Map<String, Row> rows = SparkTests.byKey(out);
        assertEquals(11 * 2, rows.size(), "every input row, n samples each: " + rows.keySet());
        Map<String, String> expectedErrors = Map.of(
                "null-prompt", "prompt is null",
                "empty", "prompt is empty",
                "long", "the model's context is 128 tokens",
                "in.jsonl:" + offsetSurrogate,
                "invalid text: the line has an unpaired UTF-16 surrogate escape \\ud800",
                "replacement", "invalid text: prompt has U+FFFD",
                "in.jsonl:" + offsetBadJson, "invalid JSON: {\"id\": \"broken\"",
                "in.jsonl:" + offsetBadUtf8, "invalid text: the line is not valid UTF-8",
                "in.jsonl:" + offsetNoId, "id column 'id' is null");
        for (Map.Entry<String, String> e : expectedErrors.entrySet()) {
            for (int s = 0; s < 2; s++) {
                Row r = rows.get(e.getKey() + "#" + s);
                assertNotNull(r, e.getKey() + " missing from " + rows.keySet());
                assertEquals("error", r.getAs("status"), e.getKey());
                String msg = r.getAs("error");
                assertTrue(msg.contains(e.getValue()), e.getKey() + ": " + msg);
                assertNull(r.getAs("generated_text"));
                assertNull(r.getAs("num_generated_tokens"));
            }
        }
        for (String ok : List.of("ok-1", "number", "pair")) {
            Row r = rows.get(ok + "#1");
            assertEquals("ok", r.getAs("status"), ok + ": " + r.getAs("error"));
            assertNotNull(r.getAs("generated_text"));
        }
        assertEquals(2 * 8L, ((Number) summary.section("rows").get("error")).longValue());
        assertEquals(2 * 3L, ((Number) summary.section("rows").get("ok")).longValue());
    }

    @Test
    void truncateLeftKeepsBosAndTheLastTokensAndMarksTheRow() {
        String out = tmp.resolve("out").toString();
        PolarJob.run(spark(), config(out, "long-prompt-policy", "truncate_left"));
        Map<String, Row> rows = SparkTests.byKey(out);
        int[] ids = direct.tokenizer().encode(LONG);
        int limit = direct.config().maxPositions() - 1;
        assertTrue(ids.length > limit);
        int[] kept = new int[limit];
        kept[0] = ids[0];
        assertEquals(direct.config().bosTokenId(), ids[0]);
        System.arraycopy(ids, ids.length - (limit - 1), kept, 1, limit - 1);
        SamplingParams p = new SamplingParams(0.7, 1.0, -1, 4, List.of(), 0, 2, null);
        long rowSeed = RowSeeds.forRow(0, "long");
        for (int s = 0; s < 2; s++) {
            Row r = rows.get("long#" + s);
            assertEquals("truncated", r.getAs("status"));
            assertEquals(ids.length - limit, (int) r.getAs("truncated_tokens"));
            assertEquals(limit, (int) r.getAs("num_input_tokens"));
            GenerationResult g = direct.generate(List.of(new GenerationRequest(kept, p,
                    ArrowEngine.sampleSeed(rowSeed, s)))).results().get(0);
            List<Integer> got = r.getList(r.fieldIndex("token_ids"));
            assertArrayEquals(g.tokens(), got.stream().mapToInt(Integer::intValue).toArray());
            // the context has room for one generated token only
            assertEquals("length", r.getAs("finish_reason"));
        }
        assertEquals("error", rows.get("empty#0").getAs("status"));
    }

    @Test
    void aMissingColumnIsAStartupErrorNamingIt() {
        String out = tmp.resolve("out").toString();
        JobConfigException e = assertThrows(JobConfigException.class,
                () -> PolarJob.run(spark(), config(out, "prompt-column", "text")));
        assertTrue(e.getMessage().contains("'text'") && e.getMessage().contains("prompt-column")
                && e.getMessage().contains("[id, prompt]"), e.getMessage());
        e = assertThrows(JobConfigException.class, () -> PolarJob.run(spark(),
                config(out, "passthrough", "Prompt")));
        assertTrue(e.getMessage().contains("'Prompt'") && e.getMessage().contains(
                "did you mean 'prompt'"), e.getMessage());
        assertFalse(Files.exists(Path.of(out)), "nothing was written");
    }

    @Test
    void anExistingOutputIsAStartupErrorUnlessOverwriting() throws IOException {
        Path out = Files.createDirectories(tmp.resolve("out"));
        Files.writeString(out.resolve("old.txt"), "x");
        JobConfigException e = assertThrows(JobConfigException.class,
                () -> PolarJob.run(spark(), config(out.toString())));
        assertTrue(e.getMessage().contains("--output-mode overwrite"), e.getMessage());
        PolarJob.run(spark(), config(out.toString(), "output-mode", "overwrite"));
        assertFalse(Files.exists(out.resolve("old.txt")));
        assertEquals(22, SparkTests.byKey(out.toString()).size());
    }

    @Test
    void askingForCudaWhereItCannotRunFailsTheJobWithoutFallingBack() {
        org.junit.jupiter.api.Assumptions.assumeFalse(
                org.polarspark.cuda.GpuContext.isAvailable(), "this host can run CUDA");
        String out = tmp.resolve("out").toString();
        JobFailedException e = assertThrows(JobFailedException.class,
                () -> PolarJob.run(spark(), config(out, "backend", "cuda")));
        String root = PolarJob.rootMessage(e);
        assertTrue(root.contains("cuda") && root.contains("no silent fallback"), root);
        assertFalse(Files.exists(Path.of(out, "_SUCCESS")));
    }
}
