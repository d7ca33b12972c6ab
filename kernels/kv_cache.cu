// K/V append into the paged KV cache, on the device, with per-token positions (graph-safe: the
// positions are read from device memory at run time, never baked into a launch).
//
//   Cache layout (both K and V): bf16 [num_blocks, num_kv_heads, block_size, head_dim]; a
//   sequence's token at position p lives in block block_table[row * max_blocks + p / block_size]
//   at slot p % block_size. Every head is appended, whatever Polar Sparsity selects later.
//   qkv: bf16 [n, row_stride], K at column k_offset and V at v_offset (num_kv_heads * head_dim each).
//   row_of, pos_of: int32 [n]: each token's row (index into block_table) and position.
// Not checked here: block_table entries < num_blocks, pos < max_blocks * block_size (the
// scheduler guarantees both when it admits a row). Grid: (n), block: 128 threads.
#include "common.cuh"

extern "C" __global__ void kv_append_paged_bf16(bf16* __restrict__ k_cache, bf16* __restrict__ v_cache,
                                                const bf16* __restrict__ qkv, const int* __restrict__ row_of,
                                                const int* __restrict__ pos_of,
                                                const int* __restrict__ block_table, int max_blocks,
                                                int block_size, int n, int row_stride, int k_offset,
                                                int v_offset, int num_kv_heads, int head_dim) {
    int t = blockIdx.x;
    if (t >= n) return;
    int p = pos_of[t];
    int block = block_table[(size_t)row_of[t] * max_blocks + p / block_size];
    int slot = p % block_size;
    const bf16* k = qkv + (size_t)t * row_stride + k_offset;
    const bf16* v = qkv + (size_t)t * row_stride + v_offset;
    int width = num_kv_heads * head_dim;
    for (int j = threadIdx.x; j < width; j += blockDim.x) {
        int g = j / head_dim, d = j % head_dim;
        size_t dst = (((size_t)block * num_kv_heads + g) * block_size + slot) * head_dim + d;
        k_cache[dst] = k[j];
        v_cache[dst] = v[j];
    }
}
