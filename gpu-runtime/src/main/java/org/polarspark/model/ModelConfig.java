package org.polarspark.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The decoder's shape and quirks, mapped explicitly from a Hugging Face {@code config.json}.
 * Nothing is guessed: every family quirk is a field, and every key is read by name.
 *
 * @param family                     OPT or LLAMA ({@code model_type})
 * @param vocabSize                  {@code vocab_size}
 * @param hiddenSize                 {@code hidden_size}: the residual stream width
 * @param numLayers                  {@code num_hidden_layers}
 * @param numHeads                   {@code num_attention_heads}: query heads
 * @param numKvHeads                 {@code num_key_value_heads} (LLaMA; OPT: numHeads). A KV group
 *                                   is the set of numHeads/numKvHeads query heads sharing one K/V
 *                                   head; Polar Sparsity selects groups (= heads when equal).
 * @param headDim                    {@code head_dim} (default hiddenSize / numHeads)
 * @param ffnDim                     {@code ffn_dim} (OPT) or {@code intermediate_size} (LLaMA)
 * @param maxPositions               {@code max_position_embeddings}: the context length
 * @param activation                 RELU/GELU (OPT {@code activation_function}) or SILU (SwiGLU)
 * @param normEps                    LayerNorm eps (OPT: 1e-5, as torch's default) or
 *                                   {@code rms_norm_eps}
 * @param tieWordEmbeddings          lm_head shares the token embedding
 * @param doLayerNormBefore          OPT: pre-norm (true) or post-norm (false, as OPT-350m)
 * @param wordEmbedProjDim           OPT: embedding width; project_in/project_out exist when it
 *                                   differs from hiddenSize. LLaMA: hiddenSize.
 * @param enableBias                 OPT: biases on q/k/v/out_proj and fc1/fc2
 * @param layerNormElementwiseAffine OPT: LayerNorms carry weight and bias
 * @param finalLayerNorm             OPT: the decoder-level final LayerNorm exists (pre-norm models
 *                                   without {@code _remove_final_layer_norm}); LLaMA: always
 * @param positionOffset             OPT: learned positions are looked up at position + 2
 * @param ropeTheta                  LLaMA: {@code rope_theta}
 * @param ropeScaling                LLaMA: {@code rope_scaling} (NONE, linear or llama3)
 * @param attentionBias              LLaMA: {@code attention_bias} on q/k/v/o_proj
 * @param mlpBias                    LLaMA: {@code mlp_bias} on gate/up/down_proj
 * @param bosTokenId                 {@code bos_token_id} (-1 if none)
 * @param eosTokenIds                {@code eos_token_id}, one or several
 * @param padTokenId                 {@code pad_token_id} (-1 if none)
 */
public record ModelConfig(
        ModelFamily family,
        int vocabSize, int hiddenSize, int numLayers, int numHeads, int numKvHeads, int headDim,
        int ffnDim, int maxPositions, Activation activation, float normEps,
        boolean tieWordEmbeddings,
        boolean doLayerNormBefore, int wordEmbedProjDim, boolean enableBias,
        boolean layerNormElementwiseAffine, boolean finalLayerNorm, int positionOffset,
        double ropeTheta, RopeScaling ropeScaling, boolean attentionBias, boolean mlpBias,
        int bosTokenId, List<Integer> eosTokenIds, int padTokenId) {

    /** Hugging Face's learned-position offset for OPT: rows 0 and 1 of the table are unused. */
    public static final int OPT_POSITION_OFFSET = 2;

    public ModelConfig {
        requirePositive("vocab_size", vocabSize);
        requirePositive("hidden_size", hiddenSize);
        requirePositive("num_hidden_layers", numLayers);
        requirePositive("num_attention_heads", numHeads);
        requirePositive("num_key_value_heads", numKvHeads);
        requirePositive("head_dim", headDim);
        requirePositive(family == ModelFamily.OPT ? "ffn_dim" : "intermediate_size", ffnDim);
        requirePositive("max_position_embeddings", maxPositions);
        requirePositive("word_embed_proj_dim", wordEmbedProjDim);
        if (numHeads % numKvHeads != 0) {
            throw new IllegalArgumentException("num_attention_heads (" + numHeads
                    + ") must be a multiple of num_key_value_heads (" + numKvHeads + ")");
        }
        if (family == ModelFamily.LLAMA && headDim % 2 != 0) {
            throw new IllegalArgumentException("head_dim must be even for RoPE, got " + headDim);
        }
        if (!(normEps > 0)) {
            throw new IllegalArgumentException("norm eps must be > 0, got " + normEps);
        }
        if (eosTokenIds == null || eosTokenIds.isEmpty()) {
            throw new IllegalArgumentException("eos_token_id must name at least one token");
        }
        eosTokenIds = List.copyOf(eosTokenIds);
        if (ropeScaling == null) {
            ropeScaling = RopeScaling.NONE;
        }
    }

    private static void requirePositive(String key, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException(key + " must be > 0, got " + value);
        }
    }

    /** Query heads per KV group (1 for multi-head attention). */
    public int groupSize() {
        return numHeads / numKvHeads;
    }

    /** Width of the concatenated query heads. */
    public int qDim() {
        return numHeads * headDim;
    }

    /** Width of the concatenated key (or value) heads. */
    public int kvDim() {
        return numKvHeads * headDim;
    }

    /** SwiGLU (gate, up, down) rather than fc1 -> activation -> fc2. */
    public boolean gatedMlp() {
        return family == ModelFamily.LLAMA;
    }

    /** MLP neuron sparsity applies: a plain ReLU MLP, where an inactive neuron is exactly 0. */
    public boolean reluMlp() {
        return !gatedMlp() && activation == Activation.RELU;
    }

    /** OPT with word_embed_proj_dim != hidden_size has project_in and project_out. */
    public boolean hasEmbedProjection() {
        return wordEmbedProjDim != hiddenSize;
    }

    public boolean isEos(int token) {
        return eosTokenIds.contains(token);
    }

    // ---------------------------------------------------------------------------------------
    // config.json
    // ---------------------------------------------------------------------------------------

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Reads {@code config.json} from a checkpoint directory (or the file itself). */
    public static ModelConfig load(Path path) {
        Path file = Files.isDirectory(path) ? path.resolve("config.json") : path;
        if (!Files.isRegularFile(file)) {
            throw new ModelFormatException(file + ": config.json not found");
        }
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new ModelFormatException(file + ": not valid JSON: " + e.getMessage(), e);
        }
        return fromJson(root, file.toString());
    }

    /** Maps a parsed {@code config.json}; {@code source} names it in error messages. */
    public static ModelConfig fromJson(JsonNode root, String source) {
        Keys k = new Keys(root, source);
        String modelType = k.string("model_type", null);
        try {
            if ("opt".equals(modelType)) {
                return opt(k);
            }
            if ("llama".equals(modelType)) {
                return llama(k);
            }
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(source + ": " + e.getMessage(), e);
        }
        throw new ModelFormatException(source + ": unsupported model_type '" + modelType
                + "' (supported: opt, llama)");
    }

    private static ModelConfig opt(Keys k) {
        int hidden = k.integer("hidden_size", null);
        int heads = k.integer("num_attention_heads", null);
        if (heads <= 0) {
            throw k.bad("num_attention_heads", heads, "must be > 0");
        }
        if (hidden % heads != 0) {
            throw k.bad("hidden_size", hidden, "must be a multiple of num_attention_heads ("
                    + heads + ")");
        }
        String act = k.string("activation_function", "relu");
        Activation activation;
        if ("relu".equals(act)) {
            activation = Activation.RELU;
        } else if ("gelu".equals(act)) {
            activation = Activation.GELU;
        } else {
            throw k.bad("activation_function", act, "supported: relu, gelu");
        }
        boolean preNorm = k.bool("do_layer_norm_before", true);
        boolean removeFinal = k.bool("_remove_final_layer_norm", false);
        return new ModelConfig(ModelFamily.OPT,
                k.integer("vocab_size", null), hidden, k.integer("num_hidden_layers", null),
                heads, heads, hidden / heads, k.integer("ffn_dim", null),
                k.integer("max_position_embeddings", null), activation, 1e-5f,
                k.bool("tie_word_embeddings", true),
                preNorm, k.integer("word_embed_proj_dim", hidden), k.bool("enable_bias", true),
                k.bool("layer_norm_elementwise_affine", true), preNorm && !removeFinal,
                OPT_POSITION_OFFSET, 0, RopeScaling.NONE, false, false,
                k.integer("bos_token_id", 2), k.intList("eos_token_id", 2),
                k.integer("pad_token_id", 1));
    }

    private static ModelConfig llama(Keys k) {
        int hidden = k.integer("hidden_size", null);
        int heads = k.integer("num_attention_heads", null);
        if (heads <= 0) {
            throw k.bad("num_attention_heads", heads, "must be > 0");
        }
        String act = k.string("hidden_act", "silu");
        if (!"silu".equals(act)) {
            throw k.bad("hidden_act", act, "supported: silu");
        }
        int defaultHeadDim = hidden % heads == 0 ? hidden / heads : -1;
        int headDim = k.integer("head_dim", defaultHeadDim);
        if (headDim <= 0) {
            throw k.bad("hidden_size", hidden, "is not a multiple of num_attention_heads ("
                    + heads + ") and no head_dim is given");
        }
        // Newer transformers write rope_parameters {rope_type, rope_theta, ...}; older ones
        // write rope_theta and rope_scaling {type|rope_type, factor, ...}. Accept both.
        JsonNode params = k.node("rope_parameters");
        double theta;
        RopeScaling scaling;
        if (params != null && params.isObject()) {
            Keys p = k.child("rope_parameters", params);
            theta = p.number("rope_theta", k.number("rope_theta", 10000.0));
            scaling = ropeScaling(p);
        } else {
            theta = k.number("rope_theta", 10000.0);
            JsonNode rs = k.node("rope_scaling");
            scaling = rs == null || rs.isNull() ? RopeScaling.NONE
                    : ropeScaling(k.child("rope_scaling", rs));
        }
        if (!(theta > 0)) {
            throw k.bad("rope_theta", theta, "must be > 0");
        }
        return new ModelConfig(ModelFamily.LLAMA,
                k.integer("vocab_size", null), hidden, k.integer("num_hidden_layers", null),
                heads, k.integer("num_key_value_heads", heads), headDim,
                k.integer("intermediate_size", null), k.integer("max_position_embeddings", null),
                Activation.SILU, (float) k.number("rms_norm_eps", 1e-6),
                k.bool("tie_word_embeddings", false),
                true, hidden, false, true, true, 0,
                theta, scaling, k.bool("attention_bias", false), k.bool("mlp_bias", false),
                k.integer("bos_token_id", 1), k.intList("eos_token_id", 2),
                k.integer("pad_token_id", -1));
    }

    private static RopeScaling ropeScaling(Keys s) {
        String type = s.string("rope_type", s.string("type", "default"));
        switch (type) {
            case "default":
                return RopeScaling.NONE;
            case "linear":
                return new RopeScaling(RopeScaling.Type.LINEAR, s.number("factor", null), 0, 0, 0);
            case "llama3":
                return new RopeScaling(RopeScaling.Type.LLAMA3, s.number("factor", null),
                        s.number("low_freq_factor", null), s.number("high_freq_factor", null),
                        s.integer("original_max_position_embeddings", null));
            default:
                throw s.bad("rope_type", type, "supported: default, linear, llama3");
        }
    }

    /** Typed access to config keys, with errors that name the file, the key and the value. */
    private static final class Keys {
        private final JsonNode root;
        private final String source;
        private final String prefix;

        Keys(JsonNode root, String source) {
            this(root, source, "");
        }

        private Keys(JsonNode root, String source, String prefix) {
            this.root = root;
            this.source = source;
            this.prefix = prefix;
        }

        Keys child(String key, JsonNode node) {
            return new Keys(node, source, prefix + key + ".");
        }

        JsonNode node(String key) {
            return root.get(key);
        }

        ModelFormatException bad(String key, Object value, String why) {
            return new ModelFormatException(source + ": unsupported value " + quote(value)
                    + " for key '" + prefix + key + "' (" + why + ")");
        }

        private static String quote(Object value) {
            return value instanceof String ? "'" + value + "'" : String.valueOf(value);
        }

        private JsonNode get(String key, Object dflt) {
            JsonNode n = root.get(key);
            if (n == null || n.isNull()) {
                if (dflt == null) {
                    throw new ModelFormatException(source + ": missing required key '" + prefix
                            + key + "'");
                }
                return null;
            }
            return n;
        }

        String string(String key, String dflt) {
            JsonNode n = root.get(key);
            if (n == null || n.isNull()) {
                if (dflt == null && "model_type".equals(key)) {
                    throw new ModelFormatException(source + ": missing required key 'model_type'");
                }
                return dflt;
            }
            if (!n.isTextual()) {
                throw bad(key, n.toString(), "expected a string");
            }
            return n.asText();
        }

        int integer(String key, Integer dflt) {
            JsonNode n = get(key, dflt);
            if (n == null) {
                return dflt;
            }
            if (!n.isIntegralNumber() || !n.canConvertToInt()) {
                throw bad(key, n.toString(), "expected an integer");
            }
            return n.intValue();
        }

        double number(String key, Double dflt) {
            JsonNode n = get(key, dflt);
            if (n == null) {
                return dflt;
            }
            if (!n.isNumber()) {
                throw bad(key, n.toString(), "expected a number");
            }
            return n.doubleValue();
        }

        boolean bool(String key, boolean dflt) {
            JsonNode n = root.get(key);
            if (n == null || n.isNull()) {
                return dflt;
            }
            if (!n.isBoolean()) {
                throw bad(key, n.toString(), "expected true or false");
            }
            return n.booleanValue();
        }

        List<Integer> intList(String key, int dflt) {
            JsonNode n = root.get(key);
            List<Integer> out = new ArrayList<>();
            if (n == null || n.isNull()) {
                out.add(dflt);
            } else if (n.isArray()) {
                for (JsonNode e : n) {
                    if (!e.isIntegralNumber()) {
                        throw bad(key, n.toString(), "expected integers");
                    }
                    out.add(e.intValue());
                }
            } else {
                out.add(integer(key, dflt));
            }
            return out;
        }
    }
}
