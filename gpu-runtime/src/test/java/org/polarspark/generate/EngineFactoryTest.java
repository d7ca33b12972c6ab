package org.polarspark.generate;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.polarspark.cpu.DecoderObserver;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.TextTokenizer;

/** Which backends can run calibration forwards, and what an engine without hooks says. */
class EngineFactoryTest {
    @Test
    void everyBackendCanObserve() {
        for (Backend b : Backend.values()) {
            assertTrue(EngineFactory.canObserve(b), b + " should be able to observe");
        }
    }

    /** An engine that does not implement the hooks refuses, naming itself and the way out. */
    @Test
    void anEngineWithoutHooksRefusesNamingItsBackend() {
        Engine e = new Engine() {
            @Override
            public ModelConfig config() {
                return null;
            }

            @Override
            public TextTokenizer tokenizer() {
                return null;
            }

            @Override
            public String backend() {
                return "npu";
            }

            @Override
            public String deviceName() {
                return "none";
            }

            @Override
            public Result<GenerationResult> generate(java.util.List<GenerationRequest> r) {
                throw new UnsupportedOperationException();
            }

            @Override
            public Result<LoglikelihoodResult> loglikelihood(
                    java.util.List<LoglikelihoodRequest> r) {
                throw new UnsupportedOperationException();
            }

            @Override
            public void close() {
            }
        };
        assertTrue(!e.canObserve());
        UnsupportedOperationException x = assertThrows(UnsupportedOperationException.class,
                () -> e.observeDense(new int[] {1}, DecoderObserver.NONE));
        assertTrue(x.getMessage().contains("npu") && x.getMessage().contains("--backend cuda"),
                x.getMessage());
        UnsupportedOperationException y = assertThrows(UnsupportedOperationException.class,
                () -> org.polarspark.polar.Calibration.requireObserver(e));
        assertTrue(y.getMessage().contains("npu") && y.getMessage().contains("cuda"),
                y.getMessage());
    }
}
