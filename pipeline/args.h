// pipeline/args.h — small, strict command-line parsing shared by the subcommands.
// Each flag is declared once in a table; values are parsed and range-checked with an error
// that names the flag, so `--max-tokens abc` says exactly what is wrong.
#ifndef BIPO_ARGS_H
#define BIPO_ARGS_H
#include <stddef.h>

typedef enum { ARG_STR, ARG_INT, ARG_FLOAT, ARG_FLAG } arg_kind;
typedef struct {
    const char *name; // "--model"
    arg_kind kind;
    void *dst;        // const char **, long *, double *, int *
    double min, max;  // range for ARG_INT / ARG_FLOAT
    int seen;
} arg_spec;

// Parses argv[1..argc) against specs; "-o" is accepted for "--output" wherever a command has it. On error prints "bipo-pipeline CMD: <why>" + usage
// line and returns -1.
int args_parse(const char *cmd, const char *usage, arg_spec *specs, size_t n, int argc,
               char **argv);
int args_seen(const arg_spec *specs, size_t n, const char *name);
// Parses "1, 2,3" into a malloc'd int array; -1 + message on a bad entry.
int args_parse_ids(const char *cmd, const char *s, int **ids, size_t *n);

#endif
