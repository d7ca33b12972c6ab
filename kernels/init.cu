// Deterministic pseudo-random fill, for synthetic benchmark models and KV caches of real shapes
// (weights generated on the device, never uploaded).
//
// init_uniform_bf16: p[i] = bf16(scale * (2 u(seed, i) - 1)), u in [0, 1) from a SplitMix64 hash
//   of (seed, i): the same (seed, n) gives the same values on any GPU and launch shape.
//   p: bf16 [n]. Grid-stride loop; any grid works.
// timeline_stamp: stamps[slot] = the GPU's global timer (ns), for a diagnostic timeline of the
//   decode step (CudaDecoder, -Dpolar.timeline=true). Grid 1, block 1.
#include "common.cuh"

__device__ __forceinline__ uint64_t splitmix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

extern "C" __global__ void init_uniform_bf16(bf16* __restrict__ p, long long n,
                                             unsigned long long seed, float scale) {
    long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        uint64_t h = splitmix64(seed + 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1));
        float u = (float)(h >> 40) * (1.0f / 16777216.0f);  // 24 random bits
        p[i] = f2bf(scale * (2.f * u - 1.f));
    }
}

extern "C" __global__ void timeline_stamp(unsigned long long* __restrict__ stamps, int slot) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    stamps[slot] = t;
}
