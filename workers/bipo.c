// workers/bipo.c — see bipo.h. One step, in order:
//   pack 2B sequences (target and opposite of B pairs) -> h_in = cached hidden_states[L+1]
//   forward_from(h_in + d v, layers L+1..N-1, LM head at scored rows) -> log-probs
//   per-sequence sums -> margins -> loss; dloss/dlp per row -> dlogits -> activation backward
//   -> dv = d * sum_rows dh -> clip -> AdamW (torch semantics, decoupled weight decay)
#include "bipo.h" // defines: bipo_hparams, bipo_example, bipo_trainer (implemented here)

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"  // defines: bipo_rng_next, bipo_rng_uniform (splitmix64)
#include "util.h" // defines: xmalloc, xcalloc, bipo_set_error, CHECK

void bipo_example_free(bipo_example *e) {
    free(e->tok[0]);
    free(e->tok[1]);
    e->tok[0] = e->tok[1] = NULL;
}

// ---- packing ---------------------------------------------------------------------------------
// B pairs become one block each. Plain layout: [target | opposite] as two sequences. Shared
// layout: [shared prefix | target suffix | opposite suffix] with two attention sequences, the
// opposite's reading the prefix rows and its own suffix (see bipo_batch in model.h).
typedef struct {
    size_t S, N, M;
    size_t *off;     // [S+1] sequence (plain) or block (shared) offsets
    int *tok;        // [N]
    size_t *rows;    // [M] scored rows (packed index); a shared last-prompt row may repeat
    int *targets;    // [M]
    size_t *row_seq; // [M] which sequence (2 * pair + k) a row scores
    size_t *src_row; // [N] shared: row's token index in its source sequence
    uint8_t *src_k;  // [N] shared: source sequence k (0 target, 1 opposite suffix)
    size_t *shared;  // [B] shared prefix length per pair (0 in the plain layout)
    int *pos;        // [N] shared
    size_t AS, *aq_off, *ak_off, *kv_rows; // shared
} packed;

static void packed_free(packed *p) {
    free(p->off), free(p->tok), free(p->rows), free(p->targets), free(p->row_seq);
    free(p->src_row), free(p->src_k), free(p->shared), free(p->pos), free(p->aq_off);
    free(p->ak_off), free(p->kv_rows);
    memset(p, 0, sizeof *p);
}

static size_t common_prefix(const bipo_example *e) {
    size_t lim = e->p[0] < e->p[1] ? e->p[0] : e->p[1], P = 0;
    while (P < lim && e->tok[0][P] == e->tok[1][P]) P++;
    return P;
}

// Row holding token j of sequence k of a block starting at `base` (shared prefix P).
static size_t row_of(const bipo_example *e, size_t base, size_t P, int k, size_t j) {
    if (k == 0 || j < P) return base + j;
    return base + e->n[0] + (j - P);
}

