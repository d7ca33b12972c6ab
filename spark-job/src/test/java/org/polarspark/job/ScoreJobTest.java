package org.polarspark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.junit.jupiter.api.Test;
import org.polarspark.generate.LoglikelihoodRequest;
import org.polarspark.generate.LoglikelihoodResult;
import org.polarspark.generate.Scoring;

/** score mode: lm-eval loglikelihood_rolling per row, checked against the engine directly. */
class ScoreJobTest extends JobTestBase {
    /** Sums of log-probabilities over different batchings agree to rounding. */
    static final double LL_TOLERANCE = 1e-9;

    @Test
    void eachTextIsScoredInRollingWindowsAsLmEvalDoes() {
        List<String> lines = new ArrayList<>(SparkTests.lines("datasets/eval/perplexity.jsonl",
                4));
        lines.add("{\"id\":\"empty\",\"text\":\"\"}");
        lines.add("{\"id\":\"null\",\"text\":null}");
        Path input = SparkTests.write(tmp.resolve("ppl.jsonl"), lines);
        String out = tmp.resolve("out").toString();
        JobSummary summary = PolarJob.run(spark(), SparkTests.config("mode", "score",
                "input", input.toString(), "output", out, "model", OPT.toString(),
                "id-column", "id", "backend", "cpu"));
        Map<String, Row> rows = SparkTests.byKey(out);
        assertEquals(6, rows.size());
        assertEquals(List.of(OutputSchemas.SCORE.fieldNames()),
                List.of(spark().read().parquet(out).schema().fieldNames()));
        double sumLl = 0;
        long sumTokens = 0;
        for (String line : lines.subList(0, 4)) {
            JsonNode j = parse(line);
            String text = j.get("text").asText();
            int[] ids = direct.tokenizer().encodePlain(text);
            List<LoglikelihoodRequest> windows = Scoring.rollingWindows(ids,
                    direct.config().bosTokenId(), direct.config().maxPositions());
            assertTrue(windows.size() > 1, "the text is longer than the context");
            double ll = 0;
            for (LoglikelihoodResult x : direct.loglikelihood(windows).results()) {
                ll += x.loglikelihood();
            }
            Row r = rows.get(j.get("id").asText());
            assertEquals("ok", r.getAs("status"));
            assertEquals(ids.length, (int) r.getAs("num_tokens"));
            long bytes = text.getBytes(StandardCharsets.UTF_8).length;
            assertEquals(bytes, (long) r.getAs("num_bytes"));
            assertEquals(text.trim().split("\\s+").length, (int) r.getAs("num_words"));
            double got = r.getAs("loglikelihood");
            assertEquals(ll, got, Math.abs(ll) * LL_TOLERANCE);
            assertEquals(Math.exp(-ll / ids.length), (double) r.getAs("perplexity"),
                    Math.exp(-ll / ids.length) * 1e-9);
            assertEquals(-ll / bytes / Math.log(2), (double) r.getAs("bits_per_byte"), 1e-9);
            sumLl += ll;
            sumTokens += ids.length;
        }
        assertEquals("text is empty", rows.get("empty").getAs("error"));
        assertEquals("text is null", rows.get("null").getAs("error"));
        Map<String, Object> s = summary.section("score");
        assertEquals(4L, ((Number) s.get("documents")).longValue());
        assertEquals(Math.exp(-sumLl / sumTokens), (double) s.get("token_perplexity"),
                Math.exp(-sumLl / sumTokens) * 1e-9);
        assertEquals(sumTokens, ((Number) summary.section("tokens").get("input")).longValue()
                - 0 * sumTokens, sumTokens * 0.1, "windows re-read some context");
    }
}
