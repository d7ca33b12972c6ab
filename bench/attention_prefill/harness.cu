// Standalone harness for kernels/attention_prefill.cu (no Java): correctness vs an fp64 CPU
// reference and vs the flash-decoding kernel, bitwise chunking/batch invariance, and timing
// (cudaEvents, median of 30; the decode-kernel-for-prefill path, median of 20) on real shapes.
// Build and run from the repository root (the kernels are #included):
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90,code=sm_90 -I kernels \
//        -o /tmp/prefill_harness bench/attention_prefill/harness.cu && /tmp/prefill_harness
// ("quick": correctness only). Since kernels/common.cuh defines the image's dtype marker
// (extern "C" __device__ polar_element_dtype) the host link fails on an undefined reference to
// it (nvcc 13.0, with or without -rdc); the calls match the kernels' current arguments.
#include "attention_prefill.cu"
#include "attention.cu"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <vector>
#include <random>
#include <algorithm>
#include <numeric>
#include <string>

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__, #x); exit(1);} } while (0)

static uint16_t f2b(float f) { uint32_t u; memcpy(&u, &f, 4); u += 0x7FFF + ((u >> 16) & 1); return u >> 16; }
static float b2f(uint16_t b) { uint32_t u = (uint32_t)b << 16; float f; memcpy(&f, &u, 4); return f; }

struct Seg { int row, p0, len; };  // queries p0..p0+len-1 of row `row`; K/V appended up to p0+len

struct Problem {
    int H, KV, D, BS = 16;
    std::vector<int> seqLen;        // appended length per row (K/V valid in [0, seqLen))
    int maxBlocks, numBlocks;
    std::vector<int> table;         // [rows, maxBlocks]
    std::vector<uint16_t> kc, vc;   // cache
    bf16 *dK = nullptr, *dV = nullptr; int* dTable = nullptr;
};

