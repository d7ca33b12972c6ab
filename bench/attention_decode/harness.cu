// Standalone timing harness for the grouped-query decode attention pass (kernels/attention.cu,
// attention_decode_paged_g4_pipe[_pairs]_bf16) on llama-3-8b's shape: 32 query heads, 8 KV
// heads, head_dim 128, every row at context N = 8192, paged KV cache of 16-position blocks.
// No Java: the kernels are loaded from a cubin through the driver API, so variants of the
// kernel source can be compared in one process. Random bf16 K, V and q (fixed seeds); per
// batch (16, 48) the median of 15 rounds of 5 back-to-back launches, and the GB/s of K and V
// read. "diff" counts the partial words (part_o, part_ml) that differ from the first run of
// the same kernel name in this process (-1: the first run): a variant that keeps the bits
// shows 0.
// Build and run on the GPU host, from the repository root:
//   nvcc -O2 -std=c++17 -o /tmp/ah bench/attention_decode/harness.cu -lcuda
//   nvcc -cubin -O3 -std=c++17 -arch=sm_90a -I kernels -o /tmp/att.cubin kernels/attention.cu
//   /tmp/ah /tmp/att.cubin /tmp/att.cubin:attention_decode_paged_g4_pipe_pairs_bf16
// Arguments: CUBIN[:KERNEL] ... (default kernel attention_decode_paged_g4_pipe_bf16).
// Environment: SPLIT (positions a split, default 256), BS (positions a KV block, 16), SF (the
// pairs kernel's single_from: the first split run as a partial of its own; default none),
// SHUFFLE=1 (the block table in random order instead of each row's blocks in a run).
// Session 13 (2026-11-26) measured with this harness's scratch form (same launches and data;
// the numbers are in bench/results/polar-H100-2026-11-26-s13.log). Since session 14 the pipelined
// kernels take five more arguments (the q/k/v GEMM's partials, their splits and row stride, the
// bias and RoPE frequencies: null and 0 here, so q comes from qkv as before); session 15 ran
// this form on the H100 (s15 log).
#include <cuda.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>
#define CK(x) do { CUresult r_ = (x); if (r_ != CUDA_SUCCESS) { const char* s_; cuGetErrorString(r_, &s_); \
    fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, s_); exit(1); } } while (0)

static uint16_t bf16_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return (uint16_t)(u >> 16); }

static void random_bf16(std::vector<uint16_t>& v, uint32_t seed, float lo, float hi) {
    for (auto& x : v) {
        seed = seed * 1664525u + 1013904223u;
        x = bf16_bits(lo + (hi - lo) * ((seed >> 8) / 16777216.0f));
    }
}

