package org.polarspark.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.polarspark.testutil.Golden;

/** config.json mapping: the golden configs, both RoPE formats, and every error path. */
class ModelConfigTest {
    @TempDir
    Path tmp;

    private static ModelConfig golden(String name) {
        return ModelConfig.load(Golden.goldenRoot().resolve(name));
    }

    private static ObjectNode goldenJson(String name) throws IOException {
        return (ObjectNode) StTestIO.JSON.readTree(
                Golden.goldenRoot().resolve(name).resolve("config.json").toFile());
    }

    /** Writes a golden config with an edit applied and returns the file. */
    private Path edited(String name, Consumer<ObjectNode> edit) throws IOException {
        ObjectNode n = goldenJson(name);
        edit.accept(n);
        return write(n.toString());
    }

    private Path write(String json) throws IOException {
        Path dir = Files.createTempDirectory(tmp, "cfg");
        Path f = dir.resolve("config.json");
        Files.writeString(f, json);
        return f;
    }

    private static ModelFormatException fails(Path file, String... fragments) {
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> ModelConfig.load(file));
        String m = e.getMessage();
        assertTrue(m.contains(file.toString()), "message should name the file: " + m);
        for (String f : fragments) {
            assertTrue(m.contains(f), "message should contain '" + f + "': " + m);
        }
        return e;
    }

    // -----------------------------------------------------------------------------------------
    // Golden configs
    // -----------------------------------------------------------------------------------------

    @Test
    void optPreNorm() {
        ModelConfig c = golden("opt");
        assertEquals(ModelFamily.OPT, c.family());
        assertEquals(512, c.vocabSize());
        assertEquals(64, c.hiddenSize());
        assertEquals(2, c.numLayers());
        assertEquals(4, c.numHeads());
        assertEquals(4, c.numKvHeads());
        assertEquals(16, c.headDim());
        assertEquals(1, c.groupSize());
        assertEquals(256, c.ffnDim());
        assertEquals(128, c.maxPositions());
        assertEquals(Activation.RELU, c.activation());
        assertEquals(1e-5f, c.normEps());
        assertTrue(c.tieWordEmbeddings());
        assertTrue(c.doLayerNormBefore());
        assertEquals(64, c.wordEmbedProjDim());
        assertFalse(c.hasEmbedProjection());
        assertTrue(c.enableBias());
        assertTrue(c.layerNormElementwiseAffine());
        assertTrue(c.finalLayerNorm());
        assertEquals(2, c.positionOffset());
        assertEquals(RopeScaling.Type.NONE, c.ropeScaling().type());
        assertFalse(c.attentionBias());
        assertFalse(c.mlpBias());
        assertEquals(2, c.bosTokenId());
        assertEquals(List.of(2), c.eosTokenIds());
        assertEquals(1, c.padTokenId());
        assertFalse(c.gatedMlp());
        assertTrue(c.reluMlp());
        assertEquals(64, c.qDim());
        assertEquals(64, c.kvDim());
    }

    @Test
    void optPostNormWithEmbedProjection() {
        ModelConfig c = golden("opt-postln");
        assertEquals(ModelFamily.OPT, c.family());
        assertEquals(64, c.hiddenSize());
        assertEquals(4, c.numHeads());
        assertEquals(4, c.numKvHeads());
        assertEquals(16, c.headDim());
        assertEquals(192, c.ffnDim());
        assertFalse(c.doLayerNormBefore());
        assertEquals(32, c.wordEmbedProjDim());
        assertTrue(c.hasEmbedProjection());
        // Post-norm OPT (350m) has no decoder-level final LayerNorm.
        assertFalse(c.finalLayerNorm());
        assertTrue(c.tieWordEmbeddings());
        assertEquals(2, c.bosTokenId());
        assertEquals(List.of(2), c.eosTokenIds());
    }

    @Test
    void llama2ShardedWithBiasesAndLinearRope() {
        ModelConfig c = golden("llama2");
        assertEquals(ModelFamily.LLAMA, c.family());
        assertEquals(512, c.vocabSize());
        assertEquals(64, c.hiddenSize());
        assertEquals(2, c.numLayers());
        assertEquals(4, c.numHeads());
        assertEquals(4, c.numKvHeads());
        assertEquals(16, c.headDim());
        assertEquals(1, c.groupSize());
        assertEquals(160, c.ffnDim());
        assertEquals(256, c.maxPositions());
        assertEquals(Activation.SILU, c.activation());
        assertEquals(1e-5f, c.normEps());
        assertFalse(c.tieWordEmbeddings());
        assertTrue(c.doLayerNormBefore());
        assertEquals(64, c.wordEmbedProjDim());
        assertFalse(c.hasEmbedProjection());
        assertTrue(c.finalLayerNorm());
        assertEquals(0, c.positionOffset());
        assertEquals(10000.0, c.ropeTheta());
        assertEquals(RopeScaling.Type.LINEAR, c.ropeScaling().type());
        assertEquals(2.0, c.ropeScaling().factor());
        assertTrue(c.attentionBias());
        assertTrue(c.mlpBias());
        assertEquals(1, c.bosTokenId());
        assertEquals(List.of(2), c.eosTokenIds());
        assertEquals(-1, c.padTokenId()); // "pad_token_id": null
        assertTrue(c.gatedMlp());
        assertFalse(c.reluMlp());
    }

    @Test
    void llama3GqaWithRopeParameters() {
        ModelConfig c = golden("llama3-gqa");
        assertEquals(ModelFamily.LLAMA, c.family());
        assertEquals(3, c.numLayers());
        assertEquals(8, c.numHeads());
        assertEquals(2, c.numKvHeads());
        assertEquals(16, c.headDim());
        assertEquals(4, c.groupSize());
        assertEquals(128, c.qDim());
        assertEquals(32, c.kvDim());
        assertEquals(192, c.ffnDim());
        assertEquals(512, c.maxPositions());
        assertTrue(c.tieWordEmbeddings());
        assertFalse(c.attentionBias());
        assertFalse(c.mlpBias());
        assertEquals(500000.0, c.ropeTheta());
        RopeScaling r = c.ropeScaling();
        assertEquals(RopeScaling.Type.LLAMA3, r.type());
        assertEquals(8.0, r.factor());
        assertEquals(1.0, r.lowFreqFactor());
        assertEquals(4.0, r.highFreqFactor());
        assertEquals(64, r.originalMaxPositions());
        assertEquals(1, c.bosTokenId());
        assertTrue(c.isEos(2));
        assertFalse(c.isEos(1));
    }

    @Test
    void loadAcceptsTheFileItself() {
        Path dir = Golden.goldenRoot().resolve("llama3-gqa");
        assertEquals(ModelConfig.load(dir), ModelConfig.load(dir.resolve("config.json")));
    }

    // -----------------------------------------------------------------------------------------
    // RoPE formats
    // -----------------------------------------------------------------------------------------

    private static final String LLAMA_BASE = "\"model_type\": \"llama\", \"vocab_size\": 100,"
            + " \"hidden_size\": 64, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
            + " \"intermediate_size\": 128, \"max_position_embeddings\": 64";

    @Test
    void oldFormatRopeThetaAndNoScaling() throws IOException {
        ModelConfig c = ModelConfig.load(write("{" + LLAMA_BASE + ", \"rope_theta\": 250000.0,"
                + " \"rope_scaling\": null}"));
        assertEquals(250000.0, c.ropeTheta());
        assertSame(RopeScaling.NONE, c.ropeScaling());
        // No rope keys at all: the Llama defaults.
        ModelConfig d = ModelConfig.load(write("{" + LLAMA_BASE + "}"));
        assertEquals(10000.0, d.ropeTheta());
        assertEquals(RopeScaling.Type.NONE, d.ropeScaling().type());
        assertEquals(16, d.headDim()); // hidden / heads
        assertEquals(4, d.numKvHeads()); // defaults to heads
        assertEquals(1e-6f, d.normEps());
        assertEquals(1, d.bosTokenId());
        assertEquals(List.of(2), d.eosTokenIds());
        assertFalse(d.tieWordEmbeddings());
    }

    @Test
    void oldFormatLinearWithTypeKey() throws IOException {
        ModelConfig c = ModelConfig.load(write("{" + LLAMA_BASE + ", \"rope_theta\": 10000,"
                + " \"rope_scaling\": {\"type\": \"linear\", \"factor\": 4.0}}"));
        assertEquals(10000.0, c.ropeTheta());
        assertEquals(RopeScaling.Type.LINEAR, c.ropeScaling().type());
        assertEquals(4.0, c.ropeScaling().factor());
    }

    @Test
    void oldFormatLlama3WithRopeTypeKey() throws IOException {
        ModelConfig c = ModelConfig.load(write("{" + LLAMA_BASE + ", \"rope_theta\": 500000.0,"
                + " \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 32.0,"
                + " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
                + " \"original_max_position_embeddings\": 8192}}"));
        assertEquals(500000.0, c.ropeTheta());
        RopeScaling r = c.ropeScaling();
        assertEquals(RopeScaling.Type.LLAMA3, r.type());
        assertEquals(32.0, r.factor());
        assertEquals(1.0, r.lowFreqFactor());
        assertEquals(4.0, r.highFreqFactor());
        assertEquals(8192, r.originalMaxPositions());
    }

    @Test
    void oldFormatDefaultTypeIsNone() throws IOException {
        ModelConfig c = ModelConfig.load(write("{" + LLAMA_BASE + ", \"rope_theta\": 1000.0,"
                + " \"rope_scaling\": {\"rope_type\": \"default\"}}"));
        assertEquals(1000.0, c.ropeTheta());
        assertEquals(RopeScaling.Type.NONE, c.ropeScaling().type());
    }

    @Test
    void newFormatDefaultAndLinear() throws IOException {
        ModelConfig c = ModelConfig.load(write("{" + LLAMA_BASE + ", \"rope_parameters\":"
                + " {\"rope_type\": \"default\", \"rope_theta\": 1234.5}}"));
        assertEquals(1234.5, c.ropeTheta());
        assertEquals(RopeScaling.Type.NONE, c.ropeScaling().type());
        ModelConfig l = ModelConfig.load(write("{" + LLAMA_BASE + ", \"rope_parameters\":"
                + " {\"rope_type\": \"linear\", \"factor\": 3.0, \"rope_theta\": 20000}}"));
        assertEquals(20000.0, l.ropeTheta());
        assertEquals(RopeScaling.Type.LINEAR, l.ropeScaling().type());
        assertEquals(3.0, l.ropeScaling().factor());
    }

    @Test
    void eosTokenIdList() throws IOException {
        ModelConfig c = ModelConfig.load(write("{" + LLAMA_BASE
                + ", \"bos_token_id\": 7, \"eos_token_id\": [5, 9, 11], \"pad_token_id\": 3}"));
        assertEquals(List.of(5, 9, 11), c.eosTokenIds());
        assertTrue(c.isEos(5));
        assertTrue(c.isEos(9));
        assertTrue(c.isEos(11));
        assertFalse(c.isEos(7));
        assertEquals(7, c.bosTokenId());
        assertEquals(3, c.padTokenId());
    }

    @Test
    void optEosTokenIdListAndRemovedFinalLayerNorm() throws IOException {
        ModelConfig c = ModelConfig.load(edited("opt", n -> {
            n.putArray("eos_token_id").add(2).add(50118);
            n.put("_remove_final_layer_norm", true);
            n.put("activation_function", "gelu");
        }));
        assertEquals(List.of(2, 50118), c.eosTokenIds());
        assertFalse(c.finalLayerNorm());
        assertEquals(Activation.GELU, c.activation());
        assertFalse(c.reluMlp());
    }

    // -----------------------------------------------------------------------------------------
    // Errors: each names the file, the key and the value
    // -----------------------------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(strings = {"opt", "llama3-gqa"})
    void missingHiddenSize(String name) throws IOException {
        fails(edited(name, n -> n.remove("hidden_size")), "'hidden_size'", "missing");
    }

    @Test
    void missingKeyInsideRopeParameters() throws IOException {
        fails(edited("llama3-gqa", n -> ((ObjectNode) n.get("rope_parameters")).remove("factor")),
                "rope_parameters.factor", "missing");
    }

    @Test
    void unknownModelType() throws IOException {
        fails(edited("opt", n -> n.put("model_type", "gpt_neox")), "model_type", "gpt_neox");
    }

    @Test
    void missingModelType() throws IOException {
        fails(edited("llama2", n -> n.remove("model_type")), "model_type", "missing");
    }

    @Test
    void unsupportedRopeTypeNewFormat() throws IOException {
        fails(edited("llama3-gqa", n -> ((ObjectNode) n.get("rope_parameters"))
                .put("rope_type", "yarn")), "rope_parameters", "rope_type", "'yarn'");
    }

    @Test
    void unsupportedRopeTypeOldFormatTypeKey() throws IOException {
        fails(write("{" + LLAMA_BASE + ", \"rope_theta\": 10000.0,"
                + " \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0}}"),
                "rope_scaling", "type", "'yarn'");
    }

    @Test
    void unsupportedRopeTypeOldFormatRopeTypeKey() throws IOException {
        fails(write("{" + LLAMA_BASE + ", \"rope_theta\": 10000.0,"
                + " \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}}"),
                "rope_scaling.rope_type", "'yarn'");
    }

    @Test
    void unsupportedHiddenActForLlama() throws IOException {
        fails(edited("llama2", n -> n.put("hidden_act", "gelu")), "hidden_act", "'gelu'");
    }

    @Test
    void unsupportedActivationFunctionForOpt() throws IOException {
        fails(edited("opt", n -> n.put("activation_function", "gelu_new")),
                "activation_function", "'gelu_new'");
    }

    @Test
    void nonIntegerValues() throws IOException {
        fails(edited("opt", n -> n.put("hidden_size", 64.5)), "'hidden_size'", "64.5");
        fails(edited("llama3-gqa", n -> n.put("num_hidden_layers", "three")),
                "'num_hidden_layers'", "three");
        fails(edited("llama3-gqa", n -> n.put("vocab_size", 1e12)), "'vocab_size'");
        fails(edited("llama2", n -> n.putArray("eos_token_id").add(2).add("x")),
                "'eos_token_id'", "\"x\"");
    }

    @Test
    void headsNotMultipleOfKvHeads() throws IOException {
        fails(edited("llama3-gqa", n -> n.put("num_key_value_heads", 3)),
                "num_attention_heads", "8", "num_key_value_heads", "3");
    }

    @Test
    void optHiddenNotMultipleOfHeads() throws IOException {
        fails(edited("opt", n -> n.put("num_attention_heads", 5)),
                "hidden_size", "64", "num_attention_heads", "5");
    }

    @Test
    void nonPositiveSizes() throws IOException {
        fails(edited("opt", n -> n.put("ffn_dim", 0)), "ffn_dim", "0");
        fails(edited("llama2", n -> n.put("intermediate_size", -5)), "intermediate_size", "-5");
        fails(edited("llama3-gqa", n -> n.put("num_key_value_heads", 0)),
                "num_key_value_heads", "0");
    }

    /** num_attention_heads = 0 must be a config error, not an ArithmeticException (/ by zero). */
    @ParameterizedTest
    @ValueSource(strings = {"opt", "llama3-gqa"})
    void zeroAttentionHeads(String name) throws IOException {
        fails(edited(name, n -> n.put("num_attention_heads", 0)), "num_attention_heads", "0");
    }

    @Test
    void invalidJsonNamesTheFile() throws IOException {
        fails(write("{\"model_type\": \"opt\", "), "not valid JSON");
    }

    @Test
    void missingConfigFile() {
        Path dir = tmp.resolve("empty");
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> ModelConfig.load(dir));
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
    }
}
