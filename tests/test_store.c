// tests/test_store.c — the HDF5 vector library (pipeline/store.c) and `inspect`.
//   usage: test_store PYTHON tests/store_h5py.py
// 1. runs: 2 models × 2 behaviors × 2 layers written, re-opened, found complete (a rerun
//    skips), read back bit-exactly; a changed config hash writes a new run, keeps the old one,
//    moves newest; retrain with the same config and a 12-char prefix collision get "-2"/"-3"
// 2. checkpoints round-trip bit-exactly (NaN payloads, -0, denormals, u64 high bits), replace,
//    delete; replacing 40 times does not grow the file without bound
// 3. provenance; 4. h5py reads the layout and every value (tests/store_h5py.py, JSON)
// 5. crash safety: a child writes in a loop and is killed (SIGKILL) at random moments, 20
//    times; after each kill the library opens, passes bipo_store_check and holds every entry
//    the child reported committed (through a pipe) bit-exactly
// 6. bad input (missing, not HDF5, foreign HDF5, bad names, wrong model) → clear errors, file
//    unchanged; a second writer is refused; the original file is never modified in place
// 7. inspect (table, --json, exit 1 on a bad file)
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"   // defines: bipo_store_*
#include "testlib.h" // defines: EXPECT, tl_summary
#include "rng.h"  // defines: bipo_rng_next, bipo_rng_uniform (splitmix64)
#include "util.h"    // defines: bipo_sha256, bipo_read_file, bipo_now

int cmd_inspect(int argc, char **argv); // pipeline/cmd_inspect.c

static char g_dir[64];

// ---- deterministic contents -----------------------------------------------------------------
static float *rand_f32(uint64_t *s, size_t n) {
    float *x = xmalloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(bipo_rng_uniform(s) * 4 - 2);
    return x;
}
// Run number `seed`: hidden C, S = 5 + seed % 7 steps, E = 3 epochs, 2 saved epoch vectors.
static void make_data(bipo_run_data *d, uint64_t seed, size_t C) {
    uint64_t s = seed * 7919 + 1;
    memset(d, 0, sizeof *d);
    d->C = C;
    d->n_steps = 5 + seed % 7;
    d->n_epochs = 3;
    d->n_saved = 2;
    d->vector = rand_f32(&s, C);
    d->loss = rand_f32(&s, d->n_steps);
    d->heldout_pos = rand_f32(&s, 3);
    d->heldout_neg = rand_f32(&s, 3);
    d->epoch_vectors = rand_f32(&s, 2 * C);
    d->epoch_ids = xmalloc(2 * sizeof(int32_t));
    d->epoch_ids[0] = 2, d->epoch_ids[1] = 10; // "epoch_10" sorts before "epoch_2" as a name
}
static int same_data(const bipo_run_data *a, const bipo_run_data *b) {
    return a->C == b->C && a->n_steps == b->n_steps && a->n_epochs == b->n_epochs &&
           a->n_saved == b->n_saved && !memcmp(a->vector, b->vector, a->C * 4) &&
           !memcmp(a->loss, b->loss, a->n_steps * 4) &&
           !memcmp(a->heldout_pos, b->heldout_pos, a->n_epochs * 4) &&
           !memcmp(a->heldout_neg, b->heldout_neg, a->n_epochs * 4) &&
           !memcmp(a->epoch_vectors, b->epoch_vectors, a->n_saved * a->C * 4) &&
           !memcmp(a->epoch_ids, b->epoch_ids, a->n_saved * 4);
}
static void make_checkpoint(bipo_checkpoint *c, uint64_t seed, size_t C) {
    uint64_t s = seed * 31 + 5;
    memset(c, 0, sizeof *c);
    make_data(&c->d, seed + 1000, C);
    c->adam_m = rand_f32(&s, C);
    c->adam_v = rand_f32(&s, C);
    uint32_t specials[] = {0x80000000u /* -0 */,
                           1u /* denormal */,
                           0x7f7fffffu /* FLT_MAX */,
                           0x7f800000u /* inf */,
                           0x7fc01234u /* NaN with payload */,
                           0xffa00001u /* sNaN */};
    for (size_t i = 0; i < 6 && i < C; i++) memcpy(&c->d.vector[i], &specials[i], 4);
    c->step = (int64_t)seed * 3, c->epoch = (int64_t)seed % 4;
    c->n_rng = 4, c->n_order = 50;
    c->rng = xmalloc(4 * 8), c->order = xmalloc(50 * 8);
    for (size_t i = 0; i < 4; i++) c->rng[i] = bipo_rng_next(&s) | 0x8000000000000000ull;
    for (size_t i = 0; i < 50; i++) c->order[i] = (i * 17 + seed) % 50;
}
static int same_checkpoint(const bipo_checkpoint *a, const bipo_checkpoint *b) {
    size_t C = a->d.C;
    return same_data(&a->d, &b->d) && !memcmp(a->adam_m, b->adam_m, C * 4) &&
           !memcmp(a->adam_v, b->adam_v, C * 4) && a->step == b->step && a->epoch == b->epoch &&
           a->n_rng == b->n_rng && a->n_order == b->n_order &&
           !memcmp(a->rng, b->rng, a->n_rng * 8) && !memcmp(a->order, b->order, a->n_order * 8);
}

