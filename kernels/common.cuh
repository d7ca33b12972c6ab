// Shared device helpers for every kernel family. Conventions (all kernels):
//   - activations, weights and the KV cache are 16-bit (`bf16`, below), row-major; accumulation
//     is fp32;
//   - the residual stream x is fp32 [tokens, hidden];
//   - Linear weights keep PyTorch's layout [out, in] (in contiguous);
//   - exported entry points are extern "C" and named <family>_<variant>_<dtype>.
//
// One source, two images. kernels/build.sh compiles every file twice: as is (<family>.fatbin,
// bfloat16) and with -DPOLAR_FP16 (<family>_f16.fatbin, IEEE half). The 16-bit type keeps the
// name `bf16` in both, with bf2f / f2bf / f2bf2 and the PTX operand type POLAR_MMA_AB, so the
// kernels themselves do not change between images; read `bf16` (and an entry point's `_bf16`
// suffix) as "the image's 16-bit element type". Both images export the same entry points.
// fp16 has 3 more mantissa bits than bf16 but a range of +-65504: f2bf overflows to +-inf above
// it (round to nearest even: from 65520 up), where bf16 would keep ~3 significant digits. The
// fp32 residual stream never is 16-bit; every GEMM output, norm output, attention output and the
// K/V cache are.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#ifdef POLAR_FP16
typedef __half bf16;      // the fp16 image: see the header comment for the name
typedef __half2 bf16x2;
#define POLAR_MMA_AB "f16.f16"
#define POLAR_ELEMENT_DTYPE 1
#else
typedef __nv_bfloat16 bf16;
typedef __nv_bfloat162 bf16x2;
#define POLAR_MMA_AB "bf16.bf16"
#define POLAR_ELEMENT_DTYPE 0
#endif

// Which element type this image was built for (0: bf16, 1: fp16); the Java loader reads it
// (cuModuleGetGlobal) and refuses an image of the other type.
extern "C" __device__ int polar_element_dtype = POLAR_ELEMENT_DTYPE;

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

// 16-bit <-> fp32, round to nearest even (the host's Bf16 / Fp16 give the same bits).
#ifdef POLAR_FP16
POLAR_DEVICE float bf2f(bf16 v) { return __half2float(v); }
POLAR_DEVICE bf16 f2bf(float v) { return __float2half_rn(v); }
POLAR_DEVICE bf16x2 f2bf2(float lo, float hi) { return __floats2half2_rn(lo, hi); }
#else
POLAR_DEVICE float bf2f(bf16 v) { return __bfloat162float(v); }
POLAR_DEVICE bf16 f2bf(float v) { return __float2bfloat16_rn(v); }
// Two values packed, lo in the low 16 bits (.x).
POLAR_DEVICE bf16x2 f2bf2(float lo, float hi) { return __floats2bfloat162_rn(lo, hi); }
#endif

// Rotate-half RoPE of one pair (x1 = x[i], x2 = x[i + half]) by angle = pos * inv_freq[i], rounded
// explicitly (no contraction), so that every kernel that rotates gives the same bits.
POLAR_DEVICE void rope_pair(float x1, float x2, float angle, float& o1, float& o2) {
    float s, c;
    sincosf(angle, &s, &c);
    o1 = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
    o2 = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
}
