// tests/test_eval_pipe.c — the pipeline side of evaluation without a model: the eval: block
// (good values, every bad input as one file:line:column message), the result tables' round
// trip through the library (under a run and at a library path, replacing on rewrite, the
// settings hash) and through the MSG_EVAL message. Prints "test_eval_pipe: N passed, M failed".
#define _GNU_SOURCE // mkdtemp
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_eval.h"
#include "eval_job.h"
#include "store_eval.h"
#include "testlib.h"
#include "util.h"

#define BASE "model: {path: m.gguf, id: m1}\nbehavior: {name: b, data: d.csv}\nlayer: 1\ntrain: {seed: 9}\n"

static void test_good(void) {
    const char *text = BASE
        "eval:\n"
        "  multipliers: [-1, 0, 0.5, 2]\n"
        "  positions: answer\n"
        "  protocol: letter\n"
        "  methods: [caa, bipo]\n"
        "  max_items: 7\n"
        "  test_data: t.csv\n"
        "  split_seed: 5\n"
        "  prompt: {plus: P, minus: M}\n"
        "  prompts: {b: {plus: BP}}\n"
        "  mmlu: {path: mm.csv, max_items: 3, multipliers: [-1, 0, 1, 3]}\n"
        "  truthfulqa: {path: tq.csv}\n"
        "  neutral_text: {path: n.txt, multipliers: [0, 2]}\n"
        "  compose:\n"
        "    - name: c1\n"
        "      terms: [{behavior: b, layer: 2, method: caa, multiplier: -0.5}, {behavior: b, layer: 2}]\n"
        "  transfer:\n"
        "    - {name: t1, from: {model: other, behavior: b, layer: 3, method: caa_norm_matched}, to: {model: m1}}\n";
    bipo_config_file c;
    int rc = bipo_config_parse_string(&c, text, "conf/run.yaml");
    EXPECT(rc == 0, "good config: %s", bipo_last_error());
    if (rc) return;
    const bipo_eval_cfg *e = c.eval;
    EXPECT(e && e->n_mult == 4 && e->mult[2] == 0.5 && e->mult[3] == 2, "multipliers");
    EXPECT(e->positions == BIPO_POS_ANSWER && e->protocol == BIPO_AB_LETTER, "positions/protocol");
    EXPECT(e->methods == (BIPO_EVAL_CAA | BIPO_EVAL_BIPO), "methods %u", e->methods);
    EXPECT(e->max_items == 7 && !strcmp(e->test_data, "conf/t.csv"), "max_items/test_data '%s'", e->test_data);
    EXPECT(bipo_config_split_seed(&c) == 5, "split_seed");
    const char *p, *m;
    bipo_eval_prompts_for(e, "b", &p, &m);
    EXPECT(!strcmp(p, "BP") && !strcmp(m, "M"), "per-behavior prompt over the eval-wide one: %s %s", p, m);
    bipo_eval_prompts_for(e, "zz", &p, &m);
    EXPECT(!strcmp(p, "P"), "eval-wide prompt");
    EXPECT(!strcmp(e->mmlu.path, "conf/mm.csv") && e->mmlu.max_items == 3 && e->mmlu.n_mult == 4 &&
               e->mmlu.mult[3] == 3, "mmlu");
    EXPECT(!strcmp(e->truthfulqa.path, "conf/tq.csv") && !e->truthfulqa.mult, "truthfulqa (default multipliers)");
    EXPECT(!strcmp(e->neutral.path, "conf/n.txt") && e->neutral.n_mult == 2 && e->neutral.mult[1] == 2,
           "neutral_text as a mapping");
    EXPECT(e->n_compose == 1 && e->compose[0].n_terms == 2 && e->compose[0].terms[0].method == BIPO_EVAL_CAA &&
               e->compose[0].terms[0].multiplier == -0.5 && e->compose[0].terms[1].multiplier == 1 &&
               !strcmp(e->compose[0].model, "m1") && !strcmp(e->compose[0].behavior, "b"),
           "compose");
    EXPECT(e->n_transfer == 1 && e->transfer[0].from_layer == 3 && e->transfer[0].to_layers.n == 1 &&
               e->transfer[0].to_layers.v[0] == 3 && e->transfer[0].from_method == BIPO_EVAL_CAA_NORM,
           "transfer (to.layers defaults to from.layer)");
    char h1[65], h2[65], h3[65];
    bipo_eval_settings_hash(e, "b", "data1", h1);
    bipo_eval_settings_hash(e, "b", "data2", h2);
    bipo_eval_settings_hash(e, "zz", "data1", h3);
    EXPECT(strlen(h1) == 64 && strcmp(h1, h2) && strcmp(h1, h3), "settings hash covers items and prompts");
    // ... and the knowledge sets: max_items, a multiplier, the path each change it
    bipo_eval_cfg *ew = (bipo_eval_cfg *)e;
    char hk[65];
    ew->mmlu.max_items = 4;
    bipo_eval_settings_hash(e, "b", "data1", hk);
    EXPECT(strcmp(hk, h1), "mmlu.max_items in the settings hash");
    ew->mmlu.max_items = 3, ew->neutral.mult[1] = 2.5;
    bipo_eval_settings_hash(e, "b", "data1", hk);
    EXPECT(strcmp(hk, h1), "neutral_text multipliers in the settings hash");
    ew->neutral.mult[1] = 2, ew->truthfulqa.path[5] = 'X';
    bipo_eval_settings_hash(e, "b", "data1", hk);
    EXPECT(strcmp(hk, h1), "truthfulqa path in the settings hash");
    ew->truthfulqa.path[5] = 't';
    bipo_eval_settings_hash(e, "b", "data1", hk);
    EXPECT(!strcmp(hk, h1), "same settings, same hash");
    bipo_config_free(&c);
    // defaults, and the split seed = train.seed without eval
    EXPECT(bipo_config_parse_string(&c, BASE "eval: {}\n", "r.yaml") == 0, "eval: {}");
    EXPECT(c.eval && c.eval->n_mult == 7 && c.eval->mult[0] == -2 && c.eval->methods == 15 &&
               c.eval->protocol == BIPO_AB_AUTO && bipo_config_split_seed(&c) == 9,
           "defaults");
    bipo_config_free(&c);
    EXPECT(bipo_config_parse_string(&c, BASE, "r.yaml") == 0 && !c.eval && bipo_config_split_seed(&c) == 9,
           "no eval block");
    bipo_config_free(&c);
}

