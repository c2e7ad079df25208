// tests/test_eval_ab.c — A/B curves and CAA vectors (workers/eval_ab.c, eval_caa.c,
// eval_score.c) on a tiny random GGUF model with its minimal SPM tokenizer, llama2 template:
//  * p_match / log-odds of both protocols (letter, text) x both positions (all, answer) equal
//    a direct computation: one full bipo_forward per steered sequence (hook + mask), no
//    batching, log-softmax read here in double
//  * the multipliers batched as copies equal one multiplier per call; a two-layer sweep in one
//    call equals one call per layer; an arm with v = 0 has the same curve at every multiplier
//  * the prompting arm at m < 0 / m > 0 equals an unsteered run with that system prompt
//  * slope and anti-steerable fraction equal a least-squares fit done here
//  * the CAA vector equals a direct loop over full forwards (letter token / response mean)
//  * a letter vector trained a few BiPO steps raises p_match at +1 and lowers it at -1
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bipo.h"
#include "eval.h"
#include "model.h"
#include "tensors.h"
#include "testlib.h"
#include "testmodel.h"
#include "tokenizer.h"
#include "util.h"

static bipo_model M;
static bipo_tokenizer *TOK;
static const bipo_chat_template *TPL;
static const char *SYS = "Be brief.";

static void pairs_make(bipo_pairs *p, size_t n, int letter, size_t offset) {
    memset(p, 0, sizeof *p);
    p->n = n;
    p->p = calloc(n, sizeof *p->p);
    static const char *yes[] = {"yes I will do it", "sure", "of course, gladly"};
    static const char *no[] = {"no", "never, I refuse", "not today"};
    for (size_t i = 0; i < n; i++) {
        size_t j = i + offset;
        char q[200];
        int three = letter && j % 3 == 2;
        snprintf(q, sizeof q, "Question %zu: should you take more power?\n\nChoices:\n (A) yes\n (B) no%s",
                 j, three ? "\n (C) maybe" : "");
        p->p[i].question = strdup(q);
        if (letter) {
            p->p[i].matching = strdup(j % 2 && letter == 1 ? " (B)" : " (A)"); // 2: always A
            p->p[i].not_matching = strdup(three ? " (C)" : j % 2 && letter == 1 ? " (A)" : " (B)");
        } else {
            p->p[i].matching = strdup(yes[j % 3]);
            p->p[i].not_matching = strdup(no[(j + 1) % 3]);
        }
        p->p[i].line = i + 1;
    }
}

// ---- the direct computation -------------------------------------------------------------

// log p(tok[j] | tok[<j]) for the rows listed, one full forward with the hook (mask from row
// `from` on, or every row), no batching; log-softmax here in double.
static double direct_lp(const int *tok, size_t n, const size_t *rows, const int *tgt, size_t R,
                        size_t layer, const float *v, double mult, size_t from) {
    const bipo_backend *be = M.be;
    size_t C = M.cfg.C, V = M.cfg.V;
    float *vb = be->alloc(C);
    if (v) be->upload(vb, v, C);
    uint8_t *mask = malloc(n);
    for (size_t i = 0; i < n; i++) mask[i] = i >= from;
    size_t off[2] = {0, n};
    bipo_batch b = {1, off, tok, NULL, 0, NULL, NULL, NULL};
    bipo_hook h = {v ? (int)layer : -1, vb, (float)mult, mask};
    bipo_acts a;
    bipo_acts_init(&a, 0);
    bipo_forward(&M, &a, &b, &h, rows, R, -1, BIPO_MATMUL_FP32);
    float *lg = malloc(R * V * sizeof *lg);
    be->download(lg, a.logits, R * V);
    double s = 0;
    for (size_t r = 0; r < R; r++) {
        double mx = -1e30, z = 0;
        for (size_t k = 0; k < V; k++) mx = fmax(mx, lg[r * V + k]);
        for (size_t k = 0; k < V; k++) z += exp(lg[r * V + k] - mx);
        s += lg[r * V + tgt[r]] - mx - log(z);
    }
    free(lg), free(mask);
    bipo_acts_free(&a, be);
    be->free(vb);
    return s;
}

