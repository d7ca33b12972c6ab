// Hopper-only (sm_90a) large-M GEMM: the wgmma form of gemm.cu's gemm_<epi>_l, same arguments,
// same epilogues, same bits. Built into its own fatbin for compute_90a only (kernels/build.sh)
// and used by GemmKernel only on compute capability 9.0; gemm.cu's mma.sync kernels are the
// fallback everywhere else.
//
// Bits: each wgmma.m64n128k16 step computes, for every output element, the same 16-term bf16
// product sum plus accumulator as one mma.sync m16n8k16 step; measured identical on H100 over
// random inputs (single steps with random accumulators and 32-step chains, exponent spreads up
// to +-12). Steps run in increasing k from zeroed accumulators (scale-d = 1, never 0) inside
// each K chunk of k_chunk, chunk sums fold in order into a register total exactly as in
// gemm.cu, and the k16 steps go exactly as far as gemm.cu's 32-wide tiles do (to K rounded up
// to 32, zero-padded), so a row gets the same bits as from gemm_<epi> or gemm_<epi>_l.
//
// Tile 128 x 128 x 64 (gemm_<epi>_wg), 256 threads = 2 warpgroups (64 rows x 128 columns each, 64 fp32
// accumulators + 64 chunk totals per thread). NST-stage cp.async pipeline into K-major tiles
// with the 128-byte swizzle (16-byte chunk c of row r at c ^ (r & 7), 1024-byte aligned
// stages), read by wgmma through shared-memory descriptors. Prefetch distance NST - 2: a stage
// is refilled two tiles after its wgmmas were issued, once every warpgroup has waited for them
// (wgmma.wait_group 1) and passed the next tile's barrier.
// Shared memory: NST * 256 * 128 + 1024 bytes (alignment slack).
// Preconditions as gemm.cu (K, lda, ldw multiples of 8, 16-byte aligned A and W, N even,
// k_chunk a multiple of 64).
#include "gemm_common.cuh"

namespace sm90a {

// Shared-memory matrix descriptor: K-major, 128-byte swizzle, 8-row groups 1024 bytes apart.
POLAR_DEVICE uint64_t desc_sw128(uint32_t saddr) {
    uint64_t d = (uint64_t)((saddr & 0x3FFFF) >> 4);
    d |= (uint64_t)1 << 16;            // leading byte offset: unused for swizzled K-major
    d |= (uint64_t)(1024 >> 4) << 32;  // stride byte offset: 8 rows x 128 bytes
    d |= (uint64_t)1 << 62;            // 128-byte swizzle
    return d;
}

// Shared-memory matrix descriptor of an MN-major (N contiguous) B operand, 128-byte swizzle:
// 64-column atoms of 8 k-rows x 128 bytes (16-byte chunk c of k-row r at c ^ (r & 7)); k-row
// groups of 8 `sbo` bytes apart, 64-column halves `lbo` bytes apart.
POLAR_DEVICE uint64_t desc_mn_sw128(uint32_t saddr, uint32_t lbo, uint32_t sbo) {
    uint64_t d = (uint64_t)((saddr & 0x3FFFF) >> 4);
    d |= (uint64_t)((lbo >> 4) & 0x3FFF) << 16;
    d |= (uint64_t)((sbo >> 4) & 0x3FFF) << 32;
    d |= (uint64_t)1 << 62;
    return d;
}

// d[64] += A (64 x 16, descriptor) * B (16 x 128, descriptor); d fragment as mma.sync's per
// warp: n8 block j in d[4j .. 4j + 3]. TB: B is MN-major (the [K, N] weight layout).
template <bool TB = false>
POLAR_DEVICE void wgmma_m64n128k16(float* d, uint64_t da, uint64_t db) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." POLAR_MMA_AB " {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "%64, %65, p, 1, 1, 0, %66;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]),
          "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
          "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]),
          "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
          "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),
          "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]),
          "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]),
          "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),
          "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "n"(TB ? 1 : 0));
#endif
}

POLAR_DEVICE void wgmma_fence() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
POLAR_DEVICE void wgmma_commit() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
// Pins the accumulators at this point of the program (no read or write of them moves across):
// after a wait, before their first use; after a change, before the next wgmma.
POLAR_DEVICE void fence_acc(float* d) {
#pragma unroll
    for (int i = 0; i < 64; i++) asm volatile("" : "+f"(d[i])::"memory");
}

POLAR_DEVICE void proxy_fence() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
template <int N>
POLAR_DEVICE void wgmma_wait() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}

