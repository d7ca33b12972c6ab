// Flash-decoding attention over the paged KV cache: split-K over the sequence, GQA-aware (one
// thread block per (token, KV group, split) computes every query head of the group, so each
// selected group's K and V are read once), with an optional Polar Sparsity group table.
//
// attention_decode_paged_bf16 (pass 1): for token t, group slot y and split s:
//   g = group_idx ? group_idx[t * groups_per_token + y] : y
//   positions [s * split_len, min(pos_of[t] + 1, (s + 1) * split_len))  (causal: <= own position)
//   for each query head h of group g: partial softmax statistics (m, l, in base 2) and the
//   unnormalised output o = sum_p exp2(score_p - m) v_p, into
//   part_o  fp32 [n, num_heads, num_splits, head_dim] and part_ml fp32 [n, num_heads, num_splits, 2].
// attention_combine_bf16 (pass 2): merges the splits of every (token, selected head) and writes
//   att bf16 [n, num_heads * head_dim]. Heads of unselected groups are not written: the caller
//   zeroes att first when a group table is used (Polar), so they contribute zero to o_proj.
//
//   q: the first num_heads * head_dim columns of qkv bf16 [n, row_stride] (after RoPE);
//   score = (q . k) * scale, computed as (q * scale * log2 e) . k with exp2.
//   Cache layout as kv_cache.cu: bf16 [num_blocks, num_kv_heads, block_size, head_dim].
// Works for any sequence, also a prompt's tokens during prefill (each token is a query at its own
// position, reading K/V appended for the whole prompt first), so it is also the causal prefill
// attention. Not checked here: block_table entries and group_idx values in range.
// Grid pass 1: (n, groups_per_token, num_splits), block 128, dynamic shared memory
//   (G*D + 2*TILE*(D+1) + G*TILE + 3*G) floats, G = num_heads / num_kv_heads.
// Grid pass 2: (n, groups_per_token * G), block 128.
#include "common.cuh"

#define ATT_TILE 32
#define ATT_THREADS 128
#define ATT_MAX_PER_THREAD 16  // G * head_dim <= 2048

