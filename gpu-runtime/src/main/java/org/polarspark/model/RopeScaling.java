package org.polarspark.model;

/**
 * RoPE frequency scaling, as Hugging Face's {@code rope_scaling} (or, in newer checkpoints,
 * {@code rope_parameters}) describes it.
 *
 * @param type                 NONE, LINEAR (inverse frequencies divided by factor) or LLAMA3
 *                             (Llama 3.1's wavelength-dependent scaling)
 * @param factor               scaling factor (>= 1 for LINEAR and LLAMA3)
 * @param lowFreqFactor        LLAMA3 only
 * @param highFreqFactor       LLAMA3 only; must exceed lowFreqFactor
 * @param originalMaxPositions LLAMA3 only: the pre-training context length
 */
public record RopeScaling(Type type, double factor, double lowFreqFactor, double highFreqFactor,
                          int originalMaxPositions) {
    public enum Type { NONE, LINEAR, LLAMA3 }

    public static final RopeScaling NONE = new RopeScaling(Type.NONE, 1.0, 0, 0, 0);

    public RopeScaling {
        if (type != Type.NONE && !(factor > 0)) {
            throw new IllegalArgumentException("rope_scaling.factor must be > 0, got " + factor);
        }
        if (type == Type.LLAMA3) {
            if (!(highFreqFactor > lowFreqFactor) || lowFreqFactor <= 0) {
                throw new IllegalArgumentException("rope_scaling: llama3 needs 0 < low_freq_factor"
                        + " < high_freq_factor, got " + lowFreqFactor + " and " + highFreqFactor);
            }
            if (originalMaxPositions <= 0) {
                throw new IllegalArgumentException("rope_scaling.original_max_position_embeddings"
                        + " must be > 0, got " + originalMaxPositions);
            }
        }
    }

    /**
     * Inverse frequencies for a head of {@code headDim}, with this scaling applied, in float32 as
     * Hugging Face computes them ({@code 1 / theta^(2i/d)}).
     */
    public float[] inverseFrequencies(double theta, int headDim) {
        float[] inv = new float[headDim / 2];
        for (int i = 0; i < inv.length; i++) {
            float base = (float) (1.0 / Math.pow(theta, (2.0 * i) / headDim));
            switch (type) {
                case NONE:
                    inv[i] = base;
                    break;
                case LINEAR:
                    inv[i] = (float) (base / factor);
                    break;
                case LLAMA3: {
                    double lowFreqWavelen = originalMaxPositions / lowFreqFactor;
                    double highFreqWavelen = originalMaxPositions / highFreqFactor;
                    double wavelen = 2 * Math.PI / base;
                    if (wavelen < highFreqWavelen) {
                        inv[i] = base; // high frequencies are kept
                    } else if (wavelen > lowFreqWavelen) {
                        inv[i] = (float) (base / factor); // low frequencies are scaled
                    } else { // in between: interpolate smoothly
                        double smooth = (originalMaxPositions / wavelen - lowFreqFactor)
                                / (highFreqFactor - lowFreqFactor);
                        inv[i] = (float) ((1 - smooth) * base / factor + smooth * base);
                    }
                    break;
                }
                default:
                    throw new AssertionError(type);
            }
        }
        return inv;
    }
}
