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

// Shared-memory staging (sm_80+): cp.async copies, ldmatrix and the m16n8k16 tensor-core step,
// used by the GEMM, prefill and decode attention kernels.
POLAR_DEVICE uint32_t smem_addr(const void* p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

// 16-byte cp.async to a shared address; src_size 0 reads nothing and zero-fills.
POLAR_DEVICE void cp_async16_sz(uint32_t dst, const void* src, int src_size) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(src_size));
}

// As cp_async16_sz, asking L2 to fetch the whole 256-byte line pair around src: a row read
// 128 bytes at a time then reaches HBM in 256-byte pieces (the other half hits L2).
POLAR_DEVICE void cp_async16_sz_l2_256(uint32_t dst, const void* src, int src_size) {
    asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;\n" ::"r"(dst),
                 "l"(src), "r"(src_size));
}

// L2 residency of streams read once (sm_80+). The decode GEMMs stream each weight exactly
// once per step (30-300 MB a launch, up to six times L2), and attention each K and V row,
// while the split-K partials the GEMMs write (up to 30 MB a launch at 64 rows) are read back
// by the reduce right after, and the activations by every block. Weights and K / V fetched
// with the evict-first policy leave those (normal priority) in L2, and the reduces drop large
// partials' lines once read (l2_discard_span), so that scratch is neither re-read from HBM
// nor written back to it. H100, polar-bench, same call (2026-11-26): weights evict-first
// alone took 0.5-1.5% off every decode step (llama-2-7b B=8 11.10 -> 10.93 ms, opt-6.7b
// Polar B=64 17.53 -> 17.35); the discards then llama-3-8b B=48 25.90 -> 25.65, and K / V
// evict-first in the GQA pass 25.65 -> 24.97. -DPOLAR_L2_HINTS=0 builds without all three.
#ifndef POLAR_L2_HINTS
#define POLAR_L2_HINTS 1
#endif

// An L2 cache policy: evict the lines it brings in before others.
POLAR_DEVICE uint64_t l2_evict_first() {
    uint64_t p = 0;
#if POLAR_L2_HINTS && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(p));
#endif
    return p;
}

// cp_async16_sz with an L2 cache policy (plain cp_async16_sz when built without hints).
POLAR_DEVICE void cp_async16_sz_hint(uint32_t dst, const void* src, int src_size,
                                     uint64_t policy) {
#if POLAR_L2_HINTS
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;\n" ::"r"(dst),
                 "l"(src), "r"(src_size), "l"(policy));
#else
    cp_async16_sz(dst, src, src_size);
#endif
}

// cp_async16_sz_l2_256 with an L2 cache policy.
POLAR_DEVICE void cp_async16_sz_l2_256_hint(uint32_t dst, const void* src, int src_size,
                                            uint64_t policy) {
#if POLAR_L2_HINTS
    asm volatile("cp.async.cg.shared.global.L2::cache_hint.L2::256B [%0], [%1], 16, %2, %3;\n"
                 ::"r"(dst), "l"(src), "r"(src_size), "l"(policy));
#else
    cp_async16_sz_l2_256(dst, src, src_size);
#endif
}

// 4 and 8-byte loads through the read-only path with an L2 cache policy (the KV cache stream),
// each miss fetching its whole 256-byte block from HBM (.L2::256B: a cache row is 256 bytes at
// head_dim 128, and the neighbouring lanes want the rest). H100, polar-bench, same call, two
// rounds (2026-11-27, with the pipelined pass's copies below): llama-2-7b B=8 10.787 / 10.734
// -> 10.713 / 10.719 ms, Polar B=16 11.10 / 11.11 -> 11.05 / 11.05; opt-6.7b within noise. The
// pair form's plain loads with it spilled and lost 4% (not kept).
POLAR_DEVICE unsigned ld_stream_u32(const void* p, uint64_t policy) {
#if POLAR_L2_HINTS
    unsigned v;
    asm("ld.global.nc.L2::cache_hint.L2::256B.u32 %0, [%1], %2;\n" : "=r"(v) : "l"(p), "l"(policy));
    return v;
#else
    return __ldg(reinterpret_cast<const unsigned*>(p));
#endif
}
POLAR_DEVICE uint2 ld_stream_u2(const void* p, uint64_t policy) {
#if POLAR_L2_HINTS
    uint2 v;
    asm("ld.global.nc.L2::cache_hint.L2::256B.v2.u32 {%0, %1}, [%2], %3;\n"
        : "=r"(v.x), "=r"(v.y) : "l"(p), "l"(policy));
    return v;
#else
    return __ldg(reinterpret_cast<const uint2*>(p));
#endif
}

