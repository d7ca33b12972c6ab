// GEMM on tensor cores (mma.sync m16n8k16, bf16 in, fp32 accumulate) with fused epilogues:
//
//   acc[m, n] = sum_k A[m, k] * W[n, k]          A: bf16 [M, K] (row stride lda)
//                                                W: bf16 [N, K] (PyTorch Linear layout, stride ldw)
//   gemm_store_bf16:   out bf16[m, n]  = acc + bias[n]
//   gemm_relu_bf16:    out bf16[m, n]  = max(acc + bias[n], 0)
//   gemm_accum_f32:    out fp32[m, n] += acc + bias[n]     (residual add fused: x += o_proj(...))
//   gemm_store_f32:    out fp32[m, n]  = acc + bias[n]     (logits)
//   gemm_swiglu_bf16:  W holds gate and up rows interleaved (row 2j = gate_j, 2j+1 = up_j, N = 2F);
//                      out bf16[m, j] = silu(acc[m, 2j] + bias[2j]) * (acc[m, 2j+1] + bias[2j+1])
//   bias may be null; out has row stride ldc.
// Tile shapes with a cp.async pipeline and ldmatrix fragment loads from padded shared memory
// (row pitch BK + 8 elements: conflict-free), all 4 stages and 4 warps unless noted:
//   gemm_<epi>       64 x 64 x 32 (warps 2 x 2, 32 x 32 each): batches over 64 rows without the
//                    large tile below, and the [K, N] layout;
//   gemm_<epi>_m16   16 x 64 x 64 (warps 1 x 4, 16 x 16 each): decode, M <= 16. It reads each
//                    weight row in 128-byte runs per stage and wastes no MMA rows;
//   gemm_<epi>_m64   64 x 128 x 64, 3 stages, 8 warps (2 x 4, 32 x 32 each): decode, 16 < M <= 64
//                    (H100: 1.6-1.9 TB/s of weights against 1.25-1.45 for the 64 x 64 x 32 tile);
//                    gemm_<epi>_kn_m64 the same for the [K, N] layout.
// Every output element is the same sequence of m16n8k16 steps in increasing k in both shapes,
// so they give identical bits.
// K is summed in chunks of k_chunk (chosen by the host from N and K only): each chunk's products
// are accumulated from zero and the chunk sums are added in order. With a workspace (decode
// shapes, where M is small and the output has too few tiles to keep every SM streaming weights),
// block z computes chunk z and writes it to work[z][M][N], and gemm_reduce_<epilogue> adds the
// chunks in the same order and applies the epilogue; without one (work == null) a block walks
// every chunk itself. Both give the same bits, and a row's result never depends on M or on the
// other rows: batch-invariant and deterministic (no atomics).
// Preconditions (checked by the Java launcher): K % 8 == 0, lda % 8 == 0, ldw % 8 == 0 and
// 16-byte aligned A and W (16-byte vector loads); N even; k_chunk a multiple of 64. M, N, K need
// not be tile multiples. Shared memory is dynamic: STAGES * (BM + BN) * (BK + 8) * 2 bytes.
#include "gemm_common.cuh"

#define PAD 8
#define GEMM_THREADS 128
#ifndef STAGES
#define STAGES 4
#endif

POLAR_DEVICE void cp_async16(void* dst, const void* src, bool valid) {
    cp_async16_sz(smem_addr(dst), src, valid ? 16 : 0);  // 0: the 16 bytes are zero-filled
}

// ldmatrix (TRANS: each matrix transposed) into four separate registers: B fragments held as
// pairs of n8 tiles.
template <bool TRANS = false>
POLAR_DEVICE void ldmatrix_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                              const void* p) {
    uint32_t r[4];
    if constexpr (TRANS)
        ldsm_x4_t(r, p);
    else
        ldsm_x4(r, p);
    r0 = r[0];
    r1 = r[1];
    r2 = r[2];
    r3 = r[3];
}


