// The decode step's split-K reduces with what follows them fused in (one kernel instead of
// three), for batches small enough that every projection runs split-K (M <= 64 rows).
// Each reduce adds the partials work[z][M][N] over z in order, exactly as gemm_reduce in gemm.cu
// does, and applies the same epilogue, so the results have the bits of the unfused path
// (GEMM, then norm.cu / rope.cu / kv_cache.cu).
//
// decode_residual_norm_f32: x[m] += sum_z work[z][m] + bias (the ACCUM_F32 epilogue), then
//   mode 0: nothing more; 1: LayerNorm, 2: RMSNorm of the new x into y bf16 (with w, b), and
//   with write_back the normalised values also replace x (post-norm OPT).
//   Grid (M), block NORM_THREADS. N = hidden: N % 4 == 0, N <= 16384.
// decode_qkv_rope_kv_bf16: qkv[m] = bf16(sum_z work[z][m] + bias) (the STORE_BF16 epilogue),
//   then RoPE on the q and k heads (when inv_freq is not null), then K and V appended into the
//   paged cache (kv_cache.cu's layout). Columns: q heads [0, H*D), k heads [H*D, (H+KV)*D),
//   v heads [(H+KV)*D, (H+2KV)*D) = N. One thread per (head, i < D/2) pair.
//   With a head router fused in (router_units R > 0: the GEMM's weights carry the router's R
//   rows after the q/k/v rows, so work rows are N + R wide): one more block per row (the first)
//   whose first warp adds the router columns' partials over z in order, adds router_bias (or
//   0), and writes the router_k best units to router_idx[m] (router_common.cuh's order). These
//   are the bits of gemm_store_f32 over the router rows with the same K chunks, then
//   router_topk_f32.
//   Grid (ceil(N / 2 / 256) + (R > 0), M), block 256; with R > 0 block 0 is the router's.
#include "norm_common.cuh"
#include "router_common.cuh"

extern "C" __global__ void __launch_bounds__(NORM_THREADS)
    decode_residual_norm_f32(const float* __restrict__ work, int splits,
                             const bf16* __restrict__ bias, float* __restrict__ x,
                             bf16* __restrict__ y, const bf16* __restrict__ w,
                             const bf16* __restrict__ b, float eps, int M, int N, int mode,
                             int write_back, int prefetch) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    __shared__ float scratch[32];
    const int m = blockIdx.x;
    if (m >= M) return;
    float* xr = x + (size_t)m * N;
    if (prefetch) {
        // The residual row and the norm's weights are read after the partials: ask L2 for them
        // now, so that their DRAM latency overlaps the partials' loads.
#pragma unroll
        for (int j = 0; j < NORM_MAXJ; j++) {
            if (!norm_has(j, N)) continue;
            const int g = threadIdx.x + NORM_THREADS * j;
            asm volatile("prefetch.global.L2 [%0];" ::"l"(xr + 4 * g));
            if (bias) asm volatile("prefetch.global.L2 [%0];" ::"l"(bias + 4 * g));
            if (mode != 0 && w) asm volatile("prefetch.global.L2 [%0];" ::"l"(w + 4 * g));
            if (mode == 1 && b) asm volatile("prefetch.global.L2 [%0];" ::"l"(b + 4 * g));
        }
    }
    pdl_wait();  // (launched as the GEMM's dependent) its partials; the prefetches went ahead
    // Partials summed over z in order, per element as gemm_reduce does; z outermost so that a
    // split's loads for all of the thread's columns (and, unrolled, the next splits') are in
    // flight together: the reduce is bound by load latency, not bytes.
    float4 v[NORM_MAXJ];
#pragma unroll
    for (int j = 0; j < NORM_MAXJ; j++) v[j] = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 8
    for (int z = 0; z < splits; z++) {
        const float4* wz = reinterpret_cast<const float4*>(work + ((size_t)z * M + m) * N);
#pragma unroll
        for (int j = 0; j < NORM_MAXJ; j++) {
            if (!norm_has(j, N)) continue;
            const float4 p = wz[threadIdx.x + NORM_THREADS * j];
            v[j].x += p.x;
            v[j].y += p.y;
            v[j].z += p.z;
            v[j].w += p.w;
        }
    }
    // The row's partials are read: drop them from L2 (common.cuh).
    if (l2_discard_worth((size_t)splits * M * N * sizeof(float))) {
        __syncthreads();
        for (int z = 0; z < splits; z++)
            l2_discard_span(work + ((size_t)z * M + m) * N, (size_t)N * sizeof(float),
                            threadIdx.x, NORM_THREADS);
    }
#pragma unroll
    for (int j = 0; j < NORM_MAXJ; j++) {
        if (!norm_has(j, N)) continue;
        const int g = threadIdx.x + NORM_THREADS * j;
        const float4 old = reinterpret_cast<const float4*>(xr)[g];
        float o[4] = {old.x, old.y, old.z, old.w};
        const float a[4] = {v[j].x, v[j].y, v[j].z, v[j].w};
        float bb[4] = {0.f, 0.f, 0.f, 0.f};
        if (bias) unpack4_bf16(reinterpret_cast<const uint2*>(bias)[g], bb);
#pragma unroll
        for (int e = 0; e < 4; e++) o[e] += a[e] + bb[e];
        v[j] = make_float4(o[0], o[1], o[2], o[3]);
        reinterpret_cast<float4*>(xr)[g] = v[j];
    }
    if (mode == 0) return;
    if (mode == 1) {
        norm_row_regs<false>(v, N, eps, w, b, scratch);
    } else {
        norm_row_regs<true>(v, N, eps, w, nullptr, scratch);
    }
    norm_store_row(v, N, y + (size_t)m * N, write_back ? xr : nullptr);
}

