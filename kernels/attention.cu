// Flash-decoding attention over the paged KV cache: split-K over the sequence, GQA-aware (one
// thread block per (token, KV group, split) computes every query head of the group, so each
// selected group's K and V are read once), with an optional Polar Sparsity group table.
//
// attention_decode_paged_g<MAXG>_c<CHUNKS>_bf16 (pass 1): for token t, group slot y, split s:
//   g = group_idx ? group_idx[t * groups_per_token + y] : y
//   positions [s * split_len, min(pos_of[t] + 1, (s + 1) * split_len))  (causal: <= own position)
//   for each query head h of group g: partial softmax statistics (m, l, in base 2) and the
//   unnormalised output o = sum_p exp2(score_p - m) v_p, into
//   part_o  fp32 [n, num_heads, num_splits, head_dim] and part_ml fp32 [n, num_heads, num_splits, 2].
// attention_combine_bf16 (pass 2): merges the splits of every (token, selected head) and writes
//   att bf16 [n, num_heads * head_dim]; heads of unselected groups are written as zeros, so they
//   contribute zero to o_proj.
//
//   q: the first num_heads * head_dim columns of qkv bf16 [n, row_stride] (after RoPE);
//   score = (q . k) * scale, computed as (q * scale * log2 e) . k with exp2.
//   Cache layout as kv_cache.cu: bf16 [num_blocks, num_kv_heads, block_size, head_dim].
// Works for any sequence, also a prompt's tokens during prefill (each token is a query at its own
// position, reading K/V appended for the whole prompt first), so it is also the causal prefill
// attention. Not checked here: block_table entries and group_idx values in range.
// Preconditions (host-checked): head_dim % 4 == 0 and <= 256; G = num_heads / num_kv_heads <= 8.
// Grid pass 1: (n, groups_per_token, num_splits), block 128, dynamic shared memory
//   4 warps * G * (head_dim + 2) floats.
// Grid pass 2: (n, num_heads), block 128.
#include "common.cuh"

#define ATT_TILE 32          // split lengths are multiples of this (host-checked)
#define ATT_THREADS 128
#define ATT_WARPS (ATT_THREADS / 32)
// Instantiated for MAXG query heads per group (1, 2, 4, 8; G <= MAXG) and CHUNKS 128-dim
// chunks of head_dim (1: <= 128, 2: <= 256), so registers scale with the real shape.

