// pipeline/cmd_export.c — `bipo-pipeline export LIB.h5 -o FILE [--format F]`: one vector of
// the library as a file other tools load (export_format.h, docs/EXPORT.md): raw f32 (default,
// what `generate --vector` reads), a llama.cpp control vector (gguf), safetensors, or the .pt
// steer_config of lm-evaluation-harness's `steered` model. The run is chosen by
// --model/--behavior/--layer/--run; any left out must be unambiguous among the newest runs.
// `--all -o DIR`: every layer's newest run, one file each, <model>__<behavior>__L<layer>__<method>.<ext>.
// Every file is written to a temp file beside it, fsync'ed and renamed: all or nothing.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"          // defines: arg_spec, args_parse
#include "commands.h"      // defines: cmd_export
#include "export_format.h" // defines: export_vec, export_encode, export_write_atomic
#include "store.h"         // defines: bipo_store_open, bipo_store_list, bipo_store_read_vector
#include "util.h"          // defines: bipo_last_error, bipo_set_error

static const char *USAGE =
    "export LIB.h5 -o|--output FILE [--format f32|gguf|safetensors|pt] [--model ID] "
    "[--behavior B] [--layer L] [--run R] [--multiplier M] [--print-layer]\n"
    "       bipo-pipeline export LIB.h5 --all -o|--output DIR [--format F] [--model ID] "
    "[--behavior B] [--multiplier M]";

#define METHOD "bipo" // the one training method a library holds today (/caa is reserved)

typedef struct {
    const char *model, *behavior, *run;
    long layer; // -1: any
} filter;

static int matches(const filter *f, const bipo_run_entry *e, int level) {
    if (f->model && strcmp(f->model, e->model)) return 0;
    if (level >= 1 && f->behavior && strcmp(f->behavior, e->behavior)) return 0;
    if (level >= 2 && f->layer >= 0 && f->layer != e->layer) return 0;
    if (level >= 3 && (f->run ? strcmp(f->run, e->run) != 0 : !e->newest)) return 0;
    return 1;
}

static void value_of(const bipo_run_entry *e, int level, char v[BIPO_NAME_MAX]) {
    if (level == 2) snprintf(v, BIPO_NAME_MAX, "%d", e->layer);
    else snprintf(v, BIPO_NAME_MAX, "%s", level == 0 ? e->model : level == 1 ? e->behavior : e->run);
}

// Why nothing matched: the first filter (model, behavior, layer, run) that leaves no run, and
// the values the library does have there.
static void explain_none(const char *lib, const filter *f, const bipo_listing *ls) {
    static const char *field[] = {"model", "behavior", "layer", "run"};
    if (ls->n_runs == 0) {
        fprintf(stderr, "bipo-pipeline export: %s: the library has no runs yet\n", lib);
        return;
    }
    int level = 0;
    for (; level < 3; level++) {
        size_t n = 0;
        for (size_t i = 0; i < ls->n_runs; i++) n += matches(f, &ls->runs[i], level);
        if (!n) break;
    }
    char want[BIPO_NAME_MAX + 32], have[600] = ", ";
    if (level == 2) snprintf(want, sizeof want, "%ld", f->layer);
    else snprintf(want, sizeof want, "'%s'", level == 0 ? f->model : level == 1 ? f->behavior
                                             : f->run ? f->run : "(newest)");
    for (size_t i = 0; i < ls->n_runs; i++) {
        char v[BIPO_NAME_MAX], pat[BIPO_NAME_MAX + 8];
        if (level > 0 && !matches(f, &ls->runs[i], level - 1)) continue;
        value_of(&ls->runs[i], level, v);
        snprintf(pat, sizeof pat, ", %s, ", v);
        if (!strstr(have, pat) && strlen(have) + strlen(pat) < sizeof have)
            strcat(have, pat + 2); // have = ", a, b, "
    }
    have[strlen(have) - 2] = 0;
    char ctx[2 * BIPO_NAME_MAX + 16] = "";
    if (level > 0 && f->model) snprintf(ctx, sizeof ctx, " for %s", f->model);
    if (level > 1 && f->behavior)
        snprintf(ctx + strlen(ctx), sizeof ctx - strlen(ctx), "%s%s", *ctx ? " / " : " for ",
                 f->behavior);
    fprintf(stderr, "bipo-pipeline export: %s: no %s %s%s (there: %s; `bipo-pipeline inspect %s` "
                    "lists the runs)\n",
            lib, field[level], want, ctx, have + 2, lib);
}

