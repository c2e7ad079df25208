// pipeline/config.c — YAML config loading and validation (see config.h).
// libyaml's document API gives a node tree with start marks (0-based line/column, counted in
// characters); every message turns them 1-based. Validation reads each mapping against its
// list of known keys first (unknown -> "did you mean", duplicates -> both lines), then each
// value with a typed reader that knows the key path.
#include "config.h" // defines: bipo_config_file, bipo_train_cfg, bipo_layer_list (implemented here)

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "config_eval.h" // defines: bipo_eval_cfg_parse, bipo_eval_cfg_free
#include "config_yaml.h" // defines: the bipo_yaml_* wrappers below
#include "hparams.h" // defines: bipo_hp_fields (the train: keys, their bounds and defaults)
#include "util.h"    // defines: bipo_set_error, bipo_read_file, bipo_sha256_*, xmalloc

typedef struct bipo_yaml_ctx {
    const char *file; // config path, for messages
    char *dir;        // its folder ("" = current directory), anchors relative paths
    const char *text;
    yaml_document_t doc;
} ctx;

static bipo_mark mark_of(const yaml_node_t *n) {
    return (bipo_mark){n->start_mark.line + 1, n->start_mark.column + 1};
}

// "file:line:column: key: problem" at node n; always returns -1.
__attribute__((format(printf, 4, 5))) static int fail(ctx *x, const yaml_node_t *n,
                                                      const char *key, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bipo_mark m = mark_of(n);
    bipo_set_error("%s:%zu:%zu: %s: %s", x->file, m.line, m.column, key, msg);
    return -1;
}

static yaml_node_t *node(ctx *x, int id) { return yaml_document_get_node(&x->doc, id); }
static const char *sval(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static int is_null(const yaml_node_t *n) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *s = sval(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

// "a list", "a mapping", "nothing (null)", "the string 'abc'" — what the user wrote.
static const char *what(const yaml_node_t *n, char *buf, size_t cap) {
    if (n->type == YAML_SEQUENCE_NODE) return "a list";
    if (n->type == YAML_MAPPING_NODE) return "a mapping";
    if (is_null(n)) return "nothing (null)";
    snprintf(buf, cap, "%s '%.60s'", n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE
                                         ? "the string" : "a quoted string", sval(n));
    return buf;
}

static const char *kp(char *buf, size_t cap, const char *prefix, const char *name) {
    snprintf(buf, cap, "%s%s%s", prefix, *prefix ? "." : "", name);
    return buf;
}
#define KP(prefix, name) kp((char[160]){0}, 160, prefix, name)

// ---- known keys, "did you mean" ------------------------------------------------------------

static size_t edit_distance(const char *a, const char *b) { // optimal string alignment
    size_t n = strlen(a), m = strlen(b);
    if (n > 62 || m > 62) return 99;
    size_t d[64][64];
    for (size_t i = 0; i <= n; i++) d[i][0] = i;
    for (size_t j = 0; j <= m; j++) d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < c)
                c = d[i - 2][j - 2] + 1;
            d[i][j] = c;
        }
    return d[n][m];
}

// Checks that map is a mapping whose keys are plain known names without duplicates.
static int check_keys(ctx *x, yaml_node_t *map, const char *prefix, const char *const *known) {
    char b[96];
    if (map->type != YAML_MAPPING_NODE)
        return fail(x, map, *prefix ? prefix : "config", "expected a mapping (key: value lines), got %s",
                    what(map, b, sizeof b));
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(x, p->key);
        if (k->type != YAML_SCALAR_NODE)
            return fail(x, k, *prefix ? prefix : "config", "a key must be a name, got %s", what(k, b, sizeof b));
        const char *name = sval(k);
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++)
            if (!strcmp(sval(node(x, q->key)), name))
                return fail(x, k, KP(prefix, name), "duplicate key (first set on line %zu)",
                            mark_of(node(x, q->key)).line);
        const char *best = NULL;
        size_t bd = 99;
        for (const char *const *kn = known; *kn; kn++) {
            if (!strcmp(*kn, name)) { bd = 0; break; }
            size_t d = edit_distance(name, *kn);
            if (d < bd) bd = d, best = *kn;
        }
        if (bd == 0) continue;
        if (bd <= 2) return fail(x, k, KP(prefix, name), "unknown key (did you mean '%s'?)", best);
        char list[400] = "";
        for (const char *const *kn = known; *kn; kn++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", kn == known ? "" : ", ", *kn);
        return fail(x, k, KP(prefix, name), "unknown key (known here: %s)", list);
    }
    return 0;
}

static yaml_node_t *get(ctx *x, yaml_node_t *map, const char *name) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
        if (!strcmp(sval(node(x, p->key)), name)) return node(x, p->value);
    return NULL;
}

// ---- typed scalar readers ------------------------------------------------------------------

// A string value; a null value gives *out = NULL when allow_null, else an error.
static int read_str(ctx *x, yaml_node_t *v, const char *key, int allow_null, char **out) {
    char b[96];
    if (v->type != YAML_SCALAR_NODE || (is_null(v) && !allow_null))
        return fail(x, v, key, "expected a string, got %s", what(v, b, sizeof b));
    *out = is_null(v) ? NULL : xstrdup(sval(v));
    return 0;
}

