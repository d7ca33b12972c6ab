package org.polarspark.job;

import static org.apache.spark.sql.functions.array;
import static org.apache.spark.sql.functions.avg;
import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.count;
import static org.apache.spark.sql.functions.lit;
import static org.apache.spark.sql.functions.percentile_approx;
import static org.apache.spark.sql.functions.stddev_samp;
import static org.apache.spark.sql.functions.sum;
import static org.apache.spark.sql.functions.when;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.polarspark.polar.PolarStats;

/**
 * The driver's summary of a finished job: the partitions' statistics summed, latency
 * percentiles and (score, mc) the corpus metrics computed from the output, written to
 * {@code <output>/_summary.json} and printed as a table. Every figure is defined in the README
 * ("Statistics").
 */
final class JobSummary {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** percentile_approx accuracy: exact (nearest rank) below this many rows. */
    private static final int PERCENTILE_ACCURACY = 100_000;

    private final Map<String, Object> json;

    private JobSummary(Map<String, Object> json) {
        this.json = json;
    }

    Map<String, Object> json() {
        return json;
    }

    @SuppressWarnings("unchecked")
    Map<String, Object> section(String name) {
        return (Map<String, Object>) json.get(name);
    }

    static List<PartitionStats> readStats(Configuration conf, String output) {
        try {
            Path dir = new Path(output, "_stats");
            FileSystem fs = dir.getFileSystem(conf);
            List<PartitionStats> out = new ArrayList<>();
            if (!fs.exists(dir)) {
                return out;
            }
            FileStatus[] files = fs.listStatus(dir, p -> p.getName().startsWith("part-")
                    && p.getName().endsWith(".json"));
            Arrays.sort(files);
            for (FileStatus f : files) {
                try (InputStream in = fs.open(f.getPath())) {
                    out.add(JSON.readValue(in, PartitionStats.class));
                }
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the partition statistics: " + e, e);
        }
    }

    static JobSummary compute(SparkSession spark, JobConfig cfg, Configuration conf,
                              String output, long inputRows, Instant started, Instant finished,
                              Map<String, String> metadata) {
        double wallS = (finished.toEpochMilli() - started.toEpochMilli()) / 1000.0;
        List<PartitionStats> stats = readStats(conf, output);
        Map<String, Object> j = new LinkedHashMap<>();
        j.put("version", metadata.get("polar.version"));
        j.put("mode", cfg.mode().wire());
        j.put("model", metadata.get("polar.model"));
        j.put("backend_requested", cfg.backend().wire());
        j.put("cuda_dtype", cfg.cudaDtype().wire()); // used where the cuda backend ran
        TreeSet<String> backends = new TreeSet<>();
        TreeSet<String> devices = new TreeSet<>();
        long in = 0;
        long outTok = 0;
        long outRows = 0;
        long ok = 0;
        long truncated = 0;
        long errors = 0;
        long rows = 0;
        double prefillMs = 0;
        double decodeMs = 0;
        int maxBatchRows = 0;
        PolarStats polar = PolarStats.ZERO;
        for (PartitionStats s : stats) {
            polar = polar.plus(s.polar());
            backends.add(s.backend);
            devices.add(s.device);
            in += s.inputTokens;
            outTok += s.outputTokens;
            rows += s.rows;
            outRows += s.outputRows;
            ok += s.okRows;
            truncated += s.truncatedRows;
            errors += s.errorRows;
            prefillMs += s.prefillMs;
            decodeMs += s.decodeMs;
            maxBatchRows = Math.max(maxBatchRows, s.maxBatchRows);
        }
        j.put("backends_used", List.copyOf(backends));
        j.put("devices", List.copyOf(devices));
        j.put("sparsity", metadata.get("polar.sparsity"));
        j.put("started_at", started.toString());
        j.put("finished_at", finished.toString());
        j.put("wall_s", round(wallS, 3));
        j.put("partitions", stats.size());
        j.put("max_batch", cfg.maxBatch());
        j.put("max_batch_rows_seen", maxBatchRows);
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("input", inputRows);
        r.put("processed", rows);
        r.put("output", outRows);
        r.put("ok", ok);
        r.put("truncated", truncated);
        r.put("error", errors);
        j.put("rows", r);
        Map<String, Object> t = new LinkedHashMap<>();
        t.put("input", in);
        t.put("output", outTok);
        t.put("prefill_ms", round(prefillMs, 1));
        t.put("decode_ms", round(decodeMs, 1));
        j.put("tokens", t);
        Map<String, Object> tp = new LinkedHashMap<>();
        tp.put("rows_per_s", round(wallS > 0 ? rows / wallS : 0, 2));
        tp.put("input_tokens_per_s", round(wallS > 0 ? in / wallS : 0, 1));
        tp.put("output_tokens_per_s", round(wallS > 0 ? outTok / wallS : 0, 1));
        tp.put("total_tokens_per_s", round(wallS > 0 ? (in + outTok) / wallS : 0, 1));
        j.put("throughput", tp);
        if (cfg.polar()) {
            j.put("polar", polar(cfg, polar, prefillMs + decodeMs));
        }
        Dataset<Row> o = spark.read().parquet(output);
        switch (cfg.mode()) {
            case GENERATE -> j.put("latency_ms", latency(o));
            case SCORE -> j.put("score", score(o));
            case MC -> j.put("mc", mc(o));
            default -> throw new AssertionError(cfg.mode());
        }
        j.put("sampling", cfg.samplingSettings());
        j.put("options", cfg.describe());
        return new JobSummary(j);
    }

    /**
     * The Polar Sparsity figures over all partitions, each partition weighted by its totals:
     * kept / total summed over partitions (null when nothing was routed), router time summed.
     */
    private static Map<String, Object> polar(JobConfig cfg, PolarStats p, double engineMs) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("settings", cfg.polarSettings(null).describe());
        m.put("active_head_fraction", Double.isNaN(p.headFraction()) ? null : p.headFraction());
        m.put("active_neuron_fraction", Double.isNaN(p.mlpFraction()) ? null
                : p.mlpFraction());
        double routerMs = p.routerNanos() / 1e6;
        m.put("router_ms", round(routerMs, 3));
        m.put("router_share_of_engine_time", engineMs > 0 ? round(routerMs / engineMs, 4)
                : null);
        m.put("head_selections", p.headSelections());
        m.put("groups_total", p.groupsTotal());
        m.put("groups_kept", p.groupsKept());
        m.put("neuron_selections", p.neuronSelections());
        m.put("neurons_total", p.neuronsTotal());
        m.put("neurons_kept", p.neuronsKept());
        return m;
    }

