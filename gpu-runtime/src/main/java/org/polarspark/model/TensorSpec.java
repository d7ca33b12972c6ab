package org.polarspark.model;

import java.util.Arrays;

/**
 * A tensor the config implies: its Hugging Face name and shape, and whether it must be present.
 *
 * @param name     e.g. {@code model.decoder.layers.3.fc1.weight}
 * @param shape    dimensions, outermost first (Linear weights are [out, in], as PyTorch stores)
 * @param required false for tensors that may be absent (lm_head.weight of tied models)
 */
public record TensorSpec(String name, long[] shape, boolean required) {
    public String shapeString() {
        return Arrays.toString(shape);
    }
}
