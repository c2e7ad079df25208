// kernels/cpu/attention_cpu.c — causal GQA attention (optional sliding window) on packed
// variable-length sequences, forward and backward, as blocks of single-threaded sgemm calls
// spread over OpenMP threads (OpenMP owns every thread: see cpu_matmul_forward).
//
// Shapes: q, out, dq [Nq, NH*HD]; k, v, dk, dv [Nk, NKV*HD]; G = NH/NKV query heads share a
// kv head (query head h reads kv head h / G).
// Saved probabilities, layout [s][h][i][j]: sequence s starts at att_off[s] = sum over s' < s
// of NH*nq*nk, then row (h, i) is nk floats long; entries a query cannot see are stored as 0.
// The backward relies on that: it never needs the window, exact zeros contribute nothing.
//
// Work items. Forward and the dq pass: (sequence, kv head, block of bq query rows) with the
// G query heads of the group packed into one [G*bq, HD] matrix; the block sees the keys
// [c0, c1) = [first key the window lets its first row see, its last row's position], so
// S = Q K^T is one sgemm of G*bq x (c1 - c0), masked per row inside the block (a causal
// triangle costs half a rectangle plus the blocks' diagonals) and K, V are packed once for
// G*bq rows. The dk/dv pass: (sequence, kv head, block of BK keys), the only writer of its
// dk/dv rows, summing the G query heads of its group in a fixed order: results do not depend
// on the thread count. Items run largest first (dynamic schedule, LPT): the causal triangle's
// blocks differ in cost up to nq/bq times, and a long sequence next to short ones must not
// end up last.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h> // defines: cblas_sgemm, cblas_sgemv

#include "cpu_internal.h" // defines: bipo_cpu_nt, bipo_cpu_scratch, bipo_expf
#include "util.h"         // defines: CHECK

// Query rows per work item (times G heads: sgemm's M) and keys per dk/dv item. 64 when some
// sequence has >= 256 queries, else 32 so that short prompts still make enough items to
// balance (128 tokens, NKV 3: 12 items). It depends on the shapes only, never on the thread
// count: the blocking decides the sgemm shapes and so the rounding.
enum { BQ_MAX = 64, BK = 64 };

typedef struct {
    size_t s, h, b; // sequence, head (query head; kv head in the dk/dv pass), block
    size_t cost;    // ~ multiply-adds, for the largest-first order
} att_item;

static int item_cmp(const void *pa, const void *pb) {
    const att_item *a = pa, *b = pb;
    if (a->cost != b->cost) return a->cost > b->cost ? -1 : 1;
    if (a->s != b->s) return a->s < b->s ? -1 : 1;
    if (a->b != b->b) return a->b < b->b ? -1 : 1;
    return a->h < b->h ? -1 : a->h > b->h;
}

// Per-sequence offsets in caller scratch: ao[s] where sequence s's saved probabilities start,
// qb[s] its first query block in a global numbering (ao and qb are [S+1]).
typedef struct { const size_t *ao, *qb; size_t maxnq, maxnk, bq; } att_layout;
static att_layout layout_of(const bipo_seqs *sq, size_t NH) {
    size_t *buf = bipo_cpu_scratch(CPU_SCRATCH_CALLER_0, 2 * (sq->S + 1) * sizeof(size_t));
    size_t *ao = buf, *qb = buf + sq->S + 1, maxnk = 0, maxnq = 0;
    for (size_t s = 0; s < sq->S; s++) {
        size_t nq = sq->q_off[s + 1] - sq->q_off[s], nk = sq->k_off[s + 1] - sq->k_off[s];
        CHECK(nq <= nk, "attention: sequence %zu has %zu queries but only %zu keys", s, nq, nk);
        if (nk > maxnk) maxnk = nk;
        if (nq > maxnq) maxnq = nq;
    }
    const size_t bq = maxnq >= 256 ? BQ_MAX : BQ_MAX / 2;
    ao[0] = qb[0] = 0;
    for (size_t s = 0; s < sq->S; s++) {
        size_t nq = sq->q_off[s + 1] - sq->q_off[s], nk = sq->k_off[s + 1] - sq->k_off[s];
        ao[s + 1] = ao[s] + NH * nq * nk;
        qb[s + 1] = qb[s] + (nq + bq - 1) / bq;
    }
    return (att_layout){ao, qb, maxnq, maxnk, bq};
}

// First key the query at absolute position pos sees.
static inline size_t window_lo(size_t pos, size_t window) {
    return window > 0 && pos + 1 > window ? pos + 1 - window : 0;
}