static void hash_of(const char *text, char out[65]) {
    bipo_sha256 h;
    bipo_sha256_init(&h);
    bipo_sha256_update(&h, text, strlen(text));
    bipo_sha256_hex(&h, out);
}
static void file_hash(const char *path, char out[65]) {
    size_t n = 0;
    char *b = bipo_read_file(path, &n);
    bipo_sha256 h;
    bipo_sha256_init(&h);
    if (b) bipo_sha256_update(&h, b, n);
    bipo_sha256_hex(&h, out);
    free(b);
}
static int count_side_files(const char *lib) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls %s.tmp.* 2>/dev/null | wc -l", lib);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1) n = -1;
    if (p) pclose(p);
    return n;
}

// ---- the fixture: 2 models × 2 behaviors × 2 layers -----------------------------------------
static const char *MODELS[2] = {"tiny-llama-a", "SmolLM2-135M-Instruct"};
static const char *BEHAVIORS[2] = {"power-seeking", "wealth_seeking"};
static const int LAYERS[2] = {3, 12};
static const size_t HIDDEN[2] = {64, 96};
static const char *FPS[2] = {"fa11ce0000000000000000000000000000000000000000000000000000000001",
                             "5e110000000000000000000000000000000000000000000000000000000000002"};
static const char *DATA_PATHS[2] = {"data/power.jsonl", "data/power_heldout.jsonl"};

typedef struct {
    int m, b, l;
    char hash[65];
    uint64_t seed;
    char run[BIPO_NAME_MAX];
} expected_run;
static expected_run g_runs[32];
static size_t g_nruns;

static bipo_model_info model_info(int m) {
    return (bipo_model_info){"/models/x.gguf", "llama", FPS[m], "Q4_1", (int64_t)HIDDEN[m], 30};
}
static bipo_job_key key_of(const expected_run *e) {
    return (bipo_job_key){MODELS[e->m], BEHAVIORS[e->b], LAYERS[e->l], e->hash};
}
static int write_expected(bipo_store *s, expected_run *e) {
    bipo_job_key k = key_of(e);
    bipo_model_info mi = model_info(e->m);
    bipo_behavior_info bi = {DATA_PATHS, 2, "d47a"};
    bipo_run_data d;
    make_data(&d, e->seed, HIDDEN[e->m]);
    bipo_attr at[] = {BIPO_ATTR_D("beta", 0.1),
                      BIPO_ATTR_D("lr", 5e-4),
                      BIPO_ATTR_I("epochs", 20),
                      BIPO_ATTR_I("seed", (int64_t)e->seed),
                      BIPO_ATTR_S("schedule", "cosine"),
                      BIPO_ATTR_S("git_revision", "abc123"),
                      BIPO_ATTR_S("hosts", "node1,node2"),
                      BIPO_ATTR_I("n_ranks", 4),
                      BIPO_ATTR_D("elapsed_s", 12.5),
                      BIPO_ATTR_S("created", "2024-05-01T12:00:00Z")};
    int rc = bipo_store_write_run(s, &k, &mi, &bi, &d, at, sizeof at / sizeof at[0], e->run);
    bipo_run_data_free(&d);
    return rc;
}
static void check_expected(bipo_store *s, const expected_run *e, const char *when) {
    bipo_job_key k = key_of(e);
    char run[BIPO_NAME_MAX] = "";
    bipo_run_data want, got;
    EXPECT(bipo_store_find_run(s, &k, run) == 1, "%s: run %s/%s/%d %.12s not found: %s", when,
           k.model_id, k.behavior, k.layer, e->hash, bipo_last_error());
    make_data(&want, e->seed, HIDDEN[e->m]);
    int rc = bipo_store_read_run(s, k.model_id, k.behavior, k.layer, e->run, &got);
    EXPECT(rc == 0 && same_data(&got, &want), "%s: run %s differs or unreadable (%s)", when, e->run,
           rc ? bipo_last_error() : "data differ");
    bipo_run_data_free(&want);
    if (rc == 0) bipo_run_data_free(&got);
}

