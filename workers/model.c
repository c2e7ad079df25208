// workers/model.c — model configuration (HF config.json or GGUF metadata), the weight table,
// loading into the one parameter buffer (dequantized to f32), and the model fingerprint.
#include "model.h" // defines: bipo_config, bipo_model, bipo_model_load (implemented here)

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"    // defines: gguf_open, gguf_get_*, gguf_find_tensor
#include "tensors.h" // defines: bipo_tensor_dir, bipo_dequantize, bipo_safetensors_open_dir
#include "util.h"    // defines: bipo_set_error, CHECK, sha256

#define MAX_DIM ((size_t)1 << 20) // sanity bound for any single model dimension

// ---- configuration -----------------------------------------------------------------------

static int validate_config(const bipo_config *c, const char *src) {
    const struct {
        const char *name;
        size_t v;
    } dims[] = {{"hidden_size", c->C},        {"num_hidden_layers", c->L},
                {"num_attention_heads", c->NH}, {"num_key_value_heads", c->NKV},
                {"head_dim", c->HD},          {"intermediate_size", c->FF},
                {"vocab_size", c->V}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].v == 0 || dims[i].v > MAX_DIM * 4) {
            bipo_set_error("%s: %s = %zu is out of range (must be 1..%zu)", src, dims[i].name,
                           dims[i].v, MAX_DIM * 4);
            return -1;
        }
    if (c->NH % c->NKV != 0) {
        bipo_set_error("%s: num_attention_heads (%zu) is not a multiple of num_key_value_heads "
                       "(%zu)", src, c->NH, c->NKV);
        return -1;
    }
    if (c->HD % 2 != 0) {
        bipo_set_error("%s: head_dim = %zu must be even for RoPE", src, c->HD);
        return -1;
    }
    if (!(c->rms_eps > 0) || !(c->rope_theta > 0)) {
        bipo_set_error("%s: rms_norm_eps and rope_theta must be positive", src);
        return -1;
    }
    return 0;
}

// Reads an optional non-negative integer field; 1 = absent/null, 0 = ok, -1 = wrong type.
static int json_uint(json_t *root, const char *key, size_t *out, const char *src) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 1;
    if (json_is_array(v) && json_array_size(v) > 0) v = json_array_get(v, 0); // eos lists
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        bipo_set_error("%s: field '%s' must be a non-negative integer", src, key);
        return -1;
    }
    *out = (size_t)json_integer_value(v);
    return 0;
}
static int json_number(json_t *root, const char *key, float *out, const char *src) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 1;
    if (!json_is_number(v)) {
        bipo_set_error("%s: field '%s' must be a number", src, key);
        return -1;
    }
    *out = (float)json_number_value(v);
    return 0;
}