// Sum of a[j] * b[j] in 16 fixed lanes: the same bits whatever the pointers' alignment (the
// vectorizer would otherwise peel an alignment-dependent head off a plain reduction).
static inline float dot_lanes(const float *a, const float *b, size_t n) {
    float acc[16] = {0};
    size_t j = 0;
    for (; j + 16 <= n; j += 16)
#pragma omp simd
        for (int l = 0; l < 16; l++) acc[l] = fmaf(a[j + l], b[j + l], acc[l]);
    for (size_t l = 0; j < n; j++, l++) acc[l] = fmaf(a[j], b[j], acc[l]);
    for (int w = 8; w > 0; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

// p[0, L): softmax of the scores in [lo, hi) in place, exact zeros elsewhere.
static void softmax_row(float *p, size_t lo, size_t hi, size_t L) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (size_t j = lo; j < hi; j++) mx = p[j] > mx ? p[j] : mx;
    float acc[16] = {0}; // fixed lanes, as in dot_lanes
    size_t j = lo;
    for (; j + 16 <= hi; j += 16)
#pragma omp simd
        for (int l = 0; l < 16; l++) {
            const float e = bipo_expf(p[j + l] - mx); // <= 1, the max term exactly 1
            p[j + l] = e;
            acc[l] += e;
        }
    for (size_t l = 0; j < hi; j++, l++) {
        p[j] = bipo_expf(p[j] - mx);
        acc[l] += p[j];
    }
    for (int w = 8; w > 0; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    const float inv = 1.0f / acc[0];
#pragma omp simd
    for (size_t j = lo; j < hi; j++) p[j] *= inv;
    memset(p, 0, lo * sizeof(float));
    memset(p + hi, 0, (L - hi) * sizeof(float));
}

// C[rows, n] = alpha A[rows, kd] B^T (B is [n, kd]) or alpha A B (B is [kd, n]). A few rows
// (token-by-token decoding) take plain vector loops: sgemm would pack all of B for them, and
// sgemv's call overhead is most of the work at a few hundred keys.
enum { GEMV_ROWS = 4 };
static void gemm_rows(int transb, size_t rows, size_t n, size_t kd, float alpha, const float *A,
                      size_t lda, const float *B, size_t ldb, float *C, size_t ldc) {
    if (rows == 0 || n == 0) return;
    if (kd == 0) {
        for (size_t r = 0; r < rows; r++) memset(C + r * ldc, 0, n * sizeof(float));
        return;
    }
    if (rows <= GEMV_ROWS) {
        for (size_t r = 0; r < rows; r++) {
            const float *a = A + r * lda;
            float *c = C + r * ldc;
            if (transb) // c[j] = alpha B[j, :] . a
                for (size_t j = 0; j < n; j++) c[j] = alpha * dot_lanes(a, B + j * ldb, kd);
            else { // c = alpha sum_j a[j] B[j, :]
                memset(c, 0, n * sizeof(float));
                for (size_t j = 0; j < kd; j++) {
                    const float aj = alpha * a[j], *b = B + j * ldb;
#pragma omp simd
                    for (size_t d = 0; d < n; d++) c[d] = fmaf(aj, b[d], c[d]);
                }
            }
        }
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, (int)rows,
                (int)n, (int)kd, alpha, A, (int)lda, B, (int)ldb, 0.0f, C, (int)ldc);
}

// Query heads [h0, h0 + hn) (a kv head's group, or part of it), rows [0, rows) of the q-like
// x (row stride NH*HD), to/from a dense head-major [hn*rows, HD] block: one sgemm then covers
// the whole group, and K or V is packed once for hn*rows rows instead of rows.
static void gather_heads(float *dst, const float *x, size_t rows, size_t NH, size_t h0,
                         size_t hn, size_t HD) {
    for (size_t hh = 0; hh < hn; hh++)
        for (size_t r = 0; r < rows; r++)
            memcpy(dst + (hh * rows + r) * HD, x + r * NH * HD + (h0 + hh) * HD, HD * sizeof(float));
}
static void scatter_heads(float *x, const float *src, size_t rows, size_t NH, size_t h0,
                          size_t hn, size_t HD) {
    for (size_t hh = 0; hh < hn; hh++)
        for (size_t r = 0; r < rows; r++)
            memcpy(x + r * NH * HD + (h0 + hh) * HD, src + (hh * rows + r) * HD, HD * sizeof(float));
}

// Worker scratch of one group block: packed rows [G*bq, HD] twice and scores [G*bq, maxnk].
static float *group_scratch(const att_layout *lay, size_t G, size_t HD) {
    return bipo_cpu_scratch(CPU_SCRATCH_WORKER, G * lay->bq * (2 * HD + lay->maxnk) * sizeof(float));
}

// ---- forward ---------------------------------------------------------------------------------
// One item: query heads [h0, h0 + hn) of one kv head, rows [i0, i0 + rows) of sequence s,
// keys [c0, c1).
static void forward_block(float *out, float *att, const float *q, const float *k, const float *v,
                          const bipo_seqs *sq, const att_layout *lay, const att_item *it,
                          size_t hn, size_t NH, size_t G, size_t HD, size_t window,
                          float *scratch) {
    const size_t s = it->s, h0 = it->h, g = h0 / G, qs = NH * HD, ks = NH / G * HD;
    const size_t nq = sq->q_off[s + 1] - sq->q_off[s], nk = sq->k_off[s + 1] - sq->k_off[s];
    const size_t BQ = lay->bq, i0 = it->b * BQ, rows = i0 + BQ < nq ? BQ : nq - i0, gr = hn * rows;
    const size_t pa = nk - nq + i0; // absolute position of row i0
    const size_t c0 = window_lo(pa, window), c1 = pa + rows, L = c1 - c0;
    const float *K = k + (sq->k_off[s] + c0) * ks + g * HD;
    const float *V = v + (sq->k_off[s] + c0) * ks + g * HD;
    float *Qp = scratch, *Op = Qp + gr * HD, *P = Op + gr * HD; // [gr,HD] [gr,HD] [gr,L]

    gather_heads(Qp, q + (sq->q_off[s] + i0) * qs, rows, NH, h0, hn, HD);
    gemm_rows(1, gr, L, HD, 1.0f / sqrtf((float)HD), Qp, HD, K, ks, P, L); // S = Q K^T scale
    for (size_t hh = 0; hh < hn; hh++)
        for (size_t r = 0; r < rows; r++) {
            float *p = P + (hh * rows + r) * L;
            softmax_row(p, window_lo(pa + r, window) - c0, pa + r + 1 - c0, L);
            if (att) { // saved with exact zeros outside the block's keys (see the banner)
                float *a = att + lay->ao[s] + ((h0 + hh) * nq + i0 + r) * nk;
                memset(a, 0, c0 * sizeof(float));
                memcpy(a + c0, p, L * sizeof(float));
                memset(a + c1, 0, (nk - c1) * sizeof(float));
            }
        }
    gemm_rows(0, gr, HD, L, 1.0f, P, L, V, ks, Op, HD); // O = P V
    scatter_heads(out + (sq->q_off[s] + i0) * qs, Op, rows, NH, h0, hn, HD);
}

void bipo_cpu_attention_forward(float *out, float *att, const float *q, const float *k,
                                const float *v, const bipo_seqs *sq, size_t NH, size_t NKV,
                                size_t HD, size_t window) {
    CHECK(NKV > 0 && NH % NKV == 0, "attention: NH=%zu is not a multiple of NKV=%zu", NH, NKV);
    if (sq->S == 0) return;
    const att_layout lay = layout_of(sq, NH);
    // a whole group per item, but single heads when every block is a row or two (decoding):
    // the few rows would not pay for packing, and NKV items would not balance
    const size_t BQ = lay.bq, G = NH / NKV, hn = lay.maxnq * G <= GEMV_ROWS ? 1 : G;
    const size_t nitems = lay.qb[sq->S] * (NH / hn);
    att_item *items = bipo_cpu_scratch(CPU_SCRATCH_CALLER_1, (nitems + 1) * sizeof(att_item));
    size_t n = 0;
    for (size_t s = 0; s < sq->S; s++) {
        const size_t nq = sq->q_off[s + 1] - sq->q_off[s], nk = sq->k_off[s + 1] - sq->k_off[s];
        for (size_t b = 0; b * BQ < nq; b++) {
            const size_t i0 = b * BQ, rows = i0 + BQ < nq ? BQ : nq - i0, pa = nk - nq + i0;
            const size_t cost = rows * (pa + rows - window_lo(pa, window)) + 16;
            for (size_t h0 = 0; h0 < NH; h0 += hn) items[n++] = (att_item){s, h0, b, cost};
        }
    }
    qsort(items, nitems, sizeof *items, item_cmp);

#pragma omp parallel num_threads(bipo_cpu_nt) if (nitems > 1)
    {
        float *scratch = group_scratch(&lay, G, HD);
#pragma omp for schedule(dynamic, 1)
        for (size_t t = 0; t < nitems; t++)
            forward_block(out, att, q, k, v, sq, &lay, &items[t], hn, NH, G, HD, window, scratch);
    }
}

// ---- backward --------------------------------------------------------------------------------
// From the saved P, with dP = dO V^T, D_i = sum_j P_ij dP_ij, dS = P o (dP - D):
//   dq = scale dS K;   dk = scale dS^T Q;   dv = P^T dO   (dk, dv summed over the group).
// Pass A (items: sequence, kv head, query block, the G heads together) writes dq and dS, in
// att's layout and with the same exact zeros, into caller scratch; pass B (items: sequence,
// kv head, key block) reads P and dS by columns. Without the window, a query block's key range
// starts at cz, the first nonzero of P over its rows (found at once for plain causal
// attention); pass B uses cz to skip the query blocks a window keeps away from its keys.
static void dq_block(float *dq, float *ds, size_t *cz, const float *dout, const float *k,
                     const float *v, const float *att, const bipo_seqs *sq, const att_layout *lay,
                     const att_item *it, size_t NH, size_t G, size_t HD, float *scratch) {
    const size_t s = it->s, g = it->h, NKV = NH / G, qs = NH * HD, ks = NKV * HD;
    const size_t nq = sq->q_off[s + 1] - sq->q_off[s], nk = sq->k_off[s + 1] - sq->k_off[s];
    const size_t BQ = lay->bq, i0 = it->b * BQ, rows = i0 + BQ < nq ? BQ : nq - i0, gr = G * rows;
    const size_t pa = nk - nq + i0, c1 = pa + rows;
    const size_t arow0 = lay->ao[s] + (g * G * nq + i0) * nk; // (head g*G, row i0) in att
    size_t c0 = c1;
    for (size_t hh = 0; hh < G; hh++)
        for (size_t r = 0; r < rows; r++) {
            const float *p = att + arow0 + (hh * nq + r) * nk;
            size_t j = 0;
            while (j < c0 && p[j] == 0.0f) j++;
            c0 = j;
        }
    cz[(lay->qb[s] + it->b) * NKV + g] = c0;
    const size_t L = c1 - c0;
    const float *K = k + (sq->k_off[s] + c0) * ks + g * HD;
    const float *V = v + (sq->k_off[s] + c0) * ks + g * HD;
    float *dOp = scratch, *dQp = dOp + gr * HD, *dSp = dQp + gr * HD; // [gr,HD] [gr,HD] [gr,L]

    gather_heads(dOp, dout + (sq->q_off[s] + i0) * qs, rows, NH, g * G, G, HD);
    gemm_rows(1, gr, L, HD, 1.0f, dOp, HD, V, ks, dSp, L); // dP = dO V^T
    for (size_t hh = 0; hh < G; hh++)
        for (size_t r = 0; r < rows; r++) {
            const float *p = att + arow0 + (hh * nq + r) * nk + c0;
            float *d = dSp + (hh * rows + r) * L, *dst = ds + arow0 + (hh * nq + r) * nk;
            const float D = dot_lanes(p, d, L);
#pragma omp simd
            for (size_t j = 0; j < L; j++) d[j] = p[j] * (d[j] - D);
            memset(dst, 0, c0 * sizeof(float));
            memcpy(dst + c0, d, L * sizeof(float));
            memset(dst + c1, 0, (nk - c1) * sizeof(float));
        }
    gemm_rows(0, gr, HD, L, 1.0f / sqrtf((float)HD), dSp, L, K, ks, dQp, HD); // dq = scale dS K
    scatter_heads(dq + (sq->q_off[s] + i0) * qs, dQp, rows, NH, g * G, G, HD);
}

static void dkv_block(float *dk, float *dv, const float *ds, const size_t *cz, const float *dout,
                      const float *q, const float *att, const bipo_seqs *sq,
                      const att_layout *lay, const att_item *it, size_t NH, size_t G,
                      size_t HD) {
    const size_t s = it->s, g = it->h, qs = NH * HD, ks = NH / G * HD;
    const size_t nq = sq->q_off[s + 1] - sq->q_off[s], nk = sq->k_off[s + 1] - sq->k_off[s];
    const size_t j0 = it->b * BK, j1 = j0 + BK < nk ? j0 + BK : nk, nkr = j1 - j0;
    const size_t first = nk - nq;                    // position of query 0
    const size_t ia = j0 > first ? j0 - first : 0;   // first query that can see key j0
    float *dK = dk + (sq->k_off[s] + j0) * ks + g * HD, *dV = dv + (sq->k_off[s] + j0) * ks + g * HD;
    const float scale = 1.0f / sqrtf((float)HD);
    float beta = 0.0f; // the first head that contributes sets, the others accumulate
    for (size_t h = g * G; h < (g + 1) * G; h++) {
        size_t ib = ia; // one past the last query row whose block reaches below j1
        const size_t BQ = lay->bq;
        for (size_t b = (nq + BQ - 1) / BQ; b-- > ia / BQ;)
            if (cz[(lay->qb[s] + b) * (NH / G) + g] < j1) {
                ib = (b + 1) * BQ < nq ? (b + 1) * BQ : nq;
                break;
            }
        if (ib <= ia) continue;
        const size_t off = lay->ao[s] + (h * nq + ia) * nk + j0, row = (sq->q_off[s] + ia) * qs + h * HD;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nkr, (int)HD, (int)(ib - ia),
                    1.0f, att + off, (int)nk, dout + row, (int)qs, beta, dV, (int)ks);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nkr, (int)HD, (int)(ib - ia),
                    scale, ds + off, (int)nk, q + row, (int)qs, beta, dK, (int)ks);
        beta = 1.0f;
    }
    if (beta == 0.0f) // no query sees these keys
        for (size_t r = 0; r < nkr; r++) {
            memset(dK + r * ks, 0, HD * sizeof(float));
            memset(dV + r * ks, 0, HD * sizeof(float));
        }
}

