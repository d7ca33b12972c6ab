// Token and position embeddings.
//
// embedding_tokens_f32:  x[i, d] = table[ids[i], d]                       (fp32 out)
// embedding_tokens_bf16: e[i, d] = table[ids[i], d]                       (bf16 out, for OPT's
//                        project_in, which a GEMM then accumulates into x)
// embedding_positions_f32: x[i, d] += pos_table[pos[i] + offset, d]      (OPT learned positions)
//
//   ids, pos: int32 [n]; table: bf16 [vocab, dim]; pos_table: bf16 [max_pos + offset, dim]
//   x: fp32 [n, dim]; e: bf16 [n, dim].
// Not checked here (the launcher checks them on the host): ids < vocab, pos + offset < rows of
// pos_table. Grid: (n, ceil(dim / EMB_SPAN)), block: EMB_THREADS; block (i, c) copies elements
// [c * EMB_SPAN, (c + 1) * EMB_SPAN) of row i: 16-byte loads of 8 elements a thread where dim is
// a multiple of 8 and the tensors are 16-byte aligned (row starts then are too), else one
// element at a time. (One block a row striding with 2-byte loads took 10 us for 16 rows of 4096
// on the H100: ncu, 2026-11-27.)
#include "common.cuh"

#define EMB_THREADS 256
#define EMB_SPAN (8 * EMB_THREADS)

// 16-byte loads and stores apply: dim a multiple of 8 and both tensors 16-byte aligned.
POLAR_DEVICE bool vec8(const void* a, const void* b, int dim) {
    uintptr_t bits = reinterpret_cast<uintptr_t>(a) | reinterpret_cast<uintptr_t>(b);
    return ((dim & 7) | (bits & 15)) == 0;
}

// The 8 elements at p (16-byte aligned) as fp32.
POLAR_DEVICE void load8(const bf16* __restrict__ p, float4* lo, float4* hi) {
    uint4 v = *reinterpret_cast<const uint4*>(p);
    const bf16* b = reinterpret_cast<const bf16*>(&v);
    *lo = make_float4(bf2f(b[0]), bf2f(b[1]), bf2f(b[2]), bf2f(b[3]));
    *hi = make_float4(bf2f(b[4]), bf2f(b[5]), bf2f(b[6]), bf2f(b[7]));
}

// Elements [blockIdx.y * EMB_SPAN, +EMB_SPAN) of out = row (ADD: out += row), as fp32.
template <bool ADD>
POLAR_DEVICE void row_to_f32(float* __restrict__ out, const bf16* __restrict__ row, bool vec,
                             int dim) {
    int from = blockIdx.y * EMB_SPAN, to = min(dim, from + EMB_SPAN);
    if (vec) {
        int d = from + 8 * threadIdx.x;
        if (d < to) {
            float4 lo, hi;
            load8(row + d, &lo, &hi);
            float4* o = reinterpret_cast<float4*>(out + d);
            if (ADD) {
                float4 p = o[0], q = o[1];
                lo = make_float4(p.x + lo.x, p.y + lo.y, p.z + lo.z, p.w + lo.w);
                hi = make_float4(q.x + hi.x, q.y + hi.y, q.z + hi.z, q.w + hi.w);
            }
            o[0] = lo;
            o[1] = hi;
        }
    } else {
        for (int d = from + threadIdx.x; d < to; d += EMB_THREADS)
            out[d] = ADD ? out[d] + bf2f(row[d]) : bf2f(row[d]);
    }
}

extern "C" __global__ void embedding_tokens_f32(float* __restrict__ x, const int* __restrict__ ids,
                                                const bf16* __restrict__ table, int n, int dim) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    int i = blockIdx.x;
    if (i >= n) return;
    row_to_f32<false>(x + (size_t)i * dim, table + (size_t)ids[i] * dim, vec8(table, x, dim), dim);
}

extern "C" __global__ void embedding_tokens_bf16(bf16* __restrict__ e, const int* __restrict__ ids,
                                                 const bf16* __restrict__ table, int n, int dim) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    int i = blockIdx.x;
    if (i >= n) return;
    const bf16* row = table + (size_t)ids[i] * dim;
    bf16* out = e + (size_t)i * dim;
    int from = blockIdx.y * EMB_SPAN, to = min(dim, from + EMB_SPAN);
    if (vec8(table, e, dim)) {
        int d = from + 8 * threadIdx.x;
        if (d < to) *reinterpret_cast<uint4*>(out + d) = *reinterpret_cast<const uint4*>(row + d);
    } else {
        for (int d = from + threadIdx.x; d < to; d += EMB_THREADS) out[d] = row[d];
    }
}

extern "C" __global__ void embedding_positions_f32(float* __restrict__ x, const int* __restrict__ pos,
                                                   const bf16* __restrict__ table, int offset,
                                                   int n, int dim) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    int i = blockIdx.x;
    if (i >= n) return;
    row_to_f32<true>(x + (size_t)i * dim, table + (size_t)(pos[i] + offset) * dim,
                     vec8(table, x, dim), dim);
}