    private static Map<String, Object> latency(Dataset<Row> o) {
        Column live = col("status").notEqual(lit(OutputSchemas.ERROR));
        Column ttft = when(live, col("time_to_first_token_ms"));
        Column tpot = when(live.and(col("num_generated_tokens").geq(2)),
                col("decode_ms").divide(col("num_generated_tokens").minus(1)));
        Row a = o.agg(percentile_approx(ttft, array(lit(0.5), lit(0.95)),
                        lit(PERCENTILE_ACCURACY)),
                avg(ttft), avg(tpot), percentile_approx(tpot, array(lit(0.5), lit(0.95)),
                        lit(PERCENTILE_ACCURACY)),
                avg(when(live, col("decode_ms").plus(col("time_to_first_token_ms"))))).first();
        Map<String, Object> m = new LinkedHashMap<>();
        List<Object> tt = a.isNullAt(0) ? null : a.getList(0);
        List<Object> tp = a.isNullAt(3) ? null : a.getList(3);
        m.put("ttft_p50", tt == null ? null : round(((Number) tt.get(0)).doubleValue(), 2));
        m.put("ttft_p95", tt == null ? null : round(((Number) tt.get(1)).doubleValue(), 2));
        m.put("ttft_mean", a.isNullAt(1) ? null : round(a.getDouble(1), 2));
        m.put("tpot_mean", a.isNullAt(2) ? null : round(a.getDouble(2), 3));
        m.put("tpot_p50", tp == null ? null : round(((Number) tp.get(0)).doubleValue(), 3));
        m.put("tpot_p95", tp == null ? null : round(((Number) tp.get(1)).doubleValue(), 3));
        m.put("e2e_mean", a.isNullAt(4) ? null : round(a.getDouble(4), 2));
        return m;
    }

    private static Map<String, Object> score(Dataset<Row> o) {
        Row a = o.where(col("status").equalTo(lit(OutputSchemas.OK))).agg(count(lit(1)),
                sum(col("loglikelihood")), sum(col("num_tokens")), sum(col("num_bytes")),
                sum(col("num_words"))).first();
        Map<String, Object> m = new LinkedHashMap<>();
        long n = a.getLong(0);
        m.put("documents", n);
        if (n == 0) {
            return m;
        }
        double ll = a.getDouble(1);
        long tokens = a.getLong(2);
        long bytes = a.getLong(3);
        long words = a.getLong(4);
        m.put("loglikelihood", ll);
        m.put("tokens", tokens);
        m.put("bytes", bytes);
        m.put("words", words);
        m.put("token_perplexity", Math.exp(-ll / tokens));
        m.put("word_perplexity", Math.exp(-ll / words));
        m.put("byte_perplexity", Math.exp(-ll / bytes));
        m.put("bits_per_byte", -ll / bytes / Math.log(2));
        return m;
    }

    private static Map<String, Object> mc(Dataset<Row> o) {
        Row a = o.where(col("status").notEqual(lit(OutputSchemas.ERROR))).agg(count(lit(1)),
                avg(col("acc")), stddev_samp(col("acc")), avg(col("acc_norm")),
                stddev_samp(col("acc_norm"))).first();
        Map<String, Object> m = new LinkedHashMap<>();
        long n = a.getLong(0);
        m.put("questions", n);
        if (n == 0) {
            return m;
        }
        m.put("acc", a.getDouble(1));
        m.put("acc_stderr", a.isNullAt(2) ? null : a.getDouble(2) / Math.sqrt(n));
        m.put("acc_norm", a.getDouble(3));
        m.put("acc_norm_stderr", a.isNullAt(4) ? null : a.getDouble(4) / Math.sqrt(n));
        return m;
    }

