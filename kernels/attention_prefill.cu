// Tiled causal prefill attention over the paged KV cache on the tensor cores (mma.sync m16n8k16
// bf16 -> fp32 accumulation, ldmatrix), with an online softmax in base 2.
//
// attention_prefill_paged_d<DP>_bf16: one thread block per (query head h, query tile):
//   tile = tiles[blockIdx.y] = {t0, row, p0, count} (int4): the tokens t0 .. t0+count-1 of the
//   flat batch (1 <= count <= 128) are consecutive positions p0 .. p0+count-1 of sequence `row`
//   (index into block_table). For every token t0+i and head h (KV group g = h / G):
//     att[t0+i, h*head_dim ..] = sum_{p <= p0+i} softmax_p(q . k_p * scale) v_p
//   att bf16 [n, num_heads * head_dim] (the layout attention_combine_bf16 writes); tokens not
//   in any tile are not touched.
//   q: the first num_heads * head_dim columns of qkv bf16 [n, row_stride] (after RoPE);
//   K/V: cache layout as kv_cache.cu, bf16 [num_blocks, num_kv_heads, block_size, head_dim];
//   every position < p0 + count of the row must already be appended (this chunk's K/V and
//   those of earlier chunks); slots past that are never read.
// Tiling: 4 warps x WM 16-row m-tiles = 64 * WM queries of one head per block; keys in tiles of
//   BK positions from position 0 (a fixed, absolute tiling), K/V tiles double-buffered in
//   shared memory with cp.async (zero-filled past p0 + count). Each query row's running max,
//   sum and output depend only on its own scores, key tiles are folded in increasing order,
//   and keys past a query's position get exactly zero weight (a tile wholly past it rescales by
//   exactly 1 and adds exact zeros), so a query's result, bit for bit, does not depend on how
//   the prompt was chunked, on which tokens share its tile, or on other sequences in the call.
// Head dims: DP in {32, 64, 128} is the padded head dim; any head_dim % 8 == 0 with
//   head_dim <= DP works (columns past head_dim are zero-filled).
// Host-checked (PrefillAttentionKernel): head_dim % 8 == 0 and <= 128, row_stride % 8 == 0,
//   heads % kv_heads == 0. Not checked here: tile counts in [1, 128], block_table entries in
//   range, positions appended.
// Grid: (num_heads, num_tiles), block 128, dynamic shared memory
//   (64 * WM + 4 * BK) * (DP + 8) * 2 bytes (Q tile, two K and two V tiles, rows padded 16 B).
#include "common.cuh"

#define PF_THREADS 128

