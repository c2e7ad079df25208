// workers/buffers.c — the activation (bipo_acts) and gradient (bipo_grads) buffers. Each
// struct has ONE table of its buffers (llm.c's habit): the member, how many there are (one, one
// per layer, the L+1 residuals), what its rows count and how wide a row is. The same table
// drives allocation, growth and freeing, so a buffer added to the struct and the table cannot
// be allocated and then forgotten by free.
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "model.h" // defines: bipo_acts, bipo_grads, bipo_model, bipo_config
#include "util.h"  // defines: xcalloc

// How many buffers a member holds. Per-layer members are float ** [L] with slots for layers
// first..L-1; RESID is float ** [L+1] with slots first..L.
enum {
    BUF_ONE,    // float *
    BUF_LAYER,  // one per layer when saving (the backward reads it), else one shared slot
    BUF_SHARED, // one slot shared by every layer, always (a GEMM input the activation-only
                // backward never reads: ln1, attn_out, ln2, act stay in cache)
    BUF_RESID,  // one per layer boundary, always
};
// What a buffer's rows count: each kind has a capacity; a kind whose capacity is 0 (no scored
// rows, no shared-prefix layout) leaves its buffers NULL.
enum { ROWS_N, ROWS_ATT, ROWS_K, ROWS_M, ROWS_KINDS };
// Floats per row.
enum { W_1, W_C, W_QD, W_KVD, W_FF, W_V, W_BIG };

typedef struct {
    size_t off; // offsetof the member in its struct
    unsigned char count, rows, width;
} buf_spec;

static size_t width_of(const bipo_config *c, int w) {
    size_t big = c->FF > c->C ? c->FF : c->C;
    if (c->NH * c->HD > big) big = c->NH * c->HD;
    switch (w) {
    case W_C: return c->C;
    case W_QD: return c->NH * c->HD;
    case W_KVD: return c->NKV * c->HD;
    case W_FF: return c->FF;
    case W_V: return c->V;
    case W_BIG: return big; // [N, max(C, FF, QD)] temporaries
    default: return 1;
    }
}

// Capacity for n rows with headroom: batches of a job vary in size, and every regrowth
// reallocates (and the OS zero-fills) all the per-layer buffers. optional: 0 rows -> none.
static size_t grow(size_t n, size_t floor, int optional) {
    if (n == 0 && optional) return 0;
    return n > floor ? n + n / 2 : floor;
}

static void *member(void *base, const buf_spec *b) { return (char *)base + b->off; }

// Allocates one table entry for layers first..L-1 (RESID: first..L); cap[] per rows kind.
static void buf_alloc(void *base, const buf_spec *b, const size_t *cap, const bipo_config *c,
                      const bipo_backend *be, size_t first, int save) {
    if (cap[b->rows] == 0) return;
    size_t n = cap[b->rows] * width_of(c, b->width);
    if (b->count == BUF_ONE) {
        *(float **)member(base, b) = be->alloc(n);
        return;
    }
    size_t slots = b->count == BUF_RESID ? c->L + 1 : c->L;
    float **arr = xcalloc(slots, sizeof(float *));
    int own = b->count == BUF_RESID || (b->count == BUF_LAYER && save);
    for (size_t l = first; l < slots; l++) arr[l] = own || l == first ? be->alloc(n) : arr[first];
    *(float ***)member(base, b) = arr;
}

// Frees one table entry (a slot shared by every layer is freed once) and NULLs it.
static void buf_free(void *base, const buf_spec *b, const bipo_backend *be, size_t L,
                     size_t first) {
    if (b->count == BUF_ONE) {
        float **p = member(base, b);
        if (*p) be->free(*p);
        *p = NULL;
        return;
    }
    float ***parr = member(base, b), **arr = *parr;
    if (!arr) return;
    size_t slots = b->count == BUF_RESID ? L + 1 : L;
    for (size_t l = first; l < slots; l++)
        if (arr[l] && (l == first || arr[l] != arr[first])) be->free(arr[l]);
    free(arr);
    *parr = NULL;
}

// ---- activations ----------------------------------------------------------------------------
#define ACT(field, count, rows, width) {offsetof(bipo_acts, field), count, rows, width}
static const buf_spec ACTS[] = {
    ACT(ln1, BUF_SHARED, ROWS_N, W_C),        ACT(ln1_rstd, BUF_LAYER, ROWS_N, W_1),
    ACT(q, BUF_LAYER, ROWS_N, W_QD),          ACT(k, BUF_LAYER, ROWS_N, W_KVD),
    ACT(v, BUF_LAYER, ROWS_N, W_KVD),         ACT(att, BUF_LAYER, ROWS_ATT, W_1),
    ACT(attn_out, BUF_SHARED, ROWS_N, W_QD),  ACT(resid_mid, BUF_LAYER, ROWS_N, W_C),
    ACT(ln2, BUF_SHARED, ROWS_N, W_C),        ACT(ln2_rstd, BUF_LAYER, ROWS_N, W_1),
    ACT(gate, BUF_LAYER, ROWS_N, W_FF),       ACT(up, BUF_LAYER, ROWS_N, W_FF),
    ACT(act, BUF_SHARED, ROWS_N, W_FF),       ACT(kg, BUF_LAYER, ROWS_K, W_KVD),
    ACT(vg, BUF_LAYER, ROWS_K, W_KVD),        ACT(resid, BUF_RESID, ROWS_N, W_C),
    ACT(scratch, BUF_ONE, ROWS_N, W_BIG),     ACT(lnf, BUF_ONE, ROWS_M, W_C),
    ACT(head_in, BUF_ONE, ROWS_M, W_C),       ACT(lnf_rstd, BUF_ONE, ROWS_M, W_1),
    ACT(logits, BUF_ONE, ROWS_M, W_V),
};
#define N_ACTS (sizeof ACTS / sizeof ACTS[0])

