// Flash-decoding attention over the paged KV cache: split-K over the sequence, GQA-aware (one
// thread block per (token, KV group, split) computes every query head of the group, so each
// selected group's K and V are read once), with an optional Polar Sparsity group table.
//
// attention_decode_paged_g<MAXG>_c<CHUNKS>[_full][_pairs]_bf16 (pass 1): for token t, group
//   slot y, partial z: g = group_idx ? group_idx[t * groups_per_token + y] : y
//   split s = z (or, _pairs, the splits s = 2z and 2z + 1 one after the other, merged by
//   att_pair, for z < single_from / 2, and one split each from split single_from on: see
//   att_pair_parts): positions [s * split_len, min(pos_of[t] + 1, (s + 1) * split_len)) (causal:
//   <= own position); for each query head h of group g: partial softmax statistics (m, l, in
//   base 2) and the unnormalised output o = sum_p exp2(score_p - m) v_p, into
//   part_o fp32 [n, num_heads, parts, head_dim] and part_ml fp32 [n, num_heads, parts, 2]
//   (parts = num_splits, or att_parts(num_splits, single_from) with _pairs).
// attention_decode_paged_g<G>_pipe[_pairs]_bf16 (pass 1 for head_dim 128 and 2, 4 or 8 query
//   heads per group): the same partials from K and V staged through shared memory (see below).
//   With qkv_work (decode steps without a group table): q is reduced from the q/k/v GEMM's
//   split-K partials by each block, and the token's new K/V rows appended by the block holding
//   its position, with qkv_pair_reduce's bits (decode_qkv_rope_kv's), instead of read from qkv.
// attention_combine_bf16 (pass 2): merges the partials of every (token, selected head) and
//   writes att bf16 [n, num_heads * head_dim]; heads of unselected groups are written as zeros,
//   so they contribute zero to o_proj. scheme 0: the splits' partials in one merge (shapes
//   that never run pairs: more than one query head per group off the pipelined kernel); 1:
//   the same partials, merged pair by pair first (att_pair) as _pairs blocks do; 2: the _pairs blocks' partials (with
//   the same single_from). Schemes 1 and 2 give the same bits, so a token's result does not
//   depend on its launch's mode.
//   regs != 0, head_dim 128, at most 32 partials and table entries a head: the same merges
//   with every load of a head issued in one round (combine_head_regs), the same bits.
//   discard != 0 (the general form only): each head's o partials are dropped from L2 once
//   merged (l2_discard_span), so that they are never written back to HBM; nothing may read
//   them again. H100, 2026-11-26, polar-bench, same call, two rounds: llama-3-8b B=48
//   24.55 / 24.54 -> 23.92 / 23.90 ms, B=16 12.05 / 12.02 -> 11.96 / 11.93 (B=1 6.47 / 6.44
//   -> 6.49 / 6.46, so not there).
//
//   q: the first num_heads * head_dim columns of qkv bf16 [n, row_stride] (after RoPE);
//   score = (q . k) * scale, computed as (q * scale * log2 e) . k with exp2.
//   Cache layout as kv_cache.cu: bf16 [num_blocks, num_kv_heads, block_size, head_dim].
// Works for any sequence, also a prompt's tokens during prefill (each token is a query at its own
// position, reading K/V appended for the whole prompt first), so it is also the causal prefill
// attention. Not checked here: block_table entries and group_idx values in range.
// Preconditions (host-checked): head_dim % 4 == 0 and <= 256; G = num_heads / num_kv_heads <= 8.
// Grid pass 1: (n, groups_per_token, parts), block 256, dynamic shared memory
//   (G * head_dim * 9 + G * 260) floats, plus G * head_dim + 2 G with _pairs (see the layout
//   below).
// Grid pass 2: (n, ceil(num_heads / 8)), block 256 (a warp per head).
// Both passes may be launched as programmatic dependents (pdl_wait before reading what the kernel
// before wrote); the pipelined pass reads a decode token's older positions before its wait.
#include "common.cuh"

#define ATT_TILE 32          // split lengths are multiples of this (host-checked)
#define ATT_THREADS 256
#define ATT_WARPS (ATT_THREADS / 32)
#define ATT_SUB 256          // positions per tile: their scores are held in shared memory
#define ATT_PER_WARP (ATT_SUB / ATT_WARPS)
// Instantiated for MAXG query heads per group (1, 2, 4, 8; G <= MAXG) and CHUNKS 128-dim
// chunks of head_dim (1: <= 128, 2: <= 256), so registers scale with the real shape.
//
// Design: the split is walked in tiles of ATT_SUB positions, each in three phases.
//   A (scores): eight lanes per position, each lane loading 4 consecutive bf16 of every 32 of
//     the K row (a warp covers 4 positions per load); each query head's dot product is reduced
//     over its 8 lanes (3 shuffles) and the (base-2 scaled) score goes to shared memory. The
//     query heads of the group read the K row once.
//     Exact shapes with 4 or 8 query heads per group (GQA: llama-3) take the scores on tensor
//     cores instead: each warp's positions as two 16-row tiles, K rows loaded straight into
//     m16n8k16 A fragments, q (bf16, unscaled) as the B fragment, the sums scaled after; the
//     FMA form issued too many instructions per K byte there (H100, llama-3-8b B=48: 2.7 TB/s).
//   B (softmax): warp h takes head h: tile max, p = exp2(score - m) in place, running (m, l)
//     of the split, and alpha = exp2(m_old - m_new) to rescale the accumulators.
//   C (values): lanes own 4 dims of every 128; warp w accumulates its 32 positions' p * v.
// The warps' accumulators are summed in warp order at the end. Every order is fixed by the
// positions alone, so a token's result never depends on the other tokens of the launch.
// Shared memory (floats): q [G][D] | scores [G][ATT_SUB] | stats [G][4] | merge [WARPS][G][D]
// | with PAIRS, the pair's first split (o [G][D], m and l [G][2]).
// Scheme 0 (shapes that never run pairs): merges the num_splits partials of one (token, head) (base = its first partial) into out[0, D),
// one warp: M = max m_s and L = sum l_s 2^(m_s - M) (lanes stride over the splits, then warp
// reductions), out[d] = sum_s o_s[d] 2^(m_s - M) / L with splits in order, lanes owning 4 dims of
// every 128.
__device__ __forceinline__ void combine_head_splits(bf16* __restrict__ out,
                                             const float* __restrict__ part_o,
                                             const float* __restrict__ part_ml, size_t base,
                                             int head_dim, int num_splits, int lane) {
    float M = -INFINITY;
    for (int s = lane; s < num_splits; s += 32) M = fmaxf(M, part_ml[(base + s) * 2]);
    M = warp_max(M);
    float L = 0.f;
    for (int s = lane; s < num_splits; s += 32) {
        const float m = part_ml[(base + s) * 2];
        if (m != -INFINITY) L += part_ml[(base + s) * 2 + 1] * exp2f(m - M);
    }
    L = warp_sum(L);
    const float inv = 1.f / L;
    for (int d = lane * 4; d < head_dim; d += 128) {
        float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 16
        for (int s = 0; s < num_splits; s++) {  // unrolled: the splits' loads in flight together
            const float m = part_ml[(base + s) * 2];
            const float4 v = *reinterpret_cast<const float4*>(part_o + (base + s) * head_dim + d);
            // Empty splits (m = -inf; their o never written) are skipped by a select, not a
            // branch, so that the loads need not wait for the test.
            const float w = exp2f(m - M);
            float4 u = o;
            u.x += v.x * w;
            u.y += v.y * w;
            u.z += v.z * w;
            u.w += v.w * w;
            if (m != -INFINITY) o = u;
        }
        out[d] = f2bf(o.x * inv);
        out[d + 1] = f2bf(o.y * inv);
        out[d + 2] = f2bf(o.z * inv);
        out[d + 3] = f2bf(o.w * inv);
    }
}