// Chunk boundary without split-K (the chunk folds every k_chunk): total += acc, acc = 0, once
// the wgmmas in flight are complete.
POLAR_DEVICE void fold_chunk(float (&acc)[64], float (&total)[64]) {
    wgmma_wait<0>();
    fence_acc(acc);
#pragma unroll
    for (int i = 0; i < 64; i++) {
        total[i] += acc[i];
        acc[i] = 0.f;
    }
    fence_acc(acc);
}

// Warp w's rows m0 + 16 w + lane / 4 (+ 8) of a 64 x 128 accumulator tile at columns n0 + ...
// below n_lim (<= N): the split's partials to work[z][M][N], or (work == null) bias (through
// w_idx when given) and the epilogue.
template <int EPI>
POLAR_DEVICE void store_tile(const float (&acc)[64], void* __restrict__ out, int ldc, int M,
                             int N, int n_lim, int m0, int n0, const bf16* __restrict__ bias,
                             const int* __restrict__ w_idx, float* __restrict__ work, int z) {
    const int lane = threadIdx.x & 31, warp = (threadIdx.x >> 5) & 3;
    const bool split = work != nullptr;
    // The bias of the thread's 32 columns (through w_idx for gathered rows), every load issued
    // before the first is used: read column by column (behind each column's bounds branch)
    // they were 16 dependent round trips at the end of every tile (32 with w_idx: ~10 us of
    // opt-6.7b B=64's fc1 row gather). Columns past n_lim read entry 0 and are not stored.
    float bv[16][2];
    if (!split && bias) {
        int bi[16][2];
#pragma unroll
        for (int nb = 0; nb < 16; nb++) {
            const int col = n0 + nb * 8 + (lane & 3) * 2;
            const int c = col < n_lim ? col : 0;
            bi[nb][0] = w_idx ? __ldg(w_idx + c) : c;
            bi[nb][1] = w_idx ? __ldg(w_idx + c + (col < n_lim)) : c + (col < n_lim);
        }
#pragma unroll
        for (int nb = 0; nb < 16; nb++) {
            bv[nb][0] = bf2f(bias[bi[nb][0]]);
            bv[nb][1] = bf2f(bias[bi[nb][1]]);
        }
    } else {
#pragma unroll
        for (int nb = 0; nb < 16; nb++) bv[nb][0] = bv[nb][1] = 0.f;
    }
#pragma unroll
    for (int nb = 0; nb < 16; nb++) {
        const int col = n0 + nb * 8 + (lane & 3) * 2;
        if (col >= n_lim) continue;  // n_lim even, so col + 1 < n_lim too
        const float b0 = bv[nb][0], b1 = bv[nb][1];
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int row = m0 + warp * 16 + (lane >> 2) + half * 8;
            if (row >= M) continue;
            const float v0 = acc[nb * 4 + half * 2], v1 = acc[nb * 4 + half * 2 + 1];
            if (split) {
                float* w = work + ((size_t)z * M + row) * N + col;
                w[0] = v0;
                w[1] = v1;
            } else {
                epilogue<EPI>(out, ldc, row, col, v0, v1, b0, b1);
            }
        }
    }
}