static int config_from_hf(bipo_config *c, const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!bipo_file_exists(path)) {
        bipo_set_error("%s: missing (an HF model directory needs config.json and "
                       "model.safetensors or model.safetensors.index.json)", path);
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        bipo_set_error("%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    int rc = -1;
    if (!json_is_object(root)) {
        bipo_set_error("%s: expected a JSON object", path);
        goto done;
    }
    json_t *archs = json_object_get(root, "architectures");
    const char *arch = json_is_array(archs) ? json_string_value(json_array_get(archs, 0)) : NULL;
    if (!arch) {
        bipo_set_error("%s: field 'architectures' is missing or not a list of strings", path);
        goto done;
    }
    snprintf(c->arch_name, sizeof c->arch_name, "%s", arch);
    if (!strcmp(arch, "LlamaForCausalLM"))
        c->arch = BIPO_ARCH_LLAMA;
    else if (!strcmp(arch, "MistralForCausalLM"))
        c->arch = BIPO_ARCH_MISTRAL;
    else {
        bipo_set_error("%s: architectures: '%s' is not supported (supported: LlamaForCausalLM, "
                       "MistralForCausalLM)", path, arch);
        goto done;
    }
    json_t *rs = json_object_get(root, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        const char *t = json_string_value(json_object_get(rs, "rope_type"));
        if (!t) t = json_string_value(json_object_get(rs, "type"));
        if (!t || strcmp(t, "default") != 0) {
            bipo_set_error("%s: rope_scaling type '%s' is not supported (only plain RoPE)", path,
                           t ? t : "?");
            goto done;
        }
    }
    struct {
        const char *key;
        size_t *dst;
        int required;
    } ints[] = {{"hidden_size", &c->C, 1},          {"intermediate_size", &c->FF, 1},
                {"num_hidden_layers", &c->L, 1},    {"num_attention_heads", &c->NH, 1},
                {"vocab_size", &c->V, 1},           {"num_key_value_heads", &c->NKV, 0},
                {"head_dim", &c->HD, 0},            {"max_position_embeddings", &c->max_pos, 0},
                {"sliding_window", &c->sliding_window, 0}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int r = json_uint(root, ints[i].key, ints[i].dst, path);
        if (r < 0) goto done;
        if (r == 1 && ints[i].required) {
            bipo_set_error("%s: required field '%s' is missing", path, ints[i].key);
            goto done;
        }
    }
    if (json_number(root, "rms_norm_eps", &c->rms_eps, path) < 0) goto done;
    if (json_number(root, "rope_theta", &c->rope_theta, path) < 0) goto done;
    json_t *tie = json_object_get(root, "tie_word_embeddings");
    if (tie && !json_is_boolean(tie)) {
        bipo_set_error("%s: field 'tie_word_embeddings' must be true or false", path);
        goto done;
    }
    c->tied = tie ? json_is_true(tie) : 0; // HF PretrainedConfig default is true, Llama's false
    size_t bos, eos;
    if (json_uint(root, "bos_token_id", &bos, path) == 0) c->bos_id = (int)bos;
    if (json_uint(root, "eos_token_id", &eos, path) == 0) c->eos_id = (int)eos;
    if (c->NKV == 0) c->NKV = c->NH;
    if (c->HD == 0 && c->NH) c->HD = c->C / c->NH;
    if (c->arch == BIPO_ARCH_LLAMA) c->sliding_window = 0; // Llama has none
    rc = validate_config(c, path);
done:
    json_decref(root);
    return rc;
}

// GGUF metadata -> config. Keys as llama.cpp writes them ("llama.*").
static int config_from_gguf(bipo_config *c, const gguf_file *g, const char *path) {
    gguf_str a;
    if (gguf_get_str(g, "general.architecture", &a) != 0) {
        bipo_set_error("%s: general.architecture is missing (not a model GGUF?)", path);
        return -1;
    }
    if (!(a.len == 5 && !memcmp(a.ptr, "llama", 5))) {
        bipo_set_error("%s: general.architecture: '%.*s' is not supported (supported: llama — "
                       "Llama and Mistral GGUFs use it)", path, (int)(a.len > 40 ? 40 : a.len), a.ptr);
        return -1;
    }
    const struct {
        const char *key;
        size_t *dst;
        int required;
    } ints[] = {{"llama.embedding_length", &c->C, 1},      {"llama.feed_forward_length", &c->FF, 1},
                {"llama.block_count", &c->L, 1},           {"llama.attention.head_count", &c->NH, 1},
                {"llama.attention.head_count_kv", &c->NKV, 0},
                {"llama.attention.key_length", &c->HD, 0}, {"llama.context_length", &c->max_pos, 0},
                {"llama.vocab_size", &c->V, 0},
                {"llama.attention.sliding_window", &c->sliding_window, 0}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        uint64_t v = 0;
        int r = gguf_get_u64(g, ints[i].key, &v);
        if (r < 0) return -1;
        if (r == 1 && ints[i].required) {
            bipo_set_error("%s: required metadata '%s' is missing", path, ints[i].key);
            return -1;
        }
        if (r == 0) {
            if (v > MAX_DIM * 4) {
                bipo_set_error("%s: metadata '%s' = %llu is out of range", path, ints[i].key,
                               (unsigned long long)v);
                return -1;
            }
            *ints[i].dst = (size_t)v;
        }
    }
    double f;
    c->rms_eps = 1e-5f;
    c->rope_theta = 10000.f;
    if (gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &f) == 0) c->rms_eps = (float)f;
    if (gguf_get_f64(g, "llama.rope.freq_base", &f) == 0) c->rope_theta = (float)f;
    uint64_t rd = 0;
    if (gguf_get_u64(g, "llama.rope.dimension_count", &rd) == 0 && c->HD == 0) c->HD = rd;
    if (c->NKV == 0) c->NKV = c->NH;
    if (c->HD == 0 && c->NH) c->HD = c->C / c->NH;
    const gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    if (c->V == 0 && emb) c->V = (size_t)emb->ne[1];
    c->tied = gguf_find_tensor(g, "output.weight") == NULL;
    uint64_t id;
    if (gguf_get_u64(g, "tokenizer.ggml.bos_token_id", &id) == 0) c->bos_id = (int)id;
    if (gguf_get_u64(g, "tokenizer.ggml.eos_token_id", &id) == 0) c->eos_id = (int)id;
    c->arch = c->sliding_window ? BIPO_ARCH_MISTRAL : BIPO_ARCH_LLAMA;
    snprintf(c->arch_name, sizeof c->arch_name, "%s",
             c->sliding_window ? "MistralForCausalLM" : "LlamaForCausalLM");
    return validate_config(c, path);
}

