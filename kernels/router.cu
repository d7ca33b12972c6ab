// Polar Sparsity's selections on the device, from router logits (the router projections
// themselves are GEMMs: gemm_store_f32 on the layer's normed input).
//
// router_topk_f32: per token t, idx[t, 0..k) = the k largest of logits[t, 0..G), most likely
//   first, ties broken by the lower index (the order a stable descending sort gives).
//   logits fp32 [n, G] (row stride G); idx int32 [n, k]. G <= 64, 1 <= k <= G (host-checked).
//   One warp per token: lane i holds entries i and i + 32; k rounds of a warp argmax.
// Grid: ceil(n / 4), block 128.
#include "router_common.cuh"

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
    // The block's partials (32 columns of every row and split) are read: drop them from L2.
    if (!l2_discard_worth((size_t)splits * n * F * sizeof(float))) return;
    const int cols = min(32, F - (int)blockIdx.x * 32);
    for (int zr = threadIdx.x; zr < splits * n; zr += blockDim.x)
        l2_discard_span(work + (size_t)zr * F + blockIdx.x * 32, cols * sizeof(float), 0, 1);
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
// One block of 1024 threads. Non-negative floats order as their bit patterns, so everything is
// on bits u = bits - min bits:
//   1. the scores are read into shared memory (the first `cached`; the rest are re-read),
//      with their min and max;
//   2. a histogram of u >> s over SELECT_BINS bins (s: the smallest shift that fits the range;
//      bins are monotonic in the score) gives the bin b* holding the k-th largest, and how many
//      scores lie above it;
//   3. one pass counts, per warp (each warp owns a contiguous range), the scores above b* and
//      collects the scores in b* as candidates (few, unless many scores share a narrow range);
//   4. the k-th largest t exactly, by radix passes over the candidates' low s bits only;
//      with more than SELECT_CAND candidates, by 8-bit radix passes over all scores instead;
//   5. each warp writes its range's selected indices (all > t, and = t while the ties budget
//      lasts) at offsets from a block scan of the per-warp counts.
// score fp32 [F]; idx int32 [k]; 1 <= k <= F. Dynamic shared memory: cached * 4 bytes (plus
// 34 KiB static). One block per SM (64 registers a thread).
#define SELECT_BINS 4096
#define SELECT_CAND 2048

// Warp 0: the bin holding the need-th largest of a 256-bin histogram, counted from the top;
// returns it and the count still needed inside it in *left (lanes see the same values).
POLAR_DEVICE int hist256_pick(const int* hist, int need, int* left) {
    const int lane = threadIdx.x & 31;
    // Lane l sums bins [255 - 8l - 7, 255 - 8l]; a scan over lanes gives the count above.
    int local = 0;
#pragma unroll
    for (int q = 0; q < 8; q++) local += hist[255 - 8 * lane - q];
    int inc = local;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        int u = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o) inc += u;
    }
    const int before = inc - local;  // elements in higher bins than this lane's
    const unsigned who = __ballot_sync(0xffffffffu, before < need && inc >= need);
    int bin = 0, rest = need;
    if (who != 0 && lane == __ffs(who) - 1) {
        rest = need - before;
        bin = 255 - 8 * lane;
        for (int q = 0; q < 8; q++, bin--) {
            if (hist[bin] >= rest || bin == 0) break;
            rest -= hist[bin];
        }
    }
    const int src = who != 0 ? __ffs(who) - 1 : 0;  // who == 0 cannot happen for 1 <= k <= F
    *left = __shfl_sync(0xffffffffu, rest, src);
    return __shfl_sync(0xffffffffu, bin, src);
}

// Block-wide radix step: warp 0 picks the bin of the need-th largest (hist256_pick), the prefix
// gains it at bit sh, and every thread gets the new prefix and the count still needed in it.
POLAR_DEVICE void radix_pick_block(const int* hist, int sh, unsigned& prefix, int& need,
                                   unsigned* s_prefix, int* s_need) {
    if ((threadIdx.x >> 5) == 0) {
        int left;
        const int bin = hist256_pick(hist, need, &left);
        if ((threadIdx.x & 31) == 0) {
            *s_prefix = prefix | ((unsigned)bin << sh);
            *s_need = left;
        }
    }
    __syncthreads();
    prefix = *s_prefix;
    need = *s_need;
}

