package org.polarspark.job;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.polarspark.cpu.CpuEngine;
import org.polarspark.generate.Engine;

/** Shared set-up of the end-to-end tests: the local session and the engine called directly. */
abstract class JobTestBase {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Path OPT = SparkTests.golden("opt");
    static Engine direct;

    @TempDir
    Path tmp;

    @BeforeAll
    static void engine() {
        SparkTests.spark();
        direct = CpuEngine.load(OPT, 4);
    }

    @AfterAll
    static void close() {
        direct.close();
    }

    static SparkSession spark() {
        return SparkTests.spark();
    }

    /** Prompts of prompts.jsonl short enough for the golden model's context of 128. */
    static List<JsonNode> shortPrompts(int n) {
        List<JsonNode> out = new ArrayList<>();
        for (String line : SparkTests.lines("datasets/prompts/prompts.jsonl", 300)) {
            JsonNode j = parse(line);
            if (direct.tokenizer().encode(j.get("prompt").asText()).length < 60) {
                out.add(j);
            }
            if (out.size() == n) {
                break;
            }
        }
        return out;
    }

    static JsonNode parse(String json) {
        try {
            return JSON.readTree(json);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static JsonNode readJson(Path p) {
        try {
            return JSON.readTree(p.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
