// pipeline/config_eval.c — the `eval:` block (see config_eval.h), read with config.c's
// readers (config_yaml.h) so its messages look like every other section's.
#include "config_eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_yaml.h" // defines: bipo_yaml_* (config.c's readers)
#include "util.h"        // defines: xcalloc, xstrdup, bipo_sha256_*

typedef struct bipo_yaml_ctx Y;
#define FAIL_AT(n, key, ...) bipo_yaml_fail(x, (n), (key), __VA_ARGS__)

static const char *const METHODS[] = {"bipo", "caa", "caa_norm_matched", "prompt", NULL};

const char *bipo_eval_method_name(unsigned bit) {
    for (int i = 0; METHODS[i]; i++)
        if (bit == 1u << i) return METHODS[i];
    return "?";
}

static char *key_of(char *buf, size_t n, const char *pre, const char *name) {
    snprintf(buf, n, "%s.%s", pre, name);
    return buf;
}
#define K(pre, name) key_of((char[192]){0}, 192, pre, name)

// A non-empty YAML list: its items and count, or -1 after the error.
static long list_of(Y *x, yaml_node_t *v, const char *key, const char *what, yaml_node_item_t **items) {
    char b[96];
    if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.start == v->data.sequence.items.top)
        return FAIL_AT(v, key, "expected a non-empty list of %s, got %s", what,
                       v->type == YAML_SEQUENCE_NODE ? "an empty list" : bipo_yaml_what(v, b, sizeof b));
    *items = v->data.sequence.items.start;
    return (long)(v->data.sequence.items.top - v->data.sequence.items.start);
}

static int has_behavior(const bipo_config_file *c, const char *name) {
    for (size_t i = 0; i < c->n_behaviors; i++)
        if (!strcmp(c->behaviors[i].name, name)) return 1;
    return 0;
}
static int has_model(const bipo_config_file *c, const char *id) {
    for (size_t i = 0; i < c->n_models; i++)
        if (!strcmp(c->models[i].id, id)) return 1;
    return 0;
}
// name must be a behavior (or model) of the config: else an error listing them.
static int known_name(Y *x, yaml_node_t *v, const char *key, const bipo_config_file *c, int model,
                      const char *name) {
    if (model ? has_model(c, name) : has_behavior(c, name)) return 0;
    char list[400] = "";
    size_t n = model ? c->n_models : c->n_behaviors;
    for (size_t i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 model ? c->models[i].id : c->behaviors[i].name);
    return FAIL_AT(v, key, "'%s' is not a %s of this config (%s: %s)", name, model ? "model id" : "behavior",
                   model ? "models" : "behaviors", list);
}

// A method name; vectors_only: "prompt" is refused (compose/transfer need a vector).
static int read_method(Y *x, yaml_node_t *v, const char *key, int vectors_only, unsigned *bit) {
    int i;
    static const char *const VEC[] = {"bipo", "caa", "caa_norm_matched", NULL};
    if (bipo_yaml_choice(x, v, key, vectors_only ? VEC : METHODS, &i)) return -1;
    *bit = 1u << i;
    return 0;
}

static int read_prompt(Y *x, yaml_node_t *v, const char *key, bipo_eval_prompt_cfg *p) {
    static const char *const PK[] = {"plus", "minus", NULL};
    yaml_node_t *s;
    if (bipo_yaml_check_keys(x, v, key, PK)) return -1;
    if ((s = bipo_yaml_get(x, v, "plus")) && bipo_yaml_str(x, s, K(key, "plus"), 1, &p->plus)) return -1;
    if ((s = bipo_yaml_get(x, v, "minus")) && bipo_yaml_str(x, s, K(key, "minus"), 1, &p->minus)) return -1;
    return 0;
}