// Whether a reduce drops its partials from L2 (l2_discard_span): only where they are many
// (splits x rows x columns x 4 bytes of at least POLAR_DISCARD_MIN). Smaller partials lose
// more to the extra barrier in a reduce on the critical path than the write-back costs (same
// call, H100: discarding every launch's made batch 1 ~1.5% slower; from 4 MB, opt-6.7b's
// 4.2 MB partials at B=64 made its Polar step 17.28 -> 17.37 ms, while llama-3-8b B=16's
// 7.3 MB gate/up partials gained 12.25 -> 12.12 against a bound of 8 MB).
#ifndef POLAR_DISCARD_MIN
#define POLAR_DISCARD_MIN (6u << 20)
#endif
POLAR_DEVICE bool l2_discard_worth(size_t bytes) {
    return POLAR_L2_HINTS && bytes >= (size_t)POLAR_DISCARD_MIN;
}

// Drops, without writing them back to HBM, the 128-byte L2 lines lying wholly inside
// [lo, lo + bytes): scratch that nothing reads again (lines shared with data outside the span
// are kept). Thread t of `threads` takes lines t, t + threads, ... Call it only after every
// thread that read the span has its values (a barrier after their use) and before anything
// writes the span again. Without hints it does nothing (the lines are written back as usual).
POLAR_DEVICE void l2_discard_span(const void* lo, size_t bytes, int t, int threads) {
#if POLAR_L2_HINTS && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const uintptr_t a = ((uintptr_t)lo + 127) & ~(uintptr_t)127;
    const uintptr_t e = ((uintptr_t)lo + bytes) & ~(uintptr_t)127;
    for (uintptr_t p = a + (uintptr_t)t * 128; p + 128 <= e; p += (uintptr_t)threads * 128)
        asm volatile("discard.global.L2 [%0], 128;\n" ::"l"(p) : "memory");
#endif
}

// Closes the thread's cp.async group (issue one per stage, also an empty one: the count of
// groups then stays uniform for cp_async_wait).
POLAR_DEVICE void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

// Waits until at most N of the thread's cp.async groups are pending.
template <int N>
POLAR_DEVICE void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// Four 8x8 b16 matrices from shared memory (lanes 8i..8i+7 give matrix i's row addresses).
POLAR_DEVICE void ldsm_x4_at(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
POLAR_DEVICE void ldsm_x4(uint32_t (&r)[4], const void* p) { ldsm_x4_at(r, smem_addr(p)); }

// The same, each matrix transposed.
POLAR_DEVICE void ldsm_x4_t(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}

// c (16 x 8 fp32) += a (16 x 16, row-major fragment) * b (16 x 8, column-major fragment), the
// image's 16-bit type in, fp32 accumulation.
POLAR_DEVICE void mma_16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32." POLAR_MMA_AB ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
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

// Two values rounded and packed into 32 bits, lo in the low half (an mma.sync operand register).
POLAR_DEVICE uint32_t pack2(float lo, float hi) {
    bf16x2 v = f2bf2(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}

// Rotate-half RoPE of one pair (x1 = x[i], x2 = x[i + half]) by angle = pos * inv_freq[i], rounded
// explicitly (no contraction), so that every kernel that rotates gives the same bits.
POLAR_DEVICE void rope_pair(float x1, float x2, float angle, float& o1, float& o2) {
    float s, c;
    sincosf(angle, &s, &c);
    o1 = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
    o2 = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
}

// One pair (columns c1 and c2 = c1 + head_dim / 2 of a q/k/v row m) from a GEMM's split-K
// partials work[z][M][ldw]: summed over z in order, + bias (or + 0), rounded; then, with rope,
// rotated by angle and rounded again. The bits of gemm_reduce's STORE_BF16 epilogue followed by
// rope.cu, for every kernel that reduces q/k/v (decode_fused.cu, the pipelined attention pass).
POLAR_DEVICE void qkv_pair_reduce(const float* __restrict__ work, int splits, int M, int m,
                                  int ldw, const bf16* __restrict__ bias, int c1, int c2,
                                  bool rope, float angle, bf16& o1, bf16& o2) {
    float a1 = 0.f, a2 = 0.f;
#pragma unroll 4
    for (int z = 0; z < splits; z++) {
        const float* wz = work + ((size_t)z * M + m) * ldw;
        a1 += wz[c1];
        a2 += wz[c2];
    }
    a1 += bias ? bf2f(bias[c1]) : 0.f;  // as the GEMM epilogue: + 0 without a bias
    a2 += bias ? bf2f(bias[c2]) : 0.f;
    o1 = f2bf(a1);
    o2 = f2bf(a2);
    if (rope) {
        float r1, r2;
        rope_pair(bf2f(o1), bf2f(o2), angle, r1, r2);
        o1 = f2bf(r1);
        o2 = f2bf(r2);
    }
}
