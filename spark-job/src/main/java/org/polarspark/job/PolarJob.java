package org.polarspark.job;

import static org.apache.spark.sql.functions.col;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.time.Instant;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.util.LongAccumulator;
import org.polarspark.model.ModelFormatException;
import org.polarspark.polar.PolarSettings;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.Tuple2;

/**
 * The Spark application: {@code spark-submit --class org.polarspark.job.PolarJob APP.jar
 * [options]} (or {@code ./submit.sh}). Run with {@code --help} for the options.
 *
 * <p>Driver: read and check the input, give every row a stable row_id, choose partitions, then
 * one Spark job maps each partition through the engine ({@link PartitionRunner}) and writes
 * Parquet through Spark's commit protocol; finally the summary is computed, written and
 * printed. Exit status: 0 done, 1 the job failed, 2 a startup error (options, input, output).
 */
public final class PolarJob {
    private static final Logger LOG = LoggerFactory.getLogger(PolarJob.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    private PolarJob() {
    }

    public static void main(String[] args) {
        int status = main(args, true);
        if (status != 0) {
            System.exit(status);
        }
    }

    /** Runs the application; returns the exit status. */
    static int main(String[] args, boolean stopSpark) {
        if (Arrays.asList(args).contains("--help-markdown")) {
            System.out.print(JobOptions.markdown());
            return 0;
        }
        SparkConf sparkConf = new SparkConf(true); // spark.* system properties (spark-submit)
        Map<String, String> polar = new LinkedHashMap<>();
        for (Tuple2<String, String> kv : sparkConf.getAllWithPrefix("spark.polar.")) {
            polar.put("spark.polar." + kv._1(), kv._2());
        }
        JobConfig cfg;
        try {
            RawOptions raw = RawOptions.collect(Arrays.asList(args), polar);
            if (raw.help()) {
                System.out.print(JobOptions.help());
                return 0;
            }
            cfg = JobConfig.from(raw);
            for (String n : raw.notApplicable(cfg.mode())) {
                LOG.warn("Option '{}' does not apply to mode {} and is ignored", n,
                        cfg.mode().wire());
            }
        } catch (JobConfigException e) {
            System.err.println("polar-spark: " + e.getMessage());
            return 2;
        }
        SparkSession.Builder b = SparkSession.builder().appName("polar-spark "
                + cfg.mode().wire());
        if (!sparkConf.contains("spark.master")) {
            b.master("local[*]"); // embedded mode: no spark-submit, no master given
        }
        SparkSession spark = b.getOrCreate();
        try {
            if (cfg.mode() == Mode.CALIBRATE) {
                CalibrateJob.Summary s = CalibrateJob.run(spark, cfg);
                System.out.println();
                System.out.println("Polar Spark calibrate: wrote " + s.json().get("polar_json")
                        .asText() + " and " + s.json().get("router_file").asText());
                System.out.print(s.table());
                return 0;
            }
            JobSummary summary = run(spark, cfg);
            System.out.println();
            System.out.println("Polar Spark " + cfg.mode().wire() + ": wrote " + cfg.output());
            System.out.print(summary.table());
            return 0;
        } catch (JobConfigException e) {
            System.err.println("polar-spark: " + e.getMessage());
            return 2;
        } catch (RuntimeException e) {
            LOG.error("The job failed", e);
            System.err.println("polar-spark: " + (e instanceof JobFailedException ? e.getMessage()
                    : "the job failed: " + rootMessage(e)));
            return 1;
        } finally {
            if (stopSpark) {
                spark.stop();
            }
        }
    }

    /** The innermost cause's message (Spark wraps task failures several times). */
    static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        return t.getClass().getSimpleName() + ": " + t.getMessage();
    }

    /** The project version, from the build. */
    static String version() {
        try (InputStream in = PolarJob.class.getResourceAsStream("version.properties")) {
            Properties p = new Properties();
            if (in != null) {
                p.load(in);
            }
            return p.getProperty("version", "unknown");
        } catch (IOException e) {
            return "unknown";
        }
    }