// A list of distinct numbers at key (at least min_n of them) into *out / *n.
static int read_multipliers(Y *x, yaml_node_t *v, const char *key, size_t min_n, double **out, size_t *n_out) {
    yaml_node_item_t *it = NULL;
    long n = list_of(x, v, key, "numbers like [-2, -1, 0, 1, 2]", &it);
    if (n < 0) return -1;
    double *m = *out = xcalloc((size_t)n, sizeof *m);
    for (long i = 0; i < n; i++) {
        char k[192];
        snprintf(k, sizeof k, "%.160s[%ld]", key, i);
        yaml_node_t *mi = bipo_yaml_node(x, it[i]);
        if (bipo_yaml_double(x, mi, k, &m[i])) return -1;
        for (long j = 0; j < i; j++)
            if (m[j] == m[i]) return FAIL_AT(mi, k, "multiplier %g is listed twice", m[i]);
        *n_out = (size_t)i + 1;
    }
    if ((size_t)n < min_n) return FAIL_AT(v, key, "needs at least 2 multipliers (a slope needs two points)");
    return 0;
}

// {path, max_items, multipliers} (max_items refused when !items: the neutral text), or, when
// path_alone, a plain path.
static int read_set(Y *x, yaml_node_t *v, const char *key, int items, int path_alone, bipo_eval_set_cfg *s) {
    static const char *const SK[] = {"path", "max_items", "multipliers", NULL}, *const TK[] = {"path", "multipliers", NULL};
    yaml_node_t *n;
    if (path_alone && v->type == YAML_SCALAR_NODE) return bipo_yaml_path(x, v, key, &s->path);
    if (bipo_yaml_check_keys(x, v, key, items ? SK : TK)) return -1;
    if (!(n = bipo_yaml_get(x, v, "path"))) return FAIL_AT(v, K(key, "path"), "missing (the data file)");
    if (bipo_yaml_path(x, n, K(key, "path"), &s->path)) return -1;
    if ((n = bipo_yaml_get(x, v, "max_items")) && bipo_yaml_size(x, n, K(key, "max_items"), 0, &s->max_items))
        return -1;
    if ((n = bipo_yaml_get(x, v, "multipliers")) && read_multipliers(x, n, K(key, "multipliers"), 1, &s->mult, &s->n_mult))
        return -1;
    return 0;
}

static int read_positions(Y *x, yaml_node_t *v, const char *key, int *out) {
    static const char *const POS[] = {"all", "answer", NULL};
    int i;
    if (bipo_yaml_choice(x, v, key, POS, &i)) return -1;
    *out = i ? BIPO_POS_ANSWER : BIPO_POS_ALL;
    return 0;
}

static int read_gen(Y *x, yaml_node_t *v, bipo_eval_gen_cfg *g) {
    static const char *const GK[] = {"prompts", "max_items", "multipliers", "max_new_tokens", "temperature",
                                     "seed", "positions", NULL};
    static const char *const P = "eval.generate";
    yaml_node_t *n;
    g->max_new_tokens = 64, g->positions = -1;
    if (bipo_yaml_check_keys(x, v, P, GK)) return -1;
    if (!(n = bipo_yaml_get(x, v, "prompts")))
        return FAIL_AT(v, K(P, "prompts"), "missing (a text file, one prompt a line, or a CSV with a question column)");
    if (bipo_yaml_path(x, n, K(P, "prompts"), &g->prompts)) return -1;
    if ((n = bipo_yaml_get(x, v, "max_items")) && bipo_yaml_size(x, n, K(P, "max_items"), 0, &g->max_items)) return -1;
    if ((n = bipo_yaml_get(x, v, "multipliers")) && read_multipliers(x, n, K(P, "multipliers"), 1, &g->mult, &g->n_mult))
        return -1;
    if ((n = bipo_yaml_get(x, v, "max_new_tokens")) && bipo_yaml_size(x, n, K(P, "max_new_tokens"), 1, &g->max_new_tokens))
        return -1;
    if ((n = bipo_yaml_get(x, v, "temperature"))) {
        if (bipo_yaml_double(x, n, K(P, "temperature"), &g->temperature)) return -1;
        if (g->temperature < 0) return FAIL_AT(n, K(P, "temperature"), "%g is negative (0 = greedy)", g->temperature);
    }
    if ((n = bipo_yaml_get(x, v, "seed")) && bipo_yaml_u64(x, n, K(P, "seed"), &g->seed)) return -1;
    if ((n = bipo_yaml_get(x, v, "positions")) && read_positions(x, n, K(P, "positions"), &g->positions)) return -1;
    return 0;
}

