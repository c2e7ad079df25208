#define _GNU_SOURCE // memmem
// tests/test_model_errors.c — bad model input at the model level: every case must fail with
// one message that names the file and the offending field/tensor, and never crash.
// (Byte-level damage to GGUF/safetensors files is covered by tests/test_formats_bad.c.)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"
#include "tensors.h"
#include "testlib.h"
#include "testmodel.h"
#include "util.h"

static char g_tmp[256];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0) {
        EXPECT(0, "cannot write %s", path);
        if (f) fclose(f);
        return;
    }
    fclose(f);
}

// Loading `path` must fail and the error must contain every one of the `want` substrings.
static void expect_fail(const char *what, const char *path, const char *want1, const char *want2) {
    bipo_model m;
    bipo_clear_error();
    int rc = bipo_model_load(&m, path, bipo_backend_open("cpu", 0));
    if (rc == 0) {
        EXPECT(0, "%s: loading %s succeeded but should fail", what, path);
        bipo_model_free(&m);
        return;
    }
    const char *e = bipo_last_error();
    printf("   %-28s -> %s\n", what, e);
    EXPECT(strstr(e, want1) != NULL, "%s: error '%s' does not mention '%s'", what, e, want1);
    if (want2) EXPECT(strstr(e, want2) != NULL, "%s: error '%s' does not mention '%s'", what, e, want2);
}

// Rewrites config.json of an HF dir replacing the first `from` by `to`.
static void patch_config(const char *dir, const char *from, const char *to) {
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t n;
    char *s = bipo_read_file(path, &n);
    if (!s) {
        EXPECT(0, "read %s", path);
        return;
    }
    char *p = strstr(s, from);
    EXPECT(p != NULL, "config.json has no '%s'", from);
    if (!p) {
        free(s);
        return;
    }
    char *out = malloc(n + strlen(to) + 1);
    size_t pre = (size_t)(p - s);
    memcpy(out, s, pre);
    strcpy(out + pre, to);
    strcat(out, p + strlen(from));
    write_text(path, out);
    free(out);
    free(s);
}

static void fresh_hf(const tm_spec *s, const char *name, char *dir, size_t n) {
    snprintf(dir, n, "%s/%s", g_tmp, name);
    mkdir(dir, 0755);
    EXPECT(tm_write_hf(s, dir, BIPO_DT_F32, 1) == 0, "write %s: %s", dir, bipo_last_error());
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/bipo-test-model-errors-XXXXXX");
    if (!mkdtemp(g_tmp)) return 1;
    tm_spec s = {.mistral = 0, .L = 2, .C = 64, .NH = 4, .NKV = 2, .HD = 16, .FF = 96, .V = 272,
                 .rope_theta = 10000.f, .eps = 1e-5f, .seed = 3, .max_pos = 64};
    char dir[512], path[600];

    expect_fail("missing path", "/nonexistent/model", "/nonexistent/model", "no such file");
    snprintf(path, sizeof path, "%s/notamodel.bin", g_tmp);
    write_text(path, "hello, I am not a model");
    expect_fail("not a model file", path, "notamodel.bin", "not a GGUF");
    snprintf(dir, sizeof dir, "%s/empty-dir", g_tmp);
    mkdir(dir, 0755);
    expect_fail("dir without config.json", dir, "config.json", "missing");

    // config.json edits: (what, replace this, with this, the error must name these two)
    static const struct {
        const char *what, *from, *to, *want1, *want2;
    } edits[] = {
        {"unsupported architecture", "LlamaForCausalLM", "GPT2LMHeadModel", "GPT2LMHeadModel", "architectures"},
        {"invalid config.json", "{", "{{", "config.json:1:", "invalid JSON"},
        {"shape disagrees with config", "\"intermediate_size\": 96", "\"intermediate_size\": 128",
         "mlp.gate_proj.weight", "[96, 64]"},
        {"missing tensor", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3", "model.layers.2.", "missing"},
        {"heads not a multiple", "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3",
         "num_key_value_heads", "config.json"},
        {"wrong field type", "\"hidden_size\": 64", "\"hidden_size\": \"64\"", "hidden_size", "integer"},
        {"required field missing", "\"vocab_size\"", "\"vocab_sizes\"", "vocab_size", "missing"},
        {"unsupported rope scaling", "\"rope_theta\"",
         "\"rope_scaling\": {\"rope_type\": \"llama3\"}, \"rope_theta\"", "rope_scaling", "llama3"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "edit%zu", i);
        fresh_hf(&s, name, dir, sizeof dir);
        patch_config(dir, edits[i].from, edits[i].to);
        expect_fail(edits[i].what, dir, edits[i].want1, edits[i].want2);
    }

    fresh_hf(&s, "noweights", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    remove(path);
    expect_fail("no safetensors", dir, "model.safetensors", NULL);

    // GGUF whose general.architecture is not llama: patch the value in place
    snprintf(path, sizeof path, "%s/arch.gguf", g_tmp);
    EXPECT(tm_write_gguf(&s, path, BIPO_DT_F32, 3) == 0, "write %s", path);
    {
        size_t n;
        char *b = bipo_read_file(path, &n);
        char *k = b ? memmem(b, n, "general.architecture", 20) : NULL;
        char *v = k ? memmem(k, n - (size_t)(k - b), "llama", 5) : NULL;
        EXPECT(v != NULL, "general.architecture value not found in %s", path);
        if (v) {
            memcpy(v, "gpt2x", 5);
            FILE *f = fopen(path, "wb");
            fwrite(b, 1, n, f);
            fclose(f);
        }
        free(b);
        expect_fail("GGUF unsupported arch", path, "gpt2x", "general.architecture");
    }

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", g_tmp);
    return tl_summary("test_model_errors");
}
