// pipeline/config_eval.h — the config's `eval:` block: what the job measures after training
// (`train`) or on the library's vectors (`bipo-pipeline eval`). Errors as in config.h:
// "file:line:column: eval.key: problem (hint)"; unknown keys are errors with a hint.
//
//   eval:
//     multipliers: [-2, -1, -0.5, 0, 0.5, 1, 2]   # default; at least 2 distinct values
//     positions: all | answer                     # default all (BiPO's), answer (CAA's)
//     protocol: auto | letter | text              # default auto
//     score_eos: true                             # text protocol: count the EOS (default true)
//     methods: [bipo, caa, caa_norm_matched, prompt]   # default: all four
//     max_items: 0                                # 0 = every held-out item, else the first N
//     test_data: path                             # items instead of each behavior's held-out
//                                                 # pairs (same format rules as behavior.data)
//     split_seed: N                               # seed of the train/test split of behaviors
//                                                 # without test_data; default train.seed
//     prompt: {plus: TEXT, minus: TEXT}           # prompting baseline's system prompts
//                                                 # (default: docs/EVAL.md's generic ones)
//     prompts: {<behavior>: {plus: TEXT, minus: TEXT}, ...}   # per behavior, over `prompt`
//     mmlu: {path: P, max_items: N, multipliers: [-1, 0, 1]}   # knowledge (workers/eval_mc.h)
//     truthfulqa: {path: P, max_items: N, multipliers: [...]}  # MC1 / MC2 of every arm
//     neutral_text: path | {path: P, multipliers: [...]}       # mean log-prob of a plain text
//                                                 # (multipliers default [-1, 0, 1]; each arm of
//                                                 # `methods` is scored at each)
//     generate:                                   # steered generations (eval_generate.c)
//       prompts: PATH                             # one prompt a line, or a CSV's `question` column
//       max_items: N                              # first N prompts (0 = all)
//       multipliers: [...]                        # default eval.multipliers
//       max_new_tokens: 64
//       temperature: 0                            # 0 greedy; > 0 samples (prompt p: seed + p)
//       seed: 0
//       positions: all | answer                   # default eval.positions
//     jailbreak:                                  # AdvBench attack-success rate (eval_generate.c)
//       goals: PATH                               # default ${BIPO_DATA}/advbench/harmful_behaviors.csv
//       max_items: N
//       multiplier: M                             # ASR at -M, 0, +M (default 1)
//       max_new_tokens: 64
//       refusals: [TEXT, ...]                     # default GCG's list (workers/jailbreak.h)
//       judge_command: CMD                        # sh -c CMD < JSONL; one score 0..1 a line
//     compose:                                    # sums of library vectors (`eval`, and `train`
//                                                 # on rank 0 after its last job)
//       - name: NAME
//         model: ID                               # default: the first model of the config
//         behavior: B                             # items from; default: the first term's
//         terms: [{behavior: B, layer: L, method: bipo|caa|caa_norm_matched, multiplier: M}, ...]
//     transfer:                                   # a vector on another model / layers (same)
//       - name: NAME
//         from: {model: ID, behavior: B, layer: L, method: bipo|caa|caa_norm_matched}
//         to: {model: ID, layers: [L, ...]}       # a config model; layers default [from.layer]
//
// Per-behavior prompts are an `eval.prompts` map by behavior name (so the behavior schema is
// untouched); each name must be a behavior of the config. Compose terms must share one layer
// (an arm adds one vector at one layer). The settings hash (bipo_eval_settings_hash) covers
// what changes the A/B numbers; a rerun with the same hash skips evaluated runs.
#ifndef BIPO_CONFIG_EVAL_H
#define BIPO_CONFIG_EVAL_H
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "config.h" // defines: bipo_config_file, bipo_mark, bipo_layer_list
#include "eval.h"   // defines: bipo_positions, bipo_ab_protocol

enum { BIPO_EVAL_BIPO = 1, BIPO_EVAL_CAA = 2, BIPO_EVAL_CAA_NORM = 4, BIPO_EVAL_PROMPT = 8 };
// "bipo", "caa", "caa_norm_matched", "prompt" for one method bit.
const char *bipo_eval_method_name(unsigned bit);

