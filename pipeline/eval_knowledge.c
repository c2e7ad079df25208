// pipeline/eval_knowledge.c — what a vector costs outside its behavior (see eval_job.h): the
// eval: block's mmlu / truthfulqa / neutral_text sets scored by workers/eval_mc.h for every arm
// at the set's multipliers, filed as child tables of the run's (or entry's) eval tree:
//   mmlu/<arm>/{multipliers, accuracy, p_correct}   attrs n_items, positions
//   truthfulqa/<arm>/{multipliers, mc1, mc2}        attrs n_items, positions
//   neutral/<arm>/{multipliers, mean_logprob}       attrs n_tokens, positions
// (each set's table carries path, sha256 and n_items / n_tokens). MMLU and TruthfulQA run in
// chunks of MC_CHUNK items (results merged as item-weighted means, which is what the workers'
// means over items are), so the progress line moves and rank 0 serves other leaders' messages
// (the sink's poll) between chunks; the neutral text is one call per arm.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_eval.h" // defines: bipo_eval_cfg, bipo_eval_set_cfg
#include "eval_data.h"   // defines: bipo_mmlu_load, bipo_tqa_load, bipo_text_load
#include "eval_job.h"    // defines: bipo_eval_knowledge, bipo_eval_progress
#include "eval_mc.h"     // defines: bipo_eval_mmlu, bipo_eval_tqa, bipo_eval_text
#include "util.h"        // defines: bipo_now, xcalloc, bipo_fmt_duration

enum { MC_CHUNK = 8 }; // items per worker call: the progress line's and the poll's granularity

void bipo_eval_progress_tick(const bipo_eval_progress *pr, const char *what, size_t done, size_t n,
                             size_t n_arms, int pairs, double t0) {
    if (pr->sink && pr->sink->poll) pr->sink->poll(pr->sink); // rank 0: other leaders' messages
    if (pr->quiet && done != n) return;
    double el = bipo_now() - t0, rate = done / (el > 0 ? el : 1e-9);
    char eta[32];
    bipo_fmt_duration(eta, sizeof eta, (double)(n - done) / rate);
    printf("%s%s%s: %zu/%zu %s %zu arms, %.1f %s/s, ETA %s\n", pr->label, *what ? " " : "", what, done, n,
           pairs ? "(item, arm) pairs of" : "items x", n_arms, rate, pairs ? "pairs" : "items", eta);
    fflush(stdout);
}

// ---- the two item sets, one chunk at a time ----------------------------------------------------
typedef struct {
    const char *table;  // "mmlu", "truthfulqa"
    const char *f[2];   // the stored arrays
} mc_kind;
static const mc_kind MMLU = {"mmlu", {"accuracy", "p_correct"}}, TQA = {"truthfulqa", {"mc1", "mc2"}};

static double **mc_field(bipo_mc_result *r, const mc_kind *k, int i) {
    return k == &MMLU ? (i ? &r->p_correct : &r->accuracy) : (i ? &r->mc2 : &r->mc1);
}
static size_t mc_count(const bipo_mc_result *r, const mc_kind *k) { return k == &MMLU ? r->n_mmlu : r->n_tqa; }

// Items [at, at+n) of the set (a bipo_mc_set or bipo_tqa_set view) for one arm into r.
static int mc_part(const mc_kind *k, const bipo_eval_ctx *ec, const bipo_eval_arm *arm, const void *set,
                   size_t at, size_t n, const bipo_mc_opts *o, bipo_mc_result *r) {
    if (k == &MMLU) {
        bipo_mc_set part = *(const bipo_mc_set *)set;
        part.it += at, part.n = n;
        return bipo_eval_mmlu(ec, arm, &part, o, r);
    }
    bipo_tqa_set part = *(const bipo_tqa_set *)set;
    part.it += at, part.n = n;
    return bipo_eval_tqa(ec, arm, &part, o, r);
}

// One arm's table under parent: multipliers and the two (or one) arrays, n_items, positions.
static void arm_table(bipo_eval_table *parent, const bipo_mc_result *r, const char *const *f, double *const *x,
                      size_t nf, const char *count_key, size_t count) {
    bipo_eval_table *t = bipo_eval_table_child(parent, r->name);
    bipo_eval_table_array(t, "multipliers", BIPO_EV_F64, r->mult, r->n_mult);
    for (size_t i = 0; i < nf; i++) bipo_eval_table_array(t, f[i], BIPO_EV_F64, x[i], r->n_mult);
    BIPO_EVAL_ATTR(t, BIPO_ATTR_I(count_key, (int64_t)count));
    BIPO_EVAL_ATTR(t, BIPO_ATTR_S("positions", r->positions == BIPO_POS_ANSWER ? "answer" : "all"));
}

