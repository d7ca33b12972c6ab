// Rotary position embedding (Hugging Face's rotate-half convention), in place on the q and k
// parts of the fused QKV projection output.
//
//   qkv: bf16 [n, row_stride]; q heads at column 0 (num_heads * head_dim), k heads at column
//        k_offset (num_kv_heads * head_dim); v is untouched.
//   pos: int32 [n]; inv_freq: fp32 [head_dim / 2] (with linear or llama3 scaling already applied
//        on the host, in float32 as Hugging Face computes it).
//   For i < head_dim/2, angle = pos * inv_freq[i] (fp32):
//        out[i]          = x[i] cos - x[i + half] sin
//        out[i + half]   = x[i + half] cos + x[i] sin
// Grid: (n, ceil((num_heads + num_kv_heads) * head_dim / 2 / 128)), block 128: one (head, i)
// pair per thread. head_dim must be even (host-checked).
#include "common.cuh"

extern "C" __global__ void rope_rotate_half_bf16(bf16* __restrict__ qkv, const int* __restrict__ pos,
                                                 const float* __restrict__ inv_freq, int n,
                                                 int row_stride, int num_heads, int num_kv_heads,
                                                 int k_offset, int head_dim) {
    int t = blockIdx.x;
    if (t >= n) return;
    int half = head_dim / 2;
    int heads = num_heads + num_kv_heads;
    float p = (float)pos[t];
    bf16* row = qkv + (size_t)t * row_stride;
    int j = blockIdx.y * blockDim.x + threadIdx.x;  // one (head, i) pair per thread
    if (j < heads * half) {
        int h = j / half, i = j % half;
        bf16* v = h < num_heads ? row + h * head_dim : row + k_offset + (h - num_heads) * head_dim;
        float o1, o2;
        rope_pair(bf2f(v[i]), bf2f(v[i + half]), __fmul_rn(p, inv_freq[i]), o1, o2);
        v[i] = f2bf(o1);
        v[i + half] = f2bf(o2);
    }
}