// A plain scalar that must be a number: returns its text or NULL after the error.
static const char *number_text(ctx *x, yaml_node_t *v, const char *key, const char *kind) {
    char b[96];
    if (v->type != YAML_SCALAR_NODE || is_null(v)) {
        fail(x, v, key, "expected %s, got %s", kind, what(v, b, sizeof b));
        return NULL;
    }
    if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        fail(x, v, key, "expected %s, got a quoted string '%.40s' (remove the quotes)", kind, sval(v));
        return NULL;
    }
    return sval(v);
}

static int read_double(ctx *x, yaml_node_t *v, const char *key, double *out) {
    const char *s = number_text(x, v, key, "a number");
    if (!s) return -1;
    char *end;
    double d = strtod(s, &end);
    if (!(isdigit((unsigned char)*s) || *s == '-' || *s == '+' || *s == '.') || *end || !isfinite(d))
        return fail(x, v, key, "expected a number, got the string '%.40s'", s);
    *out = d;
    return 0;
}

// An integer (decimal, optional sign) in [lo, hi]. With negative != NULL a negative value is
// returned as its magnitude with *negative = 1 (the caller words the error), else it fails.
static int read_int(ctx *x, yaml_node_t *v, const char *key, unsigned long long lo,
                    unsigned long long hi, unsigned long long *out, int *negative) {
    const char *s = number_text(x, v, key, "an integer");
    if (!s) return -1;
    const char *p = s + (*s == '-' || *s == '+');
    char *end;
    errno = 0;
    unsigned long long u = strtoull(p, &end, 10);
    if (!isdigit((unsigned char)*p) || *end) {
        char *e2;
        double d = strtod(s, &e2);
        if (!*e2 && isfinite(d) && e2 != s) return fail(x, v, key, "expected an integer, got %s", s);
        return fail(x, v, key, "expected an integer, got the string '%.40s'", s);
    }
    int neg = *s == '-' && u != 0;
    if (negative) *negative = neg;
    if (neg && !negative) return fail(x, v, key, "must be >= %llu, got %s", lo, s);
    if (!neg && u < lo) return fail(x, v, key, "must be >= %llu, got %s", lo, s);
    if (!neg && (u > hi || errno == ERANGE)) return fail(x, v, key, "must be <= %llu, got %s", hi, s);
    *out = u;
    return 0;
}

static int read_size(ctx *x, yaml_node_t *v, const char *key, size_t lo, size_t *out) {
    unsigned long long u = 0;
    if (read_int(x, v, key, lo, SIZE_MAX, &u, NULL)) return -1;
    *out = (size_t)u;
    return 0;
}

static int read_bool(ctx *x, yaml_node_t *v, const char *key, int *out) {
    static const char *const T[] = {"true", "yes", "on"}, *const F[] = {"false", "no", "off"};
    char b[96];
    if (v->type == YAML_SCALAR_NODE && v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
        for (int i = 0; i < 3; i++) {
            if (!strcasecmp(sval(v), T[i])) return *out = 1, 0;
            if (!strcasecmp(sval(v), F[i])) return *out = 0, 0;
        }
    return fail(x, v, key, "expected true or false, got %s", what(v, b, sizeof b));
}

static int read_choice(ctx *x, yaml_node_t *v, const char *key, const char *const *names, int *out) {
    char b[96], list[160] = "";
    if (v->type == YAML_SCALAR_NODE && !is_null(v))
        for (int i = 0; names[i]; i++)
            if (!strcmp(sval(v), names[i])) return *out = i, 0;
    for (int i = 0; names[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "|" : "", names[i]);
    return fail(x, v, key, "expected one of %s, got %s", list, what(v, b, sizeof b));
}

// ---- paths -----------------------------------------------------------------------------------

// ${BIPO_DATA} when the environment does not set it: the data folder scripts/fetch-data fills,
// ${BIPO_CACHE:-$HOME/.cache/bipo-pipeline}/data (so shipped configs run without exports).
const char *bipo_config_env(const char *name, char *buf, size_t cap) {
    const char *val = getenv(name);
    if (val || strcmp(name, "BIPO_DATA")) return val;
    const char *cache = getenv("BIPO_CACHE"), *home = getenv("HOME");
    if (cache && *cache) snprintf(buf, cap, "%s/data", cache);
    else if (home) snprintf(buf, cap, "%s/.cache/bipo-pipeline/data", home);
    else return NULL;
    return buf;
}

// Expands a leading ~/ and every ${VAR}, then anchors a relative result at the config folder.
static int read_path(ctx *x, yaml_node_t *v, const char *key, char **out) {
    char *s = NULL;
    if (read_str(x, v, key, 0, &s)) return -1;
    if (!*s) return free(s), fail(x, v, key, "empty path");
    size_t cap = strlen(s) + strlen(x->dir) + 256, n = 0;
    char *r = xmalloc(cap);
    const char *p = s;
    int rc = 0;
#define PUT(str, len)                                                                          \
    do {                                                                                       \
        size_t l_ = (len);                                                                     \
        if (n + l_ + 2 > cap) cap = 2 * (n + l_ + 2), r = xrealloc(r, cap);                    \
        memcpy(r + n, str, l_), n += l_;                                                       \
    } while (0)
    if (p[0] == '~' && (p[1] == '/' || !p[1])) {
        const char *home = getenv("HOME");
        if (!home) { rc = fail(x, v, key, "'~' used but HOME is not set"); goto out; }
        PUT(home, strlen(home));
        p++;
    }
    while (*p) {
        if (p[0] == '$' && p[1] == '{') {
            const char *e = strchr(p + 2, '}');
            if (!e) { rc = fail(x, v, key, "unterminated '${' in '%s' (write ${NAME})", s); goto out; }
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)(e - p - 2), p + 2);
            char dflt[4096];
            const char *val = bipo_config_env(name, dflt, sizeof dflt);
            if (!val) { rc = fail(x, v, key, "environment variable %s is not set (used in '%s')", name, s); goto out; }
            PUT(val, strlen(val));
            p = e + 1;
        } else {
            PUT(p, 1);
            p++;
        }
    }
    r[n] = 0;
    if (r[0] != '/' && *x->dir) {
        char *j = xmalloc(strlen(x->dir) + n + 2);
        sprintf(j, "%s/%s", x->dir, r);
        free(r);
        r = j;
    }
#undef PUT
out:
    free(s);
    if (rc) return free(r), -1;
    *out = r;
    return 0;
}