// BM x BN x BK tile, WM x WN warps; each warp computes (BM/WM) x (BN/WN) = MI m16 x NI n8 tiles.
// KN = false: W is [N, K] (K contiguous); w_idx (or null) maps output column n to W's row
//             (and bias entry): the row-gather of Polar's fc1.
// KN = true:  W is [K, N] (N contiguous, row stride ldw); w_idx (or null) maps k to W's row:
//             the neuron-major fc2 of Polar's sparse MLP, gathering the selected neurons' rows.
template <int EPI, int BM, int BN, int BK, int WM, int WN, bool KN, int NST = STAGES>
__device__ void gemm_body(const bf16* __restrict__ A, int lda, const bf16* __restrict__ W, int ldw,
                          const bf16* __restrict__ bias, void* __restrict__ out, int ldc, int M,
                          int N, int K, int k_chunk, float* __restrict__ work,
                          const int* __restrict__ w_idx) {
    constexpr int MI = BM / WM / 16;
    constexpr int NI = BN / WN / 8;
    constexpr int LDS = BK + PAD;
    constexpr int LDB = KN ? BN + PAD : BK + PAD;  // Bs row pitch
    constexpr int BROWS = KN ? BK : BN;
    constexpr int NT = WM * WN * 32;  // threads
    static_assert(NI % 2 == 0, "B fragments load two n8 tiles at a time");
    extern __shared__ __align__(16) unsigned char gemm_smem[];
    bf16* As = reinterpret_cast<bf16*>(gemm_smem);  // [NST][BM][LDS]
    bf16* Bs = As + NST * BM * LDS;  // [NST][BN][LDS], or [NST][BK][BN + PAD] for KN
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp / WN, wn = warp % WN;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const bool split = work != nullptr;
    const int k_begin = split ? blockIdx.z * k_chunk : 0;
    const int k_end = split ? min(K, k_begin + k_chunk) : K;
    const int KT = (k_end - k_begin + BK - 1) / BK;
    const int tiles_per_chunk = k_chunk / BK;

    float acc[MI][NI][4], total[MI][NI][4];
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < NI; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = total[i][j][e] = 0.f;

    auto load = [&](int stage, int kt) {
        if (kt < KT) {
            constexpr int CPR = BK / 8;  // 16-byte chunks per A row
            for (int c = tid; c < BM * CPR; c += NT) {
                int r = c / CPR, kc = (c % CPR) * 8;
                int k = k_begin + kt * BK + kc;
                int gm = m0 + r;
                bool v = gm < M && k < k_end;
                cp_async16(As + (stage * BM + r) * LDS + kc, v ? A + (size_t)gm * lda + k : A, v);
            }
            if (!KN) {
                for (int c = tid; c < BN * CPR; c += NT) {
                    int r = c / CPR, kc = (c % CPR) * 8;
                    int k = k_begin + kt * BK + kc;
                    int gn = n0 + r;
                    bool v = gn < N && k < k_end;
                    size_t wr = v ? (size_t)(w_idx ? w_idx[gn] : gn) : 0;
                    cp_async16(Bs + (stage * BROWS + r) * LDB + kc, v ? W + wr * ldw + k : W, v);
                }
            } else {
                constexpr int CPN = BN / 8;  // 16-byte chunks per k row of the tile
                for (int c = tid; c < BK * CPN; c += NT) {
                    int r = c / CPN, nc = (c % CPN) * 8;
                    int k = k_begin + kt * BK + r;
                    int gn = n0 + nc;
                    bool v = k < k_end && gn < N;
                    size_t wr = v ? (size_t)(w_idx ? w_idx[k] : k) : 0;
                    cp_async16(Bs + (stage * BROWS + r) * LDB + nc, v ? W + wr * ldw + gn : W, v);
                }
            }
        }
        cp_async_commit();  // always: keeps the group count uniform
    };

#pragma unroll
    for (int st = 0; st < NST - 1; st++) load(st, st);
    for (int kt = 0; kt < KT; kt++) {
        const int st = kt % NST;
        if (!split && kt > 0 && kt % tiles_per_chunk == 0) {  // chunk boundary: fold in order
#pragma unroll
            for (int i = 0; i < MI; i++)
#pragma unroll
                for (int j = 0; j < NI; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        total[i][j][e] += acc[i][j][e];
                        acc[i][j][e] = 0.f;
                    }
        }
        cp_async_wait<NST - 2>();
        __syncthreads();  // stage st is complete, and everyone is done with stage kt - 1
        load((kt + NST - 1) % NST, kt + NST - 1);
        const bf16* as = As + st * BM * LDS;
        const bf16* bs = Bs + st * BROWS * LDB;
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            uint32_t a[MI][4], b[NI][2];
#pragma unroll
            for (int mi = 0; mi < MI; mi++) {
                int row = wm * (BM / WM) + mi * 16 + (lane & 15);
                int col = kk + (lane >> 4) * 8;
                ldsm_x4(a[mi], as + row * LDS + col);
            }
#pragma unroll
            for (int nj = 0; nj < NI / 2; nj++) {
                if (!KN) {
                    int row = wn * (BN / WN) + nj * 16 + (lane & 7) + (lane >> 4) * 8;
                    int col = kk + ((lane >> 3) & 1) * 8;
                    ldmatrix_x4(b[nj * 2][0], b[nj * 2][1], b[nj * 2 + 1][0], b[nj * 2 + 1][1],
                                bs + row * LDB + col);
                } else {  // [k][n] tile: transposing loads give the column-major B fragments
                    int krow = kk + (lane & 7) + ((lane >> 3) & 1) * 8;
                    int ncol = wn * (BN / WN) + nj * 16 + (lane >> 4) * 8;
                    ldmatrix_x4<true>(b[nj * 2][0], b[nj * 2][1], b[nj * 2 + 1][0],
                                      b[nj * 2 + 1][1], bs + krow * LDB + ncol);
                }
            }
#pragma unroll
            for (int mi = 0; mi < MI; mi++)
#pragma unroll
                for (int ni = 0; ni < NI; ni++) mma_16816(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
        }
    }
    cp_async_wait<0>();
    if (!split) {
#pragma unroll
        for (int i = 0; i < MI; i++)
#pragma unroll
            for (int j = 0; j < NI; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) acc[i][j][e] += total[i][j][e];
    }

#pragma unroll
    for (int mi = 0; mi < MI; mi++) {
#pragma unroll
        for (int ni = 0; ni < NI; ni++) {
            int col = n0 + wn * (BN / WN) + ni * 8 + (lane & 3) * 2;
            if (col >= N) continue;  // N even, so col + 1 < N too
#pragma unroll
            for (int half = 0; half < 2; half++) {
                int row = m0 + wm * (BM / WM) + mi * 16 + (lane >> 2) + half * 8;
                if (row >= M) continue;
                float v0 = acc[mi][ni][half * 2];
                float v1 = acc[mi][ni][half * 2 + 1];
                if (split) {
                    float* w = work + ((size_t)blockIdx.z * M + row) * N + col;
                    w[0] = v0;
                    w[1] = v1;
                } else {
                    float b0, b1;
                    bias_pair(bias, KN ? nullptr : w_idx, col, b0, b1);
                    epilogue<EPI>(out, ldc, row, col, v0, v1, b0, b1);
                }
            }
        }
    }
}