static void test_runs(const char *lib) {
    bipo_store *s = bipo_store_open(lib, BIPO_STORE_WRITE);
    EXPECT(s != NULL, "create %s: %s", lib, bipo_last_error());
    if (!s) return;
    double t0 = bipo_now();
    for (int m = 0; m < 2; m++)
        for (int b = 0; b < 2; b++)
            for (int l = 0; l < 2; l++) {
                expected_run *e = &g_runs[g_nruns++];
                char text[128];
                *e = (expected_run){m, b, l, "", (uint64_t)g_nruns, ""};
                snprintf(text, sizeof text, "cfg:%d:%d:%d:v1", m, b, l);
                hash_of(text, e->hash);
                bipo_job_key k = key_of(e);
                EXPECT(bipo_store_find_run(s, &k, NULL) == 0, "fresh library has run %s", e->hash);
                EXPECT(write_expected(s, e) == 0, "write run: %s", bipo_last_error());
                EXPECT(!strncmp(e->run, e->hash, 12) && strlen(e->run) == 12, "run name %s",
                       e->run);
            }
    printf("  8 runs written in %.1f ms (%.2f ms per transaction)\n", (bipo_now() - t0) * 1e3,
           (bipo_now() - t0) * 1e3 / 8);
    bipo_store_close(s);

    s = bipo_store_open(lib, BIPO_STORE_WRITE); // re-open: every run complete, a rerun skips
    EXPECT(s != NULL, "re-open: %s", bipo_last_error());
    if (!s) return;
    for (size_t i = 0; i < g_nruns; i++) check_expected(s, &g_runs[i], "re-open");
    size_t C = 0;
    float *v = bipo_store_read_vector(s, MODELS[1], BEHAVIORS[0], LAYERS[1], NULL, &C);
    bipo_run_data want;
    make_data(&want, g_runs[5].seed, HIDDEN[1]);
    EXPECT(v && C == 96 && !memcmp(v, want.vector, C * 4), "read_vector (newest) differs");
    free(v);
    bipo_run_data_free(&want);

    // changed config: a new run, the old one kept, newest moves
    expected_run *old = &g_runs[0], *nw = &g_runs[g_nruns++];
    *nw = *old;
    nw->seed = 100;
    hash_of("cfg:0:0:0:v2 (beta 0.2)", nw->hash);
    bipo_job_key k2 = key_of(nw);
    EXPECT(bipo_store_find_run(s, &k2, NULL) == 0, "changed config found before it was written");
    EXPECT(write_expected(s, nw) == 0, "write changed config: %s", bipo_last_error());
    EXPECT(strcmp(nw->run, old->run) != 0, "changed config reused the run name");
    check_expected(s, old, "after a new config");
    check_expected(s, nw, "new config");
    v = bipo_store_read_vector(s, MODELS[0], BEHAVIORS[0], LAYERS[0], NULL, &C);
    make_data(&want, 100, HIDDEN[0]);
    EXPECT(v && !memcmp(v, want.vector, C * 4), "newest is not the new config's run");
    free(v);
    bipo_run_data_free(&want);

    // the same config again (forced retrain) and a 12-char prefix collision: -2, -3
    expected_run *again = &g_runs[g_nruns++], *coll = &g_runs[g_nruns++];
    *again = *nw;
    again->seed = 101;
    EXPECT(write_expected(s, again) == 0 && !strcmp(again->run + 12, "-2"), "retrain name %s",
           again->run);
    *coll = *nw;
    coll->seed = 102;
    memcpy(coll->hash + 12, "0000000000000000000000000000000000000000000000000000", 52);
    EXPECT(write_expected(s, coll) == 0 && !strcmp(coll->run + 12, "-3"), "collision name %s",
           coll->run);
    char found[BIPO_NAME_MAX];
    EXPECT(bipo_store_find_run(s, &k2, found) == 1 && !strcmp(found, again->run),
           "find_run should give the latest complete run of a config, got %s", found);
    check_expected(s, coll, "prefix collision");

    // wrong model under an existing id, hidden mismatch, bad names: errors, file unchanged
    char h0[65], h1[65];
    file_hash(lib, h0);
    bipo_model_info bad = model_info(0);
    bad.fingerprint = "0000000000000000";
    bipo_run_data d;
    make_data(&d, 7, 64);
    bipo_job_key k = key_of(&g_runs[0]);
    EXPECT(bipo_store_write_run(s, &k, &bad, NULL, &d, NULL, 0, NULL) == -1 &&
               strstr(bipo_last_error(), "fingerprint"),
           "fingerprint mismatch: '%s'", bipo_last_error());
    bad = model_info(1);
    EXPECT(bipo_store_write_run(s, &k, &bad, NULL, &d, NULL, 0, NULL) == -1 &&
               strstr(bipo_last_error(), "hidden"),
           "hidden mismatch: '%s'", bipo_last_error());
    bipo_model_info good = model_info(0);
    bipo_job_key bk = {"HuggingFaceTB/SmolLM2", "x", 1, g_runs[0].hash};
    EXPECT(bipo_store_write_run(s, &bk, &good, NULL, &d, NULL, 0, NULL) == -1 &&
               strstr(bipo_last_error(), "not a valid name"),
           "bad model id: '%s'", bipo_last_error());
    bipo_attr own = BIPO_ATTR_S("status", "complete");
    EXPECT(bipo_store_write_run(s, &k, &good, NULL, &d, &own, 1, NULL) == -1 &&
               strstr(bipo_last_error(), "set by the store"),
           "owned attr: '%s'", bipo_last_error());
    bipo_run_data_free(&d);
    file_hash(lib, h1);
    EXPECT(!strcmp(h0, h1), "a failed write changed the library");
    EXPECT(count_side_files(lib) == 0, "a failed write left a side file");

    // a second writer is refused with a clear message; readers are fine
    bipo_store *s2 = bipo_store_open(lib, BIPO_STORE_WRITE);
    EXPECT(!s2 && strstr(bipo_last_error(), "another process is writing"), "second writer: '%s'",
           bipo_last_error());
    bipo_store_close(s2);
    bipo_store *r = bipo_store_open(lib, BIPO_STORE_READ);
    EXPECT(r && bipo_store_check(r) == 0, "reader next to a writer: %s", bipo_last_error());
    EXPECT(r && bipo_store_write_provenance(r, NULL, NULL, 0, NULL) == -1, "read-only store wrote");
    bipo_store_close(r);

    // never modified in place: the old inode keeps its bytes, the library is a new file
    struct stat st0, st1;
    int fd = open(lib, O_RDONLY);
    fstat(fd, &st0);
    char *before = xmalloc((size_t)st0.st_size), *after = xmalloc((size_t)st0.st_size);
    EXPECT(pread(fd, before, (size_t)st0.st_size, 0) == st0.st_size, "pread");
    EXPECT(bipo_store_write_provenance(s, "x: 1\n", NULL, 0, NULL) == 0, "provenance: %s",
           bipo_last_error());
    EXPECT(pread(fd, after, (size_t)st0.st_size, 0) == st0.st_size &&
               !memcmp(before, after, (size_t)st0.st_size),
           "the original file was modified in place");
    stat(lib, &st1);
    EXPECT(st1.st_ino != st0.st_ino, "the library was not replaced by rename");
    close(fd);
    free(before), free(after);
    bipo_store_close(s);
}