static void make_problem(Problem& P, std::mt19937& rng, int H, int KV, int D, std::vector<int> lens,
                         bool poison) {
    P.H = H; P.KV = KV; P.D = D; P.seqLen = lens;
    int rows = lens.size();
    P.maxBlocks = 0;
    for (int l : lens) P.maxBlocks = std::max(P.maxBlocks, (l + P.BS - 1) / P.BS);
    P.numBlocks = rows * P.maxBlocks + 7;
    std::vector<int> pool(P.numBlocks);
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), rng);  // scattered, non-contiguous blocks
    P.table.assign(rows * P.maxBlocks, 0);
    for (size_t i = 0; i < P.table.size(); i++) P.table[i] = pool[i];
    size_t elems = (size_t)P.numBlocks * KV * P.BS * D;
    uint16_t fill = poison ? 0x7FC0 : 0;  // NaN: any read of a slot never appended shows up
    P.kc.assign(elems, fill);
    P.vc.assign(elems, fill);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (int r = 0; r < rows; r++)
        for (int p = 0; p < lens[r]; p++)
            for (int g = 0; g < KV; g++)
                for (int d = 0; d < D; d++) {
                    size_t at = (((size_t)P.table[r * P.maxBlocks + p / P.BS] * KV + g) * P.BS + p % P.BS) * D + d;
                    P.kc[at] = f2b(nd(rng));
                    P.vc[at] = f2b(nd(rng));
                }
    CK(cudaMalloc(&P.dK, elems * 2)); CK(cudaMalloc(&P.dV, elems * 2));
    CK(cudaMalloc(&P.dTable, P.table.size() * 4));
    CK(cudaMemcpy(P.dK, P.kc.data(), elems * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(P.dV, P.vc.data(), elems * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(P.dTable, P.table.data(), P.table.size() * 4, cudaMemcpyHostToDevice));
}
static void free_problem(Problem& P) { cudaFree(P.dK); cudaFree(P.dV); cudaFree(P.dTable); }

// Flat tokens of the segments in order; tiles of <= 64 queries, optionally cut at `chunk` too.
struct Batch {
    int n = 0; std::vector<int> rowOf, posOf; std::vector<int4> tiles; int maxLen = 0;
};
struct Variant { const char* name; int wm, bk; void* f[3]; };
typedef void (*PfFn)(bf16*, const bf16*, int, float, const bf16*, const bf16*, const int*, int, int,
                     const int4*, int, int, int);
static Variant VARS[] = {
    {"final", 2, 32, {(void*)attention_prefill_paged_d32_bf16, (void*)attention_prefill_paged_d64_bf16, (void*)attention_prefill_paged_d128_bf16}},
};
static Variant* CUR = &VARS[0];
static int BQ() { return 64 * CUR->wm; }
static Batch make_batch(const std::vector<Seg>& segs, int chunk) {
    const int TQ = BQ();
    Batch b;
    for (auto& s : segs) {
        for (int i = 0; i < s.len; i++) { b.rowOf.push_back(s.row); b.posOf.push_back(s.p0 + i); }
        for (int c0 = 0; c0 < s.len; c0 += chunk) {
            int ce = std::min(s.len, c0 + chunk);
            for (int q = c0; q < ce; q += TQ)
                b.tiles.push_back(make_int4(b.n + q, s.row, s.p0 + q, std::min(TQ, ce - q)));
        }
        b.n += s.len;
        b.maxLen = std::max(b.maxLen, s.p0 + s.len);
    }
    // Heaviest tiles first (load balance); order never changes results.
    std::stable_sort(b.tiles.begin(), b.tiles.end(), [](int4 a, int4 c) { return a.z + a.w > c.z + c.w; });
    return b;
}

static PfFn pick_pf(int D, int& dp) {
    if (D <= 32) { dp = 32; return (PfFn)CUR->f[0]; }
    if (D <= 64) { dp = 64; return (PfFn)CUR->f[1]; }
    dp = 128; return (PfFn)CUR->f[2];
}
static size_t pf_smem_bytes(int dp) {
    int bk = (dp == 32 && CUR->bk == 32) ? 64 : CUR->bk;
    return (size_t)(BQ() + 4 * bk) * (dp + 8) * 2;
}

static void run_prefill(const Problem& P, const Batch& B, const bf16* dQkv, int stride, bf16* dAtt,
                        int4* dTiles, cudaStream_t st = 0) {
    int dp; PfFn f = pick_pf(P.D, dp);
    size_t sm = pf_smem_bytes(dp);
    CK(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
    dim3 grid(P.H, B.tiles.size());
    f<<<grid, PF_THREADS, sm, st>>>(dAtt, dQkv, stride, 1.f / sqrtf((float)P.D), P.dK, P.dV, P.dTable,
                                   P.maxBlocks, P.BS, dTiles, P.H, P.KV, P.D);
    CK(cudaGetLastError());
}

typedef void (*DecFn)(const bf16*, int, float, const bf16*, const bf16*, const int*, int, int, const int*,
                      const int*, const int*, int, int, int, int, int, int, float*, float*, int);
static void run_decode(const Problem& P, const Batch& B, const bf16* dQkv, int stride, bf16* dAtt,
                       const int* dRow, const int* dPos, float* pO, float* pMl, int splitLen) {
    int G = P.H / P.KV;
    int gi = G <= 1 ? 0 : G <= 2 ? 1 : G <= 4 ? 2 : 3;
    DecFn fns[2][4] = {{attention_decode_paged_g1_c1_bf16, attention_decode_paged_g2_c1_bf16,
                        attention_decode_paged_g4_c1_bf16, attention_decode_paged_g8_c1_bf16},
                       {attention_decode_paged_g1_c2_bf16, attention_decode_paged_g2_c2_bf16,
                        attention_decode_paged_g4_c2_bf16, attention_decode_paged_g8_c2_bf16}};
    DecFn f = fns[P.D <= 128 ? 0 : 1][gi];
    int splits = (B.maxLen + splitLen - 1) / splitLen;
    // Shared memory and block as AttentionKernel.sharedBytes (one split per block, no pairs).
    int sm = 4 * (G * P.D + G * ATT_SUB + 4 * G + ATT_WARPS * G * P.D);
    if (sm > 48 * 1024) CK(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, sm));
    dim3 g1(B.n, P.KV, splits);
    f<<<g1, ATT_THREADS, sm>>>(dQkv, stride, 1.f / sqrtf((float)P.D), P.dK, P.dV, P.dTable, P.maxBlocks,
                               P.BS, dRow, dPos, nullptr, P.KV, P.H, P.KV, P.D, splitLen, splits, pO,
                               pMl, splits + 1);
    CK(cudaGetLastError());
    dim3 g2(B.n, (P.H + 7) / 8);  // a warp per head, 8 heads a block
    attention_combine_bf16<<<g2, 256>>>(dAtt, pO, pMl, nullptr, P.KV, P.H, P.KV, P.D, splits,
                                        P.H != P.KV ? 0 : 1, 0, splits + 1);
    CK(cudaGetLastError());
}

// fp64 reference of token t (flat), all heads -> out[H*D]
static void cpu_ref(const Problem& P, const std::vector<uint16_t>& qkv, int stride, int t, int row, int pos,
                    std::vector<double>& out) {
    int G = P.H / P.KV, D = P.D;
    out.assign((size_t)P.H * D, 0.0);
    double scale = 1.0 / sqrt((double)D);
    std::vector<double> s(pos + 1);
    for (int h = 0; h < P.H; h++) {
        int g = h / G;
        double mx = -1e300;
        for (int p = 0; p <= pos; p++) {
            size_t base = (((size_t)P.table[row * P.maxBlocks + p / P.BS] * P.KV + g) * P.BS + p % P.BS) * D;
            double dot = 0;
            for (int d = 0; d < D; d++) dot += (double)b2f(qkv[(size_t)t * stride + h * D + d]) * b2f(P.kc[base + d]);
            s[p] = dot * scale; mx = std::max(mx, s[p]);
        }
        double sum = 0;
        for (int p = 0; p <= pos; p++) { s[p] = exp(s[p] - mx); sum += s[p]; }
        for (int p = 0; p <= pos; p++) {
            size_t base = (((size_t)P.table[row * P.maxBlocks + p / P.BS] * P.KV + g) * P.BS + p % P.BS) * D;
            for (int d = 0; d < D; d++) out[h * D + d] += s[p] * b2f(P.vc[base + d]);
        }
        for (int d = 0; d < D; d++) out[h * D + d] /= sum;
    }
}

struct Dev { bf16* qkv; bf16* att; bf16* att2; int4* tiles; int* row; int* pos; float* pO; float* pMl; };

static std::vector<uint16_t> read_att(bf16* d, size_t elems) {
    std::vector<uint16_t> h(elems);
    CK(cudaMemcpy(h.data(), d, elems * 2, cudaMemcpyDeviceToHost));
    return h;
}

static int failures = 0;

// Correctness case: segments over a problem; checks vs CPU (tokens `sample` or all), vs decode kernel,
// and bitwise invariance across chunkings {64, 37, 1, 7} and each segment alone.
static void check_case(const char* name, int H, int KV, int D, std::vector<int> lens, std::vector<Seg> segs,
                       std::mt19937& rng, int sampleEvery) {
    Problem P;
    make_problem(P, rng, H, KV, D, lens, true);
    int stride = (H + 2 * KV) * D;
    Batch B = make_batch(segs, 1 << 30);
    std::vector<uint16_t> qkv((size_t)B.n * stride);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (auto& v : qkv) v = f2b(nd(rng) * 1.5f);
    size_t attE = (size_t)B.n * H * D;
    Dev d;
    CK(cudaMalloc(&d.qkv, qkv.size() * 2)); CK(cudaMalloc(&d.att, attE * 2)); CK(cudaMalloc(&d.att2, attE * 2));
    CK(cudaMalloc(&d.tiles, (B.n + 64 * segs.size()) * 16 + 16));
    CK(cudaMalloc(&d.row, B.n * 4)); CK(cudaMalloc(&d.pos, B.n * 4));
    CK(cudaMemcpy(d.qkv, qkv.data(), qkv.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d.row, B.rowOf.data(), B.n * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d.pos, B.posOf.data(), B.n * 4, cudaMemcpyHostToDevice));
    auto run_pf = [&](const Batch& b, bf16* out) {
        CK(cudaMemset(out, 0xFF, attE * 2));  // poison: 0xFFFF is a NaN
        CK(cudaMemcpy(d.tiles, b.tiles.data(), b.tiles.size() * 16, cudaMemcpyHostToDevice));
        run_prefill(P, b, d.qkv, stride, out, d.tiles);
        CK(cudaDeviceSynchronize());
        return read_att(out, attE);
    };
    std::vector<uint16_t> got = run_pf(B, d.att);
    // vs CPU fp64
    double num = 0, den = 0, maxrel = 0; int nan = 0, checked = 0;
    std::vector<double> ref;
    for (int t = 0; t < B.n; t++) {
        if (t % sampleEvery != 0 && t != B.n - 1) continue;
        checked++;
        cpu_ref(P, qkv, stride, t, B.rowOf[t], B.posOf[t], ref);
        for (int i = 0; i < H * D; i++) {
            double gv = b2f(got[(size_t)t * H * D + i]);
            if (std::isnan(gv)) { nan++; continue; }
            num += (gv - ref[i]) * (gv - ref[i]); den += ref[i] * ref[i];
            maxrel = std::max(maxrel, fabs(gv - ref[i]) / (fabs(ref[i]) + 1e-2));
        }
    }
    for (auto v : got) if (std::isnan(b2f(v))) nan++;
    double rel = sqrt(num / den);
    // vs decode kernel
    int splitLen = 256, splits = (B.maxLen + splitLen - 1) / splitLen;
    CK(cudaMalloc(&d.pO, (size_t)B.n * H * splits * D * 4)); CK(cudaMalloc(&d.pMl, (size_t)B.n * H * splits * 2 * 4));
    CK(cudaMemset(d.att2, 0xFF, attE * 2));
    run_decode(P, B, d.qkv, stride, d.att2, d.row, d.pos, d.pO, d.pMl, splitLen);
    CK(cudaDeviceSynchronize());
    std::vector<uint16_t> dec = read_att(d.att2, attE);
    double dnum = 0, dden = 0, dmax = 0;
    for (size_t i = 0; i < attE; i++) {
        double a = b2f(got[i]), b = b2f(dec[i]);
        dnum += (a - b) * (a - b); dden += b * b; dmax = std::max(dmax, fabs(a - b));
    }
    double drel = sqrt(dnum / dden);
    // invariance: other chunkings and each segment alone (flat index differs: compare per token)
    int diffs = 0;
    for (int chunk : {37, 1, 7, 64, 100}) {
        Batch b2 = make_batch(segs, chunk);
        std::vector<uint16_t> o2 = run_pf(b2, d.att2);
        if (memcmp(o2.data(), got.data(), attE * 2) != 0) { diffs++; printf("  chunk %d differs\n", chunk); }
    }
    {
        int off = 0;
        for (auto& s : segs) {  // each segment alone, also split in chunks of 29
            Batch b2 = make_batch({s}, 29);
            for (auto& tl : b2.tiles) tl.x += off;  // keep tokens at their flat place
            std::vector<uint16_t> o2 = run_pf(b2, d.att2);
            if (memcmp(o2.data() + (size_t)off * H * D, got.data() + (size_t)off * H * D, (size_t)s.len * H * D * 2) != 0) {
                diffs++; printf("  segment row %d alone differs\n", s.row);
            }
            off += s.len;
        }
    }
    bool ok = rel < 1e-2 && nan == 0 && diffs == 0 && drel < 1e-2;
    if (!ok) failures++;
    printf("%-34s H=%2d KV=%2d D=%3d n=%5d tiles=%4zu | vs fp64 (%d tok): rel %.2e maxrel %.2e | vs decode: rel %.2e maxabs %.2e | nan/unwritten %d | invariance diffs %d  %s\n",
           name, H, KV, D, B.n, B.tiles.size(), checked, rel, maxrel, drel, dmax, nan, diffs, ok ? "OK" : "FAIL");
    cudaFree(d.qkv); cudaFree(d.att); cudaFree(d.att2); cudaFree(d.tiles); cudaFree(d.row); cudaFree(d.pos);
    cudaFree(d.pO); cudaFree(d.pMl);
    free_problem(P);
}

static float median(std::vector<float> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; }

static void bench(const char* name, int H, int KV, int D, int seqs, int len, std::mt19937& rng, int decIters) {
    printf("[%s] ", CUR->name);
    Problem P;
    make_problem(P, rng, H, KV, D, std::vector<int>(seqs, len), false);
    std::vector<Seg> segs;
    for (int r = 0; r < seqs; r++) segs.push_back({r, 0, len});
    Batch B = make_batch(segs, 1 << 30);
    int stride = (H + 2 * KV) * D;
    std::vector<uint16_t> qkv((size_t)B.n * stride);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (auto& v : qkv) v = f2b(nd(rng));
    size_t attE = (size_t)B.n * H * D;
    Dev d;
    CK(cudaMalloc(&d.qkv, qkv.size() * 2)); CK(cudaMalloc(&d.att, attE * 2)); CK(cudaMalloc(&d.att2, attE * 2));
    CK(cudaMalloc(&d.tiles, B.tiles.size() * 16));
    CK(cudaMalloc(&d.row, B.n * 4)); CK(cudaMalloc(&d.pos, B.n * 4));
    CK(cudaMemcpy(d.qkv, qkv.data(), qkv.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d.row, B.rowOf.data(), B.n * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d.pos, B.posOf.data(), B.n * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d.tiles, B.tiles.data(), B.tiles.size() * 16, cudaMemcpyHostToDevice));
    int splitLen = 256, splits = (B.maxLen + splitLen - 1) / splitLen;
    CK(cudaMalloc(&d.pO, (size_t)B.n * H * splits * D * 4)); CK(cudaMalloc(&d.pMl, (size_t)B.n * H * splits * 2 * 4));
    cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
    std::vector<float> tp, td;
    for (int i = 0; i < 3; i++) run_prefill(P, B, d.qkv, stride, d.att, d.tiles);
    for (int i = 0; i < 30; i++) {
        CK(cudaEventRecord(e0)); run_prefill(P, B, d.qkv, stride, d.att, d.tiles); CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1)); float ms; CK(cudaEventElapsedTime(&ms, e0, e1)); tp.push_back(ms);
    }
    run_decode(P, B, d.qkv, stride, d.att2, d.row, d.pos, d.pO, d.pMl, splitLen);
    td.push_back(0.f);
    for (int i = 0; i < decIters; i++) {
        CK(cudaEventRecord(e0)); run_decode(P, B, d.qkv, stride, d.att2, d.row, d.pos, d.pO, d.pMl, splitLen);
        CK(cudaEventRecord(e1)); CK(cudaEventSynchronize(e1)); float ms; CK(cudaEventElapsedTime(&ms, e0, e1)); td.push_back(ms);
    }
    CK(cudaDeviceSynchronize());
    std::vector<uint16_t> a = read_att(d.att, attE), b = read_att(d.att2, attE);
    double num = 0, den = 0; int nan = 0;
    for (size_t i = 0; i < attE; i++) { double x = b2f(a[i]), y = b2f(b[i]); if (std::isnan(x)) nan++; num += (x - y) * (x - y); den += y * y; }
    // fp64 spot check: 6 tokens
    double rn = 0, rd = 0; std::vector<double> ref;
    for (int t : {0, 63, 1000 % B.n, B.n / 2 + 17, B.n - 65, B.n - 1}) {
        cpu_ref(P, qkv, stride, t, B.rowOf[t], B.posOf[t], ref);
        for (int i = 0; i < H * D; i++) { double x = b2f(a[(size_t)t * H * D + i]); rn += (x - ref[i]) * (x - ref[i]); rd += ref[i] * ref[i]; }
    }
    double flops = 0;
    for (int r = 0; r < seqs; r++) flops += 4.0 * H * D * (double)len * (len + 1) / 2;
    if (decIters > 0) td.erase(td.begin());
    float mp = median(tp), md = median(td);
    printf("BENCH %-12s %dx%d H=%d KV=%d D=%d | prefill %.3f ms (min %.3f) %.1f TFLOP/s | decode-path %.3f ms (min %.3f) | speedup %.1fx | vs decode rel %.2e | fp64 spot rel %.2e | nan %d\n",
           name, seqs, len, H, KV, D, mp, *std::min_element(tp.begin(), tp.end()), flops / mp / 1e9, md,
           *std::min_element(td.begin(), td.end()), md / mp, sqrt(num / den), sqrt(rn / rd), nan);
    cudaFree(d.qkv); cudaFree(d.att); cudaFree(d.att2); cudaFree(d.tiles); cudaFree(d.row); cudaFree(d.pos);
    cudaFree(d.pO); cudaFree(d.pMl);
    free_problem(P);
}

