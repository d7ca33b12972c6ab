// Polar Sparsity's selections on the device, from router logits (the router projections
// themselves are GEMMs: gemm_store_f32 on the layer's normed input).
//
// router_topk_f32: per token t, idx[t, 0..k) = the k largest of logits[t, 0..G), most likely
//   first, ties broken by the lower index (the order a stable descending sort gives).
//   logits fp32 [n, G] (row stride G); idx int32 [n, k]. G <= 64, 1 <= k <= G (host-checked).
//   One warp per token: lane i holds entries i and i + 32; k rounds of a warp argmax.
// Grid: ceil(n / 4), block 128.
#include "common.cuh"

// The k largest of up to 64 values held two per lane (lane i: entries i and i + 32; G valid),
// written to out[0..k) most likely first, ties broken by the lower index: k rounds of a warp
// argmax. Called by one whole warp.
__device__ __forceinline__ void warp_select_topk(float v0, float v1, int G, int k,
                                                 int* __restrict__ out) {
    const int lane = threadIdx.x & 31;
    bool taken0 = lane >= G, taken1 = lane + 32 >= G;
    for (int j = 0; j < k; j++) {
        // best of this lane's two candidates (lower index first on ties)
        float bv = -INFINITY;
        int bi = 0x7fffffff;
        if (!taken0) {
            bv = v0;
            bi = lane;
        }
        if (!taken1 && (v1 > bv || bi == 0x7fffffff)) {
            bv = v1;
            bi = lane + 32;
        }
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) {
                bv = ov;
                bi = oi;
            }
        }
        if (lane == 0) out[j] = bi;
        if (bi == lane) taken0 = true;
        if (bi == lane + 32) taken1 = true;
    }
}

extern "C" __global__ void router_topk_f32(const float* __restrict__ logits, int n, int G, int k,
                                           int* __restrict__ idx) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    int t = blockIdx.x * 4 + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (t >= n) return;
    const float* row = logits + (size_t)t * G;
    float v0 = lane < G ? row[lane] : -INFINITY;
    float v1 = lane + 32 < G ? row[lane + 32] : -INFINITY;
    warp_select_topk(v0, v1, G, k, idx + (size_t)t * k);
}

// router_union_scores_f32: score[j] = sum over the n rows of max(0, logits[r, j]) (the batch
// union of the MLP router, as the paper defines it), summed in row order. logits fp32 [n, F].
// Grid: ceil(F / 256), block 256.
extern "C" __global__ void router_union_scores_f32(const float* __restrict__ logits, int n, int F,
                                                   float* __restrict__ score) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= F) return;
    float s = 0.f;
    for (int r = 0; r < n; r++) s += fmaxf(0.f, logits[(size_t)r * F + j]);
    score[j] = s;
}

// router_reduce_union_f32: the same scores from split-K partials of the router's second GEMM
// (work[z][r][j], z < splits, as GemmKernel.partials writes them), without the fp32 logits in
// between: logit = sum_z work[z][r][j] + 0 (the STORE_F32 epilogue without a bias), then
// score[j] = sum over rows of max(0, logit), in the same orders as the two-kernel path.
// Grid: ceil(F / 32), block 256 (8 warps split the rows; n <= 64).
extern "C" __global__ void __launch_bounds__(256)
router_reduce_union_f32(const float* __restrict__ work, int splits, int n, int F,
                        float* __restrict__ score) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    __shared__ float logit[64][33];  // n <= 64 rows (host-checked) x 32 columns
    const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    const int j = blockIdx.x * 32 + tx;
    if (j < F) {
#pragma unroll 2
        for (int r = ty; r < n; r += 8) {
            float v = 0.f;
            for (int z = 0; z < splits; z++) v += work[((size_t)z * n + r) * F + j];
            logit[r][tx] = v + 0.f;
        }
    }
    __syncthreads();
    if (ty == 0 && j < F) {
        float s = 0.f;
        for (int r = 0; r < n; r++) s += fmaxf(0.f, logit[r][tx]);
        score[j] = s;
    }
}