// BM = 128 (2 warpgroups, prefill) or 64 (1 warpgroup: decode, M <= 64). ALL_STEPS: every k16
// step of each 64-deep tile, as gemm.cu's 64-deep decode tiles (_m16, _m64) do; otherwise as
// far as its 32-deep tiles go. KN: W is stored [K, N] (N contiguous, N % 8 == 0), k-row j of
// the product being W row w_idx[j] (w_idx null: row j), as gemm.cu's _kn tiles; the B tile is
// then MN-major in shared memory (two 64-column halves of 64 k-rows x 128 bytes, 8 KiB apart).
template <int EPI, int NST, int BM = 128, bool ALL_STEPS = false, bool KN = false>
__device__ __forceinline__ void gemm_body_wg(const bf16* __restrict__ A, int lda,
                                             const bf16* __restrict__ W, int ldw,
                                             const bf16* __restrict__ bias,
                                             void* __restrict__ out, int ldc, int M, int N, int K,
                                             int k_chunk, float* __restrict__ work,
                                             const int* __restrict__ w_idx) {
    constexpr int BN = 128, BK = 64, THREADS = BM * 2, CPR = BK / 8;
    constexpr int A_IT = BM * CPR / THREADS, B_IT = BN * CPR / THREADS;
    constexpr int A_STAGE = BM * BK * 2, B_STAGE = BN * BK * 2;  // bytes
    static_assert(NST >= 3, "prefetch distance NST - 2");
    extern __shared__ __align__(128) unsigned char gemm_smem_wg[];
    const uint32_t sA = (smem_addr(gemm_smem_wg) + 1023) & ~1023u;  // [NST][BM][BK]
    const uint32_t sB = sA + NST * A_STAGE;                          // [NST][BN][BK]
    const int tid = threadIdx.x, warp = tid >> 5, wg = warp >> 2;
    // Columns per block: 128, or for the decode tile on [N, K] weights as few as the grid
    // allows (gridDim.x blocks of a multiple of 8 columns <= 128), so that a launcher may
    // spread N over more blocks than 128-column tiles (opt-6.7b B=64's fc1 row gather: 80
    // tiles of 128 left 52 of 132 SMs idle; 127 of 80). The wgmma still computes all 128
    // columns of the B tile (rows past the block's columns are zero-filled and not stored):
    // each column's k16 steps are the same, so its bits do not depend on the tiling.
    const int bn = BM == 64 && !KN ? min(BN, ((N + (int)gridDim.x - 1) / (int)gridDim.x + 7) & ~7)
                                    : BN;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * bn;
    const int n_lim = min(N, n0 + bn);
    const bool split = work != nullptr;
    const int k_begin = split ? blockIdx.z * k_chunk : 0;
    const int k_end = split ? min(K, k_begin + k_chunk) : K;
    const int KT = (k_end - k_begin + BK - 1) / BK;
    const int tiles_per_chunk = k_chunk / BK;
    const int k_lim = k_begin + (k_end - k_begin + 31) / 32 * 32;  // gemm.cu's last k16 step
    auto soff = [](int r, int c) { return r * 128 + (c ^ (r & 7)) * 16; };

    float acc[64], total[64];
#pragma unroll
    for (int i = 0; i < 64; i++) acc[i] = total[i] = 0.f;
    fence_acc(acc);

    // Each thread copies chunk column kc of rows r0 + 32 i; rows past M / N are clamped to row
    // 0 and zero-filled, K past the end zero-filled from an in-bounds address.
    const int kc = tid % CPR, r0 = tid / CPR;
    const uint32_t a_dst = sA + soff(r0, kc), b_dst = sB + soff(r0, kc);
    const bf16* a_src[A_IT];
    const bf16* b_src[B_IT];
    int a_sz[A_IT], b_sz[B_IT];
    gemm_sources<THREADS / CPR>(A, lda, W, ldw, KN ? nullptr : w_idx, M, KN ? 0 : n_lim, m0 + r0,
                                n0 + r0, k_begin + kc * 8, a_src, a_sz, b_src, b_sz);
    // KN: thread copies 16-byte column chunk kn_c (of 16 per 128-column k-row) of k-rows
    // kn_r + 8 i; columns past N zero-filled.
    const int kn_c = tid & 15, kn_r = tid >> 4;
    const int kn_col = n0 + kn_c * 8;
    const int kn_sz = kn_col < N ? 16 : 0;
    const bf16* kn_src = W + (kn_col < N ? kn_col : 0);
    const uint32_t kn_dst = sB + (kn_c >> 3) * 8192 + kn_r * 128 + (((kn_c & 7) ^ (kn_r & 7)) * 16);
    // KN with a row map: the block's first KN_TAB entries of w_idx, read once into shared
    // memory, so that issuing a stage's copies never waits on a global index load. 4096 covers
    // opt-6.7b's fc2 chunks (K <= 0.8 x 16384 in 4 chunks: <= 3328 rows); rows past the table
    // load their index inline (correct, slower: B=64's 2560-row chunks past a 2048-entry table
    // took the fc2 gather from 60 to 78 us on the H100, ncu).
    // Decode tiles (BM = 64) read each weight once: evict-first in L2 (common.cuh); the
    // prefill tile's weights are re-read by every row tile and keep the normal policy.
    const uint64_t w_policy = BM == 64 ? l2_evict_first() : 0;
    constexpr int KN_TAB = KN ? 4096 : 1;
    __shared__ int kn_tab[KN_TAB];
    if (KN && w_idx) {
        const int n_tab = min(KN_TAB, k_end - k_begin);
        for (int i = tid; i < n_tab; i += THREADS) kn_tab[i] = __ldg(w_idx + k_begin + i);
        __syncthreads();
    }
    auto load_a = [&](int stage, int kt) {
        if (kt < KT) {
            const int kofs = kt * BK;
            const bool kv = k_begin + kofs + kc * 8 < k_end;
            const int ofs = kv ? kofs : 0;
#pragma unroll
            for (int i = 0; i < A_IT; i++)
                cp_async16_sz(a_dst + stage * A_STAGE + i * (THREADS / CPR) * 128, a_src[i] + ofs,
                              kv ? a_sz[i] : 0);
        }
    };
    auto load_w = [&](int stage, int kt) {
        if (KN) {
            if (kt < KT) {
                const int kb = k_begin + kt * BK + kn_r;
                // Every row index of the stage first, then the copies: a table read issued
                // behind a copy waits for the copy to leave the load/store queue.
                int rows[BK / 8];
#pragma unroll
                for (int i = 0; i < BK / 8; i++) {
                    const int kk = kb + i * 8, local = kk - k_begin;
                    rows[i] = kk >= k_end ? 0
                              : !w_idx ? kk
                              : local < KN_TAB ? kn_tab[local] : __ldg(w_idx + kk);
                }
#pragma unroll
                for (int i = 0; i < BK / 8; i++)
                    cp_async16_sz_hint(kn_dst + stage * B_STAGE + i * 1024,
                                       kn_src + (size_t)rows[i] * ldw,
                                       kb + i * 8 < k_end ? kn_sz : 0, w_policy);
            }
            return;
        }
        if (kt < KT) {
            const int kofs = kt * BK;
            const bool kv = k_begin + kofs + kc * 8 < k_end;
            const int ofs = kv ? kofs : 0;
#pragma unroll
            for (int i = 0; i < B_IT; i++) {
                const uint32_t d = b_dst + stage * B_STAGE + i * (THREADS / CPR) * 128;
                if (BM == 64)
                    cp_async16_sz_l2_256_hint(d, b_src[i] + ofs, kv ? b_sz[i] : 0, w_policy);
                else
                    cp_async16_sz_l2_256(d, b_src[i] + ofs, kv ? b_sz[i] : 0);
            }
        }
    };
    auto load = [&](int stage, int kt) {
        load_w(stage, kt);  // (KN: its table reads ahead of A's copies)
        load_a(stage, kt);
        cp_async_commit();  // always: keeps the group count uniform
    };

    int left = split ? KT + 1 : tiles_per_chunk;  // tiles before the next chunk boundary
    // Weights first: they do not depend on the preceding kernel, so under programmatic
    // dependent launch their first stages stream in while it finishes; then wait for it and
    // load the activations (and everything else it may have written: only the weights, their
    // w_idx row map and the addresses are touched before pdl_wait; w_idx, Polar's MLP selection,
    // is written several launches earlier, by the router ahead of the q/k/v projection). Group s holds A of stage s (group 0 also every prologue W stage),
    // so "group s complete" still means "stage s complete".
#pragma unroll
    for (int s = 0; s < NST - 2; s++) load_w(s, s);
    pdl_wait();
#pragma unroll
    for (int s = 0; s < NST - 2; s++) {
        load_a(s, s);
        cp_async_commit();
    }
    int rd = 0, wr = NST - 2;
    for (int kt = 0; kt < KT; kt++) {
        if (left == 0) {  // chunk boundary
            fold_chunk(acc, total);
            left = tiles_per_chunk;
        }
        left--;
        cp_async_wait<NST - 3>();
        proxy_fence();  // this thread's landed copies, visible to wgmma (async proxy)
        __syncthreads();
        load(wr, kt + NST - 2);
        wr = wr == NST - 1 ? 0 : wr + 1;
        wgmma_fence();
        const uint32_t a_base = sA + rd * A_STAGE + wg * 64 * 128, b_base = sB + rd * B_STAGE;
        const int k0 = k_begin + kt * BK;
#pragma unroll
        for (int ks = 0; ks < BK / 16; ks++)
            if (ALL_STEPS || ks < 2 || k0 + ks * 16 < k_lim)  // as far as 32-wide tiles go
                if constexpr (KN)
                    wgmma_m64n128k16<true>(acc, desc_sw128(a_base + ks * 32),
                                           desc_mn_sw128(b_base + ks * 2048, 8192, 1024));
                else
                    wgmma_m64n128k16(acc, desc_sw128(a_base + ks * 32),
                                     desc_sw128(b_base + ks * 32));
        wgmma_commit();
        wgmma_wait<1>();
        rd = rd == NST - 1 ? 0 : rd + 1;
    }
    wgmma_wait<0>();
    fence_acc(acc);
    cp_async_wait<0>();
    if (!split) {
#pragma unroll
        for (int i = 0; i < 64; i++) acc[i] += total[i];
    }
    // Warp w (of 8) holds rows 16 w .. 16 w + 15 of the tile.
    store_tile<EPI>(acc, out, ldc, M, N, n_lim, m0 + wg * 64, n0, bias, KN ? nullptr : w_idx, work,
                    blockIdx.z);
}