// Partial layout with pairs (att_pair_parts): pairs p < pair_parts are one partial each (p),
// and from split single_from = 2 pair_parts on every split is a partial of its own (pair_parts
// + s - single_from), so the shortest, last blocks of a launch run one split each.
// single_from >= num_splits: all pairs (ceil(num_splits / 2) partials); 0: all splits.
POLAR_DEVICE int att_pair_parts(int num_splits, int single_from) {
    return min((num_splits + 1) / 2, single_from / 2);
}
POLAR_DEVICE int att_parts(int num_splits, int single_from) {
    const int pp = att_pair_parts(num_splits, single_from);
    return pp + max(0, num_splits - 2 * pp);
}

// Adjacent splits 2p and 2p + 1 form pair p, merged first (by the pass-1 block that ran both in
// pairs mode, or here from the two split partials otherwise) with exactly the same arithmetic,
// so a token's result does not depend on which mode its launch used. An empty split has
// m = -inf (its l is 0 and its o never written): a pair with one empty split is the other
// split unchanged. att_pair: the pair's m and the weights of its two splits.
POLAR_DEVICE void att_pair(float ma, float mb, float& m, float& wa, float& wb) {
    m = fmaxf(ma, mb);
    wa = ma == -INFINITY ? 0.f : exp2f(ma - m);
    wb = mb == -INFINITY ? 0.f : exp2f(mb - m);
}
// x (an l or an o element) of the pair from those of its splits.
POLAR_DEVICE float att_pair_mix(float xa, float wa, bool va, float xb, float wb, bool vb) {
    if (!vb) return va ? xa : 0.f;
    if (!va) return xb;
    return __fadd_rn(__fmul_rn(xa, wa), __fmul_rn(xb, wb));
}

// Schemes 1 and 2: merges the partials of one (token, head) (base = its first partial) into
// out[0, D), one warp, over the pairs p < ceil(num_splits / 2): pairs p < pair_parts read their
// pair partial (base + p), later pairs their split partials (base + 2p - pair_parts and the
// next) merged here (scheme 1: pair_parts 0). M = max m_p and L = sum l_p 2^(m_p - M)
// (lanes stride over the pairs, then warp reductions), out[d] = sum_p o_p[d] 2^(m_p - M) / L
// with pairs in order, lanes owning 4 dims of every 128.
__device__ __forceinline__ void combine_head_pairs(bf16* __restrict__ out,
                                             const float* __restrict__ part_o,
                                             const float* __restrict__ part_ml, size_t base,
                                             int head_dim, int num_splits, int pair_parts,
                                             int lane) {
    const int np = (num_splits + 1) / 2;
    // Pair p's m and l, and (single-split partials) its splits' weights and presence.
    auto pair_ml = [&](int p, float& m, float& l, float& wa, float& wb, bool& va, bool& vb) {
        if (p < pair_parts) {
            m = part_ml[(base + p) * 2];
            l = part_ml[(base + p) * 2 + 1];
            wa = 1.f, wb = 0.f, va = true, vb = false;
            return;
        }
        const size_t a = base + 2 * p - pair_parts;
        const float ma = part_ml[a * 2];
        const bool has_b = 2 * p + 1 < num_splits;
        const float mb = has_b ? part_ml[(a + 1) * 2] : -INFINITY;
        va = ma != -INFINITY;
        vb = mb != -INFINITY;
        att_pair(ma, mb, m, wa, wb);
        l = att_pair_mix(part_ml[a * 2 + 1], wa, va, vb ? part_ml[(a + 1) * 2 + 1] : 0.f, wb, vb);
        if (!va && !vb) m = -INFINITY;
    };
    float M = -INFINITY;
    for (int p = lane; p < np; p += 32) {
        float m, l, wa, wb;
        bool va, vb;
        pair_ml(p, m, l, wa, wb, va, vb);
        M = fmaxf(M, m);
    }
    M = warp_max(M);
    float L = 0.f;
    for (int p = lane; p < np; p += 32) {
        float m, l, wa, wb;
        bool va, vb;
        pair_ml(p, m, l, wa, wb, va, vb);
        if (m != -INFINITY) L = __fmaf_rn(l, exp2f(m - M), L);
    }
    L = warp_sum(L);
    const float inv = 1.f / L;
    // o += v * 2^(m_p - M) for a present pair; an empty pair (m = -inf; o never written) is
    // skipped by a select, not a branch, so that the loads need not wait for the test.
    auto add = [](float4& o, const float4 v, float w, bool present) {
        const float4 u = make_float4(__fmaf_rn(v.x, w, o.x), __fmaf_rn(v.y, w, o.y),
                                     __fmaf_rn(v.z, w, o.z), __fmaf_rn(v.w, w, o.w));
        if (present) o = u;
    };
    auto mix = [](const float4 x, float wa, bool va, const float4 y, float wb, bool vb) {
        return make_float4(att_pair_mix(x.x, wa, va, y.x, wb, vb),
                           att_pair_mix(x.y, wa, va, y.y, wb, vb),
                           att_pair_mix(x.z, wa, va, y.z, wb, vb),
                           att_pair_mix(x.w, wa, va, y.w, wb, vb));
    };
    // Pair p's o vectors at dim d: x = its pair partial or its first split's, y = its second
    // split's (x's again where there is none): unconditional loads, in bounds. A pair
    // partial's mix below (wa 1, va, no b) is x itself.
    auto load_pair = [&](int p, int d, float4& x, float4& y) {
        const bool whole = p < pair_parts;
        const size_t a = whole ? base + p : base + 2 * p - pair_parts;
        x = *reinterpret_cast<const float4*>(part_o + a * head_dim + d);
        const size_t b = !whole && 2 * p + 1 < num_splits ? a + 1 : a;
        y = *reinterpret_cast<const float4*>(part_o + b * head_dim + d);
    };
    // Up to 32 pairs: lane p computes pair p's weights once and the loop takes them by shuffle
    // (every lane runs the loop: dims past head_dim are loaded from dim 0 and not stored).
    float my_w = 0.f, my_wa = 0.f, my_wb = 0.f;
    int my_flags = 0;
    if (np <= 32 && lane < np) {
        float m, l;
        bool va, vb;
        pair_ml(lane, m, l, my_wa, my_wb, va, vb);
        my_w = m == -INFINITY ? 0.f : exp2f(m - M);
        my_flags = (va ? 1 : 0) | (vb ? 2 : 0) | (m != -INFINITY ? 4 : 0);
    }
    for (int d0 = 0; d0 < head_dim; d0 += 128) {
        const int d = d0 + lane * 4;
        const int ds = d < head_dim ? d : 0;
        float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
        if (np <= 32) {
#pragma unroll 16
            for (int p = 0; p < np; p++) {  // unrolled: the pairs' loads in flight together
                float4 x, y;
                load_pair(p, ds, x, y);
                const float w = __shfl_sync(0xffffffffu, my_w, p);
                const int f = __shfl_sync(0xffffffffu, my_flags, p);
                const float wa = __shfl_sync(0xffffffffu, my_wa, p);
                const float wb = __shfl_sync(0xffffffffu, my_wb, p);
                x = mix(x, wa, f & 1, y, wb, f & 2);
                add(o, x, w, f & 4);
            }
        } else {
#pragma unroll 8
            for (int p = 0; p < np; p++) {
                float m, l, wa, wb;
                bool va, vb;
                pair_ml(p, m, l, wa, wb, va, vb);
                float4 x, y;
                load_pair(p, ds, x, y);
                x = mix(x, wa, va, y, wb, vb);
                add(o, x, m == -INFINITY ? 0.f : exp2f(m - M), m != -INFINITY);
            }
        }
        if (d < head_dim) {
            out[d] = f2bf(o.x * inv);
            out[d + 1] = f2bf(o.y * inv);
            out[d + 2] = f2bf(o.z * inv);
            out[d + 3] = f2bf(o.w * inv);
        }
    }
}

