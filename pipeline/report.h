// pipeline/report.h — `bipo-pipeline report`: the vector library as one self-contained HTML
// page (inline CSS and SVG, no scripts, no network): the runs with their provenance, the loss
// curves of every run, per behavior the A/B curves of each evaluated layer, the metric bars of
// any other eval group with per-multiplier arms (mmlu, truthfulqa, jailbreak, ...), the layer
// sweep, the library's compose/transfer curves and the stored generations side by side.
#ifndef BIPO_REPORT_H
#define BIPO_REPORT_H
#include <stdio.h>

#include "store.h" // defines: bipo_store

// Writes the page for the open library s (lib_path is shown in the header) to f.
// 0 ok; -1 with bipo_last_error() when the library cannot be read.
int bipo_report_write(bipo_store *s, const char *lib_path, FILE *f);

// The generations table of one run (pipeline/report_gen.c): its eval/generate/<i> string
// datasets, a column per multiplier; writes nothing when the run has none. run_path as
// bipo_store_run_path gives it; the table's id is "gen-<idx>". 0 ok, -1 when the library
// cannot be opened.
int bipo_report_generations(FILE *f, const char *lib_path, const char *run_path, int idx, const char *title);
#endif
