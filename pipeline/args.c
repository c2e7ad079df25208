// pipeline/args.c — see args.h.
#include "args.h" // defines: arg_spec, args_parse, args_parse_ids (implemented here)

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h" // defines: xmalloc, xrealloc

static int fail(const char *cmd, const char *usage, const char *fmt, const char *a,
                const char *b) {
    fprintf(stderr, "bipo-pipeline %s: ", cmd);
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\nusage: bipo-pipeline %s\n", usage);
    return -1;
}

int args_parse(const char *cmd, const char *usage, arg_spec *specs, size_t n, int argc,
               char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *key = strcmp(a, "-o") ? a : "--output"; // every file-writing command: -o
        arg_spec *sp = NULL;
        for (size_t k = 0; k < n; k++)
            if (!strcmp(key, specs[k].name)) sp = &specs[k];
        if (!sp) return fail(cmd, usage, "unknown option '%s'%s", a, "");
        sp->seen = 1;
        if (sp->kind == ARG_FLAG) {
            *(int *)sp->dst = 1;
            continue;
        }
        if (i + 1 >= argc) return fail(cmd, usage, "option %s needs a value%s", a, "");
        const char *v = argv[++i];
        char *end = NULL;
        errno = 0;
        if (sp->kind == ARG_STR) {
            *(const char **)sp->dst = v;
        } else if (sp->kind == ARG_INT) {
            long x = strtol(v, &end, 10);
            if (errno || end == v || *end || x < sp->min || x > sp->max) {
                char rng[96];
                snprintf(rng, sizeof rng, "'%s' (expected an integer in [%.0f, %.0f])", v, sp->min,
                         sp->max);
                return fail(cmd, usage, "bad value for %s: %s", a, rng);
            }
            *(long *)sp->dst = x;
        } else {
            double x = strtod(v, &end);
            if (errno || end == v || *end || !isfinite(x) || x < sp->min || x > sp->max) {
                char rng[96];
                snprintf(rng, sizeof rng, "'%s' (expected a number in [%g, %g])", v, sp->min,
                         sp->max);
                return fail(cmd, usage, "bad value for %s: %s", a, rng);
            }
            *(double *)sp->dst = x;
        }
    }
    return 0;
}

int args_seen(const arg_spec *specs, size_t n, const char *name) {
    for (size_t k = 0; k < n; k++)
        if (!strcmp(specs[k].name, name)) return specs[k].seen;
    return 0;
}

int args_parse_ids(const char *cmd, const char *s, int **ids, size_t *n) {
    size_t cap = 16;
    *ids = xmalloc(cap * sizeof(int));
    *n = 0;
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > 0x7fffffff) {
            fprintf(stderr, "bipo-pipeline %s: --tokens: '%.20s' is not a token id (expected "
                            "comma-separated non-negative integers)\n", cmd, p);
            free(*ids);
            *ids = NULL;
            return -1;
        }
        if (*n == cap) *ids = xrealloc(*ids, (cap *= 2) * sizeof(int));
        (*ids)[(*n)++] = (int)x;
        p = end;
    }
    if (*n == 0) {
        fprintf(stderr, "bipo-pipeline %s: --tokens is empty\n", cmd);
        free(*ids);
        *ids = NULL;
        return -1;
    }
    return 0;
}