// K and V loads of the register-fed kernels below: evict-first in L2 (common.cuh) where HINT
// (one query head per group; the GQA shapes of these kernels would spill).
// H100, polar-bench, same call (2026-11-26): hinted, batch 1 and the Polar steps at B <= 16
// were 1-2% faster (opt-6.7b B=1 5.78 -> 5.69 ms, Polar B=16 7.45 -> 7.33), but the pair
// form (launches of many waves) 1-2% slower (opt-6.7b B=64 27.78 -> 28.04, llama-2-7b B=32
// 27.68 -> 28.18; its registers then spill), so the pair form loads them plainly.
template <bool HINT>
POLAR_DEVICE uint64_t kv_policy_for() { return HINT ? l2_evict_first() : 0; }
template <bool HINT>
POLAR_DEVICE unsigned kv_ld_u32(const bf16* p, uint64_t policy) {
    return HINT ? ld_stream_u32(p, policy) : __ldg(reinterpret_cast<const unsigned*>(p));
}
template <bool HINT>
POLAR_DEVICE uint2 kv_ld_u2(const bf16* p, uint64_t policy) {
    return HINT ? ld_stream_u2(p, policy) : *reinterpret_cast<const uint2*>(p);
}

// Shared pieces of the decode kernels below.
// Scores of a 16-position m16n8 tile (rows i0, i0 + 8 of the lane; heads (lane % 4) * 2 (+1)) into
// sc[h * stride + i], scaled, for heads < MAXG and positions < tl.
// PAD: positions >= tl get -inf instead (their p is then 0).
template <int MAXG, bool PAD = false>
POLAR_DEVICE void att_store_scores(float* sc, int stride, const float (&cacc)[4], int i0, int tl,
                                   float qscale, int lane) {
    const int h0 = (lane & 3) * 2;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const int h = h0 + (j & 1), i = i0 + (j >> 1) * 8;
        if (h < MAXG && (PAD || i < tl)) sc[h * stride + i] = i < tl ? cacc[j] * qscale : -INFINITY;
    }
}

// Phase B for one head (one warp): tile max over s[0, tl), p = exp2(score - m) in place, and the
// running statistics st = {alpha, m, l} (alpha = exp2(m_old - m_new) rescales the accumulators).
POLAR_DEVICE void att_softmax_tile(float* s, float* st, int tl, int lane) {
    float mt = -INFINITY;
    for (int i = lane; i < tl; i += 32) mt = fmaxf(mt, s[i]);
    mt = warp_max(mt);
    const float m_old = st[1];
    const float m_new = fmaxf(m_old, mt);
    float sum = 0.f;
    for (int i = lane; i < tl; i += 32) {
        const float pr = exp2f(s[i] - m_new);
        s[i] = pr;
        sum += pr;
    }
    sum = warp_sum(sum);
    // Every lane read st[1] above; lane 0 overwrites it. The shuffles order them in practice,
    // but only a barrier does by the memory model (compute-sanitizer racecheck: 72 hazards
    // without it).
    __syncwarp();
    if (lane == 0) {
        const float alpha = exp2f(m_old - m_new);  // 0 on the first tile (m_old = -inf)
        st[0] = alpha;
        st[1] = m_new;
        st[2] = st[2] * alpha + sum;
    }
}

// A warp's accumulators (lanes own dims c * 128 + lane * 4 + j) into mine [G][D].
template <int MAXG, int CHUNKS>
POLAR_DEVICE void att_stash(float* mine, const float (&acc)[MAXG][CHUNKS][4], int G, int D,
                            int lane) {
#pragma unroll
    for (int h = 0; h < MAXG; h++) {
        if (h >= G) break;
#pragma unroll
        for (int c = 0; c < CHUNKS; c++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int d = c * 128 + lane * 4 + j;
                if (d < D) mine[h * D + d] = acc[h][c][j];
            }
    }
}

// The split's o (mg [ATT_WARPS][G][D] summed in warp order), m and l (stat [G][4]): written as
// partial `part` of head g * G (heads h at part + h * nparts), or (pairs) kept in `first` for
// the pair's second split, or merged with the kept first split (att_pair, as the combine does).
POLAR_DEVICE void att_write_partial(const float* mg, const float* stat, float* first, bool keep,
                                    bool merge, int G, int D, size_t part, int nparts,
                                    float* __restrict__ part_o, float* __restrict__ part_ml) {
    for (int i = threadIdx.x; i < G * D; i += ATT_THREADS) {
        float o = 0.f;
#pragma unroll
        for (int w = 0; w < ATT_WARPS; w++) o += mg[w * G * D + i];
        const int h = i / D, d = i % D;
        float m = stat[h * 4 + 1], l = stat[h * 4 + 2];
        if (keep) {
            first[i] = o;
            if (d == 0) {
                first[G * D + h * 2] = m;
                first[G * D + h * 2 + 1] = l;
            }
            continue;
        }
        if (merge) {
            const float ma = first[G * D + h * 2], la = first[G * D + h * 2 + 1];
            float mp, wa, wb;
            att_pair(ma, m, mp, wa, wb);
            o = att_pair_mix(first[i], wa, true, o, wb, true);
            l = att_pair_mix(la, wa, true, l, wb, true);
            m = mp;
        }
        const size_t p = part + (size_t)h * nparts;
        part_o[p * D + d] = o;
        if (d == 0) {
            part_ml[p * 2] = m;
            part_ml[p * 2 + 1] = l;
        }
    }
}

// An empty partial (no positions): m = -inf, l = 0 for the G heads.
POLAR_DEVICE void att_empty_partial(float* __restrict__ part_ml, size_t part, int G, int nparts) {
    for (int h = threadIdx.x; h < G; h += blockDim.x) {
        const size_t p = part + (size_t)h * nparts;
        part_ml[p * 2] = -INFINITY;
        part_ml[p * 2 + 1] = 0.f;
    }
}