// One (head, i < head_dim / 2) pair of decode_qkv_rope_kv_bf16's row m: its two columns'
// partials summed, bias, RoPE, the q/k/v row and the K/V cache.
POLAR_DEVICE void qkv_pair(const float* __restrict__ work, int splits,
                           const bf16* __restrict__ bias, bf16* __restrict__ qkv,
                           const int* __restrict__ pos, const float* __restrict__ inv_freq,
                           int M, int m, int pr, int num_heads, int num_kv_heads, int head_dim,
                           int ldw, bf16* __restrict__ k_cache, bf16* __restrict__ v_cache,
                           const int* __restrict__ row_of, const int* __restrict__ block_table,
                           int max_blocks, int block_size) {
    const int half = head_dim / 2;
    const int N = (num_heads + 2 * num_kv_heads) * head_dim;
    const int hd = pr / half, i = pr % half;
    const int c1 = hd * head_dim + i, c2 = c1 + half;
    const bool rope = inv_freq && hd < num_heads + num_kv_heads;
    bf16 o1, o2;
    qkv_pair_reduce(work, splits, M, m, ldw, bias, c1, c2, rope,
                    rope ? __fmul_rn((float)pos[m], inv_freq[i]) : 0.f, o1, o2);
    bf16* row = qkv + (size_t)m * N;
    row[c1] = o1;
    row[c2] = o2;
    if (hd >= num_heads) {
        const int kv = hd - num_heads;                // 0 .. 2 KV - 1
        const int g = kv % num_kv_heads;
        bf16* cache = kv < num_kv_heads ? k_cache : v_cache;
        const int p = pos[m];
        const int block = block_table[(size_t)row_of[m] * max_blocks + p / block_size];
        const size_t dst = (((size_t)block * num_kv_heads + g) * block_size + p % block_size)
                           * head_dim;
        cache[dst + i] = o1;
        cache[dst + i + half] = o2;
    }
}

extern "C" __global__ void decode_qkv_rope_kv_bf16(
    const float* __restrict__ work, int splits, const bf16* __restrict__ bias,
    bf16* __restrict__ qkv, const int* __restrict__ pos, const float* __restrict__ inv_freq,
    int M, int num_heads, int num_kv_heads, int head_dim, bf16* __restrict__ k_cache,
    bf16* __restrict__ v_cache, const int* __restrict__ row_of,
    const int* __restrict__ block_table, int max_blocks, int block_size, int router_units,
    int router_k, const bf16* __restrict__ router_bias, int* __restrict__ router_idx) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    const int m = blockIdx.y;
    const int half = head_dim / 2;
    const int heads = num_heads + 2 * num_kv_heads;
    const int N = heads * head_dim;
    const int ldw = N + router_units;  // the GEMM's output columns
    // The fused head router is block 0 (dispatched first: its select overlaps the q/k/v blocks).
    if (router_units > 0 && blockIdx.x == 0) {
        if (threadIdx.x >= 32) return;
        const int lane = threadIdx.x;
        const int R = router_units;
        float v0 = 0.f, v1 = 0.f;
#pragma unroll 4
        for (int z = 0; z < splits; z++) {
            const float* wz = work + ((size_t)z * M + m) * ldw + N;
            if (lane < R) v0 += wz[lane];
            if (lane + 32 < R) v1 += wz[lane + 32];
        }
        v0 = lane < R ? v0 + (router_bias ? bf2f(router_bias[lane]) : 0.f) : -INFINITY;
        v1 = lane + 32 < R ? v1 + (router_bias ? bf2f(router_bias[lane + 32]) : 0.f) : -INFINITY;
        warp_select_topk(v0, v1, R, router_k, router_idx + (size_t)m * router_k);
        return;
    }
    const int first = (blockIdx.x - (router_units > 0 ? 1 : 0)) * blockDim.x;
    const int pr = first + threadIdx.x;
    if (pr < heads * half) qkv_pair(work, splits, bias, qkv, pos, inv_freq, M, m, pr, num_heads,
                                    num_kv_heads, head_dim, ldw, k_cache, v_cache, row_of,
                                    block_table, max_blocks, block_size);
    // The block's partials are read: drop them from L2 (common.cuh). Its pairs cover whole
    // heads, columns [first / half * head_dim, last / half * head_dim), when blockDim.x is a
    // multiple of half (head_dim 128: 4 heads a block); otherwise nothing is dropped.
    if (blockDim.x % half != 0 || !l2_discard_worth((size_t)splits * M * ldw * sizeof(float)))
        return;
    __syncthreads();
    const int c0 = first / half * head_dim;
    const int c1 = min(first + (int)blockDim.x, heads * half) / half * head_dim;
    for (int z = 0; z < splits; z++)
        l2_discard_span(work + ((size_t)z * M + m) * ldw + c0, (size_t)(c1 - c0) * sizeof(float),
                        threadIdx.x, blockDim.x);
}