// ---- TMA decode tile (gemm_<epi>_wgt) ----------------------------------------------------
// The decode tile's 64 x 128 x 64 wgmma steps, fed by the Tensor Memory Accelerator instead of
// per-thread cp.async: a producer warp issues one 2-D bulk tensor copy per operand and stage
// (A: 64 k x 64 rows, W: 64 k x 128 rows, both landing in the 128-byte swizzle that the
// descriptors read; rows past M / N and columns past K arrive as zeros), and the consumer
// warpgroup waits on the stage's transaction barrier. Persistent: gridDim.x <= units, block b
// takes units b, b + gridDim.x, ... (unit u: column tile u % tiles, K split u / tiles), and the
// producer's stage ring runs on across units, so the next unit's weights stream in while the
// consumers finish a unit. Same k16 steps in the same order from the same zeroed accumulators,
// chunk folds as gemm_body_wg: the bits of the _wgd tile. H100 harness (session 6): 2-12% less
// time than _wgd over the decode shapes of llama-2-7b / opt-6.7b / llama-3-8b.

// CUtensorMap (cuda.h): 128 opaque bytes, 64-byte aligned; passed by value as a grid constant.
struct __align__(64) TensorMap {
    unsigned long long opaque[16];
};

POLAR_DEVICE void mbar_init(uint32_t bar, int count) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
#endif
}
// One arrival that also expects `bytes` of asynchronous copies to complete on the barrier.
POLAR_DEVICE void mbar_expect_tx(uint32_t bar, int bytes) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar),
                 "r"(bytes) : "memory");