void bipo_cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                 const float *q, const float *k, const float *v,
                                 const float *att, const bipo_seqs *sq, size_t NH, size_t NKV,
                                 size_t HD) {
    CHECK(NKV > 0 && NH % NKV == 0, "attention: NH=%zu is not a multiple of NKV=%zu", NH, NKV);
    CHECK(att != NULL, "attention_backward needs the probabilities saved by the forward");
    if (sq->S == 0) return;
    const att_layout lay = layout_of(sq, NH);
    const size_t BQ = lay.bq, G = NH / NKV, nqblk = lay.qb[sq->S], na = NKV * nqblk;
    size_t nb = 0;
    for (size_t s = 0; s < sq->S; s++) nb += NKV * ((sq->k_off[s + 1] - sq->k_off[s] + BK - 1) / BK);
    // caller scratch: items of pass A [na], of pass B [nb], cz [nqblk * NKV]
    att_item *ia = bipo_cpu_scratch(CPU_SCRATCH_CALLER_1,
                                    (na + nb) * sizeof(att_item) + (nqblk * NKV + 1) * sizeof(size_t));
    att_item *ib = ia + na;
    size_t *cz = (size_t *)(ib + nb);
    float *ds = bipo_cpu_scratch(CPU_SCRATCH_CALLER_2, (lay.ao[sq->S] + 1) * sizeof(float));
    size_t n = 0, m = 0;
    for (size_t s = 0; s < sq->S; s++) {
        const size_t nq = sq->q_off[s + 1] - sq->q_off[s], nk = sq->k_off[s + 1] - sq->k_off[s];
        for (size_t b = 0; b * BQ < nq; b++) {
            const size_t i0 = b * BQ, rows = i0 + BQ < nq ? BQ : nq - i0;
            for (size_t g = 0; g < NKV; g++)
                ia[n++] = (att_item){s, g, b, rows * (nk - nq + i0 + rows) + 16};
        }
        for (size_t b = 0; b * BK < nk; b++) {
            const size_t j0 = b * BK, first = nk - nq, i0 = j0 > first ? j0 - first : 0;
            for (size_t g = 0; g < NKV; g++)
                ib[m++] = (att_item){s, g, b, G * (nq - i0) * BK + 16};
        }
    }
    qsort(ia, na, sizeof *ia, item_cmp);
    qsort(ib, nb, sizeof *ib, item_cmp);

#pragma omp parallel num_threads(bipo_cpu_nt) if (na + nb > 2)
    {
        float *scratch = group_scratch(&lay, G, HD);
#pragma omp for schedule(dynamic, 1)
        for (size_t t = 0; t < na; t++)
            dq_block(dq, ds, cz, dout, k, v, att, sq, &lay, &ia[t], NH, G, HD, scratch);
        // implicit barrier: dS and cz are complete
#pragma omp for schedule(dynamic, 1)
        for (size_t t = 0; t < nb; t++)
            dkv_block(dk, dv, ds, cz, dout, q, att, sq, &lay, &ib[t], NH, G, HD);
    }
}