typedef struct {
    char *path;       // resolved, NULL = not set
    size_t max_items; // 0 = all
    double *mult;     // multipliers of the arms on this set; NULL = -1, 0, +1
    size_t n_mult;
} bipo_eval_set_cfg;

typedef struct {
    char *behavior;  // NULL: the eval-wide `prompt`
    char *plus, *minus; // NULL = the default
} bipo_eval_prompt_cfg;

typedef struct {
    char *behavior;
    size_t layer;
    unsigned method;   // one BIPO_EVAL_* vector bit (not PROMPT)
    double multiplier;
    bipo_mark mark;
} bipo_compose_term;

typedef struct {
    char *name, *model, *behavior; // model/behavior resolved to their defaults
    bipo_compose_term *terms;
    size_t n_terms;
    bipo_mark mark;
} bipo_compose_cfg;

typedef struct {
    char *name;
    char *from_model, *from_behavior;
    size_t from_layer;
    unsigned from_method;
    char *to_model;      // a model id of the config
    bipo_layer_list to_layers;
    bipo_mark mark;
} bipo_transfer_cfg;

typedef struct {
    char *prompts;         // resolved; NULL = no generate block
    size_t max_items;      // 0 = all
    double *mult;          // NULL = eval.multipliers
    size_t n_mult;
    size_t max_new_tokens; // default 64
    double temperature;    // <= 0 greedy
    uint64_t seed;
    int positions;         // -1: eval.positions, else a bipo_positions
} bipo_eval_gen_cfg;

typedef struct {
    char *goals;           // resolved; NULL = no jailbreak block
    size_t max_items;      // 0 = all
    double multiplier;     // default 1: -M, 0, +M
    size_t max_new_tokens; // default 64
    char **refusals;       // NULL = GCG's list
    size_t n_refusals;
    char *judge_command;   // NULL = none
} bipo_eval_jb_cfg;

struct bipo_eval_cfg {
    double *mult;
    size_t n_mult;
    bipo_positions positions;
    bipo_ab_protocol protocol;
    int score_eos;
    unsigned methods;          // BIPO_EVAL_* bits
    size_t max_items;
    char *test_data;           // resolved override, or NULL
    uint64_t split_seed;       // = train.seed unless set
    int split_seed_set;
    bipo_eval_prompt_cfg prompt;  // eval-wide
    bipo_eval_prompt_cfg *prompts; // per behavior
    size_t n_prompts;
    bipo_eval_set_cfg mmlu, truthfulqa, neutral; // neutral: the neutral_text (max_items unused)
    bipo_eval_gen_cfg generate;
    bipo_eval_jb_cfg jailbreak;
    bipo_compose_cfg *compose;
    size_t n_compose;
    bipo_transfer_cfg *transfer;
    size_t n_transfer;
};

struct bipo_yaml_ctx;
// Reads the `eval:` mapping v of config c (models and behaviors already read). 0 or -1.
int bipo_eval_cfg_parse(struct bipo_yaml_ctx *x, yaml_node_t *v, const bipo_config_file *c, bipo_eval_cfg *e);
void bipo_eval_cfg_free(bipo_eval_cfg *e);

// The prompting baseline's system prompts for a behavior (per-behavior over eval-wide; NULL
// members = the defaults of docs/EVAL.md).
void bipo_eval_prompts_for(const bipo_eval_cfg *e, const char *behavior, const char **plus,
                           const char **minus);
// sha256 hex of what decides the A/B numbers of a behavior's runs: multipliers, positions,
// protocol, score_eos, methods, max_items, the items' data hash, the prompts, and (when set)
// the mmlu / truthfulqa / neutral_text paths, max_items and multipliers, and the generate /
// jailbreak blocks (each only when set: configs without them keep their hashes).
void bipo_eval_settings_hash(const bipo_eval_cfg *e, const char *behavior, const char *items_hash,
                             char out[65]);
// The seed splitting behaviors without test_data (eval.split_seed, else train.seed).
uint64_t bipo_config_split_seed(const bipo_config_file *c);

#endif
