package org.polarspark.model;

/** Decoder families we implement; each maps one Hugging Face {@code model_type}. */
public enum ModelFamily {
    /** {@code OPTForCausalLM}: LayerNorm, learned positions (offset 2), biases, ReLU MLP. */
    OPT("opt"),
    /** {@code LlamaForCausalLM}: RMSNorm, RoPE, SwiGLU MLP, grouped-query attention. */
    LLAMA("llama");

    private final String modelType;

    ModelFamily(String modelType) {
        this.modelType = modelType;
    }

    public String modelType() {
        return modelType;
    }
}
