// Token sampling on the device, one row per block: temperature, top-k, top-p and a seeded,
// counter-based uniform, so a row's token depends only on its logits, its seed and its step.
//
// sampling_rows_f32: for row r with logits l = logits[r, 0..V):
//   temperature[r] == 0: ids[r] = argmax l (lowest id on ties).
//   else q_i = exp((l_i - max l) / T); top_k[r] in (0, V): keep q_i >= the k-th largest q (ties
//   at the threshold are kept too); top_p[r] < 1: of those, keep q_i >= the largest threshold
//   whose kept mass is still >= top_p * (mass kept by top-k); then with
//   u = (SplitMix64(seed + 0x9E3779B97F4A7C15 * (step + 1)) >> 11) * 2^-53 (the host Sampler's
//   uniform), ids[r] = the first id, in id order, at which the running sum of kept q exceeds
//   u * (kept mass). (The host Sampler walks tokens from most to least likely instead, so the
//   two backends draw different tokens from the same uniform; each is deterministic.)
//   logprob[r] = l[ids[r]] - logsumexp(l): the raw model distribution, as the host reports it.
//   Thresholds are found by bisection on the float bit patterns (q >= 0, so they order like
//   the values): 32 exact steps, no sort.
//   logits fp32 [rows, V]; temperature, top_p fp32 [rows]; top_k int32 [rows] (<= 0: all);
//   seeds uint64 [rows]; steps int32 [rows]; q scratch fp32 [rows, V]; ids int32, logprob fp32 [rows].
// Grid: (rows), block: 1024 threads.
#include "common.cuh"

#define SAMPLE_THREADS 1024

__device__ __forceinline__ unsigned long long mix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

__device__ float block_max(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < (blockDim.x >> 5) ? scratch[lane] : -INFINITY;
    return warp_max(v);
}

// Sum over q_i whose bit pattern is >= lo_bits (and >= floor_bits); count too.
__device__ void kept_sum(const float* q, int V, unsigned lo_bits, float* sum, float* count,
                         float* scratch) {
    float s = 0.f, c = 0.f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        if (__float_as_uint(q[i]) >= lo_bits) {
            s += q[i];
            c += 1.f;
        }
    }
    *sum = block_sum(s, scratch);
    *count = block_sum(c, scratch);
}

extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS)
sampling_rows_f32(const float* __restrict__ logits, int rows, int V,
                  const float* __restrict__ temperature, const int* __restrict__ top_k,
                  const float* __restrict__ top_p, const unsigned long long* __restrict__ seeds,
                  const int* __restrict__ steps, float* __restrict__ qbuf,
                  int* __restrict__ ids, float* __restrict__ logprob) {
    __shared__ float scratch[32];
    __shared__ float seg_prefix[SAMPLE_THREADS];
    __shared__ int chosen;
    const int r = blockIdx.x;
    if (r >= rows) return;
    const float* l = logits + (size_t)r * V;
    float* q = qbuf + (size_t)r * V;

    float m = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, l[i]);
    m = block_max(m, scratch);
    float z = 0.f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) z += expf(l[i] - m);
    const float lse = m + logf(block_sum(z, scratch));

    const float T = temperature[r];
    if (T == 0.f) {  // greedy: the lowest id among the maxima
        int best = 0x7fffffff;
        for (int i = threadIdx.x; i < V; i += blockDim.x)
            if (l[i] == m && i < best) best = i;
        // block min of best
        for (int o = 16; o > 0; o >>= 1) best = min(best, __shfl_xor_sync(0xffffffffu, best, o));
        __shared__ int mins[32];
        if ((threadIdx.x & 31) == 0) mins[threadIdx.x >> 5] = best;
        __syncthreads();
        if (threadIdx.x == 0) {
            int b = 0x7fffffff;
            for (int w = 0; w < (int)(blockDim.x >> 5); w++) b = min(b, mins[w]);
            ids[r] = b;
            logprob[r] = l[b] - lse;
        }
        return;
    }
    for (int i = threadIdx.x; i < V; i += blockDim.x) q[i] = expf((l[i] - m) / T);
    __syncthreads();

    // top-k threshold: the largest bit pattern t with count(q >= t) >= k
    unsigned floor_bits = 0;
    float total, cnt;
    const int k = top_k[r];
    if (k > 0 && k < V) {
        unsigned lo = 0, hi = 0x7f800000u;  // [0, +inf)
        while (lo < hi) {
            unsigned mid = lo + (hi - lo + 1) / 2;
            kept_sum(q, V, mid, &total, &cnt, scratch);
            if (cnt >= (float)k) lo = mid; else hi = mid - 1;
        }
        floor_bits = lo;
    }
    kept_sum(q, V, floor_bits, &total, &cnt, scratch);
    const float p = top_p[r];
    if (p < 1.f) {  // the largest threshold whose kept mass is still >= p * total
        const float need = p * total;
        unsigned lo = floor_bits, hi = 0x7f800000u;
        while (lo < hi) {
            unsigned mid = lo + (hi - lo + 1) / 2;
            float s, c;
            kept_sum(q, V, mid, &s, &c, scratch);
            if (s >= need && c > 0.f) lo = mid; else hi = mid - 1;
        }
        floor_bits = lo;
        kept_sum(q, V, floor_bits, &total, &cnt, scratch);
    }

    // inverse CDF in id order: fixed contiguous segments per thread, then a scan of segments
    const unsigned long long z64 = mix64(seeds[r] + 0x9E3779B97F4A7C15ull
                                         * (unsigned long long)(steps[r] + 1));
    const double u = (double)(z64 >> 11) * 0x1.0p-53;
    const float target = (float)(u * total);
    const int seg = (V + blockDim.x - 1) / blockDim.x;
    const int b0 = threadIdx.x * seg, b1 = min(V, b0 + seg);
    float mine = 0.f;
    for (int i = b0; i < b1; i++)
        if (__float_as_uint(q[i]) >= floor_bits) mine += q[i];
    seg_prefix[threadIdx.x] = mine;
    if (threadIdx.x == 0) chosen = -1;
    __syncthreads();
    if (threadIdx.x == 0) {  // exclusive scan (1024 adds: negligible next to the passes above)
        float run = 0.f;
        for (int t = 0; t < (int)blockDim.x; t++) {
            float v = seg_prefix[t];
            seg_prefix[t] = run;
            run += v;
        }
    }
    __syncthreads();
    {
        float run = seg_prefix[threadIdx.x];
        if (b0 < b1 && run <= target && target < run + mine) {
            for (int i = b0; i < b1; i++) {
                if (__float_as_uint(q[i]) >= floor_bits) {
                    run += q[i];
                    if (target < run) {
                        chosen = i;
                        break;
                    }
                }
            }
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int c = chosen;
        if (c < 0) {  // rounding put the target at the very end: the last kept id
            for (int i = V - 1; i >= 0; i--)
                if (__float_as_uint(q[i]) >= floor_bits) {
                    c = i;
                    break;
                }
        }
        ids[r] = c;
        logprob[r] = l[c] - lse;
    }
}
