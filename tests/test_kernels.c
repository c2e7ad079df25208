// tests/test_kernels.c — every op of the backend table against an independent double-precision
// reference written here (plain loops, nothing shared with kernels/), and every backward against
// central finite differences of L = sum(r * f(x)) (r random) taken on that reference; for every
// backend bipo_backend_open gives of the list {cpu, cuda} (ggml's test-backend-ops shape: an
// absent backend prints "SKIP <name>: not available"), so a new backend is tested without
// editing this file. Also: every table entry of an available backend is filled, except the
// documented optional ones.
//
// Tolerances (why these numbers):
//  * forward, float kernel vs double reference on the same float inputs: the kernel rounds
//    each op to float (unit roundoff 6e-8) over reductions of <= ~100 terms of size O(1), so
//    errors stay ~1e-6; FWD_ATOL = FWD_RTOL = 1e-5 leaves 10x margin and still catches any
//    real bug (a wrong mask, head or scale moves outputs by >= 1e-2).
//  * backward, float kernel vs FD of the double reference: the FD is taken in double with a
//    relative step 1e-5, so truncation (~h^2 f''' ~ 1e-10) and cancellation (~1e-16/h ~ 1e-11)
//    are negligible and the FD is the exact gradient to ~1e-9. What remains is the kernel's
//    float rounding, amplified by cancellation in the chain rule (the softmax backward
//    P(dP - sum P dP) and rmsnorm's r w dy - r^3 x (dy.w.x)/C subtract O(1) terms), so we
//    allow BWD_ATOL = 1e-4 absolute and BWD_RTOL = 1e-3 relative on O(1) gradients. Measured
//    maxima: ~1e-5 relative (1.2e-5 absolute for logits offset by 1000, where lse itself is
//    only known to 0.5 ulp = 3e-5); a wrong formula gives errors of O(0.1).
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stddef.h>

#include "kernels.h" // defines: bipo_backend, bipo_seqs, bipo_backend_open, bipo_att_floats
#include "testlib.h" // defines: EXPECT, tl_allclose, tl_summary, tl_randf, tl_fill
#include "util.h"    // defines: bipo_last_error

#define FWD_ATOL 1e-5
#define FWD_RTOL 1e-5
#define BWD_ATOL 1e-4
#define BWD_RTOL 1e-3
#define FD_MAX 400 // FD checks at most this many elements per tensor (random sample beyond)

static const bipo_backend *be; // the backend under test

// ---- small helpers -----------------------------------------------------------------------
static float *rnd(size_t n, float scale) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    tl_fill(x, n, scale);
    return x;
}
static double *to_d(const float *x, size_t n) {
    double *d = malloc((n ? n : 1) * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}
static float *to_f(const double *x, size_t n) {
    float *f = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) f[i] = (float)x[i];
    return f;
}
static float *dev(const float *host, size_t n) { // backend buffer holding a copy of host
    float *d = be->alloc(n);
    be->upload(d, host, n);
    return d;
}
static float *host(const float *d, size_t n) { // host copy of a backend buffer
    float *h = malloc((n ? n : 1) * sizeof(float));
    be->download(h, d, n);
    return h;
}
static size_t rndu(size_t n) { return (size_t)((tl_randf() + 1.0f) * 0.5f * (float)n) % n; }

// Reference forward: out = f(in[0], in[1], ...), all double.
typedef void (*ref_fn)(const void *ctx, double *const *in, double *out);

// Checks got[] (kernel backward, float, for input `which` of n elements) against
// base[i] + dL/din[which][i] (base = the accumulate-into values, NULL = 0), where
// L = sum_o r[o] * ref(in)[o] is differentiated by central differences in double.
static void check_grad(const char *what, ref_fn f, const void *ctx, double *const *in, int which,
                       size_t n, size_t nout, const double *r, const float *got,
                       const float *base) {
    double *out = malloc(nout * sizeof(double));
    size_t m = n < FD_MAX ? n : FD_MAX;
    float *g = malloc((m ? m : 1) * sizeof(float)), *w = malloc((m ? m : 1) * sizeof(float));
    for (size_t t = 0; t < m; t++) {
        size_t i = n <= FD_MAX ? t : rndu(n);
        double *x = &in[which][i], x0 = *x, h = 1e-5, L[2];
        for (int side = 0; side < 2; side++) {
            *x = side ? x0 - h : x0 + h;
            f(ctx, in, out);
            L[side] = 0;
            for (size_t o = 0; o < nout; o++) L[side] += r[o] * out[o];
        }
        *x = x0;
        g[t] = got[i];
        w[t] = (float)((base ? base[i] : 0.0) + (L[0] - L[1]) / (2 * h));
    }
    tl_allclose(what, g, w, m, BWD_ATOL, BWD_RTOL);
    free(out), free(g), free(w);
}

// Forward check: kernel output (backend buffer) vs the reference at the same inputs.
static void check_fwd(const char *what, ref_fn f, const void *ctx, double *const *in,
                      const float *dout_buf, size_t nout) {
    double *want = malloc(nout * sizeof(double));
    f(ctx, in, want);
    float *wf = to_f(want, nout), *got = host(dout_buf, nout);
    tl_allclose(what, got, wf, nout, FWD_ATOL, FWD_RTOL);
    free(want), free(wf), free(got);
}

