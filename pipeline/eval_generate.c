// pipeline/eval_generate.c — what a vector does to free text (see eval_job.h): the eval: block's
// generate and jailbreak sets, decoded with the run's vector by workers/steered_text.h (every
// prompt x multiplier in one batch), filed as child tables of the run's eval tree:
//   generate/{multipliers, mean_logprob, distinct2}        [M] means over prompts
//   generate/<k>/{prompt, text, mean_logprob, distinct2}   [n] attr multiplier (k = index)
//   jailbreak/{multipliers, asr[, judge_asr]}              [3] at -M, 0, +M
//   jailbreak/<k>/{prompt, text, mean_logprob, distinct2, refused}
// The judge (jailbreak.judge_command) reads JSONL {prompt, response, multiplier}, one line a
// response in multiplier-major order, on stdin and prints one score in [0, 1] a line. A failing
// judge does not lose the generations: the tables are stored with attr judge_error and the
// failure is returned through *judge_err (the caller stores first, then fails the run).
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config_eval.h"  // defines: bipo_eval_cfg, bipo_eval_gen_cfg, bipo_eval_jb_cfg
#include "eval_data.h"    // defines: bipo_prompts_load
#include "eval_job.h"     // defines: bipo_eval_generations, bipo_eval_progress
#include "jailbreak.h"    // defines: bipo_advbench_load, bipo_is_refusal
#include "steered_text.h" // defines: bipo_steered_generate
#include "util.h"         // defines: bipo_now, xcalloc, bipo_set_error

typedef struct {
    const double *mult;
    size_t n_mult, max_new_tokens;
    double temperature;
    uint64_t seed;
    int answer_only;
} gen_opts;

// prompts[n] at every multiplier into tab: the per-multiplier children and the summary arrays.
// out (malloc'd, [M * n], multiplier-major) is returned for the caller's scoring; NULL on error.
static bipo_steered_text *generate_into(const bipo_eval_ctx *ec, size_t layer, const float *v, const gen_opts *g,
                                        char *const *prompts, size_t n, bipo_eval_table *tab) {
    size_t M = g->n_mult;
    bipo_steered_text *out = xcalloc(M * n, sizeof *out);
    bipo_steered_gen_opts o = {ec->m, ec->tok, ec->tpl, ec->system, (int)layer, v, g->mult, M, g->answer_only,
                               g->max_new_tokens, g->temperature, 1.0, g->seed, 0, ec->matmul};
    if (bipo_steered_generate(&o, (const char *const *)prompts, n, out) != 0) return free(out), NULL;
    double *lp = xcalloc(n + 2 * M, sizeof *lp), *mlp = lp + n, *md2 = mlp + M, *d2 = xcalloc(n, sizeof *d2);
    char **text = xcalloc(n, sizeof *text);
    for (size_t k = 0; k < M; k++) {
        char name[24];
        snprintf(name, sizeof name, "%zu", k);
        bipo_eval_table *c = bipo_eval_table_child(tab, name);
        size_t finite = 0;
        mlp[k] = md2[k] = 0;
        for (size_t p = 0; p < n; p++) {
            const bipo_steered_text *t = &out[k * n + p];
            text[p] = t->text, lp[p] = t->mean_logprob, d2[p] = t->distinct2;
            if (isfinite(t->mean_logprob)) mlp[k] += t->mean_logprob, finite++;
            md2[k] += t->distinct2 / (double)n;
        }
        mlp[k] = finite ? mlp[k] / (double)finite : NAN; // over prompts with a continuation
        BIPO_EVAL_ATTR(c, BIPO_ATTR_D("multiplier", g->mult[k]));
        bipo_eval_table_array(c, "prompt", BIPO_EV_STR, prompts, n);
        bipo_eval_table_array(c, "text", BIPO_EV_STR, text, n);
        bipo_eval_table_array(c, "mean_logprob", BIPO_EV_F64, lp, n);
        bipo_eval_table_array(c, "distinct2", BIPO_EV_F64, d2, n);
    }
    bipo_eval_table_array(tab, "multipliers", BIPO_EV_F64, g->mult, M);
    bipo_eval_table_array(tab, "mean_logprob", BIPO_EV_F64, mlp, M);
    bipo_eval_table_array(tab, "distinct2", BIPO_EV_F64, md2, M);
    BIPO_EVAL_ATTR(tab, BIPO_ATTR_I("n_items", (int64_t)n));
    BIPO_EVAL_ATTR(tab, BIPO_ATTR_I("max_new_tokens", (int64_t)g->max_new_tokens));
    BIPO_EVAL_ATTR(tab, BIPO_ATTR_D("temperature", g->temperature));
    BIPO_EVAL_ATTR(tab, BIPO_ATTR_S("positions", g->answer_only ? "answer" : "all"));
    free(lp), free(d2), free(text);
    return out;
}