static int read_jailbreak(Y *x, yaml_node_t *v, bipo_eval_jb_cfg *j) {
    static const char *const JK[] = {"goals", "max_items", "multiplier", "max_new_tokens", "refusals",
                                     "judge_command", NULL};
    static const char *const P = "eval.jailbreak";
    yaml_node_t *n;
    yaml_node_item_t *it = NULL;
    j->max_new_tokens = 64, j->multiplier = 1;
    if (bipo_yaml_check_keys(x, v, P, JK)) return -1;
    if ((n = bipo_yaml_get(x, v, "goals"))) {
        if (bipo_yaml_path(x, n, K(P, "goals"), &j->goals)) return -1;
    } else {
        char buf[4096];
        const char *data = bipo_config_env("BIPO_DATA", buf, sizeof buf);
        if (!data) return FAIL_AT(v, K(P, "goals"), "not set and neither BIPO_DATA nor HOME is (give the AdvBench CSV)");
        j->goals = xmalloc(strlen(data) + 40);
        sprintf(j->goals, "%s/advbench/harmful_behaviors.csv", data);
    }
    if ((n = bipo_yaml_get(x, v, "max_items")) && bipo_yaml_size(x, n, K(P, "max_items"), 0, &j->max_items)) return -1;
    if ((n = bipo_yaml_get(x, v, "multiplier"))) {
        if (bipo_yaml_double(x, n, K(P, "multiplier"), &j->multiplier)) return -1;
        if (!(j->multiplier > 0)) return FAIL_AT(n, K(P, "multiplier"), "%g: give M > 0 (ASR is measured at -M, 0, +M)", j->multiplier);
    }
    if ((n = bipo_yaml_get(x, v, "max_new_tokens")) && bipo_yaml_size(x, n, K(P, "max_new_tokens"), 1, &j->max_new_tokens))
        return -1;
    if ((n = bipo_yaml_get(x, v, "refusals"))) {
        long nr = list_of(x, n, K(P, "refusals"), "refusal strings", &it);
        if (nr < 0) return -1;
        j->refusals = xcalloc((size_t)nr, sizeof *j->refusals);
        for (long i = 0; i < nr; i++) {
            char k[64];
            snprintf(k, sizeof k, "%s.refusals[%ld]", P, i);
            yaml_node_t *r = bipo_yaml_node(x, it[i]);
            if (bipo_yaml_str(x, r, k, 0, &j->refusals[i])) return -1;
            j->n_refusals = (size_t)i + 1;
            if (!*j->refusals[i]) return FAIL_AT(r, k, "empty (it would match every response)");
        }
    }
    if ((n = bipo_yaml_get(x, v, "judge_command")) && bipo_yaml_str(x, n, K(P, "judge_command"), 0, &j->judge_command))
        return -1;
    return 0;
}

static int read_methods(Y *x, yaml_node_t *v, bipo_eval_cfg *e) {
    yaml_node_item_t *it = NULL;
    long n = list_of(x, v, "eval.methods", "methods (bipo, caa, caa_norm_matched, prompt)", &it);
    if (n < 0) return -1;
    e->methods = 0;
    for (long i = 0; i < n; i++) {
        char key[48];
        unsigned bit;
        snprintf(key, sizeof key, "eval.methods[%ld]", i);
        yaml_node_t *m = bipo_yaml_node(x, it[i]);
        if (read_method(x, m, key, 0, &bit)) return -1;
        if (e->methods & bit) return FAIL_AT(m, key, "'%s' is listed twice", bipo_eval_method_name(bit));
        e->methods |= bit;
    }
    return 0;
}

