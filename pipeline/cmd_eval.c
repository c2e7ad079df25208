// pipeline/cmd_eval.c — `bipo-pipeline eval CONFIG.yaml`: the config's eval: block on the
// vectors already in the library (pipeline/eval_all.c), no training.
#include <mpi.h>
#include <stdio.h>

#include "args.h"     // defines: arg_spec, args_parse
#include "commands.h" // defines: cmd_eval
#include "config.h"   // defines: bipo_config_load
#include "eval_job.h" // defines: bipo_eval_all
#include "util.h"     // defines: bipo_last_error

static const char *USAGE = "eval CONFIG.yaml [--output LIB.h5] [--backend auto|cpu|cuda] [--threads N] [--quiet]";

int cmd_eval(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "bipo-pipeline eval: missing CONFIG.yaml\nusage: bipo-pipeline %s\n", USAGE);
        return 2;
    }
    bipo_run_opts o = {.backend = "auto", .stop_after_steps = -1, .fail_on_rank = -1};
    long threads = 0;
    arg_spec sp[] = {
        {"--output", ARG_STR, &o.output, 0, 0, 0},
        {"--backend", ARG_STR, &o.backend, 0, 0, 0},
        {"--threads", ARG_INT, &threads, 1, 1024, 0},
        {"--quiet", ARG_FLAG, &o.quiet, 0, 0, 0},
    };
    if (args_parse("eval", USAGE, sp, sizeof sp / sizeof sp[0], argc - 1, argv + 1) != 0) return 2;
    o.threads = (int)threads;
    MPI_Init(NULL, NULL);
    int rank, rc = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) { // rank 0 alone evaluates (eval_all.c); the others only start and stop MPI
        bipo_config_file c;
        if (bipo_config_load(&c, argv[1]) != 0) {
            fprintf(stderr, "bipo-pipeline eval: %s\n", bipo_last_error());
            rc = 2;
        } else
            rc = bipo_eval_all(&c, &o);
        bipo_config_free(&c);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return rc;
}