// Sums the split-K partials work[z][M][N] over z in order, then applies the epilogue.
// Grid: ceil(M * N / 2 / 256), block 256: one thread per adjacent column pair.
template <int EPI>
__device__ void gemm_reduce(const float* __restrict__ work, int splits,
                            const bf16* __restrict__ bias, void* __restrict__ out, int ldc, int M,
                            int N, const int* __restrict__ bias_idx) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    const size_t first = (size_t)blockIdx.x * blockDim.x;
    const size_t i = first + threadIdx.x;
    const size_t pairs = (size_t)M * N / 2;
    if (i < pairs) {
        int row = (int)(2 * i / N), col = (int)(2 * i % N);
        // The bias (through bias_idx, Polar's selection, written launches earlier) before the
        // wait: its two dependent loads overlap the GEMM's end instead of following the partials.
        float b0, b1;
        bias_pair(bias, bias_idx, col, b0, b1);
        pdl_wait();  // (launched as the GEMM's dependent) its partials
        float v0 = 0.f, v1 = 0.f;
#pragma unroll 4
        for (int z = 0; z < splits; z++) {  // in order; unrolled so that loads overlap
            const float2 w =
                *reinterpret_cast<const float2*>(work + ((size_t)z * M + row) * N + col);
            v0 += w.x;
            v1 += w.y;
        }
        epilogue<EPI>(out, ldc, row, col, v0, v1, b0, b1);
    }
    // The block's partials are read: drop them from L2 (each split's span is contiguous).
    if (!l2_discard_worth((size_t)splits * M * N * sizeof(float))) return;
    __syncthreads();
    const size_t span = (min(pairs, first + blockDim.x) - first) * 2 * sizeof(float);
    for (int z = 0; z < splits; z++)
        l2_discard_span(work + (size_t)z * M * N + 2 * first, span, threadIdx.x, blockDim.x);
}

