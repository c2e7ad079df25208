// tests/test_cuda_ops.c — every op of the CUDA backend against the CPU backend on the same
// random inputs of odd sizes (GPU; SKIP with exit 77 without one). Device outputs sit between
// guard values that must survive the op (an out-of-bounds write shows up), and every output
// buffer is fully initialized first (compute-sanitizer's initcheck stays quiet).
//
// Tolerances (NMSE, max abs): elementwise and reduction ops, both sides float with double or
// short sums: 1e-10 / 1e-4. Attention (float sums in another order, exp on the GPU) 1e-9 / 1e-4.
// GEMMs: fp32 SGEMM 1e-10; f16 weights and activations (unit roundoff 4.9e-4) 1e-6; bf16
// (3.9e-3) 1e-4: a rounding error of u per input gives NMSE ~ u^2 / 3 per product term.
#include <stdint.h>
#include <string.h>

#include "kernels.h"        // defines: bipo_backend, bipo_backend_cpu, bipo_att_floats
#include "test_cuda_gpu.h"  // defines: cuda_or_skip, cmp
#include "testlib.h"        // defines: tl_fill, tl_summary

#define GUARD 64
#define GUARD_VAL 12345.0f
#define EW 1e-10, 1e-4

static const bipo_backend *cpu, *gpu;

static float *rnd(size_t n, float scale) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    tl_fill(x, n, scale);
    return x;
}
// A device buffer [n] holding host (or zeros), with GUARD guard values on both sides.
static float *dbuf(const float *host, size_t n) {
    float *b = gpu->alloc(n + 2 * GUARD), g[GUARD];
    for (size_t i = 0; i < GUARD; i++) g[i] = GUARD_VAL;
    gpu->upload(b, g, GUARD);
    gpu->upload(b + GUARD + n, g, GUARD);
    if (host) gpu->upload(b + GUARD, host, n);
    return b + GUARD;
}
// Downloads [n] (caller frees) and checks the guards.
static float *dget(const char *what, float *d, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float)), g[2 * GUARD];
    gpu->download(h, d, n);
    gpu->download(g, d - GUARD, GUARD);
    gpu->download(g + GUARD, d + n, GUARD);
    size_t bad = 0;
    for (size_t i = 0; i < 2 * GUARD; i++) bad += g[i] != GUARD_VAL;
    EXPECT(bad == 0, "%s: %zu guard values overwritten", what, bad);
    return h;
}
static void dfree(float *d) { gpu->free(d - GUARD); }
static void check(const char *what, float *d, const float *want, size_t n, double nmse, double mx) {
    float *h = dget(what, d, n);
    cmp(what, h, want, n, nmse, mx);
    free(h);
}
static size_t rndu(size_t n) { return (size_t)((tl_randf() + 1.0f) * 0.5f * (float)n) % n; }