extern "C" __global__ void __launch_bounds__(1024, 1)
router_select_topk_f32(const float* __restrict__ score, int F, int k, int* __restrict__ idx,
                       int cached) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    extern __shared__ unsigned sbits[];  // the first `cached` scores' bit patterns
    __shared__ int warp_tot[33];
    __shared__ union {
        int bins[SELECT_BINS];     // step 2
        struct {                   // steps 3 and 4 over the candidates
            unsigned u[SELECT_CAND];
            int j[SELECT_CAND];
        } cand;
        int whist[32][256];        // step 4 over all scores: one histogram per warp
    } h;
    unsigned* cand_u = h.cand.u;
    int* cand_j = h.cand.j;
    __shared__ int hist[256];
    __shared__ int w_gt[32], w_eq[32];
    __shared__ unsigned s_min[32], s_max[32], s_prefix;
    __shared__ int s_bin, s_need, s_ncand;
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const unsigned below = (1u << lane) - 1u;

    // 1. The scores as bit patterns (eight loads in flight per thread: one block reads them
    // all, so this is latency), with their min and max.
    unsigned lo = 0xffffffffu, hi = 0u;
    for (int j0 = threadIdx.x; j0 < F; j0 += 8 * blockDim.x) {
        float v[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int j = j0 + u * blockDim.x;
            v[u] = j < F ? __ldg(score + j) : 0.f;
        }
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int j = j0 + u * blockDim.x;
            const unsigned b = __float_as_uint(fmaxf(v[u], 0.f));
            if (j < F) {
                lo = min(lo, b);
                hi = max(hi, b);
                if (j < cached) sbits[j] = b;
            }
        }
    }
    for (int i = threadIdx.x; i < SELECT_BINS; i += blockDim.x) h.bins[i] = 0;
    lo = __reduce_min_sync(0xffffffffu, lo);
    hi = __reduce_max_sync(0xffffffffu, hi);
    if (lane == 0) {
        s_min[wid] = lo;
        s_max[wid] = hi;
        w_gt[wid] = 0;
        w_eq[wid] = 0;
    }
    if (threadIdx.x == 0) s_ncand = 0;
    __syncthreads();
    lo = __reduce_min_sync(0xffffffffu, lane < nw ? s_min[lane] : 0xffffffffu);
    hi = __reduce_max_sync(0xffffffffu, lane < nw ? s_max[lane] : 0u);
    auto bits_of = [&](int j) -> unsigned {
        return j < cached ? sbits[j] : __float_as_uint(fmaxf(__ldg(score + j), 0.f));
    };
    const unsigned range = hi - lo;
    // Smallest shift with range >> shift < SELECT_BINS (SELECT_BINS = 2^12).
    const int shift = max(0, 32 - __clz(range) - 12);

    // 2. Histogram of u >> shift; the bin of the k-th largest and the count above it.
    for (int j = threadIdx.x; j < F; j += blockDim.x) atomicAdd(&h.bins[(bits_of(j) - lo) >> shift], 1);
    __syncthreads();
    {
        // Thread i owns bins 4095 - 4i .. 4092 - 4i (from the top); a block scan of their sums.
        int c[4], local = 0;
#pragma unroll
        for (int q = 0; q < 4; q++) {
            c[q] = h.bins[SELECT_BINS - 1 - 4 * threadIdx.x - q];
            local += c[q];
        }
        int total;
        const int before = block_exclusive_scan(local, warp_tot, &total);
        if (before < k && before + local >= k) {
            int left = k - before, q = 0;
            while (q < 3 && c[q] < left) left -= c[q++];
            s_bin = SELECT_BINS - 1 - 4 * threadIdx.x - q;
            s_need = left;  // the need-th largest inside the bin
        }
    }
    __syncthreads();
    const int bstar = s_bin;
    int need = s_need;

    // 3. Per warp range: scores above b*, and b*'s scores collected as candidates.
    const int per = (F + nw - 1) / nw;
    const int w0 = min(F, wid * per), w1 = min(F, w0 + per);
    int above = 0;
    for (int j0 = w0; j0 < w1; j0 += 32) {
        const int j = j0 + lane;
        const int bin = j < w1 ? (int)((bits_of(j) - lo) >> shift) : -1;
        above += __popc(__ballot_sync(0xffffffffu, bin > bstar));
        const unsigned in = __ballot_sync(0xffffffffu, bin == bstar);
        if (in) {
            int base = 0;
            if (lane == 0) base = atomicAdd(&s_ncand, __popc(in));
            base = __shfl_sync(0xffffffffu, base, 0) + __popc(in & below);
            if (bin == bstar && base < SELECT_CAND) {
                cand_u[base] = bits_of(j) - lo;
                cand_j[base] = j;
            }
        }
    }
    __syncthreads();
    const int nc = s_ncand;
    unsigned t;  // the k-th largest score's bits
    int gt_w, eq_w;  // this warp's range: scores > t and = t
    if (nc <= SELECT_CAND) {
        // 4. Radix passes over the candidates' low `shift` bits (all share u >> shift = b*).
        unsigned prefix = (unsigned)bstar << shift;
        for (int sh = shift; sh > 0;) {
            const int d = min(8, sh);
            sh -= d;
            const unsigned mask = (1u << d) - 1u;
            const unsigned fixed = ~((mask << sh) | ((1u << sh) - 1u));  // bits decided so far
            if (threadIdx.x < 256) hist[threadIdx.x] = 0;
            __syncthreads();
            for (int i = threadIdx.x; i < nc; i += blockDim.x) {
                const unsigned u = cand_u[i];
                if ((u & fixed) == prefix) atomicAdd(&hist[(u >> sh) & mask], 1);
            }
            __syncthreads();
            radix_pick_block(hist, sh, prefix, need, &s_prefix, &s_need);
        }
        t = prefix + lo;
        // The candidates above t and equal to t, counted for the warp that owns each.
        const unsigned tu = prefix;
        for (int i = threadIdx.x; i < nc; i += blockDim.x) {
            const unsigned u = cand_u[i];
            if (u >= tu) atomicAdd(u > tu ? &w_gt[cand_j[i] / per] : &w_eq[cand_j[i] / per], 1);
        }
        __syncthreads();
        gt_w = above + w_gt[wid];
        eq_w = w_eq[wid];
    } else {
        // 4'. Many scores in one narrow range: 8-bit radix passes over all scores (bits from
        // the top), each warp counting into its own histogram (a warp whose lanes share one
        // bin adds once); the warps' counts then summed per bin.
        unsigned prefix = 0;
        need = k;
        for (int sh = 24; sh >= 0; sh -= 8) {
            for (int i = lane; i < 256; i += 32) h.whist[wid][i] = 0;
            __syncwarp();
            const unsigned fixed = sh == 24 ? 0u : (0xffffffffu << (sh + 8));
            for (int j0 = 0; j0 < F; j0 += blockDim.x) {  // uniform trip count for the warp
                const int j = j0 + threadIdx.x;
                int bin = 256;
                if (j < F) {
                    const unsigned b = bits_of(j);
                    if ((b & fixed) == prefix) bin = (b >> sh) & 255;
                }
                const int first = __shfl_sync(0xffffffffu, bin, 0);
                if (__all_sync(0xffffffffu, bin == first)) {
                    if (lane == 0 && bin < 256) h.whist[wid][bin] += 32;
                } else if (bin < 256) {
                    atomicAdd(&h.whist[wid][bin], 1);
                }
                __syncwarp();
            }
            __syncthreads();
            if (threadIdx.x < 256) {
                int c = 0;
                for (int w = 0; w < nw; w++) c += h.whist[w][threadIdx.x];
                hist[threadIdx.x] = c;
            }
            __syncthreads();
            radix_pick_block(hist, sh, prefix, need, &s_prefix, &s_need);
        }
        t = prefix;
        gt_w = 0;
        eq_w = 0;
        for (int j0 = w0; j0 < w1; j0 += 32) {
            const int j = j0 + lane;
            const unsigned b = j < w1 ? bits_of(j) : 0u;
            gt_w += __popc(__ballot_sync(0xffffffffu, j < w1 && b > t));
            eq_w += __popc(__ballot_sync(0xffffffffu, j < w1 && b == t));
        }
    }

    // 5. Compaction in index order: warp totals into a block scan (lane 0 carries its warp's
    // count); each warp walks its range 32 scores at a time, ballots giving each lane its rank.
    int total_gt, total_eq;
    int gt_before = __shfl_sync(0xffffffffu,
                                block_exclusive_scan(lane == 0 ? gt_w : 0, warp_tot, &total_gt), 0);
    int eq_before = __shfl_sync(0xffffffffu,
                                block_exclusive_scan(lane == 0 ? eq_w : 0, warp_tot, &total_eq), 0);
    const int budget = k - total_gt;  // scores equal to t to take, lowest indices first
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
