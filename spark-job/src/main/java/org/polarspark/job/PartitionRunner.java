package org.polarspark.job;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.resource.ResourceInformation;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.util.LongAccumulator;
import org.apache.spark.util.TaskCompletionListener;
import org.polarspark.generate.Engine;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The executor side: one call per partition. Gets the engine from the executor's
 * {@link EngineCache}, cuts the partition's rows into batches of {@code batch-rows}, runs each
 * batch through the mode's {@link BatchProcessor} (Arrow in, Arrow out), and yields output rows
 * in input order. When the partition is done it writes its statistics file.
 *
 * <p>Output is a function of the input rows only (seeds derive from row ids; the engine's
 * results do not depend on batch composition), so a retried or speculative attempt writes the
 * same rows in the same order.
 */
final class PartitionRunner implements MapPartitionsFunction<Row, Row> {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(PartitionRunner.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Arrow memory one task may hold: batches are small (ids and results of batch-rows rows). */
    private static final long TASK_ARROW_LIMIT = 1L << 30;

    private final JobConfig cfg;
    private final HadoopConf hadoop;
    private final StructType input;
    private final String statsDir;
    private final LongAccumulator rowsDone;

    PartitionRunner(JobConfig cfg, HadoopConf hadoop, StructType input, String statsDir,
                    LongAccumulator rowsDone) {
        this.cfg = cfg;
        this.hadoop = hadoop;
        this.input = input;
        this.statsDir = statsDir;
        this.rowsDone = rowsDone;
    }

    /** One batch of rows of one mode: input rows in, output rows out (same order). */
    interface BatchProcessor {
        List<Row> process(List<Row> batch, PartitionStats stats);
    }

    @Override
    public Iterator<Row> call(Iterator<Row> rows) {
        long t0 = System.nanoTime();
        TaskContext tc = TaskContext.get();
        int partition = tc != null ? tc.partitionId() : 0;
        String gpu = gpuAddress(tc);
        Configuration conf = hadoop.get();
        EngineCache.Lease lease = EngineCache.get(cfg, conf, gpu);
        Engine engine = lease.engine();
        BufferAllocator allocator = new RootAllocator(TASK_ARROW_LIMIT);
        if (tc != null) {
            tc.addTaskCompletionListener((TaskCompletionListener) ctx -> allocator.close());
        }
        PartitionStats stats = new PartitionStats();
        stats.partition = partition;
        stats.attempt = tc != null ? tc.attemptNumber() : 0;
        stats.executorId = executorId();
        stats.host = hostName();
        stats.device = engine.deviceName();
        stats.backend = engine.backend();
        stats.gpuAddress = gpu;
        stats.maxBatch = cfg.maxBatch();
        stats.batchRows = cfg.batchRows();
        stats.modelLoadMs = lease.loadMs();
        stats.modelCopied = lease.loadedNow() && lease.local().copied();
        stats.sparsity = lease.polar().describe();
        BatchProcessor processor = switch (cfg.mode()) {
            case GENERATE -> new GenerateBatches(cfg, input, engine, allocator);
            case SCORE -> new ScoreBatches(cfg, input, engine, allocator);
            case MC -> new McBatches(cfg, input, engine, allocator);
            case CALIBRATE -> throw new IllegalStateException("calibrate runs CalibrateJob's "
                    + "tasks, not row partitions");
        };
        boolean failOnce = cfg.testFailOnceMarker() != null
                && partition == cfg.testFailPartition();
        LOG.debug("Partition {}: {} engine on {} (GPU {})", partition, engine.backend(),
                engine.deviceName(), gpu);
        return new Iterator<>() {
            private Iterator<Row> current = Collections.emptyIterator();
            private boolean finished;
            private int batches;

            @Override
            public boolean hasNext() {
                while (!current.hasNext()) {
                    if (finished) {
                        return false;
                    }
                    // Test hook: fail once the first batch's rows went to the writer.
                    if (failOnce && batches == 1 && createMarker(conf)) {
                        throw new IllegalStateException("injected failure: first attempt of "
                                + "partition " + partition + " (test.fail-once-marker)");
                    }
                    if (!rows.hasNext()) {
                        finished = true;
                        stats.finish((System.nanoTime() - t0) / 1e6, lease.polar().enabled());
                        writeStats(conf, stats);
                        return false;
                    }
                    List<Row> batch = new ArrayList<>(cfg.batchRows());
                    while (rows.hasNext() && batch.size() < cfg.batchRows()) {
                        batch.add(rows.next());
                    }
                    if (cfg.testRowDelayMs() > 0) {
                        sleep((long) cfg.testRowDelayMs() * batch.size());
                    }
                    long b0 = System.nanoTime();
                    current = processor.process(batch, stats).iterator();
                    LOG.debug("Partition {} batch {}: {} rows in {} ms", partition, batches,
                            batch.size(), (System.nanoTime() - b0) / 1_000_000);
                    stats.rows += batch.size();
                    rowsDone.add(batch.size());
                    batches++;
                }
                return true;
            }

            @Override
            public Row next() {
                if (!hasNext()) {
                    throw new NoSuchElementException();
                }
                return current.next();
            }
        };
    }

    /** The executor running this task ("driver" in local runs without an executor). */
    static String executorId() {
        return SparkEnv.get() != null ? SparkEnv.get().executorId() : "driver";
    }

    /** The first GPU address Spark's resource scheduling gave the task, or null. */
    static String gpuAddress(TaskContext tc) {
        if (tc == null) {
            return null;
        }
        ResourceInformation gpu = tc.resourcesJMap().get("gpu");
        if (gpu == null || gpu.addresses().length == 0) {
            return null;
        }
        return gpu.addresses()[0];
    }

    private static String hostName() {
        try {
            return java.net.InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            return "unknown";
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }

    private boolean createMarker(Configuration conf) {
        try {
            Path p = new Path(cfg.testFailOnceMarker());
            return p.getFileSystem(conf).createNewFile(p);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Writes {@code _stats/part-NNNNN.json}: to a temporary file, then renamed over any file an
     * earlier attempt of the partition left, so the directory holds one file per partition.
     */
    private void writeStats(Configuration conf, PartitionStats stats) {
        try {
            Path dir = new Path(statsDir);
            FileSystem fs = dir.getFileSystem(conf);
            String name = String.format("part-%05d.json", stats.partition);
            Path tmp = new Path(dir, "." + name + "." + stats.attempt + "."
                    + java.util.UUID.randomUUID() + ".tmp");
            Path dest = new Path(dir, name);
            try (OutputStream out = fs.create(tmp, true)) {
                out.write(JSON.writerWithDefaultPrettyPrinter().writeValueAsString(stats)
                        .getBytes(StandardCharsets.UTF_8));
            }
            if (!fs.rename(tmp, dest)) {
                fs.delete(dest, false);
                if (!fs.rename(tmp, dest)) {
                    fs.delete(tmp, false);
                    throw new IOException("cannot rename " + tmp + " to " + dest);
                }
            }
            LOG.info("Partition {} done: {} rows, {} input and {} output tokens in {} ms on {}{}",
                    stats.partition, stats.rows, stats.inputTokens, stats.outputTokens,
                    Math.round(stats.wallMs), stats.device, stats.routerMs == null ? ""
                            : String.format(" (%s: active heads %s, neurons %s, routers %.2f ms)",
                            stats.sparsity, stats.activeHeadFraction,
                            stats.activeNeuronFraction, stats.routerMs));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the statistics of partition "
                    + stats.partition + ": " + e, e);
        }
    }
}