static int read_prompts(Y *x, yaml_node_t *v, const bipo_config_file *c, bipo_eval_cfg *e) {
    char b[96];
    if (v->type != YAML_MAPPING_NODE)
        return FAIL_AT(v, "eval.prompts", "expected a mapping of behavior name -> {plus, minus}, got %s",
                       bipo_yaml_what(v, b, sizeof b));
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    e->prompts = xcalloc(n ? n : 1, sizeof *e->prompts);
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t *p = &v->data.mapping.pairs.start[i];
        yaml_node_t *k = bipo_yaml_node(x, p->key), *val = bipo_yaml_node(x, p->value);
        bipo_eval_prompt_cfg *pc = &e->prompts[i];
        e->n_prompts = i + 1;
        if (bipo_yaml_str(x, k, "eval.prompts", 0, &pc->behavior)) return -1;
        char key[192];
        snprintf(key, sizeof key, "eval.prompts.%s", pc->behavior);
        if (known_name(x, k, key, c, 0, pc->behavior)) return -1;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(e->prompts[j].behavior, pc->behavior))
                return FAIL_AT(k, key, "duplicate key (first set on line %zu)",
                               bipo_yaml_mark(bipo_yaml_node(x, v->data.mapping.pairs.start[j].key)).line);
        if (read_prompt(x, val, key, pc)) return -1;
    }
    return 0;
}

static int read_term(Y *x, yaml_node_t *v, const char *pre, const bipo_config_file *c, bipo_compose_term *t) {
    static const char *const TK[] = {"behavior", "layer", "method", "multiplier", NULL};
    yaml_node_t *n;
    t->mark = bipo_yaml_mark(v);
    t->method = BIPO_EVAL_BIPO;
    t->multiplier = 1;
    if (bipo_yaml_check_keys(x, v, pre, TK)) return -1;
    if (!(n = bipo_yaml_get(x, v, "behavior"))) return FAIL_AT(v, K(pre, "behavior"), "missing (whose vector)");
    if (bipo_yaml_name(x, n, K(pre, "behavior"), &t->behavior)) return -1;
    if (!(n = bipo_yaml_get(x, v, "layer"))) return FAIL_AT(v, K(pre, "layer"), "missing (the vector's layer)");
    if (bipo_yaml_size(x, n, K(pre, "layer"), 0, &t->layer)) return -1;
    if ((n = bipo_yaml_get(x, v, "method")) && read_method(x, n, K(pre, "method"), 1, &t->method)) return -1;
    if ((n = bipo_yaml_get(x, v, "multiplier")) && bipo_yaml_double(x, n, K(pre, "multiplier"), &t->multiplier))
        return -1;
    return 0;
}

