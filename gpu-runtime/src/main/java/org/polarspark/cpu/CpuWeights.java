package org.polarspark.cpu;

import org.polarspark.model.Checkpoint;
import org.polarspark.model.ModelConfig;
import org.polarspark.model.ModelFamily;
import org.polarspark.model.WeightLayout;

/**
 * All weights as float32 arrays, row-major with PyTorch's layout (Linear weight = [out, in]).
 * Optional tensors (absent biases, LayerNorms without affine parameters) are null.
 */
public final class CpuWeights {
    final ModelConfig config;
    final float[] embed;       // (vocab, wordEmbedProjDim)
    final float[] positions;   // OPT: (maxPositions + 2, hidden); LLaMA: null
    final float[] projectIn;   // OPT with projection: (hidden, proj); else null
    final float[] projectOut;  // OPT with projection: (proj, hidden); else null
    final float[] finalNormW;  // (hidden) or null
    final float[] finalNormB;  // (hidden) or null (LLaMA: always null)
    final float[] lmHead;      // (vocab, proj); the embedding itself when tied
    final Layer[] layers;

    static final class Layer {
        float[] attnNormW, attnNormB; // (hidden)
        float[] wq, bq;               // (qDim, hidden), (qDim)
        float[] wk, bk;               // (kvDim, hidden), (kvDim)
        float[] wv, bv;               // (kvDim, hidden), (kvDim)
        float[] wo, bo;               // (hidden, qDim), (hidden)
        float[] mlpNormW, mlpNormB;   // (hidden)
        float[] w1, b1;               // fc1 / gate_proj: (ffn, hidden), (ffn)
        float[] w3, b3;               // up_proj (LLaMA): (ffn, hidden), (ffn)
        float[] w2, b2;               // fc2 / down_proj: (hidden, ffn), (hidden)
    }

    private CpuWeights(ModelConfig config, float[] embed, float[] positions, float[] projectIn,
                       float[] projectOut, float[] finalNormW, float[] finalNormB, float[] lmHead,
                       Layer[] layers) {
        this.config = config;
        this.embed = embed;
        this.positions = positions;
        this.projectIn = projectIn;
        this.projectOut = projectOut;
        this.finalNormW = finalNormW;
        this.finalNormB = finalNormB;
        this.lmHead = lmHead;
        this.layers = layers;
    }

    public ModelConfig config() {
        return config;
    }

    // Read-only views for other backends (which convert and upload them). Arrays are shared:
    // callers must not modify them.
    public float[] embed() {
        return embed;
    }

    public float[] positions() {
        return positions;
    }

    public float[] projectIn() {
        return projectIn;
    }

    public float[] projectOut() {
        return projectOut;
    }

    public float[] finalNormW() {
        return finalNormW;
    }

    public float[] finalNormB() {
        return finalNormB;
    }

    public float[] lmHead() {
        return lmHead;
    }

    /** One layer's weights (null where the checkpoint has none). */
    public record LayerView(float[] attnNormW, float[] attnNormB, float[] wq, float[] bq,
                            float[] wk, float[] bk, float[] wv, float[] bv, float[] wo,
                            float[] bo, float[] mlpNormW, float[] mlpNormB, float[] w1,
                            float[] b1, float[] w3, float[] b3, float[] w2, float[] b2) {
    }

    public LayerView layer(int l) {
        Layer L = layers[l];
        return new LayerView(L.attnNormW, L.attnNormB, L.wq, L.bq, L.wk, L.bk, L.wv, L.bv, L.wo,
                L.bo, L.mlpNormW, L.mlpNormB, L.w1, L.b1, L.w3, L.b3, L.w2, L.b2);
    }