// ---- matmul --------------------------------------------------------------------------------
typedef struct { size_t N, IC, OC; } mm_ctx;
static void ref_matmul(const void *vc, double *const *in, double *out) {
    const mm_ctx *c = vc;
    for (size_t n = 0; n < c->N; n++)
        for (size_t o = 0; o < c->OC; o++) {
            double s = 0;
            for (size_t i = 0; i < c->IC; i++) s += in[0][n * c->IC + i] * in[1][o * c->IC + i];
            out[n * c->OC + o] = s;
        }
}
static void test_matmul(size_t N, size_t IC, size_t OC) {
    mm_ctx c = {N, IC, OC};
    float *x = rnd(N * IC, 1), *w = rnd(OC * IC, 0.5f), *r = rnd(N * OC, 1);
    double *in[2] = {to_d(x, N * IC), to_d(w, OC * IC)}, *rd = to_d(r, N * OC);
    float *dx_ = dev(x, N * IC), *dw = dev(w, OC * IC), *dy = be->alloc(N * OC);
    be->matmul_forward(dy, dx_, dw, N, IC, OC, BIPO_MATMUL_FP32);
    check_fwd("matmul out", ref_matmul, &c, in, dy, N * OC);

    // backward sets: start from garbage, which must be overwritten
    float *junk = rnd(N * IC, 1e3f), *dr = dev(r, N * OC), *dinp = dev(junk, N * IC);
    be->matmul_backward(dinp, dr, dw, N, IC, OC, 0, BIPO_MATMUL_FP32);
    float *g = host(dinp, N * IC);
    check_grad("matmul dinp", ref_matmul, &c, in, 0, N * IC, N * OC, rd, g, NULL);
    // accumulate = 1 adds onto what is there
    float *base = rnd(N * IC, 1);
    be->upload(dinp, base, N * IC);
    be->matmul_backward(dinp, dr, dw, N, IC, OC, 1, BIPO_MATMUL_FP32);
    float *ga = host(dinp, N * IC);
    for (size_t i = 0; i < N * IC; i++) base[i] += g[i];
    tl_allclose("matmul dinp accumulate", ga, base, N * IC, FWD_ATOL, FWD_RTOL);
    free(x), free(w), free(r), free(in[0]), free(in[1]), free(rd), free(junk), free(g),
        free(base), free(ga);
    be->free(dx_), be->free(dw), be->free(dy), be->free(dr), be->free(dinp);
}

// The GEMMs on frozen weights (weights_register) in both precisions: fp32 (OpenBLAS) and the
// CPU backend's AMX bf16x3 kernel on weights packed into tiles, against the double reference.
// Every dimension has a ragged tail (rows not a multiple of 32, columns of 32, k of 32 and of
// the 1024-wide k pass). bf16x3 is held to
// 2e-5 of sum |a b| (its products are exact to ~2^-16: three bf16 products, the dropped terms
// ~2^-17 each; measured ~1e-6), fp32 to 5e-7 sqrt(K) of it (float sums of K terms: a random
// walk of roundings 6e-8; measured ~1e-7). Also: a released weight is not served from a stale
// packed copy.
#define F32_TOL 5e-7

// Worst |got - exact| / tol over out[N, NC] = a[N, K] @ B, B(k, j) = w[k * sk + j * sj], in
// double; tol is the precision's bound on sum_k |a b| (see above).
static double registered_err(const float *got, const float *a, const float *w, size_t N, size_t K,
                             size_t NC, size_t sk, size_t sj, bipo_matmul_precision prec) {
    double worst = 0, rel = prec == BIPO_MATMUL_BF16X3 ? 2e-5 : F32_TOL * sqrt((double)K);
    for (size_t n = 0; n < N; n++)
        for (size_t j = 0; j < NC; j++) {
            double e = 0, mag = 0;
            for (size_t k = 0; k < K; k++) {
                double t = (double)a[n * K + k] * w[k * sk + j * sj];
                e += t, mag += fabs(t);
            }
            double r = fabs(got[n * NC + j] - e) / (rel * mag + 1e-7);
            if (r > worst) worst = r;
        }
    return worst;
}

static void test_matmul_registered(size_t N, size_t IC, size_t OC, bipo_matmul_precision prec) {
    if (!be->weights_register || !be->supports_precision(prec)) return; // lacks it: nothing to test
    const char *tag = prec == BIPO_MATMUL_BF16X3 ? "bf16x3" : "fp32";
    float *x = rnd(N * IC, 1), *w = rnd(OC * IC, 0.5f), *dyh = rnd(N * OC, 1);
    float *dw = dev(w, OC * IC), *dx = dev(x, N * IC), *dy = dev(dyh, N * OC);
    float *out = be->alloc(N * OC), *din = be->alloc(N * IC);
    be->weights_register(dw, OC * IC);
    for (int round = 0; round < 2; round++) {
        be->matmul_forward(out, dx, dw, N, IC, OC, prec);
        be->matmul_backward(din, dy, dw, N, IC, OC, 0, prec);
        float *o = host(out, N * OC), *g = host(din, N * IC);
        double worst_f = registered_err(o, x, w, N, IC, OC, 1, IC, prec);  // out = x w^T
        double worst_b = registered_err(g, dyh, w, N, OC, IC, IC, 1, prec); // din = dy w
        EXPECT(worst_f <= 1.0, "registered matmul %s %zux%zux%zu round %d: forward error %.2f x tol", tag,
               N, IC, OC, round, worst_f);
        EXPECT(worst_b <= 1.0, "registered matmul %s %zux%zux%zu round %d: backward error %.2f x tol", tag,
               N, IC, OC, round, worst_b);
        // accumulate adds onto what is there
        be->matmul_backward(din, dy, dw, N, IC, OC, 1, prec);
        float *g2 = host(din, N * IC);
        for (size_t i = 0; i < N * IC; i++) g[i] *= 2;
        tl_allclose("registered matmul accumulate", g2, g, N * IC, 1e-5, 1e-5);
        free(o), free(g), free(g2);
        // change the weight the way LoRA merging does (release, write, register): the next
        // round must see the new values, not a packed copy of the old ones
        be->weights_release(dw, OC * IC);
        for (size_t i = 0; i < OC * IC; i++) w[i] = -2.0f * w[i] + 0.01f;
        be->upload(dw, w, OC * IC);
        be->weights_register(dw, OC * IC);
    }
    be->weights_release(dw, OC * IC);
    free(x), free(w), free(dyh);
    be->free(dw), be->free(dx), be->free(dy), be->free(out), be->free(din);
}