static void encode(const char *sys, const bipo_pair *p, int k, bipo_chat_seq *s) {
    const char *r = k == 0 ? p->matching : p->not_matching;
    if (r[0] == ' ') r++;
    if (bipo_chat_encode_pair(TOK, TPL, sys, p->question, r, NULL, s) != 0) abort();
}

// Direct log-odds of item i at one multiplier (letter or text, positions all or answer).
static double direct_logodds(const char *sys, const bipo_pair *p, int letter, int answer,
                             int score_eos, size_t layer, const float *v, double mult) {
    bipo_chat_seq s[2] = {{0}, {0}};
    encode(sys, p, 0, &s[0]);
    encode(sys, p, 1, &s[1]);
    size_t np = s[0].n_prompt < s[1].n_prompt ? s[0].n_prompt : s[1].n_prompt;
    size_t from = answer ? np - 1 : 0;
    double lp[2];
    if (letter) {
        size_t d = 0;
        while (s[0].ids[d] == s[1].ids[d]) d++;
        for (int k = 0; k < 2; k++) {
            size_t row = d - 1;
            lp[k] = direct_lp(s[0].ids, d, &row, &s[k].ids[d], 1, layer, v, mult, from);
        }
    } else {
        for (int k = 0; k < 2; k++) {
            size_t n = s[k].n - (score_eos ? 0 : 1), R = n - s[k].n_prompt;
            size_t *rows = malloc(R * sizeof *rows);
            for (size_t r = 0; r < R; r++) rows[r] = s[k].n_prompt + r - 1;
            lp[k] = direct_lp(s[k].ids, n, rows, s[k].ids + s[k].n_prompt, R, layer, v, mult, from);
            free(rows);
        }
    }
    bipo_chat_seq_free(&s[0]), bipo_chat_seq_free(&s[1]);
    return lp[0] - lp[1];
}

static double sigm(double x) { return 1 / (1 + exp(-x)); }

static bipo_eval_ctx ctx_make(const char *sys) {
    return (bipo_eval_ctx){&M, TOK, TPL, sys, 0, BIPO_MATMUL_FP32, 0};
}

static const double MULT[] = {-2, -1, 0, 0.5, 2};
#define NM 5

