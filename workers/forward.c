// workers/forward.c — the transformer forward over a packed batch, with the steering hook,
// and the KV-cached single-sequence forward used by generation.
//
// One decoder layer l (HF LlamaDecoderLayer), x = resid[l] [N, C]:
//   ln1 = rmsnorm(x) ; q,k,v = ln1 Wq^T, ln1 Wk^T, ln1 Wv^T ; rope(q), rope(k)
//   attn_out = attention(q, k, v) ; resid_mid = x + attn_out Wo^T
//   ln2 = rmsnorm(resid_mid) ; act = silu(ln2 Wg^T) * (ln2 Wu^T) ; resid[l+1] = resid_mid + act Wd^T
//   if l == hook.layer: resid[l+1] += mult * v   (at masked rows)
#include <stdlib.h>
#include <string.h>

#include "model.h" // defines: bipo_model, bipo_acts, bipo_hook, bipo_batch, bipo_acts_ensure
#include "util.h" // defines: xmalloc, xcalloc, CHECK

// One decoder layer on N rows. x -> out (may not alias). k/v are written to kdst/vdst
// (the activation slot, or the KV cache at the next free row); attention reads kall/vall.
typedef struct {
    const int *pos;     // [N] host
    const bipo_seqs *sq; // attention layout
    float *kdst, *vdst; // where this call's k/v rows go
    const float *kall, *vall; // keys/values attention reads
    const size_t *kv_rows;    // shared-prefix layout: rows gathered into kg/vg, else NULL
    size_t NK;
    float *kg, *vg;
    bipo_matmul_precision prec; // the GEMMs' arithmetic
    // batched KV cache: this call's k/v rows (kdst/vdst, the activation slot) are added into
    // the zeroed cache rows kput[N] of kcache/vcache, which attention then reads; else NULL
    const size_t *kput;
    float *kcache, *vcache;
} layer_io;

static void layer_forward(bipo_model *m, bipo_acts *a, size_t l, size_t N, const float *x,
                          float *out, const layer_io *io) {
    const bipo_backend *be = m->be;
    const bipo_config *c = &m->cfg;
    const bipo_layer_weights *w = &m->layers[l];
    size_t QD = c->NH * c->HD, KVD = c->NKV * c->HD;
    be->rmsnorm_forward(a->ln1[l], a->ln1_rstd[l], x, w->attn_norm, N, c->C, c->rms_eps);
    be->matmul_forward(a->q[l], a->ln1[l], w->wq, N, c->C, QD, io->prec);
    be->matmul_forward(io->kdst, a->ln1[l], w->wk, N, c->C, KVD, io->prec);
    be->matmul_forward(io->vdst, a->ln1[l], w->wv, N, c->C, KVD, io->prec);
    be->rope_forward(a->q[l], io->pos, N, c->NH, c->HD, c->rope_theta);
    be->rope_forward(io->kdst, io->pos, N, c->NKV, c->HD, c->rope_theta);
    const float *kall = io->kall, *vall = io->vall;
    if (io->kput) { // rows never written before are 0: adding into them is an exact copy
        be->scatter_add_rows(io->kcache, io->kdst, io->kput, N, KVD);
        be->scatter_add_rows(io->vcache, io->vdst, io->kput, N, KVD);
    }
    if (io->kv_rows) {
        be->gather_rows(io->kg, io->kdst, io->kv_rows, io->NK, KVD);
        be->gather_rows(io->vg, io->vdst, io->kv_rows, io->NK, KVD);
        kall = io->kg, vall = io->vg;
    }
    be->attention_forward(a->attn_out[l], a->save ? a->att[l] : NULL, a->q[l], kall, vall,
                          io->sq, c->NH, c->NKV, c->HD, c->sliding_window);
    be->matmul_forward(a->scratch, a->attn_out[l], w->wo, N, QD, c->C, io->prec);
    be->residual_forward(a->resid_mid[l], x, a->scratch, N * c->C);
    be->rmsnorm_forward(a->ln2[l], a->ln2_rstd[l], a->resid_mid[l], w->ffn_norm, N, c->C,
                        c->rms_eps);
    be->matmul_forward(a->gate[l], a->ln2[l], w->w_gate, N, c->C, c->FF, io->prec);
    be->matmul_forward(a->up[l], a->ln2[l], w->w_up, N, c->C, c->FF, io->prec);
    be->swiglu_forward(a->act[l], a->gate[l], a->up[l], N * c->FF);
    be->matmul_forward(a->scratch, a->act[l], w->w_down, N, c->FF, c->C, io->prec);
    be->residual_forward(out, a->resid_mid[l], a->scratch, N * c->C);
}

