package org.polarspark.job;

import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.hadoop.conf.Configuration;
import org.polarspark.cuda.CudaDtype;
import org.polarspark.generate.Backend;
import org.polarspark.generate.Engine;
import org.polarspark.generate.EngineFactory;
import org.polarspark.model.ModelFormatException;
import org.polarspark.polar.PolarSettings;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One engine per (model, backend, CUDA dtype, GPU address, max batch, Polar settings) per
 * executor JVM: the
 * model is loaded by the first task that needs it and shared by every later task (engines are
 * thread-safe), not reloaded per task or partition. Engines are closed when the JVM exits.
 */
final class EngineCache {
    private static final Logger LOG = LoggerFactory.getLogger(EngineCache.class);

    private EngineCache() {
    }

    /**
     * The cache key. {@code gpu} and {@code cudaDtype} are null for the CPU backend (one CPU
     * engine per executor, in fp32 whatever cuda-dtype says).
     * With Polar off the Polar fields are (false, null, null, false) whatever the options say.
     *
     * @param polarDir the polar-dir's qualified URI; null when it is the model directory
     */
    record Key(String model, Backend backend, CudaDtype cudaDtype, String gpu, int maxBatch,
               boolean polar,
               String polarDir, Double polarDensity, boolean polarEveryToken) {
    }

    /**
     * An engine and what it cost the task that loaded it (0 when it was cached).
     *
     * @param polar the settings the engine was opened with
     */
    record Lease(Engine engine, Key key, long loadMs, boolean loadedNow,
                 ModelLocalizer.Localized local, PolarSettings polar) {
    }

    private record Entry(Engine engine, ModelLocalizer.Localized local, PolarSettings polar) {
    }

    private static final Map<Key, Entry> ENGINES = new ConcurrentHashMap<>();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(EngineCache::closeAll,
                "polar-engine-cache-close"));
    }

    /** The key of the engine this configuration asks for on a task with this GPU. */
    static Key key(JobConfig cfg, Configuration conf, String gpuAddress) {
        Backend backend = cfg.backend().resolve(gpuAddress);
        String model = ModelLocalizer.qualify(cfg.model(), conf);
        String polarDir = null;
        if (cfg.polar() && cfg.polarDir() != null) {
            polarDir = ModelLocalizer.qualify(cfg.polarDir(), conf);
            if (stripSlash(polarDir).equals(stripSlash(model))) {
                polarDir = null; // the model directory, localized with the model
            }
        }
        return new Key(model, backend, backend == Backend.CPU ? null : cfg.cudaDtype(),
                backend == Backend.CPU ? null : gpuAddress,
                cfg.maxBatch(), cfg.polar(), polarDir, cfg.polar() ? cfg.polarDensity() : null,
                cfg.polar() && cfg.polarEveryToken());
    }

    private static String stripSlash(String s) {
        return s.endsWith("/") ? s.substring(0, s.length() - 1) : s;
    }

    /**
     * The engine for this task.
     *
     * @param gpuAddress the task's GPU from Spark's resource scheduling, or null
     */
    static Lease get(JobConfig cfg, Configuration conf, String gpuAddress) {
        Key key = key(cfg, conf, gpuAddress);
        Entry e = ENGINES.get(key);
        if (e != null) {
            return new Lease(e.engine(), key, 0, false, e.local(), e.polar());
        }
        long t0 = System.nanoTime();
        boolean[] loaded = {false};
        e = ENGINES.computeIfAbsent(key, k -> {
            Path cacheRoot = cfg.modelCacheDir() != null ? Paths.get(cfg.modelCacheDir())
                    : ModelLocalizer.defaultCacheRoot();
            ModelLocalizer.Localized local;
            Path polarLocal = null;
            try {
                local = ModelLocalizer.localize(cfg.model(), conf, cacheRoot);
                if (k.polarDir() != null) {
                    polarLocal = ModelLocalizer.localizePolar(k.polarDir(), conf, cacheRoot)
                            .dir();
                }
            } catch (IllegalArgumentException ex) {
                // not a model directory / no polar/polar.json here: a configuration error
                throw new ModelFormatException(ex.getMessage(), ex);
            }
            PolarSettings polar = cfg.polarSettings(polarLocal);
            LOG.info("Opening the {} engine for {} (GPU {}, max batch {}, {}) from {}{}",
                    k.backend() == Backend.CPU ? "cpu (fp32)"
                            : k.backend().wire() + " (" + k.cudaDtype().wire() + ")",
                    k.model(), gpuAddress, k.maxBatch(), polar.describe(),
                    local.dir(), polar.enabled() ? ", Polar Sparsity files from "
                            + polar.dir(local.dir()).resolve("polar") : "");
            Engine engine = EngineFactory.open(local.dir(), k.backend(), gpuAddress,
                    k.maxBatch(), polar, k.cudaDtype() == null ? CudaDtype.DEFAULT
                            : k.cudaDtype());
            loaded[0] = true;
            return new Entry(engine, local, polar);
        });
        long ms = loaded[0] ? (System.nanoTime() - t0) / 1_000_000 : 0;
        return new Lease(e.engine(), key, ms, loaded[0], e.local(), e.polar());
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