extern "C" __global__ void __launch_bounds__(ATT_THREADS)
attention_decode_paged_bf16(const bf16* __restrict__ qkv, int row_stride, float scale,
                            const bf16* __restrict__ k_cache, const bf16* __restrict__ v_cache,
                            const int* __restrict__ block_table, int max_blocks, int block_size,
                            const int* __restrict__ row_of, const int* __restrict__ pos_of,
                            const int* __restrict__ group_idx, int groups_per_token,
                            int num_heads, int num_kv_heads, int head_dim, int split_len,
                            int num_splits, float* __restrict__ part_o,
                            float* __restrict__ part_ml) {
    extern __shared__ float smem[];
    const int t = blockIdx.x, y = blockIdx.y, s = blockIdx.z;
    const int G = num_heads / num_kv_heads, D = head_dim;
    const int g = group_idx ? group_idx[t * groups_per_token + y] : y;
    const int len = pos_of[t] + 1;
    const int start = s * split_len;
    const int end = min(len, start + split_len);
    float* qs = smem;                       // [G][D]
    float* ks = qs + G * D;                 // [TILE][D + 1]
    float* vs = ks + ATT_TILE * (D + 1);    // [TILE][D + 1]
    float* ps = vs + ATT_TILE * (D + 1);    // [G][TILE]
    float* m_s = ps + G * ATT_TILE;         // [G]
    float* l_s = m_s + G;                   // [G]
    float* a_s = l_s + G;                   // [G] rescale factor of the current tile
    const size_t part = ((size_t)t * num_heads + g * G) * num_splits + s; // head g*G, split s

    if (start >= end) {  // this split lies beyond the sequence: empty partial
        for (int h = threadIdx.x; h < G; h += blockDim.x) {
            size_t p = part + (size_t)h * num_splits;
            part_ml[p * 2] = -INFINITY;
            part_ml[p * 2 + 1] = 0.f;
        }
        return;
    }
    const float qscale = scale * 1.4426950408889634f;  // log2(e): softmax via exp2
    const bf16* q = qkv + (size_t)t * row_stride + (size_t)g * G * D;
    for (int i = threadIdx.x; i < G * D; i += blockDim.x) qs[i] = bf2f(q[i]) * qscale;
    for (int h = threadIdx.x; h < G; h += blockDim.x) {
        m_s[h] = -INFINITY;
        l_s[h] = 0.f;
    }
    float acc[ATT_MAX_PER_THREAD];
#pragma unroll
    for (int j = 0; j < ATT_MAX_PER_THREAD; j++) acc[j] = 0.f;
    const int* table = block_table + (size_t)row_of[t] * max_blocks;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

    for (int t0 = start; t0 < end; t0 += ATT_TILE) {
        __syncthreads();
        for (int i = threadIdx.x; i < ATT_TILE * D; i += blockDim.x) {
            int r = i / D, d = i % D, p = t0 + r;
            float kv = 0.f, vv = 0.f;
            if (p < end) {
                size_t off = (((size_t)table[p / block_size] * num_kv_heads + g) * block_size
                              + p % block_size) * D + d;
                kv = bf2f(k_cache[off]);
                vv = bf2f(v_cache[off]);
            }
            ks[r * (D + 1) + d] = kv;
            vs[r * (D + 1) + d] = vv;
        }
        __syncthreads();
        for (int i = threadIdx.x; i < G * ATT_TILE; i += blockDim.x) {
            int h = i / ATT_TILE, r = i % ATT_TILE;
            float sc = -INFINITY;
            if (t0 + r < end) {
                sc = 0.f;
                const float* qh = qs + h * D;
                const float* kr = ks + r * (D + 1);
                for (int d = 0; d < D; d++) sc += qh[d] * kr[d];
            }
            ps[h * ATT_TILE + r] = sc;
        }
        __syncthreads();
        // Online softmax: one warp per head (lane r holds position r of the tile).
        for (int h = warp; h < G; h += ATT_THREADS / 32) {
            float sc = ps[h * ATT_TILE + lane];
            float m_old = m_s[h];
            float m_new = fmaxf(m_old, warp_max(sc));
            float p = exp2f(sc - m_new);  // 0 for masked (-inf) positions
            float sum = warp_sum(p);
            ps[h * ATT_TILE + lane] = p;
            if (lane == 0) {
                float alpha = exp2f(m_old - m_new);  // 0 on the first tile (m_old = -inf)
                a_s[h] = alpha;
                l_s[h] = l_s[h] * alpha + sum;
                m_s[h] = m_new;
            }
        }
        __syncthreads();
#pragma unroll
        for (int j = 0; j < ATT_MAX_PER_THREAD; j++) {
            int i = threadIdx.x + j * ATT_THREADS;
            if (i < G * D) {
                int h = i / D, d = i % D;
                float o = acc[j] * a_s[h];
                const float* ph = ps + h * ATT_TILE;
                for (int r = 0; r < ATT_TILE; r++) o += ph[r] * vs[r * (D + 1) + d];
                acc[j] = o;
            }
        }
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < ATT_MAX_PER_THREAD; j++) {
        int i = threadIdx.x + j * ATT_THREADS;
        if (i < G * D) {
            int h = i / D, d = i % D;
            part_o[(part + (size_t)h * num_splits) * D + d] = acc[j];
        }
    }
    for (int h = threadIdx.x; h < G; h += blockDim.x) {
        size_t p = part + (size_t)h * num_splits;
        part_ml[p * 2] = m_s[h];
        part_ml[p * 2 + 1] = l_s[h];
    }
}

extern "C" __global__ void attention_combine_bf16(bf16* __restrict__ att,
                                                  const float* __restrict__ part_o,
                                                  const float* __restrict__ part_ml,
                                                  const int* __restrict__ group_idx,
                                                  int groups_per_token, int num_heads,
                                                  int num_kv_heads, int head_dim, int num_splits) {
    const int t = blockIdx.x;
    const int G = num_heads / num_kv_heads;
    const int y = blockIdx.y / G, hg = blockIdx.y % G;
    const int g = group_idx ? group_idx[t * groups_per_token + y] : y;
    const int h = g * G + hg;
    const size_t base = ((size_t)t * num_heads + h) * num_splits;
    float M = -INFINITY;
    for (int s = 0; s < num_splits; s++) M = fmaxf(M, part_ml[(base + s) * 2]);
    float L = 0.f;
    for (int s = 0; s < num_splits; s++) {
        float m = part_ml[(base + s) * 2];
        if (m != -INFINITY) L += part_ml[(base + s) * 2 + 1] * exp2f(m - M);
    }
    const float inv = 1.f / L;
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float o = 0.f;
        for (int s = 0; s < num_splits; s++) {
            float m = part_ml[(base + s) * 2];
            if (m != -INFINITY) o += part_o[(base + s) * head_dim + d] * exp2f(m - M);
        }
        att[(size_t)t * num_heads * head_dim + (size_t)h * head_dim + d] = f2bf(o * inv);
    }
}