static void apply_hook(bipo_model *m, const bipo_hook *hook, size_t l, float *h, size_t N) {
    if (hook && hook->layer == (int)l && hook->vec)
        m->be->add_vector_forward(h, hook->vec, hook->mult, hook->mask, N, m->cfg.C);
}

// Final norm + LM head at the M selected rows of h [N, C] -> a->logits [M, V].
static void head_forward(bipo_model *m, bipo_acts *a, const float *h, const size_t *rows,
                         size_t M, bipo_matmul_precision prec) {
    const bipo_backend *be = m->be;
    const bipo_config *c = &m->cfg;
    be->gather_rows(a->head_in, h, rows, M, c->C);
    be->rmsnorm_forward(a->lnf, a->lnf_rstd, a->head_in, m->norm_f, M, c->C, c->rms_eps);
    be->matmul_forward(a->logits, a->lnf, m->lm_head, M, c->C, c->V, prec);
}

int *bipo_batch_positions(const bipo_batch *b) {
    size_t N = b->off[b->S];
    int *pos = xmalloc((N ? N : 1) * sizeof(int));
    if (b->pos) {
        memcpy(pos, b->pos, N * sizeof(int));
        return pos;
    }
    for (size_t s = 0; s < b->S; s++)
        for (size_t i = b->off[s]; i < b->off[s + 1]; i++) pos[i] = (int)(i - b->off[s]);
    return pos;
}

// Layers [start, last) on a->resid[start], hooks applied after each; then the head when M > 0.
bipo_seqs bipo_batch_seqs(const bipo_batch *b) {
    if (b->kv_rows) return (bipo_seqs){b->AS, b->aq_off, b->ak_off};
    return (bipo_seqs){b->S, b->off, b->off};
}

static size_t batch_nk(const bipo_batch *b) { return b->kv_rows ? b->ak_off[b->AS] : 0; }

static void run_layers(bipo_model *m, bipo_acts *a, const bipo_batch *b, size_t start,
                       size_t last, const bipo_hook *hook, const size_t *rows, size_t M,
                       bipo_matmul_precision prec) {
    size_t N = b->off[b->S];
    bipo_seqs sq = bipo_batch_seqs(b);
    int *pos = bipo_batch_positions(b);
    for (size_t l = start; l < last; l++) {
        layer_io io = {pos,         &sq,     a->k[l], a->v[l], a->k[l], a->v[l], b->kv_rows,
                       batch_nk(b), a->kg ? a->kg[l] : NULL, a->vg ? a->vg[l] : NULL, prec};
        layer_forward(m, a, l, N, a->resid[l], a->resid[l + 1], &io);
        apply_hook(m, hook, l, a->resid[l + 1], N);
    }
    if (last == m->cfg.L && M > 0) head_forward(m, a, a->resid[m->cfg.L], rows, M, prec);
    free(pos);
}

void bipo_forward(bipo_model *m, bipo_acts *a, const bipo_batch *b, const bipo_hook *hook,
                  const size_t *rows, size_t M, int stop, bipo_matmul_precision prec) {
    const bipo_config *c = &m->cfg;
    size_t N = b->off[b->S];
    bipo_seqs sq = bipo_batch_seqs(b);
    bipo_acts_ensure(a, m, N, bipo_att_floats(&sq, c->NH), stop < 0 ? M : 0, 0, batch_nk(b));
    m->be->embedding_forward(a->resid[0], b->tokens, m->wte, N, c->C);
    size_t last = stop >= 0 && (size_t)stop < c->L ? (size_t)stop + 1 : c->L;
    run_layers(m, a, b, 0, last, hook, rows, stop < 0 ? M : 0, prec);
}