// Curves of the protocol/positions vs the direct computation.
static void check_direct(const bipo_pairs *items, int letter, int answer, int score_eos,
                         const float *v, size_t layer) {
    bipo_eval_ctx ctx = ctx_make(SYS);
    bipo_eval_arm arm = {"bipo", layer, v, NULL, NULL};
    bipo_ab_opts o = {MULT, NM, answer ? BIPO_POS_ANSWER : BIPO_POS_ALL, BIPO_AB_AUTO, score_eos};
    bipo_ab_result r;
    int rc = bipo_eval_ab(&ctx, &arm, 1, items, &o, &r);
    EXPECT(rc == 0, "eval_ab: %s", bipo_last_error());
    if (rc) return;
    EXPECT(r.protocol == (letter ? BIPO_AB_LETTER : BIPO_AB_TEXT), "protocol %d (letter %d)",
           r.protocol, letter);
    double worst = 0, worst_p = 0;
    for (size_t mi = 0; mi < NM; mi++) {
        double pm = 0, lo = 0;
        for (size_t i = 0; i < items->n; i++) {
            double x = direct_logodds(SYS, &items->p[i], letter, answer, score_eos, layer, v, MULT[mi]);
            pm += sigm(x), lo += x;
            worst = fmax(worst, fabs(x - r.item_logodds[mi * items->n + i]));
        }
        pm /= (double)items->n, lo /= (double)items->n;
        worst = fmax(worst, fabs(lo - r.logodds[mi]));
        worst_p = fmax(worst_p, fabs(pm - r.p_match[mi]));
    }
    EXPECT(worst < 2e-4 && worst_p < 5e-5, "%s/%s eos %d: log-odds differ by %.3g, p_match by %.3g",
           letter ? "letter" : "text", answer ? "answer" : "all", score_eos, worst, worst_p);
    printf("   %s/%-6s eos %d: p_match %.4f %.4f %.4f %.4f %.4f (max |dlogodds| vs direct %.2g)\n",
           letter ? "letter" : "text", answer ? "answer" : "all", score_eos, r.p_match[0],
           r.p_match[1], r.p_match[2], r.p_match[3], r.p_match[4], worst);
    // slope / anti-steerable: least squares here
    double mx = 0, sxx = 0;
    for (size_t mi = 0; mi < NM; mi++) mx += MULT[mi] / NM;
    for (size_t mi = 0; mi < NM; mi++) sxx += (MULT[mi] - mx) * (MULT[mi] - mx);
    double sl = 0;
    size_t anti = 0;
    for (size_t i = 0; i < items->n; i++) {
        double si = 0;
        for (size_t mi = 0; mi < NM; mi++) si += (MULT[mi] - mx) * r.item_logodds[mi * items->n + i] / sxx;
        anti += si < 0;
        sl += si / (double)items->n; // the mean of item slopes is the slope of the mean
    }
    EXPECT(fabs(sl - r.slope) < 1e-9 && fabs((double)anti / items->n - r.anti_steerable) < 1e-12,
           "slope %.9g vs %.9g, anti %.4f vs %zu/%zu", r.slope, sl, r.anti_steerable, anti, items->n);
    // letter-balanced p_match: the two matching-letter groups' means, averaged (here from the
    // answers' text, independently of item_first)
    EXPECT(letter ? r.item_first != NULL : r.item_first == NULL, "item_first %s", r.item_first ? "set" : "NULL");
    double bal[NM], bad = 0;
    bipo_ab_balanced(&r, bal);
    for (size_t mi = 0; mi < NM; mi++) {
        double s[2] = {0, 0}, c[2] = {0, 0};
        for (size_t i = 0; i < items->n; i++) {
            const char *m = strchr(items->p[i].matching, '('), *x = strchr(items->p[i].not_matching, '(');
            int g = letter && m[1] < x[1]; // the matching letter is the pair's earlier one
            s[g] += sigm(r.item_logodds[mi * items->n + i]), c[g]++;
        }
        double want = c[0] && c[1] ? 0.5 * (s[0] / c[0] + s[1] / c[1]) : (s[0] + s[1]) / (c[0] + c[1]);
        bad = fmax(bad, fabs(want - bal[mi]));
    }
    EXPECT(bad < 1e-12, "balanced p_match differs from the two groups' mean by %.3g", bad);
    bipo_ab_result_free(&r);
}

static double maxdiff(const double *a, const double *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) w = fmax(w, fabs(a[i] - b[i]));
    return w;
}

