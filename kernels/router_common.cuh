// Polar Sparsity's per-token top-k on the device, shared by router.cu (the head router kernels)
// and decode_fused.cu (the head router fused into the q/k/v reduce).
#pragma once
#include "common.cuh"

// The k largest of up to 64 values held two per lane (lane i: entries i and i + 32; G valid),
// written to out[0..k) most likely first, ties broken by the lower index (NaN counts as -inf).
// Each entry's place in that order is the number of entries before it (larger, or equal with a
// lower index), counted over the G entries broadcast one by one: G shuffles instead of k rounds
// of a warp argmax. Called by one whole warp.
__device__ __forceinline__ void warp_select_topk(float v0, float v1, int G, int k,
                                                 int* __restrict__ out) {
    const int lane = threadIdx.x & 31;
    if (v0 != v0) v0 = -INFINITY;
    if (v1 != v1) v1 = -INFINITY;
    int r0 = 0, r1 = 0;
    const int g_lo = G < 32 ? G : 32;
    for (int j = 0; j < g_lo; j++) {  // entry j: lane j's first value
        const float u = __shfl_sync(0xffffffffu, v0, j);
        r0 += (u > v0) || (u == v0 && j < lane);
        r1 += u >= v1;  // j < lane + 32 always
    }
    for (int j = 32; j < G; j++) {  // entry j: lane j - 32's second value
        const float u = __shfl_sync(0xffffffffu, v1, j - 32);
        r0 += u > v0;  // j > lane always
        r1 += (u > v1) || (u == v1 && j < lane + 32);
    }
    if (lane < G && r0 < k) out[r0] = lane;
    if (lane + 32 < G && r1 < k) out[r1] = lane + 32;
}
