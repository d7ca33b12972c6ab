package org.polarspark.model;

import java.util.ArrayList;
import java.util.List;

/**
 * Hugging Face tensor names and the shapes the config implies, for both families.
 *
 * <pre>
 * OPT   model.decoder.embed_tokens.weight            [vocab, wordEmbedProjDim]
 *       model.decoder.embed_positions.weight         [maxPositions + 2, hidden]
 *       model.decoder.project_in.weight              [hidden, wordEmbedProjDim]  (if proj != hidden)
 *       model.decoder.project_out.weight             [wordEmbedProjDim, hidden]  (if proj != hidden)
 *       model.decoder.final_layer_norm.{weight,bias} [hidden]                    (pre-norm models)
 *       model.decoder.layers.N.self_attn.{q,k,v,out}_proj.{weight [hidden, hidden], bias [hidden]}
 *       model.decoder.layers.N.self_attn_layer_norm.{weight,bias} [hidden]
 *       model.decoder.layers.N.fc1.{weight [ffn, hidden], bias [ffn]}
 *       model.decoder.layers.N.fc2.{weight [hidden, ffn], bias [hidden]}
 *       model.decoder.layers.N.final_layer_norm.{weight,bias} [hidden]     (the MLP's LayerNorm)
 *       lm_head.weight                               [vocab, wordEmbedProjDim]  (optional if tied)
 * LLaMA model.embed_tokens.weight                    [vocab, hidden]
 *       model.layers.N.input_layernorm.weight        [hidden]
 *       model.layers.N.self_attn.q_proj.weight       [heads * headDim, hidden]   (+ bias if attention_bias)
 *       model.layers.N.self_attn.{k,v}_proj.weight   [kvHeads * headDim, hidden] (+ bias)
 *       model.layers.N.self_attn.o_proj.weight       [hidden, heads * headDim]   (+ bias [hidden])
 *       model.layers.N.post_attention_layernorm.weight [hidden]
 *       model.layers.N.mlp.{gate,up}_proj.weight     [ffn, hidden]               (+ bias if mlp_bias)
 *       model.layers.N.mlp.down_proj.weight          [hidden, ffn]               (+ bias)
 *       model.norm.weight                            [hidden]
 *       lm_head.weight                               [vocab, hidden]             (optional if tied)
 * </pre>
 */
public final class WeightLayout {
    private WeightLayout() {
    }

    public static final String LM_HEAD = "lm_head.weight";

    public static String optPrefix(int layer) {
        return "model.decoder.layers." + layer + ".";
    }

    public static String llamaPrefix(int layer) {
        return "model.layers." + layer + ".";
    }

    /** The token embedding tensor's name. */
    public static String embedTokens(ModelConfig c) {
        return c.family() == ModelFamily.OPT ? "model.decoder.embed_tokens.weight"
                : "model.embed_tokens.weight";
    }

    /** Every tensor the config implies, in a stable order. */
    public static List<TensorSpec> expected(ModelConfig c) {
        List<TensorSpec> out = new ArrayList<>();
        long h = c.hiddenSize();
        long v = c.vocabSize();
        long f = c.ffnDim();
        if (c.family() == ModelFamily.OPT) {
            long p = c.wordEmbedProjDim();
            add(out, "model.decoder.embed_tokens.weight", v, p);
            add(out, "model.decoder.embed_positions.weight", c.maxPositions() + c.positionOffset(), h);
            if (c.hasEmbedProjection()) {
                add(out, "model.decoder.project_in.weight", h, p);
                add(out, "model.decoder.project_out.weight", p, h);
            }
            if (c.finalLayerNorm()) {
                layerNorm(out, c, "model.decoder.final_layer_norm", h);
            }
            for (int l = 0; l < c.numLayers(); l++) {
                String pre = optPrefix(l);
                for (String proj : new String[] {"q_proj", "k_proj", "v_proj", "out_proj"}) {
                    linear(out, pre + "self_attn." + proj, h, h, c.enableBias());
                }
                layerNorm(out, c, pre + "self_attn_layer_norm", h);
                linear(out, pre + "fc1", f, h, c.enableBias());
                linear(out, pre + "fc2", h, f, c.enableBias());
                layerNorm(out, c, pre + "final_layer_norm", h);
            }
            out.add(new TensorSpec(LM_HEAD, new long[] {v, p}, !c.tieWordEmbeddings()));
        } else {
            long q = c.qDim();
            long kv = c.kvDim();
            add(out, "model.embed_tokens.weight", v, h);
            for (int l = 0; l < c.numLayers(); l++) {
                String pre = llamaPrefix(l);
                add(out, pre + "input_layernorm.weight", h);
                linear(out, pre + "self_attn.q_proj", q, h, c.attentionBias());
                linear(out, pre + "self_attn.k_proj", kv, h, c.attentionBias());
                linear(out, pre + "self_attn.v_proj", kv, h, c.attentionBias());
                linear(out, pre + "self_attn.o_proj", h, q, c.attentionBias());
                add(out, pre + "post_attention_layernorm.weight", h);
                linear(out, pre + "mlp.gate_proj", f, h, c.mlpBias());
                linear(out, pre + "mlp.up_proj", f, h, c.mlpBias());
                linear(out, pre + "mlp.down_proj", h, f, c.mlpBias());
            }
            add(out, "model.norm.weight", h);
            out.add(new TensorSpec(LM_HEAD, new long[] {v, h}, !c.tieWordEmbeddings()));
        }
        return out;
    }

    private static void add(List<TensorSpec> out, String name, long... shape) {
        out.add(new TensorSpec(name, shape, true));
    }

    private static void linear(List<TensorSpec> out, String name, long outDim, long inDim,
                               boolean bias) {
        add(out, name + ".weight", outDim, inDim);
        if (bias) {
            add(out, name + ".bias", outDim);
        }
    }

    private static void layerNorm(List<TensorSpec> out, ModelConfig c, String name, long h) {
        if (c.layerNormElementwiseAffine()) {
            add(out, name + ".weight", h);
            add(out, name + ".bias", h);
        }
    }
}