// A precision the backend does not support runs in fp32 inside the call: bit for bit what an
// fp32 call gives (registered weights, rows enough for the CPU backend's AMX path). Where it is
// supported, test_matmul_registered holds it to its own tolerance.
static void test_precision_fallback(size_t N, size_t IC, size_t OC) {
    const bipo_matmul_precision prec = BIPO_MATMUL_BF16X3;
    if (be->supports_precision(prec)) return;
    float *x = rnd(N * IC, 1), *w = rnd(OC * IC, 0.5f), *dyh = rnd(N * OC, 1);
    float *dw = dev(w, OC * IC), *dx = dev(x, N * IC), *dy = dev(dyh, N * OC);
    float *o[2], *g[2];
    if (be->weights_register) be->weights_register(dw, OC * IC);
    for (int k = 0; k < 2; k++) {
        float *out = be->alloc(N * OC), *din = be->alloc(N * IC);
        be->matmul_forward(out, dx, dw, N, IC, OC, k ? prec : BIPO_MATMUL_FP32);
        be->matmul_backward(din, dy, dw, N, IC, OC, 0, k ? prec : BIPO_MATMUL_FP32);
        o[k] = host(out, N * OC), g[k] = host(din, N * IC);
        be->free(out), be->free(din);
    }
    if (be->weights_release) be->weights_release(dw, OC * IC);
    tl_allclose("matmul forward, unsupported bf16x3 = fp32 bitwise", o[1], o[0], N * OC, 0, 0);
    tl_allclose("matmul backward, unsupported bf16x3 = fp32 bitwise", g[1], g[0], N * IC, 0, 0);
    EXPECT(be->supports_precision(BIPO_MATMUL_FP32), "%s: fp32 must always be supported", be->name);
    free(x), free(w), free(dyh), free(o[0]), free(o[1]), free(g[0]), free(g[1]);
    be->free(dw), be->free(dx), be->free(dy);
}

// ---- rmsnorm -------------------------------------------------------------------------------
typedef struct { size_t N, C; double eps; } rms_ctx;
static void ref_rmsnorm(const void *vc, double *const *in, double *out) {
    const rms_ctx *c = vc;
    for (size_t n = 0; n < c->N; n++) {
        double ss = 0;
        for (size_t i = 0; i < c->C; i++) ss += in[0][n * c->C + i] * in[0][n * c->C + i];
        double rs = 1.0 / sqrt(ss / c->C + c->eps);
        for (size_t i = 0; i < c->C; i++) out[n * c->C + i] = in[0][n * c->C + i] * rs * in[1][i];
    }
}
static void test_rmsnorm(size_t N, size_t C, float scale) {
    rms_ctx c = {N, C, 1e-5f};
    float *x = rnd(N * C, scale), *w = rnd(C, 1), *r = rnd(N * C, 1), *base = rnd(N * C, 1);
    double *in[2] = {to_d(x, N * C), to_d(w, C)}, *rd = to_d(r, N * C);
    float *dx_ = dev(x, N * C), *dw = dev(w, C), *dy = be->alloc(N * C), *drs = be->alloc(N);
    be->rmsnorm_forward(dy, drs, dx_, dw, N, C, 1e-5f);
    check_fwd("rmsnorm out", ref_rmsnorm, &c, in, dy, N * C);
    float *rs = host(drs, N), *rsw = malloc(N * sizeof(float));
    for (size_t n = 0; n < N; n++) {
        double ss = 0;
        for (size_t i = 0; i < C; i++) ss += in[0][n * C + i] * in[0][n * C + i];
        rsw[n] = (float)(1.0 / sqrt(ss / C + c.eps));
    }
    tl_allclose("rmsnorm rstd", rs, rsw, N, 0, FWD_RTOL);
    // backward accumulates onto base
    float *dr = dev(r, N * C), *dinp = dev(base, N * C);
    be->rmsnorm_backward(dinp, dr, dx_, dw, drs, N, C);
    float *g = host(dinp, N * C);
    check_grad("rmsnorm dinp (accumulates)", ref_rmsnorm, &c, in, 0, N * C, N * C, rd, g, base);
    free(x), free(w), free(r), free(base), free(in[0]), free(in[1]), free(rd), free(rs),
        free(rsw), free(g);
    be->free(dx_), be->free(dw), be->free(dy), be->free(drs), be->free(dr), be->free(dinp);
}

