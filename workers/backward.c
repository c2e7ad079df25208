// workers/backward.c — the activation-only backward: from d(objective)/d(logits) at the scored
// rows back to the residual stream at the hook layer. Weights are frozen, so every step is an
// input gradient (dinp = dout @ W); nothing accumulates into weights. The layer backward calls
// the ops in exactly the reverse order of layer_forward in forward.c, one line per op.
#include <stdlib.h>
#include <string.h>

#include "model.h" // defines: bipo_model, bipo_acts, bipo_grads, bipo_batch, bipo_batch_seqs
#include "util.h" // defines: CHECK

// g->dresid holds d/d(resid[l+1]) on entry and d/d(resid[l]) on return.
static void layer_backward(bipo_model *m, bipo_acts *a, bipo_grads *g, size_t l, size_t N,
                           const int *pos, const bipo_seqs *sq, const bipo_batch *b,
                           bipo_matmul_precision prec) {
    const bipo_backend *be = m->be;
    const bipo_config *c = &m->cfg;
    const bipo_layer_weights *w = &m->layers[l];
    size_t QD = c->NH * c->HD, KVD = c->NKV * c->HD;
    // out = resid_mid + act Wd^T: d(resid_mid) = dresid (kept in place), d(act) = dresid Wd
    be->matmul_backward(g->dact, g->dresid, w->w_down, N, c->FF, c->C, 0, prec);
    be->swiglu_backward(g->dgate, g->dup, g->dact, a->gate[l], a->up[l], N * c->FF);
    be->matmul_backward(g->dln, g->dgate, w->w_gate, N, c->C, c->FF, 0, prec);
    be->matmul_backward(g->dln, g->dup, w->w_up, N, c->C, c->FF, 1, prec);
    be->rmsnorm_backward(g->dresid, g->dln, a->resid_mid[l], w->ffn_norm, a->ln2_rstd[l], N, c->C);
    // resid_mid = x + attn_out Wo^T
    be->matmul_backward(g->dattn, g->dresid, w->wo, N, QD, c->C, 0, prec);
    if (b->kv_rows) { // shared-prefix layout: attention saw gathered rows; scatter them back
        size_t NK = b->ak_off[b->AS];
        be->attention_backward(g->dq, g->dkg, g->dvg, g->dattn, a->q[l], a->kg[l], a->vg[l],
                               a->att[l], sq, c->NH, c->NKV, c->HD);
        be->zero(g->dk, N * KVD);
        be->zero(g->dv, N * KVD);
        be->scatter_add_rows(g->dk, g->dkg, b->kv_rows, NK, KVD);
        be->scatter_add_rows(g->dv, g->dvg, b->kv_rows, NK, KVD);
    } else {
        be->attention_backward(g->dq, g->dk, g->dv, g->dattn, a->q[l], a->k[l], a->v[l],
                               a->att[l], sq, c->NH, c->NKV, c->HD);
    }
    be->rope_backward(g->dq, pos, N, c->NH, c->HD, c->rope_theta);
    be->rope_backward(g->dk, pos, N, c->NKV, c->HD, c->rope_theta);
    be->matmul_backward(g->dln, g->dq, w->wq, N, c->C, QD, 0, prec);
    be->matmul_backward(g->dln, g->dk, w->wk, N, c->C, KVD, 1, prec);
    be->matmul_backward(g->dln, g->dv, w->wv, N, c->C, KVD, 1, prec);
    be->rmsnorm_backward(g->dresid, g->dln, a->resid[l], w->attn_norm, a->ln1_rstd[l], N, c->C);
}

// From d(objective)/d(head normed input) in g->dln [M, C] down to layer start.
static void backward_from_head(bipo_model *m, bipo_acts *a, bipo_grads *g, const bipo_batch *b,
                               size_t start, const size_t *rows, size_t M,
                               bipo_matmul_precision prec) {
    const bipo_backend *be = m->be;
    const bipo_config *c = &m->cfg;
    size_t N = b->off[b->S];
    be->zero(g->dhead, M * c->C);
    be->rmsnorm_backward(g->dhead, g->dln, a->head_in, m->norm_f, a->lnf_rstd, M, c->C);
    be->zero(g->dresid, N * c->C);
    be->scatter_add_rows(g->dresid, g->dhead, rows, M, c->C);
    // layers L-1 ... start (hooks add constants: the gradient passes through them unchanged)
    bipo_seqs sq = bipo_batch_seqs(b);
    int *pos = bipo_batch_positions(b);
    for (size_t l = c->L; l-- > start;) layer_backward(m, a, g, l, N, pos, &sq, b, prec);
    free(pos);
}

void bipo_backward(bipo_model *m, bipo_acts *a, bipo_grads *g, const bipo_batch *b, size_t start,
                   const float *dlogits, const size_t *rows, size_t M,
                   bipo_matmul_precision prec) {
    const bipo_config *c = &m->cfg;
    CHECK(a->save, "bipo_backward needs activations saved by a forward with save = 1");
    bipo_grads_ensure(g, m, b->off[b->S], M, b->kv_rows ? b->ak_off[b->AS] : 0);
    // head: logits = rmsnorm(head_in) @ lm_head^T, head_in = resid[L][rows]
    m->be->matmul_backward(g->dln, dlogits, m->lm_head, M, c->C, c->V, 0, prec);
    backward_from_head(m, a, g, b, start, rows, M, prec);
}

void bipo_backward_logprob(bipo_model *m, bipo_acts *a, bipo_grads *g, const bipo_batch *b,
                           size_t start, const float *dlp, const float *lse, const int *targets,
                           float *dlogits, const size_t *rows, size_t M,
                           bipo_matmul_precision prec) {
    const bipo_backend *be = m->be;
    const bipo_config *c = &m->cfg;
    CHECK(a->save, "bipo_backward needs activations saved by a forward with save = 1");
    bipo_grads_ensure(g, m, b->off[b->S], M, b->kv_rows ? b->ak_off[b->AS] : 0);
    if (be->logprob_matmul_backward) {
        be->logprob_matmul_backward(g->dln, dlogits, dlp, a->logits, lse, targets, m->lm_head, M,
                                    c->C, c->V, prec);
    } else {
        be->logprob_backward(dlogits, dlp, a->logits, lse, targets, M, c->V);
        be->matmul_backward(g->dln, dlogits, m->lm_head, M, c->C, c->V, 0, prec);
    }
    backward_from_head(m, a, g, b, start, rows, M, prec);
}
