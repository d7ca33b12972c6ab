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
// pos_table. Grid: (n), block: 256 threads striding over dim.
#include "common.cuh"

extern "C" __global__ void embedding_tokens_f32(float* __restrict__ x, const int* __restrict__ ids,
                                                const bf16* __restrict__ table, int n, int dim) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    int i = blockIdx.x;
    if (i >= n) return;
    const bf16* row = table + (size_t)ids[i] * dim;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) x[(size_t)i * dim + d] = bf2f(row[d]);
}

extern "C" __global__ void embedding_tokens_bf16(bf16* __restrict__ e, const int* __restrict__ ids,
                                                 const bf16* __restrict__ table, int n, int dim) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    int i = blockIdx.x;
    if (i >= n) return;
    const bf16* row = table + (size_t)ids[i] * dim;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) e[(size_t)i * dim + d] = row[d];
}

extern "C" __global__ void embedding_positions_f32(float* __restrict__ x, const int* __restrict__ pos,
                                                   const bf16* __restrict__ table, int offset,
                                                   int n, int dim) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    int i = blockIdx.x;
    if (i >= n) return;
    const bf16* row = table + (size_t)(pos[i] + offset) * dim;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) x[(size_t)i * dim + d] += bf2f(row[d]);
}