// ---- rope ------------------------------------------------------------------------------------
typedef struct { size_t N, H, HD; const int *pos; float theta; } rope_ctx;
// The angle is defined as HF computes it in float32: inv_freq = 1/theta^(2i/HD) (float32),
// angle = pos * inv_freq (float32). That definition is what we want to match; the rotation
// itself is done here in double.
static void ref_rope(const void *vc, double *const *in, double *out) {
    const rope_ctx *c = vc;
    size_t half = c->HD / 2;
    for (size_t n = 0; n < c->N; n++)
        for (size_t h = 0; h < c->H; h++)
            for (size_t i = 0; i < half; i++) {
                float inv = 1.0f / powf(c->theta, (float)(2 * i) / (float)c->HD);
                double a = (double)((float)c->pos[n] * inv);
                size_t b = (n * c->H + h) * c->HD;
                double x1 = in[0][b + i], x2 = in[0][b + half + i];
                out[b + i] = x1 * cos(a) - x2 * sin(a);
                out[b + half + i] = x2 * cos(a) + x1 * sin(a);
            }
}
static void test_rope(size_t N, size_t H, size_t HD, float theta, int maxpos) {
    int *pos = malloc(N * sizeof(int));
    for (size_t n = 0; n < N; n++) pos[n] = (int)rndu((size_t)maxpos + 1); // any order
    rope_ctx c = {N, H, HD, pos, theta};
    size_t n = N * H * HD;
    float *x = rnd(n, 1), *r = rnd(n, 1);
    double *in[1] = {to_d(x, n)}, *rd = to_d(r, n);
    float *dx_ = dev(x, n);
    be->rope_forward(dx_, pos, N, H, HD, theta);
    check_fwd("rope out", ref_rope, &c, in, dx_, n);
    float *dr = dev(r, n);
    be->rope_backward(dr, pos, N, H, HD, theta);
    float *g = host(dr, n);
    check_grad("rope dx", ref_rope, &c, in, 0, n, n, rd, g, NULL);
    free(pos), free(x), free(r), free(in[0]), free(rd), free(g);
    be->free(dx_), be->free(dr);
}

// ---- attention -------------------------------------------------------------------------------
typedef struct { bipo_seqs sq; size_t NH, NKV, HD, window; } att_ctx;
static void ref_attention(const void *vc, double *const *in, double *out) {
    const att_ctx *c = vc;
    const double *q = in[0], *k = in[1], *v = in[2];
    size_t NH = c->NH, NKV = c->NKV, HD = c->HD;
    for (size_t s = 0; s < c->sq.S; s++) {
        size_t nq = c->sq.q_off[s + 1] - c->sq.q_off[s], nk = c->sq.k_off[s + 1] - c->sq.k_off[s];
        double *p = malloc((nk ? nk : 1) * sizeof(double));
        for (size_t h = 0; h < NH; h++) {
            size_t kh = h / (NH / NKV);
            for (size_t i = 0; i < nq; i++) {
                size_t at = nk - nq + i; // absolute position of this query
                const double *qi = q + (c->sq.q_off[s] + i) * NH * HD + h * HD;
                double mx = -1e300, sum = 0;
                for (size_t j = 0; j < nk; j++) {
                    int vis = j <= at && (c->window == 0 || at - j < c->window);
                    p[j] = -1e300;
                    if (!vis) continue;
                    double d = 0;
                    for (size_t e = 0; e < HD; e++)
                        d += qi[e] * k[(c->sq.k_off[s] + j) * NKV * HD + kh * HD + e];
                    p[j] = d / sqrt((double)HD);
                    if (p[j] > mx) mx = p[j];
                }
                for (size_t j = 0; j < nk; j++) {
                    p[j] = p[j] == -1e300 ? 0 : exp(p[j] - mx);
                    sum += p[j];
                }
                double *o = out + (c->sq.q_off[s] + i) * NH * HD + h * HD;
                for (size_t e = 0; e < HD; e++) {
                    double acc = 0;
                    for (size_t j = 0; j < nk; j++)
                        acc += p[j] / sum * v[(c->sq.k_off[s] + j) * NKV * HD + kh * HD + e];
                    o[e] = acc;
                }
            }
        }
        free(p);
    }
}
// nq[s], nk[s] per sequence; window 0 = none.
static void test_attention(const char *tag, size_t S, const size_t *nq, const size_t *nk,
                           size_t NH, size_t NKV, size_t HD, size_t window) {
    size_t qo[16], ko[16];
    qo[0] = ko[0] = 0;
    for (size_t s = 0; s < S; s++) qo[s + 1] = qo[s] + nq[s], ko[s + 1] = ko[s] + nk[s];
    att_ctx c = {{S, qo, ko}, NH, NKV, HD, window};
    size_t nqf = qo[S] * NH * HD, nkf = ko[S] * NKV * HD, na = bipo_att_floats(&c.sq, NH);
    size_t want_na = 0;
    for (size_t s = 0; s < S; s++) want_na += NH * nq[s] * nk[s];
    EXPECT(na == want_na, "%s: bipo_att_floats %zu, want %zu", tag, na, want_na);
    // scores of O(1..3) so the softmax is neither flat nor one-hot
    float *q = rnd(nqf, 1.5f), *k = rnd(nkf, 1.5f), *v = rnd(nkf, 1), *r = rnd(nqf, 1);
    double *in[3] = {to_d(q, nqf), to_d(k, nkf), to_d(v, nkf)}, *rd = to_d(r, nqf);
    float *dq_ = dev(q, nqf), *dk_ = dev(k, nkf), *dv_ = dev(v, nkf);
    float *out = be->alloc(nqf), *att = be->alloc(na), *out2 = be->alloc(nqf);
    char what[128];
    float *ajunk = rnd(na, 1e3f); // a reused att buffer: the forward must overwrite all of it
    be->upload(att, ajunk, na);
    free(ajunk);
    be->attention_forward(out, att, dq_, dk_, dv_, &c.sq, NH, NKV, HD, window);
    snprintf(what, sizeof what, "attention %s out", tag);
    check_fwd(what, ref_attention, &c, in, out, nqf);
    // saved probabilities, whatever their layout: each (head, query) row sums to 1 and
    // everything else is 0, so the whole buffer sums to NH * Nq (junk left over would show)
    float *ha = host(att, na);
    double asum = 0;
    for (size_t i = 0; i < na; i++) asum += ha[i];
    free(ha);
    EXPECT(fabs(asum - (double)(NH * qo[S])) < 1e-4 * (double)(NH * qo[S]),
           "attention %s: saved probabilities sum to %.6f, want %zu", tag, asum, NH * qo[S]);
    // att == NULL: same output, nothing saved
    be->attention_forward(out2, NULL, dq_, dk_, dv_, &c.sq, NH, NKV, HD, window);
    float *o1 = host(out, nqf), *o2 = host(out2, nqf);
    snprintf(what, sizeof what, "attention %s out (att NULL)", tag);
    tl_allclose(what, o2, o1, nqf, 0, 0);

    float *junk = rnd(nkf > nqf ? nkf : nqf, 1e3f); // backward SETS: start from garbage
    float *gq = dev(junk, nqf), *gk = dev(junk, nkf), *gv = dev(junk, nkf), *dr = dev(r, nqf);
    be->attention_backward(gq, gk, gv, dr, dq_, dk_, dv_, att, &c.sq, NH, NKV, HD);
    float *hq = host(gq, nqf), *hk = host(gk, nkf), *hv = host(gv, nkf);
    snprintf(what, sizeof what, "attention %s dq", tag);
    check_grad(what, ref_attention, &c, in, 0, nqf, nqf, rd, hq, NULL);
    snprintf(what, sizeof what, "attention %s dk", tag);
    check_grad(what, ref_attention, &c, in, 1, nkf, nqf, rd, hk, NULL);
    snprintf(what, sizeof what, "attention %s dv", tag);
    check_grad(what, ref_attention, &c, in, 2, nkf, nqf, rd, hv, NULL);

    // the CPU backend's result does not depend on the thread count (each output row has one
    // owner)
    if (strcmp(be->name, "cpu") == 0) {
        int nt = bipo_backend_cpu_threads();
        bipo_backend_open("cpu", 3);
        be->attention_backward(gq, gk, gv, dr, dq_, dk_, dv_, att, &c.sq, NH, NKV, HD);
        bipo_backend_open("cpu", nt);
        float *hk3 = host(gk, nkf);
        snprintf(what, sizeof what, "attention %s dk, 3 threads bitwise", tag);
        tl_allclose(what, hk3, hk, nkf, 0, 0);
        free(hk3);
    }

    free(q), free(k), free(v), free(r), free(rd), free(o1), free(o2), free(junk), free(hq),
        free(hk), free(hv);
    for (int i = 0; i < 3; i++) free(in[i]);
    float *bufs[] = {dq_, dk_, dv_, out, att, out2, gq, gk, gv, dr};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) be->free(bufs[i]);
}