void bipo_acts_init(bipo_acts *a, int save) {
    memset(a, 0, sizeof *a);
    a->save = save;
}

// Frees the entries whose rows are (rows < 0: all).
static void acts_free_rows(bipo_acts *a, const bipo_backend *be, int rows) {
    for (size_t i = 0; i < N_ACTS; i++)
        if (rows < 0 || ACTS[i].rows == rows) buf_free(a, &ACTS[i], be, a->L, a->first);
}

static void acts_alloc_rows(bipo_acts *a, const bipo_model *m, int rows, const size_t *cap) {
    for (size_t i = 0; i < N_ACTS; i++)
        if (rows < 0 ? ACTS[i].rows != ROWS_M : ACTS[i].rows == rows)
            buf_alloc(a, &ACTS[i], cap, &m->cfg, m->be, a->first, a->save);
}

void bipo_acts_free(bipo_acts *a, const bipo_backend *be) {
    acts_free_rows(a, be, -1);
    a->cap_N = a->cap_att = a->cap_M = a->cap_K = 0;
}

void bipo_acts_ensure(bipo_acts *a, const bipo_model *m, size_t N, size_t att, size_t M,
                      size_t first, size_t K) {
    const bipo_config *c = &m->cfg;
    if (N > a->cap_N || att > a->cap_att || a->L != c->L || first < a->first || K > a->cap_K) {
        bipo_acts_free(a, m->be); // also drops the logit rows: reallocated below
        a->L = c->L;
        a->first = first;
        a->cap_N = grow(N, 16, 0);
        a->cap_att = grow(att, 256, 0);
        a->cap_K = grow(K, 16, 1);
        size_t cap[ROWS_KINDS] = {[ROWS_N] = a->cap_N, [ROWS_ATT] = a->cap_att, [ROWS_K] = a->cap_K};
        acts_alloc_rows(a, m, -1, cap);
    }
    if (M > a->cap_M) {
        acts_free_rows(a, m->be, ROWS_M);
        a->cap_M = grow(M, 1, 0);
        size_t cap[ROWS_KINDS] = {[ROWS_M] = a->cap_M};
        acts_alloc_rows(a, m, ROWS_M, cap);
    }
    a->final = a->resid[c->L];
}

// ---- gradients ------------------------------------------------------------------------------
#define GRAD(field, rows, width) {offsetof(bipo_grads, field), BUF_ONE, rows, width}
static const buf_spec GRADS[] = {
    GRAD(dresid, ROWS_N, W_C), GRAD(dln, ROWS_N, W_C),    GRAD(dq, ROWS_N, W_QD),
    GRAD(dk, ROWS_N, W_KVD),   GRAD(dv, ROWS_N, W_KVD),   GRAD(dattn, ROWS_N, W_QD),
    GRAD(dgate, ROWS_N, W_FF), GRAD(dup, ROWS_N, W_FF),   GRAD(dact, ROWS_N, W_FF),
    GRAD(dhead, ROWS_M, W_C),  GRAD(dkg, ROWS_K, W_KVD),  GRAD(dvg, ROWS_K, W_KVD),
};
#define N_GRADS (sizeof GRADS / sizeof GRADS[0])

void bipo_grads_free(bipo_grads *g, const bipo_backend *be) {
    for (size_t i = 0; i < N_GRADS; i++) buf_free(g, &GRADS[i], be, 0, 0);
    g->cap_N = g->cap_M = g->cap_K = 0;
}

void bipo_grads_ensure(bipo_grads *g, const bipo_model *m, size_t N, size_t M, size_t K) {
    if (N <= g->cap_N && M <= g->cap_M && K <= g->cap_K) return;
    bipo_grads_free(g, m->be);
    g->cap_N = grow(N, 16, 0);
    g->cap_M = grow(M, 1, 0);
    g->cap_K = grow(K, 1, 1); // (= K + K/2)
    size_t cap[ROWS_KINDS] = {[ROWS_N] = g->cap_N, [ROWS_M] = g->cap_M, [ROWS_K] = g->cap_K};
    for (size_t i = 0; i < N_GRADS; i++) buf_alloc(g, &GRADS[i], cap, &m->cfg, m->be, 0, 0);
}