static void test_elementwise(void) {
    const size_t N = 37, C = 301, n = N * C;
    float *x = rnd(n, 2), *w = rnd(C, 1), *dy = rnd(n, 1), *base = rnd(n, 1), *g = rnd(n, 6);
    float *o = malloc(n * 4), *r = malloc(N * 4), *dx = malloc(n * 4), *dg = malloc(n * 4);
    float *dX = dbuf(x, n), *dW = dbuf(w, C), *dDY = dbuf(dy, n), *dO = dbuf(NULL, n), *dR = dbuf(NULL, N);
    cpu->rmsnorm_forward(o, r, x, w, N, C, 1e-5f);
    gpu->rmsnorm_forward(dO, dR, dX, dW, N, C, 1e-5f);
    check("rmsnorm out", dO, o, n, EW);
    check("rmsnorm rstd", dR, r, N, EW);
    float *dDX = dbuf(base, n);
    memcpy(dx, base, n * 4);
    cpu->rmsnorm_backward(dx, dy, x, w, r, N, C);
    gpu->rmsnorm_backward(dDX, dDY, dX, dW, dR, N, C);
    check("rmsnorm dinp (accumulated)", dDX, dx, n, EW);
    // swiglu
    float *dG = dbuf(g, n), *dDG = dbuf(NULL, n), *dDU = dbuf(NULL, n);
    cpu->swiglu_forward(o, g, x, n);
    gpu->swiglu_forward(dO, dG, dX, n);
    check("swiglu out", dO, o, n, EW);
    cpu->swiglu_backward(dg, dx, dy, g, x, n);
    gpu->swiglu_backward(dDG, dDU, dDY, dG, dX, n);
    check("swiglu dgate", dDG, dg, n, EW);
    check("swiglu dup", dDU, dx, n, EW);
    // residual (out aliases a) and its backward with one NULL side
    memcpy(o, x, n * 4);
    cpu->residual_forward(o, o, dy, n);
    gpu->residual_forward(dX, dX, dDY, n);
    check("residual out=a+b", dX, o, n, EW);
    memcpy(dx, base, n * 4);
    gpu->upload(dDX, base, n);
    cpu->residual_backward(dx, NULL, dy, n);
    gpu->residual_backward(dDX, NULL, dDY, n);
    check("residual da", dDX, dx, n, EW);
    // rope in place, forward then backward
    int *pos = malloc(N * sizeof(int));
    for (size_t i = 0; i < N; i++) pos[i] = (int)rndu(4000);
    const size_t H = 7, HD = 43 - 1; // N x (7 x 42) = 37 x 294
    float *xr = rnd(N * H * HD, 1), *dXR = dbuf(xr, N * H * HD);
    for (int dir = 0; dir < 2; dir++) {
        if (dir) cpu->rope_backward(xr, pos, N, H, HD, 5e5f), gpu->rope_backward(dXR, pos, N, H, HD, 5e5f);
        else cpu->rope_forward(xr, pos, N, H, HD, 5e5f), gpu->rope_forward(dXR, pos, N, H, HD, 5e5f);
        check(dir ? "rope backward" : "rope forward", dXR, xr, N * H * HD, EW);
    }
    // steering, masked and not
    uint8_t *mask = malloc(N);
    for (size_t i = 0; i < N; i++) mask[i] = (uint8_t)(i % 3 != 1);
    for (int m = 0; m < 2; m++) {
        const uint8_t *mk = m ? mask : NULL;
        memcpy(o, x, n * 4);
        gpu->upload(dO, x, n);
        cpu->add_vector_forward(o, w, 0.37f, mk, N, C);
        gpu->add_vector_forward(dO, dW, 0.37f, mk, N, C);
        check(m ? "add_vector masked" : "add_vector", dO, o, n, EW);
        float *dv = malloc(C * 4), *dDV = dbuf(w, C);
        memcpy(dv, w, C * 4);
        cpu->add_vector_backward(dv, dy, -2.5f, mk, N, C);
        gpu->add_vector_backward(dDV, dDY, -2.5f, mk, N, C);
        check(m ? "add_vector dv masked" : "add_vector dv", dDV, dv, C, EW);
        free(dv), dfree(dDV);
    }
    free(x), free(w), free(dy), free(base), free(g), free(o), free(r), free(dx), free(dg), free(pos), free(xr), free(mask);
    dfree(dX), dfree(dW), dfree(dDY), dfree(dO), dfree(dR), dfree(dDX), dfree(dG), dfree(dDG), dfree(dDU), dfree(dXR);
}

