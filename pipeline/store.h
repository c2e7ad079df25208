// pipeline/store.h — the vector library: one HDF5 file holding the BiPO runs of many
// models × behaviors × layers, in-progress training checkpoints and provenance records.
// Layout, attribute names and the crash-safety scheme: docs/LIBRARY.md.
//
// Only MPI rank 0 writes. A writer holds an advisory lock (flock on "<path>.lock"); a second
// writer fails with a clear message. Every write is a transaction on a side file
// "<path>.tmp.<pid>" (a copy of the library) that is flushed, fsync'ed and rename()d over the
// library, so a kill -9 at any moment leaves the previous complete library in place. The
// original file is never modified in place. Stale side files are removed by the next writer.
//
// Errors: every function that can fail returns -1 (or NULL) and records one message with
// bipo_set_error() naming the file (bipo_last_error()); nothing is half-written.
// Shapes: C = hidden size (vector length), S = steps, E = epochs with held-out loss.
#ifndef BIPO_STORE_H
#define BIPO_STORE_H
#include <stddef.h>
#include <stdint.h>

#define BIPO_LIBRARY_FORMAT "bipo-library"
#define BIPO_LIBRARY_VERSION 1
// Model ids and behaviors: 1..127 chars of [A-Za-z0-9._+=@-], not starting with '.'.
// Config hashes: at least 12 chars of [0-9a-zA-Z] (the run name is its first 12).
#define BIPO_NAME_MAX 128

typedef struct bipo_store bipo_store;
typedef enum { BIPO_STORE_READ, BIPO_STORE_WRITE } bipo_store_mode;

// READ: the file must exist and be a bipo library (a consistent snapshot: later writers replace
// the file, this handle keeps reading the version it opened). WRITE: takes the lock, removes
// stale side files, creates the library when the path does not exist.
bipo_store *bipo_store_open(const char *path, bipo_store_mode mode);
void bipo_store_close(bipo_store *s); // aborts an uncommitted batch; releases the lock
const char *bipo_store_path(const bipo_store *s);

// Each write call below is its own transaction (one copy + fsync + rename). To group several
// into one (e.g. a run + deleting its checkpoint), bracket them with begin/commit; reads in
// between see the uncommitted state. If any call inside fails, commit refuses and aborts.
int bipo_store_begin(bipo_store *s);
int bipo_store_commit(bipo_store *s);
void bipo_store_abort(bipo_store *s);

// ---- attributes: a small key/value list ----------------------------------------------------
typedef enum { BIPO_ATTR_STR, BIPO_ATTR_INT, BIPO_ATTR_DOUBLE } bipo_attr_type;
typedef struct {
    const char *key;
    bipo_attr_type type;
    const char *s; // BIPO_ATTR_STR (UTF-8, < 60000 bytes)
    int64_t i;     // BIPO_ATTR_INT
    double d;      // BIPO_ATTR_DOUBLE
} bipo_attr;
#define BIPO_ATTR_S(k, v) ((bipo_attr){(k), BIPO_ATTR_STR, (v), 0, 0})
#define BIPO_ATTR_I(k, v) ((bipo_attr){(k), BIPO_ATTR_INT, NULL, (v), 0})
#define BIPO_ATTR_D(k, v) ((bipo_attr){(k), BIPO_ATTR_DOUBLE, NULL, 0, (v)})

// ---- what a run is filed under -------------------------------------------------------------
typedef struct {
    const char *model_id;    // "SmolLM2-135M-Instruct"
    const char *behavior;    // "power-seeking"
    int layer;               // L: the vector is added to the output of decoder layer L
    const char *config_hash; // hex digest of the training config (sha256)
} bipo_job_key;

typedef struct { // /models/<model_id> attrs, written once, checked on every later run
    const char *source, *architecture, *fingerprint, *dtype;
    int64_t hidden, layers;
} bipo_model_info;

typedef struct { // /models/<m>/behaviors/<b> attrs, updated by every run
    const char *const *data_paths;
    size_t n_data_paths;
    const char *data_hash;
} bipo_behavior_info;

// The arrays of one run (or of a checkpoint so far). Reads allocate; bipo_run_data_free().
typedef struct {
    size_t C;
    float *vector;        // [C] final (or current) vector
    float *loss;          // [S] per-step training loss
    size_t n_steps;       // S
    float *heldout_pos;   // [E] held-out loss with d = +1
    float *heldout_neg;   // [E] held-out loss with d = -1
    size_t n_epochs;      // E
    float *epoch_vectors; // [n_saved][C] vectors saved at save_epochs
    int32_t *epoch_ids;   // [n_saved] their epoch numbers
    size_t n_saved;
} bipo_run_data;
void bipo_run_data_free(bipo_run_data *d);

