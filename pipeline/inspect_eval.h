// pipeline/inspect_eval.h — `inspect`'s evaluation output (pipeline/inspect_eval.c).
#ifndef BIPO_INSPECT_EVAL_H
#define BIPO_INSPECT_EVAL_H
#include <jansson.h>

#include "store.h"      // defines: bipo_store, bipo_listing, bipo_run_entry
#include "store_eval.h" // defines: bipo_eval_table

json_t *bipo_eval_table_json(const bipo_eval_table *t); // attrs, arrays and kids as one object
// Adds "eval" to a run's JSON object when the run has one: 0, or -1 + error.
int bipo_inspect_eval_json(bipo_store *s, const bipo_run_entry *e, json_t *run);
// Adds the library-level "eval" (compose, transfer) to the top object when present.
int bipo_inspect_eval_library_json(bipo_store *s, json_t *top);
// Adds "sweep": {model: {behavior: {method: {layers, range, best_layer}}}} to the top object:
// per layer the range p_match(max m) - p_match(min m) of each method's A/B curve (the same
// numbers as the plain layer-sweep table). 0, or -1 + error.
int bipo_inspect_sweep_json(bipo_store *s, const bipo_listing *l, json_t *top);
// The p_match tables of every evaluated run, layer sweeps, compose and transfer entries.
void bipo_inspect_eval_tables(bipo_store *s, const bipo_listing *l);
void bipo_inspect_ab_rows(const bipo_eval_table *ab, const char *indent);
#endif