// ---- layers ----------------------------------------------------------------------------------

static void layer_push(bipo_layer_list *l, size_t v, bipo_mark m) {
    l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    l->mark = xrealloc(l->mark, (l->n + 1) * sizeof *l->mark);
    l->v[l->n] = v, l->mark[l->n++] = m;
}

// Digits at *p -> *out (at most 2^20); 0 if none.
static int digits(const char **p, unsigned *out) {
    if (!isdigit((unsigned char)**p)) return 0;
    unsigned long v = 0;
    while (isdigit((unsigned char)**p)) {
        v = v * 10 + (unsigned)(*(*p)++ - '0');
        if (v > (1u << 20)) return 0;
    }
    *out = (unsigned)v;
    return 1;
}

// "A", "A-B" or "A-B:STEP" (inclusive, 0 <= A <= B, STEP >= 1).
static int parse_range(const char *s, unsigned *a, unsigned *z, unsigned *step) {
    *step = 1;
    if (!digits(&s, a)) return 0;
    *z = *a;
    if (*s == '-' && (s++, !digits(&s, z))) return 0;
    if (*s == ':' && (s++, !digits(&s, step))) return 0;
    return !*s && *a <= *z && *step >= 1;
}

// One item: a plain integer or a range string "A-B" / "A-B:STEP".
static int layer_item(ctx *x, yaml_node_t *v, const char *key, bipo_layer_list *l) {
    char b[96];
    if (v->type != YAML_SCALAR_NODE || is_null(v))
        return fail(x, v, key, "expected a layer number or a range like \"10-15\", got %s", what(v, b, sizeof b));
    const char *s = sval(v);
    if (v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && (isdigit((unsigned char)*s) || *s == '-') &&
        !strchr(s + 1, '-') && !strchr(s, ':')) {
        unsigned long long u;
        int neg;
        if (read_int(x, v, key, 0, 1u << 20, &u, &neg)) return -1;
        if (neg) return fail(x, v, key, "negative layer %s (layers count from 0)", s);
        layer_push(l, (size_t)u, mark_of(v));
        return 0;
    }
    unsigned a, z, step;
    if (!parse_range(s, &a, &z, &step))
        return fail(x, v, key, "bad layer range '%s' (expected \"A-B\" or \"A-B:STEP\" with "
                    "0 <= A <= B and STEP >= 1, e.g. \"10-15\" or \"10-20:2\")", s);
    for (unsigned i = a; i <= z; i += step) layer_push(l, i, mark_of(v));
    return 0;
}

static int read_layers(ctx *x, yaml_node_t *v, const char *key, bipo_layer_list *l) {
    snprintf(l->key, sizeof l->key, "%s", key);
    if (v->type == YAML_SEQUENCE_NODE) {
        if (v->data.sequence.items.start == v->data.sequence.items.top)
            return fail(x, v, key, "empty list of layers");
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            char k[96];
            snprintf(k, sizeof k, "%s[%zu]", key, (size_t)(it - v->data.sequence.items.start));
            if (layer_item(x, node(x, *it), k, l)) return -1;
        }
    } else if (layer_item(x, v, key, l))
        return -1;
    for (size_t i = 0; i < l->n; i++)
        for (size_t j = 0; j < i; j++)
            if (l->v[i] == l->v[j]) {
                bipo_set_error("%s:%zu:%zu: %s: layer %zu is listed twice", x->file,
                               l->mark[i].line, l->mark[i].column, key, l->v[i]);
                return -1;
            }
    return 0;
}