// FULL: the shape is exactly G = MAXG and head_dim = 128 * CHUNKS, so every bound below is a
// compile-time constant (the common shapes: no masks, no division by run-time values).
template <int MAXG, int CHUNKS, bool FULL, bool PAIRS>
__device__ __forceinline__ void attention_decode_body(const bf16* __restrict__ qkv, int row_stride, float scale,
                            const bf16* __restrict__ k_cache, const bf16* __restrict__ v_cache,
                            const int* __restrict__ block_table, int max_blocks, int block_size,
                            const int* __restrict__ row_of, const int* __restrict__ pos_of,
                            const int* __restrict__ group_idx, int groups_per_token,
                            int num_heads, int num_kv_heads, int head_dim, int split_len,
                            int num_splits, float* __restrict__ part_o,
                            float* __restrict__ part_ml, int single_from) {
    extern __shared__ __align__(16) float smem[];
    pdl_trigger();  // the combine may be launched as this kernel's dependent
    pdl_wait();     // (launched as a dependent) q, K/V and the group table are written before
    constexpr int CHA = 4 * CHUNKS;  // 32-dim slices of a K row (phase A)
    const int t = blockIdx.x, y = blockIdx.y, z = blockIdx.z;
    const int G = FULL ? MAXG : num_heads / num_kv_heads;
    const int D = FULL ? 128 * CHUNKS : head_dim;
    // Cache block of a position: a shift when block_size is a power of two (it always is here).
    const bool pow2 = (block_size & (block_size - 1)) == 0;
    const int bshift = __ffs(block_size) - 1;
    const int g = group_idx ? group_idx[t * groups_per_token + y] : y;
    const int len = pos_of[t] + 1;
    // Partial z: split z, or (pairs) for z < pair_parts the pair of splits 2z and 2z + 1 (see
    // att_pair), and from split single_from = 2 pair_parts on one split each (att_pair_parts).
    const int pair_parts = PAIRS ? att_pair_parts(num_splits, single_from) : 0;
    const int nparts = PAIRS ? att_parts(num_splits, single_from) : num_splits;
    const int s_first = PAIRS && z < pair_parts ? 2 * z : PAIRS ? pair_parts + z : z;
    const int s_last = PAIRS && z < pair_parts ? min(num_splits, s_first + 2) - 1 : s_first;
    const size_t part = ((size_t)t * num_heads + g * G) * nparts + z;  // head g*G, partial z
    if (s_first * split_len >= len) {  // beyond the sequence: empty partial
        att_empty_partial(part_ml, part, G, nparts);
        return;
    }
    float* qs = smem;                 // [G][D], pre-scaled by scale * log2(e)
    float* sc = qs + G * D;           // [G][ATT_SUB]
    float* stat = sc + G * ATT_SUB;   // [G][4]: alpha, m, l
    float* mg = stat + 4 * G;         // [ATT_WARPS][G][D]
    float* first = mg + ATT_WARPS * G * D;  // pairs: the first split's o [G][D], then m, l [G][2]
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int oct = lane >> 3, l8 = lane & 7;
    const float qscale = scale * 1.4426950408889634f;  // log2(e): softmax via exp2
    const bf16* q = qkv + (size_t)t * row_stride + (size_t)g * G * D;
    constexpr bool MMA_A = FULL && MAXG >= 4 && MAXG <= 8;
    if constexpr (!MMA_A)
        for (int i = tid; i < G * D; i += ATT_THREADS) qs[i] = bf2f(q[i]) * qscale;
    const int* table = block_table + (size_t)row_of[t] * max_blocks;
    // K and V are read once a step: evict-first in L2 but in the pair form (kv_ld_u2), the
    // policy made next to each round of loads (held across the kernel it cost registers).
    constexpr bool KV_HINT = !PAIRS && MAXG == 1;
    // Element offset of position p's K (or V) row of group g in the paged cache.
    auto cache_row = [=](int p) -> size_t {
        const int blk = pow2 ? p >> bshift : p / block_size;
        const int slot = pow2 ? p & (block_size - 1) : p % block_size;
        return (((size_t)table[blk] * num_kv_heads + g) * block_size + slot) * D;
    };
    const int cha = FULL ? CHA : (D + 31) / 32;
    float acc[MAXG][CHUNKS][4];
    // MMA_A: B fragments of q (bf16 as stored, unscaled; the scale is applied to the sums) for
    // each 16-dim step kd: column n = lane / 4 (query head, zero past G), rows (lane % 4) * 2
    // (+1) and + 8 (+9). Kept in shared memory where the float q of the FMA form would be
    // (KD * 2 * 32 words <= G * D floats), [kd][j][lane]: registers stay free for occupancy.
    constexpr int KD = MMA_A ? 8 * CHUNKS : 1;
    unsigned* qb = reinterpret_cast<unsigned*>(qs);
    if constexpr (MMA_A) {
        if (warp == 0) {
            const int n = lane >> 2;
#pragma unroll
            for (int kd = 0; kd < KD; kd++)
#pragma unroll
                for (int j = 0; j < 2; j++)
                    qb[(kd * 2 + j) * 32 + lane] =
                        n < MAXG ? *reinterpret_cast<const unsigned*>(
                                       q + n * D + kd * 16 + (lane & 3) * 2 + j * 8)
                                 : 0u;
        }
    }
    // Fresh statistics and accumulators for a split.
    auto reset = [&]() {
        if (tid < G) {
            stat[tid * 4 + 1] = -INFINITY;
            stat[tid * 4 + 2] = 0.f;
        }
#pragma unroll
        for (int h = 0; h < MAXG; h++)
#pragma unroll
            for (int c = 0; c < CHUNKS; c++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[h][c][j] = 0.f;
    };
    reset();
    __syncthreads();  // q and the statistics
  constexpr int NS = PAIRS ? 2 : 1;  // splits per partial (a compile-time loop)
#pragma unroll
  for (int sp = 0; sp < NS; sp++) {
    const int ss = s_first + sp;
    const int start = ss * split_len;
    const int end = min(len, start + split_len);
    if (PAIRS && sp > 0) {
        if (ss > s_last || start >= end) break;  // the pair's second split: none, or empty
        __syncthreads();  // every thread has read the first split's statistics
        reset();
        __syncthreads();
    }

    for (int t0 = start; t0 < end; t0 += ATT_SUB) {
        const int tl = min(ATT_SUB, end - t0);
        if constexpr (MMA_A) {
            // Phase A on tensor cores (exact shapes with 4 or 8 query heads per group): the
            // warp's positions in two 16-row tiles, S[p][h] = sum_d K[p][d] q[h][d] by
            // m16n8k16 steps over d (A = K rows straight from the cache, B = q of the G heads,
            // columns past G zero), then scaled; the accumulator's head columns go to sc.
#pragma unroll
            for (int mt = 0; mt < ATT_PER_WARP / 16; mt++) {
                const int i0 = warp * ATT_PER_WARP + mt * 16 + (lane >> 2);
                size_t base[2];
                bool okr[2];
#pragma unroll
                for (int rr = 0; rr < 2; rr++) {
                    const int i = i0 + rr * 8, p = t0 + i;
                    okr[rr] = i < tl;
                    base[rr] = okr[rr] ? cache_row(p) + (lane & 3) * 2 : 0;
                }
                float cacc[4] = {0.f, 0.f, 0.f, 0.f};
                const uint64_t kv_policy = kv_policy_for<KV_HINT>();
                constexpr int KH = KD < 2 ? KD : 2;  // 16-dim steps loaded together
#pragma unroll
                for (int k0 = 0; k0 < KD; k0 += KH) {
                    uint32_t ka[KH][4];
#pragma unroll
                    for (int kk = 0; kk < KH; kk++) {
#pragma unroll
                        for (int j = 0; j < 4; j++) {  // a0: row, k; a1: row + 8; a2/a3: k + 8
                            const int rr = j & 1;
                            ka[kk][j] = okr[rr] ? kv_ld_u32<KV_HINT>(k_cache + base[rr]
                                                                    + (k0 + kk) * 16
                                                                    + (j >> 1) * 8,
                                                                kv_policy)
                                                : 0u;
                        }
                    }
#pragma unroll
                    for (int kk = 0; kk < KH; kk++)
                        mma_16816(cacc, ka[kk], qb[((k0 + kk) * 2) * 32 + lane],
                                  qb[((k0 + kk) * 2 + 1) * 32 + lane]);
                }
                att_store_scores<MAXG>(sc, ATT_SUB, cacc, i0, tl, qscale, lane);
            }
        } else {
        // Phase A: scores of this warp's ATT_PER_WARP positions, 4 per round (one per octet).
        constexpr int ROUNDS = ATT_PER_WARP / 4;
        constexpr int UA = 4;
#pragma unroll 1
        for (int r0 = 0; r0 < ROUNDS; r0 += UA) {
            uint2 kb[UA][CHA];
            const uint64_t kv_policy = kv_policy_for<KV_HINT>();
#pragma unroll
            for (int u = 0; u < UA; u++) {
                const int i = warp * ATT_PER_WARP + (r0 + u) * 4 + oct;
                const int p = t0 + i;
                const bool ok = i < tl;
                const size_t base = ok ? cache_row(p) : 0;
#pragma unroll
                for (int c = 0; c < CHA; c++) {
                    const int d = c * 32 + l8 * 4;
                    kb[u][c] = (ok && c < cha && d < D)
                                   ? kv_ld_u2<KV_HINT>(k_cache + base + d, kv_policy)
                                   : make_uint2(0u, 0u);
                }
            }
#pragma unroll
            for (int u = 0; u < UA; u++) {
                const int i = warp * ATT_PER_WARP + (r0 + u) * 4 + oct;
#pragma unroll
                for (int h = 0; h < MAXG; h++) {
                    if (h >= G) break;
                    float dot = 0.f;
#pragma unroll
                    for (int c = 0; c < CHA; c++) {
                        const int d = c * 32 + l8 * 4;
                        if (c < cha && d < D) {
                            const float4 qv = *reinterpret_cast<const float4*>(qs + h * D + d);
                            const bf16* kp = reinterpret_cast<const bf16*>(&kb[u][c]);
                            dot += qv.x * bf2f(kp[0]) + qv.y * bf2f(kp[1]) + qv.z * bf2f(kp[2])
                                   + qv.w * bf2f(kp[3]);
                        }
                    }
                    dot += __shfl_xor_sync(0xffffffffu, dot, 1);
                    dot += __shfl_xor_sync(0xffffffffu, dot, 2);
                    dot += __shfl_xor_sync(0xffffffffu, dot, 4);
                    if (l8 == 0 && i < tl) sc[h * ATT_SUB + i] = dot;
                }
            }
        }
        }  // phase A
        __syncthreads();
        // Phase B: probabilities and running statistics, warp h for head h (G <= ATT_WARPS).
        if (warp < G) att_softmax_tile(sc + warp * ATT_SUB, stat + warp * 4, tl, lane);
        __syncthreads();
        // Phase C: p * v over this warp's positions; lanes own dims c * 128 + lane * 4 + j.
#pragma unroll
        for (int h = 0; h < MAXG; h++) {
            if (h >= G) break;
            const float alpha = stat[h * 4];
#pragma unroll
            for (int c = 0; c < CHUNKS; c++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[h][c][j] *= alpha;
        }
        constexpr int UC = 8;
#pragma unroll 1
        for (int j0 = 0; j0 < ATT_PER_WARP; j0 += UC) {
            uint2 vb[UC][CHUNKS];
            const uint64_t kv_policy = kv_policy_for<KV_HINT>();
#pragma unroll
            for (int u = 0; u < UC; u++) {
                const int i = warp * ATT_PER_WARP + j0 + u;
                const int p = t0 + i;
                const bool ok = i < tl;
                const size_t base = ok ? cache_row(p) : 0;
#pragma unroll
                for (int c = 0; c < CHUNKS; c++) {
                    const int d = c * 128 + lane * 4;
                    vb[u][c] = (ok && d < D) ? kv_ld_u2<KV_HINT>(v_cache + base + d, kv_policy)
                                             : make_uint2(0u, 0u);
                }
            }
#pragma unroll
            for (int u = 0; u < UC; u++) {
                const int i = warp * ATT_PER_WARP + j0 + u;
                if (i >= tl) break;
                float vf[CHUNKS][4];
#pragma unroll
                for (int c = 0; c < CHUNKS; c++) {
                    const bf16* vp = reinterpret_cast<const bf16*>(&vb[u][c]);
#pragma unroll
                    for (int j = 0; j < 4; j++) vf[c][j] = bf2f(vp[j]);
                }
#pragma unroll
                for (int h = 0; h < MAXG; h++) {
                    if (h >= G) break;
                    const float pr = sc[h * ATT_SUB + i];
#pragma unroll
                    for (int c = 0; c < CHUNKS; c++)
#pragma unroll
                        for (int j = 0; j < 4; j++) acc[h][c][j] += pr * vf[c][j];
                }
            }
        }
        __syncthreads();  // the next tile rewrites the scores
    }
    // Sum the warps' accumulators in warp order; one split partial per head.
    att_stash<MAXG, CHUNKS>(mg + (size_t)warp * G * D, acc, G, D, lane);
    __syncthreads();
    const bool keep = PAIRS && ss == s_first && ss < s_last && (ss + 1) * split_len < len;
    const bool merge = PAIRS && ss > s_first;
    att_write_partial(mg, stat, first, keep, merge, G, D, part, nparts, part_o, part_ml);
  }  // splits of the partial
}


#define ATT_ENTRY(G_, C_, FULL_, SUFFIX_, MINB_, PAIRS_)                                         \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS, MINB_)                            \
        attention_decode_paged_g##G_##_c##C_##SUFFIX_##_bf16(                                   \
            const bf16* qkv, int row_stride, float scale, const bf16* k_cache,                  \
            const bf16* v_cache, const int* block_table, int max_blocks, int block_size,        \
            const int* row_of, const int* pos_of, const int* group_idx, int groups_per_token,   \
            int num_heads, int num_kv_heads, int head_dim, int split_len, int num_splits,       \
            float* part_o, float* part_ml, int single_from) {                                   \
        attention_decode_body<G_, C_, FULL_, PAIRS_>(qkv, row_stride, scale, k_cache, v_cache, block_table,    \
                                      max_blocks, block_size, row_of, pos_of, group_idx,        \
                                      groups_per_token, num_heads, num_kv_heads, head_dim,      \
                                      split_len, num_splits, part_o, part_ml, single_from);     \
    }

// Any shape (G <= MAXG, head_dim <= 128 * C), and the exact shapes (suffix _full); four
// blocks per SM (64 registers) where that costs no spills.
ATT_ENTRY(1, 1, false, , 4, false)
ATT_ENTRY(2, 1, false, , 4, false)
ATT_ENTRY(4, 1, false, , 4, false)
ATT_ENTRY(8, 1, false, , 1, false)
ATT_ENTRY(1, 2, false, , 1, false)
ATT_ENTRY(2, 2, false, , 1, false)
ATT_ENTRY(4, 2, false, , 1, false)
ATT_ENTRY(8, 2, false, , 1, false)
ATT_ENTRY(1, 1, true, _full, 4, false)
ATT_ENTRY(2, 1, true, _full, 4, false)
ATT_ENTRY(4, 1, true, _full, 4, false)
ATT_ENTRY(8, 1, true, _full, 1, false)
ATT_ENTRY(1, 2, true, _full, 1, false)
ATT_ENTRY(2, 2, true, _full, 1, false)
ATT_ENTRY(4, 2, true, _full, 1, false)
ATT_ENTRY(8, 2, true, _full, 1, false)
// One query head per group (MHA) also with pairs of splits per block.
ATT_ENTRY(1, 1, false, _pairs, 4, true)
ATT_ENTRY(1, 2, false, _pairs, 1, true)
ATT_ENTRY(1, 1, true, _full_pairs, 4, true)
ATT_ENTRY(1, 2, true, _full_pairs, 1, true)

// ---- Pipelined decode for the exact head_dim-128 shapes (attention_decode_paged_g<G>_pipe_bf16)
// Same arguments (plus table_ready, below), grid and partials as the kernels above, for heads =
// G * kv_heads with G = 2, 4 or 8 and head_dim = 128 exactly (llama-3's shape); its partials are
// merged pair by pair (combine schemes 1 and 2), and _pipe_pairs runs both splits of a pair
// (split_len a multiple of PS) in one block, the ring running on across them, and merges them
// in registers as att_write_partial does: one partial written for two splits (those writes cost
// more than their bytes: standalone harness, H100, llama-3-8b's pass at N = 8192, B=48: 583 us,
// 543 without the part_o stores, 553 as pairs with the last pair as single splits).
// The split is walked in stages of PS positions whose K and V rows are copied into
// shared memory by cp.async, NST stages in a ring: while a stage is computed the next
// NST - 1 are in flight without holding registers (the loads of the kernels above wait in
// registers, which bounds the bytes in flight per SM: H100, llama-3-8b B=48, 2.5 TB/s). A stage,
// all on tensor cores but the softmax:
//   scores: warp w < PS / 16 takes rows 16w..16w+15, S = K q^T (K fragments by ldmatrix, q as the
//     B fragment, columns past G zero), scaled; positions past the split get -inf;
//   softmax: warp h < G over the stage's PS scores of head h (p = 0 past the split), running
//     (m, l) and alpha as above;
//   values: O += P V with P (rows = heads, zero past G) rounded to the 16-bit type as the A
//     fragment and V rows by ldmatrix.trans as B; warp w owns dims 16w..16w+15 (two n8 tiles),
//     so no merge across warps is needed: each warp writes its dims of the split's partial.
// Rows are padded to 272 bytes (ldmatrix free of bank conflicts); rows past the split are
// zero-filled. Positions and dims of a stage are in a fixed order, so a token's result never
// depends on the launch. Against the kernels above: p enters P V rounded to 16 bits (as in the
// prefill kernel), and the stage length sets where the running max is taken. Shared memory (bytes): NST * 2 * PS * 272 (ring) + 2048 (q fragments)
// + G * (PS + 8) * 4 (scores) + G * 16 (statistics) + G * 8 (a pair's first split's m and l).
#define ATP_LD 136  // bf16 per shared row: 128 + 8
template <int G, int PS, int NST, bool PAIRS>
__device__ __forceinline__ void attention_decode_pipe_body(
    const bf16* __restrict__ qkv, int row_stride, float scale, const bf16* __restrict__ k_cache,
    const bf16* __restrict__ v_cache, const int* __restrict__ block_table, int max_blocks,
    int block_size, const int* __restrict__ row_of, const int* __restrict__ pos_of,
    const int* __restrict__ group_idx, int groups_per_token, int num_heads, int num_kv_heads,
    int split_len, int num_splits, float* __restrict__ part_o, float* __restrict__ part_ml,
    int table_ready, int single_from, const float* __restrict__ qkv_work, int qkv_splits,
    int qkv_ldw, const bf16* __restrict__ qkv_bias, const float* __restrict__ inv_freq) {
    constexpr int D = 128, KD = D / 16, MT = PS / 16, SCL = PS + 8;
    constexpr int STAGE = 2 * PS * ATP_LD;  // bf16 of a stage: K rows, then V rows
    static_assert(PS % 16 == 0 && MT <= ATT_WARPS && G <= 8 && NST >= 2, "stage shape");
    static_assert(ATT_WARPS * 16 == D, "a warp per 16 dims");
    extern __shared__ __align__(16) float smem[];
    pdl_trigger();  // the combine may be launched as this kernel's dependent
    // Launched as a programmatic dependent (decode steps only: the kernel before, or with
    // qkv_work this block, appends each token's own position, and no other position a token
    // reads): the first stages stream in
    // before the wait when they end before the token's position. A group table counts as
    // written before only with table_ready (its router ran before the q/k/v projection);
    // otherwise the wait comes first.
    const bool wait_first = group_idx && !table_ready;
    if (wait_first) pdl_wait();
    const int t = blockIdx.x, y = blockIdx.y, z = blockIdx.z;
    const int g = group_idx ? group_idx[t * groups_per_token + y] : y;
    const int len = pos_of[t] + 1;
    // Partial z: split z, or (PAIRS) for z < pair_parts the splits 2z and 2z + 1 one after
    // the other (the ring runs on across them), merged as att_write_partial merges a pair.
    const int pair_parts = PAIRS ? att_pair_parts(num_splits, single_from) : 0;
    const int nparts = PAIRS ? att_parts(num_splits, single_from) : num_splits;
    const int s_first = PAIRS && z < pair_parts ? 2 * z : PAIRS ? pair_parts + z : z;
    const int s_last = PAIRS && z < pair_parts ? min(num_splits, s_first + 2) - 1 : s_first;
    const size_t part = ((size_t)t * num_heads + g * G) * nparts + z;
    const int start = s_first * split_len;
    const bool early = !wait_first && start + (NST - 1) * PS <= len - 1;
    if (start >= len) {
        if (!wait_first) pdl_wait();  // before the first write
        att_empty_partial(part_ml, part, G, nparts);
        return;
    }
    const int end = min(len, (s_last + 1) * split_len);
    const int nst = (end - start + PS - 1) / PS;
    // Stages of the first split (split_len % PS == 0 with pairs, host-checked); a second split
    // runs from stage spl on when it has positions.
    const int spl = PAIRS ? split_len / PS : nst;
    bf16* ring = reinterpret_cast<bf16*>(smem);
    unsigned* qb = reinterpret_cast<unsigned*>(ring + NST * STAGE);  // [KD][2][32]
    float* sc = reinterpret_cast<float*>(qb + KD * 2 * 32);          // [G][SCL]
    float* stat = sc + G * SCL;                                        // [G][4]
    float* first_ml = stat + G * 4;  // PAIRS: the first split's m and l [G][2]
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const float qscale = scale * 1.4426950408889634f;
    const bool pow2 = (block_size & (block_size - 1)) == 0;
    const int bshift = __ffs(block_size) - 1;
    const int* table = block_table + (size_t)row_of[t] * max_blocks;
    const uint64_t kv_policy = l2_evict_first();  // K and V are read once a step (common.cuh)
    auto cache_row = [=](int p) -> size_t {
        const int blk = pow2 ? p >> bshift : p / block_size;
        const int slot = pow2 ? p & (block_size - 1) : p % block_size;
        return (((size_t)table[blk] * num_kv_heads + g) * block_size + slot) * D;
    };
    // Stage s: K and V rows of positions start + s * PS + r, 16-byte pieces, zero past `end`;
    // an L2 miss fetches the whole 256-byte block (a row) from HBM at once (.L2::256B). H100,
    // polar-bench, same call, two rounds (2026-11-27), llama-3-8b dense ms: B=16 11.868 / 11.856
    // -> 11.791 / 11.802, B=48 24.007 / 23.991 -> 23.825 / 23.828 (Polar 17.75 -> 17.65).
    auto load_stage = [&](int s) {
        bf16* dk = ring + (s % NST) * STAGE;
        const int p0 = start + s * PS;
#pragma unroll
        for (int c = tid; c < PS * (D / 8); c += ATT_THREADS) {
            const int r = c >> 4, col = (c & 15) * 8;
            const bool ok = p0 + r < end;
            const size_t off = ok ? cache_row(p0 + r) + col : 0;
            const uint32_t dst = smem_addr(dk + r * ATP_LD + col);
            cp_async16_sz_l2_256_hint(dst, k_cache + off, ok ? 16 : 0, kv_policy);
            cp_async16_sz_l2_256_hint(dst + PS * ATP_LD * 2, v_cache + off, ok ? 16 : 0, kv_policy);
        }
    };
    // Fused q/k/v reduce (qkv_work != null, decode steps without a group table, launched after
    // the q/k/v GEMM): the block reduces its G query heads' partials itself (bias, RoPE: the
    // bits of decode_qkv_rope_kv) into the scores' shared memory, and the block whose split
    // holds the token's own position appends the group's new K and V rows to the cache first
    // (no other block reads that position). qkv is then not written.
    bf16* const q_fused = reinterpret_cast<bf16*>(sc);  // [G][D], until the first stage
    auto reduce_qkv = [&]() {
        const int p = len - 1, half = D / 2;
        const bool rope = inv_freq != nullptr;
        for (int pr = tid; pr < G * half; pr += ATT_THREADS) {
            const int hh = pr / half, i = pr % half;
            const int c1 = (g * G + hh) * D + i;
            bf16 o1, o2;
            qkv_pair_reduce(qkv_work, qkv_splits, gridDim.x, t, qkv_ldw, qkv_bias, c1, c1 + half,
                            rope, rope ? __fmul_rn((float)p, inv_freq[i]) : 0.f, o1, o2);
            q_fused[hh * D + i] = o1;
            q_fused[hh * D + i + half] = o2;
        }
        if (end != len) return;
        const size_t dst = cache_row(p);
        for (int pr = tid; pr < 2 * half; pr += ATT_THREADS) {
            const bool is_v = pr >= half;
            const int i = pr % half;
            const int c1 = (num_heads + (is_v ? num_kv_heads : 0) + g) * D + i;
            bf16 o1, o2;
            qkv_pair_reduce(qkv_work, qkv_splits, gridDim.x, t, qkv_ldw, qkv_bias, c1, c1 + half,
                            rope && !is_v, rope && !is_v ? __fmul_rn((float)p, inv_freq[i]) : 0.f,
                            o1, o2);
            bf16* cache = const_cast<bf16*>(is_v ? v_cache : k_cache);
            cache[dst + i] = o1;
            cache[dst + i + half] = o2;
        }
    };
    const bool fused = qkv_work != nullptr;
    if (!early && !wait_first) pdl_wait();
    if (fused && !early) {
        reduce_qkv();
        __syncthreads();  // the new K/V rows are written before any copy of their stage
    }
#pragma unroll
    for (int s = 0; s < NST - 1; s++) {
        if (s < nst) load_stage(s);
        cp_async_commit();
    }
    if (early) {
        pdl_wait();
        if (fused) reduce_qkv();  // (its prologue stages end before the token's position)
    }
    if (fused && early) __syncthreads();  // q_fused complete
    // q of the G heads as m16n8k16 B fragments (column n = lane / 4, zero past G), and fresh
    // statistics; made visible by the first stage's barrier.
    if (warp == 0) {
        const bf16* q = fused ? q_fused : qkv + (size_t)t * row_stride + (size_t)g * G * D;
        const int n = lane >> 2;
#pragma unroll
        for (int kd = 0; kd < KD; kd++)
#pragma unroll
            for (int j = 0; j < 2; j++)
                qb[(kd * 2 + j) * 32 + lane] =
                    n < G ? *reinterpret_cast<const unsigned*>(q + n * D + kd * 16
                                                                + (lane & 3) * 2 + j * 8)
                          : 0u;
    }
    if (tid < G) {
        stat[tid * 4 + 1] = -INFINITY;
        stat[tid * 4 + 2] = 0.f;
    }
    // O of rows (heads) lane / 4 (c0, c1; c2, c3 are rows past 8, unused), dims
    // 16 * warp + 8 * nt + (lane % 4) * 2 (+1).
    const int h = lane >> 2;
    float oacc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
    float o1[2][2] = {{0.f, 0.f}, {0.f, 0.f}}, m1 = -INFINITY;  // PAIRS: the first split's o, m
#pragma unroll 1
    for (int s = 0; s < nst; s++) {
        cp_async_wait<NST - 2>();
        __syncthreads();  // stage s landed for every thread; stage s - 1 fully read
        if (s + NST - 1 < nst) load_stage(s + NST - 1);
        cp_async_commit();
        if (PAIRS && s == spl && tid < G) {  // the second split's fresh statistics (every
            stat[tid * 4 + 1] = -INFINITY;    // thread read the first's before the barrier)
            stat[tid * 4 + 2] = 0.f;
        }
        const bf16* dk = ring + (s % NST) * STAGE;
        const bf16* dv = dk + PS * ATP_LD;
        const int tl = min(PS, end - (start + s * PS));
        if (warp < MT) {  // scores of rows 16 w .. 16 w + 15
            float cacc[4] = {0.f, 0.f, 0.f, 0.f};
            if (warp * 16 < tl) {
#pragma unroll
                for (int kd = 0; kd < KD; kd++) {
                    uint32_t a[4];
                    ldsm_x4(a, dk + (warp * 16 + (lane & 15)) * ATP_LD + kd * 16
                                   + (lane >> 4) * 8);
                    mma_16816(cacc, a, qb[(kd * 2) * 32 + lane], qb[(kd * 2 + 1) * 32 + lane]);
                }
            }
            att_store_scores<G, true>(sc, SCL, cacc, warp * 16 + (lane >> 2), tl, qscale, lane);
        }
        __syncthreads();
        if (warp < G) att_softmax_tile(sc + warp * SCL, stat + warp * 4, PS, lane);
        __syncthreads();
        const float alpha = h < G ? stat[h * 4] : 0.f;
#pragma unroll
        for (int nt = 0; nt < 2; nt++) {
            oacc[nt][0] *= alpha;
            oacc[nt][1] *= alpha;
        }
#pragma unroll
        for (int ks = 0; ks < PS / 16; ks++) {
            if (ks * 16 >= tl) break;
            uint32_t a[4] = {0u, 0u, 0u, 0u};
            if (h < G) {
                const float* pr = sc + h * SCL + ks * 16 + (lane & 3) * 2;
                const float2 pa = *reinterpret_cast<const float2*>(pr);
                const float2 pb = *reinterpret_cast<const float2*>(pr + 8);
                a[0] = pack2(pa.x, pa.y);
                a[2] = pack2(pb.x, pb.y);
            }
            uint32_t b[4];
            ldsm_x4_t(b, dv + (ks * 16 + (lane & 15)) * ATP_LD + warp * 16 + (lane >> 4) * 8);
            mma_16816(oacc[0], a, b[0], b[1]);
            mma_16816(oacc[1], a, b[2], b[3]);
        }
        if (PAIRS && s == spl - 1 && nst > spl) {  // the first split ends, a second follows
            if (h < G) m1 = stat[h * 4 + 1];
            if (tid < G) {
                first_ml[tid * 2] = stat[tid * 4 + 1];
                first_ml[tid * 2 + 1] = stat[tid * 4 + 2];
            }
#pragma unroll
            for (int nt = 0; nt < 2; nt++) {
                o1[nt][0] = oacc[nt][0];
                o1[nt][1] = oacc[nt][1];
                oacc[nt][0] = oacc[nt][1] = 0.f;
            }
        }
    }
    cp_async_wait<0>();
    const bool merged = PAIRS && nst > spl;
    if (h < G) {
        float* o = part_o + (part + (size_t)h * nparts) * D + warp * 16 + (lane & 3) * 2;
        float wa = 0.f, wb = 0.f;
        if (merged) {
            float mp;
            att_pair(m1, stat[h * 4 + 1], mp, wa, wb);
        }
#pragma unroll
        for (int nt = 0; nt < 2; nt++) {
            float2 v = make_float2(oacc[nt][0], oacc[nt][1]);
            if (merged) {
                v.x = att_pair_mix(o1[nt][0], wa, true, v.x, wb, true);
                v.y = att_pair_mix(o1[nt][1], wa, true, v.y, wb, true);
            }
            *reinterpret_cast<float2*>(o + nt * 8) = v;
        }
    }
    if (tid < G) {
        const size_t p = part + (size_t)tid * nparts;
        float m = stat[tid * 4 + 1], l = stat[tid * 4 + 2];
        if (merged) {
            float mp, wa, wb;
            att_pair(first_ml[tid * 2], m, mp, wa, wb);
            l = att_pair_mix(first_ml[tid * 2 + 1], wa, true, l, wb, true);
            m = mp;
        }
        part_ml[p * 2] = m;
        part_ml[p * 2 + 1] = l;
    }
}

#define ATT_PIPE_ENTRY(G_, PS_, NST_, MINB_, SUFFIX_, PAIRS_)                                  \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS, MINB_)                            \
        attention_decode_paged_g##G_##_pipe##SUFFIX_##_bf16(                                    \
            const bf16* qkv, int row_stride, float scale, const bf16* k_cache,                  \
            const bf16* v_cache, const int* block_table, int max_blocks, int block_size,        \
            const int* row_of, const int* pos_of, const int* group_idx, int groups_per_token,   \
            int num_heads, int num_kv_heads, int head_dim, int split_len, int num_splits,       \
            float* part_o, float* part_ml, int table_ready, int single_from,                    \
            const float* qkv_work, int qkv_splits, int qkv_ldw, const bf16* qkv_bias,           \
            const float* inv_freq) {                                                            \
        attention_decode_pipe_body<G_, PS_, NST_, PAIRS_>(qkv, row_stride, scale, k_cache,      \
            v_cache, block_table, max_blocks, block_size, row_of, pos_of, group_idx,            \
            groups_per_token, num_heads, num_kv_heads, split_len, num_splits, part_o, part_ml,  \
            table_ready, single_from, qkv_work, qkv_splits, qkv_ldw, qkv_bias, inv_freq);       \
    }

