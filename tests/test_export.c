// tests/test_export.c — `bipo-pipeline export` (pipeline/cmd_export.c, export_*.c) on a small
// library written with the store API: every format read back by an independent reader (our
// GGUF reader workers/gguf.h, jansson for the safetensors header, a zip walker for the .pt),
// the floats compared bit for bit with what was written; --all and its file names; the bad
// cases (missing entry, wrong layer, unknown format, layer 0 as GGUF, unwritable target): one
// stderr line naming the entry or path, non-zero exit, no file and no temp file left.
//   test_export               the checks, in a fresh temp folder
//   test_export --make-lib D  only writes D/lib.h5 (for tests/test_export.py)
#define _GNU_SOURCE // memmem
#include <dirent.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h" // defines: cmd_export
#include "gguf.h"     // defines: gguf_open, gguf_find_tensor, gguf_get_str
#include "store.h"    // defines: bipo_store_open, bipo_store_write_run
#include "testlib.h"  // defines: EXPECT, tl_summary, tl_seed, tl_fill
#include "util.h"     // defines: bipo_read_file

#define HID 64 // the hidden size (vector length)
static const char *MODEL = "tiny-llama";
// The library: (behavior, layer, config hash, seed); layer 2 of power-seeking twice (newest last).
static const struct { const char *b; int layer; const char *hash; unsigned seed; } RUNS[] = {
    {"power-seeking", 0, "aaaaaaaaaaaa0000", 1}, {"power-seeking", 2, "bbbbbbbbbbbb0000", 2},
    {"power-seeking", 2, "cccccccccccc0000", 3}, {"wealth-seeking", 3, "dddddddddddd0000", 4}};
#define NRUNS (sizeof RUNS / sizeof RUNS[0])
static float g_vec[NRUNS][HID];
static char g_run[NRUNS][BIPO_NAME_MAX];
static char g_dir[256];

static int make_lib(const char *path) {
    bipo_store *s = bipo_store_open(path, BIPO_STORE_WRITE);
    if (!s) return -1;
    bipo_model_info mi = {"/models/tiny.gguf", "llama", "f00d", "F32", HID, 4};
    const char *paths[] = {"data.jsonl"};
    bipo_behavior_info bi = {paths, 1, "d47a"};
    for (size_t r = 0; r < NRUNS; r++) {
        tl_seed(RUNS[r].seed);
        tl_fill(g_vec[r], HID, 0.5f);
        float loss[2] = {0.7f, 0.5f};
        bipo_run_data d = {.C = HID, .vector = g_vec[r], .loss = loss, .n_steps = 2};
        bipo_job_key k = {MODEL, RUNS[r].b, RUNS[r].layer, RUNS[r].hash};
        if (bipo_store_write_run(s, &k, &mi, &bi, &d, NULL, 0, g_run[r]) != 0) {
            bipo_store_close(s);
            return -1;
        }
    }
    bipo_store_close(s);
    return 0;
}