static void pack(packed *p, bipo_example *ex, const size_t *idx, size_t B, int share) {
    memset(p, 0, sizeof *p);
    p->shared = xcalloc(B, sizeof(size_t));
    for (size_t i = 0; i < B; i++) {
        const bipo_example *e = &ex[idx[i]];
        p->shared[i] = share ? common_prefix(e) : 0;
        p->N += e->n[0] + e->n[1] - p->shared[i];
        p->M += (e->n[0] - e->p[0]) + (e->n[1] - e->p[1]);
    }
    p->S = share ? B : 2 * B;
    p->off = xmalloc((p->S + 1) * sizeof(size_t));
    p->tok = xmalloc(p->N * sizeof(int));
    p->rows = xmalloc(p->M * sizeof(size_t));
    p->targets = xmalloc(p->M * sizeof(int));
    p->row_seq = xmalloc(p->M * sizeof(size_t));
    p->src_row = xmalloc(p->N * sizeof(size_t));
    p->src_k = xmalloc(p->N);
    if (share) {
        p->AS = 2 * B;
        p->pos = xmalloc(p->N * sizeof(int));
        p->aq_off = xmalloc((p->AS + 1) * sizeof(size_t));
        p->ak_off = xmalloc((p->AS + 1) * sizeof(size_t));
        p->kv_rows = xmalloc(2 * p->N * sizeof(size_t));
        p->aq_off[0] = p->ak_off[0] = 0;
    }
    size_t base = 0, r = 0, nk = 0;
    p->off[0] = 0;
    for (size_t i = 0; i < B; i++) {
        const bipo_example *e = &ex[idx[i]];
        size_t P = p->shared[i];
        for (int k = 0; k < 2; k++) // rows of this block, in order
            for (size_t j = (k == 1 ? P : 0); j < e->n[k]; j++) {
                size_t row = row_of(e, base, P, k, j);
                p->tok[row] = e->tok[k][j];
                p->src_row[row] = j;
                p->src_k[row] = (uint8_t)k;
                if (share) p->pos[row] = (int)j;
            }
        for (int k = 0; k < 2; k++)
            for (size_t j = e->p[k]; j < e->n[k]; j++, r++) {
                p->rows[r] = row_of(e, base, P, k, j - 1); // row j-1 predicts token j
                p->targets[r] = e->tok[k][j];
                p->row_seq[r] = 2 * i + (size_t)k;
            }
        if (share) {
            for (int k = 0; k < 2; k++) {
                size_t a = 2 * i + (size_t)k;
                for (size_t j = 0; j < e->n[k]; j++) p->kv_rows[nk++] = row_of(e, base, P, k, j);
                p->ak_off[a + 1] = nk;
                p->aq_off[a + 1] = k == 0 ? base + e->n[0] : base + e->n[0] + e->n[1] - P;
            }
            base += e->n[0] + e->n[1] - P;
            p->off[i + 1] = base;
        } else {
            p->off[2 * i + 1] = base + e->n[0];
            p->off[2 * i + 2] = base += e->n[0] + e->n[1];
        }
    }
}

static bipo_batch packed_batch(const packed *p) {
    return (bipo_batch){p->S, p->off, p->tok, p->pos, p->AS, p->aq_off, p->ak_off, p->kv_rows};
}

static int owned(const bipo_trainer *t, size_t i) {
    return t->dp.size <= 1 || (int)(i % (size_t)t->dp.size) == t->dp.rank;
}

// ---- caches ------------------------------------------------------------------------------------

// The GEMM arithmetic a call with p gets on this backend (fp32 where it lacks p).
static bipo_matmul_precision in_effect(const bipo_backend *be, bipo_matmul_precision p) {
    return be->supports_precision(p) ? p : BIPO_MATMUL_FP32;
}

