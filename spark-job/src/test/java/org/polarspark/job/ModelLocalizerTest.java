package org.polarspark.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Models on a Hadoop file system other than the local one are copied once and reused. */
class ModelLocalizerTest {
    @TempDir
    Path cache;

    Configuration conf;
    Path model = SparkTests.golden("opt");

    @BeforeEach
    void conf() {
        conf = new Configuration(false);
        conf.set("fs.polartest.impl", CountingFileSystem.class.getName());
        conf.set("fs.file.impl", org.apache.hadoop.fs.LocalFileSystem.class.getName());
    }

    private static List<String> files(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> !n.startsWith("."))
                    .sorted().toList();
        }
    }

    @Test
    void aRemoteModelIsCopiedOnceThroughTheHadoopFileSystemAndThenReused() throws IOException {
        int before = CountingFileSystem.OPENS.get();
        ModelLocalizer.Localized a = ModelLocalizer.localize(CountingFileSystem.uri(model), conf,
                cache);
        int opens = CountingFileSystem.OPENS.get() - before;
        assertTrue(a.copied());
        assertTrue(a.dir().startsWith(cache), a.dir().toString());
        assertEquals(files(model), files(a.dir()));
        assertEquals(files(model).size(), opens, "one open per model file");
        for (String f : files(model)) {
            assertArrayEquals(Files.readAllBytes(model.resolve(f)),
                    Files.readAllBytes(a.dir().resolve(f)), f);
        }
        long total = 0;
        for (String f : files(model)) {
            total += Files.size(model.resolve(f));
        }
        assertEquals(total, a.bytes());

        int again = CountingFileSystem.OPENS.get();
        ModelLocalizer.Localized b = ModelLocalizer.localize(CountingFileSystem.uri(model), conf,
                cache);
        assertFalse(b.copied());
        assertEquals(a.dir(), b.dir());
        assertEquals(again, CountingFileSystem.OPENS.get(), "reuse opens no source file");
        // no temporary directories are left behind
        try (Stream<Path> s = Files.list(cache)) {
            assertEquals(1, s.count());
        }
    }

    @Test
    void aDamagedCopyIsCopiedAgain() throws IOException {
        ModelLocalizer.Localized a = ModelLocalizer.localize(CountingFileSystem.uri(model), conf,
                cache);
        Path weights = a.dir().resolve("model.safetensors");
        Files.write(weights, new byte[10]); // truncated
        ModelLocalizer.Localized b = ModelLocalizer.localize(CountingFileSystem.uri(model), conf,
                cache);
        assertTrue(b.copied());
        assertArrayEquals(Files.readAllBytes(model.resolve("model.safetensors")),
                Files.readAllBytes(b.dir().resolve("model.safetensors")));
    }

    @Test
    void concurrentTasksCopyOnce() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<ModelLocalizer.Localized>> fs = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                fs.add(pool.submit(() -> ModelLocalizer.localize(CountingFileSystem.uri(model),
                        conf, cache)));
            }
            int copies = 0;
            for (Future<ModelLocalizer.Localized> f : fs) {
                copies += f.get().copied() ? 1 : 0;
            }
            assertEquals(1, copies);
        } finally {
            pool.shutdown();
        }
    }

    @Test
    void aRemotePolarDirHasOnlyItsPolarFolderCopiedOnce(@TempDir Path src) throws IOException {
        Files.createDirectories(src.resolve("polar"));
        Files.writeString(src.resolve("polar/polar.json"), "{}");
        Files.write(src.resolve("polar/routers.safetensors"), new byte[64]);
        Files.writeString(src.resolve("unrelated.bin"), "not copied");
        ModelLocalizer.Localized a = ModelLocalizer.localizePolar(CountingFileSystem.uri(src),
                conf, cache);
        assertTrue(a.copied());
        assertEquals(List.of("polar"), files(a.dir()));
        assertEquals(List.of("polar.json", "routers.safetensors"),
                files(a.dir().resolve("polar")));
        assertFalse(ModelLocalizer.localizePolar(CountingFileSystem.uri(src), conf, cache)
                .copied());
        // a local one is used in place; one without polar/polar.json is an error naming it
        assertEquals(src, ModelLocalizer.localizePolar(src.toString(), conf, cache).dir());
        Files.delete(src.resolve("polar/polar.json"));
        for (String dir : List.of(src.toString(), CountingFileSystem.uri(src))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> ModelLocalizer.localizePolar(dir, conf, cache));
            assertTrue(e.getMessage().contains("polar/polar.json does not exist"),
                    e.getMessage());
        }
    }

    @Test
    void aLocalModelIsUsedInPlace() {
        ModelLocalizer.Localized a = ModelLocalizer.localize(model.toString(), conf, cache);
        assertFalse(a.copied());
        assertEquals(model.toAbsolutePath().normalize(), a.dir().toAbsolutePath().normalize());
        ModelLocalizer.Localized b = ModelLocalizer.localize("file://" + model.toAbsolutePath(),
                conf, cache);
        assertEquals(a.dir(), b.dir());
    }

    @Test
    void aDirectoryWithoutConfigJsonIsNotAModel() {
        Path notModel = model.getParent();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ModelLocalizer.localize(CountingFileSystem.uri(notModel.resolve("nope")),
                        conf, cache));
        assertTrue(e.getMessage().contains("does not exist"), e.getMessage());
    }
}
