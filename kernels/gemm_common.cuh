// Device helpers shared by gemm.cu and gemm_sm90a.cu (separate fatbins): the epilogue kinds, the
// source rows of a tile, the bias lookup and the epilogue itself. One definition, because the
// epilogue is part of the bits that every GEMM tile must reproduce.
#pragma once
#include "common.cuh"

enum Epi { STORE_BF16 = 0, RELU_BF16 = 1, ACCUM_F32 = 2, STORE_F32 = 3, SWIGLU_BF16 = 4 };

// Global source rows of a tile's loads: A row m_row + i * STEP (i < A_IT) and W row
// n_row + i * STEP (i < B_IT; through w_idx for row-gathered weights), at column k_col. Rows past
// M / N read row 0 with size 0 (cp.async zero-fills them); sizes are 16 bytes otherwise.
template <int STEP, int A_IT, int B_IT>
POLAR_DEVICE void gemm_sources(const bf16* A, int lda, const bf16* W, int ldw,
                               const int* __restrict__ w_idx, int M, int N, int m_row, int n_row,
                               int k_col, const bf16* (&a_src)[A_IT], int (&a_sz)[A_IT],
                               const bf16* (&b_src)[B_IT], int (&b_sz)[B_IT]) {
#pragma unroll
    for (int i = 0; i < A_IT; i++) {
        const int gm = m_row + i * STEP;
        a_sz[i] = gm < M ? 16 : 0;
        a_src[i] = A + (size_t)(gm < M ? gm : 0) * lda + k_col;
    }
    // Every row index loaded unconditionally (rows past N read entry 0, copied with size 0), so
    // that the B_IT loads are in flight together rather than one per bounds branch.
    int wr[B_IT];
#pragma unroll
    for (int i = 0; i < B_IT; i++) {
        const int gn = n_row + i * STEP, g = gn < N ? gn : 0;
        wr[i] = w_idx ? __ldg(w_idx + g) : g;
    }
#pragma unroll
    for (int i = 0; i < B_IT; i++) {
        const int gn = n_row + i * STEP;
        b_sz[i] = gn < N ? 16 : 0;
        b_src[i] = W + (size_t)(gn < N ? wr[i] : 0) * ldw + k_col;
    }
}

// Bias of output columns col and col + 1 (gathered through w_idx for row-gathered weights).
POLAR_DEVICE void bias_pair(const bf16* __restrict__ bias, const int* __restrict__ w_idx, int col,
                            float& b0, float& b1) {
    b0 = b1 = 0.f;
    if (bias) {
        b0 = bf2f(bias[w_idx ? w_idx[col] : col]);
        b1 = bf2f(bias[w_idx ? w_idx[col + 1] : col + 1]);
    }
}

template <int EPI>
POLAR_DEVICE void epilogue(void* __restrict__ out, int ldc, int row, int col, float v0, float v1,
                           float b0, float b1) {
    v0 += b0;
    v1 += b1;
    if (EPI == STORE_BF16 || EPI == RELU_BF16) {
        if (EPI == RELU_BF16) {
            v0 = fmaxf(v0, 0.f);
            v1 = fmaxf(v1, 0.f);
        }
        bf16* o = (bf16*)out + (size_t)row * ldc + col;
        o[0] = f2bf(v0);
        o[1] = f2bf(v1);
    } else if (EPI == ACCUM_F32) {
        float* o = (float*)out + (size_t)row * ldc + col;
        o[0] += v0;
        o[1] += v1;
    } else if (EPI == STORE_F32) {
        float* o = (float*)out + (size_t)row * ldc + col;
        o[0] = v0;
        o[1] = v1;
    } else {  // SWIGLU_BF16: v0 = gate_j, v1 = up_j with j = col / 2
        float silu = v0 / (1.f + __expf(-v0));
        ((bf16*)out)[(size_t)row * ldc + col / 2] = f2bf(silu * v1);
    }
}