static void test_checkpoints(const char *lib) {
    bipo_store *s = bipo_store_open(lib, BIPO_STORE_WRITE);
    EXPECT(s != NULL, "open: %s", bipo_last_error());
    if (!s) return;
    bipo_job_key k = {MODELS[0], BEHAVIORS[1], 3, "feedfacefeedfacefeedface"};
    bipo_checkpoint c, got;
    EXPECT(bipo_store_read_checkpoint(s, &k, &got) == 0, "checkpoint present before writing");
    make_checkpoint(&c, 1, 64);
    EXPECT(bipo_store_write_checkpoint(s, &k, &c) == 0, "write checkpoint: %s", bipo_last_error());
    bipo_store_close(s); // round trip through a fresh open
    s = bipo_store_open(lib, BIPO_STORE_WRITE);
    EXPECT(bipo_store_read_checkpoint(s, &k, &got) == 1 && same_checkpoint(&c, &got),
           "checkpoint not bit-exact: %s", bipo_last_error());
    bipo_checkpoint_free(&got);
    bipo_checkpoint_free(&c);
    struct stat st;
    off_t first = 0;
    for (int i = 2; i <= 41; i++) { // replace: the file must not grow with every version
        make_checkpoint(&c, (uint64_t)i, 4096);
        EXPECT(bipo_store_write_checkpoint(s, &k, &c) == 0, "replace checkpoint: %s",
               bipo_last_error());
        if (i == 41) {
            EXPECT(bipo_store_read_checkpoint(s, &k, &got) == 1 && same_checkpoint(&c, &got),
                   "replaced checkpoint not bit-exact");
            bipo_checkpoint_free(&got);
        }
        bipo_checkpoint_free(&c);
        stat(lib, &st);
        if (i == 3) first = st.st_size;
    }
    printf("  checkpoint [4096] replaced 40 times: library %lld -> %lld bytes\n", (long long)first,
           (long long)st.st_size);
    EXPECT(st.st_size < first + 2 * 4096 * 4, "replacing a checkpoint grows the file: %lld -> %lld",
           (long long)first, (long long)st.st_size);
    // a second job's checkpoint stays while the first is deleted
    bipo_job_key k2 = k;
    k2.layer = 12;
    make_checkpoint(&c, 77, 64);
    EXPECT(bipo_store_write_checkpoint(s, &k2, &c) == 0, "second checkpoint");
    EXPECT(bipo_store_delete_checkpoint(s, &k) == 0, "delete: %s", bipo_last_error());
    EXPECT(bipo_store_read_checkpoint(s, &k, &got) == 0, "deleted checkpoint still there");
    EXPECT(bipo_store_delete_checkpoint(s, &k) == 0, "deleting a missing checkpoint fails");
    EXPECT(bipo_store_read_checkpoint(s, &k2, &got) == 1 && same_checkpoint(&c, &got),
           "other checkpoint lost");
    bipo_checkpoint_free(&got);
    bipo_checkpoint_free(&c);
    // batch: the run and the deletion of its checkpoint in one transaction
    EXPECT(bipo_store_begin(s) == 0, "begin: %s", bipo_last_error());
    EXPECT(bipo_store_delete_checkpoint(s, &k2) == 0, "delete in batch");
    EXPECT(bipo_store_read_checkpoint(s, &k2, &got) == 0, "a batch does not see its own delete");
    bipo_store_abort(s);
    EXPECT(bipo_store_read_checkpoint(s, &k2, &got) == 1, "abort did not roll back");
    bipo_checkpoint_free(&got);
    EXPECT(bipo_store_begin(s) == 0 && bipo_store_delete_checkpoint(s, &k2) == 0 &&
               bipo_store_commit(s) == 0,
           "batch commit: %s", bipo_last_error());
    EXPECT(bipo_store_read_checkpoint(s, &k2, &got) == 0, "batch commit lost the delete");
    // the 40 KiB config and provenance records
    size_t n = 100000; // over the 64 KiB attribute limit: a dataset
    char *yaml = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) yaml[i] = "models:\n  - x: 1\n"[i % 17];
    yaml[n] = 0;
    bipo_attr pa[] = {BIPO_ATTR_S("git_revision", "abc123"), BIPO_ATTR_S("compiler", "gcc 12"),
                      BIPO_ATTR_S("mpi_version", "Open MPI 4.1"), BIPO_ATTR_S("hosts", "node1"),
                      BIPO_ATTR_S("start_time", "2024-05-01T12:00:00Z")};
    char p1[BIPO_NAME_MAX], p2[BIPO_NAME_MAX];
    EXPECT(bipo_store_write_provenance(s, yaml, pa, 5, p1) == 0, "provenance: %s",
           bipo_last_error());
    EXPECT(bipo_store_write_provenance(s, yaml, pa, 5, p2) == 0 && strcmp(p1, p2),
           "second provenance %s %s", p1, p2);
    free(yaml);
    bipo_store_close(s);
}