static void layers_free(bipo_layer_list *l) {
    free(l->v), free(l->mark);
    l->v = NULL, l->mark = NULL, l->n = 0;
}

// ---- sections --------------------------------------------------------------------------------

static const char *const TEMPLATES[] = {"auto", "llama2", "mistral", "vicuna", "chatml", "none", NULL};

// A name that becomes an HDF5 group: no '/', not empty, not "." or "..".
static int check_name(ctx *x, yaml_node_t *v, const char *key, const char *s) {
    if (!*s || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, ".."))
        return fail(x, v, key, "'%s' cannot name an HDF5 group (no '/', not empty)", s);
    return 0;
}

static int parse_model(ctx *x, yaml_node_t *m, const char *pre, bipo_model_cfg *o) {
    static const char *const K[] = {"path", "id", "template", "system_prompt", "layers", "lora", NULL};
    o->mark = mark_of(m);
    if (check_keys(x, m, pre, K)) return -1;
    yaml_node_t *v;
    if (!(v = get(x, m, "path"))) return fail(x, m, KP(pre, "path"), "missing (the model file or folder)");
    if (read_path(x, v, KP(pre, "path"), &o->path)) return -1;
    if ((v = get(x, m, "id"))) {
        if (read_str(x, v, KP(pre, "id"), 0, &o->id) || check_name(x, v, KP(pre, "id"), o->id)) return -1;
    } else { // basename without its last extension
        size_t n = strlen(o->path);
        while (n > 1 && o->path[n - 1] == '/') n--;
        size_t b = n;
        while (b > 0 && o->path[b - 1] != '/') b--;
        size_t e = n;
        while (e > b + 1 && o->path[e - 1] != '.') e--;
        if (o->path[e - 1] == '.' && e > b + 1) e--; // "x.gguf" -> "x"; ".hidden" stays
        else e = n;
        o->id = xmalloc(e - b + 1);
        memcpy(o->id, o->path + b, e - b), o->id[e - b] = 0;
    }
    int t = 0;
    if ((v = get(x, m, "template")) && read_choice(x, v, KP(pre, "template"), TEMPLATES, &t)) return -1;
    o->template_name = xstrdup(TEMPLATES[t]);
    if ((v = get(x, m, "system_prompt")) && read_str(x, v, KP(pre, "system_prompt"), 1, &o->system_prompt))
        return -1;
    if ((v = get(x, m, "layers")) && read_layers(x, v, KP(pre, "layers"), &o->layers)) return -1;
    if ((v = get(x, m, "lora")) && read_path(x, v, KP(pre, "lora"), &o->lora)) return -1;
    return 0;
}