#define GEMM_ARGS                                                                               \
    const bf16 *A, int lda, const bf16 *W, int ldw, const bf16 *bias, void *out, int ldc, int M, \
        int N, int K, int k_chunk, float *work, const int *w_idx
#define GEMM_PASS A, lda, W, ldw, bias, out, ldc, M, N, K, k_chunk, work, w_idx

#define GEMM_ENTRY(name, epi)                                                                   \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS) name(GEMM_ARGS) {                \
        gemm_body<epi, 64, 64, 32, 2, 2, false>(GEMM_PASS);                                     \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS) name##_m16(GEMM_ARGS) {          \
        gemm_body<epi, 16, 64, 64, 1, 4, false>(GEMM_PASS);                                     \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(2 * GEMM_THREADS) name##_m64(GEMM_ARGS) {      \
        gemm_body<epi, 64, 128, 64, 2, 4, false, 3>(GEMM_PASS);                                 \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS) name##_kn(GEMM_ARGS) {           \
        gemm_body<epi, 64, 64, 32, 2, 2, true>(GEMM_PASS);                                      \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(2 * GEMM_THREADS) name##_kn_m64(GEMM_ARGS) {   \
        gemm_body<epi, 64, 128, 64, 2, 4, true, 3>(GEMM_PASS);                                  \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS) name##_kn_m16(GEMM_ARGS) {       \
        gemm_body<epi, 16, 64, 64, 1, 4, true>(GEMM_PASS);                                      \
    }                                                                                           \
    extern "C" __global__ void name##_reduce(const float* work, int splits, const bf16* bias,  \
                                             void* out, int ldc, int M, int N,                  \
                                             const int* bias_idx) {                             \
        gemm_reduce<epi>(work, splits, bias, out, ldc, M, N, bias_idx);                         \
    }

GEMM_ENTRY(gemm_store_bf16, STORE_BF16)
GEMM_ENTRY(gemm_relu_bf16, RELU_BF16)
GEMM_ENTRY(gemm_accum_f32, ACCUM_F32)
GEMM_ENTRY(gemm_store_f32, STORE_F32)
GEMM_ENTRY(gemm_swiglu_bf16, SWIGLU_BF16)