// Full forward (no vector) of `count` examples starting at ex, in the same packed layout the
// steps use: per-sequence reference log-probs into ref[i][k], and hidden_states[L+1] into
// h[i][k] while the budget lasts (when h != NULL). h[i][0] holds the target's n[0] rows;
// h[i][1] the opposite's rows from its shared prefix length P on (all n[1] rows when P = 0).
static void build_cache(bipo_trainer *t, bipo_example *ex, size_t count, double (*ref)[2],
                        float ***h) {
    bipo_model *m = t->m;
    const bipo_backend *be = m->be;
    size_t C = t->C, V = m->cfg.V;
    bipo_acts a;
    bipo_acts_init(&a, 0);
    const size_t chunk = 8; // pairs per forward
    size_t *own = xmalloc((count ? count : 1) * sizeof(size_t)), n_own = 0;
    for (size_t i = 0; i < count; i++)
        if (owned(t, i)) own[n_own++] = i; // data parallel: caches hold this rank's shard only
    float *lp = NULL, *lse = NULL;
    size_t lp_cap = 0;
    for (size_t start = 0; start < n_own; start += chunk) {
        size_t B = n_own - start < chunk ? n_own - start : chunk;
        const size_t *idx = own + start;
        packed p;
        pack(&p, ex, idx, B, t->hp.shared_prompt);
        bipo_batch b = packed_batch(&p);
        // layers 0..L in fp32 (h_L), the layers above L in the step's forward arithmetic, so
        // that lp - ref at v = 0 is 0 whatever forward_matmul is
        bipo_forward(m, &a, &b, NULL, NULL, 0, (int)t->layer, BIPO_MATMUL_FP32);
        bipo_forward_from(m, &a, &b, a.resid[t->layer + 1], t->layer + 1, NULL, p.rows, p.M,
                          t->hp.forward_matmul);
        if (p.M > lp_cap) {
            if (lp) be->free(lp), be->free(lse);
            lp = be->alloc(lp_cap = p.M);
            lse = be->alloc(p.M);
        }
        be->logprob_forward(lp, lse, a.logits, p.targets, p.M, V);
        float *lph = xmalloc(p.M * sizeof(float));
        be->download(lph, lp, p.M);
        for (size_t i = 0; i < B; i++) ref[idx[i]][0] = ref[idx[i]][1] = 0;
        for (size_t r = 0; r < p.M; r++) ref[idx[p.row_seq[r] / 2]][p.row_seq[r] % 2] += lph[r];
        free(lph);
        if (h && t->hp.use_cache)
            for (size_t i = 0; i < B; i++)
                for (int k = 0; k < 2; k++) {
                    const bipo_example *e = &ex[idx[i]];
                    size_t P = p.shared[i], j0 = k == 1 ? P : 0, n = e->n[k] - j0;
                    size_t base = p.kv_rows ? p.off[i] : p.off[2 * i];
                    size_t bytes = n * C * sizeof(float);
                    float *dst = NULL;
                    if (t->cache_used + bytes <= t->hp.cache_bytes) {
                        dst = xmalloc(bytes);
                        be->download(dst, a.resid[t->layer + 1] + row_of(e, base, P, k, j0) * C, n * C);
                        t->cache_used += bytes;
                    } else {
                        t->cache_misses++;
                    }
                    h[idx[i]][k] = dst;
                }
        packed_free(&p);
    }
    if (lp) be->free(lp), be->free(lse);
    free(own);
    bipo_acts_free(&a, be);
}