// ---- swiglu ----------------------------------------------------------------------------------
static void ref_swiglu(const void *vc, double *const *in, double *out) {
    size_t n = *(const size_t *)vc;
    for (size_t i = 0; i < n; i++) out[i] = in[0][i] / (1.0 + exp(-in[0][i])) * in[1][i];
}
static void test_swiglu(size_t n, float scale) {
    float *g = rnd(n, scale), *u = rnd(n, 1), *r = rnd(n, 1);
    if (n > 3) g[0] = 90.0f, g[1] = -90.0f, g[2] = -200.0f; // exp overflow territory
    double *in[2] = {to_d(g, n), to_d(u, n)}, *rd = to_d(r, n);
    float *dg = dev(g, n), *du = dev(u, n), *dy = be->alloc(n);
    be->swiglu_forward(dy, dg, du, n);
    check_fwd("swiglu out", ref_swiglu, &n, in, dy, n);
    float *junk = rnd(n, 1e3f), *gg = dev(junk, n), *gu = dev(junk, n), *dr = dev(r, n);
    be->swiglu_backward(gg, gu, dr, dg, du, n);
    float *hg = host(gg, n), *hu = host(gu, n);
    check_grad("swiglu dgate", ref_swiglu, &n, in, 0, n, n, rd, hg, NULL);
    check_grad("swiglu dup", ref_swiglu, &n, in, 1, n, n, rd, hu, NULL);
    free(g), free(u), free(r), free(in[0]), free(in[1]), free(rd), free(junk), free(hg), free(hu);
    be->free(dg), be->free(du), be->free(dy), be->free(gg), be->free(gu), be->free(dr);
}