// ---------------------------------------------------------------------------------------------
// Large-M (prefill) tiles: gemm_<epi>_l. Same m16n8k16 steps in increasing k as gemm_<epi>, the
// same K chunks and the same fold order, so a row gets the same bits from every tile shape.
// A 64 x 64 warp tile holds 128 fp32 accumulators per thread, which leaves no registers for the
// chunk total of the non-split path: with TOT_SMEM it lives in shared memory (float4
// [MI * NI][THREADS], each thread its own column, so the fold needs no barrier), read and
// written once per chunk (every k_chunk / BK K steps). The fold is bitwise the register
// version's: total = total + acc per chunk (total starting at +0), and the result acc + total.
// Shared memory holds NST stages of A and W tiles, XOR-swizzled (SWZ: 16-byte chunk c of row r
// stored at c ^ (r & 7) for 128-byte rows, c ^ ((r >> 1) & 3) for 64-byte rows: conflict-free
// ldmatrix and cp.async) or padded, then the total:
//   NST * (BM + BN) * (SWZ ? BK : BK + 8) * 2 + (TOT_SMEM ? BM * BN * 4 : 0) bytes.
// Copies read only in-bounds addresses (rows past M or N are clamped to row 0 and zero-filled).
template <int EPI, int BM, int BN, int BK, int WM, int WN, int NST, bool TOT_SMEM, bool SWZ>
__device__ __forceinline__ void gemm_body_l(const bf16* __restrict__ A, int lda,
                                            const bf16* __restrict__ W, int ldw,
                                            const bf16* __restrict__ bias,
                                            void* __restrict__ out, int ldc, int M, int N, int K,
                                            int k_chunk, float* __restrict__ work,
                                            const int* __restrict__ w_idx) {
    constexpr int THREADS = WM * WN * 32;
    constexpr int WTM = BM / WM, WTN = BN / WN;
    constexpr int MI = WTM / 16;
    constexpr int NI = WTN / 8;
    constexpr int LDS = SWZ ? BK : BK + PAD;  // row pitch (elements) of both tiles
    constexpr int CPR = BK / 8;                // 16-byte chunks per row
    constexpr int A_IT = BM * CPR / THREADS;
    constexpr int B_IT = BN * CPR / THREADS;
    constexpr int KS = BK / 16;
    constexpr int A_STAGE = BM * LDS * 2, B_STAGE = BN * LDS * 2;  // bytes
    static_assert(!SWZ || BK == 32 || BK == 64, "the swizzle is for 64- or 128-byte rows");
    static_assert(THREADS % CPR == 0 && A_IT * THREADS == BM * CPR && B_IT * THREADS == BN * CPR,
                  "whole 16-byte chunks per thread");
    static_assert((THREADS / CPR) % 8 == 0, "a thread's rows share one swizzle phase");
    static_assert(NI % 2 == 0, "B fragments load two n8 tiles at a time");
    extern __shared__ __align__(128) unsigned char gemm_smem_l[];
    const uint32_t sA = smem_addr(gemm_smem_l);  // [NST][BM][LDS] bf16
    const uint32_t sB = sA + NST * A_STAGE;      // [NST][BN][LDS] bf16
    float4* tot = reinterpret_cast<float4*>(gemm_smem_l + NST * (A_STAGE + B_STAGE));
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp / WN, wn = warp % WN;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const bool split = work != nullptr;
    const int k_begin = split ? blockIdx.z * k_chunk : 0;
    const int k_end = split ? min(K, k_begin + k_chunk) : K;
    const int KT = (k_end - k_begin + BK - 1) / BK;
    const int tiles_per_chunk = k_chunk / BK;
    // 64-wide tiles skip the k16 steps that 32-wide ones (gemm_<epi>) never run.
    const int k_lim = k_begin + (k_end - k_begin + 31) / 32 * 32;
    // Byte offset of 16-byte chunk c of row r in a stage.
    auto soff = [](int r, int c) {
        return (r * LDS + (SWZ ? (c ^ (BK == 64 ? (r & 7) : ((r >> 1) & 3))) : c) * 8) * 2;
    };

    float acc[MI][NI][4];
    float total[TOT_SMEM ? 1 : MI][TOT_SMEM ? 1 : NI][4];
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < NI; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;
    if (TOT_SMEM) {
        if (!split) {
#pragma unroll
            for (int i = 0; i < MI * NI; i++)
                tot[i * THREADS + tid] = make_float4(0.f, 0.f, 0.f, 0.f);
        }
    } else {
#pragma unroll
        for (int i = 0; i < (TOT_SMEM ? 1 : MI); i++)
#pragma unroll
            for (int j = 0; j < (TOT_SMEM ? 1 : NI); j++)
#pragma unroll
                for (int e = 0; e < 4; e++) total[i][j][e] = 0.f;
    }

    // Each thread copies chunk column kc of rows r0 + i * THREADS / CPR every K step.
    const int kc = tid % CPR, r0 = tid / CPR;
    const uint32_t a_dst = sA + soff(r0, kc), b_dst = sB + soff(r0, kc);
    const bf16* a_src[A_IT];
    const bf16* b_src[B_IT];
    int a_sz[A_IT], b_sz[B_IT];  // 16, or 0 for rows past M / N (zero-filled)
    gemm_sources<THREADS / CPR>(A, lda, W, ldw, w_idx, M, N, m0 + r0, n0 + r0, k_begin + kc * 8,
                                a_src, a_sz, b_src, b_sz);
    auto load = [&](int stage, int kt) {
        if (kt < KT) {
            const int kofs = kt * BK;
            const bool kv = k_begin + kofs + kc * 8 < k_end;
            const int ofs = kv ? kofs : 0;  // past K: zero-fill from an in-bounds address
#pragma unroll
            for (int i = 0; i < A_IT; i++)
                cp_async16_sz(a_dst + stage * A_STAGE + i * (THREADS / CPR) * LDS * 2,
                              a_src[i] + ofs, kv ? a_sz[i] : 0);
#pragma unroll
            for (int i = 0; i < B_IT; i++)
                cp_async16_sz(b_dst + stage * B_STAGE + i * (THREADS / CPR) * LDS * 2,
                              b_src[i] + ofs, kv ? b_sz[i] : 0);
        }
        cp_async_commit();  // always: keeps the group count uniform
    };

    // ldmatrix addresses of this lane for each k16 step (fragment rows start at multiples of
    // 16, so the swizzle depends on the lane's part only and mi / nj add constants).
    uint32_t a_off[KS], b_off[KS];
    {
        const int a_row = wm * WTM + (lane & 15), a_chk = lane >> 4;
        const int b_row = wn * WTN + (lane & 7) + (lane >> 4) * 8, b_chk = (lane >> 3) & 1;
#pragma unroll
        for (int ks = 0; ks < KS; ks++) {
            a_off[ks] = sA + soff(a_row, ks * 2 + a_chk);
            b_off[ks] = sB + soff(b_row, ks * 2 + b_chk);
        }
    }
    uint32_t a[MI][4], b[NI][2];
    auto load_frags = [&](int stage, int ks) {
#pragma unroll
        for (int mi = 0; mi < MI; mi++)
            ldsm_x4_at(a[mi], a_off[ks] + stage * A_STAGE + mi * 16 * LDS * 2);
#pragma unroll
        for (int nj = 0; nj < NI / 2; nj++) {
            uint32_t r[4];
            ldsm_x4_at(r, b_off[ks] + stage * B_STAGE + nj * 16 * LDS * 2);
            b[nj * 2][0] = r[0];
            b[nj * 2][1] = r[1];
            b[nj * 2 + 1][0] = r[2];
            b[nj * 2 + 1][1] = r[3];
        }
    };
    auto mmas = [&]() {
#pragma unroll
        for (int mi = 0; mi < MI; mi++)
#pragma unroll
            for (int ni = 0; ni < NI; ni++) mma_16816(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
    };
    auto fold = [&]() {  // chunk boundary: total += acc, acc = 0
        if (TOT_SMEM) {
#pragma unroll
            for (int i = 0; i < MI; i++)
#pragma unroll
                for (int j = 0; j < NI; j++) {
                    float4& t = tot[(i * NI + j) * THREADS + tid];
                    float4 o = t;
                    o.x += acc[i][j][0];
                    o.y += acc[i][j][1];
                    o.z += acc[i][j][2];
                    o.w += acc[i][j][3];
                    t = o;
#pragma unroll
                    for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;
                }
        } else {
#pragma unroll
            for (int i = 0; i < (TOT_SMEM ? 1 : MI); i++)
#pragma unroll
                for (int j = 0; j < (TOT_SMEM ? 1 : NI); j++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        total[i][j][e] += acc[i][j][e];
                        acc[i][j][e] = 0.f;
                    }
        }
    };
    // Tiles left before the next chunk boundary (never reached when split: one chunk a block).
    int left = split ? KT + 1 : tiles_per_chunk;

    // Per tile: wait for it, barrier (everyone is also done with the stage refilled next),
    // refill, then its k16 steps (fragments loaded right before their MMAs). On H100 this beat
    // double-buffered fragments, 64-deep tiles in two stages and 128 x 256 tiles of 8 warps.
#pragma unroll
    for (int s = 0; s < NST - 1; s++) load(s, s);
    int rd = 0, wr = NST - 1;
    for (int kt = 0; kt < KT; kt++) {
        if (left == 0) {
            fold();
            left = tiles_per_chunk;
        }
        left--;
        cp_async_wait<NST - 2>();
        __syncthreads();
        load(wr, kt + NST - 1);
        wr = wr == NST - 1 ? 0 : wr + 1;
#pragma unroll
        for (int ks = 0; ks < KS; ks++) {
            if (ks < 2 || k_begin + kt * BK + ks * 16 < k_lim) {
                load_frags(rd, ks);
                mmas();
            }
        }
        rd = rd == NST - 1 ? 0 : rd + 1;
    }
    cp_async_wait<0>();
    if (!split) {
        if (TOT_SMEM) {
#pragma unroll
            for (int i = 0; i < MI; i++)
#pragma unroll
                for (int j = 0; j < NI; j++) {
                    float4 t = tot[(i * NI + j) * THREADS + tid];
                    acc[i][j][0] += t.x;
                    acc[i][j][1] += t.y;
                    acc[i][j][2] += t.z;
                    acc[i][j][3] += t.w;
                }
        } else {
#pragma unroll
            for (int i = 0; i < (TOT_SMEM ? 1 : MI); i++)
#pragma unroll
                for (int j = 0; j < (TOT_SMEM ? 1 : NI); j++)
#pragma unroll
                    for (int e = 0; e < 4; e++) acc[i][j][e] += total[i][j][e];
        }
    }

#pragma unroll
    for (int mi = 0; mi < MI; mi++) {
#pragma unroll
        for (int ni = 0; ni < NI; ni++) {
            int col = n0 + wn * WTN + ni * 8 + (lane & 3) * 2;
            if (col >= N) continue;  // N even, so col + 1 < N too
            float b0 = 0.f, b1 = 0.f;
            if (!split) bias_pair(bias, w_idx, col, b0, b1);
#pragma unroll
            for (int half = 0; half < 2; half++) {
                int row = m0 + wm * WTM + mi * 16 + (lane >> 2) + half * 8;
                if (row >= M) continue;
                float v0 = acc[mi][ni][half * 2];
                float v1 = acc[mi][ni][half * 2 + 1];
                if (split) {
                    float* w = work + ((size_t)blockIdx.z * M + row) * N + col;
                    w[0] = v0;
                    w[1] = v1;
                } else {
                    epilogue<EPI>(out, ldc, row, col, v0, v1, b0, b1);
                }
            }
        }
    }
}

// The large-M configuration: 128 x 128 x 32, 4 warps (2 x 2, 64 x 64 each), 3 stages, two
// blocks per SM (112 KiB of shared memory each: 48 KiB of stages, 64 KiB of chunk totals).
#define GEMM_L_BM 128
#define GEMM_L_BN 128
#define GEMM_L_BK 32
#define GEMM_L_WM 2
#define GEMM_L_WN 2
#define GEMM_L_THREADS (GEMM_L_WM * GEMM_L_WN * 32)
#define GEMM_L_STAGES 3
#define GEMM_L_MIN_BLOCKS 2

#define GEMM_ENTRY_L(name, epi)                                                                  \
    extern "C" __global__ void __launch_bounds__(GEMM_L_THREADS, GEMM_L_MIN_BLOCKS)             \
        name##_l(GEMM_ARGS) {                                                                    \
        gemm_body_l<epi, GEMM_L_BM, GEMM_L_BN, GEMM_L_BK, GEMM_L_WM, GEMM_L_WN, GEMM_L_STAGES,   \
                    true, true>(GEMM_PASS);                                                      \
    }

GEMM_ENTRY_L(gemm_store_bf16, STORE_BF16)
GEMM_ENTRY_L(gemm_relu_bf16, RELU_BF16)
GEMM_ENTRY_L(gemm_accum_f32, ACCUM_F32)
GEMM_ENTRY_L(gemm_store_f32, STORE_F32)
GEMM_ENTRY_L(gemm_swiglu_bf16, SWIGLU_BF16)