// ---- the weight table ----------------------------------------------------------------------
// One table drives allocation, loading and the fingerprint: per tensor its HF name, GGUF name,
// expected HF-order shape, where its pointer goes, and whether GGUF permuted its rows.
typedef struct {
    char hf[96], gg[64];
    size_t rows, cols; // cols == 0: 1-D tensor of `rows` elements
    float **slot;
    size_t perm_heads; // > 0: GGUF stores rows interleaved per head (llama.cpp converter)
    size_t offset;     // into params, floats
} wentry;

static size_t build_table(bipo_model *m, wentry *t) {
    const bipo_config *c = &m->cfg;
    size_t n = 0, QD = c->NH * c->HD, KVD = c->NKV * c->HD;
#define ADD(HF, GG, R, COLS, SLOT, PERM)                                                       \
    do {                                                                                       \
        snprintf(t[n].hf, sizeof t[n].hf, "%s", HF);                                          \
        snprintf(t[n].gg, sizeof t[n].gg, "%s", GG);                                          \
        t[n].rows = (R), t[n].cols = (COLS), t[n].slot = (SLOT), t[n].perm_heads = (PERM);     \
        n++;                                                                                   \
    } while (0)
    ADD("model.embed_tokens.weight", "token_embd.weight", c->V, c->C, &m->wte, 0);
    for (size_t l = 0; l < c->L; l++) {
        bipo_layer_weights *w = &m->layers[l];
        char hf[96], gg[64];
#define LAYER(HFS, GGS, R, COLS, SLOT, PERM)                                                   \
    snprintf(hf, sizeof hf, "model.layers.%zu.%s", l, HFS);                                    \
    snprintf(gg, sizeof gg, "blk.%zu.%s", l, GGS);                                             \
    ADD(hf, gg, R, COLS, SLOT, PERM)
        LAYER("input_layernorm.weight", "attn_norm.weight", c->C, 0, &w->attn_norm, 0);
        LAYER("self_attn.q_proj.weight", "attn_q.weight", QD, c->C, &w->wq, c->NH);
        LAYER("self_attn.k_proj.weight", "attn_k.weight", KVD, c->C, &w->wk, c->NKV);
        LAYER("self_attn.v_proj.weight", "attn_v.weight", KVD, c->C, &w->wv, 0);
        LAYER("self_attn.o_proj.weight", "attn_output.weight", c->C, QD, &w->wo, 0);
        LAYER("post_attention_layernorm.weight", "ffn_norm.weight", c->C, 0, &w->ffn_norm, 0);
        LAYER("mlp.gate_proj.weight", "ffn_gate.weight", c->FF, c->C, &w->w_gate, 0);
        LAYER("mlp.up_proj.weight", "ffn_up.weight", c->FF, c->C, &w->w_up, 0);
        LAYER("mlp.down_proj.weight", "ffn_down.weight", c->C, c->FF, &w->w_down, 0);
#undef LAYER
    }
    ADD("model.norm.weight", "output_norm.weight", c->C, 0, &m->norm_f, 0);
    if (!c->tied) ADD("lm_head.weight", "output.weight", c->V, c->C, &m->lm_head, 0);
#undef ADD
    return n;
}