static void bad(const char *what, const char *evaltext, const char *loc, const char *problem) {
    char text[2048];
    snprintf(text, sizeof text, BASE "eval:\n%s", evaltext);
    bipo_config_file c;
    if (bipo_config_parse_string(&c, text, "conf/run.yaml") == 0) {
        EXPECT(0, "%s: accepted but should fail", what);
        bipo_config_free(&c);
        return;
    }
    const char *e = bipo_last_error();
    printf("   %-28s -> %s\n", what, e);
    EXPECT(strstr(e, loc) != NULL, "%s: error '%s' lacks '%s'", what, e, loc);
    EXPECT(strstr(e, problem) != NULL, "%s: error '%s' lacks '%s'", what, e, problem);
}

static void test_bad(void) {
    printf("bad eval blocks:\n"); // BASE is 4 lines: eval: is line 5, its first key line 6
    bad("unknown key, close", "  multiplier: [1, 2]\n", "run.yaml:6:3: eval.multiplier", "did you mean 'multipliers'?");
    bad("unknown key, far", "  zzz: 1\n", "run.yaml:6:3: eval.zzz", "known here: multipliers");
    bad("one multiplier", "  multipliers: [1]\n", "run.yaml:6:16: eval.multipliers", "at least 2");
    bad("multiplier twice", "  multipliers: [1, 2, 1]\n", "run.yaml:6:23: eval.multipliers[2]", "listed twice");
    bad("multiplier not a number", "  multipliers: [1, x]\n", "run.yaml:6:20: eval.multipliers[1]", "expected a number");
    bad("bad positions", "  positions: some\n", "run.yaml:6:14: eval.positions", "expected one of all|answer");
    bad("bad method", "  methods: [bipo, steer]\n", "run.yaml:6:19: eval.methods[1]", "expected one of bipo|caa");
    bad("negative max_items", "  max_items: -1\n", "run.yaml:6:14: eval.max_items", "must be >= 0");
    bad("prompts: unknown behavior", "  prompts: {nob: {plus: x}}\n", "run.yaml:6:13: eval.prompts.nob",
        "not a behavior of this config (behaviors: b)");
    bad("prompt: unknown key", "  prompt: {plus: a, minis: b}\n", "run.yaml:6:21: eval.prompt.minis", "did you mean 'minus'");
    bad("mmlu without path", "  mmlu: {max_items: 3}\n", "run.yaml:6:9: eval.mmlu.path", "missing");
    bad("mmlu multiplier twice", "  mmlu: {path: a.csv, multipliers: [1, 1]}\n",
        "run.yaml:6:40: eval.mmlu.multipliers[1]", "listed twice");
    bad("neutral_text: no max_items", "  neutral_text: {path: a.txt, max_items: 3}\n",
        "run.yaml:6:31: eval.neutral_text.max_items", "known here");
    bad("compose: terms at two layers",
        "  compose:\n    - name: c\n      terms: [{behavior: b, layer: 1}, {behavior: b, layer: 2}]\n",
        "run.yaml:8:40: eval.compose[0].terms[1].layer", "same layer");
    bad("compose: prompt is no vector",
        "  compose:\n    - name: c\n      terms: [{behavior: b, layer: 1, method: prompt}]\n",
        "run.yaml:8:47: eval.compose[0].terms[0].method", "expected one of bipo|caa|caa_norm_matched");
    bad("compose: duplicate name",
        "  compose:\n    - {name: c, terms: [{behavior: b, layer: 1}]}\n    - {name: c, terms: [{behavior: b, layer: 1}]}\n",
        "run.yaml:8:7: eval.compose[1].name", "also the name of eval.compose[0]");
    bad("transfer: to an unknown model",
        "  transfer:\n    - {name: t, from: {model: x, behavior: b, layer: 1}, to: {model: nope}}\n",
        "run.yaml:7:70: eval.transfer[0].to.model", "not a model id of this config (models: m1)");
    bad("transfer: from without layer",
        "  transfer:\n    - {name: t, from: {model: x, behavior: b}, to: {model: m1}}\n",
        "run.yaml:7:23: eval.transfer[0].from.layer", "missing");
}

