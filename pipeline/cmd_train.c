// pipeline/cmd_train.c — `bipo-pipeline train CONFIG.yaml` (also `bipo-pipeline CONFIG.yaml`).
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "args.h"     // defines: arg_spec, args_parse
#include "commands.h" // defines: cmd_train
#include "config.h"   // defines: bipo_config_load
#include "sched.h"    // defines: bipo_train_all
#include "util.h"     // defines: bipo_last_error

static const char *USAGE =
    "train CONFIG.yaml [-o|--output LIB.h5] [--backend auto|cpu|cuda] [--threads N] [--quiet]";

int cmd_train(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "bipo-pipeline train: missing CONFIG.yaml\nusage: bipo-pipeline %s\n", USAGE);
        return 2;
    }
    const char *cfg_path = argv[1];
    bipo_run_opts o = {.backend = "auto", .stop_after_steps = -1, .fail_on_rank = -1};
    long threads = 0, stop = -1, rpj = 0, fail_rank = -1;
    int quiet = 0;
    arg_spec sp[] = {
        {"--output", ARG_STR, &o.output, 0, 0, 0},
        {"--backend", ARG_STR, &o.backend, 0, 0, 0},
        {"--threads", ARG_INT, &threads, 1, 1024, 0},
        {"--quiet", ARG_FLAG, &quiet, 0, 0, 0},
        // for fault-injection tests: exit with status 3 after N optimizer steps
        {"--stop-after-steps", ARG_INT, &stop, 0, 1e12, 0},
        {"--ranks-per-job", ARG_INT, &rpj, 1, 1e6, 0},
        // for fault tests: this rank fails with a fatal error when its first job starts
        {"--fail-on-rank", ARG_INT, &fail_rank, 0, 1e6, 0},
    };
    if (args_parse("train", USAGE, sp, sizeof sp / sizeof sp[0], argc - 1, argv + 1) != 0) return 2;
    o.threads = (int)threads;
    o.quiet = quiet;
    o.stop_after_steps = stop;
    o.ranks_per_job = (int)rpj;
    o.fail_on_rank = (int)fail_rank;
    // Rank 0 reads the config and broadcasts its text: every rank parses the same bytes (a
    // config edited while a job starts cannot split the ranks' plans).
    MPI_Init(NULL, NULL);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    size_t len = 0;
    char *text = NULL;
    long n = -1;
    if (rank == 0) {
        text = bipo_read_file(cfg_path, &len);
        if (!text) fprintf(stderr, "bipo-pipeline train: %s\n", bipo_last_error());
        n = text ? (long)len : -1;
    }
    MPI_Bcast(&n, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    int rc = 2;
    if (n >= 0) {
        if (rank != 0) text = xmalloc((size_t)n + 1);
        MPI_Bcast(text, (int)n + 1, MPI_CHAR, 0, MPI_COMM_WORLD);
        bipo_config_file c;
        if (bipo_config_parse_string(&c, text, cfg_path) != 0) {
            if (rank == 0) fprintf(stderr, "bipo-pipeline train: %s\n", bipo_last_error());
        } else {
            rc = bipo_train_all(&c, &o);
        }
        bipo_config_free(&c);
    }
    free(text);
    MPI_Finalize();
    return rc;
}