static void shape_str(char *buf, size_t n, const bipo_tensor_info *ti) {
    int k = snprintf(buf, n, "[");
    for (int d = 0; d < ti->ndim && k < (int)n; d++)
        k += snprintf(buf + k, n - k, "%s%llu", d ? ", " : "", (unsigned long long)ti->shape[d]);
    snprintf(buf + k, n - k, "]");
}

// Undo llama.cpp's q/k row permutation: GGUF row (h*HD + 2*i + j) holds HF row
// (h*HD + j*HD/2 + i), i < HD/2, j in {0,1}. dst/src: [rows, cols].
static void unpermute_rows(float *dst, const float *src, size_t rows, size_t cols, size_t heads) {
    size_t hd = rows / heads, half = hd / 2;
    for (size_t h = 0; h < heads; h++)
        for (size_t i = 0; i < half; i++)
            for (size_t j = 0; j < 2; j++)
                memcpy(dst + (h * hd + j * half + i) * cols, src + (h * hd + 2 * i + j) * cols,
                       cols * sizeof(float));
}

static const char *dominant_dtype(const bipo_tensor_dir *d) {
    size_t best = 0;
    const char *name = "F32";
    size_t counts[64] = {0};
    for (size_t i = 0; i < d->n; i++)
        if (d->t[i].ndim == 2 && d->t[i].dtype < 64 && ++counts[d->t[i].dtype] > best) {
            best = counts[d->t[i].dtype];
            name = bipo_dtype_name(d->t[i].dtype);
        }
    return name ? name : "?";
}

