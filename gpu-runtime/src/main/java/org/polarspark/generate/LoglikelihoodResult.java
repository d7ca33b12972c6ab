package org.polarspark.generate;

/**
 * @param loglikelihood sum of the continuation tokens' log-probabilities (natural log)
 * @param isGreedy      every continuation token was the argmax at its step
 * @param tokens        number of continuation tokens scored
 */
public record LoglikelihoodResult(double loglikelihood, boolean isGreedy, int tokens) {
}
