// workers/lora.c — merge a PEFT LoRA adapter into a loaded model: W += scale * B @ A for every
// adapted linear layer (scale = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora).
// The adapter folder holds adapter_config.json and adapter_model.safetensors with tensors
// "base_model.model.model.layers.<i>.<self_attn|mlp>.<proj>.lora_A.weight" [r, in] and
// ".lora_B.weight" [out, r] (PEFT's names). The merged model gets a new fingerprint (base
// fingerprint + adapter bytes), so its vectors are filed apart from the base model's.
#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h" // defines: bipo_model, bipo_lora_merge, bipo_lora_fingerprint
#include "tensors.h" // defines: bipo_tensor_dir, bipo_safetensors_open_file, bipo_dequantize
#include "util.h" // defines: bipo_set_error, xmalloc, bipo_sha256_*

// The weight a PEFT module name adapts in layer l, with its [out, in] shape; NULL if unknown.
static float *target(bipo_model *m, size_t l, const char *mod, size_t *out, size_t *in) {
    const bipo_config *c = &m->cfg;
    bipo_layer_weights *w = &m->layers[l];
    size_t QD = c->NH * c->HD, KVD = c->NKV * c->HD;
    const struct {
        const char *name;
        float *p;
        size_t o, i;
    } t[] = {{"self_attn.q_proj", w->wq, QD, c->C},     {"self_attn.k_proj", w->wk, KVD, c->C},
             {"self_attn.v_proj", w->wv, KVD, c->C},    {"self_attn.o_proj", w->wo, c->C, QD},
             {"mlp.gate_proj", w->w_gate, c->FF, c->C}, {"mlp.up_proj", w->w_up, c->FF, c->C},
             {"mlp.down_proj", w->w_down, c->C, c->FF}};
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
        if (!strcmp(mod, t[k].name)) {
            *out = t[k].o, *in = t[k].i;
            return t[k].p;
        }
    return NULL;
}

static float *as_f32(const bipo_tensor_info *ti) {
    float *x = xmalloc(ti->numel * sizeof(float));
    if (bipo_dequantize(x, ti->data, ti->dtype, ti->numel) != 0) {
        free(x);
        return NULL;
    }
    return x;
}

// Reads adapter_config.json (scale) and opens adapter_model.safetensors into d.
static int open_adapter(const char *dir, double *scale, bipo_tensor_dir *d, char *path, size_t np) {
    snprintf(path, np, "%s/adapter_config.json", dir);
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    if (!cfg) {
        bipo_set_error("%s:%d:%d: %s (a LoRA adapter folder needs adapter_config.json and "
                       "adapter_model.safetensors)", path, je.line, je.column, je.text);
        return -1;
    }
    int rc = -1;
    const char *pt = json_string_value(json_object_get(cfg, "peft_type"));
    json_t *jr = json_object_get(cfg, "r"), *ja = json_object_get(cfg, "lora_alpha");
    if (pt && strcmp(pt, "LORA") != 0) {
        bipo_set_error("%s: peft_type '%s' is not supported (only LORA)", path, pt);
    } else if (!json_is_integer(jr) || json_integer_value(jr) <= 0 || !json_is_number(ja)) {
        bipo_set_error("%s: fields 'r' (positive integer) and 'lora_alpha' (number) are required", path);
    } else if (json_is_true(json_object_get(cfg, "fan_in_fan_out"))) {
        bipo_set_error("%s: fan_in_fan_out = true (GPT-2 style Conv1D) is not supported for Llama", path);
    } else {
        double r = (double)json_integer_value(jr), alpha = json_number_value(ja);
        *scale = json_is_true(json_object_get(cfg, "use_rslora")) ? alpha / sqrt(r) : alpha / r;
        snprintf(path, np, "%s/adapter_model.safetensors", dir);
        memset(d, 0, sizeof *d);
        rc = bipo_safetensors_open_file(d, path);
    }
    json_decref(cfg);
    return rc;
}