// Exclusive prefix sum over the block (blockDim.x a multiple of 32, <= 1024); returns this
// thread's exclusive offset and the block total in *total. `warp_tot` holds 33 ints.
POLAR_DEVICE int block_exclusive_scan(int v, int* warp_tot, int* total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int inc = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        int u = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o) inc += u;
    }
    __syncthreads();
    if (lane == 31) warp_tot[warp] = inc;
    __syncthreads();
    if (warp == 0) {
        const int nw = blockDim.x >> 5;
        int w = lane < nw ? warp_tot[lane] : 0;
        int wi = w;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            int u = __shfl_up_sync(0xffffffffu, wi, o);
            if (lane >= o) wi += u;
        }
        warp_tot[lane] = wi - w;  // exclusive offset of each warp
        if (lane == 31) warp_tot[32] = wi;
    }
    __syncthreads();
    *total = warp_tot[32];
    return warp_tot[warp] + inc - v;
}

// router_select_topk_f32: idx[0..k) = the indices of the k largest scores (scores >= 0), in
// increasing index order; among scores equal to the k-th largest, the lowest indices are taken.
// One block of 1024 threads: a radix select over the float bit patterns (4 passes of 8 bits,
// a 256-bin histogram each) finds the k-th largest value t, then each warp compacts its
// contiguous range (all > t, and = t while the ties budget lasts) at offsets from a block
// scan. score fp32 [F]; idx int32 [k]; 1 <= k <= F. Dynamic shared memory: cached * 4 bytes
// (plus 33 KiB static). One block per SM at most (64 registers a thread).
extern "C" __global__ void __launch_bounds__(1024, 1)
router_select_topk_f32(const float* __restrict__ score, int F, int k, int* __restrict__ idx,
                       int cached) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    extern __shared__ unsigned sbits[];  // the first `cached` scores' bit patterns
    __shared__ int warp_tot[33];
    __shared__ int hist[256];
    __shared__ int whist[32][256];  // one histogram per warp: no atomics across warps
    __shared__ unsigned s_prefix;
    __shared__ int s_need;
    // Radix select of the k-th largest bit pattern, 8 bits at a time from the top: 4 passes of
    // a 256-bin histogram over the elements that match the bits chosen so far. Each warp counts
    // into its own histogram (a warp whose lanes share one bin, as most do in the first pass,
    // adds once); the warps' counts are then summed per bin.
    if (threadIdx.x == 0) {
        s_prefix = 0;
        s_need = k;
    }
    // The scores as bit patterns, read once into shared memory (the first `cached` of them;
    // the rest, if any, are re-read from memory in each pass).
    // Eight loads in flight per thread: one block reads the whole vector, so this is latency.
    for (int j0 = threadIdx.x; j0 < cached; j0 += 8 * blockDim.x) {
        float v[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int j = j0 + u * blockDim.x;
            v[u] = j < cached ? __ldg(score + j) : 0.f;
        }
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int j = j0 + u * blockDim.x;
            if (j < cached) sbits[j] = __float_as_uint(fmaxf(v[u], 0.f));
        }
    }
    auto bits_of = [&](int j) -> unsigned {
        return j < cached ? sbits[j] : __float_as_uint(fmaxf(score[j], 0.f));
    };
    __syncthreads();
    const int wid = threadIdx.x >> 5;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x & 31; i < 256; i += 32) whist[wid][i] = 0;
        __syncwarp();
        const unsigned prefix = s_prefix;
        const unsigned above = shift == 24 ? 0u : (0xffffffffu << (shift + 8));
        for (int j0 = 0; j0 < F; j0 += blockDim.x) {  // uniform trip count for the warp
            const int j = j0 + threadIdx.x;
            int bin = 256;
            if (j < F) {
                const unsigned b = bits_of(j);
                if ((b & above) == prefix) bin = (b >> shift) & 255;
            }
            // Often the whole warp falls in one bin (the top bits of similar scores): one add.
            // Otherwise each lane adds to its warp's histogram (few lanes share a bin then).
            const int first = __shfl_sync(0xffffffffu, bin, 0);
            if (__all_sync(0xffffffffu, bin == first)) {
                if ((threadIdx.x & 31) == 0 && bin < 256) whist[wid][bin] += 32;
            } else if (bin < 256) {
                atomicAdd(&whist[wid][bin], 1);
            }
            __syncwarp();
        }
        __syncthreads();
        if (threadIdx.x < 256) {
            int c = 0;
            for (int w = 0; w < (int)(blockDim.x >> 5); w++) c += whist[w][threadIdx.x];
            hist[threadIdx.x] = c;
        }
        __syncthreads();
        if (threadIdx.x < 32) {  // warp 0: the bin holding the need-th largest, from the top
            const int need = s_need;
            // Lane l sums bins [255 - 8l - 7, 255 - 8l]; a scan over lanes gives the count above.
            int local = 0;
#pragma unroll
            for (int q = 0; q < 8; q++) local += hist[255 - 8 * threadIdx.x - q];
            int inc = local;
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                int u = __shfl_up_sync(0xffffffffu, inc, o);
                if ((int)threadIdx.x >= o) inc += u;
            }
            const int before = inc - local;  // elements in higher bins than this lane's
            const bool mine = before < need && inc >= need;
            const unsigned who = __ballot_sync(0xffffffffu, mine);
            if (who == 0) {  // fewer than need matching (cannot happen for 1 <= k <= F)
                if (threadIdx.x == 0) s_need = need;
            } else if ((int)threadIdx.x == __ffs(who) - 1) {
                int left = need - before;
                int bin = 255 - 8 * threadIdx.x;
                for (int q = 0; q < 8; q++, bin--) {
                    if (hist[bin] >= left || bin == 0) break;
                    left -= hist[bin];
                }
                s_prefix = prefix | ((unsigned)bin << shift);
                s_need = left;
            }
        }
        __syncthreads();
    }
    const unsigned t = s_prefix;
    // Compaction in index order: each warp owns a contiguous range and walks it 32 elements at
    // a time (ballots give each lane its rank; shared-memory reads stay conflict-free).
    const int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    const unsigned below = (1u << lane) - 1u;
    const int per = (F + nw - 1) / nw;
    const int w0 = min(F, wid * per), w1 = min(F, w0 + per);
    int gt = 0, eq = 0;
    for (int j0 = w0; j0 < w1; j0 += 32) {
        const int j = j0 + lane;
        const unsigned b = j < w1 ? bits_of(j) : 0u;
        gt += __popc(__ballot_sync(0xffffffffu, j < w1 && b > t));
        eq += __popc(__ballot_sync(0xffffffffu, j < w1 && b == t));
    }
    int total_gt, total_eq;
    // Warp totals into a block scan (lane 0 carries its warp's count).
    int gt_before = __shfl_sync(0xffffffffu,
                                block_exclusive_scan(lane == 0 ? gt : 0, warp_tot, &total_gt), 0);
    int eq_before = __shfl_sync(0xffffffffu,
                                block_exclusive_scan(lane == 0 ? eq : 0, warp_tot, &total_eq), 0);
    const int budget = k - total_gt;  // elements equal to t to take, lowest indices first
    for (int j0 = w0; j0 < w1; j0 += 32) {
        const int j = j0 + lane;
        const unsigned b = j < w1 ? bits_of(j) : 0u;
        const bool g = j < w1 && b > t;
        const bool e = j < w1 && b == t;
        const unsigned gm = __ballot_sync(0xffffffffu, g);
        const unsigned em = __ballot_sync(0xffffffffu, e);
        const bool take = g || (e && eq_before + __popc(em & below) < budget);
        const unsigned tm = __ballot_sync(0xffffffffu, take);
        const int sel_before = gt_before + min(eq_before, max(0, budget));
        if (take) idx[sel_before + __popc(tm & below)] = j;
        gt_before += __popc(gm);
        eq_before += __popc(em);
    }
}

