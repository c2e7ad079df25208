// pipeline/steering.h — the steering options `generate` and `logprobs` share:
//   --vector FILE                          a raw little-endian f32 file of C values
//   --vector LIB.h5:model/behavior/layer[/method]
//                                          the newest run of that library entry (method: bipo,
//                                          the only one the library holds so far); the run's
//                                          system_prompt and template become the defaults and
//                                          its layer the default --layer
//   --layer L   --multiplier M[,M...]  --system TEXT  --template NAME (over the run's)
#ifndef BIPO_STEERING_H
#define BIPO_STEERING_H
#include <stddef.h>

#include "chat.h"  // defines: bipo_chat_template
#include "model.h" // defines: bipo_model

typedef struct {
    const char *vector;     // --vector, or NULL
    long layer;             // --layer, -1 when not given
    const char *multiplier; // --multiplier list, or NULL (1)
    const char *system;     // --system, or NULL
    const char *tpl;        // --template, or NULL
} steer_args;

typedef struct {
    int on;                         // a vector is applied
    int layer;
    float *vec;                     // [C] backend buffer (on)
    double *mult;                   // [n_mult] (1 when no list was given)
    size_t n_mult;
    const char *system;             // --system, else the run's, else NULL (template default)
    const bipo_chat_template *tpl;  // --template, else the run's, else NULL (the tokenizer's)
    char *run_system;               // owned copy of the run's system prompt
} steering;

// Parses and loads everything; on a user mistake prints one line "bipo-pipeline CMD: ..." and
// returns -1 (steering_close is still safe).
int steering_open(steering *st, const char *cmd, const steer_args *a, bipo_model *m);
void steering_close(steering *st, bipo_model *m);

#endif
