// Polar Sparsity's selections on the device, from router logits (the router projections
// themselves are GEMMs: gemm_store_f32 on the layer's normed input).
//
// router_topk_f32: per token t, idx[t, 0..k) = the k largest of logits[t, 0..G), most likely
//   first, ties broken by the lower index (the order a stable descending sort gives).
//   logits fp32 [n, G] (row stride G); idx int32 [n, k]. G <= 64, 1 <= k <= G (host-checked).
//   One warp per token: lane i holds entries i and i + 32; k rounds of a warp argmax.
// Grid: ceil(n / 4), block 128.
#include "common.cuh"

extern "C" __global__ void router_topk_f32(const float* __restrict__ logits, int n, int G, int k,
                                           int* __restrict__ idx) {
    int t = blockIdx.x * 4 + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (t >= n) return;
    const float* row = logits + (size_t)t * G;
    float v0 = lane < G ? row[lane] : -INFINITY;
    float v1 = lane + 32 < G ? row[lane + 32] : -INFINITY;
    bool taken0 = lane >= G, taken1 = lane + 32 >= G;
    for (int j = 0; j < k; j++) {
        // best of this lane's two candidates (lower index first on ties)
        float bv = -INFINITY;
        int bi = 0x7fffffff;
        if (!taken0) {
            bv = v0;
            bi = lane;
        }
        if (!taken1 && (v1 > bv || bi == 0x7fffffff)) {
            bv = v1;
            bi = lane + 32;
        }
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) {
                bv = ov;
                bi = oi;
            }
        }
        if (lane == 0) idx[(size_t)t * k + j] = bi;
        if (bi == lane) taken0 = true;
        if (bi == lane + 32) taken1 = true;
    }
}