static int read_compose(Y *x, yaml_node_t *v, const char *pre, const bipo_config_file *c, bipo_compose_cfg *o) {
    static const char *const CK[] = {"name", "model", "behavior", "terms", NULL};
    yaml_node_t *n;
    yaml_node_item_t *it = NULL;
    o->mark = bipo_yaml_mark(v);
    if (bipo_yaml_check_keys(x, v, pre, CK)) return -1;
    if (!(n = bipo_yaml_get(x, v, "name"))) return FAIL_AT(v, K(pre, "name"), "missing (names the result)");
    if (bipo_yaml_name(x, n, K(pre, "name"), &o->name)) return -1;
    if ((n = bipo_yaml_get(x, v, "model"))) {
        if (bipo_yaml_str(x, n, K(pre, "model"), 0, &o->model) || known_name(x, n, K(pre, "model"), c, 1, o->model))
            return -1;
    } else
        o->model = xstrdup(c->models[0].id);
    if (!(n = bipo_yaml_get(x, v, "terms"))) return FAIL_AT(v, K(pre, "terms"), "missing (the vectors to add)");
    long nt = list_of(x, n, K(pre, "terms"), "terms {behavior, layer, method, multiplier}", &it);
    if (nt < 0) return -1;
    o->terms = xcalloc((size_t)nt, sizeof *o->terms);
    for (long i = 0; i < nt; i++) {
        char tp[160];
        snprintf(tp, sizeof tp, "%s.terms[%ld]", pre, i);
        o->n_terms = (size_t)i + 1;
        yaml_node_t *tn = bipo_yaml_node(x, it[i]);
        if (read_term(x, tn, tp, c, &o->terms[i])) return -1;
        if (o->terms[i].layer != o->terms[0].layer)
            return FAIL_AT(tn, K(tp, "layer"), "layer %zu differs from terms[0]'s %zu (a composed vector is "
                           "added at one layer: give every term the same layer)", o->terms[i].layer, o->terms[0].layer);
    }
    if ((n = bipo_yaml_get(x, v, "behavior"))) {
        if (bipo_yaml_str(x, n, K(pre, "behavior"), 0, &o->behavior)) return -1;
    } else
        o->behavior = xstrdup(o->terms[0].behavior);
    return known_name(x, n ? n : v, K(pre, "behavior"), c, 0, o->behavior);
}

static int read_transfer(Y *x, yaml_node_t *v, const char *pre, const bipo_config_file *c, bipo_transfer_cfg *o) {
    static const char *const TK[] = {"name", "from", "to", NULL};
    static const char *const FK[] = {"model", "behavior", "layer", "method", NULL};
    static const char *const OK[] = {"model", "layers", NULL};
    yaml_node_t *n, *f, *t;
    char fp[160], tp[160];
    o->mark = bipo_yaml_mark(v);
    o->from_method = BIPO_EVAL_BIPO;
    if (bipo_yaml_check_keys(x, v, pre, TK)) return -1;
    if (!(n = bipo_yaml_get(x, v, "name"))) return FAIL_AT(v, K(pre, "name"), "missing (names the result)");
    if (bipo_yaml_name(x, n, K(pre, "name"), &o->name)) return -1;
    snprintf(fp, sizeof fp, "%s.from", pre), snprintf(tp, sizeof tp, "%s.to", pre);
    if (!(f = bipo_yaml_get(x, v, "from"))) return FAIL_AT(v, fp, "missing ({model, behavior, layer, method})");
    if (!(t = bipo_yaml_get(x, v, "to"))) return FAIL_AT(v, tp, "missing ({model, layers})");
    if (bipo_yaml_check_keys(x, f, fp, FK) || bipo_yaml_check_keys(x, t, tp, OK)) return -1;
    if (!(n = bipo_yaml_get(x, f, "model"))) return FAIL_AT(f, K(fp, "model"), "missing (the model id in the library)");
    if (bipo_yaml_name(x, n, K(fp, "model"), &o->from_model)) return -1;
    if (!(n = bipo_yaml_get(x, f, "behavior"))) return FAIL_AT(f, K(fp, "behavior"), "missing");
    if (bipo_yaml_str(x, n, K(fp, "behavior"), 0, &o->from_behavior) ||
        known_name(x, n, K(fp, "behavior"), c, 0, o->from_behavior))
        return -1;
    if (!(n = bipo_yaml_get(x, f, "layer"))) return FAIL_AT(f, K(fp, "layer"), "missing");
    if (bipo_yaml_size(x, n, K(fp, "layer"), 0, &o->from_layer)) return -1;
    if ((n = bipo_yaml_get(x, f, "method")) && read_method(x, n, K(fp, "method"), 1, &o->from_method)) return -1;
    if (!(n = bipo_yaml_get(x, t, "model"))) return FAIL_AT(t, K(tp, "model"), "missing (a model id of this config)");
    if (bipo_yaml_str(x, n, K(tp, "model"), 0, &o->to_model) || known_name(x, n, K(tp, "model"), c, 1, o->to_model))
        return -1;
    if ((n = bipo_yaml_get(x, t, "layers"))) return bipo_yaml_layers(x, n, K(tp, "layers"), &o->to_layers);
    o->to_layers.v = xcalloc(1, sizeof(size_t)), o->to_layers.mark = xcalloc(1, sizeof(bipo_mark));
    o->to_layers.v[0] = o->from_layer, o->to_layers.mark[0] = o->mark, o->to_layers.n = 1;
    snprintf(o->to_layers.key, sizeof o->to_layers.key, "%.50s.layers", tp);
    return 0;
}

