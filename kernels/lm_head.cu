// Token choice and log-probabilities from fp32 logits, on the device.
//
// lmhead_argmax_f32: per row, ids[r] = argmax_v logits[r, v] (lowest id among equal maxima),
//   logprob[r] = logits[r, ids[r]] - logsumexp_v logits[r, v].
// lmhead_logprob_f32: per row, logprob[r] = logits[r, ids[r]] - logsumexp(logits[r]) for given
//   ids (scoring), and greedy[r] = 1 if ids[r] is the row's argmax (the lowest id among equal
//   maxima, as lmhead_argmax_f32 picks).
//   logits: fp32 [rows, vocab]; ids int32 [rows]; logprob fp32 [rows]; greedy int32 [rows].
//
// One pass over the logits, split over many blocks: grid (chunks, rows), block LMHEAD_THREADS;
// the launcher's chunks depend on the vocabulary only, so a row's bits never depend on the
// other rows of a launch.
// Block (c, r) reads logits[r, c * chunk, min(vocab, (c + 1) * chunk)) once and keeps, per thread
// and then per block, the running maximum, the lowest id holding it and the sum of exp(l - max)
// (rescaled when the maximum grows). It writes that triple to part[r * chunks + c]; the last
// block of row r to finish (a ticket in counters[r], which it resets to 0 for the next launch or
// graph replay) merges the row's triples in chunk order and writes the row's results. Chunks,
// per-thread orders and reduction trees are fixed, so the results are deterministic.
//   chunk: a multiple of 4 * LMHEAD_THREADS; part: float2 (max, sum) [rows * chunks] then int
//   (id) [rows * chunks]; counters: uint32 [rows], zero before the first launch.
// A row of one value repeated has logprob -log(vocab); -inf logits count as probability 0; a NaN
// logit is never the argmax and makes the row's logprob NaN. One block per row of 128K logits,
// two passes (the old form), was latency-bound: 0.30 ms at 16 rows on the H100 (ncu,
// 2026-11-27).
// Launched as a programmatic dependent of the LM head GEMM (reads nothing before pdl_wait).
#include "common.cuh"

#define LMHEAD_THREADS 256

struct RowStat {
    float m;  // maximum so far (-inf: none)
    float s;  // sum of exp(l - m) over the values seen
    int i;    // lowest id holding m
};

// Adds value x of id v; ids arrive in increasing order, so a later equal maximum keeps i.
POLAR_DEVICE void stat_add(RowStat& a, float x, int v) {
    if (x > a.m) {
        a.s = a.s * expf(a.m - x) + 1.f;  // a.m == -inf: a.s is 0 (or NaN, kept)
        a.m = x;
        a.i = v;
    } else if (x != -INFINITY) {
        a.s += expf(x - a.m);  // NaN x: NaN sum
    }
}

POLAR_DEVICE float stat_scaled(const RowStat& a, float m) {
    return a.m == m ? a.s : a.s * expf(a.m - m);
}

POLAR_DEVICE RowStat stat_merge(const RowStat& a, const RowStat& b) {
    RowStat r;
    r.m = fmaxf(a.m, b.m);
    r.s = stat_scaled(a, r.m) + stat_scaled(b, r.m);
    r.i = b.m > a.m || (b.m == a.m && b.i < a.i) ? b.i : a.i;
    return r;
}

POLAR_DEVICE RowStat stat_shfl(const RowStat& a, int o) {
    return RowStat{__shfl_xor_sync(0xffffffffu, a.m, o), __shfl_xor_sync(0xffffffffu, a.s, o),
                   __shfl_xor_sync(0xffffffffu, a.i, o)};
}

// Block-wide merge (blockDim.x == LMHEAD_THREADS); every thread gets the result.
POLAR_DEVICE RowStat block_stat(RowStat a) {
    __shared__ RowStat sw[LMHEAD_THREADS / 32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) a = stat_merge(a, stat_shfl(a, o));
    __syncthreads();
    if (lane == 0) sw[warp] = a;
    __syncthreads();
    a = lane < LMHEAD_THREADS / 32 ? sw[lane] : RowStat{-INFINITY, 0.f, 0x7fffffff};
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) a = stat_merge(a, stat_shfl(a, o));
    return a;
}

