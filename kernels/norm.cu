// Normalisation of the fp32 residual stream into the bf16 input of the next projection.
//
// norm_layer_f32:  y[i] = (x[i] - mean) / sqrt(var + eps) * w + b          (LayerNorm, OPT)
// norm_rms_f32:    y[i] = x[i] / sqrt(mean(x^2) + eps) * w                  (RMSNorm, LLaMA)
//   x: fp32 [n, h] (row stride h); y: bf16 [n, h]; w, b: bf16 [h] or null (no affine / no bias).
//   If write_back != 0, the normalised fp32 values are also stored back into x (post-norm OPT,
//   where the residual stream itself is normalised).
//   The residual add is fused into the GEMM epilogue that produces x (EPI_ACCUM_F32), so these
//   kernels read each residual row exactly once.
// norm_cast_f32: y = bf16(x) (post-norm OPT feeds the un-normalised stream to the projections).
// norm_gather_f32: out[j] = x[rows[j]] (fp32 rows picked for the LM head).
// Grid: (n) rows; block: NORM_THREADS. Statistics in fp32 with a two-pass variance, over values
// held in registers (norm_common.cuh), the same code as the fused decode reduce
// (decode_fused.cu), so both give the same bits; h <= 16384 (host-checked). Rows with h % 4 != 0
// (which the fused path never takes) use a scalar loop.
#include "norm_common.cuh"

// Rows whose length is not a multiple of 4 (never the fused path): the same statistics, over
// values re-read from x.
template <bool RMS>
__device__ void norm_row_scalar(float* __restrict__ xr, bf16* __restrict__ yr,
                                const bf16* __restrict__ w, const bf16* __restrict__ b, float eps,
                                int h, int write_back, float* scratch) {
    float mean = 0.f;
    if (!RMS) {
        float s = 0.f;
        for (int d = threadIdx.x; d < h; d += blockDim.x) s += xr[d];
        mean = block_sum(s, scratch) / h;
    }
    float s2 = 0.f;
    for (int d = threadIdx.x; d < h; d += blockDim.x) {
        float t = xr[d] - mean;
        s2 += t * t;
    }
    float inv = rsqrtf(block_sum(s2, scratch) / h + eps);
    for (int d = threadIdx.x; d < h; d += blockDim.x) {
        float v = (xr[d] - mean) * inv;
        if (w) v *= bf2f(w[d]);
        if (b) v += bf2f(b[d]);
        yr[d] = f2bf(v);
        if (write_back) xr[d] = v;
    }
}

template <bool RMS>
__device__ void norm_row(float* x, bf16* y, const bf16* w, const bf16* b, float eps, int n, int h,
                         int write_back) {
    __shared__ float scratch[32];
    int i = blockIdx.x;
    if (i >= n) return;
    if (h % 4 != 0) {
        norm_row_scalar<RMS>(x + (size_t)i * h, y + (size_t)i * h, w, b, eps, h, write_back,
                             scratch);
        return;
    }
    float4 v[NORM_MAXJ];
    norm_load_row(x + (size_t)i * h, h, v);
    norm_row_regs<RMS>(v, h, eps, w, b, scratch);
    norm_store_row(v, h, y + (size_t)i * h, write_back ? x + (size_t)i * h : nullptr);
}

extern "C" __global__ void __launch_bounds__(NORM_THREADS)
    norm_layer_f32(float* x, bf16* y, const bf16* w, const bf16* b, float eps, int n, int h,
                   int write_back) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    norm_row<false>(x, y, w, b, eps, n, h, write_back);
}

extern "C" __global__ void __launch_bounds__(NORM_THREADS)
    norm_rms_f32(float* x, bf16* y, const bf16* w, float eps, int n, int h, int write_back) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    norm_row<true>(x, y, w, nullptr, eps, n, h, write_back);
}

extern "C" __global__ void norm_cast_f32(const float* __restrict__ x, bf16* __restrict__ y, int n,
                                         int h) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    int i = blockIdx.x;
    if (i >= n) return;
    for (int d = threadIdx.x; d < h; d += blockDim.x)
        y[(size_t)i * h + d] = f2bf(x[(size_t)i * h + d]);
}

extern "C" __global__ void norm_gather_f32(float* __restrict__ out, const float* __restrict__ x,
                                           const int* __restrict__ rows, int n, int h) {
    pdl_trigger();  // a PDL-launched GEMM may follow
    int j = blockIdx.x;
    if (j >= n) return;
    const float* src = x + (size_t)rows[j] * h;
    for (int d = threadIdx.x; d < h; d += blockDim.x) out[(size_t)j * h + d] = src[d];
}