// router_head_topk_bf16: the head router and its top-k in one launch, for decode steps where a
// GEMM plus a separate top-k would cost more in launches than in bytes:
//   logits[t, g] = y[t] . W[g] + bias[g] (fp32 accumulation), then idx[t, 0..k) = the k largest,
//   most likely first, ties by the lower index (as router_topk_f32).
//   y bf16 [n, hidden] (row stride ldy); W bf16 [G, hidden]; bias bf16 [G] or null;
//   idx int32 [n, k]; logits fp32 [n, G] (scratch); counters int32 [n], zero before the first
//   launch and left zero after each. hidden % 8 == 0, G <= 64 (host-checked).
// Grid: (n, ceil(G / HEAD_ROUTER_GPB)), block 32 * HEAD_ROUTER_WPG * HEAD_ROUTER_GPB: block
// (t, b) computes groups b * GPB .. + GPB - 1 of token t, HEAD_ROUTER_WPG warps per group, each
// warp a contiguous quarter of the row's 8-element chunks (lane l: chunks l, l + 32, ... of it,
// four loads in flight, into four partial sums); the warps' sums are added in warp order. The
// row's weights are read by many SMs at once: the kernel is bound by load latency, not bytes.
// The last block of a token to finish (a counter per token) selects.
#define HEAD_ROUTER_GPB 2
#define HEAD_ROUTER_WPG 4

