// workers/hparams.h — the one table of training settings (the members of bipo_hparams).
//
// One row per setting: its name (struct member, run attribute and YAML key under `train:`),
// type, offset, default, bounds, enum names and whether it is in the job hash. Everything
// else is derived from the rows: bipo_hparams_defaults, the YAML reader of the `train:` block
// (pipeline/config.c), the job hash (pipeline/plan.c) and the run attributes written to the
// library (pipeline/plan.c). Adding a setting is one row here plus its struct member.
//
// The job hash decides skip or resume, so its bytes are fixed for the settings of v1 hashes
// (BIPO_HP_HASH rows, in table order, "key=value|"). A setting added later should be
// BIPO_HP_HASH_IF_SET: it enters the hash ("|key=value", after the v1 text) only when not at
// its default, so existing libraries keep their hashes and a changed value trains a new run.
// Performance settings (matmul arithmetic, cache, logging, checkpoints) are not hashed.
//
// Plain data: workers know no YAML; the pipeline iterates the rows.
#ifndef BIPO_HPARAMS_H
#define BIPO_HPARAMS_H
#include <stddef.h>
#include <stdint.h>

#include "bipo.h" // defines: bipo_hparams

typedef enum { BIPO_HP_DOUBLE, BIPO_HP_SIZE, BIPO_HP_U64, BIPO_HP_BOOL, BIPO_HP_ENUM } bipo_hp_type;

enum {
    BIPO_HP_YAML = 1,        // read from the YAML `train:` block
    BIPO_HP_HASH = 2,        // in the job hash, always (the v1 settings; table order = hash bytes)
    BIPO_HP_HASH_IF_SET = 4, // in the job hash only when not at its default (settings added later)
    BIPO_HP_ATTR = 8,        // written as an attribute of every run
    BIPO_HP_LO_OPEN = 16,    // must be > lo (else >= lo)
};

typedef struct {
    const char *name;         // member, attribute and YAML key (unless yaml is set)
    bipo_hp_type type;        // DOUBLE double, SIZE size_t, U64 uint64_t, BOOL/ENUM int-sized
    size_t off;               // offsetof(bipo_hparams, member)
    double def;               // default (ENUM: the enum value)
    double lo, hi;            // DOUBLE: lo <= (or <) value < hi; SIZE: value >= lo
    unsigned flags;           // BIPO_HP_*
    const char *hash_key;     // its name in the job hash text (NULL: not hashed)
    const char *yaml;         // YAML key when it differs (adam_betas), else NULL
    int elem;                 // 1-based position in that YAML list ([beta1, beta2]); 0: a scalar
    const char *const *names; // ENUM: accepted names (NULL-terminated), in message order
    const int *values;        // ENUM: the enum value of each name
} bipo_hp_field;

extern const bipo_hp_field bipo_hp_fields[];
extern const size_t bipo_hp_n_fields;

// The row named `name`, or NULL.
const bipo_hp_field *bipo_hp_find(const char *name);
// YAML key of a row (yaml or name).
const char *bipo_hp_key(const bipo_hp_field *f);
// Value of a row as u64 (SIZE, U64, BOOL, ENUM) or double (DOUBLE), read and written through
// the row's offset.
uint64_t bipo_hp_get_u64(const bipo_hparams *hp, const bipo_hp_field *f);
void bipo_hp_set_u64(bipo_hparams *hp, const bipo_hp_field *f, uint64_t v);
double bipo_hp_get_double(const bipo_hparams *hp, const bipo_hp_field *f);
void bipo_hp_set_double(bipo_hparams *hp, const bipo_hp_field *f, double v);
int bipo_hp_is_default(const bipo_hparams *hp, const bipo_hp_field *f);
// ENUM: the name of the row's current value ("cosine"), or "?".
const char *bipo_hp_enum_name(const bipo_hparams *hp, const bipo_hp_field *f);
// Appends the hash text of the rows with flag `which` (BIPO_HP_HASH: "key=value|" each;
// BIPO_HP_HASH_IF_SET: "|key=value" for each not at its default) to buf at *k (cap bytes).
// Values: %.17g doubles, %zu sizes, %llu u64, %d bools and enums (the enum value).
// Sets the preset's values (train.preset; BIPO_PRESET_NONE changes nothing but hp->preset).
void bipo_hparams_preset(bipo_hparams *hp, int preset);
void bipo_hparams_hash_text(const bipo_hparams *hp, unsigned which, char *buf, size_t cap, int *k);

#endif