    /** Runs one job on an existing session; returns its summary (also written and logged). */
    public static JobSummary run(SparkSession spark, JobConfig cfg) {
        if (cfg.mode() == Mode.CALIBRATE) {
            throw new IllegalArgumentException("mode calibrate writes polar/, not rows: run it "
                    + "through main (CalibrateJob)");
        }
        Configuration conf = spark.sparkContext().hadoopConfiguration();
        String model = checkModel(cfg, conf);
        PolarFiles polar = PolarFiles.check(cfg, conf, model);
        for (String n : cfg.idlePolarOptions()) {
            LOG.warn("Option '{}' has no effect while Polar Sparsity is off (polar=false)", n);
        }
        String output = prepareOutput(cfg, conf);
        Dataset<Row> rows = InputReader.read(spark, cfg, conf);
        long total = rows.count();
        int inputPartitions = rows.rdd().getNumPartitions();
        // auto: an input with fewer partitions than task slots is spread over twice as many
        // partitions as slots, so that the last, slowest partition does not run alone for long
        int slots = spark.sparkContext().defaultParallelism();
        int partitions = cfg.partitions() > 0 ? cfg.partitions()
                : inputPartitions >= slots ? inputPartitions : 2 * slots;
        if (partitions != inputPartitions) {
            // Hash by row_id, then sort: a retried task reads the same rows in the same order.
            rows = rows.repartition(partitions, col(InputReader.ROW_ID))
                    .sortWithinPartitions(InputReader.ROW_ID);
        }
        Map<String, String> metadata = metadata(cfg, model, polar);
        LOG.info("Polar Spark {} {}: {} rows from {} in {} partitions; model {}, backend {}, {}",
                version(), cfg.mode().wire(), total, cfg.input(), partitions, model,
                cfg.backend().wire(), metadata.get("polar.sparsity"));

        LongAccumulator done = spark.sparkContext().longAccumulator("polar.rows.done");
        long expectedRows = total * cfg.n();
        ProgressListener progress = new ProgressListener(done.id(), total,
                cfg.progressIntervalS());
        spark.sparkContext().addSparkListener(progress);
        StructType outSchema = OutputSchemas.withPassthrough(cfg.mode(), rows.schema(), cfg);
        PartitionRunner runner = new PartitionRunner(cfg, new HadoopConf(conf), rows.schema(),
                new Path(output, "_stats").toString(), done);
        Instant started = Instant.now();
        try {
            rows.mapPartitions(runner, Encoders.row(outSchema))
                    .write()
                    .format(PolarParquetFileFormat.class.getName())
                    .option(PolarParquetFileFormat.METADATA_OPTION, toJson(metadata))
                    .mode(SaveMode.ErrorIfExists)
                    .save(output);
        } catch (Exception e) { // Spark throws SparkException, a checked exception, from Scala
            throw new JobFailedException("the job failed: " + failureReason(e, cfg), e);
        } finally {
            spark.sparkContext().removeSparkListener(progress);
        }
        Instant finished = Instant.now();
        JobSummary summary = JobSummary.compute(spark, cfg, conf, output, total, started,
                finished, metadata);
        long written = ((Number) summary.section("rows").get("output")).longValue();
        if (written != expectedRows) {
            throw new IllegalStateException("the partitions' statistics count " + written
                    + " output rows; expected " + expectedRows);
        }
        summary.write(conf, output);
        LOG.info("Summary written to {}/_summary.json", output);
        return summary;
    }

    /**
     * Why the Spark job failed. The model or the Polar Sparsity files failing to load on an
     * executor (a ModelFormatException; say a polar-dir the driver could read but the executors
     * cannot, or a router file that does not fit the model) is a configuration error, and said
     * so; any other failure is given by its innermost cause.
     */
    static String failureReason(Throwable e, JobConfig cfg) {
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (t instanceof ModelFormatException) {
                return "a configuration error: the executors could not load the model"
                        + (cfg.polar() ? " or its Polar Sparsity files (options 'model', "
                        + "'polar-dir', 'polar-density')" : "") + ": "
                        + t.getClass().getSimpleName() + ": " + t.getMessage();
            }
        }
        return rootMessage(e);
    }

    /** Footer key-value metadata of every part file. */
    static Map<String, String> metadata(JobConfig cfg, String model, PolarFiles polar) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("polar.version", version());
        m.put("polar.mode", cfg.mode().wire());
        m.put("polar.model", model);
        m.put("polar.backend", cfg.backend().wire());
        m.put("polar.cuda-dtype", cfg.cudaDtype().wire());
        m.put("polar.sparsity", polar == null ? PolarSettings.OFF.describe() : polar.sparsity());
        m.put("polar.sampling", toJson(cfg.samplingSettings()));
        m.put("polar.options", toJson(cfg.describe()));
        return m;
    }

    private static String toJson(Object o) {
        try {
            return JSON.writeValueAsString(o);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The model's qualified path; a startup error when it is not a model directory. */
    static String checkModel(JobConfig cfg, Configuration conf) {
        try {
            Path p = new Path(cfg.model());
            FileSystem fs = p.getFileSystem(conf);
            Path q = fs.makeQualified(p);
            if (!fs.exists(new Path(q, "config.json"))) {
                throw new JobConfigException("model '" + cfg.model() + "' (" + q + ") is not a "
                        + "model directory: it has no config.json");
            }
            return q.toString();
        } catch (IOException e) {
            throw new JobConfigException("cannot open model '" + cfg.model() + "': " + e, e);
        }
    }

    /** The qualified output path, after output-mode was applied. */
    static String prepareOutput(JobConfig cfg, Configuration conf) {
        try {
            Path p = new Path(cfg.output());
            FileSystem fs = p.getFileSystem(conf);
            Path q = fs.makeQualified(p);
            if (fs.exists(q)) {
                if (!cfg.overwrite()) {
                    throw new JobConfigException("output '" + cfg.output() + "' exists; pass "
                            + "--output-mode overwrite to replace it");
                }
                if (!fs.delete(q, true)) {
                    throw new JobConfigException("cannot delete output '" + q + "'");
                }
            }
            return q.toString();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot prepare output '" + cfg.output() + "'", e);
        }
    }

    /** For tests: the list of every option name. */
    static List<String> optionNames() {
        return JobOptions.ALL.stream().map(JobOption::name).toList();
    }
}