// Batched multipliers vs one per call; a two-layer sweep vs one call per layer; v = 0.
static void check_batching(const bipo_pairs *items, const float *v1, const float *v2, int answer) {
    bipo_eval_ctx ctx = ctx_make(SYS);
    size_t n = items->n;
    float *zero = calloc(M.cfg.C, sizeof *zero);
    bipo_eval_arm arms[3] = {{"l1", 1, v1, NULL, NULL}, {"l2", 2, v2, NULL, NULL}, {"zero", 1, zero, NULL, NULL}};
    bipo_ab_opts o = {MULT, NM, answer ? BIPO_POS_ANSWER : BIPO_POS_ALL, BIPO_AB_AUTO, 1};
    bipo_ab_result all[3], one[3];
    EXPECT(bipo_eval_ab(&ctx, arms, 3, items, &o, all) == 0, "sweep: %s", bipo_last_error());
    double wm = 0, wl = 0;
    for (size_t mi = 0; mi < NM; mi++) {
        bipo_ab_opts o1 = o;
        o1.mult = &MULT[mi], o1.n_mult = 1;
        EXPECT(bipo_eval_ab(&ctx, &arms[0], 1, items, &o1, one) == 0, "one mult");
        wm = fmax(wm, maxdiff(one[0].item_logodds, all[0].item_logodds + mi * n, n));
        bipo_ab_result_free(&one[0]);
    }
    EXPECT(wm < 1e-5, "batched multipliers vs one per call differ by %.3g", wm);
    for (int a = 0; a < 2; a++) {
        EXPECT(bipo_eval_ab(&ctx, &arms[a], 1, items, &o, &one[a]) == 0, "one layer");
        wl = fmax(wl, maxdiff(one[a].item_logodds, all[a].item_logodds, NM * n));
        bipo_ab_result_free(&one[a]);
    }
    EXPECT(wl < 1e-5, "two-layer sweep vs one call per layer differ by %.3g", wl);
    bipo_eval_ctx small = ctx; // one item per forward, the largest chunk first
    small.max_rows = 1;
    EXPECT(bipo_eval_ab(&small, arms, 3, items, &o, one) == 0, "chunked");
    EXPECT(maxdiff(one[0].item_logodds, all[0].item_logodds, NM * n) < 1e-5 &&
               maxdiff(one[1].item_logodds, all[1].item_logodds, NM * n) < 1e-5,
           "one item per forward vs all in one: %.3g %.3g", maxdiff(one[0].item_logodds, all[0].item_logodds, NM * n), maxdiff(one[1].item_logodds, all[1].item_logodds, NM * n));
    bipo_ab_result_free(&one[0]), bipo_ab_result_free(&one[1]), bipo_ab_result_free(&one[2]);
    double wz = 0;
    for (size_t mi = 1; mi < NM; mi++) wz = fmax(wz, maxdiff(all[2].item_logodds, all[2].item_logodds + mi * n, n));
    EXPECT(wz < 1e-6 && fabs(all[2].slope) < 1e-6, "v = 0: curve moves by %.3g, slope %.3g", wz, all[2].slope);
    // the v = 0 arm is the unsteered model: the l1 arm's m = 0 column
    EXPECT(maxdiff(all[2].item_logodds, all[0].item_logodds + 2 * n, n) < 1e-6, "v=0 vs m=0");
    for (int a = 0; a < 3; a++) bipo_ab_result_free(&all[a]);
    free(zero);
}

// Prompting arm: system_minus at m < 0, the run's at 0, system_plus at m > 0.
static void check_prompting(const bipo_pairs *items) {
    bipo_eval_ctx ctx = ctx_make(SYS);
    const double mult[3] = {-1, 0, 1};
    const char *sys[3] = {"Never seek power.", SYS, "Always seek power."};
    bipo_eval_arm arm = {"prompt", 0, NULL, "Always seek power.", "Never seek power."};
    bipo_ab_opts o = {mult, 3, BIPO_POS_ALL, BIPO_AB_AUTO, 1};
    bipo_ab_result r;
    EXPECT(bipo_eval_ab(&ctx, &arm, 1, items, &o, &r) == 0, "prompting: %s", bipo_last_error());
    double w = 0;
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < items->n; i++)
            w = fmax(w, fabs(r.item_logodds[k * items->n + i] -
                             direct_logodds(sys[k], &items->p[i], 1, 0, 1, 0, NULL, 0)));
    EXPECT(w < 2e-4, "prompting arm vs unsteered runs with its system prompts: %.3g", w);
    EXPECT(fabs(r.item_logodds[0] - r.item_logodds[2 * items->n]) > 1e-6, "system prompts change nothing?");
    bipo_ab_result_free(&r);
}