static int parse_behavior(ctx *x, yaml_node_t *m, const char *pre, bipo_behavior_cfg *o) {
    static const char *const K[] = {"name", "data", "test_data", "test_fraction", "format",
                                    "fields", "max_pairs", "answer_form", NULL};
    static const char *const FK[] = {"question", "matching", "not_matching", NULL};
    static const char *const FMTS[] = {"auto", "bipo-csv", "anthropic-jsonl", "caa-json", NULL};
    o->mark = mark_of(m);
    o->test_fraction = 0.1;
    if (check_keys(x, m, pre, K)) return -1;
    yaml_node_t *v, *tf;
    if (!(v = get(x, m, "name"))) return fail(x, m, KP(pre, "name"), "missing (the behavior's name)");
    if (read_str(x, v, KP(pre, "name"), 0, &o->name) || check_name(x, v, KP(pre, "name"), o->name)) return -1;
    if (!(v = get(x, m, "data"))) return fail(x, m, KP(pre, "data"), "missing (the pair file to train on)");
    if (read_path(x, v, KP(pre, "data"), &o->data)) return -1;
    if ((v = get(x, m, "test_data")) && !is_null(v) && read_path(x, v, KP(pre, "test_data"), &o->test_data))
        return -1;
    if ((tf = get(x, m, "test_fraction"))) {
        if (read_double(x, tf, KP(pre, "test_fraction"), &o->test_fraction)) return -1;
        if (!(o->test_fraction >= 0 && o->test_fraction < 1))
            return fail(x, tf, KP(pre, "test_fraction"), "must be in [0, 1), got %s", sval(tf));
        if (o->test_data)
            return fail(x, tf, KP(pre, "test_fraction"), "has no effect with test_data set (remove one)");
    }
    int f = 0;
    if ((v = get(x, m, "format")) && read_choice(x, v, KP(pre, "format"), FMTS, &f)) return -1;
    o->format = (bipo_data_format)f;
    if ((v = get(x, m, "fields"))) {
        char fpre[96];
        snprintf(fpre, sizeof fpre, "%s.fields", pre);
        if (check_keys(x, v, fpre, FK)) return -1;
        char **dst[3] = {(char **)&o->fields.question, (char **)&o->fields.matching,
                         (char **)&o->fields.not_matching};
        for (int k = 0; k < 3; k++) {
            yaml_node_t *fv = get(x, v, FK[k]);
            if (fv && read_str(x, fv, KP(fpre, FK[k]), 0, dst[k])) return -1;
        }
    }
    if ((v = get(x, m, "max_pairs")) && read_size(x, v, KP(pre, "max_pairs"), 0, &o->max_pairs)) return -1;
    static const char *const FORMS[] = {"letter", "text", NULL};
    if ((v = get(x, m, "answer_form")) && read_choice(x, v, KP(pre, "answer_form"), FORMS, &o->answer_text))
        return -1;
    return 0;
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

// One row of the settings table (workers/hparams.h) from YAML node v, bounds checked.
static int read_hp(ctx *x, yaml_node_t *v, const char *key, const bipo_hp_field *f, bipo_hparams *hp) {
    unsigned long long u = 0;
    int s = 0;
    switch (f->type) {
    case BIPO_HP_DOUBLE: {
        double d;
        if (read_double(x, v, key, &d)) return -1;
        int open = f->flags & BIPO_HP_LO_OPEN;
        if (isfinite(f->hi) && !((open ? d > f->lo : d >= f->lo) && d < f->hi))
            return fail(x, v, key, "must be in %c%g, %g), got %s", open ? '(' : '[', f->lo, f->hi, sval(v));
        if (open ? !(d > f->lo) : !(d >= f->lo))
            return fail(x, v, key, "must be %s %g, got %s", open ? ">" : ">=", f->lo, sval(v));
        bipo_hp_set_double(hp, f, d);
        return 0;
    }
    case BIPO_HP_SIZE:
        if (read_int(x, v, key, (unsigned long long)f->lo, SIZE_MAX, &u, NULL)) return -1;
        break;
    case BIPO_HP_U64:
        if (read_int(x, v, key, 0, UINT64_MAX, &u, NULL)) return -1;
        break;
    case BIPO_HP_BOOL:
        if (read_bool(x, v, key, &s)) return -1;
        u = (unsigned long long)s;
        break;
    default:
        if (read_choice(x, v, key, f->names, &s)) return -1;
        u = (unsigned long long)f->values[s];
    }
    bipo_hp_set_u64(hp, f, u);
    return 0;
}

// The rows that share YAML key `key` (a list like adam_betas: [beta1, beta2]) from one list.
static int read_hp_list(ctx *x, yaml_node_t *v, const bipo_hp_field *first, const char *key,
                        bipo_hparams *hp) {
    const bipo_hp_field *rows[8];
    size_t n = 0;
    for (size_t i = 0; i < bipo_hp_n_fields && n < 8; i++)
        if (bipo_hp_fields[i].elem && !strcmp(bipo_hp_key(&bipo_hp_fields[i]), bipo_hp_key(first)))
            rows[bipo_hp_fields[i].elem - 1] = &bipo_hp_fields[i], n++;
    char b[96], names[160] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", rows[i]->name);
    yaml_node_item_t *it = v->data.sequence.items.start;
    if (v->type != YAML_SEQUENCE_NODE || (size_t)(v->data.sequence.items.top - it) != n)
        return fail(x, v, key, "expected a list of %s numbers [%s], got %s", n == 2 ? "two" : "several", names,
                    v->type == YAML_SEQUENCE_NODE ? "a list of another length" : what(v, b, sizeof b));
    for (size_t i = 0; i < n; i++) {
        char k[64];
        snprintf(k, sizeof k, "%s[%zu]", key, i);
        if (read_hp(x, node(x, it[i]), k, rows[i], hp)) return -1;
    }
    return 0;
}

static int parse_train(ctx *x, yaml_node_t *m, bipo_train_cfg *t) {
    // known keys: every YAML row's key once, then save_epochs (a list: not a table row)
    static const char *K[64];
    size_t nk = 0;
    for (size_t i = 0; i < bipo_hp_n_fields && nk < 62; i++) {
        const bipo_hp_field *f = &bipo_hp_fields[i];
        if (!(f->flags & BIPO_HP_YAML) || f->elem > 1) continue;
        K[nk++] = bipo_hp_key(f);
    }
    K[nk++] = "save_epochs", K[nk] = NULL;
    if (check_keys(x, m, "train", K)) return -1;
    yaml_node_t *v;
    const bipo_hp_field *preset = bipo_hp_find("preset"); // first: the other keys override it
    if ((v = get(x, m, "preset"))) {
        if (read_hp(x, v, "train.preset", preset, &t->hp)) return -1;
        bipo_hparams_preset(&t->hp, t->hp.preset);
    }
    for (size_t i = 0; i < bipo_hp_n_fields; i++) {
        const bipo_hp_field *f = &bipo_hp_fields[i];
        if (f == preset) continue;
        if (!(f->flags & BIPO_HP_YAML) || f->elem > 1 || !(v = get(x, m, bipo_hp_key(f)))) continue;
        const char *key = KP("train", bipo_hp_key(f));
        if (f->elem ? read_hp_list(x, v, f, key, &t->hp) : read_hp(x, v, key, f, &t->hp)) return -1;
    }
    char b[96];
    if ((v = get(x, m, "save_epochs"))) {
        if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.start == v->data.sequence.items.top)
            return fail(x, v, "train.save_epochs", "expected a non-empty list of epochs like [5, 10, 20], got %s",
                        v->type == YAML_SEQUENCE_NODE ? "an empty list" : what(v, b, sizeof b));
        size_t n = v->data.sequence.items.top - v->data.sequence.items.start;
        t->save_epochs = xcalloc(n, sizeof *t->save_epochs);
        for (size_t k = 0; k < n; k++) {
            yaml_node_t *e = node(x, v->data.sequence.items.start[k]);
            char key[48];
            snprintf(key, sizeof key, "train.save_epochs[%zu]", k);
            if (read_size(x, e, key, 1, &t->save_epochs[k])) return -1;
            if (t->save_epochs[k] > t->hp.epochs)
                return fail(x, e, key, "epoch %zu is past train.epochs = %zu (each must be in 1..%zu)",
                            t->save_epochs[k], t->hp.epochs, t->hp.epochs);
            t->n_save_epochs++;
        }
        qsort(t->save_epochs, n, sizeof *t->save_epochs, cmp_size);
        size_t u = 0;
        for (size_t k = 0; k < n; k++)
            if (!u || t->save_epochs[u - 1] != t->save_epochs[k]) t->save_epochs[u++] = t->save_epochs[k];
        t->n_save_epochs = u;
    }
    return 0;
}