// ---- h5py -----------------------------------------------------------------------------------
static json_t *run_h5py(const char *python, const char *script, const char *lib) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s %s", python, script, lib);
    FILE *p = popen(cmd, "r");
    size_t cap = 1 << 20, n = 0, k;
    char *buf = xmalloc(cap);
    while (p && (k = fread(buf + n, 1, cap - n - 1, p)) > 0)
        if ((n += k) + 1 >= cap) buf = xrealloc(buf, cap *= 2);
    buf[n] = 0;
    int st = p ? pclose(p) : -1;
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed (exit %d; 77 = h5py missing)", cmd,
           WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    json_error_t err;
    json_t *j = json_loads(buf, 0, &err);
    EXPECT(j != NULL || st != 0, "h5py summary is not JSON: %s", err.text);
    free(buf);
    return j;
}
// A float32 array from the h5py summary: a JSON array of numbers, compared bit for bit.
static int same_f32(json_t *a, const float *x, size_t n) {
    if (!json_is_array(a) || json_array_size(a) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if ((float)json_number_value(json_array_get(a, i)) != x[i]) return 0;
    return 1;
}

static void test_h5py(const char *python, const char *script, const char *lib) {
    json_t *j = run_h5py(python, script, lib);
    if (!j) return;
    json_t *runs = json_object_get(j, "runs"), *newest = json_object_get(j, "newest");
    EXPECT(json_object_size(runs) == g_nruns, "h5py sees %zu runs, wrote %zu",
           json_object_size(runs), g_nruns);
    for (size_t i = 0; i < g_nruns; i++) {
        const expected_run *e = &g_runs[i];
        char path[512];
        snprintf(path, sizeof path, "%s/%s/layer_%d/%s", MODELS[e->m], BEHAVIORS[e->b],
                 LAYERS[e->l], e->run);
        json_t *r = json_object_get(runs, path), *at = json_object_get(r, "attrs");
        bipo_run_data d;
        make_data(&d, e->seed, HIDDEN[e->m]);
        EXPECT(r && same_f32(json_object_get(r, "vector"), d.vector, d.C) &&
                   same_f32(json_object_get(r, "loss"), d.loss, d.n_steps) &&
                   same_f32(json_object_get(r, "heldout_pos"), d.heldout_pos, 3) &&
                   same_f32(json_object_get(r, "heldout_neg"), d.heldout_neg, 3) &&
                   same_f32(json_object_get(json_object_get(r, "epochs"), "10"),
                            d.epoch_vectors + d.C, d.C),
               "h5py: arrays of %s differ", path);
        EXPECT(json_real_value(json_object_get(at, "beta")) == 0.1 &&
                   json_integer_value(json_object_get(at, "seed")) == (json_int_t)e->seed &&
                   !strcmp(json_string_value(json_object_get(at, "schedule")) ?: "", "cosine") &&
                   !strcmp(json_string_value(json_object_get(at, "config_hash")) ?: "", e->hash) &&
                   json_real_value(json_object_get(at, "final_loss")) ==
                       (double)d.loss[d.n_steps - 1] &&
                   !strcmp(json_string_value(json_object_get(at, "created")) ?: "",
                           "2024-05-01T12:00:00Z"),
               "h5py: attributes of %s", path);
        bipo_run_data_free(&d);
    }
    EXPECT(!strcmp(json_string_value(json_object_get(newest, "tiny-llama-a/power-seeking/layer_3"))
                       ?: "",
                   g_runs[g_nruns - 1].run),
           "h5py: newest marker");
    json_t *m = json_object_get(json_object_get(j, "models"), MODELS[1]);
    EXPECT(json_integer_value(json_object_get(m, "hidden")) == 96 &&
               !strcmp(json_string_value(json_object_get(m, "fingerprint")) ?: "", FPS[1]),
           "h5py: model attrs");
    json_t *beh = json_object_get(j, "provenance");
    EXPECT(json_object_size(beh) == 3, "h5py: %zu provenance records", json_object_size(beh));
    const char *key;
    json_t *pv;
    json_object_foreach(beh, key, pv) {
        const char *t = json_string_value(json_object_get(pv, "config_text"));
        EXPECT(t && (strlen(t) == 100000 || !strcmp(t, "x: 1\n")), "h5py: config_text of %s", key);
        EXPECT(json_string_value(json_object_get(json_object_get(pv, "attrs"), "hdf5_version")),
               "hdf5_version");
    }
    json_decref(j);
}

// The h5py view of a checkpoint, bit for bit (u64 as hex; NaN payloads survive only as bits,
// so this one checks the vector through the C reader and the rest here).
static void test_h5py_checkpoint(const char *python, const char *script, const char *lib) {
    bipo_store *s = bipo_store_open(lib, BIPO_STORE_WRITE);
    bipo_job_key k = {MODELS[1], BEHAVIORS[0], 12, "0123456789abcdef"};
    bipo_checkpoint c;
    make_checkpoint(&c, 9, 96);
    for (size_t i = 0; i < 6; i++) c.d.vector[i] = (float)i; // JSON has no NaN/inf
    EXPECT(s && bipo_store_write_checkpoint(s, &k, &c) == 0, "checkpoint for h5py: %s",
           bipo_last_error());
    bipo_store_close(s);
    json_t *j = run_h5py(python, script, lib);
    json_t *cj = json_object_get(json_object_get(j, "checkpoints"),
                                 "SmolLM2-135M-Instruct:power-seeking:layer_12:0123456789abcdef");
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)c.rng[0]);
    EXPECT(
        cj && same_f32(json_object_get(cj, "vector"), c.d.vector, 96) &&
            same_f32(json_object_get(cj, "adam_v"), c.adam_v, 96) &&
            !strcmp(json_string_value(json_array_get(json_object_get(cj, "rng"), 0)) ?: "", hex) &&
            json_array_size(json_object_get(cj, "order")) == 50 &&
            json_integer_value(json_object_get(json_object_get(cj, "attrs"), "step")) == 27,
        "h5py: checkpoint contents");
    bipo_checkpoint_free(&c);
    json_decref(j);
}