// Warp-per-position design: each warp walks its own positions of the split (p = start + warp,
// + 4, ...); a lane loads 4 consecutive bf16 of the K row (8 bytes: a warp reads 256 contiguous
// bytes for head_dim 128), every query head of the group takes its dot product with a warp
// reduction, and the same lane loads the matching 4 values of V. Each warp keeps its own online
// softmax state; the warps are merged through shared memory at the end.
template <int MAXG, int CHUNKS>
__device__ __forceinline__ void attention_decode_body(const bf16* __restrict__ qkv, int row_stride, float scale,
                            const bf16* __restrict__ k_cache, const bf16* __restrict__ v_cache,
                            const int* __restrict__ block_table, int max_blocks, int block_size,
                            const int* __restrict__ row_of, const int* __restrict__ pos_of,
                            const int* __restrict__ group_idx, int groups_per_token,
                            int num_heads, int num_kv_heads, int head_dim, int split_len,
                            int num_splits, float* __restrict__ part_o,
                            float* __restrict__ part_ml) {
    extern __shared__ float smem[];  // [ATT_WARPS][G][D + 2]: per-warp acc, m, l
#define ATT_MAX_G MAXG
#define ATT_MAX_CHUNKS CHUNKS
    const int t = blockIdx.x, y = blockIdx.y, s = blockIdx.z;
    const int G = num_heads / num_kv_heads, D = head_dim;
    const int g = group_idx ? group_idx[t * groups_per_token + y] : y;
    const int len = pos_of[t] + 1;
    const int start = s * split_len;
    const int end = min(len, start + split_len);
    const size_t part = ((size_t)t * num_heads + g * G) * num_splits + s;  // head g*G, split s
    if (start >= end) {  // this split lies beyond the sequence: empty partial
        for (int h = threadIdx.x; h < G; h += blockDim.x) {
            size_t p = part + (size_t)h * num_splits;
            part_ml[p * 2] = -INFINITY;
            part_ml[p * 2 + 1] = 0.f;
        }
        return;
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const float qscale = scale * 1.4426950408889634f;  // log2(e): softmax via exp2
    const bf16* q = qkv + (size_t)t * row_stride + (size_t)g * G * D;
    const int chunks = (D + 127) / 128;
    float qr[ATT_MAX_G][ATT_MAX_CHUNKS][4];
    float acc[ATT_MAX_G][ATT_MAX_CHUNKS][4];
    float m[ATT_MAX_G], l[ATT_MAX_G];
#pragma unroll
    for (int h = 0; h < ATT_MAX_G; h++) {
        m[h] = -INFINITY;
        l[h] = 0.f;
#pragma unroll
        for (int c = 0; c < ATT_MAX_CHUNKS; c++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int d = c * 128 + lane * 4 + j;
                qr[h][c][j] = (h < G && c < chunks && d < D) ? bf2f(q[h * D + d]) * qscale : 0.f;
                acc[h][c][j] = 0.f;
            }
    }
    const int* table = block_table + (size_t)row_of[t] * max_blocks;
    // U positions per round: their K/V loads are all issued before any is used, so each lane
    // keeps U 8-byte loads of K and of V in flight (positions are still consumed in order, so
    // results do not depend on U).
    constexpr int U = (ATT_MAX_G * ATT_MAX_CHUNKS <= 2) ? 4 : 2;
    for (int p0 = start + warp; p0 < end; p0 += U * ATT_WARPS) {
        uint2 kb[U][ATT_MAX_CHUNKS], vb[U][ATT_MAX_CHUNKS];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int p = p0 + u * ATT_WARPS;
            size_t base = p < end ? (((size_t)table[p / block_size] * num_kv_heads + g)
                                     * block_size + p % block_size) * D : 0;
#pragma unroll
            for (int c = 0; c < ATT_MAX_CHUNKS; c++) {
                int d = c * 128 + lane * 4;
                if (p < end && c < chunks && d < D) {  // head_dim % 4 == 0 (host-checked)
                    kb[u][c] = *reinterpret_cast<const uint2*>(k_cache + base + d);
                    vb[u][c] = *reinterpret_cast<const uint2*>(v_cache + base + d);
                } else {
                    kb[u][c] = make_uint2(0u, 0u);  // bf16 zeros
                    vb[u][c] = make_uint2(0u, 0u);
                }
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (p0 + u * ATT_WARPS >= end) break;
            float kv[ATT_MAX_CHUNKS][4], vv[ATT_MAX_CHUNKS][4];
#pragma unroll
            for (int c = 0; c < ATT_MAX_CHUNKS; c++) {
                const bf16* kp = reinterpret_cast<const bf16*>(&kb[u][c]);
                const bf16* vp = reinterpret_cast<const bf16*>(&vb[u][c]);
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    kv[c][j] = bf2f(kp[j]);
                    vv[c][j] = bf2f(vp[j]);
                }
            }
#pragma unroll
            for (int h = 0; h < ATT_MAX_G; h++) {
                if (h >= G) break;
                float dot = 0.f;
#pragma unroll
                for (int c = 0; c < ATT_MAX_CHUNKS; c++)
#pragma unroll
                    for (int j = 0; j < 4; j++) dot += qr[h][c][j] * kv[c][j];
                dot = warp_sum(dot);
                float m_new = fmaxf(m[h], dot);
                float alpha = exp2f(m[h] - m_new);  // 0 on the first position (m = -inf)
                float pr = exp2f(dot - m_new);
                l[h] = l[h] * alpha + pr;
                m[h] = m_new;
#pragma unroll
                for (int c = 0; c < ATT_MAX_CHUNKS; c++)
#pragma unroll
                    for (int j = 0; j < 4; j++)
                        acc[h][c][j] = acc[h][c][j] * alpha + pr * vv[c][j];
            }
        }
    }
    // Merge the warps: each publishes (acc, m, l) per head; warp 0's lanes combine.
    float* mine = smem + (size_t)warp * G * (D + 2);
#pragma unroll
    for (int h = 0; h < ATT_MAX_G; h++) {
        if (h >= G) break;
#pragma unroll
        for (int c = 0; c < ATT_MAX_CHUNKS; c++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int d = c * 128 + lane * 4 + j;
                if (c < chunks && d < D) mine[h * (D + 2) + d] = acc[h][c][j];
            }
        if (lane == 0) {
            mine[h * (D + 2) + D] = m[h];
            mine[h * (D + 2) + D + 1] = l[h];
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < G * D; i += blockDim.x) {
        int h = i / D, d = i % D;
        float M = -INFINITY;
        for (int w = 0; w < ATT_WARPS; w++) M = fmaxf(M, smem[(w * G + h) * (D + 2) + D]);
        float o = 0.f, L = 0.f;
        for (int w = 0; w < ATT_WARPS; w++) {
            const float* wh = smem + (w * G + h) * (D + 2);
            if (wh[D] != -INFINITY) {  // a warp with no position of this split contributes 0
                float f = exp2f(wh[D] - M);
                o += wh[d] * f;
                L += wh[D + 1] * f;
            }
        }
        size_t p = part + (size_t)h * num_splits;
        part_o[p * D + d] = o;
        if (d == 0) {
            part_ml[p * 2] = M;
            part_ml[p * 2 + 1] = L;
        }
    }
}

#undef ATT_MAX_G
#undef ATT_MAX_CHUNKS

#define ATT_ENTRY(G_, C_)                                                                       \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS)                                   \
        attention_decode_paged_g##G_##_c##C_##_bf16(                                            \
            const bf16* qkv, int row_stride, float scale, const bf16* k_cache,                  \
            const bf16* v_cache, const int* block_table, int max_blocks, int block_size,        \
            const int* row_of, const int* pos_of, const int* group_idx, int groups_per_token,   \
            int num_heads, int num_kv_heads, int head_dim, int split_len, int num_splits,       \
            float* part_o, float* part_ml) {                                                    \
        attention_decode_body<G_, C_>(qkv, row_stride, scale, k_cache, v_cache, block_table,    \
                                      max_blocks, block_size, row_of, pos_of, group_idx,        \
                                      groups_per_token, num_heads, num_kv_heads, head_dim,      \
                                      split_len, num_splits, part_o, part_ml);                  \
    }