// `single: {...}` or `plural: [{...}, ...]`: exactly one of them. Returns the count or -1.
// *count is set as soon as the items exist, so bipo_config_free can free a partial list.
// Each item's `field` (a char * at name_off, with its bipo_mark at mark_off) must be unique.
typedef struct {
    const char *single, *plural, *field;
    size_t size, name_off, mark_off;
    int (*one)(ctx *, yaml_node_t *, const char *, void *);
} list_kind;

static int parse_list(ctx *x, yaml_node_t *root, const list_kind *k, void **items, size_t *count) {
    const char *single = k->single, *plural = k->plural;
    size_t size = k->size;
    yaml_node_t *s = get(x, root, single), *p = get(x, root, plural);
    char b[96];
    if (s && p) return fail(x, p, plural, "set either '%s' or '%s', not both", single, plural);
    if (!s && !p) return fail(x, root, single, "missing (or '%s:' with a list)", plural);
    if (s) {
        *items = xcalloc(1, size), *count = 1;
        return k->one(x, s, single, *items);
    }
    if (p->type != YAML_SEQUENCE_NODE || p->data.sequence.items.start == p->data.sequence.items.top)
        return fail(x, p, plural, "expected a non-empty list (- item lines), got %s",
                    p->type == YAML_SEQUENCE_NODE ? "an empty list" : what(p, b, sizeof b));
    size_t n = p->data.sequence.items.top - p->data.sequence.items.start;
    *items = xcalloc(n, size), *count = n;
    for (size_t i = 0; i < n; i++) {
        char pre[64];
        snprintf(pre, sizeof pre, "%s[%zu]", plural, i);
        if (k->one(x, node(x, p->data.sequence.items.start[i]), pre, (char *)*items + i * size)) return -1;
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++) {
            const char *a = *(char **)((char *)*items + i * size + k->name_off);
            const char *b = *(char **)((char *)*items + j * size + k->name_off);
            const bipo_mark *m = (const bipo_mark *)((char *)*items + i * size + k->mark_off);
            if (strcmp(a, b)) continue;
            bipo_set_error("%s:%zu:%zu: %s[%zu].%s: '%s' is also the %s of %s[%zu] (set %s: to tell "
                           "them apart)", x->file, m->line, m->column, plural, i, k->field, a,
                           k->field, plural, j, k->field);
            return -1;
        }
    return 0;
}
static int one_model(ctx *x, yaml_node_t *n, const char *pre, void *o) { return parse_model(x, n, pre, o); }
static int one_behavior(ctx *x, yaml_node_t *n, const char *pre, void *o) { return parse_behavior(x, n, pre, o); }

// Byte offset of character index ci (libyaml marks count characters, not bytes).
static size_t char_to_byte(const char *s, size_t ci) {
    size_t i = 0;
    for (; s[i] && ci; i++)
        if (((unsigned char)s[i + 1] & 0xC0) != 0x80) ci--;
    return i;
}

