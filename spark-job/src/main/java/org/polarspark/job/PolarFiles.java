package org.polarspark.job;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.ModelFormatException;
import org.polarspark.polar.PolarConfig;
import org.polarspark.polar.PolarSettings;

/**
 * The driver's startup check of the Polar Sparsity files, read through the Hadoop FileSystem
 * API (so a polar-dir on any file system the driver can read is checked before any task runs):
 * {@code <polar-dir>/polar/polar.json} must exist, parse and fit the model's config.json, and
 * the router file it names must exist. Any failure is a startup error naming the file. The
 * router tensors themselves are checked by the engine when an executor loads them.
 *
 * @param dir         the polar-dir's qualified URI (the model's when polar-dir is not set)
 * @param settings    the settings as the engines get them (routerDir: the executors' local
 *                    copy is not known here, so null)
 * @param headDensity the effective per-layer head densities (polar-density applied)
 * @param mlpTable    polar.json has an MLP k table
 */
record PolarFiles(String dir, PolarSettings settings, double[] headDensity, boolean mlpTable) {
    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * Checks the files for a job with Polar on; null when Polar is off.
     *
     * @param model the model's qualified URI
     * @throws JobConfigException when a file is missing, malformed or does not fit the model
     */
    static PolarFiles check(JobConfig cfg, Configuration conf, String model) {
        if (!cfg.polar()) {
            return null;
        }
        String shown = cfg.polarDir() != null ? "polar-dir '" + cfg.polarDir() + "'"
                : "the model directory (polar-dir is not set)";
        Path json = null;
        try {
            Path d = new Path(cfg.polarDir() != null ? cfg.polarDir() : model);
            FileSystem fs = d.getFileSystem(conf);
            Path q = fs.makeQualified(d);
            Path polar = new Path(q, PolarConfig.DIR);
            json = new Path(polar, PolarConfig.FILE);
            if (!fs.isFile(json)) {
                throw new JobConfigException("Polar Sparsity is on (option 'polar') but " + json
                        + " does not exist: " + shown + " must hold " + PolarConfig.DIR + "/"
                        + PolarConfig.FILE + " and its router file (see the README, \"Polar "
                        + "Sparsity\"), or pass --polar false");
            }
            PolarConfig pc = PolarConfig.fromJson(read(fs, json), json.toString());
            Path configJson = new Path(model, "config.json");
            pc.validate(ModelConfig.fromJson(read(configJson.getFileSystem(conf), configJson),
                    configJson.toString()), json.toString());
            if (cfg.polarDensity() != null) {
                pc = pc.withDensity(cfg.polarDensity());
            }
            Path routers = new Path(polar, pc.routerFile());
            if (!fs.isFile(routers)) {
                throw new JobConfigException(routers + ": router weights not found (" + json
                        + " key 'router_file' names '" + pc.routerFile() + "')");
            }
            return new PolarFiles(q.toString(), cfg.polarSettings(null), pc.headDensity(),
                    pc.mlp() != null);
        } catch (ModelFormatException | IllegalArgumentException e) {
            throw new JobConfigException("Polar Sparsity: " + e.getMessage(), e);
        } catch (IOException e) {
            throw new JobConfigException("Polar Sparsity: cannot read "
                    + (json != null ? json : shown) + ": " + e, e);
        }
    }

    private static JsonNode read(FileSystem fs, Path file) throws IOException {
        try (InputStream in = fs.open(file)) {
            return JSON.readTree(in);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new ModelFormatException(file + ": not valid JSON: " + e.getOriginalMessage(),
                    e);
        }
    }

    /**
     * The footer's {@code polar.sparsity} entry: {@code PolarSettings.describe()}, the
     * polar-dir, the effective head densities and whether the MLP is routed, e.g.
     * {@code polar(density 0.5, decode only); polar-dir file:/m; head density 1.0 (layer 0),
     * 0.5 (layers 1-31); MLP dense}.
     */
    String sparsity() {
        return settings.describe() + "; polar-dir " + dir + "; head density "
                + runs(headDensity) + "; MLP " + (mlpTable ? "k table" : "dense");
    }

    /** Per-layer values as runs: "1.0 (layer 0), 0.5 (layers 1-31)". */
    static String runs(double[] v) {
        List<String> out = new ArrayList<>();
        int from = 0;
        for (int i = 1; i <= v.length; i++) {
            if (i == v.length || v[i] != v[from]) {
                out.add(v[from] + (i - 1 == from ? " (layer " + from + ")"
                        : " (layers " + from + "-" + (i - 1) + ")"));
                from = i;
            }
        }
        return String.join(", ", out);
    }
}
