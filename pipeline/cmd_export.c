// pipeline/cmd_export.c — `bipo-pipeline export LIB.h5 --output FILE`: one vector of the
// library as a raw little-endian f32 file (what `generate --vector` reads). The run is chosen
// by --model/--behavior/--layer/--run; any left out must be unambiguous among the newest runs.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"     // defines: arg_spec, args_parse
#include "commands.h" // defines: cmd_export
#include "store.h"    // defines: bipo_store_open, bipo_store_list, bipo_store_read_vector
#include "util.h"     // defines: bipo_last_error

static const char *USAGE =
    "export LIB.h5 --output FILE [--model ID] [--behavior B] [--layer L] [--run R] [--print-layer]";

int cmd_export(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "bipo-pipeline export: missing LIB.h5\nusage: bipo-pipeline %s\n", USAGE);
        return 2;
    }
    const char *lib = argv[1], *out = NULL, *model = NULL, *behavior = NULL, *run = NULL;
    long layer = -1;
    int print_layer = 0;
    arg_spec sp[] = {
        {"--output", ARG_STR, &out, 0, 0, 0},     {"--model", ARG_STR, &model, 0, 0, 0},
        {"--behavior", ARG_STR, &behavior, 0, 0, 0}, {"--layer", ARG_INT, &layer, 0, 1e6, 0},
        {"--run", ARG_STR, &run, 0, 0, 0},         {"--print-layer", ARG_FLAG, &print_layer, 0, 0, 0},
    };
    if (args_parse("export", USAGE, sp, sizeof sp / sizeof sp[0], argc - 1, argv + 1) != 0) return 2;
    if (!out) {
        fprintf(stderr, "bipo-pipeline export: --output FILE is required\n");
        return 2;
    }
    bipo_store *s = bipo_store_open(lib, BIPO_STORE_READ);
    if (!s) {
        fprintf(stderr, "bipo-pipeline export: %s\n", bipo_last_error());
        return 1;
    }
    int rc = 1;
    bipo_listing ls;
    if (bipo_store_list(s, &ls) != 0) {
        fprintf(stderr, "bipo-pipeline export: %s\n", bipo_last_error());
        bipo_store_close(s);
        return 1;
    }
    const bipo_run_entry *pick = NULL;
    size_t matches = 0;
    for (size_t i = 0; i < ls.n_runs; i++) {
        const bipo_run_entry *e = &ls.runs[i];
        if ((model && strcmp(model, e->model)) || (behavior && strcmp(behavior, e->behavior)) ||
            (layer >= 0 && layer != e->layer) || (run ? strcmp(run, e->run) != 0 : !e->newest))
            continue;
        pick = e;
        matches++;
    }
    if (matches != 1) {
        fprintf(stderr, "bipo-pipeline export: %s: %zu runs match%s (narrow it down with --model, "
                        "--behavior, --layer, --run; `bipo-pipeline inspect %s` lists them)\n",
                lib, matches, matches ? "" : " (none)", lib);
        goto done;
    }
    size_t C = 0;
    float *v = bipo_store_read_vector(s, pick->model, pick->behavior, pick->layer, pick->run, &C);
    if (!v) {
        fprintf(stderr, "bipo-pipeline export: %s\n", bipo_last_error());
        goto done;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(v, sizeof(float), C, f) == C;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, out) != 0) {
        fprintf(stderr, "bipo-pipeline export: cannot write %s\n", out);
        remove(tmp);
        free(v);
        goto done;
    }
    free(v);
    if (print_layer)
        printf("%d\n", pick->layer);
    else
        printf("%s: %s / %s / layer %d / run %s (%zu floats)\n", out, pick->model, pick->behavior,
               pick->layer, pick->run, C);
    rc = 0;
done:
    bipo_listing_free(&ls);
    bipo_store_close(s);
    return rc;
}