// ---- residual --------------------------------------------------------------------------------
static void ref_residual(const void *vc, double *const *in, double *out) {
    size_t n = *(const size_t *)vc;
    for (size_t i = 0; i < n; i++) out[i] = in[0][i] + in[1][i];
}
static void test_residual(size_t n) {
    float *a = rnd(n, 1), *b = rnd(n, 1), *r = rnd(n, 1), *ba = rnd(n, 1), *bb = rnd(n, 1);
    double *in[2] = {to_d(a, n), to_d(b, n)}, *rd = to_d(r, n);
    float *da = dev(a, n), *db = dev(b, n), *dy = be->alloc(n);
    be->residual_forward(dy, da, db, n);
    check_fwd("residual out", ref_residual, &n, in, dy, n);
    be->residual_forward(da, da, db, n); // out aliases a
    check_fwd("residual out (aliased)", ref_residual, &n, in, da, n);
    float *ga = dev(ba, n), *gb = dev(bb, n), *dr = dev(r, n);
    be->residual_backward(ga, gb, dr, n);
    float *ha = host(ga, n), *hb = host(gb, n);
    check_grad("residual da (accumulates)", ref_residual, &n, in, 0, n, n, rd, ha, ba);
    check_grad("residual db (accumulates)", ref_residual, &n, in, 1, n, n, rd, hb, bb);
    be->residual_backward(NULL, gb, dr, n); // NULL da: only db moves
    float *hb2 = host(gb, n);
    for (size_t i = 0; i < n; i++) hb[i] += r[i];
    tl_allclose("residual db (da NULL)", hb2, hb, n, FWD_ATOL, FWD_RTOL);
    free(a), free(b), free(r), free(ba), free(bb), free(in[0]), free(in[1]), free(rd), free(ha),
        free(hb), free(hb2);
    be->free(da), be->free(db), be->free(dy), be->free(ga), be->free(gb), be->free(dr);
}

// ---- embedding, gather / scatter ---------------------------------------------------------------
static void test_embedding(size_t N, size_t V, size_t C) {
    float *wte = rnd(V * C, 1), *want = malloc(N * C * sizeof(float));
    int *tok = malloc(N * sizeof(int));
    for (size_t n = 0; n < N; n++) {
        tok[n] = (int)rndu(V);
        for (size_t c = 0; c < C; c++) want[n * C + c] = wte[tok[n] * C + c];
    }
    float *dw = dev(wte, V * C), *dy = be->alloc(N * C);
    be->embedding_forward(dy, tok, dw, N, C);
    float *got = host(dy, N * C);
    tl_allclose("embedding out", got, want, N * C, 0, 0);
    free(wte), free(want), free(tok), free(got);
    be->free(dw), be->free(dy);
}
typedef struct { size_t M, C; const size_t *rows; } gr_ctx;
static void ref_gather(const void *vc, double *const *in, double *out) {
    const gr_ctx *c = vc;
    for (size_t m = 0; m < c->M; m++)
        for (size_t i = 0; i < c->C; i++) out[m * c->C + i] = in[0][c->rows[m] * c->C + i];
}
static void test_gather_scatter(size_t N, size_t M, size_t C) {
    size_t *rows = malloc(M * sizeof(size_t));
    for (size_t m = 0; m < M; m++) rows[m] = rndu(N);
    if (M > 1) rows[M - 1] = rows[0]; // a repeated row must accumulate twice
    gr_ctx c = {M, C, rows};
    float *x = rnd(N * C, 1), *r = rnd(M * C, 1), *base = rnd(N * C, 1);
    double *in[1] = {to_d(x, N * C)}, *rd = to_d(r, M * C);
    float *dx_ = dev(x, N * C), *dy = be->alloc(M * C);
    be->gather_rows(dy, dx_, rows, M, C);
    check_fwd("gather_rows out", ref_gather, &c, in, dy, M * C);
    float *dr = dev(r, M * C), *g = dev(base, N * C);
    be->scatter_add_rows(g, dr, rows, M, C);
    float *hg = host(g, N * C);
    check_grad("scatter_add_rows (accumulates)", ref_gather, &c, in, 0, N * C, M * C, rd, hg, base);
    free(rows), free(x), free(r), free(base), free(in[0]), free(rd), free(hg);
    be->free(dx_), be->free(dy), be->free(dr), be->free(g);
}

// ---- logprob ---------------------------------------------------------------------------------
typedef struct { size_t M, V; const int *t; } lp_ctx;
static void ref_logprob(const void *vc, double *const *in, double *out) {
    const lp_ctx *c = vc;
    for (size_t m = 0; m < c->M; m++) {
        const double *x = in[0] + m * c->V;
        double mx = x[0], s = 0;
        for (size_t i = 1; i < c->V; i++) mx = x[i] > mx ? x[i] : mx;
        for (size_t i = 0; i < c->V; i++) s += exp(x[i] - mx);
        out[m] = x[c->t[m]] - (mx + log(s));
    }
}
static void test_logprob(size_t M, size_t V, float scale, float offset) {
    int *t = malloc(M * sizeof(int));
    for (size_t m = 0; m < M; m++) t[m] = (int)rndu(V);
    lp_ctx c = {M, V, t};
    float *x = rnd(M * V, scale), *r = rnd(M, 1);
    for (size_t i = 0; i < V; i++) x[i] += offset; // row 0 shifted: exp() would overflow
    double *in[1] = {to_d(x, M * V)}, *rd = to_d(r, M);
    float *dx_ = dev(x, M * V), *lp = be->alloc(M), *lse = be->alloc(M);
    be->logprob_forward(lp, lse, dx_, t, M, V);
    // |lp| ~ log V: the float result has absolute error ~ |lse| * 6e-8, hence the offset term
    double *want = malloc(M * sizeof(double));
    ref_logprob(&c, in, want);
    float *wf = to_f(want, M), *got = host(lp, M), *gl = host(lse, M), *wl = malloc(M * sizeof(float));
    tl_allclose("logprob lp", got, wf, M, FWD_ATOL + 1e-7 * fabsf(offset), FWD_RTOL);
    for (size_t m = 0; m < M; m++) wl[m] = (float)(in[0][m * V + t[m]] - want[m]);
    tl_allclose("logprob lse", gl, wl, M, FWD_ATOL, FWD_RTOL);
    float *junk = rnd(M * V, 1e3f), *g = dev(junk, M * V);
    be->logprob_backward(g, r, dx_, lse, t, M, V); // dlp is a HOST array
    float *hg = host(g, M * V);
    check_grad("logprob dlogits", ref_logprob, &c, in, 0, M * V, M, rd, hg, NULL);
    free(t), free(x), free(r), free(in[0]), free(rd), free(want), free(wf), free(got), free(gl),
        free(wl), free(junk), free(hg);
    be->free(dx_), be->free(lp), be->free(lse), be->free(g);
}

