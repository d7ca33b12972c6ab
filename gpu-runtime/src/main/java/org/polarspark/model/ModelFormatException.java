package org.polarspark.model;

/**
 * A checkpoint that cannot be used: a bad or missing {@code config.json} key, a truncated or
 * malformed safetensors file, a missing or misshapen tensor, an unsupported dtype. The message
 * always names the file and, where there is one, the key or tensor.
 */
public class ModelFormatException extends RuntimeException {
    public ModelFormatException(String message) {
        super(message);
    }

    public ModelFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
