package org.polarspark.polar;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.polarspark.cpu.CpuDecoder;
import org.polarspark.cpu.CpuEngine;
import org.polarspark.cpu.CpuWeights;
import org.polarspark.generate.LoglikelihoodRequest;
import org.polarspark.generate.LoglikelihoodResult;
import org.polarspark.generate.Scoring;
import org.polarspark.model.Checkpoint;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.TextTokenizer;

/**
 * What Polar Sparsity costs in accuracy (issue 7, step 5), on the CPU engine: dense vs Polar at
 * several head densities, MLP sparsity on/off (ReLU models), Polar in decode only (dense prefill,
 * as deployed) and at every token, on {@code datasets/eval/perplexity.jsonl} (token-level
 * perplexity over lm-eval {@code loglikelihood_rolling} windows) and {@code mc_cloze.jsonl}
 * (lm-eval {@code multiple_choice}: acc = argmax of summed log-likelihood, acc_norm = argmax of
 * log-likelihood / choice length in code points; ties to the lower index), the same semantics as
 * the Spark job's score and mc modes.
 *
 * <pre>
 * java ... org.polarspark.polar.PolarAccuracyReport --model NAME=MODEL_DIR[:ROUTER_DIR] ...
 *     [--passages N] [--mc N] [--threads T] [--out bench/results] [--ship]
 *     [--name polar-accuracy] [--resume EARLIER.json] [--from EARLIER.json]
 *     [--only decode|every]
 *     [--densities 1.0,0.75,...]
 * </pre>
 *
 * ROUTER_DIR holds {@code polar/} (default: the model directory). With {@code --ship}, each
 * model's routers are written into MODEL_DIR/polar with the chosen default density. The JSON
 * ({@code <out>/<name>-<date>.json}) is rewritten after every row, so a stopped run keeps its
 * rows; {@code --resume} reuses an earlier run's evaluated rows and computes the rest;
 * {@code --from} only redoes the choice, the Markdown and shipping from an earlier JSON.
 */
public final class PolarAccuracyReport {
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(SerializationFeature.INDENT_OUTPUT);
    static final double[] DENSITIES = {1.0, 0.75, 0.625, 0.5, 0.375, 0.25};
    /**
     * Default-density rule: test ppl rise at most 2%, MC accuracy drop at most 1 point, with
     * acc_norm (lm-eval's length-normalised accuracy) as the MC metric.
     */
    static final double MAX_PPL_RISE = 0.02;
    static final double MAX_ACC_DROP = 0.01;

    private PolarAccuracyReport() {
    }

    /** One evaluated configuration. */
    public record Scores(double ppl, long tokens, double acc, double accNorm, int items,
                         double seconds) {
    }

    /** An MC item. */
    record Mc(String context, List<String> choices, int label) {
    }

    /** The evaluation data, tokenized. */
    public static final class EvalSet {
        final List<List<LoglikelihoodRequest>> passages = new ArrayList<>();
        final List<List<LoglikelihoodRequest>> mc = new ArrayList<>();
        final List<Mc> items = new ArrayList<>();
        long tokens;

        /** The first {@code passages} passages and {@code mcItems} MC items. */
        public static EvalSet load(TextTokenizer tok, ModelConfig mc, Path evalDir, int passages,
                                   int mcItems) throws IOException {
            EvalSet e = new EvalSet();
            int prefix = mc.bosTokenId() >= 0 ? mc.bosTokenId() : mc.eosTokenIds().get(0);
            List<String> lines = Files.readAllLines(evalDir.resolve("perplexity.jsonl"));
            for (int i = 0; i < Math.min(passages, lines.size()); i++) {
                int[] ids = tok.encodePlain(JSON.readTree(lines.get(i)).get("text").asText());
                e.tokens += ids.length;
                e.passages.add(Scoring.rollingWindows(ids, prefix, mc.maxPositions()));
            }
            lines = Files.readAllLines(evalDir.resolve("mc_cloze.jsonl"));
            for (int i = 0; i < Math.min(mcItems, lines.size()); i++) {
                JsonNode n = JSON.readTree(lines.get(i));
                List<String> ch = new ArrayList<>();
                n.get("choices").forEach(c -> ch.add(c.asText()));
                Mc item = new Mc(n.get("context").asText(), ch, n.get("label").asInt());
                List<LoglikelihoodRequest> reqs = new ArrayList<>();
                for (String c : ch) {
                    reqs.add(Scoring.contextContinuation(tok, item.context(), c));
                }
                e.items.add(item);
                e.mc.add(reqs);
            }
            return e;
        }

