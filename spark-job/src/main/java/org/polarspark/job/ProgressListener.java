package org.polarspark.job;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.spark.Success$;
import org.apache.spark.scheduler.AccumulableInfo;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerExecutorMetricsUpdate;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.Tuple4;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Logs progress while partitions run: rows done out of the total, rate, and an ETA. Rows done
 * come from the job's accumulator: finished tasks' final counts (from task-end events, so a
 * failed attempt's rows are not counted) plus running tasks' partial counts (from executor
 * heartbeats, {@code spark.executor.heartbeatInterval}).
 */
final class ProgressListener extends SparkListener {
    private static final Logger LOG = LoggerFactory.getLogger(ProgressListener.class);

    private final long accumulatorId;
    private final long total;
    private final long intervalNs;
    private final long startNs = System.nanoTime();
    private final Map<Long, Long> running = new ConcurrentHashMap<>();
    private long completed;
    private long lastLogNs;

    ProgressListener(long accumulatorId, long total, int intervalS) {
        this.accumulatorId = accumulatorId;
        this.total = total;
        this.intervalNs = intervalS * 1_000_000_000L;
        this.lastLogNs = startNs;
    }

    @Override
    public void onExecutorMetricsUpdate(SparkListenerExecutorMetricsUpdate update) {
        for (Tuple4<Object, Object, Object, scala.collection.immutable.Seq<AccumulableInfo>> t
                : CollectionConverters.asJava(update.accumUpdates())) {
            for (AccumulableInfo a : CollectionConverters.asJava(t._4())) {
                if (a.id() == accumulatorId && a.update().isDefined()) {
                    running.put((Long) t._1(), toLong(a.update().get()));
                }
            }
        }
        maybeLog(false);
    }

    @Override
    public void onTaskEnd(SparkListenerTaskEnd end) {
        running.remove(end.taskInfo().taskId());
        if (end.reason() == Success$.MODULE$) {
            for (AccumulableInfo a : CollectionConverters.asJava(end.taskInfo().accumulables())) {
                if (a.id() == accumulatorId && a.update().isDefined()) {
                    synchronized (this) {
                        completed += toLong(a.update().get());
                    }
                }
            }
        }
        maybeLog(true);
    }

    private static long toLong(Object o) {
        return o instanceof Number n ? n.longValue() : Long.parseLong(o.toString());
    }

    /** Rows done so far (finished tasks plus running tasks' last heartbeat). */
    synchronized long done() {
        long d = completed;
        for (long v : running.values()) {
            d += v;
        }
        return Math.min(d, total);
    }

    private synchronized void maybeLog(boolean taskEnded) {
        long now = System.nanoTime();
        if (!taskEnded && now - lastLogNs < intervalNs) {
            return;
        }
        lastLogNs = now;
        long done = done();
        double elapsed = (now - startNs) / 1e9;
        double rate = elapsed > 0 ? done / elapsed : 0;
        String eta = done > 0 && done < total ? String.format("%.0f s", (total - done) / rate)
                : done >= total ? "0 s" : "unknown";
        LOG.info(String.format("Progress: %d / %d rows (%.1f%%), %.1f rows/s, elapsed %.0f s, "
                        + "ETA %s", done, total, total > 0 ? 100.0 * done / total : 100.0, rate,
                elapsed, eta));
    }
}