// Every arm on the first n items of a set, in chunks, as the table k->table under ev.
static int mc_set(const mc_kind *k, const bipo_eval_ctx *ec, const bipo_eval_arm *arms, size_t na,
                  const void *set, size_t n, const bipo_mc_opts *o, const bipo_eval_progress *pr,
                  bipo_eval_table *tab) {
    size_t M = o->n_mult;
    double *sum = xcalloc(2 * M, sizeof *sum), t0 = bipo_now();
    int rc = 0;
    for (size_t a = 0; a < na && !rc; a++) {
        bipo_mc_result r = {0};
        memset(sum, 0, 2 * M * sizeof *sum);
        for (size_t at = 0; at < n && !rc; at += MC_CHUNK) {
            size_t part = n - at < MC_CHUNK ? n - at : MC_CHUNK;
            if ((rc = mc_part(k, ec, &arms[a], set, at, part, o, &r)) != 0) break;
            for (int i = 0; i < 2; i++)
                for (size_t m = 0; m < M; m++) sum[i * M + m] += (*mc_field(&r, k, i))[m] * (double)mc_count(&r, k);
            bipo_eval_progress_tick(pr, k->table, a * n + at + part, na * n, na, 1, t0);
        }
        if (!rc) {
            for (size_t q = 0; q < 2 * M; q++) sum[q] /= (double)n;
            double *x[2] = {sum, sum + M};
            arm_table(tab, &r, k->f, x, 2, "n_items", n);
        }
        bipo_mc_result_free(&r);
    }
    free(sum);
    return rc;
}

// The set's own table under ev: what was scored.
static bipo_eval_table *set_table(bipo_eval_table *ev, const char *name, const char *path, const char *sha,
                                  const char *count_key, size_t count) {
    bipo_eval_table *t = bipo_eval_table_child(ev, name);
    BIPO_EVAL_ATTR(t, BIPO_ATTR_S("path", path));
    if (sha) BIPO_EVAL_ATTR(t, BIPO_ATTR_S("sha256", sha));
    BIPO_EVAL_ATTR(t, BIPO_ATTR_I(count_key, (int64_t)count));
    return t;
}

static size_t first_n(size_t have, size_t max) { return max && max < have ? max : have; }

static const double DEFAULT_MULT[3] = {-1, 0, 1};
static bipo_mc_opts set_opts(const bipo_eval_cfg *e, const bipo_eval_set_cfg *s) {
    return (bipo_mc_opts){s->mult ? s->mult : DEFAULT_MULT, s->mult ? s->n_mult : 3, e->positions, 0};
}

static int run_mmlu(const bipo_eval_ctx *ec, const bipo_eval_cfg *e, const bipo_eval_arm *arms, size_t na,
                    const bipo_eval_progress *pr, bipo_eval_table *ev) {
    bipo_mc_set set;
    if (bipo_mmlu_load(&set, e->mmlu.path) != 0) return -1;
    size_t n = first_n(set.n, e->mmlu.max_items);
    bipo_mc_opts o = set_opts(e, &e->mmlu);
    int rc = mc_set(&MMLU, ec, arms, na, &set, n, &o, pr, set_table(ev, "mmlu", set.path, set.sha256, "n_items", n));
    bipo_mc_set_free(&set);
    return rc;
}

static int run_tqa(const bipo_eval_ctx *ec, const bipo_eval_cfg *e, const bipo_eval_arm *arms, size_t na,
                   const bipo_eval_progress *pr, bipo_eval_table *ev) {
    bipo_tqa_set set;
    if (bipo_tqa_load(&set, e->truthfulqa.path) != 0) return -1;
    size_t n = first_n(set.n, e->truthfulqa.max_items);
    bipo_mc_opts o = set_opts(e, &e->truthfulqa);
    int rc = mc_set(&TQA, ec, arms, na, &set, n, &o, pr, set_table(ev, "truthfulqa", set.path, set.sha256, "n_items", n));
    bipo_tqa_set_free(&set);
    return rc;
}

// ---- the neutral text: one call per arm ----------------------------------------------------------
static int run_text(const bipo_eval_ctx *ec, const bipo_eval_cfg *e, const bipo_eval_arm *arms, size_t na,
                    const bipo_eval_progress *pr, bipo_eval_table *ev) {
    char *text, sha[65];
    size_t len;
    if (bipo_text_load(e->neutral.path, &text, &len) != 0) return -1;
    bipo_sha256 h;
    bipo_sha256_init(&h);
    bipo_sha256_update(&h, text, len);
    bipo_sha256_hex(&h, sha);
    bipo_mc_opts o = set_opts(e, &e->neutral);
    bipo_eval_table *tab = NULL;
    double t0 = bipo_now();
    int rc = 0;
    static const char *const F[] = {"mean_logprob"};
    for (size_t a = 0; a < na && !rc; a++) {
        bipo_mc_result r = {0};
        if ((rc = bipo_eval_text(ec, &arms[a], text, len, &o, &r)) == 0) {
            if (!tab) tab = set_table(ev, "neutral", e->neutral.path, sha, "n_tokens", r.n_text_tokens);
            arm_table(tab, &r, F, &r.mean_logprob, 1, "n_tokens", r.n_text_tokens);
            bipo_eval_progress_tick(pr, "neutral", a + 1, na, na, 1, t0);
        }
        bipo_mc_result_free(&r);
    }
    free(text);
    return rc;
}

int bipo_eval_knowledge(const bipo_eval_ctx *ec, const bipo_eval_cfg *e, const bipo_eval_arm *arms, size_t na,
                        const bipo_eval_progress *pr, bipo_eval_table *ev) {
    if (e->mmlu.path && run_mmlu(ec, e, arms, na, pr, ev) != 0) return -1;
    if (e->truthfulqa.path && run_tqa(ec, e, arms, na, pr, ev) != 0) return -1;
    if (e->neutral.path && run_text(ec, e, arms, na, pr, ev) != 0) return -1;
    return 0;
}
