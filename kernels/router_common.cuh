// Polar Sparsity's per-token top-k on the device, shared by router.cu (the head router kernels)
// and decode_fused.cu (the head router fused into the q/k/v reduce).
#pragma once
#include "common.cuh"

// The k largest of up to 64 values held two per lane (lane i: entries i and i + 32; G valid),
// written to out[0..k) most likely first, ties broken by the lower index: k rounds of a warp
// argmax. Called by one whole warp.
__device__ __forceinline__ void warp_select_topk(float v0, float v1, int G, int k,
                                                 int* __restrict__ out) {
    const int lane = threadIdx.x & 31;
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
        if (lane == 0) out[j] = bi;
        if (bi == lane) taken0 = true;
        if (bi == lane + 32) taken1 = true;
    }
}