#endif
}
POLAR_DEVICE void mbar_arrive(uint32_t bar) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
#endif
}
POLAR_DEVICE void mbar_wait(uint32_t bar, int parity) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile(
        "{\n.reg .pred p;\nWAIT_%=:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
        "@!p bra WAIT_%=;\n}\n" ::"r"(bar), "r"(parity) : "memory");
#endif
}
// Box of the 2-D tensor map at (c0 = column, c1 = row) into shared dst; completes on bar.
POLAR_DEVICE void tma_load_2d(uint32_t dst, const TensorMap* map, int c0, int c1, uint32_t bar) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst), "l"(map), "r"(c0), "r"(c1), "r"(bar)
        : "memory");
#endif
}
// tma_load_2d with an L2 cache policy (the plain copy when built without hints).
POLAR_DEVICE void tma_load_2d_hint(uint32_t dst, const TensorMap* map, int c0, int c1,
                                   uint32_t bar, uint64_t policy) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL) && POLAR_L2_HINTS
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
        ".L2::cache_hint [%0], [%1, {%2, %3}], [%4], %5;\n" ::"r"(dst), "l"(map), "r"(c0),
        "r"(c1), "r"(bar), "l"(policy) : "memory");
#else
    tma_load_2d(dst, map, c0, c1, bar);
