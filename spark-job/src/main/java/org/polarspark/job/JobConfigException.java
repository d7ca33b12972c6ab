package org.polarspark.job;

/**
 * A startup error: a bad option, a missing input column, an output that already exists. Raised
 * on the driver before any row is processed; the message names the key or column.
 */
public final class JobConfigException extends RuntimeException {
    public JobConfigException(String message) {
        super(message);
    }

    public JobConfigException(String message, Throwable cause) {
        super(message, cause);
    }
}