// Runs `export ARGS...` in-process with stderr captured; checks the exit code and, on failure,
// that stderr is one line containing `needle`.
static int run_export(int want_rc, const char *needle, const char *a0, ...) {
    char *argv[24] = {"export", (char *)a0};
    int argc = 2;
    va_list ap;
    va_start(ap, a0);
    for (char *a; argc < 23 && (a = va_arg(ap, char *));) argv[argc++] = a;
    va_end(ap);
    char errf[300];
    snprintf(errf, sizeof errf, "%s/stderr.txt", g_dir);
    fflush(stderr);
    int saved = dup(2);
    FILE *ef = fopen(errf, "w");
    dup2(fileno(ef), 2);
    int rc = cmd_export(argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(ef);
    size_t n = 0;
    char *err = bipo_read_file(errf, &n);
    size_t lines = 0;
    for (size_t i = 0; i < n; i++) lines += err[i] == '\n';
    EXPECT(rc == want_rc, "export %s %s %s: exit %d, expected %d (stderr: %s)", argv[2],
           argc > 3 ? argv[3] : "", argc > 4 ? argv[4] : "", rc, want_rc, err);
    if (needle) {
        EXPECT(lines == 1 && strstr(err, needle), "stderr should be one line naming '%s': %s",
               needle, err);
        fputs(err, stdout); // shows the messages in the test log
    }
    free(err);
    return rc;
}

static size_t leftovers(const char *dir) { // temp files an export left behind
    DIR *d = opendir(dir);
    size_t n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static char *path_in(char *buf, const char *name) {
    snprintf(buf, 512, "%s/%s", g_dir, name);
    return buf;
}

static void check_f32(const char *lib) {
    char p[512];
    run_export(0, NULL, lib, "-o", path_in(p, "v.f32"), "--behavior", "power-seeking", "--layer", "2", NULL);
    size_t n = 0;
    char *b = bipo_read_file(p, &n);
    EXPECT(b && n == 4 * HID && !memcmp(b, g_vec[2], 4 * HID), "f32: the newest layer-2 vector, exactly");
    free(b);
    run_export(0, NULL, lib, "--output", p, "--layer", "2", "--run", g_run[1], NULL);
    b = bipo_read_file(p, &n);
    EXPECT(b && n == 4 * HID && !memcmp(b, g_vec[1], 4 * HID), "f32 --run %s: the older run", g_run[1]);
    free(b);
}

static void check_gguf(const char *lib) {
    char p[512];
    run_export(0, NULL, lib, "-o", path_in(p, "v.gguf"), "--format", "gguf", "--layer", "3", NULL);
    gguf_file g;
    if (gguf_open(&g, p) != 0) {
        EXPECT(0, "gguf: our reader rejects the file: %s", bipo_last_error());
        return;
    }
    gguf_str s;
    int64_t i = 0;
    EXPECT(g.version == 3 && g.alignment == 32, "gguf: v%u alignment %llu", g.version,
           (unsigned long long)g.alignment);
    EXPECT(gguf_get_str(&g, "general.architecture", &s) == 0 && s.len == 13 &&
               !memcmp(s.ptr, "controlvector", 13), "gguf: general.architecture");
    EXPECT(gguf_get_str(&g, "controlvector.model_hint", &s) == 0 && s.len == 5 &&
               !memcmp(s.ptr, "llama", 5), "gguf: model_hint is the model's architecture");
    EXPECT(gguf_get_i64(&g, "controlvector.layer_count", &i) == 0 && i == 1, "gguf: layer_count %lld",
           (long long)i);
    EXPECT(gguf_get_i64(&g, "bipo.layer", &i) == 0 && i == 3, "gguf: bipo.layer");
    EXPECT(gguf_get_str(&g, "bipo.behavior", &s) == 0 && s.len == 14 &&
               !memcmp(s.ptr, "wealth-seeking", 14), "gguf: bipo.behavior");
    const gguf_tensor *t = gguf_find_tensor(&g, "direction.3");
    EXPECT(g.n_tensors == 1 && t && t->n_dims == 1 && t->ne[0] == HID && t->type == 0,
           "gguf: one F32 tensor direction.3 [%d]", HID);
    if (t) {
        EXPECT(((const char *)t->data - (const char *)g.map) % 32 == 0, "gguf: data 32-aligned");
        EXPECT(t->nbytes == 4 * HID && !memcmp(t->data, g_vec[3], 4 * HID), "gguf: the vector, exactly");
    }
    gguf_close(&g);
}

static const char *str_of(const json_t *j) {
    const char *s = json_string_value(j);
    return s ? s : "";
}

static void check_safetensors(const char *lib) {
    char p[512];
    run_export(0, NULL, lib, "-o", path_in(p, "v.safetensors"), "--format", "safetensors",
               "--behavior", "power-seeking", "--layer", "2", NULL);
    size_t n = 0;
    unsigned char *b = (unsigned char *)bipo_read_file(p, &n);
    uint64_t h = 0;
    for (int k = 7; b && n >= 8 && k >= 0; k--) h = h << 8 | b[k];
    EXPECT(b && n == 8 + h + 4 * HID && (8 + h) % 8 == 0, "safetensors: %zu bytes, header %llu", n,
           (unsigned long long)h);
    if (!b || n != 8 + h + 4 * HID) {
        free(b);
        return;
    }
    json_error_t je;
    json_t *j = json_loadb((const char *)b + 8, h, 0, &je);
    json_t *t = json_object_get(j, "layers.2"), *m = json_object_get(j, "__metadata__");
    json_t *sh = json_object_get(t, "shape"), *off = json_object_get(t, "data_offsets");
    EXPECT(j && json_object_size(j) == 2, "safetensors: JSON with one tensor + __metadata__ (%s)", je.text);
    EXPECT(!strcmp(str_of(json_object_get(t, "dtype")), "F32") &&
               json_array_size(sh) == 1 && json_integer_value(json_array_get(sh, 0)) == HID &&
               json_integer_value(json_array_get(off, 0)) == 0 &&
               json_integer_value(json_array_get(off, 1)) == 4 * HID,
           "safetensors: layers.2 F32 [%d] at [0, %d]", HID, 4 * HID);
    const char *want[][2] = {{"model", MODEL}, {"behavior", "power-seeking"}, {"method", "bipo"},
                             {"run", g_run[2]}, {"layer", "2"}, {"config_hash", RUNS[2].hash}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
        EXPECT(!strcmp(str_of(json_object_get(m, want[k][0])), want[k][1]),
               "safetensors: __metadata__.%s = %s", want[k][0], want[k][1]);
    EXPECT(strstr(str_of(json_object_get(m, "layer_convention")), "hidden_states[3]"),
           "safetensors: layer_convention names HF hidden_states[L+1]");
    EXPECT(!memcmp(b + 8 + h, g_vec[2], 4 * HID), "safetensors: the vector, exactly");
    json_decref(j);
    free(b);
}

static unsigned rd16(const unsigned char *p) { return p[0] | p[1] << 8; }
static uint32_t rd32(const unsigned char *p) { return rd16(p) | (uint32_t)rd16(p + 2) << 16; }

// The .pt zip through its central directory: names, stored, 64-aligned data, contents.
static void check_pt(const char *lib) {
    char p[512];
    run_export(0, NULL, lib, "-o", path_in(p, "v.pt"), "--format", "pt", "--layer", "3",
               "--multiplier", "-2.5", NULL);
    size_t n = 0;
    unsigned char *b = (unsigned char *)bipo_read_file(p, &n);
    EXPECT(b && n > 22 && rd32(b + n - 22) == 0x06054b50, "pt: a zip (end record last)");
    if (!b || n <= 22 || rd32(b + n - 22) != 0x06054b50) {
        free(b);
        return;
    }
    const unsigned char *eocd = b + n - 22, *cd = b + rd32(eocd + 16);
    const char *names[] = {"archive/data.pkl", "archive/byteorder", "archive/data/0", "archive/version"};
    EXPECT(rd16(eocd + 10) == 4, "pt: 4 records, got %u", rd16(eocd + 10));
    for (size_t k = 0; k < 4 && rd16(eocd + 10) == 4; k++) {
        unsigned nl = rd16(cd + 28), xl = rd16(cd + 30), cl = rd16(cd + 32);
        uint32_t size = rd32(cd + 24), lo = rd32(cd + 42);
        EXPECT(rd32(cd) == 0x02014b50 && nl == strlen(names[k]) && !memcmp(cd + 46, names[k], nl) &&
                   rd16(cd + 10) == 0, "pt: record %zu is %s, stored", k, names[k]);
        const unsigned char *data = b + lo + 30 + rd16(b + lo + 26) + rd16(b + lo + 28);
        EXPECT(rd32(b + lo) == 0x04034b50 && (data - b) % 64 == 0, "pt: %s data 64-aligned", names[k]);
        if (k == 0) {
            // the pickle: the hookpoint, the keys lm-eval reads, the tensor rebuild, M as BINFLOAT
            const char *keys[] = {"layers.3", "action", "add", "steering_vector", "steering_coefficient",
                                  "bias", "_rebuild_tensor_v2", "FloatStorage", "OrderedDict"};
            for (size_t q = 0; q < sizeof keys / sizeof keys[0]; q++)
                EXPECT(memmem(data, size, keys[q], strlen(keys[q])) != NULL, "pt: data.pkl has %s", keys[q]);
            const unsigned char m25[] = {'G', 0xC0, 0x04, 0, 0, 0, 0, 0, 0}; // -2.5 big-endian
            EXPECT(memmem(data, size, m25, 9) && data[0] == 0x80 && data[1] == 2 && data[size - 1] == '.',
                   "pt: protocol 2, steering_coefficient -2.5, STOP");
        }
        if (k == 1) EXPECT(size == 6 && !memcmp(data, "little", 6), "pt: byteorder little");
        if (k == 2) EXPECT(size == 4 * HID && !memcmp(data, g_vec[3], 4 * HID), "pt: data/0 is the vector");
        if (k == 3) EXPECT(size == 2 && !memcmp(data, "3\n", 2), "pt: version 3");
        cd += 46 + nl + xl + cl;
    }
    free(b);
}

static void check_all(const char *lib) {
    char d[512], p[1024];
    path_in(d, "all");
    run_export(0, NULL, lib, "--all", "-o", d, NULL);
    for (size_t r = 0; r < NRUNS; r++) {
        if (r == 1) continue; // not the newest of its layer
        snprintf(p, sizeof p, "%s/%s__%s__L%d__bipo.f32", d, MODEL, RUNS[r].b, RUNS[r].layer);
        size_t n = 0;
        char *b = bipo_read_file(p, &n);
        EXPECT(b && n == 4 * HID && !memcmp(b, g_vec[r], 4 * HID), "--all: %s", p);
        free(b);
    }
    run_export(0, NULL, lib, "--all", "--output", d, "--format", "gguf", "--behavior", "power-seeking", NULL);
    snprintf(p, sizeof p, "%s/%s__power-seeking__L2__bipo.gguf", d, MODEL);
    EXPECT(access(p, F_OK) == 0, "--all --format gguf: %s", p);
    snprintf(p, sizeof p, "%s/%s__power-seeking__L0__bipo.gguf", d, MODEL);
    EXPECT(access(p, F_OK) != 0, "--all --format gguf skips layer 0");
    snprintf(p, sizeof p, "%s/%s__wealth-seeking__L3__bipo.gguf", d, MODEL);
    EXPECT(access(p, F_OK) != 0, "--all --behavior filters");
    EXPECT(leftovers(d) == 0, "--all: no temp files left");
}

static void check_errors(const char *lib) {
    char p[512];
    path_in(p, "bad.gguf");
    run_export(1, "behavior 'honesty'", lib, "-o", p, "--behavior", "honesty", NULL);
    run_export(1, "layer 7", lib, "-o", p, "--behavior", "power-seeking", "--layer", "7", NULL);
    run_export(1, "model 'nope'", lib, "-o", p, "--model", "nope", NULL);
    run_export(1, "run 'zzz'", lib, "-o", p, "--layer", "2", "--run", "zzz", NULL);
    run_export(2, "'onnx'", lib, "-o", p, "--format", "onnx", "--layer", "3", NULL);
    run_export(1, "layer 0", lib, "-o", p, "--format", "gguf", "--layer", "0", NULL);
    run_export(1, "runs match", lib, "-o", p, NULL); // ambiguous
    run_export(2, "--multiplier", lib, "-o", p, "--format", "gguf", "--layer", "3", "--multiplier", "2", NULL);
    EXPECT(access(p, F_OK) != 0, "no file after the failed exports");
    run_export(1, "/no/such/dir/v.gguf", lib, "-o", "/no/such/dir/v.gguf", "--layer", "3", NULL);
    run_export(1, "/proc/bipo-export.pt", lib, "-o", "/proc/bipo-export.pt", "--format", "pt",
               "--layer", "3", NULL); // read-only, even for root
    char missing[512];
    path_in(missing, "missing.h5");
    run_export(1, "missing.h5", missing, "-o", p, NULL);
    EXPECT(leftovers(g_dir) == 0, "no temp files left in %s", g_dir);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--make-lib")) {
        char lib[512];
        snprintf(lib, sizeof lib, "%s/lib.h5", argv[2]);
        if (make_lib(lib) != 0) {
            fprintf(stderr, "test_export: %s\n", bipo_last_error());
            return 1;
        }
        return 0;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/bipo-test-export.XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    char lib[512];
    path_in(lib, "lib.h5");
    EXPECT(make_lib(lib) == 0, "writing the library: %s", bipo_last_error());
    check_f32(lib);
    check_gguf(lib);
    check_safetensors(lib);
    check_pt(lib);
    check_all(lib);
    check_errors(lib);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (tl_fail == 0 && system(cmd) != 0) fprintf(stderr, "test_export: could not remove %s\n", g_dir);
    return tl_summary("test_export");
}