// ---- crash safety ---------------------------------------------------------------------------
// Op i of the writer child: i % 3 == 1 writes checkpoint version i, i % 3 == 2 deletes it,
// else a run (crash/b<i%3>/layer_<i%4>, config hash of i, contents seed i).
static bipo_job_key crash_key(int i, char hash[65]) {
    char text[32];
    snprintf(text, sizeof text, "crash-%d", i);
    hash_of(text, hash);
    return (bipo_job_key){"crash-model", i % 2 ? "b1" : "b0", i % 4, hash};
}
static bipo_job_key crash_ckpt_key(void) {
    return (bipo_job_key){"crash-model", "b0", 0, "c0ffee0c0ffee0"};
}

static int crash_op(bipo_store *s, int i) {
    char hash[65];
    bipo_job_key k = crash_key(i, hash), ck = crash_ckpt_key();
    bipo_model_info mi = {"x", "llama", "c4a5h", "F32", 32, 4};
    if (i % 3 == 1) {
        bipo_checkpoint c;
        make_checkpoint(&c, (uint64_t)i, 32);
        int rc = bipo_store_write_checkpoint(s, &ck, &c);
        bipo_checkpoint_free(&c);
        return rc;
    }
    if (i % 3 == 2) return bipo_store_delete_checkpoint(s, &ck);
    bipo_run_data d;
    make_data(&d, (uint64_t)i, 32);
    int rc = bipo_store_write_run(s, &k, &mi, NULL, &d, NULL, 0, NULL);
    bipo_run_data_free(&d);
    return rc;
}

static void crash_child(const char *lib, int start, int fd) {
    bipo_store *s = bipo_store_open(lib, BIPO_STORE_WRITE);
    if (!s) {
        fprintf(stderr, "crash child: %s\n", bipo_last_error());
        _exit(3);
    }
    for (int i = start;; i++) {
        if (crash_op(s, i) != 0) {
            fprintf(stderr, "crash child: op %d: %s\n", i, bipo_last_error());
            _exit(4);
        }
        if (write(fd, &i, sizeof i) != sizeof i) _exit(5);
    }
}

// The checkpoint versions the library may hold, given the possible states before a round and
// what the child reported: ops next..last committed, op last+1 maybe.
typedef struct {
    int v[8], n;
} state_set;
static void set_add(state_set *p, int v) {
    for (int k = 0; k < p->n; k++)
        if (p->v[k] == v) return;
    if (p->n < 8) p->v[p->n++] = v;
}
static int set_has(const state_set *p, int v) {
    for (int k = 0; k < p->n; k++)
        if (p->v[k] == v) return 1;
    return 0;
}
static int op_effect(int i) { return i % 3 == 1 ? i : -1; } // on the checkpoint (i % 3 != 0)

