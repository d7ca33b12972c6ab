package org.polarspark.bench;

import java.util.List;
import org.polarspark.model.Activation;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.ModelFamily;
import org.polarspark.model.RopeScaling;

/**
 * Real model shapes for synthetic benchmarks (weights are generated on the GPU), with the
 * contexts and batch sizes the issues set targets at. Dimensions are those of the public
 * Hugging Face configs of facebook/opt-6.7b, meta-llama/Llama-2-7b-hf and Meta-Llama-3-8B.
 * {@code polarDensity} is the head (KV-group) density the Polar issue sets its targets at
 * (0.5; 5 of 8 groups for LLaMA-3).
 */
public record BenchShapes(String name, ModelConfig config, int context, List<Integer> batches,
                          double polarDensity) {

    public static BenchShapes byName(String name) {
        for (BenchShapes s : all()) {
            if (s.name.equals(name)) {
                return s;
            }
        }
        throw new IllegalArgumentException("unknown model '" + name
                + "' (known: opt-6.7b, llama-2-7b, llama-3-8b)");
    }

    public static List<BenchShapes> all() {
        ModelConfig opt = new ModelConfig(ModelFamily.OPT, 50272, 4096, 32, 32, 32, 128, 16384,
                2048, Activation.RELU, 1e-5f, true, true, 4096, true, true, true, 2, 0,
                RopeScaling.NONE, false, false, 2, List.of(2), 1);
        ModelConfig llama2 = new ModelConfig(ModelFamily.LLAMA, 32000, 4096, 32, 32, 32, 128,
                11008, 4096, Activation.SILU, 1e-5f, false, true, 4096, false, true, true, 0,
                10000.0, RopeScaling.NONE, false, false, 1, List.of(2), -1);
        ModelConfig llama3 = new ModelConfig(ModelFamily.LLAMA, 128256, 4096, 32, 32, 8, 128,
                14336, 8192, Activation.SILU, 1e-5f, false, true, 4096, false, true, true, 0,
                500000.0, new RopeScaling(RopeScaling.Type.LLAMA3, 8.0, 1.0, 4.0, 8192), false,
                false, 128000, List.of(128001), -1);
        return List.of(
                new BenchShapes("llama-2-7b", llama2, 3968, List.of(1, 8, 16, 32), 0.5),
                new BenchShapes("opt-6.7b", opt, 1920, List.of(1, 16, 32, 64), 0.5),
                new BenchShapes("llama-3-8b", llama3, 8192, List.of(1, 16, 48), 0.625));
    }
}