#endif
}

// tmA: A [M, K] (box 64 x 64 rows), tmW: W [N, K] (box 64 x 128 rows), both 128-byte swizzle.
// work != null: partials of each split to work[z][M][N] (as gemm_body_wg); otherwise bias and
// the epilogue, with the chunk folds every k_chunk.
template <int EPI, int NST>
__device__ __forceinline__ void gemm_body_wgt(const TensorMap* tmA, const TensorMap* tmW,
                                              const bf16* __restrict__ bias,
                                              void* __restrict__ out, int ldc, int M, int N,
                                              int K, int k_chunk, float* __restrict__ work) {
    constexpr int A_STAGE = 64 * 64 * 2, B_STAGE = 128 * 64 * 2, STAGE = A_STAGE + B_STAGE;
    extern __shared__ __align__(128) unsigned char gemm_smem_wgt[];
    __shared__ __align__(8) uint64_t bars[2 * NST];
    const uint32_t base = (smem_addr(gemm_smem_wgt) + 1023) & ~1023u;  // [NST][A | W]
    const uint32_t full = smem_addr(bars), empty = full + 8 * NST;
    pdl_trigger();  // the split-K reduce (a programmatic dependent) may launch now and wait
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const bool split = work != nullptr;
    const int tiles = (N + 127) / 128, S = split ? (K + k_chunk - 1) / k_chunk : 1;
    const int units = tiles * S;
    const int tiles_per_chunk = k_chunk / 64;
    if (tid == 0) {
        for (int s = 0; s < NST; s++) {
            mbar_init(full + 8 * s, 1);   // the producer's expect_tx (plus the copies' bytes)
            mbar_init(empty + 8 * s, 4);  // one arrival per consumer warp
        }
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
    }
    __syncthreads();
    // A unit's columns and K range.
    auto unit = [&](int u, int& n0, int& kb, int& kt_count) {
        n0 = (u % tiles) * 128;
        kb = split ? (u / tiles) * k_chunk : 0;
        const int ke = split ? min(K, kb + k_chunk) : K;
        kt_count = (ke - kb + 63) / 64;
    };
    if (warp == 4) {  // producer
        if (lane != 0) return;
        const uint64_t w_policy = l2_evict_first();  // each weight is read once (common.cuh)
        // Weights first: under programmatic dependent launch the first stages' weights stream
        // in while the kernel before finishes; then wait for it, then the activations.
        int pre = 0;
        for (int u = blockIdx.x; u < units && pre < NST; u += gridDim.x) {
            int n0, kb, kt_count;
            unit(u, n0, kb, kt_count);
            for (int kt = 0; kt < kt_count && pre < NST; kt++, pre++) {
                mbar_expect_tx(full + 8 * pre, STAGE);
                tma_load_2d_hint(base + pre * STAGE + A_STAGE, tmW, kb + kt * 64, n0,
                                 full + 8 * pre, w_policy);
            }
        }
        pdl_wait();
        int it = 0;
        for (int u = blockIdx.x; u < units; u += gridDim.x) {
            int n0, kb, kt_count;
            unit(u, n0, kb, kt_count);
            for (int kt = 0; kt < kt_count; kt++, it++) {
                const int s = it % NST;
                const uint32_t dst = base + s * STAGE;
                if (it >= pre) {
                    mbar_wait(empty + 8 * s, ((it / NST) - 1) & 1);
                    mbar_expect_tx(full + 8 * s, STAGE);
                    tma_load_2d_hint(dst + A_STAGE, tmW, kb + kt * 64, n0, full + 8 * s, w_policy);
                }
                tma_load_2d(dst, tmA, kb + kt * 64, 0, full + 8 * s);
            }
        }
        return;
    }
    pdl_wait();  // the epilogue reads and writes buffers of earlier kernels
    int it = 0;
    for (int u = blockIdx.x; u < units; u += gridDim.x) {
        int n0, kb, kt_count;
        unit(u, n0, kb, kt_count);
        const int z = split ? u / tiles : 0;
        float acc[64], total[64];
#pragma unroll
        for (int i = 0; i < 64; i++) acc[i] = total[i] = 0.f;
        fence_acc(acc);
        int left = split ? kt_count + 1 : tiles_per_chunk;  // tiles before the next chunk fold
        for (int kt = 0; kt < kt_count; kt++, it++) {
            if (left == 0) {  // chunk boundary
                fold_chunk(acc, total);
                left = tiles_per_chunk;
            }
            left--;
            const int s = it % NST;
            mbar_wait(full + 8 * s, (it / NST) & 1);
            wgmma_fence();
            const uint32_t a = base + s * STAGE, b = a + A_STAGE;
#pragma unroll
            for (int ks = 0; ks < 4; ks++)
                wgmma_m64n128k16(acc, desc_sw128(a + ks * 32), desc_sw128(b + ks * 32));
            wgmma_commit();
            wgmma_wait<1>();
            // The previous stage's wgmmas are complete: its buffers may be refilled.
            if (kt > 0 && lane == 0) mbar_arrive(empty + 8 * ((it - 1) % NST));
        }
        wgmma_wait<0>();
        fence_acc(acc);
        if (lane == 0) mbar_arrive(empty + 8 * ((it - 1) % NST));
        if (!split) {
#pragma unroll
            for (int i = 0; i < 64; i++) acc[i] += total[i];
        }
        // Warp w (of 4) holds rows 16 w .. 16 w + 15.
        store_tile<EPI>(acc, out, ldc, M, N, N, 0, n0, bias, nullptr, work, z);
    }
}

}  // namespace sm90a