static void test_crash(const char *lib) {
    int next = 0, n_committed = 0, with_side = 0;
    state_set ok = {{-1}, 1};
    int *committed = xmalloc(100000 * sizeof(int));
    for (int round = 0; round < 20; round++) {
        int fds[2];
        CHECK(pipe(fds) == 0, "pipe");
        pid_t pid = fork();
        CHECK(pid >= 0, "fork");
        if (pid == 0) {
            close(fds[0]);
            crash_child(lib, next, fds[1]);
        }
        close(fds[1]);
        usleep((useconds_t)(5000 + (tl_randf() + 1) * 40000)); // 5..85 ms
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        EXPECT(WIFSIGNALED(st), "round %d: child exited by itself (status %d)", round, st);
        int i, last = next - 1;
        while (read(fds[0], &i, sizeof i) == sizeof i) committed[n_committed++] = last = i;
        close(fds[0]);
        for (int j = last; j >= next; j--)
            if (j % 3) { // the last committed checkpoint op decides
                ok = (state_set){{op_effect(j)}, 1};
                break;
            }
        if ((last + 1) % 3) set_add(&ok, op_effect(last + 1)); // killed before reporting it?
        next = last + 2;                                       // skip the ambiguous op
        with_side += count_side_files(lib) > 0;

        bipo_store *s = bipo_store_open(lib, BIPO_STORE_READ);
        EXPECT(s != NULL, "round %d: library unreadable after kill: %s", round, bipo_last_error());
        if (!s) break;
        EXPECT(bipo_store_check(s) == 0, "round %d: check failed: %s", round, bipo_last_error());
        for (int c = 0; c < n_committed; c++) {
            int j = committed[c];
            if (j % 3) continue;
            char hash[65], run[BIPO_NAME_MAX];
            bipo_job_key k = crash_key(j, hash);
            bipo_run_data want, got;
            make_data(&want, (uint64_t)j, 32);
            int rc = bipo_store_find_run(s, &k, run) == 1
                         ? bipo_store_read_run(s, k.model_id, k.behavior, k.layer, run, &got)
                         : -1;
            EXPECT(rc == 0 && same_data(&got, &want), "round %d: committed run %d lost or damaged",
                   round, j);
            bipo_run_data_free(&want);
            if (rc == 0) bipo_run_data_free(&got);
        }
        bipo_job_key ck = crash_ckpt_key();
        bipo_checkpoint got, want;
        int have = bipo_store_read_checkpoint(s, &ck, &got),
            ver = have == 1 ? (int)(got.step / 3) : -1;
        EXPECT(have >= 0 && set_has(&ok, ver),
               "round %d: checkpoint version %d, expected one of %d states", round, ver, ok.n);
        if (have == 1) {
            make_checkpoint(&want, (uint64_t)ver, 32);
            EXPECT(same_checkpoint(&got, &want), "round %d: checkpoint %d damaged", round, ver);
            bipo_checkpoint_free(&want);
            bipo_checkpoint_free(&got);
        }
        bipo_store_close(s);
    }
    int runs = 0;
    for (int c = 0; c < n_committed; c++) runs += committed[c] % 3 == 0;
    printf("  crash: 20 kills, %d transactions committed (%d runs), %d kills left a side file\n",
           n_committed, runs, with_side);
    EXPECT(n_committed >= 20, "the child committed only %d transactions in 20 rounds", n_committed);
    bipo_store *s = bipo_store_open(lib, BIPO_STORE_WRITE); // a writer removes stale side files
    EXPECT(s && count_side_files(lib) == 0, "stale side files not removed: %s",
           s ? "" : bipo_last_error());
    bipo_store_close(s);
    free(committed);
}

// ---- bad input ------------------------------------------------------------------------------
static void expect_refused(const char *path, const char *what, const char *want) {
    char h0[65], h1[65], lock[512];
    file_hash(path, h0);
    for (int mode = 0; mode < 2; mode++) {
        bipo_store *s = bipo_store_open(path, mode ? BIPO_STORE_WRITE : BIPO_STORE_READ);
        EXPECT(!s && strstr(bipo_last_error(), path) && strstr(bipo_last_error(), want),
               "%s (%s): error '%s' should name the file and say '%s'", what,
               mode ? "write" : "read", bipo_last_error(), want);
        bipo_store_close(s);
    }
    file_hash(path, h1);
    snprintf(lock, sizeof lock, "%s.lock", path);
    EXPECT(!strcmp(h0, h1) && access(lock, F_OK) != 0 && count_side_files(path) == 0,
           "%s: something was written", what);
}