// ---- steering hook ---------------------------------------------------------------------------
typedef struct { size_t N, C; float scale; const uint8_t *mask; } av_ctx;
static void ref_add_vector(const void *vc, double *const *in, double *out) { // in: h, v
    const av_ctx *c = vc;
    for (size_t n = 0; n < c->N; n++)
        for (size_t i = 0; i < c->C; i++)
            out[n * c->C + i] = in[0][n * c->C + i] +
                                ((!c->mask || c->mask[n]) ? (double)c->scale * in[1][i] : 0.0);
}
static void test_add_vector(size_t N, size_t C, float scale, int use_mask) {
    uint8_t *mask = NULL;
    if (use_mask) {
        mask = malloc(N);
        for (size_t n = 0; n < N; n++) mask[n] = tl_randf() > 0 ? (uint8_t)(1 + n % 3) : 0;
    }
    av_ctx c = {N, C, scale, mask};
    float *h = rnd(N * C, 1), *v = rnd(C, 1), *r = rnd(N * C, 1), *base = rnd(C, 1);
    double *in[2] = {to_d(h, N * C), to_d(v, C)}, *rd = to_d(r, N * C);
    float *dh = dev(h, N * C), *dv = dev(v, C);
    be->add_vector_forward(dh, dv, scale, mask, N, C);
    check_fwd(use_mask ? "add_vector out (mask)" : "add_vector out", ref_add_vector, &c, in, dh,
              N * C);
    float *dr = dev(r, N * C), *g = dev(base, C);
    be->add_vector_backward(g, dr, scale, mask, N, C);
    float *hg = host(g, C);
    check_grad(use_mask ? "add_vector dv (mask, accumulates)" : "add_vector dv (accumulates)",
               ref_add_vector, &c, in, 1, C, N * C, rd, hg, base);
    free(mask), free(h), free(v), free(r), free(base), free(in[0]), free(in[1]), free(rd), free(hg);
    be->free(dh), be->free(dv), be->free(dr), be->free(g);
}

// ---- backend table plumbing ------------------------------------------------------------------
static void test_selection(void) {
    const bipo_backend *cpu = bipo_backend_open("cpu", 0), *cu = bipo_backend_open("cuda", 0);
    EXPECT(cpu && strcmp(cpu->name, "cpu") == 0, "open(cpu) must give the cpu backend");
    EXPECT(!cu || strcmp(cu->name, "cuda") == 0, "open(cuda) gave backend '%s'", cu->name);
    EXPECT(bipo_backend_open("auto", 0) == (cu ? cu : cpu), "open(auto): CUDA when available");
    EXPECT(bipo_backend_open(NULL, 0) == (cu ? cu : cpu), "open(NULL) is open(auto)");
    EXPECT(bipo_backend_open("tpu", 0) == NULL && strstr(bipo_last_error(), "'tpu'"),
           "an unknown name must give NULL and an error naming it (got '%s')", bipo_last_error());
    int nt = bipo_backend_cpu_threads();
    EXPECT(nt >= 1, "threads %d", nt);
    bipo_backend_open("cpu", 3);
    EXPECT(bipo_backend_cpu_threads() == 3, "open(cpu, 3) gave %d threads", bipo_backend_cpu_threads());
    bipo_backend_open("cpu", 0); // 0 keeps the count
    EXPECT(bipo_backend_cpu_threads() == 3, "open(cpu, 0) changed the threads to %d",
           bipo_backend_cpu_threads());
    bipo_backend_open("cpu", nt);
    // the CPU backend's description leads with OpenBLAS's own (the library's provenance string)
    const char *d = cpu->describe ? cpu->describe() : "";
    EXPECT(strncmp(d, bipo_blas_config(), strlen(bipo_blas_config())) == 0 && strstr(d, "AMX"),
           "cpu describe() is '%s', want it to start with '%s' and name AMX", d, bipo_blas_config());
}

// Every entry of the table is filled but the documented optional ones: the table is read as
// an array of function pointers after `name` (a new entry is checked without editing this).
typedef void (*any_fn)(void);
_Static_assert(sizeof(bipo_backend) % sizeof(any_fn) == 0 &&
                   offsetof(bipo_backend, alloc) == sizeof(any_fn),
               "bipo_backend is expected to be `name` followed by function pointers");