__device__ __forceinline__ void dot8_bf16(float& s, const uint4& a, const uint4& b) {
    const bf16* ap = reinterpret_cast<const bf16*>(&a);
    const bf16* bp = reinterpret_cast<const bf16*>(&b);
#pragma unroll
    for (int j = 0; j < 8; j++) s += bf2f(ap[j]) * bf2f(bp[j]);
}

extern "C" __global__ void __launch_bounds__(32 * HEAD_ROUTER_WPG * HEAD_ROUTER_GPB)
router_head_topk_bf16(const bf16* __restrict__ y, int ldy, const bf16* __restrict__ W,
                      const bf16* __restrict__ bias, int n, int hidden, int G, int k,
                      int* __restrict__ idx, float* __restrict__ logits,
                      int* __restrict__ counters) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    __shared__ float part[HEAD_ROUTER_GPB][HEAD_ROUTER_WPG];
    const int t = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int gl = warp / HEAD_ROUTER_WPG, q = warp % HEAD_ROUTER_WPG;
    const int g = blockIdx.y * HEAD_ROUTER_GPB + gl;
    if (t >= n) return;  // uniform over the block
    if (g < G) {
        const int chunks = hidden / 8;
        const int per = (chunks + HEAD_ROUTER_WPG - 1) / HEAD_ROUTER_WPG;
        const int c0 = q * per, c1 = min(chunks, c0 + per);
        const uint4* yr = reinterpret_cast<const uint4*>(y + (size_t)t * ldy);
        const uint4* wr = reinterpret_cast<const uint4*>(W + (size_t)g * hidden);
        float s[4] = {0.f, 0.f, 0.f, 0.f};
        int c = c0 + lane;
        for (; c + 3 * 32 < c1; c += 4 * 32) {
            uint4 a[4], b[4];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                a[u] = __ldg(yr + c + u * 32);
                b[u] = __ldg(wr + c + u * 32);
            }
#pragma unroll
            for (int u = 0; u < 4; u++) dot8_bf16(s[u], a[u], b[u]);
        }
        for (; c < c1; c += 32) dot8_bf16(s[0], __ldg(yr + c), __ldg(wr + c));
        const float sum = warp_sum((s[0] + s[1]) + (s[2] + s[3]));
        if (lane == 0) part[gl][q] = sum;
    }
    __syncthreads();
    if (threadIdx.x < HEAD_ROUTER_GPB) {
        const int g2 = blockIdx.y * HEAD_ROUTER_GPB + threadIdx.x;
        if (g2 < G) {
            float sum = 0.f;
#pragma unroll
            for (int w = 0; w < HEAD_ROUTER_WPG; w++) sum += part[threadIdx.x][w];
            logits[(size_t)t * G + g2] = sum + (bias ? bf2f(bias[g2]) : 0.f);
        }
    }
    // The token's last block (its logits, and every other block's, visible) selects.
    __shared__ int last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(counters + t, 1) == (int)gridDim.y - 1;
    __syncthreads();
    if (!last || warp != 0) return;
    __threadfence();
    const float* lr = logits + (size_t)t * G;
    const float v0 = lane < G ? __ldcg(lr + lane) : -INFINITY;
    const float v1 = lane + 32 < G ? __ldcg(lr + lane + 32) : -INFINITY;
    warp_select_topk(v0, v1, G, k, idx + (size_t)t * k);
    if (lane == 0) counters[t] = 0;  // ready for the next launch (or graph replay)
}
