// pipeline/config.h — the run's YAML config (libyaml), validated with precise errors.
//
// Every user mistake is one bipo_set_error() sentence
//     file:line:column: key.path: problem (hint)
// with 1-based line/column of the offending node. Paths inside the config (model path, data,
// test_data, output) are relative to the config file's folder; a leading `~/` and `${VAR}`
// are expanded first (${BIPO_DATA} defaults to the fetch-data folder, see config.c). Schema (see configs/quickstart.yaml for a commented example):
//
//   model: {path, id, template, system_prompt, layers, lora}   or  models: [ {...}, ... ]
//   behavior: {name, data, test_data, test_fraction, format, fields, max_pairs,
//              answer_form: letter|text}
//                                                        or  behaviors: [ {...}, ... ]
//   layer: 15  |  layers: [10, 12, 15]  |  layers: "10-15"  |  layers: "10-20:2"
//              (list items may also be range strings; may be omitted when every model
//               has its own `layers`)
//   train: {beta, lr, epochs, batch_size, warmup_steps, first_step_lr_zero, schedule,
//           schedule_epochs, save_epochs, weight_decay, adam_betas, adam_eps, grad_clip,
//           seed, max_length, log_every, checkpoint_every, shared_prompt, forward_matmul,
//           backward_matmul, response_space, score_eos, preset}   (every key but save_epochs:
//           one row of workers/hparams.c; preset is applied first, the other keys override it)
//   cache: {memory_mb}    output: path    ranks_per_job: 0    eval: {...} (pipeline/config_eval.h)
#ifndef BIPO_CONFIG_H
#define BIPO_CONFIG_H
#include <stddef.h>
#include <stdint.h>

#include "bipo.h"    // defines: bipo_hparams, bipo_schedule (the worker-side hyperparameters)
#include "dataset.h" // defines: bipo_data_format, bipo_fields

typedef struct bipo_eval_cfg bipo_eval_cfg; // pipeline/config_eval.h

typedef struct {
    size_t line, column; // 1-based position of a node in the config text
} bipo_mark;

typedef struct {
    size_t *v;        // layer indices, in config order, no duplicates
    bipo_mark *mark;  // where each came from (a range string: the string's mark)
    size_t n;
    char key[64];     // key path it was read from ("layers", "models[1].layers"), for messages
} bipo_layer_list;

typedef struct {
    char *path;           // resolved model file or directory
    char *id;             // default: basename of path without its last extension
    char *template_name;  // auto|llama2|mistral|vicuna|chatml|none (default auto)
    char *system_prompt;  // NULL = not set (template default); "" = explicitly empty
    bipo_layer_list layers; // per-model override; n == 0 when not set
    char *lora;           // resolved PEFT LoRA adapter folder merged into the weights, or NULL
    bipo_mark mark;
} bipo_model_cfg;

typedef struct {
    char *name;
    char *data;             // resolved train data path
    char *test_data;        // resolved, or NULL: split `data` by test_fraction
    double test_fraction;   // 0.1, in [0, 1)
    bipo_data_format format; // BIPO_FMT_AUTO by default
    bipo_fields fields;     // owned strings; NULL members = the format's defaults
    size_t max_pairs;       // 0 = all
    int answer_text;        // answer_form: text (1) | letter (0, default); see dataset.h
    bipo_mark mark;
} bipo_behavior_cfg;

typedef struct {
    // every `train:` key except save_epochs: exactly the worker's bipo_hparams, one row each
    // in the table of workers/hparams.c (defaults, bounds, hash), so the pipeline hands &train.hp
    // to the trainer. hp.cache_bytes = cache.memory_mb MiB.
    bipo_hparams hp;
    size_t *save_epochs;   // each in 1..epochs, ascending; after loading, default {epochs}
    size_t n_save_epochs;
} bipo_train_cfg;

typedef struct {
    char *path;            // the config file (as given)
    char *text;            // the whole config text (provenance)
    char config_hash[65];  // sha256 of text
    bipo_model_cfg *models;
    size_t n_models;
    bipo_behavior_cfg *behaviors;
    size_t n_behaviors;
    bipo_layer_list layers; // global layers (n == 0 when every model has its own)
    bipo_train_cfg train;
    size_t cache_bytes;    // activation cache budget per rank (cache.memory_mb, default 2048)
    char *output;          // resolved output path, NULL when not set (the CLI decides)
    size_t ranks_per_job;  // 0 = auto
    char *eval_text;       // the `eval:` mapping's source text, NULL when absent (provenance)
    bipo_eval_cfg *eval;   // the validated `eval:` block (pipeline/config_eval.h), NULL when absent
} bipo_config_file;

// Defaults listed in the schema (train.hp from bipo_hparams_defaults; save_epochs empty,
// meaning {epochs}).
void bipo_train_cfg_defaults(bipo_train_cfg *t);

// 0, or -1 + bipo_set_error (c is left zeroed). Free with bipo_config_free either way.
int bipo_config_load(bipo_config_file *c, const char *path);
// Same from a string; virtual_path names the file in messages and anchors relative paths.
int bipo_config_parse_string(bipo_config_file *c, const char *text, const char *virtual_path);
void bipo_config_free(bipo_config_file *c);

// The layers that apply to model i: its own `layers` if set, else the global ones.
const bipo_layer_list *bipo_config_model_layers(const bipo_config_file *c, size_t model_index);
// Checks every layer of model i against the model's layer count once it is known: 0, or -1 +
// "file:line:column: layers: layer 31 is out of range for <id> (30 layers: 0..29)".
int bipo_config_check_layers(const bipo_config_file *c, size_t model_index, size_t n_layers);

#endif
