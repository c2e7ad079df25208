// tests/test_lora.c — PEFT LoRA adapters merged into a tiny random Llama: the merged weights
// equal W + (alpha/r) B A computed here in double (and with use_rslora alpha/sqrt(r)); the
// fingerprint changes and equals bipo_lora_fingerprint's; bad adapters give one clear error.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"
#include "tensors.h"
#include "testlib.h"
#include "testmodel.h"
#include "util.h"

typedef struct {
    const char *name;
    size_t rows, cols;
    float *data;
} st_tensor;

// Minimal safetensors writer (F32 only): u64 header length, JSON header, data.
static void write_safetensors(const char *path, const st_tensor *t, size_t n) {
    char hdr[8192];
    size_t k = 0, off = 0;
    k += (size_t)snprintf(hdr + k, sizeof hdr - k, "{");
    for (size_t i = 0; i < n; i++) {
        size_t bytes = t[i].rows * t[i].cols * 4;
        k += (size_t)snprintf(hdr + k, sizeof hdr - k,
                              "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%zu,%zu],\"data_offsets\":[%zu,%zu]}",
                              i ? "," : "", t[i].name, t[i].rows, t[i].cols, off, off + bytes);
        off += bytes;
    }
    k += (size_t)snprintf(hdr + k, sizeof hdr - k, "}");
    while (k % 8) hdr[k++] = ' ';
    FILE *f = fopen(path, "wb");
    unsigned long long hl = k;
    fwrite(&hl, 8, 1, f);
    fwrite(hdr, 1, k, f);
    for (size_t i = 0; i < n; i++) fwrite(t[i].data, 4, t[i].rows * t[i].cols, f);
    fclose(f);
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    fputs(s, f);
    fclose(f);
}

static float *rnd(size_t n, float scale) {
    float *x = malloc(n * sizeof(float));
    tl_fill(x, n, scale);
    return x;
}