static int parse_root(ctx *x, yaml_node_t *root, bipo_config_file *c) {
    static const char *const K[] = {"model", "models", "behavior", "behaviors", "layer", "layers",
                                    "train", "cache", "output", "ranks_per_job", "eval", NULL};
    if (check_keys(x, root, "", K)) return -1;
    static const list_kind MODELS = {"model", "models", "id", sizeof(bipo_model_cfg),
                                     offsetof(bipo_model_cfg, id), offsetof(bipo_model_cfg, mark), one_model};
    static const list_kind BEHAVIORS = {"behavior", "behaviors", "name", sizeof(bipo_behavior_cfg),
                                        offsetof(bipo_behavior_cfg, name),
                                        offsetof(bipo_behavior_cfg, mark), one_behavior};
    if (parse_list(x, root, &MODELS, (void **)&c->models, &c->n_models) ||
        parse_list(x, root, &BEHAVIORS, (void **)&c->behaviors, &c->n_behaviors))
        return -1;
    yaml_node_t *l1 = get(x, root, "layer"), *ls = get(x, root, "layers"), *v;
    if (l1 && ls) return fail(x, ls, "layers", "set either 'layer' or 'layers', not both");
    if (l1 || ls) {
        if (read_layers(x, l1 ? l1 : ls, l1 ? "layer" : "layers", &c->layers)) return -1;
    } else
        for (size_t i = 0; i < c->n_models; i++)
            if (!c->models[i].layers.n)
                return fail(x, root, "layer", "missing (or 'layers:'); model '%s' has no layers of "
                            "its own", c->models[i].id);
    if ((v = get(x, root, "train")) && !is_null(v) && parse_train(x, v, &c->train)) return -1;
    if (!c->train.n_save_epochs) { // default: the last epoch only
        c->train.save_epochs = xmalloc(sizeof *c->train.save_epochs);
        c->train.save_epochs[0] = c->train.hp.epochs, c->train.n_save_epochs = 1;
    }
    c->cache_bytes = (size_t)2048 << 20;
    if ((v = get(x, root, "cache")) && !is_null(v)) {
        static const char *const CK[] = {"memory_mb", NULL};
        yaml_node_t *mb;
        size_t m;
        if (check_keys(x, v, "cache", CK)) return -1;
        if ((mb = get(x, v, "memory_mb"))) {
            if (read_size(x, mb, "cache.memory_mb", 0, &m)) return -1;
            c->cache_bytes = m << 20;
        }
    }
    c->train.hp.cache_bytes = c->cache_bytes;
    if ((v = get(x, root, "output")) && read_path(x, v, "output", &c->output)) return -1;
    if ((v = get(x, root, "ranks_per_job")) && read_size(x, v, "ranks_per_job", 0, &c->ranks_per_job))
        return -1;
    if ((v = get(x, root, "eval"))) { // reserved: a mapping, kept as its source text
        char b[96];
        if (v->type != YAML_MAPPING_NODE)
            return fail(x, v, "eval", "expected a mapping, got %s", what(v, b, sizeof b));
        size_t s = char_to_byte(x->text, v->start_mark.index);
        size_t e = s + char_to_byte(x->text + s, v->end_mark.index - v->start_mark.index);
        while (e > s && isspace((unsigned char)x->text[e - 1])) e--;
        c->eval_text = xmalloc(e - s + 1);
        memcpy(c->eval_text, x->text + s, e - s), c->eval_text[e - s] = 0;
        c->eval = xcalloc(1, sizeof *c->eval);
        if (bipo_eval_cfg_parse(x, v, c, c->eval)) return -1; // pipeline/config_eval.c
    }
    return 0;
}

// ---- entry points ----------------------------------------------------------------------------

void bipo_train_cfg_defaults(bipo_train_cfg *t) {
    memset(t, 0, sizeof *t);
    bipo_hparams_defaults(&t->hp);
}

int bipo_config_parse_string(bipo_config_file *c, const char *text, const char *virtual_path) {
    memset(c, 0, sizeof *c);
    bipo_train_cfg_defaults(&c->train);
    c->path = xstrdup(virtual_path);
    c->text = xstrdup(text);
    bipo_sha256 h;
    bipo_sha256_init(&h);
    bipo_sha256_update(&h, text, strlen(text));
    bipo_sha256_hex(&h, c->config_hash);
    ctx x = {.file = c->path, .text = c->text};
    const char *slash = strrchr(virtual_path, '/');
    x.dir = xstrdup(virtual_path);
    x.dir[slash ? (size_t)(slash - virtual_path) + (slash == virtual_path) : 0] = 0;
    yaml_parser_t p;
    CHECK(yaml_parser_initialize(&p), "yaml_parser_initialize failed");
    yaml_parser_set_input_string(&p, (const unsigned char *)c->text, strlen(c->text));
    int rc = -1, have_doc = 0;
    if (!yaml_parser_load(&p, &x.doc)) {
        if (p.error == YAML_READER_ERROR) { // bad bytes: only a byte offset is known
            size_t line = 1, col = 1;
            for (size_t i = 0; i < p.problem_offset && c->text[i]; i++)
                if (c->text[i] == '\n') line++, col = 1;
                else col++;
            bipo_set_error("%s:%zu:%zu: %s (save the config as UTF-8)", c->path, line, col, p.problem);
        } else if (p.context)
            bipo_set_error("%s:%zu:%zu: YAML syntax error: %s (%s at line %zu)", c->path,
                           p.problem_mark.line + 1, p.problem_mark.column + 1, p.problem,
                           p.context, p.context_mark.line + 1);
        else
            bipo_set_error("%s:%zu:%zu: YAML syntax error: %s", c->path, p.problem_mark.line + 1,
                           p.problem_mark.column + 1, p.problem ? p.problem : "unknown");
        goto out;
    }
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&x.doc);
    if (!root || is_null(root)) {
        bipo_set_error("%s:1:1: empty config (expected model:, behavior:, layer: ...; see "
                       "configs/quickstart.yaml)", c->path);
        goto out;
    }
    yaml_document_t next;
    if (yaml_parser_load(&p, &next)) {
        int more = yaml_document_get_root_node(&next) != NULL;
        yaml_mark_t m = next.start_mark;
        yaml_document_delete(&next);
        if (more) {
            bipo_set_error("%s:%zu:%zu: a second YAML document ('---'); a config is one document",
                           c->path, m.line + 1, m.column + 1);
            goto out;
        }
    }
    rc = parse_root(&x, root, c);