static void test_rows_logprob(void) {
    const size_t NR = 53, M = 29, C = 77, V = 1031;
    float *src = rnd(NR * C, 1), *dout = rnd(M * C, 1), *base = rnd(NR * C, 1);
    size_t *rows = malloc(M * sizeof(size_t));
    int *tok = malloc(M * sizeof(int)), *tg = malloc(M * sizeof(int));
    for (size_t m = 0; m < M; m++) rows[m] = m % 4 == 3 ? rows[m - 1] : rndu(NR), tok[m] = (int)rndu(NR), tg[m] = (int)rndu(V);
    float *o = malloc(M * C * 4), *d = malloc(NR * C * 4);
    float *dS = dbuf(src, NR * C), *dO = dbuf(NULL, M * C), *dD = dbuf(base, NR * C), *dDO = dbuf(dout, M * C);
    cpu->gather_rows(o, src, rows, M, C);
    gpu->gather_rows(dO, dS, rows, M, C);
    check("gather_rows", dO, o, M * C, 0, 0);
    cpu->embedding_forward(o, tok, src, M, C);
    gpu->embedding_forward(dO, tok, dS, M, C);
    check("embedding", dO, o, M * C, 0, 0);
    memcpy(d, base, NR * C * 4);
    cpu->scatter_add_rows(d, dout, rows, M, C);
    gpu->scatter_add_rows(dD, dDO, rows, M, C);
    check("scatter_add_rows (repeated rows)", dD, d, NR * C, EW);
    // log-prob at M rows of V logits, forward, backward, and fused with the LM head (fp32)
    float *lg = rnd(M * V, 9), *dlp = rnd(M, 1), *w = rnd(V * C, 0.1f);
    float *lp = malloc(M * 4), *lse = malloc(M * 4), *dl = malloc(M * V * 4), *di = malloc(M * C * 4);
    float *dLG = dbuf(lg, M * V), *dLP = dbuf(NULL, M), *dLSE = dbuf(NULL, M), *dDL = dbuf(NULL, M * V);
    float *dW = dbuf(w, V * C), *dDI = dbuf(NULL, M * C);
    cpu->logprob_forward(lp, lse, lg, tg, M, V);
    gpu->logprob_forward(dLP, dLSE, dLG, tg, M, V);
    check("logprob lp", dLP, lp, M, EW);
    check("logprob lse", dLSE, lse, M, EW);
    cpu->logprob_backward(dl, dlp, lg, lse, tg, M, V);
    gpu->logprob_backward(dDL, dlp, dLG, dLSE, tg, M, V);
    check("logprob dlogits", dDL, dl, M * V, EW);
    cpu->matmul_backward(di, dl, w, M, C, V, 0, BIPO_MATMUL_FP32);
    gpu->logprob_matmul_backward(dDI, dDL, dlp, dLG, dLSE, tg, dW, M, C, V, BIPO_MATMUL_FP32);
    check("logprob_matmul_backward dinp", dDI, di, M * C, 1e-10, 1e-4);
    free(src), free(dout), free(base), free(rows), free(tok), free(tg), free(o), free(d);
    free(lg), free(dlp), free(w), free(lp), free(lse), free(dl), free(di);
    dfree(dS), dfree(dO), dfree(dD), dfree(dDO), dfree(dLG), dfree(dLP), dfree(dLSE), dfree(dDL), dfree(dW), dfree(dDI);
}

// GEMMs on unregistered weights (fp32) and on weights registered at an odd offset of a larger
// range with BIPO_CUDA_WEIGHTS = f32, f16, bf16.
static void test_gemm(void) {
    const size_t N = 37, IC = 129, OC = 67, pad = 13;
    float *x = rnd(N * IC, 1), *dy = rnd(N * OC, 1), *w = rnd(OC * IC, 0.2f), *base = rnd(N * IC, 1);
    float *o = malloc(N * OC * 4), *di = malloc(N * IC * 4), *di2 = malloc(N * IC * 4);
    cpu->matmul_forward(o, x, w, N, IC, OC, BIPO_MATMUL_FP32);
    cpu->matmul_backward(di, dy, w, N, IC, OC, 0, BIPO_MATMUL_FP32);
    memcpy(di2, base, N * IC * 4);
    cpu->matmul_backward(di2, dy, w, N, IC, OC, 1, BIPO_MATMUL_FP32);
    float *dX = dbuf(x, N * IC), *dDY = dbuf(dy, N * OC), *dO = dbuf(NULL, N * OC), *dDI = dbuf(NULL, N * IC);
    float *range = gpu->alloc(OC * IC + 2 * pad), *dW = range + pad;
    gpu->upload(dW, w, OC * IC);
    const char *mode[4] = {NULL, "f32", "f16", "bf16"};
    const double tol[4] = {1e-10, 1e-10, 1e-6, 1e-4}, mx[4] = {1e-4, 1e-4, 1e-2, 5e-2};
    char what[80];
    for (int t = 0; t < 4; t++) {
        if (mode[t]) {
            setenv("BIPO_CUDA_WEIGHTS", mode[t], 1);
            gpu->weights_register(range, OC * IC + 2 * pad);
        }
        const char *m = mode[t] ? mode[t] : "unregistered";
        gpu->matmul_forward(dO, dX, dW, N, IC, OC, BIPO_MATMUL_FP32);
        snprintf(what, sizeof what, "matmul_forward %s", m);
        check(what, dO, o, N * OC, tol[t], mx[t]);
        gpu->matmul_backward(dDI, dDY, dW, N, IC, OC, 0, BIPO_MATMUL_FP32);
        snprintf(what, sizeof what, "matmul_backward %s", m);
        check(what, dDI, di, N * IC, tol[t], mx[t]);
        gpu->upload(dDI, base, N * IC);
        gpu->matmul_backward(dDI, dDY, dW, N, IC, OC, 1, BIPO_MATMUL_FP32);
        snprintf(what, sizeof what, "matmul_backward accumulate %s", m);
        check(what, dDI, di2, N * IC, tol[t], mx[t]);
        if (mode[t]) gpu->weights_release(range, OC * IC + 2 * pad);
    }
    unsetenv("BIPO_CUDA_WEIGHTS");
    EXPECT(gpu->supports_precision(BIPO_MATMUL_FP32), "fp32 supported");
    free(x), free(dy), free(w), free(base), free(o), free(di), free(di2);
    dfree(dX), dfree(dDY), dfree(dO), dfree(dDI), gpu->free(range);
}