// 64-position stages, 3 in the ring: 107-109 KB of shared memory, two blocks per SM. Measured
// on the H100 (2026-11-26, polar-bench, same call): stages of 32 x 4 and 64 x 2 (three blocks
// per SM) were no faster; one query head per group (MHA) stays on the kernels above (this one
// was 3-7% slower there); several splits per block, the ring running on across them, gained
// nothing (the pipeline's fill is not what it waits on).
ATT_PIPE_ENTRY(2, 64, 3, 2, , false)
ATT_PIPE_ENTRY(4, 64, 3, 2, , false)
ATT_PIPE_ENTRY(8, 64, 3, 2, , false)
ATT_PIPE_ENTRY(2, 64, 3, 2, _pairs, true)
ATT_PIPE_ENTRY(4, 64, 3, 2, _pairs, true)
ATT_PIPE_ENTRY(8, 64, 3, 2, _pairs, true)

// The combine's common case (head_dim 128, at most 32 partials of a head): every load issued
// at once instead of in dependent rounds (table, then m, then l, then o), the bits of
// combine_head_splits (scheme 0) and combine_head_pairs (schemes 1, 2). Lane i holds partial i's
// (pm, pl), loaded by the caller; xs holds NL partials' o at the lane's 4 dims, chunk by chunk
// (the first chunk is loaded before the statistics are reduced). A record is what the general
// paths merge in order: a whole partial (scheme 0; the pair partials p < pair_parts of scheme
// 2) or a pair of split partials (scheme 1; scheme 2's pairs from pair_parts on). Split pairs
// never straddle two chunks (the caller's condition: P <= NL or an even pair_parts).
template <int NL>
__device__ __forceinline__ void combine_head_regs(bf16* __restrict__ out,
                                                  const float* __restrict__ part_o, size_t base,
                                                  int P, int num_splits, int scheme,
                                                  int pair_parts, float pm, float pl, int lane) {
    const int d = lane * 4;
    float4 xs[NL];
    auto load = [&](int c0) {
#pragma unroll
        for (int i = 0; i < NL; i++)
            if (c0 + i < P)
                xs[i] = *reinterpret_cast<const float4*>(part_o + (base + c0 + i) * 128 + d);
    };
    load(0);
    // Whole partials come first: all of scheme 0's, none of scheme 1's.
    const int pp = scheme == 0 ? P : scheme == 1 ? 0 : pair_parts;
    const int R = scheme == 0 ? P : (num_splits + 1) / 2;
    // Record `lane`: its m and l (split pairs: att_pair of partials a and a + 1, as pair_ml).
    float m = pm, l = pl, wa = 1.f, wb = 0.f;
    bool va = true, vb = false;
    {
        const int a = 2 * lane - pp;
        const float ma = __shfl_sync(0xffffffffu, pm, a & 31);
        const float la = __shfl_sync(0xffffffffu, pl, a & 31);
        const float mb1 = __shfl_sync(0xffffffffu, pm, (a + 1) & 31);
        const float lb1 = __shfl_sync(0xffffffffu, pl, (a + 1) & 31);
        if (lane >= pp) {
            const float mb = 2 * lane + 1 < num_splits ? mb1 : -INFINITY;
            va = ma != -INFINITY;
            vb = mb != -INFINITY;
            att_pair(ma, mb, m, wa, wb);
            l = att_pair_mix(la, wa, va, vb ? lb1 : 0.f, wb, vb);
            if (!va && !vb) m = -INFINITY;
        }
    }
    if (lane >= R) m = -INFINITY;
    const float M = warp_max(m);
    const bool present = m != -INFINITY;
    const float w = present ? exp2f(m - M) : 0.f;
    float Ll = 0.f;
    if (present) {
        if (scheme == 0) Ll += l * w;
        else Ll = __fmaf_rn(l, w, Ll);
    }
    const float inv = 1.f / warp_sum(Ll);
    const int flags = (va ? 1 : 0) | (vb ? 2 : 0) | (present ? 4 : 0);
    float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int c0 = 0; c0 < P; c0 += NL) {
        if (c0 > 0) load(c0);
#pragma unroll
        for (int i = 0; i < NL; i++) {
            const int s = c0 + i;  // partial s: record s (whole) or half of a split pair
            const bool whole = s < pp;
            if (s >= P || (!whole && ((s - pp) & 1))) continue;
            const int r = whole ? s : pp + ((s - pp) >> 1);  // r < 32: no lane is skipped
            const float wr = __shfl_sync(0xffffffffu, w, r);
            const int f = __shfl_sync(0xffffffffu, flags, r);
            float4 x = xs[i];
            if (!whole) {
                const float wra = __shfl_sync(0xffffffffu, wa, r);
                const float wrb = __shfl_sync(0xffffffffu, wb, r);
                const float4 y = s + 1 < P ? xs[i + 1 < NL ? i + 1 : i] : x;
                x = make_float4(att_pair_mix(x.x, wra, f & 1, y.x, wrb, f & 2),
                                att_pair_mix(x.y, wra, f & 1, y.y, wrb, f & 2),
                                att_pair_mix(x.z, wra, f & 1, y.z, wrb, f & 2),
                                att_pair_mix(x.w, wra, f & 1, y.w, wrb, f & 2));
            }
            if (scheme == 0) {
                float4 u = o;
                u.x += x.x * wr;
                u.y += x.y * wr;
                u.z += x.z * wr;
                u.w += x.w * wr;
                if (f & 4) o = u;
            } else {
                const float4 u = make_float4(__fmaf_rn(x.x, wr, o.x), __fmaf_rn(x.y, wr, o.y),
                                             __fmaf_rn(x.z, wr, o.z), __fmaf_rn(x.w, wr, o.w));
                if (f & 4) o = u;
            }
        }
    }
    out[d] = f2bf(o.x * inv);
    out[d + 1] = f2bf(o.y * inv);
    out[d + 2] = f2bf(o.z * inv);
    out[d + 3] = f2bf(o.w * inv);
}