    private static double round(double v, int digits) {
        double f = Math.pow(10, digits);
        return Math.round(v * f) / f;
    }

    void write(Configuration conf, String output) {
        try {
            Path p = new Path(output, "_summary.json");
            FileSystem fs = p.getFileSystem(conf);
            try (OutputStream out = fs.create(p, true)) {
                out.write(JSON.writerWithDefaultPrettyPrinter().writeValueAsString(json)
                        .getBytes(StandardCharsets.UTF_8));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the summary: " + e, e);
        }
    }

    /** The printed table. */
    @SuppressWarnings("unchecked")
    String table() {
        List<String[]> lines = new ArrayList<>();
        Map<String, Object> rows = section("rows");
        Map<String, Object> tokens = section("tokens");
        Map<String, Object> tp = section("throughput");
        lines.add(new String[] {"mode", (String) json.get("mode")});
        lines.add(new String[] {"model", String.valueOf(json.get("model"))});
        lines.add(new String[] {"backend / device", json.get("backends_used") + " / "
                + json.get("devices")});
        lines.add(new String[] {"partitions", String.valueOf(json.get("partitions"))});
        lines.add(new String[] {"rows in / out", rows.get("input") + " / " + rows.get("output")});
        lines.add(new String[] {"ok / truncated / error", rows.get("ok") + " / "
                + rows.get("truncated") + " / " + rows.get("error")});
        lines.add(new String[] {"input tokens", String.valueOf(tokens.get("input"))});
        lines.add(new String[] {"output tokens", String.valueOf(tokens.get("output"))});
        lines.add(new String[] {"wall time (s)", String.valueOf(json.get("wall_s"))});
        lines.add(new String[] {"rows/s", String.valueOf(tp.get("rows_per_s"))});
        lines.add(new String[] {"input tokens/s", String.valueOf(tp.get("input_tokens_per_s"))});
        lines.add(new String[] {"output tokens/s", String.valueOf(tp.get("output_tokens_per_s"))});
        if (json.containsKey("polar")) {
            Map<String, Object> p = section("polar");
            lines.add(new String[] {"Polar Sparsity", String.valueOf(p.get("settings"))});
            lines.add(new String[] {"active head fraction",
                    fmtOrNa(p.get("active_head_fraction"))});
            lines.add(new String[] {"active neuron fraction",
                    fmtOrNa(p.get("active_neuron_fraction"))});
            lines.add(new String[] {"router time (ms)", p.get("router_ms") + " ("
                    + fmtPercent(p.get("router_share_of_engine_time")) + " of engine time)"});
        }
        if (json.containsKey("latency_ms")) {
            Map<String, Object> l = section("latency_ms");
            lines.add(new String[] {"TTFT p50 / p95 (ms)", l.get("ttft_p50") + " / "
                    + l.get("ttft_p95")});
            lines.add(new String[] {"TPOT mean / p50 (ms)", l.get("tpot_mean") + " / "
                    + l.get("tpot_p50")});
        }
        if (json.containsKey("score")) {
            Map<String, Object> s = section("score");
            for (String k : List.of("documents", "token_perplexity", "word_perplexity",
                    "byte_perplexity", "bits_per_byte")) {
                lines.add(new String[] {k.replace('_', ' '), fmt(s.get(k))});
            }
        }
        if (json.containsKey("mc")) {
            Map<String, Object> s = section("mc");
            lines.add(new String[] {"questions", String.valueOf(s.get("questions"))});
            lines.add(new String[] {"acc", fmt(s.get("acc")) + " ± " + fmt(s.get("acc_stderr"))});
            lines.add(new String[] {"acc_norm", fmt(s.get("acc_norm")) + " ± "
                    + fmt(s.get("acc_norm_stderr"))});
        }
        int w = 0;
        for (String[] l : lines) {
            w = Math.max(w, l[0].length());
        }
        StringBuilder sb = new StringBuilder();
        String rule = "-".repeat(w + 2) + "+" + "-".repeat(40) + "\n";
        sb.append(rule);
        for (String[] l : lines) {
            sb.append(String.format(" %-" + w + "s | %s%n", l[0], l[1]));
        }
        sb.append(rule);
        return sb.toString();
    }

    private static String fmtOrNa(Object o) {
        return o == null ? "n/a" : fmt(o);
    }

    private static String fmtPercent(Object o) {
        if (o instanceof Double d) {
            return String.format("%.1f%%", 100 * d);
        }
        return "n/a";
    }

    private static String fmt(Object o) {
        if (o instanceof Double d) {
            return String.format("%.4f", d);
        }
        return String.valueOf(o);
    }
}