ATT_ENTRY(1, 1)
ATT_ENTRY(2, 1)
ATT_ENTRY(4, 1)
ATT_ENTRY(8, 1)
ATT_ENTRY(1, 2)
ATT_ENTRY(2, 2)
ATT_ENTRY(4, 2)
ATT_ENTRY(8, 2)

extern "C" __global__ void attention_combine_bf16(bf16* __restrict__ att,
                                                  const float* __restrict__ part_o,
                                                  const float* __restrict__ part_ml,
                                                  const int* __restrict__ group_idx,
                                                  int groups_per_token, int num_heads,
                                                  int num_kv_heads, int head_dim, int num_splits) {
    // One block per (token, head) over ALL heads: a head whose group is not in the token's
    // table is written as zeros here, so no separate zero-fill is needed.
    const int t = blockIdx.x;
    const int h = blockIdx.y;
    const int G = num_heads / num_kv_heads;
    const int g = h / G;
    bf16* out = att + (size_t)t * num_heads * head_dim + (size_t)h * head_dim;
    if (group_idx) {
        bool selected = false;
        for (int j = 0; j < groups_per_token; j++)
            selected |= group_idx[t * groups_per_token + j] == g;
        if (!selected) {
            for (int d = threadIdx.x; d < head_dim; d += blockDim.x) out[d] = f2bf(0.f);
            return;
        }
    }
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
        out[d] = f2bf(o * inv);
    }
}