static void test_bad_input(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/notes.txt", g_dir);
    FILE *f = fopen(path, "w");
    fputs("not an HDF5 file\n", f);
    fclose(f);
    expect_refused(path, "text file", "not an HDF5 file");
    snprintf(path, sizeof path, "%s/empty.h5", g_dir);
    fclose(fopen(path, "w"));
    expect_refused(path, "empty file", "not an HDF5 file");
    snprintf(path, sizeof path, "%s/foreign.h5", g_dir); // an HDF5 file of someone else's
    hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t n = 4;
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(fid, "weights", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    float x[4] = {1, 2, 3, 4};
    CHECK(fid >= 0 && d >= 0 &&
              H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0,
          "foreign file");
    H5Dclose(d), H5Sclose(sp), H5Fclose(fid);
    expect_refused(path, "foreign HDF5 file", "not a bipo vector library");
    // a newer library (its format attribute variable-length, as h5py writes strings)
    snprintf(path, sizeof path, "%s/newer.h5", g_dir);
    fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1), sc = H5Screate(H5S_SCALAR);
    H5Tset_size(t, H5T_VARIABLE);
    const char *fmt = "bipo-library";
    long long ver = 2;
    hid_t a1 = H5Acreate2(fid, "format", t, sc, H5P_DEFAULT, H5P_DEFAULT);
    hid_t a2 = H5Acreate2(fid, "format_version", H5T_STD_I64LE, sc, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(H5Awrite(a1, t, &fmt) >= 0 && H5Awrite(a2, H5T_NATIVE_LLONG, &ver) >= 0, "newer file");
    H5Aclose(a1), H5Aclose(a2), H5Sclose(sc), H5Tclose(t), H5Fclose(fid);
    expect_refused(path, "newer library", "format_version 2 is not supported");
    snprintf(path, sizeof path, "%s/missing.h5", g_dir);
    bipo_store *s = bipo_store_open(path, BIPO_STORE_READ);
    EXPECT(!s && strstr(bipo_last_error(), "missing.h5"), "missing file: '%s'", bipo_last_error());
    EXPECT(access(path, F_OK) != 0, "opening a missing file for reading created it");
}

// ---- inspect --------------------------------------------------------------------------------
static int run_inspect(int argc, char **argv, char **out) {
    char path[256];
    snprintf(path, sizeof path, "%s/inspect.out", g_dir);
    fflush(stdout);
    int saved = dup(1), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    int rc = cmd_inspect(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(fd), close(saved);
    *out = bipo_read_file(path, NULL);
    return rc;
}

static void test_inspect(const char *lib) {
    char *out = NULL;
    char *a1[] = {"inspect", (char *)lib, "--check"};
    EXPECT(run_inspect(3, a1, &out) == 0 && out && strstr(out, "SmolLM2-135M-Instruct") &&
               strstr(out, "newest") && strstr(out, g_runs[g_nruns - 1].run),
           "inspect table:\n%s", out);
    free(out);
    char *a2[] = {"inspect", "--json", (char *)lib};
    EXPECT(run_inspect(3, a2, &out) == 0, "inspect --json failed");
    json_t *j = out ? json_loads(out, 0, NULL) : NULL;
    json_t *runs = json_object_get(j, "runs");
    size_t n_newest = 0, i;
    json_t *r;
    json_array_foreach(runs, i, r) n_newest += json_is_true(json_object_get(r, "newest"));
    EXPECT(json_is_array(runs) && json_array_size(runs) >= g_nruns && n_newest == 8,
           "inspect --json: %zu runs, %zu newest", json_array_size(runs), n_newest);
    json_t *r0 = json_array_get(runs, 0); // sorted by model, behavior, then layer as a number
    EXPECT(!strcmp(json_string_value(json_object_get(r0, "model")) ?: "", MODELS[1]) &&
               json_integer_value(json_object_get(r0, "layer")) == 3,
           "inspect --json: runs not sorted");
    json_decref(j);
    free(out);
    char bad[256];
    snprintf(bad, sizeof bad, "%s/notes.txt", g_dir);
    char *a3[] = {"inspect", bad};
    EXPECT(run_inspect(2, a3, &out) == 1, "inspect on a text file should exit 1");
    free(out);
    char *a4[] = {"inspect"};
    EXPECT(run_inspect(1, a4, &out) == 2, "inspect without a file should exit 2");
    free(out);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_store PYTHON tests/store_h5py.py\n");
        return 2;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/bipo_store_XXXXXX");
    CHECK(mkdtemp(g_dir), "mkdtemp: %s", strerror(errno));
    char lib[256], crash[256];
    snprintf(lib, sizeof lib, "%s/library.h5", g_dir);
    snprintf(crash, sizeof crash, "%s/crash.h5", g_dir);
    tl_seed(12345);
    printf("runs\n");
    test_runs(lib);
    printf("checkpoints + provenance\n");
    test_checkpoints(lib);
    printf("h5py\n");
    test_h5py(argv[1], argv[2], lib);
    test_h5py_checkpoint(argv[1], argv[2], lib);
    printf("crash safety\n");
    test_crash(crash);
    printf("bad input\n");
    test_bad_input();
    printf("inspect\n");
    test_inspect(lib);
    int rc = tl_summary("test_store");
    if (rc == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    } else {
        fprintf(stderr, "test files kept in %s\n", g_dir);
    }
    return rc;
}