static float ***alloc_hcache(size_t n) {
    float ***h = xcalloc(n ? n : 1, sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = xcalloc(2, sizeof(float *));
    return h;
}
static void free_hcache(float ***h, size_t n) {
    if (!h) return;
    for (size_t i = 0; i < n; i++) {
        free(h[i][0]);
        free(h[i][1]);
        free(h[i]);
    }
    free(h);
}

int bipo_trainer_init(bipo_trainer *t, bipo_model *m, size_t layer, const bipo_hparams *hp,
                      bipo_example *train, size_t n_train, bipo_example *test, size_t n_test,
                      const bipo_dp *dp) {
    memset(t, 0, sizeof *t);
    t->dp = dp ? *dp : (bipo_dp){1, 0, NULL, NULL};
    if (layer >= m->cfg.L) {
        bipo_set_error("layer %zu is out of range: the model has %zu layers (0..%zu)", layer,
                       m->cfg.L, m->cfg.L - 1);
        return -1;
    }
    if (n_train == 0) {
        bipo_set_error("no training pairs");
        return -1;
    }
    for (size_t i = 0; i < n_train + n_test; i++) {
        const bipo_example *e = i < n_train ? &train[i] : &test[i - n_train];
        for (int k = 0; k < 2; k++)
            CHECK(e->p[k] >= 1 && e->p[k] < e->n[k], "example %zu: bad prompt/response split", i);
    }
    t->m = m;
    t->layer = layer;
    t->hp = *hp;
    if (t->hp.schedule_epochs == 0) t->hp.schedule_epochs = t->hp.epochs;
    // the GEMM precisions this machine gives (bf16x3 falls back to fp32 without AMX)
    const bipo_backend *be = m->be;
    t->hp.forward_matmul = in_effect(be, t->hp.forward_matmul);
    t->hp.backward_matmul = in_effect(be, t->hp.backward_matmul);
    t->train = train;
    t->test = test;
    t->n_train = n_train;
    t->n_test = n_test;
    t->C = m->cfg.C;
    t->steps_per_epoch = (n_train + hp->batch_size - 1) / hp->batch_size;
    t->total_steps = t->steps_per_epoch * t->hp.schedule_epochs;
    t->v = xcalloc(t->C, sizeof(float)); // zero init, as the reference
    t->adam_m = xcalloc(t->C, sizeof(float));
    t->adam_v = xcalloc(t->C, sizeof(float));
    t->rng = hp->seed;
    t->order = xmalloc(n_train * sizeof(size_t));
    t->h_train = alloc_hcache(n_train);
    t->h_test = alloc_hcache(n_test);
    t->ref_train = xcalloc(n_train, sizeof *t->ref_train);
    t->ref_test = xcalloc(n_test ? n_test : 1, sizeof *t->ref_test);
    build_cache(t, train, n_train, t->ref_train, t->h_train);
    if (n_test) build_cache(t, test, n_test, t->ref_test, t->h_test);
    bipo_acts_init(&t->acts, 1);
    t->vb = be->alloc(t->C);
    t->dvb = be->alloc(t->C);
    return 0;
}

void bipo_trainer_free(bipo_trainer *t) {
    if (!t->m) return;
    const bipo_backend *be = t->m->be;
    free_hcache(t->h_train, t->n_train);
    free_hcache(t->h_test, t->n_test);
    free(t->ref_train), free(t->ref_test), free(t->v), free(t->adam_m), free(t->adam_v);
    free(t->order);
    bipo_acts_free(&t->acts, be);
    bipo_grads_free(&t->grads, be);
    float *bufs[] = {t->vb, t->dvb, t->hbuf, t->lp, t->lse, t->dlogits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->free(bufs[i]);
    memset(t, 0, sizeof *t);
}

// h_in for a packed batch: every row's cached hidden_states[L+1] (by source sequence and
// token index), recomputed (layers 0..L) for sequences that are not cached.
static void fill_hidden(bipo_trainer *t, const packed *p, bipo_example *ex, float ***h,
                        const size_t *idx, size_t B) {
    const bipo_backend *be = t->m->be;
    size_t C = t->C;
    if (p->N > t->hbuf_cap) {
        if (t->hbuf) be->free(t->hbuf);
        t->hbuf_cap = p->N + p->N / 2; // headroom: see acts_ensure
        t->hbuf = be->alloc(t->hbuf_cap * C);
    }
    bipo_acts lo;
    int have_lo = 0;
    float *tmp = NULL;
    for (size_t i = 0; i < B; i++)
        for (int k = 0; k < 2; k++) {
            const bipo_example *e = &ex[idx[i]];
            size_t P = p->shared[i], j0 = k == 1 ? P : 0, count = e->n[k] - j0;
            const float *src = h[idx[i]][k]; // cached rows start at j0 (see build_cache)
            if (!src) { // not cached: layers 0..L for this sequence
                if (!have_lo) bipo_acts_init(&lo, 0), have_lo = 1;
                size_t off[2] = {0, e->n[k]};
                bipo_batch b = {1, off, e->tok[k]};
                bipo_forward(t->m, &lo, &b, NULL, NULL, 0, (int)t->layer, BIPO_MATMUL_FP32);
                tmp = xrealloc(tmp, e->n[k] * C * sizeof(float));
                be->download(tmp, lo.resid[t->layer + 1], e->n[k] * C);
                src = tmp + j0 * C;
            }
            // the rows of this sequence are contiguous in token order: [first, first + count)
            size_t base = p->kv_rows ? p->off[i] : p->off[2 * i];
            be->upload(t->hbuf + row_of(e, base, P, k, j0) * C, src, count * C);
        }
    free(tmp);
    if (have_lo) bipo_acts_free(&lo, be);
}

// Sum over the pairs ex[idx[0..B)] of (per-pair loss / div), at vector v (host) and direction
// d; grad (host [C], the gradient of that sum) when non-NULL. Local: no communication.
static double loss_grad_local(bipo_trainer *t, bipo_example *ex, float ***h, double (*ref)[2],
                              const size_t *idx, size_t B, double div, int d, const float *v,
                              float *grad) {
    if (B == 0) {
        if (grad) memset(grad, 0, t->C * sizeof(float));
        t->last_tokens = 0;
        return 0;
    }
    bipo_model *m = t->m;
    const bipo_backend *be = m->be;
    size_t C = t->C, V = m->cfg.V;
    packed p;
    pack(&p, ex, idx, B, t->hp.shared_prompt);
    fill_hidden(t, &p, ex, h, idx, B);
    if (p.M > t->row_cap) {
        if (t->lp) be->free(t->lp), be->free(t->lse), be->free(t->dlogits);
        t->row_cap = p.M + p.M / 2; // headroom: see acts_ensure
        t->lp = be->alloc(t->row_cap);
        t->lse = be->alloc(t->row_cap);
        t->dlogits = be->alloc(t->row_cap * V);
    }
    be->upload(t->vb, v, C);
    // the layers above L run in forward_matmul here, in the reference log-probs and in
    // held-out evaluation alike (build_cache); the backward in backward_matmul
    bipo_hook hook = {(int)t->layer, t->vb, (float)d, NULL};
    bipo_batch b = packed_batch(&p);
    bipo_forward_from(m, &t->acts, &b, t->hbuf, t->layer + 1, &hook, p.rows, p.M,
                      t->hp.forward_matmul);
    be->logprob_forward(t->lp, t->lse, t->acts.logits, p.targets, p.M, V);
    float *lph = xmalloc(p.M * sizeof(float));
    be->download(lph, t->lp, p.M);
    double *lps = xcalloc(2 * B, sizeof(double)), *dseq = xcalloc(2 * B, sizeof(double));
    for (size_t r = 0; r < p.M; r++) lps[p.row_seq[r]] += lph[r];
    double loss = 0;
    for (size_t i = 0; i < B; i++) {
        const double *rf = ref[idx[i]];
        double margin = t->hp.beta * d * ((lps[2 * i] - rf[0]) - (lps[2 * i + 1] - rf[1]));
        // softplus(-x) computed stably; its derivative is -sigmoid(-x)
        loss += margin > 0 ? log1p(exp(-margin)) : -margin + log1p(exp(margin));
        double sig = 1.0 / (1.0 + exp(margin)); // sigmoid(-margin)
        dseq[2 * i] = -sig * t->hp.beta * d / div;
        dseq[2 * i + 1] = sig * t->hp.beta * d / div;
    }
    loss /= div;
    t->last_tokens = p.N;
    t->last_rows = p.M;
    // average number of keys a row attends to (causal: a query sees the keys up to itself)
    bipo_seqs sq = bipo_batch_seqs(&b);
    double ctx = 0;
    for (size_t a = 0; a < sq.S; a++) {
        double nq = (double)(sq.q_off[a + 1] - sq.q_off[a]), nk = (double)(sq.k_off[a + 1] - sq.k_off[a]);
        ctx += nq * (nk - nq / 2.0);
    }
    t->last_ctx = p.N ? ctx / (double)p.N : 0;
    if (grad) {
        float *dlp = xmalloc(p.M * sizeof(float));
        for (size_t r = 0; r < p.M; r++) dlp[r] = (float)dseq[p.row_seq[r]];
        bipo_backward_logprob(m, &t->acts, &t->grads, &b, t->layer + 1, dlp, t->lse, p.targets,
                              t->dlogits, p.rows, p.M, t->hp.backward_matmul);
        be->zero(t->dvb, C);
        be->add_vector_backward(t->dvb, t->grads.dresid, (float)d, NULL, p.N, C);
        be->download(grad, t->dvb, C);
        free(dlp);
    }
    free(lph), free(lps), free(dseq);
    packed_free(&p);
    return loss;
}

// Data parallel: this rank computes the pairs of the (global) batch it owns, the group sums
// loss and gradient. Dividing by the global B before the sum makes the result the mean over
// the global batch however unevenly its pairs fall on the ranks.
static double loss_grad(bipo_trainer *t, bipo_example *ex, float ***h, double (*ref)[2],
                        const size_t *idx, size_t B, double div, int d, const float *v,
                        float *grad) {
    if (t->dp.size <= 1) return loss_grad_local(t, ex, h, ref, idx, B, div, d, v, grad);
    size_t *mine = xmalloc((B ? B : 1) * sizeof(size_t)), nm = 0;
    for (size_t i = 0; i < B; i++)
        if (owned(t, idx[i])) mine[nm++] = idx[i];
    double loss = loss_grad_local(t, ex, h, ref, mine, nm, div, d, v, grad);
    free(mine);
    size_t n = grad ? t->C + 1 : 1;
    double *buf = xmalloc(n * sizeof(double));
    buf[0] = loss;
    for (size_t i = 1; i < n; i++) buf[i] = grad[i - 1];
    t->dp.allreduce(buf, n, t->dp.ctx);
    for (size_t i = 1; i < n; i++) grad[i - 1] = (float)buf[i];
    loss = buf[0];
    free(buf);
    return loss;
}

double bipo_loss_grad(bipo_trainer *t, const size_t *idx, size_t B, int d, const float *v,
                      float *grad) {
    return loss_grad(t, t->train, t->h_train, t->ref_train, idx, B, (double)B, d, v, grad);
}

double bipo_trainer_eval(bipo_trainer *t, int test_set, int d) {
    bipo_example *ex = test_set ? t->test : t->train;
    size_t n = test_set ? t->n_test : t->n_train;
    if (n == 0) return NAN;
    float ***h = test_set ? t->h_test : t->h_train;
    double (*ref)[2] = test_set ? t->ref_test : t->ref_train;
    size_t B = t->hp.batch_size, *idx = xmalloc(B * sizeof(size_t));
    double sum = 0;
    for (size_t s = 0; s < n; s += B) {
        size_t nb = n - s < B ? n - s : B;
        for (size_t i = 0; i < nb; i++) idx[i] = s + i;
        sum += loss_grad(t, ex, h, ref, idx, nb, 1.0, d, t->v, NULL); // sum of per-pair losses
    }
    free(idx);
    return sum / (double)n;
}

void bipo_trainer_begin_epoch(bipo_trainer *t) {
    for (size_t i = 0; i < t->n_train; i++) t->order[i] = i;
    for (size_t i = t->n_train; i > 1; i--) { // Fisher-Yates
        size_t j = (size_t)(bipo_rng_next(&t->rng) % i);
        size_t tmp = t->order[i - 1];
        t->order[i - 1] = t->order[j];
        t->order[j] = tmp;
    }
    t->pos = 0;
}

// HF get_{cosine,linear,constant}_schedule_with_warmup: step 0 gets lr * 0 / warmup.
static double lr_at(const bipo_hparams *hp, uint64_t step, size_t total) {
    double s = (double)step + (hp->first_step_lr_zero ? 0.0 : 1.0);
    if (s < (double)hp->warmup_steps) return hp->lr * s / (double)hp->warmup_steps;
    if (hp->schedule == BIPO_SCHED_CONSTANT) return hp->lr;
    double span = total > hp->warmup_steps ? (double)(total - hp->warmup_steps) : 1.0;
    double progress = (s - (double)hp->warmup_steps) / span;
    if (hp->schedule == BIPO_SCHED_LINEAR) return hp->lr * fmax(0.0, 1.0 - progress);
    return hp->lr * fmax(0.0, 0.5 * (1.0 + cos(M_PI * progress)));
}

double bipo_trainer_step(bipo_trainer *t) {
    if (t->pos == 0) bipo_trainer_begin_epoch(t);
    size_t B = t->n_train - t->pos < t->hp.batch_size ? t->n_train - t->pos : t->hp.batch_size;
    int d = (bipo_rng_next(&t->rng) >> 63) ? 1 : -1;
    double loss = bipo_trainer_step_with(t, t->order + t->pos, B, d);
    t->pos += B;
    if (t->pos >= t->n_train) {
        t->pos = 0;
        t->epoch++;
    }
    return loss;
}

double bipo_trainer_step_with(bipo_trainer *t, const size_t *idx, size_t B, int d) {
    size_t C = t->C;
    float *g = xmalloc(C * sizeof(float));
    double loss = bipo_loss_grad(t, idx, B, d, t->v, g);
    double norm = 0;
    for (size_t i = 0; i < C; i++) norm += (double)g[i] * g[i];
    norm = sqrt(norm);
    if (t->hp.grad_clip > 0 && norm > t->hp.grad_clip) { // torch clip_grad_norm_
        float scale = (float)(t->hp.grad_clip / (norm + 1e-6));
        for (size_t i = 0; i < C; i++) g[i] *= scale;
    }
    // AdamW exactly as torch.optim.AdamW (single-tensor path)
    double lr = lr_at(&t->hp, t->step, t->total_steps);
    double b1 = t->hp.adam_beta1, b2 = t->hp.adam_beta2;
    uint64_t k = t->step + 1;
    double bc1 = 1.0 - pow(b1, (double)k), bc2 = 1.0 - pow(b2, (double)k);
    float decay = (float)(1.0 - lr * t->hp.weight_decay);
    float step_size = (float)(lr / bc1), bc2s = (float)sqrt(bc2), eps = (float)t->hp.adam_eps;
    for (size_t i = 0; i < C; i++) {
        t->v[i] *= decay;
        t->adam_m[i] = (float)b1 * t->adam_m[i] + (float)(1 - b1) * g[i];
        t->adam_v[i] = (float)b2 * t->adam_v[i] + (float)(1 - b2) * g[i] * g[i];
        float denom = sqrtf(t->adam_v[i]) / bc2s + eps;
        t->v[i] -= step_size * t->adam_m[i] / denom;
    }
    free(g);
    t->step++;
#ifndef NDEBUG
    // debug builds: every 16 steps check that the group's ranks still hold the same vector
    if (t->dp.size > 1 && t->step % 16 == 0) {
        double mine = 0, all[1];
        for (size_t i = 0; i < C; i++) mine += (double)t->v[i] * (double)(i + 1);
        all[0] = mine;
        t->dp.allreduce(all, 1, t->dp.ctx);
        CHECK(fabs(all[0] - t->dp.size * mine) <= 1e-9 * (fabs(all[0]) + 1e-30),
              "rank %d: the steering vector diverged from the group's at step %llu", t->dp.rank,
              (unsigned long long)t->step);
    }
#endif
    t->last_loss = loss;
    t->last_lr = lr;
    t->last_grad_norm = norm;
    t->last_d = d;
    return loss;
}

int bipo_trainer_epoch_done(const bipo_trainer *t) { return t->pos == 0 && t->step > 0; }

double bipo_trainer_step_flops(const bipo_trainer *t) {
    const bipo_config *c = &t->m->cfg;
    bipo_config upper = *c;
    upper.L = c->L - t->layer - 1; // layers above the hook
    // forward + activation-only backward ~ 2x the forward (one input-gradient GEMM per GEMM,
    // the LM head's included; attention backward ~2x its forward is a small share here)
    return 2.0 * bipo_model_forward_flops(&upper, t->last_tokens, t->last_ctx, t->last_rows);
}