static void test_attention(const size_t *nq, const size_t *nk, size_t S, size_t NH, size_t NKV,
                           size_t HD, size_t window) {
    size_t qo[8] = {0}, ko[8] = {0};
    for (size_t s = 0; s < S; s++) qo[s + 1] = qo[s] + nq[s], ko[s + 1] = ko[s] + nk[s];
    bipo_seqs sq = {S, qo, ko};
    const size_t qn = qo[S] * NH * HD, kn = ko[S] * NKV * HD, na = bipo_att_floats(&sq, NH);
    float *q = rnd(qn, 1.5f), *k = rnd(kn, 1.5f), *v = rnd(kn, 1), *dout = rnd(qn, 1);
    float *o = malloc(qn * 4), *att = malloc(na * 4), *dq = malloc(qn * 4), *dk = malloc(kn * 4), *dv = malloc(kn * 4);
    float *dQ = dbuf(q, qn), *dK = dbuf(k, kn), *dV = dbuf(v, kn), *dDO = dbuf(dout, qn), *dO = dbuf(NULL, qn);
    float *dA = dbuf(NULL, na), *dDQ = dbuf(NULL, qn), *dDK = dbuf(NULL, kn), *dDV = dbuf(NULL, kn);
    cpu->attention_forward(o, att, q, k, v, &sq, NH, NKV, HD, window);
    gpu->attention_forward(dO, dA, dQ, dK, dV, &sq, NH, NKV, HD, window);
    char what[120];
    snprintf(what, sizeof what, "attention out S%zu NH%zu NKV%zu HD%zu win%zu", S, NH, NKV, HD, window);
    check(what, dO, o, qn, 1e-9, 1e-4);
    float *ga = dget("attention att", dA, na); // guards only: its contents are the GPU's own
    free(ga);
    cpu->attention_backward(dq, dk, dv, dout, q, k, v, att, &sq, NH, NKV, HD);
    gpu->attention_backward(dDQ, dDK, dDV, dDO, dQ, dK, dV, dA, &sq, NH, NKV, HD);
    snprintf(what, sizeof what, "attention dq win%zu", window);
    check(what, dDQ, dq, qn, 1e-9, 1e-4);
    snprintf(what, sizeof what, "attention dk win%zu", window);
    check(what, dDK, dk, kn, 1e-9, 1e-4);
    snprintf(what, sizeof what, "attention dv win%zu", window);
    check(what, dDV, dv, kn, 1e-9, 1e-4);
    free(q), free(k), free(v), free(dout), free(o), free(att), free(dq), free(dk), free(dv);
    dfree(dQ), dfree(dK), dfree(dV), dfree(dDO), dfree(dO), dfree(dA), dfree(dDQ), dfree(dDK), dfree(dDV);
}

int main(void) {
    gpu = cuda_or_skip("test_cuda_ops");
    cpu = bipo_backend_open("cpu", 0);
    tl_seed(11);
    test_elementwise();
    test_rows_logprob();
    test_gemm();
    const size_t nq1[3] = {70, 3, 133}, nk1[3] = {70, 45, 133};
    test_attention(nq1, nk1, 3, 6, 2, 10, 0);
    test_attention(nq1, nk1, 3, 6, 2, 10, 5);
    test_attention(nq1, nk1, 3, 32, 8, 128, 0);
    test_attention(nq1, nk1, 3, 3, 1, 40, 37);
    const size_t nq2[2] = {1, 2}, nk2[2] = {65, 2};
    test_attention(nq2, nk2, 2, 2, 1, 64, 0);
    gpu->sync();
    return tl_summary("test_cuda_ops");
}