// ---- tables: store and message round trips --------------------------------------------------------
static void sample(bipo_eval_table *t, double k) {
    bipo_eval_table_init(t, "eval");
    BIPO_EVAL_ATTR(t, BIPO_ATTR_S("settings_hash", "abc"));
    BIPO_EVAL_ATTR(t, BIPO_ATTR_I("n_items", 3));
    bipo_eval_table *ab = bipo_eval_table_child(t, "ab"), *arm = bipo_eval_table_child(ab, "bipo");
    double m[3] = {-1, 0, 1}, p[3] = {0.25 * k, 0.5, 0.75};
    bipo_eval_table_array(arm, "multipliers", BIPO_EV_F64, m, 3);
    bipo_eval_table_array(arm, "p_match", BIPO_EV_F64, p, 3);
    BIPO_EVAL_ATTR(arm, BIPO_ATTR_D("logodds_slope", 1.5 * k));
    int64_t idx[2] = {4, 9};
    bipo_eval_table_array(bipo_eval_table_child(t, "split"), "test_indices", BIPO_EV_I64, idx, 2);
}

static int tables_equal(const bipo_eval_table *a, const bipo_eval_table *b) {
    if (strcmp(a->name, b->name) || a->n_arrays != b->n_arrays || a->n_kids != b->n_kids || a->n_attrs != b->n_attrs)
        return 0;
    for (size_t i = 0; i < a->n_attrs; i++) {
        const bipo_attr *x = &a->attrs[i], *y = bipo_eval_attr_get(b->attrs, b->n_attrs, x->key);
        if (!y || y->type != x->type || (x->type == BIPO_ATTR_STR ? strcmp(x->s, y->s) : x->type == BIPO_ATTR_INT ? x->i != y->i : x->d != y->d))
            return 0;
    }
    for (size_t i = 0; i < a->n_arrays; i++) {
        const bipo_eval_array *x = &a->arrays[i], *y = bipo_eval_table_get(b, x->name);
        if (!y || y->type != x->type || y->n != x->n || memcmp(x->x, y->x, x->n * (x->type == BIPO_EV_F32 ? 4 : 8)))
            return 0;
    }
    for (size_t i = 0; i < a->n_kids; i++) {
        const bipo_eval_table *y = bipo_eval_table_find(b, a->kids[i].name);
        if (!y || !tables_equal(&a->kids[i], y)) return 0;
    }
    return 1;
}