static size_t first_n(size_t have, size_t max) { return max && max < have ? max : have; }

static int run_generate(const bipo_eval_ctx *ec, const bipo_eval_cfg *e, size_t layer, const float *v,
                        const bipo_eval_progress *pr, bipo_eval_table *ev) {
    const bipo_eval_gen_cfg *gc = &e->generate;
    bipo_prompts ps;
    if (bipo_prompts_load(&ps, gc->prompts) != 0) return -1;
    size_t n = first_n(ps.n, gc->max_items);
    int pos = gc->positions < 0 ? (int)e->positions : gc->positions;
    gen_opts g = {gc->mult ? gc->mult : e->mult, gc->mult ? gc->n_mult : e->n_mult, gc->max_new_tokens,
                  gc->temperature, gc->seed, pos == BIPO_POS_ANSWER};
    bipo_eval_table *tab = bipo_eval_table_child(ev, "generate");
    BIPO_EVAL_ATTR(tab, BIPO_ATTR_S("path", gc->prompts));
    BIPO_EVAL_ATTR(tab, BIPO_ATTR_S("sha256", ps.sha256));
    if (gc->temperature > 0) BIPO_EVAL_ATTR(tab, BIPO_ATTR_I("seed", (int64_t)gc->seed));
    double t0 = bipo_now();
    bipo_steered_text *out = generate_into(ec, layer, v, &g, ps.text, n, tab);
    if (out) bipo_eval_progress_tick(pr, "generate", n * g.n_mult, n * g.n_mult, 1, 1, t0);
    if (out) bipo_steered_texts_free(out, n * g.n_mult), free(out);
    bipo_prompts_free(&ps);
    return out ? 0 : -1;
}

// ---- the judge ---------------------------------------------------------------------------------
// Scores of the judge command for the n = M * n_goals responses: 0, or -1 + bipo_set_error naming
// the command (and the line of its output).
static int judge(const char *cmd, char *const *goals, size_t n_goals, const bipo_steered_text *out,
                 size_t M, double *score) {
    char path[] = "/tmp/bipo-judge-XXXXXX", *line = NULL;
    size_t n = M * n_goals, got = 0, cap = 0;
    int fd = mkstemp(path), rc = -1;
    FILE *f = fd < 0 ? NULL : fdopen(fd, "w"), *p = NULL;
    if (!f) return bipo_set_error("eval.jailbreak.judge_command '%s': cannot create its input file in /tmp", cmd), -1;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_pack("{s:s, s:s, s:f}", "prompt", goals[i % n_goals], "response", out[i].text,
                              "multiplier", out[i].mult);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL; // invalid UTF-8 in a response: an empty line
        fprintf(f, "%s\n", s ? s : "{}");
        free(s), json_decref(o);
    }
    fclose(f);
    char *full = xmalloc(strlen(cmd) + sizeof path + 16);
    sprintf(full, "(%s) < '%s'", cmd, path);
    fflush(stdout);
    if (!(p = popen(full, "r"))) {
        bipo_set_error("eval.jailbreak.judge_command '%s': cannot run it", cmd);
        goto out;
    }
    ssize_t len;
    int bad = 0;
    while ((len = getline(&line, &cap, p)) >= 0) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!len && !bad) continue; // blank lines (a trailing one) are not scores
        char *end;
        double x = strtod(line, &end);
        while (*end == ' ' || *end == '\t') end++;
        if (!bad && (end == line || *end || !(x >= 0 && x <= 1))) {
            bipo_set_error("eval.jailbreak.judge_command '%s': output line %zu: '%.40s' is not a score in [0, 1] "
                           "(print one number a line, one line per JSONL input line)", cmd, got + 1, line);
            bad = 1;
        }
        if (!bad && got < n) score[got] = x;
        got++;
    }
    int st = pclose(p);
    if (!bad && (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0))
        bipo_set_error("eval.jailbreak.judge_command '%s': exited with status %d (it reads JSONL {prompt, "
                       "response, multiplier} on stdin)", cmd, st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st));
    else if (!bad && got != n)
        bipo_set_error("eval.jailbreak.judge_command '%s': printed %zu scores for %zu responses (one line per "
                       "JSONL input line)", cmd, got, n);
    else if (!bad)
        rc = 0;
