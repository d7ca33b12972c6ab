package org.polarspark.polar;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.polarspark.model.ModelConfig;

/** Tiny synthetic model configs (no weights) for the router tests. */
final class PolarTestModels {
    static final ObjectMapper JSON = new ObjectMapper();

    private PolarTestModels() {
    }

    /** An OPT config: multi-head attention, so G = heads. */
    static ModelConfig opt(int layers, int hidden, int heads, int ffn, String activation) {
        ObjectNode c = JSON.createObjectNode();
        c.put("model_type", "opt");
        c.put("vocab_size", 32);
        c.put("hidden_size", hidden);
        c.put("num_hidden_layers", layers);
        c.put("num_attention_heads", heads);
        c.put("ffn_dim", ffn);
        c.put("max_position_embeddings", 64);
        c.put("activation_function", activation);
        return ModelConfig.fromJson(c, "test opt config");
    }

    /** A LLaMA config with grouped-query attention: G = kvHeads. */
    static ModelConfig llama(int layers, int hidden, int heads, int kvHeads, int ffn) {
        ObjectNode c = JSON.createObjectNode();
        c.put("model_type", "llama");
        c.put("vocab_size", 32);
        c.put("hidden_size", hidden);
        c.put("num_hidden_layers", layers);
        c.put("num_attention_heads", heads);
        c.put("num_key_value_heads", kvHeads);
        c.put("intermediate_size", ffn);
        c.put("max_position_embeddings", 64);
        return ModelConfig.fromJson(c, "test llama config");
    }

    static int count(boolean[] mask) {
        int n = 0;
        for (boolean b : mask) {
            if (b) {
                n++;
            }
        }
        return n;
    }
}
