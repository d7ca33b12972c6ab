package org.polarspark.job;

import java.nio.file.Paths;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.hadoop.conf.Configuration;
import org.polarspark.generate.Backend;
import org.polarspark.generate.Engine;
import org.polarspark.generate.EngineFactory;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One engine per (model, backend, GPU address, max batch) per executor JVM: the model is loaded
 * by the first task that needs it and shared by every later task (engines are thread-safe), not
 * reloaded per task or partition. Engines are closed when the JVM exits.
 */
final class EngineCache {
    private static final Logger LOG = LoggerFactory.getLogger(EngineCache.class);

    private EngineCache() {
    }

    /** The cache key. {@code gpu} is null for the CPU backend (one CPU engine per executor). */
    record Key(String model, Backend backend, String gpu, int maxBatch) {
    }

    /** An engine and what it cost the task that loaded it (0 when it was cached). */
    record Lease(Engine engine, Key key, long loadMs, boolean loadedNow,
                 ModelLocalizer.Localized local) {
    }

    private record Entry(Engine engine, ModelLocalizer.Localized local) {
    }

    private static final Map<Key, Entry> ENGINES = new ConcurrentHashMap<>();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(EngineCache::closeAll,
                "polar-engine-cache-close"));
    }

    /**
     * The engine for this task.
     *
     * @param gpuAddress the task's GPU from Spark's resource scheduling, or null
     */
    static Lease get(JobConfig cfg, Configuration conf, String gpuAddress) {
        Backend backend = cfg.backend().resolve(gpuAddress);
        String model = ModelLocalizer.qualify(cfg.model(), conf);
        Key key = new Key(model, backend, backend == Backend.CPU ? null : gpuAddress,
                cfg.maxBatch());
        Entry e = ENGINES.get(key);
        if (e != null) {
            return new Lease(e.engine(), key, 0, false, e.local());
        }
        long t0 = System.nanoTime();
        boolean[] loaded = {false};
        e = ENGINES.computeIfAbsent(key, k -> {
            ModelLocalizer.Localized local = ModelLocalizer.localize(cfg.model(), conf,
                    cfg.modelCacheDir() != null ? Paths.get(cfg.modelCacheDir())
                            : ModelLocalizer.defaultCacheRoot());
            LOG.info("Opening the {} engine for {} (GPU {}, max batch {}) from {}",
                    backend.wire(), model, gpuAddress, cfg.maxBatch(), local.dir());
            Engine engine = EngineFactory.open(local.dir(), backend, gpuAddress, cfg.maxBatch());
            loaded[0] = true;
            return new Entry(engine, local);
        });
        long ms = loaded[0] ? (System.nanoTime() - t0) / 1_000_000 : 0;
        return new Lease(e.engine(), key, ms, loaded[0], e.local());
    }

    /** Number of engines this JVM holds (tests). */
    static int size() {
        return ENGINES.size();
    }

    private static void closeAll() {
        for (Entry e : ENGINES.values()) {
            try {
                e.engine().close();
            } catch (RuntimeException ex) {
                LOG.warn("closing an engine failed: {}", ex.toString());
            }
        }
        ENGINES.clear();
    }
}