void bipo_forward_from(bipo_model *m, bipo_acts *a, const bipo_batch *b, const float *h_in,
                       size_t start, const bipo_hook *hook, const size_t *rows, size_t M,
                       bipo_matmul_precision prec) {
    const bipo_config *c = &m->cfg;
    size_t N = b->off[b->S];
    bipo_seqs sq = bipo_batch_seqs(b);
    CHECK(start <= c->L, "start layer %zu > %zu layers", start, c->L);
    bipo_acts_ensure(a, m, N, bipo_att_floats(&sq, c->NH), M, start, batch_nk(b));
    if (a->resid[start] != h_in) m->be->copy(a->resid[start], h_in, N * c->C);
    if (start > 0) apply_hook(m, hook, start - 1, a->resid[start], N);
    run_layers(m, a, b, start, c->L, hook, rows, M, prec);
}

// ---- KV-cached generation -----------------------------------------------------------------

// Per-layer k/v cache buffers [rows, KVD] each (zero-initialized), and their release; the
// inference scratch acts with them.
static void kv_alloc(const bipo_model *m, size_t rows, float ***k, float ***v, bipo_acts *acts) {
    const bipo_config *c = &m->cfg;
    size_t KVD = c->NKV * c->HD;
    *k = xcalloc(c->L, sizeof(float *));
    *v = xcalloc(c->L, sizeof(float *));
    for (size_t l = 0; l < c->L; l++) {
        (*k)[l] = m->be->alloc(rows * KVD);
        (*v)[l] = m->be->alloc(rows * KVD);
    }
    bipo_acts_init(acts, 0);
}
static void kv_release(const bipo_model *m, float **k, float **v, bipo_acts *acts) {
    for (size_t l = 0; l < m->cfg.L; l++) {
        m->be->free(k[l]);
        m->be->free(v[l]);
    }
    free(k);
    free(v);
    bipo_acts_free(acts, m->be);
}

void bipo_kv_init(bipo_kv_cache *kv, const bipo_model *m, size_t cap) {
    kv->cap = cap;
    kv->n = 0;
    kv_alloc(m, cap, &kv->k, &kv->v, &kv->acts);
}

void bipo_kv_free(bipo_kv_cache *kv, const bipo_model *m) {
    kv_release(m, kv->k, kv->v, &kv->acts);
    kv->k = kv->v = NULL;
}

void bipo_forward_cached(bipo_model *m, bipo_kv_cache *kv, const int *tokens, size_t n,
                         const bipo_hook *hook, float *logits_host, bipo_matmul_precision prec) {
    const bipo_config *c = &m->cfg;
    CHECK(kv->n + n <= kv->cap, "KV cache full: %zu + %zu tokens > capacity %zu", kv->n, n, kv->cap);
    size_t KVD = c->NKV * c->HD, total = kv->n + n;
    size_t q_off[2] = {0, n}, k_off[2] = {0, total};
    bipo_seqs sq = {1, q_off, k_off};
    bipo_acts *a = &kv->acts;
    bipo_acts_ensure(a, m, n, bipo_att_floats(&sq, c->NH), 1, 0, 0);
    int *pos = xmalloc(n * sizeof(int));
    for (size_t i = 0; i < n; i++) pos[i] = (int)(kv->n + i);
    m->be->embedding_forward(a->resid[0], tokens, m->wte, n, c->C);
    for (size_t l = 0; l < c->L; l++) {
        layer_io io = {pos,      &sq, kv->k[l] + kv->n * KVD, kv->v[l] + kv->n * KVD,
                       kv->k[l], kv->v[l], NULL, 0, NULL, NULL, prec};
        layer_forward(m, a, l, n, a->resid[l], a->resid[l + 1], &io);
        apply_hook(m, hook, l, a->resid[l + 1], n);
    }
    size_t row = n - 1;
    head_forward(m, a, a->resid[c->L], &row, 1, prec);
    m->be->download(logits_host, a->logits, c->V);
    kv->n = total;
    free(pos);
}

// ---- KV-cached forward of many sequences ----------------------------------------------------