static void test_table(void) {
    static const size_t optional[] = {offsetof(bipo_backend, weights_register),
                                      offsetof(bipo_backend, weights_release),
                                      offsetof(bipo_backend, describe),
                                      offsetof(bipo_backend, logprob_matmul_backward)};
    size_t filled = 0, slots = sizeof(bipo_backend) / sizeof(any_fn);
    for (size_t off = offsetof(bipo_backend, alloc); off < sizeof(bipo_backend); off += sizeof(any_fn)) {
        any_fn f;
        memcpy(&f, (const char *)be + off, sizeof f);
        int opt = 0;
        for (size_t i = 0; i < sizeof optional / sizeof *optional; i++) opt |= optional[i] == off;
        EXPECT(f || opt, "%s: table entry %zu of %zu (offset %zu) is NULL and not optional",
               be->name, off / sizeof(any_fn), slots - 1, off);
        filled += f != NULL;
    }
    EXPECT(!be->weights_register == !be->weights_release,
           "%s: weights_register and weights_release come together", be->name);
    EXPECT(be->name && *be->name, "backend without a name");
    printf("test_kernels: %s: %zu of %zu table entries filled\n", be->name, filled, slots - 1);
    float *p = be->alloc(1000), h[1000];
    be->download(h, p, 1000);
    int zero = 1;
    for (size_t i = 0; i < 1000; i++) zero &= h[i] == 0.0f;
    EXPECT(zero, "%s: alloc must return zeroed memory", be->name);
    if (strcmp(be->name, "cpu") == 0)
        EXPECT(((uintptr_t)p % 64) == 0, "cpu alloc must return 64-byte aligned memory");
    be->free(p);
}

// Every op of the backend in `be`, forward and backward.
static void test_ops(void) {
    test_matmul(7, 13, 5);
    test_matmul(1, 1, 1);
    test_matmul(33, 64, 17);
    for (int p = 0; p < 2; p++) {
        bipo_matmul_precision prec = p ? BIPO_MATMUL_BF16X3 : BIPO_MATMUL_FP32;
        test_matmul_registered(37, 45, 70, prec);   // tails everywhere, two row blocks
        test_matmul_registered(5, 40, 33, prec);    // few rows: the OpenBLAS path
        test_matmul_registered(64, 1100, 96, prec); // K past one 1024 block of the AMX kernel
        test_matmul_registered(19, 24, 4200, prec); // a long K in the backward (OpenBLAS in fp32)
    }
    test_precision_fallback(37, 45, 70);
    printf("test_kernels: %s: bf16x3 GEMM %s\n", be->name,
           be->supports_precision(BIPO_MATMUL_BF16X3) ? "tested" : "not available: fp32 fallback tested");
    test_rmsnorm(7, 13, 1.0f);
    test_rmsnorm(3, 64, 20.0f);
    test_rmsnorm(2, 1, 0.01f); // tiny values: eps matters

    test_rope(7, 3, 6, 10000.0f, 600);
    test_rope(5, 2, 8, 100000.0f, 4000);
    test_rope(3, 1, 64, 10000.0f, 8191);

    {   // GQA 3 (NH=6, NKV=2), two sequences of different lengths, full pass
        size_t nq[] = {5, 7}, nk[] = {5, 7};
        test_attention("gqa3", 2, nq, nk, 6, 2, 8, 0);
    }
    {   // MHA (NH=NKV=3), HD=6, three sequences incl. a single token, sliding window 3
        size_t nq[] = {1, 4, 9}, nk[] = {1, 4, 9};
        test_attention("mha-window3", 3, nq, nk, 3, 3, 6, 3);
    }
    {   // SmolLM2 ratio (NH=9, NKV=3), KV-cache decode: nq < nk, one decode step of 1 token
        size_t nq[] = {2, 1, 6}, nk[] = {7, 5, 6};
        test_attention("gqa3-9/3-kvcache", 3, nq, nk, 9, 3, 8, 0);
    }
    {   // GQA 2 (NH=4, NKV=2), KV cache and a window wider than some sequences
        size_t nq[] = {3, 8}, nk[] = {9, 8};
        test_attention("gqa2-kvcache-window4", 2, nq, nk, 4, 2, 6, 4);
    }
    {   // the hot shape of SmolLM2 heads (HD=64), longer rows; FD on a random sample
        size_t nq[] = {24, 11}, nk[] = {24, 11};
        test_attention("smollm2-hd64", 2, nq, nk, 9, 3, 64, 0);
    }
    {   // several query and key blocks of the CPU kernel (32 rows when every sequence is
        // shorter than 256): a window crossing block edges, KV cache with several blocks
        size_t nq[] = {150, 40}, nk[] = {150, 100};
        test_attention("blocks-gqa2-kvcache-window20", 2, nq, nk, 4, 2, 8, 20);
    }
    {   // 64-row blocks (a sequence of >= 256 queries), a ragged last block of 4 rows
        size_t nq[] = {260, 3}, nk[] = {260, 3};
        test_attention("blocks-260", 2, nq, nk, 2, 1, 4, 0);
    }

    test_swiglu(13, 4.0f);
    test_swiglu(100, 10.0f);
    test_residual(13);
    test_residual(1000);
    test_embedding(7, 11, 13);
    test_gather_scatter(9, 5, 13);
    test_logprob(7, 13, 3.0f, 0.0f);
    test_logprob(3, 50, 30.0f, 1000.0f);
    test_add_vector(7, 13, 4.0f, 0);
    test_add_vector(9, 70, -2.5f, 1);
}

int main(void) {
    static const char *const backends[] = {"cpu", "cuda"};
    test_selection();
    for (size_t i = 0; i < sizeof backends / sizeof *backends; i++) {
        be = bipo_backend_open(backends[i], 0);
        if (!be) {
            printf("test_kernels: SKIP %s: not available\n", backends[i]);
            continue;
        }
        printf("test_kernels: backend %s\n", be->name);
        tl_seed(1234); // the same inputs on every backend
        test_table();
        test_ops();
    }
    return tl_summary("test_kernels");
}