out:
    if (have_doc) yaml_document_delete(&x.doc);
    yaml_parser_delete(&p);
    free(x.dir);
    if (rc) bipo_config_free(c);
    return rc;
}

int bipo_config_load(bipo_config_file *c, const char *path) {
    memset(c, 0, sizeof *c);
    size_t len;
    char *text = bipo_read_file(path, &len);
    if (!text) return -1;
    if (strlen(text) != len) {
        free(text);
        bipo_set_error("%s: NUL byte in the config (is it a YAML text file?)", path);
        return -1;
    }
    int rc = bipo_config_parse_string(c, text, path);
    free(text);
    return rc;
}

void bipo_config_free(bipo_config_file *c) {
    for (size_t i = 0; i < c->n_models; i++) {
        bipo_model_cfg *m = &c->models[i];
        free(m->path), free(m->id), free(m->template_name), free(m->system_prompt), free(m->lora);
        layers_free(&m->layers);
    }
    for (size_t i = 0; i < c->n_behaviors; i++) {
        bipo_behavior_cfg *b = &c->behaviors[i];
        free(b->name), free(b->data), free(b->test_data);
        free((char *)b->fields.question), free((char *)b->fields.matching);
        free((char *)b->fields.not_matching);
    }
    free(c->models), free(c->behaviors);
    layers_free(&c->layers);
    free(c->train.save_epochs);
    free(c->path), free(c->text), free(c->output), free(c->eval_text);
    if (c->eval) bipo_eval_cfg_free(c->eval), free(c->eval);
    memset(c, 0, sizeof *c);
}

const bipo_layer_list *bipo_config_model_layers(const bipo_config_file *c, size_t i) {
    return c->models[i].layers.n ? &c->models[i].layers : &c->layers;
}

int bipo_config_check_layers(const bipo_config_file *c, size_t model_index, size_t n_layers) {
    const bipo_layer_list *l = bipo_config_model_layers(c, model_index);
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i] >= n_layers) {
            bipo_set_error("%s:%zu:%zu: %s: layer %zu is out of range for model '%s' (%zu layers: "
                           "0..%zu)", c->path, l->mark[i].line, l->mark[i].column, l->key, l->v[i],
                           c->models[model_index].id, n_layers, n_layers ? n_layers - 1 : 0);
            return -1;
        }
    return 0;
}

// ---- the readers for the other sections (config_yaml.h) --------------------------------------
bipo_mark bipo_yaml_mark(const yaml_node_t *n) { return mark_of(n); }
int bipo_yaml_fail(ctx *x, const yaml_node_t *n, const char *key, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fail(x, n, key, "%s", msg);
}
const char *bipo_yaml_file(const ctx *x) { return x->file; }
yaml_node_t *bipo_yaml_node(ctx *x, int id) { return node(x, id); }
int bipo_yaml_is_null(const yaml_node_t *n) { return is_null(n); }
const char *bipo_yaml_what(const yaml_node_t *n, char *buf, size_t cap) { return what(n, buf, cap); }
int bipo_yaml_check_keys(ctx *x, yaml_node_t *map, const char *prefix, const char *const *known) {
    return check_keys(x, map, prefix, known);
}
yaml_node_t *bipo_yaml_get(ctx *x, yaml_node_t *map, const char *name) { return get(x, map, name); }
int bipo_yaml_str(ctx *x, yaml_node_t *v, const char *key, int allow_null, char **out) {
    return read_str(x, v, key, allow_null, out);
}
int bipo_yaml_double(ctx *x, yaml_node_t *v, const char *key, double *out) { return read_double(x, v, key, out); }
int bipo_yaml_size(ctx *x, yaml_node_t *v, const char *key, size_t lo, size_t *out) {
    return read_size(x, v, key, lo, out);
}
int bipo_yaml_u64(ctx *x, yaml_node_t *v, const char *key, uint64_t *out) {
    unsigned long long u = 0;
    if (read_int(x, v, key, 0, UINT64_MAX, &u, NULL)) return -1;
    *out = u;
    return 0;
}
int bipo_yaml_choice(ctx *x, yaml_node_t *v, const char *key, const char *const *names, int *out) {
    return read_choice(x, v, key, names, out);
}
int bipo_yaml_path(ctx *x, yaml_node_t *v, const char *key, char **out) { return read_path(x, v, key, out); }
int bipo_yaml_layers(ctx *x, yaml_node_t *v, const char *key, bipo_layer_list *l) {
    return read_layers(x, v, key, l);
}
int bipo_yaml_name(ctx *x, yaml_node_t *v, const char *key, char **out) {
    return read_str(x, v, key, 0, out) || check_name(x, v, key, *out);
}
