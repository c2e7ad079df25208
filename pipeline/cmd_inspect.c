// pipeline/cmd_inspect.c — `bipo-pipeline inspect LIB.h5 [--json] [--check]`
// A table of the vector library: one row per run (model, behavior, layer, run, status, steps,
// final loss, |v|, finished, '*' for the layer's newest), then checkpoints and provenance.
// --json prints one JSON object instead; --check runs the consistency check first.
// Missing or bad file: one line on stderr, exit 1.
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h" // defines: cmd_inspect
#include "inspect_eval.h" // defines: bipo_inspect_eval_json, bipo_inspect_eval_tables
#include "store.h"    // defines: bipo_store_open, bipo_store_list, bipo_listing
#include "util.h"     // defines: bipo_last_error

static const char *INSPECT_USAGE = "inspect LIB.h5 [--json] [--check]";

static json_t *num_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static int print_json(bipo_store *st, const char *path, const bipo_listing *l) {
    json_t *o = json_object(), *runs = json_array(), *cks = json_array(), *prov = json_array();
    json_object_set_new(o, "path", json_string(path));
    json_object_set_new(o, "format", json_string(BIPO_LIBRARY_FORMAT));
    json_object_set_new(o, "format_version", json_integer(l->format_version));
    json_object_set_new(o, "created", json_string(l->created));
    for (size_t i = 0; i < l->n_runs; i++) {
        const bipo_run_entry *e = &l->runs[i];
        json_t *r = json_object();
        json_object_set_new(r, "model", json_string(e->model));
        json_object_set_new(r, "behavior", json_string(e->behavior));
        json_object_set_new(r, "layer", json_integer(e->layer));
        json_object_set_new(r, "run", json_string(e->run));
        json_object_set_new(r, "newest", json_boolean(e->newest));
        json_object_set_new(r, "status", json_string(e->status));
        json_object_set_new(r, "config_hash", json_string(e->config_hash));
        json_object_set_new(r, "hidden", json_integer((json_int_t)e->C));
        json_object_set_new(r, "steps", json_integer((json_int_t)e->n_steps));
        json_object_set_new(r, "final_loss", num_or_null(e->final_loss));
        json_object_set_new(r, "vector_norm", num_or_null(e->vector_norm));
        json_object_set_new(r, "created", json_string(e->created));
        json_object_set_new(r, "finished", json_string(e->finished));
        json_array_append_new(runs, r);
        if (bipo_inspect_eval_json(st, e, r) != 0) return json_decref(o), -1; // pipeline/inspect_eval.c
    }
    for (size_t i = 0; i < l->n_checkpoints; i++) {
        const bipo_checkpoint_entry *c = &l->checkpoints[i];
        json_t *r = json_object();
        json_object_set_new(r, "model", json_string(c->model));
        json_object_set_new(r, "behavior", json_string(c->behavior));
        json_object_set_new(r, "layer", json_integer(c->layer));
        json_object_set_new(r, "config_hash", json_string(c->config_hash));
        json_object_set_new(r, "step", json_integer(c->step));
        json_object_set_new(r, "epoch", json_integer(c->epoch));
        json_object_set_new(r, "written", json_string(c->written));
        json_array_append_new(cks, r);
    }
    for (size_t i = 0; i < l->n_provenance; i++)
        json_array_append_new(prov, json_string(l->provenance[i]));
    json_object_set_new(o, "runs", runs);
    json_object_set_new(o, "checkpoints", cks);
    json_object_set_new(o, "provenance", prov);
    if (bipo_inspect_eval_library_json(st, o) != 0 || bipo_inspect_sweep_json(st, l, o) != 0)
        return json_decref(o), -1;
    char *s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_INDENT(1));
    printf("%s\n", s);
    free(s);
    json_decref(o);
    return 0;
}

static int width(int w, const char *s) { return (int)strlen(s) > w ? (int)strlen(s) : w; }

static void print_table(bipo_store *st, const char *path, const bipo_listing *l) {
    int wm = 5, wb = 8, wr = 3;
    for (size_t i = 0; i < l->n_runs; i++) {
        wm = width(wm, l->runs[i].model);
        wb = width(wb, l->runs[i].behavior);
        wr = width(wr, l->runs[i].run);
    }
    printf("%s: bipo-library v%d, created %s — %zu runs, %zu checkpoints, %zu provenance records\n",
           path, l->format_version, l->created, l->n_runs, l->n_checkpoints, l->n_provenance);
    if (l->n_runs) {
        printf("\n%-*s  %-*s  %5s  %-*s  %-8s  %6s  %10s  %9s  %-20s  %s\n", wm, "model", wb,
               "behavior", "layer", wr, "run", "status", "steps", "final_loss", "|v|", "finished",
               "newest");
        for (size_t i = 0; i < l->n_runs; i++) {
            const bipo_run_entry *e = &l->runs[i];
            printf("%-*s  %-*s  %5d  %-*s  %-8s  %6zu  %10.4f  %9.4f  %-20s  %s\n", wm, e->model,
                   wb, e->behavior, e->layer, wr, e->run, e->status, e->n_steps, e->final_loss,
                   e->vector_norm, e->finished, e->newest ? "*" : "");
        }
    }
    if (l->n_checkpoints) {
        printf("\ncheckpoints (in-progress jobs):\n");
        for (size_t i = 0; i < l->n_checkpoints; i++) {
            const bipo_checkpoint_entry *c = &l->checkpoints[i];
            printf("  %s/%s/layer_%d  config %.12s  epoch %lld  step %lld  written %s\n", c->model,
                   c->behavior, c->layer, c->config_hash, (long long)c->epoch, (long long)c->step,
                   c->written);
        }
    }
    if (l->n_provenance) {
        printf("\nprovenance:");
        for (size_t i = 0; i < l->n_provenance; i++) printf(" %s", l->provenance[i]);
        printf("\n");
    }
    bipo_inspect_eval_tables(st, l); // pipeline/inspect_eval.c
}

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int json = 0, check = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--check"))
            check = 1;
        else if (argv[i][0] == '-' || path) {
            fprintf(stderr,
                    "bipo-pipeline inspect: unexpected argument '%s'\nusage: bipo-pipeline %s\n",
                    argv[i], INSPECT_USAGE);
            return 2;
        } else
            path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "bipo-pipeline inspect: need a library file\nusage: bipo-pipeline %s\n",
                INSPECT_USAGE);
        return 2;
    }
    bipo_store *s = bipo_store_open(path, BIPO_STORE_READ);
    bipo_listing l;
    if (!s || (check && bipo_store_check(s) != 0) || bipo_store_list(s, &l) != 0) {
        fprintf(stderr, "bipo-pipeline inspect: %s\n", bipo_last_error());
        bipo_store_close(s);
        return 1;
    }
    int rc = 0;
    if (json)
        rc = print_json(s, path, &l);
    else
        print_table(s, path, &l);
    if (rc) fprintf(stderr, "bipo-pipeline inspect: %s\n", bipo_last_error());
    bipo_listing_free(&l);
    bipo_store_close(s);
    return rc ? 1 : 0;
}
