package org.polarspark.job;

/**
 * The Spark job failed after startup (a task failed spark.task.maxFailures times, e.g. because
 * the asked-for backend cannot run there). The message carries the innermost cause.
 */
public final class JobFailedException extends RuntimeException {
    public JobFailedException(String message, Throwable cause) {
        super(message, cause);
    }
}