#define GEMM_WG_STAGES 4
#define GEMM_WG_ARGS                                                                            \
    const bf16 *A, int lda, const bf16 *W, int ldw, const bf16 *bias, void *out, int ldc, int M, \
        int N, int K, int k_chunk, float *work, const int *w_idx
#define GEMM_WG_ENTRY(name, epi)                                                                \
    extern "C" __global__ void __launch_bounds__(256, 1) name##_wg(GEMM_WG_ARGS) {             \
        sm90a::gemm_body_wg<epi, GEMM_WG_STAGES>(A, lda, W, ldw, bias, out, ldc, M, N,         \
                                                        K, k_chunk, work, w_idx);              \
    }

// Decode tile for M <= 64 (gemm_<epi>_wgd): one warpgroup, 64 x 128 x 64, GEMM_WGD_STAGES deep
// (one block per SM streams weights with 7 stages in flight; H100, M = 1..64: 2.1-2.5 TB/s of
// weights against 1.6-2.4 for gemm.cu's _m16 / _m64 tiles), every k16 step of each 64-deep
// tile like those tiles, so the same bits.
#define GEMM_WGD_STAGES 8
#define GEMM_WGD_ENTRY(name, epi)                                                               \
    extern "C" __global__ void __launch_bounds__(128, 1) name##_wgd(GEMM_WG_ARGS) {            \
        sm90a::gemm_body_wg<epi, GEMM_WGD_STAGES, 64, true>(A, lda, W, ldw, bias, out, ldc, M, \
                                                             N, K, k_chunk, work, w_idx);      \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(128, 1) name##_kn_wgd(GEMM_WG_ARGS) {         \
        sm90a::gemm_body_wg<epi, GEMM_WGD_STAGES, 64, true, true>(A, lda, W, ldw, bias, out,    \
                                                                   ldc, M, N, K, k_chunk, work, \
                                                                   w_idx);                      \
    }