static void test_store(void) {
    char dir[] = "/tmp/bipo-evalpipe-XXXXXX", path[300], rp[600], h[65];
    EXPECT(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/lib.h5", dir);
    bipo_store *s = bipo_store_open(path, BIPO_STORE_WRITE);
    EXPECT(s != NULL, "open: %s", bipo_last_error());
    if (!s) return;
    float v[4] = {1, 2, 3, 4}, loss[1] = {0.5f};
    bipo_run_data d = {.C = 4, .vector = v, .loss = loss, .n_steps = 1};
    bipo_model_info mi = {"x", "llama", "fp", "F32", 4, 2};
    bipo_job_key k = {"m1", "b", 1, "0123456789abcdef0123"};
    char run[BIPO_NAME_MAX];
    EXPECT(bipo_store_write_run(s, &k, &mi, NULL, &d, NULL, 0, run) == 0, "write run: %s", bipo_last_error());
    bipo_store_run_path(rp, sizeof rp, "m1", "b", 1, run);
    EXPECT(bipo_store_eval_hash(s, rp, h) == 0, "no eval yet");
    bipo_eval_table t[2];
    sample(&t[0], 1);
    bipo_eval_table_init(&t[1], ".");
    float caa[4] = {0.5f, -1, 2, 0};
    bipo_eval_array *a = bipo_eval_table_array(&t[1], "caa", BIPO_EV_F32, caa, 4);
    bipo_eval_table_attr(&a->attrs, &a->n_attrs, BIPO_ATTR_S("method", "caa"));
    bipo_eval_where w = {&k, NULL};
    EXPECT(bipo_store_write_eval(s, &w, t, 2) == 0, "write eval: %s", bipo_last_error());
    bipo_eval_table back;
    char ep[700];
    snprintf(ep, sizeof ep, "%s/eval", rp);
    EXPECT(bipo_store_read_eval(s, ep, &back) == 1 && tables_equal(&t[0], &back), "eval tree reads back equal");
    bipo_eval_table_free(&back);
    EXPECT(bipo_store_eval_hash(s, rp, h) == 1 && !strcmp(h, "abc"), "settings hash '%s'", h);
    size_t n = 0;
    snprintf(ep, sizeof ep, "%s/caa", rp);
    float *c2 = bipo_store_read_f32(s, ep, &n);
    EXPECT(c2 && n == 4 && !memcmp(c2, caa, sizeof caa), "CAA vector beside the run's vector");
    free(c2);
    EXPECT(bipo_store_check(s) == 0, "library still consistent: %s", bipo_last_error());
    // rewrite replaces (no stale arrays), library-path target creates its groups
    bipo_eval_table t2;
    sample(&t2, 2);
    EXPECT(bipo_store_write_eval(s, &w, &t2, 1) == 0, "rewrite");
    snprintf(ep, sizeof ep, "%s/eval", rp);
    EXPECT(bipo_store_read_eval(s, ep, &back) == 1 && tables_equal(&t2, &back), "rewritten tree replaces the old one");
    bipo_eval_table_free(&back);
    bipo_eval_where lw = {NULL, "eval/compose"};
    EXPECT(bipo_store_write_eval(s, &lw, &t2, 1) == 0, "write at a library path");
    EXPECT(bipo_store_read_eval(s, "eval/compose/eval", &back) == 1 && tables_equal(&t2, &back), "library path reads back");
    bipo_eval_table_free(&back);
    // a run that does not exist: error, nothing written
    bipo_job_key k2 = {"m1", "b", 2, "0123456789abcdef0123"};
    bipo_eval_where w2 = {&k2, NULL};
    EXPECT(bipo_store_write_eval(s, &w2, &t2, 1) != 0 && strstr(bipo_last_error(), "no complete run"),
           "eval of a missing run refused: %s", bipo_last_error());
    bipo_store_close(s);
    // the message: encode, skip the type word as rank 0's serve() does, decode, compare
    bipo_blob b = {0};
    blob_put_eval(&b, &w, t, 2);
    b.at = 0;
    EXPECT(blob_get_u64(&b) == MSG_EVAL, "message type");
    bipo_job_key *kk;
    char *pp;
    bipo_eval_table *tt;
    size_t nt;
    blob_get_eval(&b, &kk, &pp, &tt, &nt);
    EXPECT(kk && !pp && !strcmp(kk->model_id, "m1") && kk->layer == 1 && !strcmp(kk->config_hash, k.config_hash),
           "key round trip");
    EXPECT(nt == 2 && tables_equal(&t[0], &tt[0]) && tables_equal(&t[1], &tt[1]), "tables round trip");
    EXPECT(b.at == b.n, "whole message consumed (%zu of %zu)", b.at, b.n);
    bipo_eval_msg_free(kk, pp, tt, nt);
    blob_free(&b);
    blob_put_eval(&b, &lw, &t2, 1);
    b.at = 8;
    blob_get_eval(&b, &kk, &pp, &tt, &nt);
    EXPECT(!kk && pp && !strcmp(pp, "eval/compose") && nt == 1 && tables_equal(&t2, &tt[0]), "path message round trip");
    bipo_eval_msg_free(kk, pp, tt, nt);
    blob_free(&b);
    bipo_eval_table_free(&t[0]), bipo_eval_table_free(&t[1]), bipo_eval_table_free(&t2);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    EXPECT(system(cmd) == 0, "cleanup");
}

int main(void) {
    test_good();
    test_bad();
    test_store();
    return tl_summary("test_eval_pipe");
}