void bipo_kv_batch_init(bipo_kv_batch *kv, const bipo_model *m, const size_t *cap, size_t B) {
    kv->B = B;
    kv->base = xmalloc((B + 1) * sizeof(size_t));
    kv->n = xcalloc(B ? B : 1, sizeof(size_t));
    kv->base[0] = 0;
    for (size_t b = 0; b < B; b++) kv->base[b + 1] = kv->base[b] + cap[b];
    // zero-initialized: layer_io.kput relies on it
    kv_alloc(m, kv->base[B] ? kv->base[B] : 1, &kv->k, &kv->v, &kv->acts);
}

void bipo_kv_batch_free(bipo_kv_batch *kv, const bipo_model *m) {
    kv_release(m, kv->k, kv->v, &kv->acts);
    free(kv->base);
    free(kv->n);
    memset(kv, 0, sizeof *kv);
}

// The attention layout over the whole cache: sequence seq[s] queries its new rows and reads
// its region's first n + new keys; every gap (the rest of a region, the regions of sequences
// not in the call) is a sequence of keys without queries, which attention skips. q_off and
// k_off are [2*(B+1)+1] caller buffers.
static bipo_seqs cache_layout(const bipo_kv_batch *kv, const size_t *seq, size_t S,
                              const size_t *off, size_t *q_off, size_t *k_off) {
    size_t ns = 0, s = 0;
    q_off[0] = k_off[0] = 0;
    for (size_t b = 0; b < kv->B; b++) {
        size_t end = kv->base[b], q = q_off[ns];
        if (s < S && seq[s] == b) {
            end += kv->n[b] + (off[s + 1] - off[s]);
            q = off[s + 1];
            s++;
        }
        ns++, q_off[ns] = q, k_off[ns] = end;         // the sequence (or an empty one)
        ns++, q_off[ns] = q, k_off[ns] = kv->base[b + 1]; // the gap after it
    }
    return (bipo_seqs){ns, q_off, k_off};
}

void bipo_forward_cached_batch(bipo_model *m, bipo_kv_batch *kv, const size_t *seq, size_t S,
                               const size_t *off, const int *tokens, const bipo_hook *hooks,
                               size_t n_hooks, float *logits_host, bipo_matmul_precision prec) {
    const bipo_config *c = &m->cfg;
    size_t N = off[S];
    int *pos = xmalloc((N ? N : 1) * sizeof(int));
    size_t *put = xmalloc((N ? N : 1) * sizeof(size_t)), *rows = xmalloc((S ? S : 1) * sizeof(size_t));
    for (size_t s = 0; s < S; s++) {
        size_t b = seq[s], n = off[s + 1] - off[s];
        CHECK(b < kv->B && (s == 0 || b > seq[s - 1]), "cached batch: sequence list not increasing");
        CHECK(n > 0 && kv->base[b] + kv->n[b] + n <= kv->base[b + 1],
              "KV cache of sequence %zu full: %zu + %zu tokens", b, kv->n[b], n);
        for (size_t i = 0; i < n; i++) {
            pos[off[s] + i] = (int)(kv->n[b] + i);
            put[off[s] + i] = kv->base[b] + kv->n[b] + i;
        }
        rows[s] = off[s + 1] - 1;
    }
    size_t *q_off = xmalloc((4 * kv->B + 3) * sizeof(size_t)), *k_off = q_off + 2 * kv->B + 1;
    bipo_seqs sq = cache_layout(kv, seq, S, off, q_off, k_off);
    bipo_acts *a = &kv->acts;
    bipo_acts_ensure(a, m, N, bipo_att_floats(&sq, c->NH), S, 0, 0);
    m->be->embedding_forward(a->resid[0], tokens, m->wte, N, c->C);
    for (size_t l = 0; l < c->L; l++) {
        layer_io io = {pos, &sq, a->k[l], a->v[l], kv->k[l], kv->v[l], NULL, 0, NULL, NULL, prec,
                       put, kv->k[l], kv->v[l]};
        layer_forward(m, a, l, N, a->resid[l], a->resid[l + 1], &io);
        for (size_t h = 0; h < n_hooks; h++) apply_hook(m, &hooks[h], l, a->resid[l + 1], N);
    }
    head_forward(m, a, a->resid[c->L], rows, S, prec);
    m->be->download(logits_host, a->logits, S * c->V);
    for (size_t s = 0; s < S; s++) kv->n[seq[s]] += off[s + 1] - off[s];
    free(q_off);
    free(rows);
    free(put);
    free(pos);
}