// `compose:` / `transfer:` lists with unique names.
typedef int (*item_fn)(Y *, yaml_node_t *, const char *, const bipo_config_file *, void *);
static int c_one(Y *x, yaml_node_t *v, const char *p, const bipo_config_file *c, void *o) { return read_compose(x, v, p, c, o); }
static int t_one(Y *x, yaml_node_t *v, const char *p, const bipo_config_file *c, void *o) { return read_transfer(x, v, p, c, o); }
static int read_named_list(Y *x, yaml_node_t *v, const char *key, const bipo_config_file *c, size_t size,
                           item_fn one, void **items, size_t *count) {
    yaml_node_item_t *it = NULL;
    long n = list_of(x, v, key, "entries (- name: ...)", &it);
    if (n < 0) return -1;
    *items = xcalloc((size_t)n, size);
    for (long i = 0; i < n; i++) {
        char pre[96];
        snprintf(pre, sizeof pre, "%.60s[%ld]", key, i);
        *count = (size_t)i + 1;
        yaml_node_t *e = bipo_yaml_node(x, it[i]);
        if (one(x, e, pre, c, (char *)*items + (size_t)i * size)) return -1;
        const char *name = *(char **)((char *)*items + (size_t)i * size); // name is the first member
        for (long j = 0; j < i; j++)
            if (!strcmp(name, *(char **)((char *)*items + (size_t)j * size)))
                return FAIL_AT(e, K(pre, "name"), "'%s' is also the name of %s[%ld] (names file the results)",
                               name, key, j);
    }
    return 0;
}

