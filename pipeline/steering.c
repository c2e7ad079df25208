// pipeline/steering.c — the steering options of `generate` and `logprobs` (see steering.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steering.h" // defines: steering, steer_args, steering_open
#include "store.h"    // defines: bipo_store_open, bipo_store_read_vector, bipo_store_read_run_attr
#include "util.h"     // defines: bipo_read_file, bipo_set_error, xmalloc

// Raw little-endian f32 vector of exactly C values.
static float *load_raw(const char *path, size_t C) {
    size_t len = 0;
    char *buf = bipo_read_file(path, &len);
    if (!buf) return NULL;
    if (len != C * sizeof(float)) {
        bipo_set_error("%s: %zu bytes, but a steering vector for this model is %zu float32 values "
                       "= %zu bytes (hidden size %zu)", path, len, C, C * sizeof(float), C);
        free(buf);
        return NULL;
    }
    float *v = xmalloc(len);
    memcpy(v, buf, len);
    free(buf);
    return v;
}

// "LIB:model/behavior/layer[/method]": 1 and the parts (in buf), 0 when spec is a plain path.
typedef struct { char *lib, *model, *behavior, *method; int layer; } lib_spec;
static int parse_lib_spec(const char *spec, char *buf, size_t n, lib_spec *o) {
    const char *colon = strrchr(spec, ':');
    if (!colon || strlen(spec) >= n) return 0;
    snprintf(buf, n, "%s", spec);
    char *rest = buf + (colon - spec) + 1, *parts[4] = {0};
    buf[colon - spec] = 0;
    size_t k = 0;
    char *p = rest;
    for (; k < 4 && p; k++) {
        parts[k] = p;
        p = strchr(p, '/');
        if (p) *p++ = 0;
    }
    if (k < 3 || p) return 0;
    char *end;
    long layer = strtol(parts[2], &end, 10);
    if (end == parts[2] || *end || layer < 0) return 0;
    *o = (lib_spec){buf, parts[0], parts[1], parts[3] ? parts[3] : "bipo", (int)layer};
    return 1;
}

// The vector of a library entry, with its run's system prompt and template as defaults.
static float *load_library(steering *st, const lib_spec *ls, size_t C) {
    if (strcmp(ls->method, "bipo") != 0) {
        bipo_set_error("%s: method '%s': this library holds bipo vectors only (drop the last "
                       "part or write /bipo)", ls->lib, ls->method);
        return NULL;
    }
    bipo_store *s = bipo_store_open(ls->lib, BIPO_STORE_READ);
    if (!s) return NULL;
    size_t n = 0;
    char text[65536], tname[64];
    float *v = bipo_store_read_vector(s, ls->model, ls->behavior, ls->layer, NULL, &n);
    int have_sys = v ? bipo_store_read_run_attr(s, ls->model, ls->behavior, ls->layer, NULL,
                                                "system_prompt", text, sizeof text) : -1;
    int have_tpl = have_sys >= 0 ? bipo_store_read_run_attr(s, ls->model, ls->behavior, ls->layer,
                                                            NULL, "template", tname, sizeof tname)
                                 : -1;
    bipo_store_close(s);
    if (v && n != C) {
        bipo_set_error("%s: %s/%s/%d has %zu values, but this model's hidden size is %zu", ls->lib,
                       ls->model, ls->behavior, ls->layer, n, C);
        have_tpl = -1;
    }
    if (have_tpl == 1 && !(st->tpl = bipo_chat_template_by_name(tname))) have_tpl = -1;
    if (have_tpl < 0) {
        free(v);
        return NULL;
    }
    if (have_sys == 1) st->run_system = xstrdup(text);
    return v;
}

static int parse_mults(const char *s, double **out, size_t *n) {
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    *out = xmalloc(cap * sizeof(double));
    *n = 0;
    for (const char *p = s;; p++) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !isfinite(v) || (*end && *end != ',')) {
            bipo_set_error("--multiplier '%s': entry %zu is not a number (want a list like "
                           "-2,-1,0,1,2)", s, *n + 1);
            return -1;
        }
        (*out)[(*n)++] = v;
        p = end;
        if (!*p) return 0;
    }
}

int steering_open(steering *st, const char *cmd, const steer_args *a, bipo_model *m) {
    memset(st, 0, sizeof *st);
    const bipo_config *c = &m->cfg;
    float *host = NULL;
    int layer = (int)a->layer;
    if (parse_mults(a->multiplier ? a->multiplier : "1", &st->mult, &st->n_mult) != 0) goto bad;
    if (a->vector) {
        char buf[8192];
        lib_spec ls;
        if (parse_lib_spec(a->vector, buf, sizeof buf, &ls)) {
            if (!(host = load_library(st, &ls, c->C))) goto bad;
            if (layer < 0) layer = ls.layer;
        } else {
            if (layer < 0) {
                bipo_set_error("--vector %s is a raw file: give its --layer (or a library entry "
                               "LIB.h5:model/behavior/layer)", a->vector);
                goto bad;
            }
            if (!(host = load_raw(a->vector, c->C))) goto bad;
        }
        for (size_t i = 0; i < c->C; i++)
            if (!isfinite(host[i])) {
                bipo_set_error("--vector %s: value %zu is not finite", a->vector, i);
                goto bad;
            }
        if ((size_t)layer >= c->L) {
            bipo_set_error("--layer %d is out of range: the model has %zu layers (0..%zu)", layer,
                           c->L, c->L - 1);
            goto bad;
        }
        st->on = 1, st->layer = layer;
        st->vec = m->be->alloc(c->C);
        m->be->upload(st->vec, host, c->C);
    } else if (a->layer >= 0 || a->multiplier) {
        bipo_set_error("--layer and --multiplier need a --vector");
        goto bad;
    }
    st->system = a->system ? a->system : st->run_system;
    if (a->tpl && !(st->tpl = bipo_chat_template_by_name(a->tpl))) goto bad;
    free(host);
    return 0;
bad:
    fprintf(stderr, "bipo-pipeline %s: %s\n", cmd, bipo_last_error());
    free(host);
    return -1;
}

void steering_close(steering *st, bipo_model *m) {
    if (st->vec) m->be->free(st->vec);
    free(st->mult);
    free(st->run_system);
    memset(st, 0, sizeof *st);
}