int main(int argc, char** argv) {
    CK(cuInit(0));
    CUdevice dev;
    CK(cuDeviceGet(&dev, 0));
    CUcontext ctx;
    CK(cuCtxCreate(&ctx, nullptr, 0, dev));
    int sms;
    CK(cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev));
    const int H = 32, KV = 8, D = 128, CTX = 8192, MAXB = 48;
    const int BS = getenv("BS") ? atoi(getenv("BS")) : 16;
    const int SPLIT = getenv("SPLIT") ? atoi(getenv("SPLIT")) : 256;
    const int maxBlocks = CTX / BS, splits = CTX / SPLIT;
    const size_t numBlocks = (size_t)MAXB * maxBlocks;
    const size_t cacheBytes = numBlocks * KV * BS * D * 2;
    CUdeviceptr kc, vc, qkv, table, rowOf, posOf, po, pml;
    CK(cuMemAlloc(&kc, cacheBytes));
    CK(cuMemAlloc(&vc, cacheBytes));
    {   // a 64 MB random pattern, repeated (V shifted by 8 KB against K)
        const size_t chunk = 64 << 20;
        std::vector<uint16_t> h(chunk / 2 + 4096);
        random_bf16(h, 12345, -2.f, 2.f);
        for (size_t off = 0; off < cacheBytes; off += chunk) {
            const size_t len = std::min(chunk, cacheBytes - off);
            CK(cuMemcpyHtoD(kc + off, h.data(), len));
            CK(cuMemcpyHtoD(vc + off, h.data() + 4096, len));
        }
    }
    const int qkvDim = (H + 2 * KV) * D;
    CK(cuMemAlloc(&qkv, (size_t)MAXB * qkvDim * 2));
    {
        std::vector<uint16_t> q((size_t)MAXB * qkvDim);
        random_bf16(q, 777, -1.f, 1.f);
        CK(cuMemcpyHtoD(qkv, q.data(), q.size() * 2));
    }
    std::vector<int> tb(numBlocks), ro(MAXB), pos(MAXB, CTX - 1);
    for (size_t i = 0; i < numBlocks; i++) tb[i] = (int)i;
    const bool shuffle = getenv("SHUFFLE") != nullptr;
    if (shuffle) {
        srand(1);
        for (size_t i = numBlocks - 1; i > 0; i--) std::swap(tb[i], tb[rand() % (i + 1)]);
    }
    for (int i = 0; i < MAXB; i++) ro[i] = i;
    CK(cuMemAlloc(&table, numBlocks * 4));
    CK(cuMemcpyHtoD(table, tb.data(), numBlocks * 4));
    CK(cuMemAlloc(&rowOf, MAXB * 4));
    CK(cuMemcpyHtoD(rowOf, ro.data(), MAXB * 4));
    CK(cuMemAlloc(&posOf, MAXB * 4));
    CK(cuMemcpyHtoD(posOf, pos.data(), MAXB * 4));
    const size_t maxO = (size_t)MAXB * H * splits * D, maxMl = (size_t)MAXB * H * splits * 2;
    CK(cuMemAlloc(&po, maxO * 4));
    CK(cuMemAlloc(&pml, maxMl * 4));
    CUevent e0, e1;
    CK(cuEventCreate(&e0, 0));
    CK(cuEventCreate(&e1, 0));
    // Dynamic shared memory of the pipelined kernel (AttentionKernel.pipeSharedBytes, G = 4).
    const int smem = 3 * 2 * 64 * 136 * 2 + 8 * 2 * 32 * 4 + 4 * (64 + 8) * 4 + 4 * 16 + 4 * 8;
    const int threads = 256;
    std::map<std::string, std::vector<uint32_t>> first;  // kernel name + batch -> partials
    for (int a = 1; a < argc; a++) {
        const std::string spec = argv[a];
        const size_t colon = spec.find(':');
        const std::string path = spec.substr(0, colon);
        const std::string kname = colon == std::string::npos
            ? "attention_decode_paged_g4_pipe_bf16" : spec.substr(colon + 1);
        CUmodule mod;
        CK(cuModuleLoad(&mod, path.c_str()));
        CUfunction f;
        CK(cuModuleGetFunction(&f, mod, kname.c_str()));
        CK(cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem));
        int regs, occ;
        CK(cuFuncGetAttribute(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, f));
        CK(cuOccupancyMaxActiveBlocksPerMultiprocessor(&occ, f, threads, smem));
        const bool pairs = kname.find("_pairs") != std::string::npos;
        int sf = getenv("SF") ? atoi(getenv("SF")) : splits + 1;
        // Partials per (token, head), as att_parts.
        const int pp = pairs ? std::min((splits + 1) / 2, sf / 2) : 0;
        const int parts = pairs ? pp + std::max(0, splits - 2 * pp) : splits;
        for (int n : {16, 48}) {
            float scale = 0.088388f;
            int rs = qkvDim, bs = BS, kvh = KV, heads = H, dd = D, sl = SPLIT, ns = splits,
                gpt = KV, ready = 0, mb = maxBlocks;
            CUdeviceptr gi = 0, none = 0;  // no group table; q read from qkv (no fused q/k/v)
            int zero = 0;
            void* args[] = {&qkv, &rs, &scale, &kc, &vc, &table, &mb, &bs, &rowOf, &posOf, &gi,
                            &gpt, &heads, &kvh, &dd, &sl, &ns, &po, &pml, &ready, &sf,
                            &none, &zero, &zero, &none, &none};
            CK(cuMemsetD8(po, 0xff, maxO * 4));
            CK(cuMemsetD8(pml, 0xff, maxMl * 4));
            auto launch = [&] {
                CK(cuLaunchKernel(f, n, KV, parts, threads, 1, 1, smem, 0, args, nullptr));
            };
            for (int i = 0; i < 3; i++) launch();
            std::vector<float> t;
            for (int r = 0; r < 15; r++) {
                CK(cuEventRecord(e0, 0));
                for (int i = 0; i < 5; i++) launch();
                CK(cuEventRecord(e1, 0));
                CK(cuEventSynchronize(e1));
                float ms;
                CK(cuEventElapsedTime(&ms, e0, e1));
                t.push_back(ms * 1000 / 5);
            }
            std::sort(t.begin(), t.end());
            const size_t no = (size_t)n * H * parts * D, nm = (size_t)n * H * parts * 2;
            std::vector<uint32_t> out(no + nm);
            CK(cuMemcpyDtoH(out.data(), po, no * 4));
            CK(cuMemcpyDtoH(out.data() + no, pml, nm * 4));
            auto& ref = first[kname + "/" + std::to_string(n)];
            long diff = -1;
            if (ref.empty()) {
                ref = out;
            } else {
                diff = 0;
                for (size_t i = 0; i < out.size(); i++) diff += out[i] != ref[i];
            }
            const double bytes = 2.0 * n * KV * (double)CTX * D * 2;
            printf("BS %d split %d %-60s B=%2d blocks/SM %d regs %3d %8.1f us %7.1f GB/s diff %ld%s\n",
                   BS, SPLIT, spec.c_str(), n, occ, regs, t[7], bytes / (t[7] * 1e3), diff,
                   shuffle ? " (shuffled table)" : "");
        }
        CK(cuModuleUnload(mod));
    }
    return 0;
}