int bipo_eval_cfg_parse(Y *x, yaml_node_t *v, const bipo_config_file *c, bipo_eval_cfg *e) {
    static const char *const EK[] = {"multipliers", "positions", "protocol", "score_eos", "methods",
                                     "max_items", "test_data", "split_seed", "prompt", "prompts", "mmlu",
                                     "truthfulqa", "neutral_text", "generate", "jailbreak", "compose", "transfer", NULL};
    static const double DEFAULT_MULT[] = {-2, -1, -0.5, 0, 0.5, 1, 2};
    static const char *const PROTO[] = {"auto", "letter", "text", NULL};
    memset(e, 0, sizeof *e);
    e->methods = BIPO_EVAL_BIPO | BIPO_EVAL_CAA | BIPO_EVAL_CAA_NORM | BIPO_EVAL_PROMPT;
    e->score_eos = 1;
    e->split_seed = c->train.hp.seed;
    if (bipo_yaml_check_keys(x, v, "eval", EK)) return -1;
    yaml_node_t *n;
    int i;
    if ((n = bipo_yaml_get(x, v, "multipliers"))) {
        if (read_multipliers(x, n, "eval.multipliers", 2, &e->mult, &e->n_mult)) return -1;
    } else {
        e->n_mult = sizeof DEFAULT_MULT / sizeof *DEFAULT_MULT;
        e->mult = xcalloc(e->n_mult, sizeof *e->mult);
        memcpy(e->mult, DEFAULT_MULT, sizeof DEFAULT_MULT);
    }
    if ((n = bipo_yaml_get(x, v, "positions"))) {
        if (read_positions(x, n, "eval.positions", &i)) return -1;
        e->positions = (bipo_positions)i;
    }
    if ((n = bipo_yaml_get(x, v, "protocol"))) {
        if (bipo_yaml_choice(x, n, "eval.protocol", PROTO, &i)) return -1;
        e->protocol = i == 0 ? BIPO_AB_AUTO : i == 1 ? BIPO_AB_LETTER : BIPO_AB_TEXT;
    }
    if ((n = bipo_yaml_get(x, v, "score_eos"))) {
        static const char *const B[] = {"false", "true", NULL};
        if (bipo_yaml_choice(x, n, "eval.score_eos", B, &e->score_eos)) return -1;
    }
    if ((n = bipo_yaml_get(x, v, "methods")) && read_methods(x, n, e)) return -1;
    if ((n = bipo_yaml_get(x, v, "max_items")) && bipo_yaml_size(x, n, "eval.max_items", 0, &e->max_items)) return -1;
    if ((n = bipo_yaml_get(x, v, "test_data")) && bipo_yaml_path(x, n, "eval.test_data", &e->test_data)) return -1;
    if ((n = bipo_yaml_get(x, v, "split_seed"))) {
        if (bipo_yaml_u64(x, n, "eval.split_seed", &e->split_seed)) return -1;
        e->split_seed_set = 1;
    }
    if ((n = bipo_yaml_get(x, v, "prompt")) && read_prompt(x, n, "eval.prompt", &e->prompt)) return -1;
    if ((n = bipo_yaml_get(x, v, "prompts")) && read_prompts(x, n, c, e)) return -1;
    if ((n = bipo_yaml_get(x, v, "mmlu")) && read_set(x, n, "eval.mmlu", 1, 0, &e->mmlu)) return -1;
    if ((n = bipo_yaml_get(x, v, "truthfulqa")) && read_set(x, n, "eval.truthfulqa", 1, 0, &e->truthfulqa)) return -1;
    if ((n = bipo_yaml_get(x, v, "neutral_text")) && read_set(x, n, "eval.neutral_text", 0, 1, &e->neutral)) return -1;
    if ((n = bipo_yaml_get(x, v, "generate")) && read_gen(x, n, &e->generate)) return -1;
    if ((n = bipo_yaml_get(x, v, "jailbreak")) && read_jailbreak(x, n, &e->jailbreak)) return -1;
    if ((n = bipo_yaml_get(x, v, "compose")) &&
        read_named_list(x, n, "eval.compose", c, sizeof *e->compose, c_one, (void **)&e->compose, &e->n_compose))
        return -1;
    if ((n = bipo_yaml_get(x, v, "transfer")) &&
        read_named_list(x, n, "eval.transfer", c, sizeof *e->transfer, t_one, (void **)&e->transfer, &e->n_transfer))
        return -1;
    return 0;
}

static void prompt_free(bipo_eval_prompt_cfg *p) { free(p->behavior), free(p->plus), free(p->minus); }

void bipo_eval_cfg_free(bipo_eval_cfg *e) {
    free(e->mult), free(e->test_data);
    bipo_eval_set_cfg *sets[3] = {&e->mmlu, &e->truthfulqa, &e->neutral};
    for (int i = 0; i < 3; i++) free(sets[i]->path), free(sets[i]->mult);
    free(e->generate.prompts), free(e->generate.mult);
    for (size_t i = 0; i < e->jailbreak.n_refusals; i++) free(e->jailbreak.refusals[i]);
    free(e->jailbreak.goals), free(e->jailbreak.refusals), free(e->jailbreak.judge_command);
    prompt_free(&e->prompt);
    for (size_t i = 0; i < e->n_prompts; i++) prompt_free(&e->prompts[i]);
    free(e->prompts);
    for (size_t i = 0; i < e->n_compose; i++) {
        bipo_compose_cfg *o = &e->compose[i];
        for (size_t k = 0; k < o->n_terms; k++) free(o->terms[k].behavior);
        free(o->terms), free(o->name), free(o->model), free(o->behavior);
    }
    free(e->compose);
    for (size_t i = 0; i < e->n_transfer; i++) {
        bipo_transfer_cfg *o = &e->transfer[i];
        free(o->name), free(o->from_model), free(o->from_behavior), free(o->to_model);
        free(o->to_layers.v), free(o->to_layers.mark);
    }
    free(e->transfer);
    memset(e, 0, sizeof *e);
}