int main(int argc, char** argv) {
    cudaDeviceProp prop; CK(cudaGetDeviceProperties(&prop, 0));
    printf("device %s, %d SMs\n", prop.name, prop.multiProcessorCount);
    std::mt19937 rng(12345);
    bool quick = argc > 1 && !strcmp(argv[1], "quick");
    for (auto& v : VARS) {
    CUR = &v;
    printf("=== variant %s (BQ=%d, BK=%d)\n", v.name, BQ(), v.bk);
    check_case("G1 D64 full prompts", 8, 8, 64, {1, 77, 130, 200}, {{0, 0, 1}, {1, 0, 77}, {2, 0, 130}, {3, 0, 200}}, rng, 1);
    check_case("G4 D128 chunk at 129 + others", 16, 4, 128, {429, 65, 5}, {{0, 129, 300}, {1, 0, 65}, {2, 0, 5}}, rng, 3);
    check_case("G8 D128 decode-like + chunks", 32, 4, 128, {300, 171, 64}, {{0, 299, 1}, {1, 100, 71}, {2, 0, 64}}, rng, 1);
    check_case("G2 D32", 8, 4, 32, {97, 33, 250}, {{0, 0, 97}, {1, 13, 20}, {2, 63, 187}}, rng, 1);
    check_case("G4 D24 (pad 32)", 8, 2, 24, {54, 97}, {{0, 0, 54}, {1, 0, 97}}, rng, 1);
    check_case("G1 D96 (pad 128)", 4, 4, 96, {150, 3}, {{0, 0, 150}, {1, 1, 2}}, rng, 1);
    check_case("G8 D64 long", 16, 2, 64, {1100, 513}, {{0, 0, 1100}, {1, 257, 256}}, rng, 17);
    check_case("G1 D128 llama2-like", 32, 32, 128, {700, 130}, {{0, 0, 700}, {1, 65, 65}}, rng, 41);
    check_case("G4 D128 many short + 1", 32, 8, 128, {129, 64, 1, 300, 17}, {{0, 0, 129}, {1, 0, 64}, {2, 0, 1}, {3, 1, 299}, {4, 16, 1}}, rng, 5);
    }
    printf("correctness failures: %d\n", failures);
    if (quick) return failures;
    for (auto& v : VARS) {
        CUR = &v;
        int di = 20;
        bench("llama-2-7b", 32, 32, 128, 8, 2048, rng, di);
        bench("llama-3-8b", 32, 8, 128, 8, 2048, rng, di);
        bench("llama-3-8b", 32, 8, 128, 1, 8192, rng, di);
        bench("d64 G4", 32, 8, 64, 8, 2048, rng, di);
        bench("llama-3-8b", 32, 8, 128, 32, 512, rng, di);
        bench("llama-3-8b", 32, 8, 128, 64, 100, rng, di);
        bench("llama-2-7b", 32, 32, 128, 1, 4096, rng, di);
    }
    return failures;
}
