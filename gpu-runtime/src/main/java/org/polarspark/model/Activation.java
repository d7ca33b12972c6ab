package org.polarspark.model;

/** MLP activation. Only RELU allows MLP (neuron) sparsity. */
public enum Activation {
    RELU,
    /** Exact (erf) GELU, as Hugging Face's "gelu". */
    GELU,
    /** SiLU used inside SwiGLU: down(silu(gate(x)) * up(x)). */
    SILU;

    public float apply(float x) {
        switch (this) {
            case RELU:
                return x > 0f ? x : 0f;
            case GELU:
                return (float) (0.5 * x * (1.0 + Erf.erf(x / Math.sqrt(2.0))));
            case SILU:
                return (float) (x / (1.0 + Math.exp(-x)));
            default:
                throw new AssertionError(this);
        }
    }

    /** erf with absolute error below 1.2e-7 (Numerical Recipes' erfc Chebyshev fit). */
    static final class Erf {
        static double erf(double x) {
            double t = 1.0 / (1.0 + 0.5 * Math.abs(x));
            double y = t * Math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196
                    + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398
                    + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
            return x >= 0 ? 1.0 - y : y - 1.0;
        }
    }
}