// The merged model's identity: base fingerprint + scale + every adapter tensor's name and bytes.
static void fingerprint(const char *base, double scale, const bipo_tensor_dir *d, char out[65]) {
    bipo_sha256 sh;
    bipo_sha256_init(&sh);
    bipo_sha256_update(&sh, base, 64);
    bipo_sha256_update(&sh, &scale, sizeof scale);
    for (size_t i = 0; i < d->n; i++) {
        bipo_sha256_update(&sh, d->t[i].name, strlen(d->t[i].name));
        bipo_sha256_update(&sh, d->t[i].data, d->t[i].nbytes);
    }
    bipo_sha256_hex(&sh, out);
}

int bipo_lora_fingerprint(const char *base, const char *dir, char out[65]) {
    char path[4200];
    double scale;
    bipo_tensor_dir d;
    if (open_adapter(dir, &scale, &d, path, sizeof path) != 0) return -1;
    fingerprint(base, scale, &d, out);
    bipo_tensor_dir_free(&d);
    return 0;
}

int bipo_lora_merge(bipo_model *m, const char *dir) {
    char path[4200];
    double scale;
    bipo_tensor_dir d;
    if (open_adapter(dir, &scale, &d, path, sizeof path) != 0) return -1;
    int rc = -1;
    size_t merged = 0;
    // the weights change: drop any copy the backend made of them, register them again after
    const bipo_backend *be = m->be;
    if (be->weights_release) be->weights_release(m->params, m->n_params);
    const char *pre = "base_model.model.model.layers.";
    for (size_t i = 0; i < d.n; i++) {
        const char *name = d.t[i].name, *p = strstr(name, ".lora_A.weight");
        if (!p) continue;
        if (strncmp(name, pre, strlen(pre)) != 0) {
            bipo_set_error("%s: tensor '%s' is not a decoder-layer LoRA weight", path, name);
            goto out;
        }
        char *end;
        size_t l = strtoul(name + strlen(pre), &end, 10);
        char mod[96], bname[512];
        snprintf(mod, sizeof mod, "%.*s", (int)(p - end - 1), end + 1);
        snprintf(bname, sizeof bname, "%.*s.lora_B.weight", (int)(p - name), name);
        const bipo_tensor_info *A = &d.t[i], *B = bipo_tensor_dir_find(&d, bname);
        size_t out_dim = 0, in_dim = 0;
        float *w = l < m->cfg.L ? target(m, l, mod, &out_dim, &in_dim) : NULL;
        if (!w) {
            bipo_set_error("%s: '%s' adapts an unknown module or layer (%s, layer %zu of %zu)", path,
                           name, mod, l, m->cfg.L);
            goto out;
        }
        if (!B || A->ndim != 2 || B->ndim != 2 || A->shape[1] != in_dim || B->shape[0] != out_dim ||
            A->shape[0] != B->shape[1]) {
            bipo_set_error("%s: '%s' and its lora_B do not fit [%zu, %zu] (A %llux%llu, B %s)", path,
                           name, out_dim, in_dim, (unsigned long long)A->shape[0],
                           (unsigned long long)A->shape[1], B ? "present" : "missing");
            goto out;
        }
        size_t rank = (size_t)A->shape[0];
        float *a = as_f32(A), *b = as_f32(B), *wh = xmalloc(out_dim * in_dim * sizeof(float));
        if (!a || !b) {
            free(a), free(b), free(wh);
            goto out;
        }
        m->be->download(wh, w, out_dim * in_dim);
        // wh[out, in] += scale * b[out, r] @ a[r, in]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out_dim, (int)in_dim, (int)rank,
                    (float)scale, b, (int)rank, a, (int)in_dim, 1.0f, wh, (int)in_dim);
        m->be->upload(w, wh, out_dim * in_dim);
        free(a), free(b), free(wh);
        merged++;
    }
    if (merged == 0) {
        bipo_set_error("%s: no lora_A/lora_B tensors found", path);
        goto out;
    }
    fingerprint(m->fingerprint, scale, &d, m->fingerprint);
    rc = 0;
out:
    if (be->weights_register) be->weights_register(m->params, m->n_params);
    bipo_tensor_dir_free(&d);
    return rc;
}