// TMA decode tile (gemm_<epi>_wgt): see gemm_body_wgt. 160 threads (a consumer warpgroup and a
// producer warp), one block per SM, GEMM_WGD_STAGES stages of 24 KiB.
#define GEMM_WGT_ENTRY(name, epi)                                                               \
    extern "C" __global__ void __launch_bounds__(160, 1)                                        \
        name##_wgt(const __grid_constant__ sm90a::TensorMap tmA,                                \
                   const __grid_constant__ sm90a::TensorMap tmW, const bf16* bias, void* out,   \
                   int ldc, int M, int N, int K, int k_chunk, float* work) {                    \
        sm90a::gemm_body_wgt<epi, GEMM_WGD_STAGES>(&tmA, &tmW, bias, out, ldc, M, N, K,         \
                                                   k_chunk, work);                              \
    }

GEMM_WG_ENTRY(gemm_store_bf16, STORE_BF16)
GEMM_WG_ENTRY(gemm_relu_bf16, RELU_BF16)
GEMM_WG_ENTRY(gemm_accum_f32, ACCUM_F32)
GEMM_WG_ENTRY(gemm_store_f32, STORE_F32)
GEMM_WG_ENTRY(gemm_swiglu_bf16, SWIGLU_BF16)
GEMM_WGD_ENTRY(gemm_store_bf16, STORE_BF16)
GEMM_WGD_ENTRY(gemm_relu_bf16, RELU_BF16)
GEMM_WGD_ENTRY(gemm_accum_f32, ACCUM_F32)
GEMM_WGD_ENTRY(gemm_store_f32, STORE_F32)
GEMM_WGD_ENTRY(gemm_swiglu_bf16, SWIGLU_BF16)
GEMM_WGT_ENTRY(gemm_store_bf16, STORE_BF16)
GEMM_WGT_ENTRY(gemm_relu_bf16, RELU_BF16)
GEMM_WGT_ENTRY(gemm_accum_f32, ACCUM_F32)
GEMM_WGT_ENTRY(gemm_store_f32, STORE_F32)
GEMM_WGT_ENTRY(gemm_swiglu_bf16, SWIGLU_BF16)