void bipo_eval_prompts_for(const bipo_eval_cfg *e, const char *behavior, const char **plus,
                           const char **minus) {
    *plus = e->prompt.plus, *minus = e->prompt.minus;
    for (size_t i = 0; behavior && i < e->n_prompts; i++)
        if (!strcmp(e->prompts[i].behavior, behavior)) {
            if (e->prompts[i].plus) *plus = e->prompts[i].plus;
            if (e->prompts[i].minus) *minus = e->prompts[i].minus;
        }
}

static void hash_str(bipo_sha256 *h, const char *s) { // length-prefixed: "ab"+"c" != "a"+"bc"
    char len[24];
    snprintf(len, sizeof len, "%zu:", s ? strlen(s) : (size_t)-1);
    bipo_sha256_update(h, len, strlen(len));
    if (s) bipo_sha256_update(h, s, strlen(s));
}

static void hash_mult(bipo_sha256 *h, const double *m, size_t n) {
    char buf[40];
    for (size_t i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "%.17g,", m[i]);
        hash_str(h, buf);
    }
}

void bipo_eval_settings_hash(const bipo_eval_cfg *e, const char *behavior, const char *items_hash,
                             char out[65]) {
    char buf[256];
    bipo_sha256 h;
    bipo_sha256_init(&h);
    snprintf(buf, sizeof buf, "bipo-eval-v1|pos=%d|proto=%d|eos=%d|methods=%u|max=%zu|mult=", (int)e->positions,
             (int)e->protocol, e->score_eos, e->methods, e->max_items);
    hash_str(&h, buf);
    hash_mult(&h, e->mult, e->n_mult);
    const char *plus, *minus;
    bipo_eval_prompts_for(e, behavior, &plus, &minus);
    hash_str(&h, items_hash), hash_str(&h, plus), hash_str(&h, minus);
    // the knowledge sets only when set: configs without them keep their earlier hashes
    const bipo_eval_set_cfg *sets[3] = {&e->mmlu, &e->truthfulqa, &e->neutral};
    for (int i = 0; i < 3; i++) {
        if (!sets[i]->path) continue;
        snprintf(buf, sizeof buf, "|set%d|max=%zu|", i, sets[i]->max_items);
        hash_str(&h, buf), hash_str(&h, sets[i]->path);
        hash_mult(&h, sets[i]->mult, sets[i]->n_mult);
    }
    const bipo_eval_gen_cfg *g = &e->generate;
    if (g->prompts) { // the generations (temperature and seed only when sampling)
        snprintf(buf, sizeof buf, "|generate|max=%zu|new=%zu|pos=%d|t=%.17g|seed=%llu|", g->max_items,
                 g->max_new_tokens, g->positions, g->temperature,
                 g->temperature > 0 ? (unsigned long long)g->seed : 0ULL);
        hash_str(&h, buf), hash_str(&h, g->prompts);
        hash_mult(&h, g->mult, g->n_mult);
    }
    const bipo_eval_jb_cfg *jb = &e->jailbreak;
    if (jb->goals) {
        snprintf(buf, sizeof buf, "|jailbreak|max=%zu|new=%zu|m=%.17g|n_ref=%zu|", jb->max_items,
                 jb->max_new_tokens, jb->multiplier, jb->n_refusals);
        hash_str(&h, buf), hash_str(&h, jb->goals), hash_str(&h, jb->judge_command);
        for (size_t i = 0; i < jb->n_refusals; i++) hash_str(&h, jb->refusals[i]);
    }
    bipo_sha256_hex(&h, out);
}

uint64_t bipo_config_split_seed(const bipo_config_file *c) {
    return c->eval && c->eval->split_seed_set ? c->eval->split_seed : c->train.hp.seed;
}