// The vector of run e, encoded in format fmt (file bytes in out).
static int encode_run(bipo_store *s, const bipo_run_entry *e, export_format fmt, double mult,
                      export_buf *out) {
    bipo_model_entry mi;
    if (bipo_store_read_model(s, e->model, &mi) != 0) return -1;
    size_t C = 0;
    float *v = bipo_store_read_vector(s, e->model, e->behavior, e->layer, e->run, &C);
    if (!v) return -1;
    export_vec ev = {e->model, e->behavior, e->run, e->config_hash, METHOD, mi.architecture,
                     e->layer, mi.layers, v, C, mult};
    int rc = export_encode(fmt, &ev, out);
    free(v);
    return rc;
}

static void print_done(const char *path, const bipo_run_entry *e, export_format fmt, int print_layer) {
    if (print_layer) printf("%d\n", e->layer);
    else printf("%s: %s / %s / layer %d / run %s (%zu floats, %s)\n", path, e->model, e->behavior,
                e->layer, e->run, e->C, export_format_ext(fmt));
}

// --all: every newest run passing the model/behavior filter, encoded first (so a run that
// cannot be read stops the export before any file is written), then written one by one.
static int export_all(bipo_store *s, const char *lib, const bipo_listing *ls, const filter *f,
                      const char *dir, export_format fmt, double mult) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "bipo-pipeline export: %s: cannot create the folder: %s\n", dir, strerror(errno));
        return 1;
    }
    size_t n = 0, skipped = 0;
    export_buf *bufs = xcalloc(ls->n_runs + 1, sizeof *bufs);
    const bipo_run_entry **which = xcalloc(ls->n_runs + 1, sizeof *which);
    int rc = 1;
    for (size_t i = 0; i < ls->n_runs; i++) {
        const bipo_run_entry *e = &ls->runs[i];
        if (!matches(f, e, 3)) continue;
        if (fmt == EXPORT_GGUF && e->layer == 0) { // llama.cpp has no layer-0 control vector
            fprintf(stderr, "bipo-pipeline export: skipped %s / %s / layer 0: a llama.cpp control "
                            "vector cannot steer layer 0\n", e->model, e->behavior);
            skipped++;
            continue;
        }
        if (encode_run(s, e, fmt, mult, &bufs[n]) != 0) {
            fprintf(stderr, "bipo-pipeline export: %s\n", bipo_last_error());
            goto done;
        }
        which[n++] = e;
    }
    if (n == 0) {
        fprintf(stderr, "bipo-pipeline export: %s: no runs to export%s\n", lib,
                f->model || f->behavior ? " with this --model/--behavior" : "");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s__%s__L%d__%s.%s", dir, which[i]->model,
                 which[i]->behavior, which[i]->layer, METHOD, export_format_ext(fmt));
        if (export_write_atomic(path, &bufs[i]) != 0) {
            fprintf(stderr, "bipo-pipeline export: %s (%zu of %zu files were written before it)\n",
                    bipo_last_error(), i, n);
            goto done;
        }
        print_done(path, which[i], fmt, 0);
    }
    printf("%s: %zu vector%s exported to %s", lib, n, n == 1 ? "" : "s", dir);
    if (skipped) printf(" (%zu skipped: above)", skipped);
    printf("\n");
    rc = 0;