        public int passageCount() {
            return passages.size();
        }

        public int mcCount() {
            return items.size();
        }
    }

    /** Scores one engine on the set, requests spread over threads. */
    public static Scores evaluate(CpuEngine engine, EvalSet set, int threads) throws Exception {
        long t0 = System.nanoTime();
        List<LoglikelihoodRequest> all = new ArrayList<>();
        for (List<LoglikelihoodRequest> p : set.passages) {
            all.addAll(p);
        }
        int pplReqs = all.size();
        for (List<LoglikelihoodRequest> m : set.mc) {
            all.addAll(m);
        }
        double[] ll = new double[all.size()];
        // Longest first, round-robin over threads, so the threads finish together.
        Integer[] order = new Integer[all.size()];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        java.util.Arrays.sort(order, (a, b) -> Integer.compare(
                all.get(b).context().length + all.get(b).continuation().length,
                all.get(a).context().length + all.get(a).continuation().length));
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> fs = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int tt = t;
                fs.add(pool.submit(() -> {
                    for (int q = tt; q < order.length; q += threads) {
                        int i = order[q];
                        LoglikelihoodResult r = engine.loglikelihood(List.of(all.get(i)))
                                .results().get(0);
                        ll[i] = r.loglikelihood();
                    }
                    return null;
                }));
            }
            for (Future<?> f : fs) {
                f.get();
            }
        } finally {
            pool.shutdownNow();
        }
        double sum = 0;
        long n = 0;
        for (int i = 0; i < pplReqs; i++) {
            sum += ll[i];
            n += all.get(i).continuation().length;
        }
        int acc = 0;
        int accNorm = 0;
        int at = pplReqs;
        for (Mc item : set.items) {
            int k = item.choices().size();
            double[] raw = new double[k];
            double[] norm = new double[k];
            for (int j = 0; j < k; j++) {
                raw[j] = ll[at + j];
                String c = item.choices().get(j);
                norm[j] = raw[j] / c.codePointCount(0, c.length());
            }
            at += k;
            acc += argmax(raw) == item.label() ? 1 : 0;
            accNorm += argmax(norm) == item.label() ? 1 : 0;
        }
        int items = set.items.size();
        return new Scores(Math.exp(-sum / n), n, items == 0 ? 0 : (double) acc / items,
                items == 0 ? 0 : (double) accNorm / items, items,
                (System.nanoTime() - t0) / 1e9);
    }

    /** Index of the largest value, the lowest among equal ones (numpy argmax). */
    static int argmax(double[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

    public static void main(String[] args) throws Exception {
        Map<String, Path[]> models = new LinkedHashMap<>();
        int passages = 40;
        int mcItems = 200;
        int threads = Runtime.getRuntime().availableProcessors();
        Path out = Path.of("bench/results");
        Path evalDir = Path.of("datasets/eval");
        boolean ship = false;
        Path from = null;
        Path resume = null;
        boolean[] modes = {false, true}; // decode only, every token
        double[] densities = DENSITIES;
        String name = "polar-accuracy";
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--model" -> {
                    String[] kv = args[++i].split("=", 2);
                    String[] dirs = kv[1].split(":", 2);
                    Path m = Path.of(dirs[0]);
                    models.put(kv[0], new Path[] {m, dirs.length > 1 ? Path.of(dirs[1]) : m});
                }
                case "--passages" -> passages = Integer.parseInt(args[++i]);
                case "--mc" -> mcItems = Integer.parseInt(args[++i]);
                case "--threads" -> threads = Integer.parseInt(args[++i]);
                case "--out" -> out = Path.of(args[++i]);
                case "--eval" -> evalDir = Path.of(args[++i]);
                case "--ship" -> ship = true;
                case "--name" -> name = args[++i];
                case "--from" -> from = Path.of(args[++i]);
                case "--resume" -> resume = Path.of(args[++i]);
                case "--only" -> {
                    String o = args[++i];
                    if (!o.equals("decode") && !o.equals("every")) {
                        throw new IllegalArgumentException("--only must be decode or every, got "
                                + o);
                    }
                    modes = new boolean[] {o.equals("every")};
                }
                case "--densities" -> {
                    String[] p = args[++i].split(",");
                    densities = new double[p.length];
                    for (int j = 0; j < p.length; j++) {
                        densities[j] = Double.parseDouble(p[j]);
                    }
                }
                default -> throw new IllegalArgumentException("unknown argument: " + args[i]);
            }
        }
        if (from != null) {
            // Re-run only the choice, the markdown and shipping on an earlier report's JSON.
            finish((ObjectNode) JSON.readTree(from.toFile()), out, ship);
            return;
        }
        String date = LocalDate.now(ZoneOffset.UTC).toString();
        ObjectNode root = JSON.createObjectNode();
        root.put("date", date);
        root.put("name", name + "-" + date);
        root.put("command", "PolarAccuracyReport " + String.join(" ", args));
        root.put("backend", "cpu (CpuEngine, fp32 reference decoder)");
        root.put("machine", Runtime.getRuntime().availableProcessors() + " CPU cores, "
                + System.getProperty("os.arch") + ", Java " + System.getProperty("java.version"));
        root.put("threads", threads);
        root.put("passages", passages);
        root.put("mc_items", mcItems);
        root.put("rule", "default density = lowest density whose decode-only test perplexity "
                + "rises <= 2% and MC acc_norm drops <= 1 point vs dense");
        root.put("complete", false);
        ObjectNode res = root.putObject("models");
        // Load every model first; then evaluate in priority order (dense and the deployed
        // decode-only rows of every model before the every-token rows), writing the JSON after
        // each row, so that an interrupted run still leaves every finished row behind.
        List<Model> loaded = new ArrayList<>();
        for (Map.Entry<String, Path[]> e : models.entrySet()) {
            loaded.add(Model.load(e.getKey(), e.getValue()[0], e.getValue()[1], evalDir,
                    passages, mcItems, res));
        }
        Path partial = out.resolve(name + "-" + date + ".json");
        Files.createDirectories(out);
        if (resume != null) {
            // Rows of an earlier (stopped) run with the same models and data are reused: an
            // evaluated configuration is identified by (groups kept, MLP, every token).
            JsonNode old = JSON.readTree(resume.toFile());
            for (Model m : loaded) {
                JsonNode om = old.path("models").path(m.name);
                if (om.isMissingNode() || om.get("passages").asInt() != m.set.passageCount()
                        || om.get("mc_items").asInt() != m.set.mcCount()) {
                    continue;
                }
                for (JsonNode r : om.get("rows")) {
                    Scores sc = new Scores(r.get("ppl").asDouble(), r.get("tokens").asLong(),
                            r.get("acc").asDouble(), r.get("acc_norm").asDouble(),
                            r.get("items").asInt(), r.get("seconds").asDouble());
                    if (r.get("config").asText().equals("dense")) {
                        m.dense = sc;
                    } else if (r.get("note").asText().isEmpty()) {
                        m.done.put(r.get("groups_kept").asInt() + "/" + r.get("mlp").asBoolean()
                                + "/" + r.get("every_token").asBoolean(), sc);
                    }
                }
            }
            root.put("resumed_from", resume.toString());
        }
        for (Model m : loaded) {
            if (m.dense == null) {
                m.dense = evaluate(new CpuEngine(m.dec, m.tok, 1), m.set, threads);
            }
            addRow(m.rows, "dense", 1.0, false, false, m.dense, m.dense, m.mc.numKvHeads());
            log(m.name, "dense", m.dense);
            writeJson(root, partial);
        }
        // Decode only (as deployed: what the default-density rule reads) before every token;
        // within each, densities from high to low across models, so a stopped run has the rows
        // the rule needs.
        for (boolean every : modes) {
            for (double d : densities) {
                for (Model m : loaded) {
                    boolean relu = m.pc.mlp() != null;
                    for (boolean mlpOn : relu ? new boolean[] {false, true}
                            : new boolean[] {false}) {
                        m.row(d, mlpOn, every, threads);
                        writeJson(root, partial);
                    }
                }
            }
        }
        for (Model m : loaded) {
            m.tok.close();
        }
        root.put("complete", true);
        finish(root, out, ship);
    }

    /** One model under evaluation: its engine parts, data, routers and finished rows. */
    private static final class Model {
        String name;
        ModelConfig mc;
        CpuDecoder dec;
        TextTokenizer tok;
        PolarConfig pc;
        RouterWeights rw;
        EvalSet set;
        ArrayNode rows;
        Scores dense;
        final Map<String, Scores> done = new LinkedHashMap<>();

        static Model load(String name, Path modelDir, Path routerDir, Path evalDir, int passages,
                          int mcItems, ObjectNode res) throws IOException {
            Model m = new Model();
            m.name = name;
            Checkpoint ckpt = Checkpoint.open(modelDir);
            m.mc = ckpt.config();
            m.dec = new CpuDecoder(CpuWeights.load(ckpt));
            m.tok = TextTokenizer.load(modelDir, m.mc);
            m.pc = PolarConfig.load(routerDir, m.mc);
            m.rw = RouterWeights.load(routerDir, m.pc);
            m.set = EvalSet.load(m.tok, m.mc, evalDir, passages, mcItems);
            ObjectNode o = res.putObject(name);
            o.put("model_dir", modelDir.toString());
            o.put("router_dir", routerDir.toString());
            o.put("passages", m.set.passageCount());
            o.put("scored_tokens", m.set.tokens);
            o.put("mc_items", m.set.mcCount());
            o.put("num_kv_heads", m.mc.numKvHeads());
            o.put("relu_mlp", m.pc.mlp() != null);
            o.set("calibration", m.pc.calibration());
            m.rows = o.putArray("rows");
            return m;
        }

        /** Evaluates (or reuses) one Polar configuration and adds its row. */
        void row(double d, boolean mlpOn, boolean every, int threads) throws Exception {
            PolarConfig c = pc.withDensity(d);
            if (!mlpOn) {
                c = c.withMlp(null);
            }
            int kept = c.groupsKept(1);
            String mode = every ? "every token" : "decode only";
            String note = "";
            // Identical selections give identical numbers: evaluate once.
            String key = kept + "/" + mlpOn + "/" + every;
            Scores s;
            if (!mlpOn && kept == mc.numKvHeads()) {
                s = dense;
                note = "all groups kept, dense MLP: the dense arithmetic";
            } else if (mlpOn && every && everyCallFallsBack(c, set)
                    && (kept == mc.numKvHeads() || done.containsKey(kept + "/false/true"))) {
                // Every-token forwards put a whole request through one call, and for every
                // request length of this set the MLP union k exceeds 0.8 F at every layer (dense
                // fallback): the heads-only row (or dense) is the same arithmetic.
                s = kept == mc.numKvHeads() ? dense : done.get(kept + "/false/true");
                note = "every-token forwards are one call per request and every request's "
                        + "token count selects a k above 0.8 F at every layer (dense MLP "
                        + "fallback), so this equals the "
                        + (kept == mc.numKvHeads() ? "dense row" : "heads-only row");
            } else if (done.containsKey(key)) {
                s = done.get(key);
                note = "same groups kept (" + kept + " of " + mc.numKvHeads()
                        + ") as an evaluated density";
            } else {
                s = evaluate(new CpuEngine(dec, tok, 1, c, rw, every), set, threads);
                done.put(key, s);
            }
            log(name, String.format(Locale.ROOT, "d=%.3f mlp=%s %s", d, mlpOn, mode), s);
            addRow(rows, "polar", d, mlpOn, every, s, dense, kept).put("note", note);
        }
    }

    private static void writeJson(ObjectNode root, Path file) throws IOException {
        Files.writeString(file, JSON.writeValueAsString(root) + "\n", StandardCharsets.UTF_8);
    }

    /**
     * Chooses each model's default density, writes the report's .json and .md under out and,
     * with ship, the routers with that density into each model directory.
     */
    static void finish(ObjectNode root, Path out, boolean ship) throws IOException {
        String date = root.get("date").asText();
        String report = root.has("name") ? root.get("name").asText() : "polar-accuracy-" + date;
        StringBuilder md = new StringBuilder();
        md.append("# Polar Sparsity accuracy, ").append(date).append("\n\n");
        md.append("CPU engine (fp32 reference decoder), ").append(root.get("machine").asText())
                .append(", ").append(root.get("threads").asInt()).append(" threads. Generated by "
                + "`org.polarspark.polar.PolarAccuracyReport`; plot by `PolarAccuracyPlot` "
                + "(test scope).\n\n");
        md.append("Test perplexity is token-level over the passages' lm-eval rolling windows "
                + "(every token scored once); MC acc / acc_norm as lm-eval multiple_choice. "
                + "\"decode only\": contexts prefilled dense, continuation tokens fed one "
                + "per step through the routers (for perplexity the first window's context is "
                + "BOS alone, so nearly every scored token is routed); \"every token\": "
                + "prompt tokens routed too. Engine batch 1 (MLP k from the B=1 bucket in "
                + "decode steps).\n\n");
        if (root.has("command")) {
            md.append("Command: `java ... org.polarspark.polar.")
                    .append(root.get("command").asText()).append("`.\n\n");
        }
        if (root.has("complete") && !root.get("complete").asBoolean()) {
            md.append("**Incomplete run**: the rows below are those that finished before the run "
                    + "was stopped (rows are evaluated in priority order: dense and the deployed "
                    + "decode-only rows of every model first, then the every-token rows); a "
                    + "default density is chosen only from evaluated rows.\n\n");
        }
        int items = root.get("mc_items").asInt();
        md.append(String.format(Locale.ROOT, "Resolution: with n MC items one item is 100/n "
                + "points (%.2f at n = %d) and the standard error of an accuracy near 0.3 is "
                + "about sqrt(0.3 x 0.7 / n) (%.1f points), so the 1-point criterion is %s; "
                + "differences between configurations on the same items are paired and vary "
                + "less. Calibration: see each model's polar.json `calibration` record (copied "
                + "into the JSON).%n%n", 100.0 / items, items,
                100 * Math.sqrt(0.21 / items), items >= 500 ? "about 5 items"
                        : "below the resolution of this subset"));
        for (Iterator<Map.Entry<String, JsonNode>> it = root.get("models").fields();
             it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String name = e.getKey();
            ObjectNode m = (ObjectNode) e.getValue();
            ArrayNode rows = (ArrayNode) m.get("rows");
            boolean relu = m.get("relu_mlp").asBoolean();
            JsonNode denseRow = rows.get(0);
            Scores dense = new Scores(denseRow.get("ppl").asDouble(), 0,
                    denseRow.get("acc").asDouble(), denseRow.get("acc_norm").asDouble(), 0, 0);
            boolean mlpOn = relu;
            double chosen = relu ? lowestContiguous(rows, dense, true) : 1.0;
            if (relu && !passes(rows, dense, 1.0, true)) {
                mlpOn = false; // MLP sparsity alone breaks the rule: ship heads only
            }
            if (!mlpOn) {
                chosen = lowestContiguous(rows, dense, false);
            }
            m.put("default_density", chosen);
            m.put("default_mlp_sparsity", mlpOn);
            md.append("## ").append(name).append("\n\n");
            md.append(String.format(Locale.ROOT, "%d passages (%d scored tokens) of "
                            + "perplexity.jsonl and the first %d items of mc_cloze.jsonl. Routers: "
                            + "`%s`. G = %d KV groups; groups kept per token at layers 1..: "
                            + "max(1, floor(density x G)); layer 0 dense.%n%n",
                    m.get("passages").asInt(), m.get("scored_tokens").asLong(),
                    m.get("mc_items").asInt(), m.get("router_dir").asText(),
                    m.get("num_kv_heads").asInt()));
            md.append("| config | head density | groups kept | MLP sparsity | Polar applied | "
                    + "test ppl | Δppl | MC acc | MC acc_norm | s | note |\n");
            md.append("|---|---:|---:|---|---|---:|---:|---:|---:|---:|---|\n");
            List<JsonNode> sorted = new ArrayList<>();
            rows.forEach(sorted::add);
            // dense first; then decode only before every token, MLP off before on, density
            // from high to low
            sorted.sort(java.util.Comparator.comparing((JsonNode r) -> !r.get("config").asText()
                            .equals("dense"))
                    .thenComparing(r -> r.get("every_token").asBoolean())
                    .thenComparing(r -> r.get("mlp").asBoolean())
                    .thenComparing(r -> -r.get("density").asDouble()));
            for (JsonNode r : sorted) {
                boolean isDense = r.get("config").asText().equals("dense");
                md.append(String.format(Locale.ROOT,
                        "| %s | %s | %d | %s | %s | %.3f | %+.2f%% | %.3f | %.3f | %.0f | %s |\n",
                        r.get("config").asText(), isDense ? "-"
                                : String.valueOf(r.get("density").asDouble()),
                        r.get("groups_kept").asInt(),
                        isDense ? "-" : r.get("mlp").asBoolean() ? "on" : "off",
                        isDense ? "-" : r.get("every_token").asBoolean() ? "every token"
                                : "decode only", r.get("ppl").asDouble(),
                        100 * r.get("ppl_rise").asDouble(), r.get("acc").asDouble(),
                        r.get("acc_norm").asDouble(), r.get("seconds").asDouble(),
                        r.has("note") ? r.get("note").asText() : ""));
            }
            md.append(String.format(Locale.ROOT, "%nDefault for %s: head density **%s**, MLP "
                    + "sparsity %s (decode only; rule: test ppl +<=2%% and MC acc_norm -<=1 point "
                    + "vs dense at this and every higher density%s).%n%n", name, chosen,
                    relu ? (mlpOn ? "on" : "off") : "n/a",
                    relu && !mlpOn ? "; MLP sparsity fails the rule even at density 1.0, so it "
                            + "ships off" : ""));
            if (ship) {
                Path modelDir = Path.of(m.get("model_dir").asText());
                Path routerDir = Path.of(m.get("router_dir").asText());
                ModelConfig mc = ModelConfig.load(modelDir.resolve("config.json"));
                PolarConfig pc = PolarConfig.load(routerDir, mc);
                RouterWeights rw = RouterWeights.load(routerDir, pc);
                PolarConfig shipped = pc.withDensity(chosen);
                ObjectNode cal = shipped.calibration();
                cal.put("default_density_rule", root.get("rule").asText());
                cal.put("accuracy_report", "bench/results/" + report + ".md");
                if (!mlpOn && pc.mlp() != null) {
                    cal.set("mlp_k_table_not_shipped", JSON.valueToTree(pc.mlp().k()));
                    cal.put("mlp_note", "MLP routers kept in the router file; mlp is null "
                            + "because MLP sparsity failed the accuracy rule");
                }
                shipped = shipped.withCalibration(cal);
                if (!mlpOn) {
                    shipped = shipped.withMlp(null);
                }
                if (!mlpOn && rw.hasMlp()) {
                    // a heads-only file: drop the MLP router tensors
                    float[][] hw = new float[pc.numLayers()][];
                    float[][] hb = new float[pc.numLayers()][];
                    for (int l = 0; l < hw.length; l++) {
                        hw[l] = rw.headWeight(l);
                        hb[l] = rw.headBias(l);
                    }
                    rw = new RouterWeights(shipped, hw, hb, null, null);
                }
                rw.write(modelDir, shipped);
                shipped.write(modelDir);
                md.append("Shipped: `").append(PolarConfig.file(modelDir)).append("`.\n\n");
            }
        }
        Files.createDirectories(out);
        Files.writeString(out.resolve(report + ".json"),
                JSON.writeValueAsString(root) + "\n", StandardCharsets.UTF_8);
        Files.writeString(out.resolve(report + ".md"), md.toString(),
                StandardCharsets.UTF_8);
        System.out.println(md);
    }

    /** True when the deployed row (decode only) at density d passes the rule. */
    static boolean passes(ArrayNode rows, Scores dense, double d, boolean mlp) {
        for (JsonNode r : rows) {
            if (r.get("config").asText().equals("polar") && !r.get("every_token").asBoolean()
                    && r.get("mlp").asBoolean() == mlp && r.get("density").asDouble() == d) {
                return r.get("ppl").asDouble() <= dense.ppl() * (1 + MAX_PPL_RISE)
                        && r.get("acc_norm").asDouble() >= dense.accNorm() - MAX_ACC_DROP
                        - 1e-12;
            }
        }
        return false;
    }

    /**
     * True when, for every request of the set run as one every-token forward (context +
     * continuation - 1 tokens), the k of that token count falls back to a dense MLP at every
     * layer.
     */
    static boolean everyCallFallsBack(PolarConfig c, EvalSet set) {
        java.util.Set<Integer> lengths = new java.util.TreeSet<>();
        for (List<List<LoglikelihoodRequest>> group : List.of(set.passages, set.mc)) {
            for (List<LoglikelihoodRequest> reqs : group) {
                for (LoglikelihoodRequest r : reqs) {
                    lengths.add(r.context().length + r.continuation().length - 1);
                }
            }
        }
        for (int n : lengths) {
            for (int l = 0; l < c.numLayers(); l++) {
                if (!PolarConfig.mlpFallsBack(c.mlpK(l, n), c.ffnDim())) {
                    return false;
                }
            }
        }
        return true;
    }

    /** True when the largest bucket's k falls back to a dense MLP at every layer. */
    static boolean unionFallsBack(PolarConfig c) {
        for (int l = 0; l < c.numLayers(); l++) {
            if (!PolarConfig.mlpFallsBack(c.mlpK(l, Integer.MAX_VALUE), c.ffnDim())) {
                return false;
            }
        }
        return true;
    }

    /**
     * The lowest density d such that every deployed row (decode only, with or without MLP
     * sparsity as {@code mlp} says) at density &gt;= d passes the rule; 1.0 when none does.
     */
    static double lowestContiguous(ArrayNode rows, Scores dense, boolean mlp) {
        // Walk the densities from 1.0 down; a density without a row (a stopped run) ends the
        // walk like a failing one: the rule must hold at every density down to the chosen one.
        double chosen = 1.0;
        java.util.TreeSet<Double> all = new java.util.TreeSet<>(java.util.Comparator
                .reverseOrder());
        for (JsonNode r : rows) {
            if (r.get("config").asText().equals("polar")) {
                all.add(r.get("density").asDouble());
            }
        }
        for (double d : all) {
            JsonNode row = null;
            for (JsonNode r : rows) {
                if (r.get("config").asText().equals("polar") && !r.get("every_token").asBoolean()
                        && r.get("mlp").asBoolean() == mlp && r.get("density").asDouble() == d) {
                    row = r;
                }
            }
            boolean ok = row != null
                    && row.get("ppl").asDouble() <= dense.ppl() * (1 + MAX_PPL_RISE)
                    && row.get("acc_norm").asDouble() >= dense.accNorm() - MAX_ACC_DROP - 1e-12;
            if (!ok) {
                break;
            }
            chosen = d;
        }
        return chosen;
    }

    private static ObjectNode addRow(ArrayNode rows, String config, double d, boolean mlp,
                                     boolean every, Scores s, Scores dense, int kept) {
        ObjectNode r = rows.addObject();
        r.put("config", config);
        r.put("density", d);
        r.put("groups_kept", kept);
        r.put("mlp", mlp);
        r.put("every_token", every);
        r.put("ppl", s.ppl());
        r.put("ppl_rise", s.ppl() / dense.ppl() - 1);
        r.put("acc", s.acc());
        r.put("acc_norm", s.accNorm());
        r.put("acc_drop", dense.acc() - s.acc());
        r.put("acc_norm_drop", dense.accNorm() - s.accNorm());
        r.put("tokens", s.tokens());
        r.put("items", s.items());
        r.put("seconds", Math.round(s.seconds() * 10) / 10.0);
        return r;
    }

    private static void log(String model, String what, Scores s) {
        System.err.printf(Locale.ROOT, "%s %s: ppl %.3f acc %.3f acc_norm %.3f (%.1f s)%n", model,
                what, s.ppl(), s.acc(), s.accNorm(), s.seconds());
    }
}