extern "C" __global__ void attention_combine_bf16(bf16* __restrict__ att,
                                                  const float* __restrict__ part_o,
                                                  const float* __restrict__ part_ml,
                                                  const int* __restrict__ group_idx,
                                                  int groups_per_token, int num_heads,
                                                  int num_kv_heads, int head_dim, int num_splits,
                                                  int scheme, int regs, int single_from,
                                                  int discard) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    pdl_wait();     // (launched as the decode pass's dependent) its partials
    // One warp per (token, head) over ALL heads (blockDim / 32 heads per block): a head whose
    // group is not in the token's table is written as zeros here, so no separate zero-fill.
    const int t = blockIdx.x;
    const int h = blockIdx.y * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (h >= num_heads) return;
    const int G = num_heads / num_kv_heads;
    const int g = h / G;
    bf16* out = att + (size_t)t * num_heads * head_dim + (size_t)h * head_dim;
    const int pair_parts = scheme == 2 ? att_pair_parts(num_splits, single_from) : 0;
    const int nparts = scheme == 2 ? att_parts(num_splits, single_from) : num_splits;
    const size_t base = ((size_t)t * num_heads + h) * nparts;
    if (regs && head_dim == 128 && nparts <= 32 && groups_per_token <= 32
        && (nparts <= 16 || scheme == 0 || pair_parts % 2 == 0)) {
        // The table entry, the statistics and (without a table) the o vectors all in flight
        // together; with a table only the o loads wait for the selection test.
        const int gv = group_idx && lane < groups_per_token
                           ? group_idx[t * groups_per_token + lane] : -1;
        float pm = -INFINITY, pl = 0.f;
        if (lane < nparts) {
            pm = part_ml[(base + lane) * 2];
            pl = part_ml[(base + lane) * 2 + 1];
        }
        if (group_idx && !__any_sync(0xffffffffu, gv == g)) {
            for (int d = lane; d < head_dim; d += 32) out[d] = f2bf(0.f);
            return;
        }
        if (nparts <= 8)
            combine_head_regs<8>(out, part_o, base, nparts, num_splits, scheme, pair_parts, pm,
                                 pl, lane);
        else
            combine_head_regs<16>(out, part_o, base, nparts, num_splits, scheme, pair_parts, pm,
                                  pl, lane);
        return;
    }
    if (group_idx) {
        bool selected = false;
        for (int j = 0; j < groups_per_token; j++)
            selected |= group_idx[t * groups_per_token + j] == g;
        if (!selected) {
            for (int d = lane; d < head_dim; d += 32) out[d] = f2bf(0.f);
            return;
        }
    }
    if (scheme == 0)
        combine_head_splits(out, part_o, part_ml, base, head_dim, num_splits, lane);
    else
        combine_head_pairs(out, part_o, part_ml, base, head_dim, num_splits, pair_parts, lane);
    if (discard) {  // the head's o partials, read (their values stored above) by this warp only
        __syncwarp();
        l2_discard_span(part_o + base * head_dim, (size_t)nparts * head_dim * 4, lane, 32);
    }
}
