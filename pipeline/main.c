// pipeline/main.c — the bipo-pipeline command line: dispatch to one subcommand.
#include <stdio.h>
#include <string.h>

#include "commands.h" // defines: cmd_train, cmd_generate, cmd_logprobs, cmd_tokenize, ...
#include "kernels.h"  // defines: bipo_blas_tune

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *usage;
} command;

static const command COMMANDS[] = {
    {"train", cmd_train,
     "train CONFIG.yaml [-o|--output LIB.h5] [--backend auto|cpu|cuda] [--threads N] [--quiet]\n"
     "           (also: bipo-pipeline CONFIG.yaml)"},
    {"eval", cmd_eval,
     "eval CONFIG.yaml [--output LIB.h5] [--backend auto|cpu|cuda] [--threads N] [--quiet]\n"
     "           (the config's eval: block on the library's vectors, no training)"},
    {"plan", cmd_plan, "plan CONFIG.yaml [--ranks N] [--ranks-per-job N] [--memory-gb G]"},
    {"inspect", cmd_inspect, "inspect LIB.h5 [--json] [--check]"},
    {"report", cmd_report, "report LIB.h5 -o|--output REPORT.html (one self-contained HTML page)"},
    {"export", cmd_export,
     "export LIB.h5 -o|--output FILE [--format f32|gguf|safetensors|pt] [--model ID]\n"
     "           [--behavior B] [--layer L] [--run R] [--multiplier M] [--print-layer]\n"
     "           export LIB.h5 --all -o|--output DIR [--format F] [--model ID] [--behavior B]"},
    {"generate", cmd_generate,
     "generate --model PATH (--prompt TEXT | --tokens IDS) [--chat] [--max-tokens N]\n"
     "           [--temperature T --top-p P --seed S] [--vector FILE --layer L --multiplier M]"},
    {"logprobs", cmd_logprobs, "logprobs --model PATH (--text TEXT | --tokens IDS) [--top-k K]"},
    {"tokenize", cmd_tokenize, "tokenize --model PATH --text TEXT [--no-bos] [--chat]"},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *f) {
    fprintf(f, "bipo-pipeline %s — BiPO steering vectors for Llama-family models\n\nusage:\n",
            BIPO_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(f, "  bipo-pipeline %s\n", COMMANDS[i].usage);
}

int main(int argc, char **argv) {
    bipo_blas_tune(argv); // may re-exec once with a faster OpenBLAS kernel
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("bipo-pipeline %s\n", BIPO_VERSION);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    size_t n = strlen(argv[1]);
    if ((n > 5 && !strcmp(argv[1] + n - 5, ".yaml")) || (n > 4 && !strcmp(argv[1] + n - 4, ".yml")))
        return cmd_train(argc, argv); // bipo-pipeline CONFIG.yaml == bipo-pipeline train CONFIG.yaml
    fprintf(stderr, "bipo-pipeline: unknown command '%s' (try 'bipo-pipeline --help')\n", argv[1]);
    return 2;
}