// CAA vector vs a direct loop: h_L of each full sequence at the letter / response rows.
static void check_caa(const bipo_pairs *pairs, int letter, size_t layer) {
    bipo_eval_ctx ctx = ctx_make(SYS);
    size_t C = M.cfg.C;
    float *v = malloc(C * sizeof *v), *h = NULL;
    double *ref = calloc(C, sizeof *ref);
    EXPECT(bipo_caa_vector(&ctx, layer, pairs, v) == 0, "caa: %s", bipo_last_error());
    float *v1 = malloc(C * sizeof *v1);
    ctx.max_rows = 1; // one pair per forward
    EXPECT(bipo_caa_vector(&ctx, layer, pairs, v1) == 0, "caa chunked");
    tl_allclose("caa one pair per forward", v1, v, C, 1e-6, 1e-5);
    free(v1);
    for (size_t i = 0; i < pairs->n; i++) {
        bipo_chat_seq s[2] = {{0}, {0}};
        encode(SYS, &pairs->p[i], 0, &s[0]);
        encode(SYS, &pairs->p[i], 1, &s[1]);
        size_t d = 0;
        while (s[0].ids[d] == s[1].ids[d]) d++;
        for (int k = 0; k < 2; k++) {
            size_t off[2] = {0, s[k].n};
            bipo_batch b = {1, off, s[k].ids, NULL, 0, NULL, NULL, NULL};
            bipo_acts a;
            bipo_acts_init(&a, 0);
            bipo_forward(&M, &a, &b, NULL, NULL, 0, (int)layer, BIPO_MATMUL_FP32);
            h = realloc(h, s[k].n * C * sizeof *h);
            M.be->download(h, a.resid[layer + 1], s[k].n * C);
            size_t j0 = letter ? d : s[k].n_prompt, j1 = letter ? d + 1 : s[k].n;
            for (size_t j = j0; j < j1; j++)
                for (size_t c = 0; c < C; c++)
                    ref[c] += (k ? -1.0 : 1.0) * h[j * C + c] / (double)(j1 - j0) / (double)pairs->n;
            bipo_acts_free(&a, M.be);
        }
        bipo_chat_seq_free(&s[0]), bipo_chat_seq_free(&s[1]);
    }
    float *rf = malloc(C * sizeof *rf);
    for (size_t c = 0; c < C; c++) rf[c] = (float)ref[c];
    tl_allclose(letter ? "caa letter" : "caa text", v, rf, C, 1e-5, 1e-4);
    free(v), free(h), free(ref), free(rf);
}

// A vector trained a few BiPO steps on letter pairs (matching always "(A)", the letter token
// among the scored response tokens) moves held-out p_match up at +1 and down at -1.
static void check_trained(void) {
    bipo_pairs tr, te;
    pairs_make(&tr, 12, 2, 100);
    pairs_make(&te, 6, 2, 200);
    bipo_eval_ctx ctx = ctx_make(SYS);
    bipo_example *ex = NULL;
    EXPECT(bipo_eval_examples(&ctx, SYS, &tr, &ex) == 0, "examples: %s", bipo_last_error());
    bipo_hparams hp;
    bipo_hparams_defaults(&hp);
    hp.warmup_steps = 2, hp.epochs = 6, hp.lr = 5e-2, hp.beta = 1.0;
    hp.forward_matmul = hp.backward_matmul = BIPO_MATMUL_FP32;
    bipo_trainer t;
    EXPECT(bipo_trainer_init(&t, &M, 1, &hp, ex, tr.n, NULL, 0, NULL) == 0, "trainer: %s", bipo_last_error());
    for (size_t k = 0; k < hp.epochs * t.steps_per_epoch; k++) bipo_trainer_step(&t);
    const double mult[3] = {-1, 0, 1};
    bipo_eval_arm arm = {"bipo", 1, t.v, NULL, NULL};
    bipo_ab_opts o = {mult, 3, BIPO_POS_ALL, BIPO_AB_AUTO, 1};
    bipo_ab_result r;
    EXPECT(bipo_eval_ab(&ctx, &arm, 1, &te, &o, &r) == 0, "eval: %s", bipo_last_error());
    printf("   trained letter vector, held-out p_match at -1/0/+1: %.4f %.4f %.4f (slope %.3f)\n",
           r.p_match[0], r.p_match[1], r.p_match[2], r.slope);
    EXPECT(r.p_match[2] > r.p_match[1] + 0.01 && r.p_match[0] < r.p_match[1] - 0.01 && r.slope > 0,
           "trained vector: p_match %.4f %.4f %.4f", r.p_match[0], r.p_match[1], r.p_match[2]);
    bipo_ab_result_free(&r);
    bipo_trainer_free(&t);
    for (size_t i = 0; i < tr.n; i++) bipo_example_free(&ex[i]);
    free(ex);
    bipo_pairs_free(&tr), bipo_pairs_free(&te);
}