done:
    for (size_t i = 0; i <= n && i < ls->n_runs + 1; i++) ebuf_free(&bufs[i]);
    free(bufs);
    free(which);
    return rc;
}

int cmd_export(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "bipo-pipeline export: missing LIB.h5\nusage: bipo-pipeline %s\n", USAGE);
        return 2;
    }
    const char *lib = argv[1], *out = NULL, *format = "f32";
    filter f = {NULL, NULL, NULL, -1};
    int print_layer = 0, all = 0;
    double mult = 1.0;
    arg_spec sp[] = {
        {"--output", ARG_STR, &out, 0, 0, 0},          {"--format", ARG_STR, &format, 0, 0, 0},
        {"--model", ARG_STR, &f.model, 0, 0, 0},       {"--behavior", ARG_STR, &f.behavior, 0, 0, 0},
        {"--layer", ARG_INT, &f.layer, 0, 1e6, 0},     {"--run", ARG_STR, &f.run, 0, 0, 0},
        {"--all", ARG_FLAG, &all, 0, 0, 0},            {"--multiplier", ARG_FLOAT, &mult, -1e6, 1e6, 0},
        {"--print-layer", ARG_FLAG, &print_layer, 0, 0, 0},
    };
    if (args_parse("export", USAGE, sp, sizeof sp / sizeof sp[0], argc - 1, argv + 1) != 0) return 2;
    export_format fmt;
    if (export_format_parse(format, &fmt) != 0) {
        fprintf(stderr, "bipo-pipeline export: %s\n", bipo_last_error());
        return 2;
    }
    if (args_seen(sp, sizeof sp / sizeof sp[0], "--multiplier") && fmt != EXPORT_PT) {
        fprintf(stderr, "bipo-pipeline export: --multiplier is the .pt file's steering_coefficient "
                        "(--format pt); the other formats store the vector unscaled (scale it when "
                        "loading: generate --multiplier M, llama.cpp --control-vector-scaled FILE:M)\n");
        return 2;
    }
    if (!out) {
        fprintf(stderr, "bipo-pipeline export: -o/--output %s is required\n", all ? "DIR" : "FILE");
        return 2;
    }
    if (all && (f.layer >= 0 || f.run || print_layer)) {
        fprintf(stderr, "bipo-pipeline export: --all exports every layer's newest run: drop "
                        "--layer, --run and --print-layer (or drop --all)\n");
        return 2;
    }
    bipo_store *s = bipo_store_open(lib, BIPO_STORE_READ);
    bipo_listing ls = {0};
    if (!s || bipo_store_list(s, &ls) != 0) {
        fprintf(stderr, "bipo-pipeline export: %s\n", bipo_last_error());
        if (s) bipo_store_close(s);
        return 1;
    }
    int rc = 1;
    if (all) {
        rc = export_all(s, lib, &ls, &f, out, fmt, mult);
        goto done;
    }
    const bipo_run_entry *pick = NULL;
    size_t n = 0;
    for (size_t i = 0; i < ls.n_runs; i++)
        if (matches(&f, &ls.runs[i], 3)) pick = &ls.runs[i], n++;
    if (n == 0) {
        explain_none(lib, &f, &ls);
        goto done;
    }
    if (n > 1) {
        fprintf(stderr, "bipo-pipeline export: %s: %zu runs match (narrow it down with --model, "
                        "--behavior, --layer, --run; `bipo-pipeline inspect %s` lists them)\n",
                lib, n, lib);
        goto done;
    }
    export_buf b = {0};
    if (encode_run(s, pick, fmt, mult, &b) != 0 || export_write_atomic(out, &b) != 0) {
        fprintf(stderr, "bipo-pipeline export: %s\n", bipo_last_error());
        ebuf_free(&b);
        goto done;
    }
    ebuf_free(&b);
    print_done(out, pick, fmt, print_layer);
    rc = 0;
done:
    bipo_listing_free(&ls);
    bipo_store_close(s);
    return rc;
}
