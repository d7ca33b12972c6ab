package org.polarspark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.junit.jupiter.api.Test;
import org.polarspark.cpu.CpuEngine;
import org.polarspark.generate.Engine;
import org.polarspark.generate.LoglikelihoodRequest;
import org.polarspark.generate.Scoring;

/** mc mode: lm-eval multiple choice, acc and acc_norm, checked against the engine directly. */
class McJobTest extends JobTestBase {
    static final double LL_TOLERANCE = 1e-9;

    static int argmax(double[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

    @Test
    void eachQuestionIsScoredChoiceByChoiceWithLmEvalAccuracies() {
        Path llama = SparkTests.golden("llama3-gqa");
        List<String> lines = new ArrayList<>(SparkTests.lines("datasets/eval/mc_cloze.jsonl", 8));
        lines.add("{\"id\":\"bad-label\",\"context\":\"Anne\",\"choices\":[\" a\",\" b\"],"
                + "\"label\":5}");
        lines.add("{\"id\":\"no-choices\",\"context\":\"Anne\",\"choices\":[],\"label\":0}");
        lines.add("{\"id\":\"null-label\",\"context\":\"Anne\",\"choices\":[\" a\"],"
                + "\"label\":null}");
        Path input = SparkTests.write(tmp.resolve("mc.jsonl"), lines);
        String out = tmp.resolve("out").toString();
        JobSummary summary = PolarJob.run(spark(), SparkTests.config("mode", "mc",
                "input", input.toString(), "output", out, "model", llama.toString(),
                "id-column", "id", "backend", "cpu", "batch-rows", "3"));
        Map<String, Row> rows = SparkTests.byKey(out);
        assertEquals(11, rows.size());
        assertEquals(List.of(OutputSchemas.MC.fieldNames()),
                List.of(spark().read().parquet(out).schema().fieldNames()));
        double acc = 0;
        double accNorm = 0;
        try (Engine e = CpuEngine.load(llama, 2)) {
            for (String line : lines.subList(0, 8)) {
                JsonNode j = parse(line);
                List<LoglikelihoodRequest> reqs = new ArrayList<>();
                List<String> choices = new ArrayList<>();
                for (JsonNode c : j.get("choices")) {
                    choices.add(c.asText());
                    reqs.add(Scoring.contextContinuation(e.tokenizer(),
                            j.get("context").asText(), c.asText()));
                }
                double[] ll = e.loglikelihood(reqs).results().stream()
                        .mapToDouble(x -> x.loglikelihood()).toArray();
                double[] norm = new double[ll.length];
                for (int k = 0; k < ll.length; k++) {
                    norm[k] = ll[k] / choices.get(k).length(); // BMP text: chars = code points
                }
                int label = j.get("label").asInt();
                Row r = rows.get(j.get("id").asText());
                assertEquals("ok", r.getAs("status"), "" + r.getAs("error"));
                List<Double> got = r.getList(r.fieldIndex("choice_loglikelihoods"));
                for (int k = 0; k < ll.length; k++) {
                    assertEquals(ll[k], got.get(k), Math.abs(ll[k]) * LL_TOLERANCE);
                }
                assertEquals(argmax(ll), (int) r.getAs("pred"));
                assertEquals(argmax(norm), (int) r.getAs("pred_norm"));
                assertEquals(label, (int) r.getAs("label"));
                double a = argmax(ll) == label ? 1 : 0;
                double an = argmax(norm) == label ? 1 : 0;
                assertEquals(a, (double) r.getAs("acc"));
                assertEquals(an, (double) r.getAs("acc_norm"));
                List<Integer> lengths = r.getList(r.fieldIndex("choice_lengths"));
                assertEquals(choices.stream().map(String::length).toList(), lengths);
                acc += a;
                accNorm += an;
            }
        }
        assertTrue(rows.get("bad-label").getAs("error").toString().contains("label 5"));
        assertEquals("choices are null or empty", rows.get("no-choices").getAs("error"));
        assertEquals("label is null or not an integer", rows.get("null-label").getAs("error"));
        Map<String, Object> mc = summary.section("mc");
        assertEquals(8L, ((Number) mc.get("questions")).longValue());
        assertEquals(acc / 8, (double) mc.get("acc"), 1e-12);
        assertEquals(accNorm / 8, (double) mc.get("acc_norm"), 1e-12);
    }

    @Test
    void truncateLeftDropsTheOldestContextTokensAsLmEvalDoes() {
        // The golden OPT model has a context of 128: mc_cloze contexts do not fit.
        List<String> lines = SparkTests.lines("datasets/eval/mc_cloze.jsonl", 3);
        Path input = SparkTests.write(tmp.resolve("mc.jsonl"), lines);
        String out = tmp.resolve("out").toString();
        PolarJob.run(spark(), SparkTests.config("mode", "mc", "input", input.toString(),
                "output", out, "model", OPT.toString(), "id-column", "id", "backend", "cpu",
                "long-prompt-policy", "truncate_left"));
        Map<String, Row> rows = SparkTests.byKey(out);
        int c = direct.config().maxPositions();
        boolean anyTruncated = false;
        for (String line : lines) {
            JsonNode j = parse(line);
            Row r = rows.get(j.get("id").asText());
            List<Double> got = r.getList(r.fieldIndex("choice_loglikelihoods"));
            int k = 0;
            int dropped = 0;
            for (JsonNode choice : j.get("choices")) {
                LoglikelihoodRequest q = Scoring.contextContinuation(direct.tokenizer(),
                        j.get("context").asText(), choice.asText());
                int[] ctx = q.context();
                int[] cont = q.continuation();
                // lm-eval: (context + continuation)[-(max_length + 1):]
                int keep = Math.min(ctx.length, c + 1 - cont.length);
                dropped = Math.max(dropped, ctx.length - keep);
                double ll = direct.loglikelihood(List.of(new LoglikelihoodRequest(
                        Arrays.copyOfRange(ctx, ctx.length - keep, ctx.length), cont)))
                        .results().get(0).loglikelihood();
                assertEquals(ll, got.get(k++), Math.abs(ll) * LL_TOLERANCE);
            }
            assertEquals(dropped, (int) r.getAs("truncated_tokens"));
            assertEquals(dropped > 0 ? "truncated" : "ok", r.getAs("status"));
            anyTruncated |= dropped > 0;
        }
        assertTrue(anyTruncated);
    }
}
