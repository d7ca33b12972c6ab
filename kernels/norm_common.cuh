// Row normalisation over values held in registers, shared by norm.cu and decode_fused.cu so that
// the standalone norm and the one fused into the decode step's split-K reduce give the same bits.
// A block of NORM_THREADS threads owns one row of h fp32 values: thread t holds the float4
// groups t + NORM_THREADS * j (columns 4 (t + NORM_THREADS j) .. + 3), for h % 4 == 0 and
// h <= 4 * NORM_THREADS * NORM_MAXJ. Every product and sum below is rounded explicitly (no
// contraction), and the reduction tree is fixed by the block size.
#pragma once
#include "common.cuh"

// 1024 threads a row (was 256 with 16 groups a thread): at batch 1 a row is one block on one
// SM, and four times the warps keep four times the loads in flight; the fused residual + norm
// went from 9.5 to 5.5 us a call (H100, llama-2-7b, 2026-11-26).
#define NORM_THREADS 1024
#define NORM_MAXJ 4

POLAR_DEVICE bool norm_has(int j, int h) { return 4 * (threadIdx.x + NORM_THREADS * j) < h; }

POLAR_DEVICE void norm_load_row(const float* __restrict__ xr, int h, float4 (&v)[NORM_MAXJ]) {
#pragma unroll
    for (int j = 0; j < NORM_MAXJ; j++)
        v[j] = norm_has(j, h) ? reinterpret_cast<const float4*>(xr)[threadIdx.x + NORM_THREADS * j]
                              : make_float4(0.f, 0.f, 0.f, 0.f);
}

// Four bf16 (8 bytes) as floats.
POLAR_DEVICE void unpack4_bf16(const uint2 u, float (&f)[4]) {
    const bf16* p = reinterpret_cast<const bf16*>(&u);
#pragma unroll
    for (int e = 0; e < 4; e++) f[e] = bf2f(p[e]);
}

// In place: v = (v - mean) / sqrt(var + eps) * w + b (LayerNorm) or v / sqrt(mean(v^2) + eps)
// * w (RMS); w, b may be null.
template <bool RMS>
POLAR_DEVICE void norm_row_regs(float4 (&v)[NORM_MAXJ], int h, float eps,
                                const bf16* __restrict__ w, const bf16* __restrict__ b,
                                float* scratch) {
    float mean = 0.f;
    if (!RMS) {
        float s = 0.f;
#pragma unroll
        for (int j = 0; j < NORM_MAXJ; j++)
            if (norm_has(j, h))
                s = __fadd_rn(s, __fadd_rn(__fadd_rn(v[j].x, v[j].y), __fadd_rn(v[j].z, v[j].w)));
        mean = __fdiv_rn(block_sum(s, scratch), (float)h);
    }
    float s2 = 0.f;
#pragma unroll
    for (int j = 0; j < NORM_MAXJ; j++)
        if (norm_has(j, h)) {
            float a = __fsub_rn(v[j].x, mean), c = __fsub_rn(v[j].y, mean);
            float d = __fsub_rn(v[j].z, mean), e = __fsub_rn(v[j].w, mean);
            s2 = __fadd_rn(s2, __fadd_rn(__fadd_rn(__fmul_rn(a, a), __fmul_rn(c, c)),
                                         __fadd_rn(__fmul_rn(d, d), __fmul_rn(e, e))));
        }
    const float inv = rsqrtf(__fadd_rn(__fdiv_rn(block_sum(s2, scratch), (float)h), eps));
#pragma unroll
    for (int j = 0; j < NORM_MAXJ; j++)
        if (norm_has(j, h)) {
            const int g = threadIdx.x + NORM_THREADS * j;  // 4 columns from 4 g (8-byte loads)
            float wf[4] = {1.f, 1.f, 1.f, 1.f}, bf[4] = {0.f, 0.f, 0.f, 0.f};
            if (w) unpack4_bf16(reinterpret_cast<const uint2*>(w)[g], wf);
            if (b) unpack4_bf16(reinterpret_cast<const uint2*>(b)[g], bf);
            float o[4] = {v[j].x, v[j].y, v[j].z, v[j].w};
#pragma unroll
            for (int e = 0; e < 4; e++) {
                o[e] = __fmul_rn(__fsub_rn(o[e], mean), inv);
                if (w) o[e] = __fmul_rn(o[e], wf[e]);
                if (b) o[e] = __fadd_rn(o[e], bf[e]);
            }
            v[j] = make_float4(o[0], o[1], o[2], o[3]);
        }
}

// y = bf16(v); x = v too when x is not null (post-norm write-back).
POLAR_DEVICE void norm_store_row(const float4 (&v)[NORM_MAXJ], int h, bf16* __restrict__ y,
                                 float* __restrict__ x) {
#pragma unroll
    for (int j = 0; j < NORM_MAXJ; j++)
        if (norm_has(j, h)) {
            const int g = threadIdx.x + NORM_THREADS * j;
            bf16x2 lo = f2bf2(v[j].x, v[j].y);
            bf16x2 hi = f2bf2(v[j].z, v[j].w);
            uint2 packed;
            packed.x = *reinterpret_cast<uint32_t*>(&lo);
            packed.y = *reinterpret_cast<uint32_t*>(&hi);
            reinterpret_cast<uint2*>(y)[g] = packed;
            if (x) reinterpret_cast<float4*>(x)[g] = v[j];
        }
}