    /** Reads every tensor of a validated checkpoint into float32. */
    public static CpuWeights load(Checkpoint ckpt) {
        ModelConfig c = ckpt.config();
        Reader r = new Reader(ckpt);
        long h = c.hiddenSize();
        long f = c.ffnDim();
        long v = c.vocabSize();
        Layer[] layers = new Layer[c.numLayers()];
        if (c.family() == ModelFamily.OPT) {
            long p = c.wordEmbedProjDim();
            float[] embed = r.req("model.decoder.embed_tokens.weight", v, p);
            float[] pos = r.req("model.decoder.embed_positions.weight",
                    c.maxPositions() + c.positionOffset(), h);
            float[] pin = c.hasEmbedProjection() ? r.req("model.decoder.project_in.weight", h, p)
                    : null;
            float[] pout = c.hasEmbedProjection()
                    ? r.req("model.decoder.project_out.weight", p, h) : null;
            float[] fnw = c.finalLayerNorm() ? r.opt("model.decoder.final_layer_norm.weight", h)
                    : null;
            float[] fnb = c.finalLayerNorm() ? r.opt("model.decoder.final_layer_norm.bias", h)
                    : null;
            for (int l = 0; l < layers.length; l++) {
                String pre = WeightLayout.optPrefix(l);
                Layer L = new Layer();
                L.attnNormW = r.opt(pre + "self_attn_layer_norm.weight", h);
                L.attnNormB = r.opt(pre + "self_attn_layer_norm.bias", h);
                L.wq = r.req(pre + "self_attn.q_proj.weight", h, h);
                L.bq = r.opt(pre + "self_attn.q_proj.bias", h);
                L.wk = r.req(pre + "self_attn.k_proj.weight", h, h);
                L.bk = r.opt(pre + "self_attn.k_proj.bias", h);
                L.wv = r.req(pre + "self_attn.v_proj.weight", h, h);
                L.bv = r.opt(pre + "self_attn.v_proj.bias", h);
                L.wo = r.req(pre + "self_attn.out_proj.weight", h, h);
                L.bo = r.opt(pre + "self_attn.out_proj.bias", h);
                L.mlpNormW = r.opt(pre + "final_layer_norm.weight", h);
                L.mlpNormB = r.opt(pre + "final_layer_norm.bias", h);
                L.w1 = r.req(pre + "fc1.weight", f, h);
                L.b1 = r.opt(pre + "fc1.bias", f);
                L.w2 = r.req(pre + "fc2.weight", h, f);
                L.b2 = r.opt(pre + "fc2.bias", h);
                layers[l] = L;
            }
            float[] head = lmHead(r, ckpt, embed, v, p);
            return new CpuWeights(c, embed, pos, pin, pout, fnw, fnb, head, layers);
        }
        long q = c.qDim();
        long kv = c.kvDim();
        float[] embed = r.req("model.embed_tokens.weight", v, h);
        for (int l = 0; l < layers.length; l++) {
            String pre = WeightLayout.llamaPrefix(l);
            Layer L = new Layer();
            L.attnNormW = r.req(pre + "input_layernorm.weight", h);
            L.wq = r.req(pre + "self_attn.q_proj.weight", q, h);
            L.bq = r.opt(pre + "self_attn.q_proj.bias", q);
            L.wk = r.req(pre + "self_attn.k_proj.weight", kv, h);
            L.bk = r.opt(pre + "self_attn.k_proj.bias", kv);
            L.wv = r.req(pre + "self_attn.v_proj.weight", kv, h);
            L.bv = r.opt(pre + "self_attn.v_proj.bias", kv);
            L.wo = r.req(pre + "self_attn.o_proj.weight", h, q);
            L.bo = r.opt(pre + "self_attn.o_proj.bias", h);
            L.mlpNormW = r.req(pre + "post_attention_layernorm.weight", h);
            L.w1 = r.req(pre + "mlp.gate_proj.weight", f, h);
            L.b1 = r.opt(pre + "mlp.gate_proj.bias", f);
            L.w3 = r.req(pre + "mlp.up_proj.weight", f, h);
            L.b3 = r.opt(pre + "mlp.up_proj.bias", f);
            L.w2 = r.req(pre + "mlp.down_proj.weight", h, f);
            L.b2 = r.opt(pre + "mlp.down_proj.bias", h);
            layers[l] = L;
        }
        float[] norm = r.req("model.norm.weight", h);
        float[] head = lmHead(r, ckpt, embed, v, h);
        return new CpuWeights(c, embed, null, null, null, norm, null, head, layers);
    }

    private static float[] lmHead(Reader r, Checkpoint ckpt, float[] embed, long v, long d) {
        // A tied model may still carry lm_head.weight (a copy); the config decides.
        if (ckpt.config().tieWordEmbeddings()) {
            return embed;
        }
        return r.req(WeightLayout.LM_HEAD, v, d);
    }

    /** Reads tensors, sharing nothing; absent optional tensors come back null. */
    private static final class Reader {
        private final Checkpoint ckpt;

        Reader(Checkpoint ckpt) {
            this.ckpt = ckpt;
        }

        float[] req(String name, long... shape) {
            return ckpt.floats(name, shape);
        }

        float[] opt(String name, long... shape) {
            return ckpt.has(name) ? ckpt.floats(name, shape) : null;
        }
    }
}
