// pipeline/commands.h — one function per CLI subcommand; pipeline/main.c dispatches.
// Each returns the process exit code (0 ok, 2 usage error, 1 other failure) and prints a
// single clear error line on bad input.
#ifndef BIPO_COMMANDS_H
#define BIPO_COMMANDS_H
int cmd_generate(int argc, char **argv); // pipeline/cmd_generate.c
int cmd_logprobs(int argc, char **argv); // pipeline/cmd_generate.c
int cmd_tokenize(int argc, char **argv); // pipeline/cmd_tokenize.c
int cmd_train(int argc, char **argv);    // pipeline/cmd_train.c
int cmd_inspect(int argc, char **argv);  // pipeline/cmd_inspect.c
int cmd_export(int argc, char **argv);   // pipeline/cmd_export.c
int cmd_plan(int argc, char **argv);     // pipeline/cmd_plan.c
int cmd_eval(int argc, char **argv);     // pipeline/cmd_eval.c
int cmd_report(int argc, char **argv);   // pipeline/cmd_report.c
#endif