// 2^x on the SFU (inputs here are <= 0 or -inf; ex2(-inf) = +0).
POLAR_DEVICE float pf_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// DP: padded head dim (multiple of 16); WM: 16-row m-tiles per warp (block: 64 * WM queries).
template <int DP, int WM, int BKT>
__device__ __forceinline__ void attention_prefill_body(
    bf16* __restrict__ att, const bf16* __restrict__ qkv, int row_stride, float scale,
    const bf16* __restrict__ k_cache, const bf16* __restrict__ v_cache,
    const int* __restrict__ block_table, int max_blocks, int block_size,
    const int4* __restrict__ tiles, int num_heads, int num_kv_heads, int head_dim) {
    constexpr int BQ = 64 * WM;      // queries per block
    constexpr int LD = DP + 8;       // shared row stride (elements): 16 B pad, no bank conflicts
    constexpr int CH = DP / 8;       // 16-byte chunks per row
    constexpr int KS = DP / 16;      // k-steps of Q.K^T; also pairs of 8-wide d tiles of P.V
    constexpr bool QREG = WM == 1;  // Q fragments kept in registers, else re-read per tile
    extern __shared__ __align__(16) unsigned char pf_smem[];
    bf16* sQ = reinterpret_cast<bf16*>(pf_smem);   // [BQ][LD]
    bf16* sK = sQ + BQ * LD;                       // [2][BK][LD]
    bf16* sV = sK + 2 * BKT * LD;                // [2][BK][LD]

    const int h = blockIdx.x;
    const int4 tl = tiles[blockIdx.y];
    const int t0 = tl.x, row = tl.y, p0 = tl.z, cnt = tl.w;
    const int g = h / (num_heads / num_kv_heads);
    const int kv_len = p0 + cnt;                    // keys [0, kv_len) are read
    const int num_kt = (kv_len + BKT - 1) / BKT;
    const int* table = block_table + (size_t)row * max_blocks;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

    // Q tile: rows past count and columns past head_dim are zero.
    for (int i = tid; i < BQ * CH; i += PF_THREADS) {
        int r = i / CH, c = i % CH;
        bool ok = r < cnt && c * 8 < head_dim;
        const bf16* src = ok ? qkv + (size_t)(t0 + r) * row_stride + (size_t)h * head_dim + c * 8
                             : qkv;
        cp_async16_sz(smem_addr(sQ + r * LD + c * 8), src, ok ? 16 : 0);
    }
    auto load_kv = [&](int kt, int buf) {
        bf16* dk = sK + buf * BKT * LD;
        bf16* dv = sV + buf * BKT * LD;
#pragma unroll
        for (int it = 0; it < BKT * CH / PF_THREADS; it++) {
            int i = tid + it * PF_THREADS;
            int r = i / CH, c = i % CH;
            int p = kt * BKT + r;
            bool ok = p < kv_len && c * 8 < head_dim;
            size_t off = 0;
            if (ok)
                off = (((size_t)table[p / block_size] * num_kv_heads + g) * block_size
                       + p % block_size) * head_dim + c * 8;
            cp_async16_sz(smem_addr(dk + r * LD + c * 8), k_cache + off, ok ? 16 : 0);
            cp_async16_sz(smem_addr(dv + r * LD + c * 8), v_cache + off, ok ? 16 : 0);
        }
    };
    load_kv(0, 0);
    cp_async_commit();

    const float qscale = scale * 1.4426950408889634f;  // log2(e): softmax via exp2
    const int gq = lane >> 2, tq = lane & 3;            // mma fragment row group / thread pair
    const int wrow = warp * 16 * WM;                     // the warp's first query row
    // The warp's last valid query position; a warp with no valid row skips every key tile.
    const int warp_max_pos = wrow < cnt ? p0 + min(wrow + 16 * WM - 1, cnt - 1) : -1;

    uint32_t qf[QREG ? WM : 1][QREG ? KS : 1][4];
    float o[WM][2 * KS][4];
    float m[WM][2], l[WM][2];  // running max (raw score units) and partial sum per row
#pragma unroll
    for (int mi = 0; mi < WM; mi++) {
#pragma unroll
        for (int j = 0; j < 2 * KS; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) o[mi][j][e] = 0.f;
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            m[mi][hf] = -INFINITY;
            l[mi][hf] = 0.f;
        }
    }

    for (int kt = 0; kt < num_kt; kt++) {
        if (kt + 1 < num_kt) {
            load_kv(kt + 1, (kt + 1) & 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (QREG && kt == 0) {
#pragma unroll
            for (int mi = 0; mi < (QREG ? WM : 1); mi++)
#pragma unroll
                for (int k = 0; k < (QREG ? KS : 1); k++)
                    ldsm_x4(qf[mi][k], sQ + (wrow + mi * 16 + (lane & 15)) * LD + k * 16
                                              + (lane >> 4) * 8);
        }
        const int kb = kt * BKT;
        // A key tile wholly past every query of this warp is a no-op for all its rows: skip.
        if (kb <= warp_max_pos) {
            const bf16* tK = sK + (kt & 1) * BKT * LD;
            const bf16* tV = sV + (kt & 1) * BKT * LD;
            float s[WM][BKT / 8][4];
#pragma unroll
            for (int mi = 0; mi < WM; mi++)
#pragma unroll
                for (int j = 0; j < BKT / 8; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++) s[mi][j][e] = 0.f;
#pragma unroll
            for (int k = 0; k < KS; k++) {
                uint32_t qa[WM][4];
                if (!QREG) {
#pragma unroll
                    for (int mi = 0; mi < WM; mi++)
                        ldsm_x4(qa[mi], sQ + (wrow + mi * 16 + (lane & 15)) * LD + k * 16
                                               + (lane >> 4) * 8);
                }
#pragma unroll
                for (int jj = 0; jj < BKT / 16; jj++) {
                    uint32_t b[4];
                    int key = jj * 16 + (lane & 7) + ((lane >> 4) << 3);
                    int d = k * 16 + ((lane >> 3) & 1) * 8;
                    ldsm_x4(b, tK + key * LD + d);
#pragma unroll
                    for (int mi = 0; mi < WM; mi++) {
                        const uint32_t(&a)[4] = QREG ? qf[QREG ? mi : 0][QREG ? k : 0] : qa[mi];
                        mma_16816(s[mi][2 * jj], a, b[0], b[1]);
                        mma_16816(s[mi][2 * jj + 1], a, b[2], b[3]);
                    }
                }
            }
            uint32_t pa[WM][BKT / 16][4];  // P as the A operand of the 16-key k-steps
#pragma unroll
            for (int mi = 0; mi < WM; mi++) {
                // Mask keys past each query's position (only near the diagonal).
                const int qp0 = p0 + wrow + mi * 16 + gq, qp1 = qp0 + 8;
                const bool diag = kb + BKT - 1 > p0 + wrow + mi * 16;
                float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
                for (int j = 0; j < BKT / 8; j++) {
                    if (diag) {
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            int key = kb + j * 8 + tq * 2 + (e & 1);
                            if (key > ((e < 2) ? qp0 : qp1)) s[mi][j][e] = -INFINITY;
                        }
                    }
                    mx0 = fmaxf(mx0, fmaxf(s[mi][j][0], s[mi][j][1]));
                    mx1 = fmaxf(mx1, fmaxf(s[mi][j][2], s[mi][j][3]));
                }
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
                // Key tile 0 always holds a valid key (position 0), so m is finite after it;
                // an unchanged max rescales by exactly 1 (fully masked tiles are no-ops).
                const float mn0 = fmaxf(m[mi][0], mx0), mn1 = fmaxf(m[mi][1], mx1);
                const float a0 = mn0 == m[mi][0] ? 1.f : pf_exp2((m[mi][0] - mn0) * qscale);
                const float a1 = mn1 == m[mi][1] ? 1.f : pf_exp2((m[mi][1] - mn1) * qscale);
                m[mi][0] = mn0;
                m[mi][1] = mn1;
                const float b0 = mn0 * qscale, b1 = mn1 * qscale;
                float rs0 = 0.f, rs1 = 0.f;
#pragma unroll
                for (int j = 0; j < BKT / 8; j++) {
                    float e0 = pf_exp2(fmaf(s[mi][j][0], qscale, -b0));
                    float e1 = pf_exp2(fmaf(s[mi][j][1], qscale, -b0));
                    float e2 = pf_exp2(fmaf(s[mi][j][2], qscale, -b1));
                    float e3 = pf_exp2(fmaf(s[mi][j][3], qscale, -b1));
                    rs0 += e0 + e1;
                    rs1 += e2 + e3;
                    pa[mi][j >> 1][(j & 1) * 2 + 0] = pack2(e0, e1);
                    pa[mi][j >> 1][(j & 1) * 2 + 1] = pack2(e2, e3);
                }
                l[mi][0] = l[mi][0] * a0 + rs0;  // per-thread partial sums; quad-reduced at end
                l[mi][1] = l[mi][1] * a1 + rs1;
#pragma unroll
                for (int j = 0; j < 2 * KS; j++) {
                    o[mi][j][0] *= a0;
                    o[mi][j][1] *= a0;
                    o[mi][j][2] *= a1;
                    o[mi][j][3] *= a1;
                }
            }
#pragma unroll
            for (int k = 0; k < BKT / 16; k++) {
#pragma unroll
                for (int jj = 0; jj < KS; jj++) {
                    uint32_t b[4];
                    int key = k * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                    int d = jj * 16 + (lane >> 4) * 8;
                    ldsm_x4_t(b, tV + key * LD + d);
#pragma unroll
                    for (int mi = 0; mi < WM; mi++) {
                        mma_16816(o[mi][2 * jj], pa[mi][k], b[0], b[1]);
                        mma_16816(o[mi][2 * jj + 1], pa[mi][k], b[2], b[3]);
                    }
                }
            }
        }
        __syncthreads();  // this buffer is refilled by the next iteration's load
    }

    const size_t out_stride = (size_t)num_heads * head_dim;
#pragma unroll
    for (int mi = 0; mi < WM; mi++) {
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            float L = l[mi][hf];
            L += __shfl_xor_sync(0xffffffffu, L, 1);
            L += __shfl_xor_sync(0xffffffffu, L, 2);
            int r = wrow + mi * 16 + gq + hf * 8;
            if (r >= cnt) continue;
            const float inv = 1.f / L;
            bf16* out = att + (size_t)(t0 + r) * out_stride + (size_t)h * head_dim;
#pragma unroll
            for (int j = 0; j < 2 * KS; j++) {
                int d = j * 8 + tq * 2;
                if (d < head_dim)
                    *reinterpret_cast<bf16x2*>(out + d) = f2bf2(
                        o[mi][j][hf * 2] * inv, o[mi][j][hf * 2 + 1] * inv);
            }
        }
    }
}

#define PF_ENTRY(DP_, WM_, BK_)                                                                 \
    extern "C" __global__ void __launch_bounds__(PF_THREADS)                                    \
        attention_prefill_paged_d##DP_##_bf16(                                                  \
            bf16* att, const bf16* qkv, int row_stride, float scale, const bf16* k_cache,       \
            const bf16* v_cache, const int* block_table, int max_blocks, int block_size,        \
            const int4* tiles, int num_heads, int num_kv_heads, int head_dim) {                 \
        attention_prefill_body<DP_, WM_, BK_>(att, qkv, row_stride, scale, k_cache, v_cache,    \
                                              block_table, max_blocks, block_size, tiles,       \
                                              num_heads, num_kv_heads, head_dim);               \
    }

// Per padded head dim: 2 m-tiles per warp (128 queries per block); 64-key tiles for DP 32 and
// 32-key tiles for DP 64 and 128 (registers; shared memory <= 68 KiB, within sm_86/89's 99 KiB).
// Measured on H100 (scratch harness, 2026-11-26): these beat 1 m-tile per warp by 10-25%.
PF_ENTRY(32, 2, 64)
PF_ENTRY(64, 2, 32)
PF_ENTRY(128, 2, 32)
