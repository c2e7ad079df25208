// tests/test_cuda_bodies.c — the CUDA kernels' per-thread bodies (kernels/cuda/cuda_bodies.h)
// run on the host over the kernels' grids, against the CPU backend's ops on random inputs of
// odd sizes. No GPU needed (a C compiler builds the bodies as static inline functions), so
// indexing, masking and tail bugs of the kernels show up here. The cross-thread steps the
// kernels do with shuffles and shared memory (block sums, a tile's 32 scores handed to every
// lane) are plain loops over the threads/lanes below, in the kernels' order of steps.
//
// Tolerances: both sides are float with sums in double or over <= ~100 float terms, so 1e-5
// (forward) and 1e-4 abs / 1e-3 rel (backward, where softmax and rmsnorm gradients subtract
// O(1) terms), as in tests/test_kernels.c; an indexing bug moves outputs by O(0.1).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_bodies.h" // defines: the cu_* bodies
#include "kernels.h"          // defines: bipo_backend_cpu, bipo_seqs, bipo_att_floats
#include "testlib.h"          // defines: EXPECT, tl_allclose, tl_fill, tl_summary

#define FWD 1e-5
#define BWD_ATOL 1e-4
#define BWD_RTOL 1e-3
#define NT 48 // emulated threads per block: not a divisor of the row lengths below

static const bipo_backend *cpu;

