// Shared device helpers for every kernel family. Conventions (all kernels):
//   - activations and weights are bf16 (__nv_bfloat16), row-major; accumulation is fp32;
//   - the residual stream x is fp32 [tokens, hidden];
//   - Linear weights keep PyTorch's layout [out, in] (in contiguous);
//   - exported entry points are extern "C" and named <family>_<variant>_<dtype>.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

#define POLAR_DEVICE __device__ __forceinline__

POLAR_DEVICE float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

POLAR_DEVICE float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum for blockDim.x <= 1024 (a multiple of 32); `scratch` holds 32 floats.
POLAR_DEVICE float block_sum(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    int nw = (blockDim.x + 31) >> 5;
    v = lane < nw ? scratch[lane] : 0.f;
    return warp_sum(v);
}

// Programmatic dependent launch (sm_90+; no-ops elsewhere and when the launch did not ask for
// it). pdl_trigger: this kernel's dependents may start (they still wait for its completion in
// pdl_wait before reading what it wrote); kernels that precede a PDL-launched GEMM call it
// first thing. pdl_wait: blocks until the preceding kernel has completed and its writes are
// visible; a PDL-launched kernel calls it before its first read of another kernel's output and
// before its first global write.
POLAR_DEVICE void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
POLAR_DEVICE void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

POLAR_DEVICE float bf2f(bf16 v) { return __bfloat162float(v); }
POLAR_DEVICE bf16 f2bf(float v) { return __float2bfloat16_rn(v); }

// Rotate-half RoPE of one pair (x1 = x[i], x2 = x[i + half]) by angle = pos * inv_freq[i], rounded
// explicitly (no contraction), so that every kernel that rotates gives the same bits.
POLAR_DEVICE void rope_pair(float x1, float x2, float angle, float& o1, float& o2) {
    float s, c;
    sincosf(angle, &s, &c);
    o1 = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
    o2 = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
}