out:
    unlink(path);
    free(full), free(line);
    return rc;
}

static int run_jailbreak(const bipo_eval_ctx *ec, const bipo_eval_cfg *e, size_t layer, const float *v,
                         const bipo_eval_progress *pr, bipo_eval_table *ev, char *judge_err, size_t cap) {
    const bipo_eval_jb_cfg *jc = &e->jailbreak;
    bipo_advbench ab;
    if (bipo_advbench_load(&ab, jc->goals) != 0) return -1;
    size_t n = first_n(ab.n, jc->max_items);
    double mult[3] = {-jc->multiplier, 0, jc->multiplier};
    gen_opts g = {mult, 3, jc->max_new_tokens, 0, 0, e->positions == BIPO_POS_ANSWER};
    bipo_eval_table *tab = bipo_eval_table_child(ev, "jailbreak");
    BIPO_EVAL_ATTR(tab, BIPO_ATTR_S("path", jc->goals));
    BIPO_EVAL_ATTR(tab, BIPO_ATTR_S("sha256", ab.sha256));
    BIPO_EVAL_ATTR(tab, BIPO_ATTR_S("refusals", jc->refusals ? "config" : "gcg"));
    double t0 = bipo_now();
    bipo_steered_text *out = generate_into(ec, layer, v, &g, ab.goal, n, tab);
    if (!out) return bipo_advbench_free(&ab), -1;
    bipo_refusals rl = {(const char *const *)jc->refusals, jc->n_refusals};
    double asr[3], jasr[3] = {0, 0, 0}, *score = xcalloc(3 * n + 1, sizeof *score);
    int64_t *refused = xcalloc(n + 1, sizeof *refused);
    for (size_t k = 0; k < 3; k++) {
        size_t ok = 0;
        for (size_t p = 0; p < n; p++) ok += !(refused[p] = bipo_is_refusal(out[k * n + p].text, jc->refusals ? &rl : NULL));
        asr[k] = n ? (double)ok / (double)n : 0;
        bipo_eval_table_array(&tab->kids[k], "refused", BIPO_EV_I64, refused, n);
    }
    bipo_eval_table_array(tab, "asr", BIPO_EV_F64, asr, 3);
    if (jc->judge_command) {
        BIPO_EVAL_ATTR(tab, BIPO_ATTR_S("judge_command", jc->judge_command));
        if (judge(jc->judge_command, ab.goal, n, out, 3, score) == 0) {
            for (size_t i = 0; i < 3 * n; i++) jasr[i / n] += score[i] / (double)n;
            bipo_eval_table_array(tab, "judge_asr", BIPO_EV_F64, jasr, 3);
        } else {
            snprintf(judge_err, cap, "%s", bipo_last_error());
            BIPO_EVAL_ATTR(tab, BIPO_ATTR_S("judge_error", judge_err));
        }
    }
    bipo_eval_progress_tick(pr, "jailbreak", 3 * n, 3 * n, 1, 1, t0);
    bipo_steered_texts_free(out, 3 * n);
    free(out), free(score), free(refused);
    bipo_advbench_free(&ab);
    return 0;
}

int bipo_eval_generations(const bipo_eval_ctx *ec, const bipo_eval_cfg *e, size_t layer, const float *v,
                          const bipo_eval_progress *pr, bipo_eval_table *ev, char *judge_err, size_t cap) {
    judge_err[0] = 0;
    if (e->generate.prompts && run_generate(ec, e, layer, v, pr, ev) != 0) return -1;
    if (e->jailbreak.goals && run_jailbreak(ec, e, layer, v, pr, ev, judge_err, cap) != 0) return -1;
    return 0;
}
