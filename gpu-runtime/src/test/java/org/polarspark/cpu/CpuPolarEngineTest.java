package org.polarspark.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.polarspark.generate.Engine;
import org.polarspark.generate.GenerationRequest;
import org.polarspark.generate.GenerationResult;
import org.polarspark.generate.LoglikelihoodRequest;
import org.polarspark.generate.LoglikelihoodResult;
import org.polarspark.generate.SamplingParams;
import org.polarspark.model.Checkpoint;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.ModelFormatException;
import org.polarspark.polar.PolarConfig;
import org.polarspark.polar.PolarSettings;
import org.polarspark.polar.PolarStats;
import org.polarspark.polar.RouterWeights;
import org.polarspark.testutil.Golden;

/** The CPU engine with Polar settings: routers loaded beside the model, decode-only or not. */
class CpuPolarEngineTest {
    @TempDir
    Path tmp;

    /** A copy of the golden opt checkpoint with random routers at the given head density. */
    private Path withRouters(double density) throws IOException {
        Path src = Golden.load("opt").modelDir();
        Path dir = tmp.resolve("opt-" + density);
        Files.createDirectories(dir);
        try (Stream<Path> files = Files.list(src)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                Files.copy(f, dir.resolve(f.getFileName()));
            }
        }
        ModelConfig c = Checkpoint.open(dir).config();
        PolarConfig pc = PolarConfig.uniform(c, density);
        pc.write(dir);
        RouterWeights.random(pc, 7).write(dir, pc);
        return dir;
    }

    private static List<LoglikelihoodRequest> requests(CpuEngine e) {
        List<LoglikelihoodRequest> out = new ArrayList<>();
        String[][] pairs = {{"It is a truth", " universally acknowledged that"},
            {"Emma", " was handsome, clever and rich"}, {"She", " said"}};
        for (String[] p : pairs) {
            out.add(new LoglikelihoodRequest(e.tokenizer().encode(p[0]),
                    e.tokenizer().encodePlain(p[1])));
        }
        return out;
    }

    @Test
    void densityOneEqualsDenseAndHalfDensityChangesDecodeOnly() throws IOException {
        Path full = withRouters(1.0);
        Path half = withRouters(0.5);
        try (CpuEngine dense = CpuEngine.load(full, 4);
             CpuEngine one = CpuEngine.load(full, 4, PolarSettings.on());
             CpuEngine sparse = CpuEngine.load(half, 4, PolarSettings.on());
             CpuEngine strict = CpuEngine.load(half, 4, new PolarSettings(true, null, null,
                     true))) {
            List<LoglikelihoodRequest> reqs = requests(dense);
            List<LoglikelihoodResult> d = dense.loglikelihood(reqs).results();
            List<LoglikelihoodResult> o = one.loglikelihood(reqs).results();
            Engine.Result<LoglikelihoodResult> s = sparse.loglikelihood(reqs);
            Engine.Result<LoglikelihoodResult> e = strict.loglikelihood(reqs);
            for (int i = 0; i < reqs.size(); i++) {
                // density 1.0: Polar decode steps compute exactly what one dense forward does
                assertEquals(d.get(i).loglikelihood(), o.get(i).loglikelihood(), 1e-9, "row " + i);
                if (reqs.get(i).continuation().length > 1) {
                    assertNotEquals(d.get(i).loglikelihood(), s.results().get(i).loglikelihood(),
                            "half density must change a multi-token continuation, row " + i);
                } else {
                    // one continuation token: decode-only Polar never routes anything
                    assertEquals(d.get(i).loglikelihood(), s.results().get(i).loglikelihood(), 1e-9);
                }
            }
            // decode-only routes the continuation tokens after the first; every-token routes all
            long decodeTokens = reqs.stream().mapToLong(q -> q.continuation().length - 1).sum();
            long allTokens = reqs.stream().mapToLong(q -> q.context().length
                    + q.continuation().length - 1).sum();
            ModelConfig c = sparse.config();
            PolarStats ps = s.stats().polar();
            // every layer of every routed token counts; layer 0 (dense) keeps all its groups
            assertEquals(decodeTokens * c.numLayers(), ps.headSelections());
            assertEquals(allTokens * c.numLayers(), e.stats().polar().headSelections());
            double expected = (1 + 0.5 * (c.numLayers() - 1)) / c.numLayers();
            assertEquals(expected, ps.headFraction(), 1e-12, "layers past 0 keep half");
            assertTrue(e.stats().polar().groupsKept() > ps.groupsKept());
        }
    }

    @Test
    void generateReportsTheActiveHeadFractionOfDecodeSteps() throws IOException {
        Path half = withRouters(0.5);
        try (CpuEngine sparse = CpuEngine.load(half, 4, PolarSettings.on());
             CpuEngine dense = CpuEngine.load(half, 4)) {
            List<GenerationRequest> reqs = List.of(
                    new GenerationRequest(sparse.tokenizer().encode("Emma"),
                            SamplingParams.greedy(6), 1),
                    new GenerationRequest(sparse.tokenizer().encode("It is a truth"),
                            SamplingParams.greedy(6), 2));
            Engine.Result<GenerationResult> s = sparse.generate(reqs);
            Engine.Result<GenerationResult> d = dense.generate(reqs);
            assertEquals(PolarStats.ZERO, d.stats().polar());
            int layers = sparse.config().numLayers();
            assertEquals((1 + 0.5 * (layers - 1)) / layers, s.stats().polar().headFraction(),
                    1e-12);
            assertTrue(s.stats().polar().headSelections() > 0);
            // the first token comes from the dense prefill, so it is the dense one
            for (int i = 0; i < reqs.size(); i++) {
                assertEquals(d.results().get(i).tokens()[0], s.results().get(i).tokens()[0]);
            }
        }
    }

    @Test
    void densityOverrideAndMissingRoutersAreHandled() throws IOException {
        Path half = withRouters(0.5);
        try (CpuEngine e = CpuEngine.load(half, 2, new PolarSettings(true, null, 0.25, false))) {
            Engine.Result<LoglikelihoodResult> r = e.loglikelihood(requests(e));
            // floor(0.25 * 4 heads) = 1 of 4 groups in every layer past 0; layer 0 dense
            int layers = e.config().numLayers();
            assertEquals((1 + 0.25 * (layers - 1)) / layers, r.stats().polar().headFraction(),
                    1e-12);
        }
        Path bare = Golden.load("opt").modelDir();
        ModelFormatException ex = assertThrows(ModelFormatException.class,
                () -> CpuEngine.load(bare, 2, PolarSettings.on()));
        assertTrue(ex.getMessage().contains("polar.json"), ex.getMessage());
    }
}
