// pipeline/cmd_train.c — `bipo-pipeline train CONFIG.yaml` (also `bipo-pipeline CONFIG.yaml`).
#include <stdio.h>
#include <stdlib.h>

#include "args.h"     // defines: arg_spec, args_parse
#include "commands.h" // defines: cmd_train
#include "config.h"   // defines: bipo_config_load
#include "train.h"    // defines: bipo_train_all
#include "util.h"     // defines: bipo_last_error

static const char *USAGE =
    "train CONFIG.yaml [--output LIB.h5] [--backend auto|cpu|cuda] [--threads N] [--quiet]";

int cmd_train(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "bipo-pipeline train: missing CONFIG.yaml\nusage: bipo-pipeline %s\n", USAGE);
        return 2;
    }
    const char *cfg_path = argv[1];
    bipo_run_opts o = {.backend = "auto", .stop_after_steps = -1};
    long threads = 0, stop = -1;
    int quiet = 0;
    arg_spec sp[] = {
        {"--output", ARG_STR, &o.output, 0, 0, 0},
        {"--backend", ARG_STR, &o.backend, 0, 0, 0},
        {"--threads", ARG_INT, &threads, 1, 1024, 0},
        {"--quiet", ARG_FLAG, &quiet, 0, 0, 0},
        // for fault-injection tests: exit with status 3 after N optimizer steps
        {"--stop-after-steps", ARG_INT, &stop, 0, 1e12, 0},
    };
    if (args_parse("train", USAGE, sp, sizeof sp / sizeof sp[0], argc - 1, argv + 1) != 0) return 2;
    o.threads = (int)threads;
    o.quiet = quiet;
    o.stop_after_steps = stop;
    bipo_config_file c;
    if (bipo_config_load(&c, cfg_path) != 0) {
        fprintf(stderr, "bipo-pipeline train: %s\n", bipo_last_error());
        bipo_config_free(&c);
        return 2;
    }
    int rc = bipo_train_all(&c, &o);
    bipo_config_free(&c);
    return rc;
}