static float *rnd(size_t n, float scale) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    tl_fill(x, n, scale);
    return x;
}
static float *dup_f(const float *x, size_t n) {
    float *y = malloc((n ? n : 1) * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    return y;
}
static size_t rndu(size_t n) { return (size_t)((tl_randf() + 1.0f) * 0.5f * (float)n) % n; }

// ---- RMSNorm: a block per row, NT threads ----
static void test_rmsnorm(size_t N, size_t C) {
    float *x = rnd(N * C, 2.0f), *w = rnd(C, 1.0f), *dy = rnd(N * C, 1.0f), *base = rnd(N * C, 1.0f);
    float *o = malloc(N * C * sizeof(float)), *r = malloc(N * sizeof(float));
    float *oc = malloc(N * C * sizeof(float)), *rc = malloc(N * sizeof(float));
    float *dx = dup_f(base, N * C), *dxc = dup_f(base, N * C);
    for (size_t n = 0; n < N; n++) {
        double ss = 0, dot = 0;
        for (size_t t = 0; t < NT; t++) ss += cu_sumsq_part(x + n * C, C, t, NT);
        r[n] = cu_rstd(ss, C, 1e-5f);
        for (size_t c = 0; c < C; c++) o[n * C + c] = w[c] * (x[n * C + c] * r[n]);
        for (size_t t = 0; t < NT; t++) dot += cu_dot3_part(dy + n * C, w, x + n * C, C, t, NT);
        for (size_t c = 0; c < C; c++) cu_rmsnorm_bwd_elem(dx + n * C, dy + n * C, x + n * C, w, r[n], dot, C, c);
    }
    cpu->rmsnorm_forward(oc, rc, x, w, N, C, 1e-5f);
    cpu->rmsnorm_backward(dxc, dy, x, w, rc, N, C);
    tl_allclose("rmsnorm out", o, oc, N * C, FWD, FWD);
    tl_allclose("rmsnorm rstd", r, rc, N, FWD, FWD);
    tl_allclose("rmsnorm dinp", dx, dxc, N * C, BWD_ATOL, BWD_RTOL);
    free(x), free(w), free(dy), free(base), free(o), free(r), free(oc), free(rc), free(dx), free(dxc);
}

// ---- RoPE: a thread per pair ----
static void test_rope(size_t N, size_t H, size_t HD) {
    int *pos = malloc(N * sizeof(int));
    for (size_t n = 0; n < N; n++) pos[n] = (int)rndu(3000);
    const size_t n = N * H * HD;
    float *x = rnd(n, 1.0f), *a = dup_f(x, n), *b = dup_f(x, n);
    for (int dir = 0; dir < 2; dir++) {
        const float sign = dir ? -1.0f : 1.0f;
        for (size_t e = 0; e < N * H * (HD / 2); e++) cu_rope_elem(a, pos, H, HD, 10000.0f, sign, e);
        if (dir) cpu->rope_backward(b, pos, N, H, HD, 10000.0f);
        else cpu->rope_forward(b, pos, N, H, HD, 10000.0f);
        tl_allclose(dir ? "rope backward" : "rope forward", a, b, n, FWD, FWD);
    }
    tl_allclose("rope round trip", a, x, n, 1e-5, 1e-5);
    free(pos), free(x), free(a), free(b);
}

// ---- SwiGLU, residual-free elementwise ops ----
static void test_swiglu(size_t n) {
    float *g = rnd(n, 6.0f), *u = rnd(n, 1.0f), *dy = rnd(n, 1.0f);
    float *o = malloc(n * 4), *oc = malloc(n * 4), *dg = malloc(n * 4), *du = malloc(n * 4);
    float *dgc = malloc(n * 4), *duc = malloc(n * 4);
    for (size_t i = 0; i < n; i++) cu_swiglu_fwd_elem(o, g, u, i), cu_swiglu_bwd_elem(dg, du, dy, g, u, i);
    cpu->swiglu_forward(oc, g, u, n);
    cpu->swiglu_backward(dgc, duc, dy, g, u, n);
    tl_allclose("swiglu out", o, oc, n, FWD, FWD);
    tl_allclose("swiglu dgate", dg, dgc, n, BWD_ATOL, BWD_RTOL);
    tl_allclose("swiglu dup", du, duc, n, BWD_ATOL, BWD_RTOL);
    free(g), free(u), free(dy), free(o), free(oc), free(dg), free(du), free(dgc), free(duc);
}

// ---- rows: embedding, gather, scatter_add with repeated rows ----
static void test_rows(size_t NR, size_t M, size_t C) {
    float *src = rnd(NR * C, 1.0f), *dout = rnd(M * C, 1.0f), *base = rnd(NR * C, 1.0f);
    size_t *rows = malloc(M * sizeof(size_t));
    unsigned long long *rows_u = malloc(M * sizeof *rows_u);
    int *tok = malloc(M * sizeof(int));
    for (size_t m = 0; m < M; m++) rows[m] = rows_u[m] = m % 3 == 2 ? rows[m - 1] : rndu(NR), tok[m] = (int)rows[m];
    float *o = malloc(M * C * 4), *oc = malloc(M * C * 4), *e = malloc(M * C * 4), *ec = malloc(M * C * 4);
    float *d = dup_f(base, NR * C), *dc = dup_f(base, NR * C);
    for (size_t i = 0; i < M * C; i++) {
        cu_gather_elem(o, src, rows_u, C, i);
        cu_embed_elem(e, tok, src, C, i);
        d[cu_scatter_dst(rows_u, C, i)] += dout[i];
    }
    cpu->gather_rows(oc, src, rows, M, C);
    cpu->embedding_forward(ec, tok, src, M, C);
    cpu->scatter_add_rows(dc, dout, rows, M, C);
    tl_allclose("gather_rows", o, oc, M * C, 0, 0);
    tl_allclose("embedding", e, ec, M * C, 0, 0);
    tl_allclose("scatter_add_rows", d, dc, NR * C, 1e-6, 1e-6);
    free(src), free(dout), free(base), free(rows), free(rows_u), free(tok), free(o), free(oc), free(e), free(ec), free(d), free(dc);
}

// ---- log-prob: a block per row for the forward, a thread per logit for the backward ----
static void test_logprob(size_t M, size_t V, float offset) {
    float *x = rnd(M * V, 8.0f), *dlp = rnd(M, 1.0f);
    for (size_t i = 0; i < M * V; i++) x[i] += offset;
    int *tg = malloc(M * sizeof(int));
    for (size_t m = 0; m < M; m++) tg[m] = (int)rndu(V);
    float *lp = malloc(M * 4), *lse = malloc(M * 4), *lpc = malloc(M * 4), *lsec = malloc(M * 4);
    float *dl = malloc(M * V * 4), *dlc = malloc(M * V * 4);
    for (size_t m = 0; m < M; m++) {
        float mx = -INFINITY;
        for (size_t t = 0; t < NT; t++) {
            const float p = cu_max_part(x + m * V, V, t, NT);
            mx = p > mx ? p : mx;
        }
        double s = 0;
        for (size_t t = 0; t < NT; t++) s += cu_sumexp_part(x + m * V, V, mx, t, NT);
        lse[m] = (float)((double)mx + log(s));
        lp[m] = x[m * V + tg[m]] - lse[m];
    }
    for (size_t e = 0; e < M * V; e++) cu_logprob_bwd_elem(dl, x, dlp, lse, tg, V, e);
    cpu->logprob_forward(lpc, lsec, x, tg, M, V);
    cpu->logprob_backward(dlc, dlp, x, lsec, tg, M, V);
    const double tol = FWD * (1.0 + fabs(offset));
    tl_allclose("logprob lp", lp, lpc, M, tol, FWD);
    tl_allclose("logprob lse", lse, lsec, M, tol, FWD);
    tl_allclose("logprob dlogits", dl, dlc, M * V, BWD_ATOL, BWD_RTOL);
    free(x), free(dlp), free(tg), free(lp), free(lse), free(lpc), free(lsec), free(dl), free(dlc);
}

// ---- steering ----
static void test_addvec(size_t N, size_t C, int masked) {
    float *h = rnd(N * C, 1.0f), *v = rnd(C, 1.0f), *dh = rnd(N * C, 1.0f), *dv0 = rnd(C, 1.0f);
    uint8_t *mask = NULL;
    if (masked) {
        mask = malloc(N);
        for (size_t n = 0; n < N; n++) mask[n] = (uint8_t)(rndu(3) != 0);
    }
    float *a = dup_f(h, N * C), *b = dup_f(h, N * C), *dv = dup_f(dv0, C), *dvc = dup_f(dv0, C);
    for (size_t e = 0; e < N * C; e++) cu_addvec_fwd_elem(a, v, -1.7f, mask, C, e);
    for (size_t c = 0; c < C; c++) cu_addvec_bwd_col(dv, dh, -1.7f, mask, N, C, c);
    cpu->add_vector_forward(b, v, -1.7f, mask, N, C);
    cpu->add_vector_backward(dvc, dh, -1.7f, mask, N, C);
    tl_allclose(masked ? "add_vector masked" : "add_vector", a, b, N * C, FWD, FWD);
    tl_allclose(masked ? "add_vector dv masked" : "add_vector dv", dv, dvc, C, BWD_ATOL, BWD_RTOL);
    free(h), free(v), free(dh), free(dv0), free(mask), free(a), free(b), free(dv), free(dvc);
}

// ---- attention: the three warp kernels, lanes as loops ----
typedef struct {
    const float *q, *k, *v, *dout;
    const unsigned long long *qo, *ko;
    size_t S, NH, NKV, HD, window, Nq, Nk;
    float scale;
} att_prob;

// att_fwd_kernel for warp (n, h): out row and lse
static void emu_fwd(const att_prob *P, size_t n, size_t h, float *out, float *lse) {
    const size_t g = h / (P->NH / P->NKV), qs = P->NH * P->HD, ks = P->NKV * P->HD, HD = P->HD;
    size_t k0, k1;
    cu_att_query_range(P->qo, P->ko, P->S, P->window, n, &k0, &k1);
    const float *qr = P->q + n * qs + h * HD, *kb = P->k + g * HD, *vb = P->v + g * HD;
    float o[CU_MAX_HD] = {0}, m = -INFINITY, l = 0.0f, s[CU_TILE], p[CU_TILE];
    for (size_t j0 = k0; j0 < k1; j0 += CU_TILE) {
        const size_t cnt = k1 - j0 < CU_TILE ? k1 - j0 : CU_TILE;
        float tmax = -INFINITY, psum = 0.0f;
        for (size_t ln = 0; ln < CU_TILE; ln++) {
            s[ln] = ln < cnt ? cu_dot(qr, kb + (j0 + ln) * ks, HD, P->scale) : -INFINITY;
            tmax = s[ln] > tmax ? s[ln] : tmax;
        }
        const float mnew = cu_online_max(m, tmax);
        for (size_t ln = 0; ln < CU_TILE; ln++) psum += p[ln] = ln < cnt ? expf(s[ln] - mnew) : 0.0f;
        const float corr = cu_online_step(&m, &l, mnew, psum);
        for (size_t d = 0; d < HD; d++) o[d] = o[d] * corr + cu_tile_acc(p, vb + j0 * ks, ks, cnt, d);
    }
    lse[n * P->NH + h] = m + logf(l);
    for (size_t d = 0; d < HD; d++) out[n * qs + h * HD + d] = o[d] / l;
}

// att_dq_kernel for warp (n, h)
static void emu_dq(const att_prob *P, const float *lse, size_t n, size_t h, float *dq, float *D) {
    const size_t g = h / (P->NH / P->NKV), qs = P->NH * P->HD, ks = P->NKV * P->HD, HD = P->HD;
    size_t k0, k1;
    cu_att_query_range(P->qo, P->ko, P->S, P->window, n, &k0, &k1);
    const float *qr = P->q + n * qs + h * HD, *dor = P->dout + n * qs + h * HD;
    const float *kb = P->k + g * HD, *vb = P->v + g * HD, L = lse[n * P->NH + h];
    float Dl = 0.0f, acc[CU_MAX_HD] = {0}, ds[CU_TILE];
    for (size_t j = k0; j < k1; j++)
        Dl += expf(cu_dot(qr, kb + j * ks, HD, P->scale) - L) * cu_dot(dor, vb + j * ks, HD, 1.0f);
    for (size_t j0 = k0; j0 < k1; j0 += CU_TILE) {
        const size_t cnt = k1 - j0 < CU_TILE ? k1 - j0 : CU_TILE;
        for (size_t ln = 0; ln < CU_TILE; ln++) {
            const size_t j = j0 + ln;
            ds[ln] = ln < cnt ? expf(cu_dot(qr, kb + j * ks, HD, P->scale) - L) *
                                    (cu_dot(dor, vb + j * ks, HD, 1.0f) - Dl)
                              : 0.0f;
        }
        for (size_t d = 0; d < HD; d++) acc[d] += cu_tile_acc(ds, kb + j0 * ks, ks, cnt, d);
    }
    D[n * P->NH + h] = Dl;
    for (size_t d = 0; d < HD; d++) dq[n * qs + h * HD + d] = P->scale * acc[d];
}

// att_dkv_kernel for warp (r, g)
static void emu_dkv(const att_prob *P, const float *lse, const float *D, size_t r, size_t g,
                    float *dk, float *dv) {
    const size_t G = P->NH / P->NKV, qs = P->NH * P->HD, ks = P->NKV * P->HD, HD = P->HD;
    size_t q0, q1;
    cu_att_key_range(P->qo, P->ko, P->S, P->window, r, &q0, &q1);
    const float *kr = P->k + r * ks + g * HD, *vr = P->v + r * ks + g * HD;
    float ak[CU_MAX_HD] = {0}, av[CU_MAX_HD] = {0}, p[CU_TILE], ds[CU_TILE];
    for (size_t h = g * G; h < (g + 1) * G; h++)
        for (size_t i0 = q0; i0 < q1; i0 += CU_TILE) {
            const size_t cnt = q1 - i0 < CU_TILE ? q1 - i0 : CU_TILE;
            for (size_t ln = 0; ln < CU_TILE; ln++) {
                const size_t i = i0 + ln;
                p[ln] = ds[ln] = 0.0f;
                if (ln < cnt) {
                    p[ln] = expf(cu_dot(P->q + i * qs + h * HD, kr, HD, P->scale) - lse[i * P->NH + h]);
                    ds[ln] = p[ln] * (cu_dot(P->dout + i * qs + h * HD, vr, HD, 1.0f) - D[i * P->NH + h]);
                }
            }
            for (size_t d = 0; d < HD; d++) {
                av[d] += cu_tile_acc(p, P->dout + i0 * qs + h * HD, qs, cnt, d);
                ak[d] += cu_tile_acc(ds, P->q + i0 * qs + h * HD, qs, cnt, d);
            }
        }
    for (size_t d = 0; d < HD; d++) dk[r * ks + g * HD + d] = P->scale * ak[d], dv[r * ks + g * HD + d] = av[d];
}

static void test_attention(const size_t *nq, const size_t *nk, size_t S, size_t NH, size_t NKV,
                           size_t HD, size_t window) {
    size_t qo[8] = {0}, ko[8] = {0};
    unsigned long long qou[8] = {0}, kou[8] = {0};
    for (size_t s = 0; s < S; s++) qou[s + 1] = qo[s + 1] = qo[s] + nq[s], kou[s + 1] = ko[s + 1] = ko[s] + nk[s];
    const size_t Nq = qo[S], Nk = ko[S], qn = Nq * NH * HD, kn = Nk * NKV * HD;
    float *q = rnd(qn, 1.5f), *k = rnd(kn, 1.5f), *v = rnd(kn, 1.0f), *dout = rnd(qn, 1.0f);
    att_prob P = {q, k, v, dout, qou, kou, S, NH, NKV, HD, window, Nq, Nk, 1.0f / sqrtf((float)HD)};
    bipo_seqs sq = {S, qo, ko};
    const size_t na = bipo_att_floats(&sq, NH);
    float *out = malloc(qn * 4), *outc = malloc(qn * 4), *att = malloc(na * 4), *lse = malloc(Nq * NH * 4);
    float *dq = malloc(qn * 4), *dqc = malloc(qn * 4), *D = malloc(Nq * NH * 4);
    float *dk = malloc(kn * 4), *dkc = malloc(kn * 4), *dv = malloc(kn * 4), *dvc = malloc(kn * 4);
    EXPECT(Nq * NH <= na, "lse (%zu floats) fits the att buffer (%zu)", Nq * NH, na);
    for (size_t n = 0; n < Nq; n++)
        for (size_t h = 0; h < NH; h++) emu_fwd(&P, n, h, out, lse);
    cpu->attention_forward(outc, att, q, k, v, &sq, NH, NKV, HD, window);
    char what[96];
    snprintf(what, sizeof what, "attention out (NH %zu NKV %zu HD %zu window %zu)", NH, NKV, HD, window);
    tl_allclose(what, out, outc, qn, FWD, FWD);
    // the CPU's saved probabilities from the lse: p_ij = exp(scale q.k - lse), 0 where unseen
    size_t off = 0, bad = 0;
    for (size_t s = 0; s < S; s++) {
        for (size_t h = 0; h < NH; h++)
            for (size_t i = 0; i < nq[s]; i++)
                for (size_t j = 0; j < nk[s]; j++) {
                    const size_t n = qo[s] + i, g = h / (NH / NKV);
                    size_t k0, k1;
                    cu_att_query_range(qou, kou, S, window, n, &k0, &k1);
                    const size_t r = ko[s] + j;
                    const float p = r >= k0 && r < k1
                        ? expf(cu_dot(q + n * NH * HD + h * HD, k + r * NKV * HD + g * HD, HD, P.scale) - lse[n * NH + h])
                        : 0.0f;
                    const float want = att[off + (h * nq[s] + i) * nk[s] + j];
                    if (!(fabsf(p - want) <= 1e-5f)) bad++;
                }
        off += NH * nq[s] * nk[s];
    }
    EXPECT(bad == 0, "%s: %zu probabilities from the lse differ from the CPU's", what, bad);
    for (size_t n = 0; n < Nq; n++)
        for (size_t h = 0; h < NH; h++) emu_dq(&P, lse, n, h, dq, D);
    for (size_t r = 0; r < Nk; r++)
        for (size_t g = 0; g < NKV; g++) emu_dkv(&P, lse, D, r, g, dk, dv);
    cpu->attention_backward(dqc, dkc, dvc, dout, q, k, v, att, &sq, NH, NKV, HD);
    tl_allclose("attention dq", dq, dqc, qn, BWD_ATOL, BWD_RTOL);
    tl_allclose("attention dk", dk, dkc, kn, BWD_ATOL, BWD_RTOL);
    tl_allclose("attention dv", dv, dvc, kn, BWD_ATOL, BWD_RTOL);
    free(q), free(k), free(v), free(dout), free(out), free(outc), free(att), free(lse);
    free(dq), free(dqc), free(D), free(dk), free(dkc), free(dv), free(dvc);
}

// The key ranges of the dk/dv pass are exactly the transposes of the query ranges.
static void test_key_ranges(size_t window) {
    const size_t S = 3, nq[3] = {5, 40, 1}, nk[3] = {9, 40, 37};
    unsigned long long qo[4] = {0}, ko[4] = {0};
    for (size_t s = 0; s < S; s++) qo[s + 1] = qo[s] + nq[s], ko[s + 1] = ko[s] + nk[s];
    size_t bad = 0;
    for (size_t r = 0; r < ko[S]; r++) {
        size_t q0, q1;
        cu_att_key_range(qo, ko, S, window, r, &q0, &q1);
        for (size_t n = 0; n < qo[S]; n++) {
            size_t k0, k1;
            cu_att_query_range(qo, ko, S, window, n, &k0, &k1);
            if ((r >= k0 && r < k1) != (n >= q0 && n < q1)) bad++;
        }
    }
    EXPECT(bad == 0, "key ranges (window %zu): %zu (key, query) pairs disagree", window, bad);
}

int main(void) {
    cpu = bipo_backend_open("cpu", 0);
    tl_seed(7);
    test_rmsnorm(7, 37);
    test_rmsnorm(3, 301);
    test_rope(5, 3, 10);
    test_rope(2, 7, 66);
    test_swiglu(1001);
    test_rows(11, 13, 37);
    test_logprob(5, 1003, 0.0f);
    test_logprob(3, 517, 1000.0f);
    test_addvec(9, 71, 0);
    test_addvec(9, 71, 1);
    for (size_t w = 0; w < 12; w += 5) test_key_ranges(w);
    const size_t nq1[3] = {70, 3, 33}, nk1[3] = {70, 45, 33};
    test_attention(nq1, nk1, 3, 6, 2, 10, 0);
    test_attention(nq1, nk1, 3, 6, 2, 10, 5);
    test_attention(nq1, nk1, 3, 4, 4, 40, 0);
    test_attention(nq1, nk1, 3, 3, 1, 40, 37);
    const size_t nq2[2] = {1, 2}, nk2[2] = {65, 2};
    test_attention(nq2, nk2, 2, 2, 1, 34, 0);
    return tl_summary("test_cuda_bodies");
}