// Reads and validates config + tensor directory; with probe set, stops before allocating and
// dequantizing (config, fingerprint and dtype only).
static int model_open(bipo_model *m, const char *path, const bipo_backend *be, int probe) {
    memset(m, 0, sizeof *m);
    m->be = be;
    m->cfg.bos_id = m->cfg.eos_id = -1;
    snprintf(m->path, sizeof m->path, "%s", path);
    bipo_tensor_dir dir = {0};
    gguf_file g = {0};
    int rc = -1;
    if (bipo_is_dir(path)) {
        if (config_from_hf(&m->cfg, path) != 0) return -1;
        if (bipo_safetensors_open_dir(&dir, path) != 0) return -1;
    } else if (gguf_is_gguf_path(path)) {
        m->is_gguf = 1;
        if (gguf_open(&g, path) != 0) return -1;
        if (config_from_gguf(&m->cfg, &g, path) != 0 || bipo_tensor_dir_from_gguf(&dir, &g) != 0)
            goto out;
    } else if (!bipo_file_exists(path)) {
        bipo_set_error("%s: no such file or directory (expected an HF model directory or a .gguf "
                       "file; scripts/fetch-model fetches the default model)", path);
        return -1;
    } else {
        bipo_set_error("%s: not a GGUF file (bad magic) and not an HF model directory", path);
        return -1;
    }
    const bipo_config *c = &m->cfg;
    m->layers = xcalloc(c->L, sizeof *m->layers);
    size_t cap = 9 * c->L + 3;
    wentry *t = xcalloc(cap, sizeof *t);
    size_t nt = build_table(m, t);
    // validate every tensor against the config before allocating anything big
    const bipo_tensor_info **src = xcalloc(nt, sizeof *src);
    size_t total = 0;
    for (size_t i = 0; i < nt; i++) {
        const char *name = m->is_gguf ? t[i].gg : t[i].hf;
        src[i] = bipo_tensor_dir_find(&dir, name);
        if (!src[i]) {
            bipo_set_error("%s: tensor '%s' is missing (needed by %s with %zu layers)", path, name,
                           c->arch_name, c->L);
            goto out_t;
        }
        const bipo_tensor_info *ti = src[i];
        int ok = t[i].cols ? (ti->ndim == 2 && ti->shape[0] == t[i].rows && ti->shape[1] == t[i].cols)
                           : (ti->ndim == 1 && ti->shape[0] == t[i].rows);
        if (!ok) {
            char got[96];
            shape_str(got, sizeof got, ti);
            if (t[i].cols)
                bipo_set_error("%s: tensor '%s' has shape %s but the config implies [%zu, %zu] "
                               "(hidden %zu, heads %zu/%zu, head_dim %zu, ffn %zu, vocab %zu)",
                               ti->file, name, got, t[i].rows, t[i].cols, c->C, c->NH, c->NKV,
                               c->HD, c->FF, c->V);
            else
                bipo_set_error("%s: tensor '%s' has shape %s but the config implies [%zu]", ti->file,
                               name, got, t[i].rows);
            goto out_t;
        }
        if (!bipo_dtype_name(ti->dtype)) {
            bipo_set_error("%s: tensor '%s' has unsupported dtype %u", ti->file, name, ti->dtype);
            goto out_t;
        }
        t[i].offset = total;
        total += ti->numel;
    }
    // fingerprint: the config that shapes the math + every tensor's name, dtype and shape
    bipo_sha256 sh;
    bipo_sha256_init(&sh);
    char buf[512];
    int k = snprintf(buf, sizeof buf, "%s L=%zu C=%zu NH=%zu NKV=%zu HD=%zu FF=%zu V=%zu theta=%.9g "
                     "eps=%.9g window=%zu tied=%d",
                     c->arch_name, c->L, c->C, c->NH, c->NKV, c->HD, c->FF, c->V,
                     (double)c->rope_theta, (double)c->rms_eps, c->sliding_window, c->tied);
    bipo_sha256_update(&sh, buf, (size_t)k);
    for (size_t i = 0; i < nt; i++) {
        k = snprintf(buf, sizeof buf, "|%s:%s:%llux%llu", t[i].hf, bipo_dtype_name(src[i]->dtype),
                     (unsigned long long)t[i].rows, (unsigned long long)t[i].cols);
        bipo_sha256_update(&sh, buf, (size_t)k);
    }
    bipo_sha256_hex(&sh, m->fingerprint);
    snprintf(m->source_dtype, sizeof m->source_dtype, "%s", dominant_dtype(&dir));
    if (probe) {
        m->n_params = total;
        rc = 0;
        goto out_t;
    }

    // allocate the one buffer and fill it tensor by tensor (staging on the host)
    m->n_params = total;
    m->params = be->alloc(total);
    size_t maxn = 0;
    for (size_t i = 0; i < nt; i++)
        if (src[i]->numel > maxn) maxn = src[i]->numel;
    float *stage = xmalloc(maxn * sizeof(float)), *stage2 = NULL;
    for (size_t i = 0; i < nt; i++) {
        const bipo_tensor_info *ti = src[i];
        if (bipo_dequantize(stage, ti->data, ti->dtype, ti->numel) != 0) {
            free(stage);
            goto out_t;
        }
        const float *out = stage;
        if (m->is_gguf && t[i].perm_heads) {
            if (!stage2) stage2 = xmalloc(maxn * sizeof(float));
            unpermute_rows(stage2, stage, t[i].rows, t[i].cols, t[i].perm_heads);
            out = stage2;
        }
        be->upload(m->params + t[i].offset, out, ti->numel);
        *t[i].slot = m->params + t[i].offset;
    }
    free(stage);
    free(stage2);
    if (c->tied) m->lm_head = m->wte;
    if (be->weights_register) be->weights_register(m->params, total);
    rc = 0;
out_t:
    free(src);
    free(t);
out:
    bipo_tensor_dir_free(&dir);
    if (m->is_gguf) gguf_close(&g);
    if (rc != 0) bipo_model_free(m);
    return rc;
}

int bipo_model_load(bipo_model *m, const char *path, const bipo_backend *be) {
    return model_open(m, path, be, 0);
}

int bipo_model_probe(bipo_model *m, const char *path) {
    return model_open(m, path, NULL, 1);
}

void bipo_model_free(bipo_model *m) {
    if (m->params) {
        if (m->be->weights_release) m->be->weights_release(m->params, m->n_params);
        m->be->free(m->params);
    }
    free(m->layers); // (a probe has layers but no params)
    m->params = NULL;
    m->layers = NULL;
}

double bipo_model_forward_flops(const bipo_config *c, size_t N, double avg_ctx, size_t M) {
    double QD = (double)(c->NH * c->HD), KVD = (double)(c->NKV * c->HD), C = (double)c->C;
    double per_tok_layer = 2.0 * (C * QD + 2.0 * C * KVD + QD * C + 3.0 * C * (double)c->FF) +
                           4.0 * avg_ctx * QD; // QK^T and PV
    return (double)N * (double)c->L * per_tok_layer + 2.0 * (double)M * C * (double)c->V;
}
