// Token choice and log-probabilities from fp32 logits, on the device.
//
// lmhead_argmax_f32: per row, ids[r] = argmax_v logits[r, v] (lowest id among equal maxima),
//   logprob[r] = logits[r, ids[r]] - logsumexp_v logits[r, v].
// lmhead_logprob_f32: per row, logprob[r] = logits[r, ids[r]] - logsumexp(logits[r]) for given
//   ids (scoring), and greedy[r] = 1 if ids[r] is an argmax of the row.
//   logits: fp32 [rows, vocab]; ids int32 [rows]; logprob fp32 [rows]; greedy int32 [rows].
// Grid: (rows), block: 256 threads. logsumexp in fp32 around the row maximum.
#include "common.cuh"

struct MaxIdx {
    float v;
    int i;
};

__device__ MaxIdx better(MaxIdx a, MaxIdx b) {
    if (b.v > a.v || (b.v == a.v && b.i < a.i)) return b;
    return a;
}

__device__ MaxIdx block_argmax(MaxIdx m) {
    __shared__ float sv[32];
    __shared__ int si[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        MaxIdx other{__shfl_xor_sync(0xffffffffu, m.v, o), __shfl_xor_sync(0xffffffffu, m.i, o)};
        m = better(m, other);
    }
    __syncthreads();
    if (lane == 0) {
        sv[warp] = m.v;
        si[warp] = m.i;
    }
    __syncthreads();
    int nw = blockDim.x >> 5;
    m = lane < nw ? MaxIdx{sv[lane], si[lane]} : MaxIdx{-INFINITY, 0x7fffffff};
    for (int o = 16; o > 0; o >>= 1) {
        MaxIdx other{__shfl_xor_sync(0xffffffffu, m.v, o), __shfl_xor_sync(0xffffffffu, m.i, o)};
        m = better(m, other);
    }
    return m;
}

__device__ float row_lse(const float* row, int vocab, float max) {
    __shared__ float scratch[32];
    float s = 0.f;
    for (int v = threadIdx.x; v < vocab; v += blockDim.x) s += expf(row[v] - max);
    return max + logf(block_sum(s, scratch));
}

extern "C" __global__ void lmhead_argmax_f32(const float* __restrict__ logits, int rows, int vocab,
                                             int* __restrict__ ids, float* __restrict__ logprob) {
    int r = blockIdx.x;
    if (r >= rows) return;
    const float* row = logits + (size_t)r * vocab;
    MaxIdx m{-INFINITY, 0x7fffffff};
    for (int v = threadIdx.x; v < vocab; v += blockDim.x) m = better(m, MaxIdx{row[v], v});
    m = block_argmax(m);
    float lse = row_lse(row, vocab, m.v);
    if (threadIdx.x == 0) {
        ids[r] = m.i;
        logprob[r] = m.v - lse;
    }
}

extern "C" __global__ void lmhead_logprob_f32(const float* __restrict__ logits, int rows, int vocab,
                                              const int* __restrict__ ids,
                                              float* __restrict__ logprob,
                                              int* __restrict__ greedy) {
    int r = blockIdx.x;
    if (r >= rows) return;
    const float* row = logits + (size_t)r * vocab;
    MaxIdx m{-INFINITY, 0x7fffffff};
    for (int v = threadIdx.x; v < vocab; v += blockDim.x) m = better(m, MaxIdx{row[v], v});
    m = block_argmax(m);
    float lse = row_lse(row, vocab, m.v);
    if (threadIdx.x == 0) {
        logprob[r] = row[ids[r]] - lse;
        greedy[r] = row[ids[r]] == m.v ? 1 : 0;
    }
}