int main(void) {
    char tmp[] = "/tmp/bipo-test-lora-XXXXXX", dir[300], ad[320], p[400];
    if (!mkdtemp(tmp)) return 1;
    tl_seed(9);
    tm_spec s = {.L = 2, .C = 32, .NH = 4, .NKV = 2, .HD = 8, .FF = 48, .V = 64,
                 .rope_theta = 10000.f, .eps = 1e-5f, .tied = 1, .seed = 5, .max_pos = 64};
    snprintf(dir, sizeof dir, "%s/base", tmp);
    mkdir(dir, 0755);
    EXPECT(tm_write_hf(&s, dir, BIPO_DT_F32, 1) == 0, "write base");
    const size_t r = 4;
    // adapter on layer 1 q_proj [NH*HD=32, C=32] and layer 0 down_proj [C=32, FF=48]
    float *qa = rnd(r * 32, 0.5f), *qb = rnd(32 * r, 0.5f), *da = rnd(r * 48, 0.5f), *db = rnd(32 * r, 0.5f);
    st_tensor t[] = {
        {"base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight", r, 32, qa},
        {"base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight", 32, r, qb},
        {"base_model.model.model.layers.0.mlp.down_proj.lora_A.weight", r, 48, da},
        {"base_model.model.model.layers.0.mlp.down_proj.lora_B.weight", 32, r, db},
    };
    for (int rs = 0; rs < 2; rs++) {
        snprintf(ad, sizeof ad, "%s/adapter%d", tmp, rs);
        mkdir(ad, 0755);
        snprintf(p, sizeof p, "%s/adapter_config.json", ad);
        write_text(p, rs ? "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 16, \"use_rslora\": true}"
                         : "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"fan_in_fan_out\": false}");
        snprintf(p, sizeof p, "%s/adapter_model.safetensors", ad);
        write_safetensors(p, t, 4);
        double scale = rs ? 16.0 / 2.0 : 8.0 / 4.0;
        bipo_model m;
        if (bipo_model_load(&m, dir, bipo_backend_open("cpu", 0)) != 0) return 1;
        char base_fp[65], want_fp[65];
        memcpy(base_fp, m.fingerprint, 65);
        EXPECT(bipo_lora_fingerprint(base_fp, ad, want_fp) == 0, "fingerprint: %s", bipo_last_error());
        EXPECT(bipo_lora_merge(&m, ad) == 0, "merge: %s", bipo_last_error());
        EXPECT(strcmp(m.fingerprint, base_fp) != 0 && !strcmp(m.fingerprint, want_fp),
               "fingerprint after merge");
        // expected = W + scale * B A, in double
        const struct {
            const char *hf;
            float *got, *a, *b;
            size_t o, i;
        } chk[] = {{"model.layers.1.self_attn.q_proj.weight", m.layers[1].wq, qa, qb, 32, 32},
                   {"model.layers.0.mlp.down_proj.weight", m.layers[0].w_down, da, db, 32, 48}};
        for (int c = 0; c < 2; c++) {
            size_t n;
            float *w = tm_weights(&s, chk[c].hf, &n), *want = malloc(n * sizeof(float));
            for (size_t o = 0; o < chk[c].o; o++)
                for (size_t i = 0; i < chk[c].i; i++) {
                    double acc = 0;
                    for (size_t k = 0; k < r; k++) acc += (double)chk[c].b[o * r + k] * chk[c].a[k * chk[c].i + i];
                    want[o * chk[c].i + i] = (float)(w[o * chk[c].i + i] + scale * acc);
                }
            tl_allclose(chk[c].hf, chk[c].got, want, n, 1e-5, 1e-5);
            free(w), free(want);
        }
        // an untouched weight stays bit-identical
        size_t n;
        float *wk = tm_weights(&s, "model.layers.1.self_attn.k_proj.weight", &n);
        EXPECT(memcmp(wk, m.layers[1].wk, n * sizeof(float)) == 0, "k_proj changed");
        free(wk);
        bipo_model_free(&m);
    }
    // bad adapters: one clear error each
    const struct {
        const char *cfg, *want;
    } bad[] = {{NULL, "adapter_config.json"},
               {"{\"peft_type\": \"PREFIX_TUNING\", \"r\": 4, \"lora_alpha\": 8}", "PREFIX_TUNING"},
               {"{\"peft_type\": \"LORA\", \"r\": 0, \"lora_alpha\": 8}", "'r'"},
               {"{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"fan_in_fan_out\": true}", "fan_in_fan_out"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(ad, sizeof ad, "%s/bad%zu", tmp, i);
        mkdir(ad, 0755);
        if (bad[i].cfg) {
            snprintf(p, sizeof p, "%s/adapter_config.json", ad);
            write_text(p, bad[i].cfg);
        }
        bipo_model m;
        if (bipo_model_load(&m, dir, bipo_backend_open("cpu", 0)) != 0) return 1;
        EXPECT(bipo_lora_merge(&m, ad) != 0 && strstr(bipo_last_error(), bad[i].want),
               "bad adapter %zu: '%s' lacks '%s'", i, bipo_last_error(), bad[i].want);
        bipo_model_free(&m);
    }
    // an adapter tensor whose shape does not fit the model
    snprintf(ad, sizeof ad, "%s/shape", tmp);
    mkdir(ad, 0755);
    snprintf(p, sizeof p, "%s/adapter_config.json", ad);
    write_text(p, "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8}");
    st_tensor wrong[] = {{"base_model.model.model.layers.0.mlp.down_proj.lora_A.weight", r, 32, qa},
                         {"base_model.model.model.layers.0.mlp.down_proj.lora_B.weight", 32, r, qb}};
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", ad);
    write_safetensors(p, wrong, 2);
    bipo_model m;
    if (bipo_model_load(&m, dir, bipo_backend_open("cpu", 0)) != 0) return 1;
    EXPECT(bipo_lora_merge(&m, ad) != 0 && strstr(bipo_last_error(), "down_proj"), "shape: %s", bipo_last_error());
    bipo_model_free(&m);
    free(qa), free(qb), free(da), free(db);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmp);
    return tl_summary("test_lora");
}