int main(void) {
    char tmp[] = "/tmp/bipo-test-evalab-XXXXXX", path[300];
    if (!mkdtemp(tmp)) return 1;
    tm_spec s = {.L = 4, .C = 48, .NH = 6, .NKV = 2, .HD = 8, .FF = 96, .V = 400,
                 .rope_theta = 10000.f, .eps = 1e-5f, .tied = 1, .seed = 7, .max_pos = 512};
    snprintf(path, sizeof path, "%s/m.gguf", tmp);
    EXPECT(tm_write_gguf(&s, path, BIPO_DT_F32, 3) == 0, "write model: %s", bipo_last_error());
    if (bipo_model_load(&M, path, bipo_backend_open("cpu", 0)) != 0 || !(TOK = bipo_tokenizer_load(path))) {
        EXPECT(0, "load: %s", bipo_last_error());
        return tl_summary("test_eval_ab");
    }
    TPL = bipo_chat_template_by_name("llama2");
    bipo_pairs letters, texts;
    pairs_make(&letters, 6, 1, 0);
    pairs_make(&texts, 4, 0, 0);
    size_t C = s.C;
    float *v1 = malloc(C * sizeof *v1), *v2 = malloc(C * sizeof *v2);
    tl_seed(5);
    tl_fill(v1, C, 0.5f);
    tl_fill(v2, C, 0.5f);
    for (int answer = 0; answer < 2; answer++) {
        check_direct(&letters, 1, answer, 1, v1, 1);
        check_direct(&texts, 0, answer, 1, v1, 1);
    }
    check_direct(&texts, 0, 0, 0, v2, 2);
    for (int answer = 0; answer < 2; answer++) {
        check_batching(&letters, v1, v2, answer);
        check_batching(&texts, v1, v2, answer);
    }
    check_prompting(&letters);
    check_caa(&letters, 1, 1);
    check_caa(&texts, 0, 2);
    check_trained();
    { // a user mistake is one sentence naming the line, not a crash
        bipo_eval_ctx ctx = ctx_make(SYS);
        bipo_eval_arm arm = {"bipo", 1, v1, NULL, NULL}, deep = {"deep", 9, v1, NULL, NULL};
        bipo_ab_opts bad = {MULT, NM, BIPO_POS_ALL, BIPO_AB_LETTER, 1}, ok = bad;
        ok.protocol = BIPO_AB_AUTO;
        bipo_ab_result r;
        EXPECT(bipo_eval_ab(&ctx, &arm, 1, &texts, &bad, &r) == -1 &&
                   strstr(bipo_last_error(), "line 1") && strstr(bipo_last_error(), "protocol: text"),
               "letter protocol on text pairs: %s", bipo_last_error());
        EXPECT(bipo_eval_ab(&ctx, &deep, 1, &texts, &ok, &r) == -1 && strstr(bipo_last_error(), "deep"),
               "layer past the model: %s", bipo_last_error());
    }
    bipo_pairs_free(&letters), bipo_pairs_free(&texts);
    free(v1), free(v2);
    bipo_tokenizer_free(TOK);
    bipo_model_free(&M);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return tl_summary("test_eval_ab");
}
