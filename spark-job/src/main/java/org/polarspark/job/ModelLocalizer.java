package org.polarspark.job;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocatedFileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RemoteIterator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Makes a model directory that lives on any Hadoop file system available on local disk, where
 * the safetensors reader memory-maps it.
 *
 * <ul>
 *   <li>A model on the local file system ({@code file:} after qualification against
 *       {@code fs.defaultFS}) is used in place.</li>
 *   <li>Anything else is copied once per machine into the cache directory, under a name derived
 *       from the model's qualified URI: into a temporary directory first, each file's size
 *       checked against the source listing, a manifest written, then renamed into place
 *       atomically. Later tasks and executors on the machine reuse the copy while the manifest
 *       still matches the source listing (path, size, modification time) and the local sizes;
 *       otherwise it is copied again.</li>
 * </ul>
 * Thread-safe; concurrent copies of one model within a JVM are serialised, and between JVMs the
 * atomic rename decides which copy wins.
 *
 * <p>A Polar Sparsity directory given apart from the model ({@code polar-dir}) is made local
 * the same way by {@link #localizePolar}: only its {@code polar/} folder is copied, into a
 * cache entry of its own.
 */
final class ModelLocalizer {
    private static final Logger LOG = LoggerFactory.getLogger(ModelLocalizer.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    static final String MANIFEST = ".polar-manifest.json";
    private static final Map<String, Object> LOCKS = new ConcurrentHashMap<>();

    private ModelLocalizer() {
    }

    /** Where a model ended up. {@code copied}: this call copied it (false when reused/local). */
    record Localized(java.nio.file.Path dir, String source, boolean copied, long bytes,
                     long millis) {
    }

    private record Entry(String path, long size, long mtime) {
    }

    /**
     * What is localized: a model (everything below the directory, which must hold config.json)
     * or a Polar directory (only its polar/ folder, which must hold polar.json).
     */
    private enum Kind {
        MODEL("model", "config.json", null, ""),
        POLAR("polar-dir", "polar/polar.json", "polar", "polar-");

        final String label;
        final String marker;      // the file that must exist, relative to the directory
        final String subtree;     // what is copied: null for everything, else this folder
        final String cachePrefix; // of the cache entry's name

        Kind(String label, String marker, String subtree, String cachePrefix) {
            this.label = label;
            this.marker = marker;
            this.subtree = subtree;
            this.cachePrefix = cachePrefix;
        }

        String missing(String shown, String file) {
            return this == MODEL ? "model " + shown + " is not a model directory: no config.json"
                    : "polar-dir " + shown + " holds no Polar Sparsity settings: " + file
                    + " does not exist";
        }
    }

    /** The cache directory used when none is configured. */
    static java.nio.file.Path defaultCacheRoot() {
        return Paths.get(System.getProperty("java.io.tmpdir"), "polar-spark-models");
    }

    /** A model's (or polar-dir's) qualified URI, for cache keys and messages. */
    static String qualify(String model, Configuration conf) {
        try {
            Path p = new Path(model);
            return p.getFileSystem(conf).makeQualified(p).toString();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open the file system of " + model, e);
        }
    }

    static Localized localize(String model, Configuration conf, java.nio.file.Path cacheRoot) {
        return localize(model, conf, cacheRoot, Kind.MODEL);
    }

    /**
     * Makes a directory holding {@code polar/} (polar.json and its router file) local: used in
     * place on the local file system, else its {@code polar/} folder is copied once per machine
     * as a model is (the result's {@code dir} holds {@code polar/}).
     */
    static Localized localizePolar(String dir, Configuration conf,
                                   java.nio.file.Path cacheRoot) {
        return localize(dir, conf, cacheRoot, Kind.POLAR);
    }

    private static Localized localize(String source, Configuration conf,
                                      java.nio.file.Path cacheRoot, Kind kind) {
        long t0 = System.nanoTime();
        try {
            Path src = new Path(source);
            FileSystem fs = src.getFileSystem(conf);
            Path q = fs.makeQualified(src);
            if ("file".equals(q.toUri().getScheme())) {
                java.nio.file.Path local = Paths.get(q.toUri());
                if (!Files.isRegularFile(local.resolve(kind.marker))) {
                    throw new IllegalArgumentException(kind.missing(source + " (" + local + ")",
                            local.resolve(kind.marker).toString()));
                }
                return new Localized(local, q.toString(), false, 0, 0);
            }
            List<Entry> listing = list(fs, q, kind);
            if (listing.stream().noneMatch(e -> e.path().equals(kind.marker))) {
                throw new IllegalArgumentException(kind.missing(q.toString(),
                        new Path(q, kind.marker).toString()));
            }
            String name = kind.cachePrefix + q.getName().replaceAll("[^A-Za-z0-9._-]", "_") + "-"
                    + sha256(kind.cachePrefix + q).substring(0, 16);
            Files.createDirectories(cacheRoot);
            java.nio.file.Path dest = cacheRoot.resolve(name);
            synchronized (LOCKS.computeIfAbsent(dest.toString(), k -> new Object())) {
                if (matches(dest, q.toString(), listing)) {
                    LOG.info("{} {}: reusing the local copy {}", kind.label, q, dest);
                    return new Localized(dest, q.toString(), false, 0,
                            (System.nanoTime() - t0) / 1_000_000);
                }
                java.nio.file.Path tmp = cacheRoot.resolve("." + name + ".tmp-"
                        + UUID.randomUUID());
                long bytes = copy(fs, q, listing, tmp);
                if (Files.exists(dest)) {
                    // stale (source changed, or a copy was damaged): move it away, then delete
                    java.nio.file.Path old = cacheRoot.resolve("." + name + ".old-"
                            + UUID.randomUUID());
                    try {
                        Files.move(dest, old, StandardCopyOption.ATOMIC_MOVE);
                        deleteTree(old);
                    } catch (IOException e) {
                        LOG.warn("{} {}: cannot remove the stale copy {}: {}", kind.label, q, dest,
                                e.toString());
                    }
                }
                try {
                    Files.move(tmp, dest, StandardCopyOption.ATOMIC_MOVE);
                } catch (FileAlreadyExistsException | DirectoryNotEmptyException
                         | AtomicMoveNotSupportedException e) {
                    deleteTree(tmp); // another executor on this machine won the race
                    if (!matches(dest, q.toString(), listing)) {
                        throw new IOException(kind.label + " copy " + dest + " appeared "
                                + "concurrently but does not match " + q, e);
                    }
                    return new Localized(dest, q.toString(), false, 0,
                            (System.nanoTime() - t0) / 1_000_000);
                }
                long ms = (System.nanoTime() - t0) / 1_000_000;
                LOG.info("{} {}: copied {} files, {} bytes to {} in {} ms", kind.label, q,
                        listing.size(),
                        bytes, dest, ms);
                return new Localized(dest, q.toString(), true, bytes, ms);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot make " + kind.label + " " + source
                    + " local: " + e, e);
        }
    }

    /** The files to copy, with paths relative to root: all of them, or kind's subtree. */
    private static List<Entry> list(FileSystem fs, Path root, Kind kind) throws IOException {
        if (!fs.exists(root)) {
            throw new IllegalArgumentException(kind.label + " " + root + " does not exist");
        }
        String base = root.toUri().getPath();
        List<Entry> out = new ArrayList<>();
        Path from = kind.subtree == null ? root : new Path(root, kind.subtree);
        if (!fs.exists(from)) {
            return out; // the caller reports the missing marker file
        }
        RemoteIterator<LocatedFileStatus> it = fs.listFiles(from, true);
        while (it.hasNext()) {
            LocatedFileStatus s = it.next();
            String p = s.getPath().toUri().getPath();
            if (!p.startsWith(base + "/")) {
                throw new IOException("listing of " + root + " returned " + s.getPath());
            }
            out.add(new Entry(p.substring(base.length() + 1), s.getLen(),
                    s.getModificationTime()));
        }
        out.sort(Comparator.comparing(Entry::path));
        return out;
    }

    private static long copy(FileSystem fs, Path root, List<Entry> listing,
                             java.nio.file.Path tmp) throws IOException {
        long bytes = 0;
        try {
            Files.createDirectories(tmp);
            for (Entry e : listing) {
                java.nio.file.Path to = tmp.resolve(e.path()).normalize();
                if (!to.startsWith(tmp)) {
                    throw new IOException("model file " + e.path() + " escapes " + tmp);
                }
                Files.createDirectories(to.getParent());
                try (InputStream in = fs.open(new Path(root, e.path()))) {
                    Files.copy(in, to);
                }
                long got = Files.size(to);
                if (got != e.size()) {
                    throw new IOException("copy of " + e.path() + " has " + got + " bytes; the "
                            + "source listed " + e.size());
                }
                bytes += got;
            }
            ObjectNode m = JSON.createObjectNode();
            m.put("source", root.toString());
            ArrayNode files = m.putArray("files");
            for (Entry e : listing) {
                files.addObject().put("path", e.path()).put("size", e.size())
                        .put("mtime", e.mtime());
            }
            Files.writeString(tmp.resolve(MANIFEST), JSON.writerWithDefaultPrettyPrinter()
                    .writeValueAsString(m), StandardCharsets.UTF_8);
            return bytes;
        } catch (IOException | RuntimeException e) {
            deleteTree(tmp);
            throw e;
        }
    }

    /** The copy at dest is complete and still describes the source listing. */
    private static boolean matches(java.nio.file.Path dest, String source, List<Entry> listing) {
        java.nio.file.Path manifest = dest.resolve(MANIFEST);
        if (!Files.isRegularFile(manifest)) {
            return false;
        }
        try {
            JsonNode m = JSON.readTree(manifest.toFile());
            if (!source.equals(m.path("source").asText())) {
                return false;
            }
            JsonNode files = m.path("files");
            if (files.size() != listing.size()) {
                return false;
            }
            for (int i = 0; i < listing.size(); i++) {
                Entry e = listing.get(i);
                JsonNode f = files.get(i);
                if (!e.path().equals(f.path("path").asText()) || e.size() != f.path("size")
                        .asLong() || e.mtime() != f.path("mtime").asLong()) {
                    return false;
                }
                java.nio.file.Path local = dest.resolve(e.path());
                if (!Files.isRegularFile(local) || Files.size(local) != e.size()) {
                    LOG.warn("Model copy {} is damaged at {}; copying again", dest, e.path());
                    return false;
                }
            }
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static void deleteTree(java.nio.file.Path p) throws IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<java.nio.file.Path> s = Files.walk(p)) {
            for (java.nio.file.Path x : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(x);
            }
        }
    }

    private static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                    .digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