// The merged statistics of row blockIdx.y in the last block to finish it (true), or false.
POLAR_DEVICE bool row_stats(const float* __restrict__ logits, int vocab, int chunk,
                            float2* __restrict__ part, unsigned* __restrict__ counters,
                            RowStat* out) {
    int r = blockIdx.y, c = blockIdx.x, chunks = gridDim.x;
    pdl_wait();  // the logits come from the kernel before
    const float* row = logits + (size_t)r * vocab;
    int from = c * chunk, to = min(vocab, from + chunk);
    RowStat a{-INFINITY, 0.f, 0x7fffffff};
    if ((vocab & 3) == 0) {
        // 16-byte loads (rows and chunks start 16-byte aligned), four in flight per thread.
        const float4* p = reinterpret_cast<const float4*>(row + from);
        int n4 = (to - from) >> 2;
        for (int j = threadIdx.x; j < n4; j += 4 * LMHEAD_THREADS) {
            float4 v[4];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                int jj = j + u * LMHEAD_THREADS;
                v[u] = jj < n4 ? __ldcs(p + jj) : make_float4(-INFINITY, -INFINITY, -INFINITY,
                                                              -INFINITY);
            }
#pragma unroll
            for (int u = 0; u < 4; u++) {
                int id = from + 4 * (j + u * LMHEAD_THREADS);
                stat_add(a, v[u].x, id);
                stat_add(a, v[u].y, id + 1);
                stat_add(a, v[u].z, id + 2);
                stat_add(a, v[u].w, id + 3);
            }
        }
    } else {
        for (int v = from + threadIdx.x; v < to; v += LMHEAD_THREADS) stat_add(a, row[v], v);
    }
    a = block_stat(a);
    int* part_id = reinterpret_cast<int*>(part + (size_t)gridDim.y * chunks);
    __shared__ bool last;
    if (threadIdx.x == 0) {
        part[(size_t)r * chunks + c] = make_float2(a.m, a.s);
        part_id[(size_t)r * chunks + c] = a.i;
        __threadfence();
        last = atomicAdd(counters + r, 1u) == (unsigned)(chunks - 1);
    }
    __syncthreads();
    if (!last) return false;
    __threadfence();
    RowStat m{-INFINITY, 0.f, 0x7fffffff};
    for (int k = threadIdx.x; k < chunks; k += LMHEAD_THREADS) {
        float2 ms = __ldcg(part + (size_t)r * chunks + k);
        m = stat_merge(m, RowStat{ms.x, ms.y, __ldcg(part_id + (size_t)r * chunks + k)});
    }
    m = block_stat(m);
    if (threadIdx.x == 0) counters[r] = 0u;
    *out = m;
    return true;
}

extern "C" __global__ void __launch_bounds__(LMHEAD_THREADS)
lmhead_argmax_f32(const float* __restrict__ logits, int rows, int vocab, int chunk,
                  int* __restrict__ ids, float* __restrict__ logprob, float2* __restrict__ part,
                  unsigned* __restrict__ counters) {
    RowStat m;
    if (!row_stats(logits, vocab, chunk, part, counters, &m)) return;
    if (threadIdx.x == 0) {
        int r = blockIdx.y;
        ids[r] = m.i;
        logprob[r] = m.m - (m.m + logf(m.s));
    }
}

extern "C" __global__ void __launch_bounds__(LMHEAD_THREADS)
lmhead_logprob_f32(const float* __restrict__ logits, int rows, int vocab, int chunk,
                   const int* __restrict__ ids, float* __restrict__ logprob,
                   int* __restrict__ greedy, float2* __restrict__ part,
                   unsigned* __restrict__ counters) {
    RowStat m;
    if (!row_stats(logits, vocab, chunk, part, counters, &m)) return;
    if (threadIdx.x == 0) {
        int r = blockIdx.y;
        float l = logits[(size_t)r * vocab + ids[r]];
        logprob[r] = l - (m.m + logf(m.s));
        greedy[r] = ids[r] == m.i ? 1 : 0;
    }
}