// ---- runs ------------------------------------------------------------------------------------
// 1 and the run name when a complete run with this exact config hash exists (a rerun skips the
// job), 0 when none, -1 on error.
int bipo_store_find_run(bipo_store *s, const bipo_job_key *k, char run[BIPO_NAME_MAX]);
// Writes /models/<m>/behaviors/<b>/layer_<L>/runs/<run> with status "complete" and marks it
// newest. <run> = first 12 chars of the config hash, "-2", "-3", ... when taken (a retrain with
// the same config keeps the old run). The store sets status, config_hash, finished,
// vector_norm, final_loss (last loss), created (= finished unless given), model_fingerprint
// and data_hash (from m and b unless given); attrs adds the rest (beta, lr, epochs, seed, ...:
// docs/LIBRARY.md) and may not set status, config_hash, finished or vector_norm. The model
// group must agree with m (fingerprint, hidden = d->C). run may be NULL.
int bipo_store_write_run(bipo_store *s, const bipo_job_key *k, const bipo_model_info *m,
                         const bipo_behavior_info *b, const bipo_run_data *d,
                         const bipo_attr *attrs, size_t n_attrs, char run[BIPO_NAME_MAX]);
// Reads a run; run == NULL means the layer's newest.
int bipo_store_read_run(bipo_store *s, const char *model_id, const char *behavior, int layer,
                        const char *run, bipo_run_data *out);
// The vector alone (malloc'd, *C set); NULL on error.
float *bipo_store_read_vector(bipo_store *s, const char *model_id, const char *behavior, int layer,
                              const char *run, size_t *C);

// The attributes of /models/<model_id> (what the first run wrote); -1 when it is missing.
typedef struct {
    char source[4096], architecture[64], fingerprint[128], dtype[32];
    int64_t hidden, layers; // C and the model's decoder layer count (0 when absent)
} bipo_model_entry;
int bipo_store_read_model(bipo_store *s, const char *model_id, bipo_model_entry *out);
// A string attribute of a run (run == NULL: the newest) into buf[n]: 1 when present, 0 when
// the run has no such attribute, -1 on error (no such run: the message names it).
int bipo_store_read_run_attr(bipo_store *s, const char *model_id, const char *behavior,
                             int layer, const char *run, const char *key, char *buf, size_t n);

// ---- checkpoints (in-progress jobs) -----------------------------------------------------------
typedef struct {
    bipo_run_data d;        // vector so far, loss so far, held-out curves, epoch vectors
    float *adam_m, *adam_v; // [C] AdamW moments
    int64_t step, epoch;    // next step / epoch to run
    uint64_t *rng;          // [n_rng] RNG state words
    size_t n_rng;
    uint64_t *order; // [n_order] data order (pair indices)
    size_t n_order;
} bipo_checkpoint;
void bipo_checkpoint_free(bipo_checkpoint *c);
// Writes (replaces) /checkpoints/<model>:<behavior>:layer_<L>:<config_hash>. Bit-exact.
int bipo_store_write_checkpoint(bipo_store *s, const bipo_job_key *k, const bipo_checkpoint *c);
// 1 and *out filled when present, 0 when none, -1 on error.
int bipo_store_read_checkpoint(bipo_store *s, const bipo_job_key *k, bipo_checkpoint *out);
// 0 also when there is none.
int bipo_store_delete_checkpoint(bipo_store *s, const bipo_job_key *k);

// ---- provenance ---------------------------------------------------------------------------------
// /provenance/run_<YYYYmmddTHHMMSSZ>[-n]: attrs (code revision, library versions, compiler,
// hosts, start time, ...) + the store's hdf5_version and created; config_text (the whole YAML)
// goes into a string dataset "config_text" (it can exceed the 64 KiB attribute limit).
int bipo_store_write_provenance(bipo_store *s, const char *config_text, const bipo_attr *attrs,
                                size_t n_attrs, char name[BIPO_NAME_MAX]);

// ---- listing and checking
// -------------------------------------------------------------------------
typedef struct {
    char model[BIPO_NAME_MAX], behavior[BIPO_NAME_MAX], run[BIPO_NAME_MAX];
    int layer;
    int newest; // the layer's newest run
    char status[32];
    char config_hash[BIPO_NAME_MAX];
    char created[32], finished[32]; // ISO 8601 UTC
    size_t C, n_steps;
    double final_loss, vector_norm; // NaN when absent
} bipo_run_entry;
typedef struct {
    char name[4 * BIPO_NAME_MAX];
    char model[BIPO_NAME_MAX], behavior[BIPO_NAME_MAX], config_hash[BIPO_NAME_MAX];
    int layer;
    int64_t step, epoch;
    char written[32];
} bipo_checkpoint_entry;
typedef struct {
    int format_version;
    char created[32];
    bipo_run_entry *runs; // sorted by model, behavior, layer, run
    size_t n_runs;
    bipo_checkpoint_entry *checkpoints;
    size_t n_checkpoints;
    char (*provenance)[BIPO_NAME_MAX]; // record names, oldest first
    size_t n_provenance;
} bipo_listing;
int bipo_store_list(bipo_store *s, bipo_listing *out);
void bipo_listing_free(bipo_listing *l);
// Consistency check: root attrs, every run complete with vector [hidden] f32 and its attrs,
// every newest marker naming an existing run, every checkpoint's arrays of matching sizes.
// 0 ok; -1 with the first problem in bipo_last_error().
int bipo_store_check(bipo_store *s);

#endif
