// tests/lib/testmodel.c — see testmodel.h. Writers for tiny random models in the two formats
// the loader reads, laid out exactly like the real tools write them (HF transformers
// save_pretrained, llama.cpp convert_hf_to_gguf.py), so loader tests exercise real layouts.
#include "testmodel.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kernels.h" // defines: bipo_backend_open
#include "model.h"   // defines: bipo_model_load
#include "tensors.h"
#include "util.h"

// ---- names and shapes -----------------------------------------------------------------------
static const char *LAYER_PARTS[] = {
    "input_layernorm",  "self_attn.q_proj", "self_attn.k_proj",         "self_attn.v_proj",
    "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj",
    "mlp.down_proj",
};
static const char *LAYER_GGUF[] = {
    "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
    "ffn_down",
};
#define N_PARTS (sizeof(LAYER_PARTS) / sizeof(LAYER_PARTS[0]))

size_t tm_names(const tm_spec *s, char ***names) {
    size_t n = 2 + s->L * N_PARTS + (s->tied ? 0 : 1), k = 0;
    if (!names) return n;
    char **r = xmalloc(n * sizeof(char *));
    char buf[128];
    r[k++] = xstrdup("model.embed_tokens.weight");
    for (size_t l = 0; l < s->L; l++)
        for (size_t p = 0; p < N_PARTS; p++) {
            snprintf(buf, sizeof buf, "model.layers.%zu.%s.weight", l, LAYER_PARTS[p]);
            r[k++] = xstrdup(buf);
        }
    r[k++] = xstrdup("model.norm.weight");
    if (!s->tied) r[k++] = xstrdup("lm_head.weight");
    *names = r;
    return n;
}
void tm_names_free(char **names, size_t n) {
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

// Index into LAYER_PARTS for "model.layers.<l>.<part>.weight", -1 otherwise; *layer = l.
static int layer_part(const char *name, size_t *layer) {
    unsigned long l;
    int off = 0;
    if (sscanf(name, "model.layers.%lu.%n", &l, &off) != 1 || !off) return -1;
    const char *rest = name + off;
    for (size_t p = 0; p < N_PARTS; p++) {
        size_t n = strlen(LAYER_PARTS[p]);
        if (!strncmp(rest, LAYER_PARTS[p], n) && !strcmp(rest + n, ".weight")) {
            *layer = l;
            return (int)p;
        }
    }
    return -1;
}

int tm_shape(const tm_spec *s, const char *name, int *ndim, uint64_t shape[2]) {
    size_t QD = s->NH * s->HD, KVD = s->NKV * s->HD, l;
    uint64_t r = 0, c = 0;
    if (!strcmp(name, "model.embed_tokens.weight") || (!strcmp(name, "lm_head.weight") && !s->tied)) {
        r = s->V, c = s->C;
    } else if (!strcmp(name, "model.norm.weight")) {
        r = s->C;
    } else {
        int p = layer_part(name, &l);
        if (p < 0 || l >= s->L) return -1;
        switch (p) {
        case 0: case 5: r = s->C; break;               // norms [C]
        case 1: r = QD, c = s->C; break;               // q_proj [NH*HD, C]
        case 2: case 3: r = KVD, c = s->C; break;      // k/v_proj [NKV*HD, C]
        case 4: r = s->C, c = QD; break;               // o_proj [C, NH*HD]
        case 6: case 7: r = s->FF, c = s->C; break;    // gate/up [FF, C]
        case 8: r = s->C, c = s->FF; break;            // down [C, FF]
        }
    }
    *ndim = c ? 2 : 1;
    shape[0] = r;
    shape[1] = c ? c : 1;
    return 0;
}

// xorshift64* seeded from (seed, FNV-1a of the name): each tensor independent of the others.
static float *gen(unsigned long long seed, const char *name, size_t n, int norm) {
    unsigned long long h = 1469598103934665603ull;
    for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    unsigned long long x = (seed * 0x9E3779B97F4A7C15ull) ^ h;
    if (!x) x = 1;
    float *w = xmalloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        float u = (float)((x * 2685821657736338717ull) >> 40) / (float)(1ull << 24) * 2.0f - 1.0f;
        w[i] = norm ? 1.0f + 0.1f * u : 0.08f * u;
    }
    return w;
}

float *tm_weights(const tm_spec *s, const char *name, size_t *numel) {
    int nd;
    uint64_t sh[2];
    if (tm_shape(s, name, &nd, sh)) return NULL;
    size_t n = (size_t)(sh[0] * sh[1]);
    if (numel) *numel = n;
    return gen(s->seed, name, n, nd == 1);
}

// ---- byte buffer ----------------------------------------------------------------------------
void tm_put(tm_buf *b, const void *x, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = xrealloc(b->p, b->cap);
    }
    if (n) memcpy(b->p + b->n, x, n);
    b->n += n;
}
void tm_put_u32(tm_buf *b, uint32_t v) { tm_put(b, &v, 4); }
void tm_put_u64(tm_buf *b, uint64_t v) { tm_put(b, &v, 8); }
void tm_put_str(tm_buf *b, const char *s) {
    tm_put_u64(b, strlen(s));
    tm_put(b, s, strlen(s));
}
void tm_pad(tm_buf *b, size_t align) {
    static const uint8_t zero[64] = {0};
    while (b->n % align) tm_put(b, zero, 1);
}
int tm_buf_save(const tm_buf *b, const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->p, 1, b->n, f) != b->n) {
        bipo_set_error("%s: cannot write", path);
        if (f) fclose(f);
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}
void tm_buf_free(tm_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

// ---- HF directory ---------------------------------------------------------------------------
static float eff_theta(const tm_spec *s) { return s->rope_theta > 0 ? s->rope_theta : 10000.0f; }
static float eff_eps(const tm_spec *s) { return s->eps > 0 ? s->eps : 1e-5f; }
static size_t eff_maxpos(const tm_spec *s) { return s->max_pos ? s->max_pos : 2048; }
// The shortest decimal that reads back as f, so config.json says 1e-05, not 9.99999975e-06.
static double short_double(float f) {
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

static int write_config(const tm_spec *s, const char *dir, const char *torch_dtype) {
    json_t *c = json_object();
    const char *arch = s->mistral ? "MistralForCausalLM" : "LlamaForCausalLM";
    json_object_set_new(c, "architectures", json_pack("[s]", arch));
    json_object_set_new(c, "model_type", json_string(s->mistral ? "mistral" : "llama"));
    json_object_set_new(c, "hidden_size", json_integer((json_int_t)s->C));
    json_object_set_new(c, "intermediate_size", json_integer((json_int_t)s->FF));
    json_object_set_new(c, "num_hidden_layers", json_integer((json_int_t)s->L));
    json_object_set_new(c, "num_attention_heads", json_integer((json_int_t)s->NH));
    json_object_set_new(c, "num_key_value_heads", json_integer((json_int_t)s->NKV));
    json_object_set_new(c, "head_dim", json_integer((json_int_t)s->HD));
    json_object_set_new(c, "rms_norm_eps", json_real(short_double(eff_eps(s))));
    json_object_set_new(c, "rope_theta", json_real(short_double(eff_theta(s))));
    json_object_set_new(c, "max_position_embeddings", json_integer((json_int_t)eff_maxpos(s)));
    json_object_set_new(c, "vocab_size", json_integer((json_int_t)s->V));
    json_object_set_new(c, "tie_word_embeddings", json_boolean(s->tied));
    json_object_set_new(c, "sliding_window", s->mistral && s->window
                                                 ? json_integer((json_int_t)s->window)
                                                 : json_null());
    json_object_set_new(c, "torch_dtype", json_string(torch_dtype));
    json_object_set_new(c, "bos_token_id", json_integer(1));
    json_object_set_new(c, "eos_token_id", json_integer(2));
    json_object_set_new(c, "hidden_act", json_string("silu"));
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = json_dump_file(c, path, JSON_INDENT(2));
    json_decref(c);
    if (rc) bipo_set_error("%s: cannot write", path);
    return rc ? -1 : 0;
}

// One safetensors file with tensors names[lo..hi): header padded with spaces to 8 bytes.
static int write_safetensors(const tm_spec *s, const char *path, char **names, size_t lo,
                             size_t hi, uint32_t dtype, size_t *total) {
    json_t *h = json_object();
    json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
    tm_buf data = {0};
    size_t es = dtype == BIPO_DT_F32 ? 4 : 2;
    const char *dname = bipo_dtype_name(dtype);
    for (size_t i = lo; i < hi; i++) {
        size_t n;
        int nd;
        uint64_t sh[2];
        float *w = tm_weights(s, names[i], &n);
        tm_shape(s, names[i], &nd, sh);
        uint8_t *q = xmalloc(n * es);
        bipo_quantize(q, w, dtype, n);
        json_t *shape = nd == 2 ? json_pack("[I,I]", (json_int_t)sh[0], (json_int_t)sh[1])
                                : json_pack("[I]", (json_int_t)sh[0]);
        json_object_set_new(h, names[i], json_pack("{s:s,s:o,s:[I,I]}", "dtype", dname, "shape",
                                                   shape, "data_offsets", (json_int_t)data.n,
                                                   (json_int_t)(data.n + n * es)));
        tm_put(&data, q, n * es);
        free(q);
        free(w);
    }
    char *hj = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    tm_buf f = {0};
    size_t hlen = (strlen(hj) + 7) / 8 * 8;
    tm_put_u64(&f, hlen);
    tm_put(&f, hj, strlen(hj));
    while (f.n < 8 + hlen) tm_put(&f, " ", 1);
    tm_put(&f, data.p, data.n);
    *total += data.n;
    int rc = tm_buf_save(&f, path);
    free(hj);
    tm_buf_free(&f);
    tm_buf_free(&data);
    return rc;
}

int tm_write_hf(const tm_spec *s, const char *dir, uint32_t dtype, int n_shards) {
    const char *td = dtype == BIPO_DT_F32    ? "float32"
                     : dtype == BIPO_DT_F16  ? "float16"
                     : dtype == BIPO_DT_BF16 ? "bfloat16"
                                             : NULL;
    if (!td) {
        bipo_set_error("tm_write_hf: dtype %u is not F32/F16/BF16", dtype);
        return -1;
    }
    if (write_config(s, dir, td)) return -1;
    char **names;
    size_t n = tm_names(s, &names), total = 0;
    char path[4096];
    int rc = 0;
    if (n_shards <= 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = write_safetensors(s, path, names, 0, n, dtype, &total);
    } else {
        json_t *wm = json_object();
        for (int k = 0; k < n_shards && !rc; k++) {
            char fname[64];
            snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", k + 1, n_shards);
            snprintf(path, sizeof path, "%s/%s", dir, fname);
            size_t lo = n * (size_t)k / (size_t)n_shards, hi = n * (size_t)(k + 1) / (size_t)n_shards;
            for (size_t i = lo; i < hi; i++) json_object_set_new(wm, names[i], json_string(fname));
            rc = write_safetensors(s, path, names, lo, hi, dtype, &total);
        }
        json_t *idx = json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)total,
                                "weight_map", wm);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        if (!rc && json_dump_file(idx, path, JSON_INDENT(2))) {
            bipo_set_error("%s: cannot write", path);
            rc = -1;
        }
        json_decref(idx);
    }
    tm_names_free(names, n);
    return rc;
}

// ---- GGUF -----------------------------------------------------------------------------------
int tm_gguf_name(const char *hf, char *out, size_t out_size) {
    size_t l;
    int p;
    if (!strcmp(hf, "model.embed_tokens.weight")) snprintf(out, out_size, "token_embd.weight");
    else if (!strcmp(hf, "model.norm.weight")) snprintf(out, out_size, "output_norm.weight");
    else if (!strcmp(hf, "lm_head.weight")) snprintf(out, out_size, "output.weight");
    else if ((p = layer_part(hf, &l)) >= 0) snprintf(out, out_size, "blk.%zu.%s.weight", l, LAYER_GGUF[p]);
    else return -1;
    return 0;
}

void tm_permute_qk(float *out, const float *in, size_t rows, size_t cols, size_t n_head,
                   int inverse) {
    size_t hd = rows / n_head;
    for (size_t h = 0; h < n_head; h++)
        for (size_t i = 0; i < hd / 2; i++)
            for (size_t j = 0; j < 2; j++) {
                size_t gg = h * hd + 2 * i + j, hf = h * hd + j * (hd / 2) + i; // gguf / HF row
                size_t dst = inverse ? hf : gg, src = inverse ? gg : hf;
                memcpy(out + dst * cols, in + src * cols, cols * sizeof(float));
            }
}

static void kv_key(tm_buf *b, size_t *n, const char *key, uint32_t type) {
    tm_put_str(b, key);
    tm_put_u32(b, type);
    (*n)++;
}
static void kv_u32(tm_buf *b, size_t *n, const char *key, uint32_t v) {
    kv_key(b, n, key, 4 /* UINT32 */);
    tm_put_u32(b, v);
}
static void kv_f32(tm_buf *b, size_t *n, const char *key, float v) {
    kv_key(b, n, key, 6 /* FLOAT32 */);
    tm_put(b, &v, 4);
}
static void kv_str(tm_buf *b, size_t *n, const char *key, const char *v) {
    kv_key(b, n, key, 8 /* STRING */);
    tm_put_str(b, v);
}
static void kv_arr(tm_buf *b, size_t *n, const char *key, uint32_t elem_type, uint64_t count) {
    kv_key(b, n, key, 9 /* ARRAY */);
    tm_put_u32(b, elem_type);
    tm_put_u64(b, count);
}

// Minimal SentencePiece-style vocab: <unk> <s> </s>, 256 byte tokens, then filler pieces.
static void write_tokenizer(tm_buf *b, size_t *n, size_t V) {
    kv_str(b, n, "tokenizer.ggml.model", "llama");
    kv_arr(b, n, "tokenizer.ggml.tokens", 8, V);
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (size_t i = 0; i < V; i++) {
        char buf[32];
        size_t f = i - 259, na = sizeof(alnum) - 1;
        if (i < 3) snprintf(buf, sizeof buf, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259) snprintf(buf, sizeof buf, "<0x%02X>", (unsigned)(i - 3));
        else if (f < na) snprintf(buf, sizeof buf, "%c", alnum[f]);
        else if (f < 2 * na) snprintf(buf, sizeof buf, "\xe2\x96\x81%c", alnum[f - na]);
        else snprintf(buf, sizeof buf, "\xe2\x96\x81t%zu", f);
        tm_put_str(b, buf);
    }
    kv_arr(b, n, "tokenizer.ggml.scores", 6, V);
    for (size_t i = 0; i < V; i++) {
        float sc = i < 259 ? 0.0f : -(float)(i - 259);
        tm_put(b, &sc, 4);
    }
    kv_arr(b, n, "tokenizer.ggml.token_type", 5 /* INT32 */, V);
    for (size_t i = 0; i < V; i++) {
        int32_t t = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1; // unknown, control, byte, normal
        tm_put(b, &t, 4);
    }
    kv_u32(b, n, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(b, n, "tokenizer.ggml.eos_token_id", 2);
    kv_u32(b, n, "tokenizer.ggml.unknown_token_id", 0);
}

static uint32_t file_type(uint32_t dt) { // llama.cpp LlamaFileType (general.file_type)
    switch (dt) {
    case BIPO_DT_F32: return 0;
    case BIPO_DT_F16: return 1;
    case BIPO_DT_Q4_0: return 2;
    case BIPO_DT_Q4_1: return 3;
    case BIPO_DT_Q8_0: return 7;
    case BIPO_DT_Q5_0: return 8;
    case BIPO_DT_Q5_1: return 9;
    default: return 32; // BF16
    }
}

int tm_write_gguf(const tm_spec *s, const char *path, uint32_t dtype2d, int version) {
    int dt_ok = dtype2d == BIPO_DT_F32 || dtype2d == BIPO_DT_F16 || dtype2d == BIPO_DT_BF16 ||
                dtype2d == BIPO_DT_Q8_0 || dtype2d == BIPO_DT_Q4_0 || dtype2d == BIPO_DT_Q4_1 ||
                dtype2d == BIPO_DT_Q5_0 || dtype2d == BIPO_DT_Q5_1;
    if ((version != 2 && version != 3) || !dt_ok) {
        bipo_set_error("tm_write_gguf: unsupported version %d or dtype %u", version, dtype2d);
        return -1;
    }
    tm_buf kv = {0}, info = {0}, data = {0};
    size_t n_kv = 0;
    kv_str(&kv, &n_kv, "general.architecture", "llama");
    kv_str(&kv, &n_kv, "general.name", s->mistral ? "tiny-random-mistral" : "tiny-random-llama");
    kv_u32(&kv, &n_kv, "general.alignment", 32);
    kv_u32(&kv, &n_kv, "llama.block_count", (uint32_t)s->L);
    kv_u32(&kv, &n_kv, "llama.context_length", (uint32_t)eff_maxpos(s));
    kv_u32(&kv, &n_kv, "llama.embedding_length", (uint32_t)s->C);
    kv_u32(&kv, &n_kv, "llama.feed_forward_length", (uint32_t)s->FF);
    kv_u32(&kv, &n_kv, "llama.attention.head_count", (uint32_t)s->NH);
    kv_u32(&kv, &n_kv, "llama.attention.head_count_kv", (uint32_t)s->NKV);
    kv_f32(&kv, &n_kv, "llama.rope.freq_base", eff_theta(s));
    kv_f32(&kv, &n_kv, "llama.attention.layer_norm_rms_epsilon", eff_eps(s));
    kv_u32(&kv, &n_kv, "llama.rope.dimension_count", (uint32_t)s->HD);
    kv_u32(&kv, &n_kv, "llama.attention.key_length", (uint32_t)s->HD);
    kv_u32(&kv, &n_kv, "llama.attention.value_length", (uint32_t)s->HD);
    kv_u32(&kv, &n_kv, "llama.vocab_size", (uint32_t)s->V);
    kv_u32(&kv, &n_kv, "general.file_type", file_type(dtype2d));
    if (s->mistral && s->window) kv_u32(&kv, &n_kv, "llama.attention.sliding_window", (uint32_t)s->window);
    if (s->V >= 259) write_tokenizer(&kv, &n_kv, s->V);

    char **names;
    size_t n = tm_names(s, &names);
    for (size_t i = 0; i < n; i++) {
        size_t numel, l;
        int nd;
        uint64_t sh[2];
        float *w = tm_weights(s, names[i], &numel);
        tm_shape(s, names[i], &nd, sh);
        int p = layer_part(names[i], &l);
        if (p == 1 || p == 2) { // q_proj / k_proj: llama.cpp's rotary row order
            float *perm = xmalloc(numel * sizeof(float));
            tm_permute_qk(perm, w, sh[0], sh[1], p == 1 ? s->NH : s->NKV, 0);
            free(w);
            w = perm;
        }
        // 1-D tensors are always F32; a row length the block does not divide falls back to F32.
        uint32_t dt = nd == 1 || sh[1] % bipo_dtype_block(dtype2d) ? BIPO_DT_F32 : dtype2d;
        size_t nbytes = bipo_dtype_nbytes(dt, numel);
        uint8_t *q = xmalloc(nbytes);
        bipo_quantize(q, w, dt, numel);
        char gname[128];
        tm_gguf_name(names[i], gname, sizeof gname);
        tm_put_str(&info, gname);
        tm_put_u32(&info, (uint32_t)nd);
        tm_put_u64(&info, nd == 2 ? sh[1] : sh[0]); // ne[0] = row length (HF's last dim)
        if (nd == 2) tm_put_u64(&info, sh[0]);
        tm_put_u32(&info, dt);
        tm_put_u64(&info, data.n);
        tm_put(&data, q, nbytes);
        tm_pad(&data, 32);
        free(q);
        free(w);
    }
    tm_buf f = {0};
    tm_put(&f, "GGUF", 4);
    tm_put_u32(&f, (uint32_t)version);
    tm_put_u64(&f, n);
    tm_put_u64(&f, n_kv);
    tm_put(&f, kv.p, kv.n);
    tm_put(&f, info.p, info.n);
    tm_pad(&f, 32);
    tm_put(&f, data.p, data.n);
    int rc = tm_buf_save(&f, path);
    tm_names_free(names, n);
    tm_buf_free(&kv);
    tm_buf_free(&info);
    tm_buf_free(&data);
    tm_buf_free(&f);
    return rc;
}

int tm_load_tiny_hf(const tm_spec *s, char tmp[64], bipo_model *m) {
    char dir[128];
    snprintf(tmp, 64, "/tmp/bipo-tm-XXXXXX");
    if (!mkdtemp(tmp)) {
        bipo_set_error("mkdtemp: cannot create %s", tmp);
        return -1;
    }
    snprintf(dir, sizeof dir, "%s/tiny-hf", tmp);
    mkdir(dir, 0755);
    if (tm_write_hf(s, dir, BIPO_DT_F32, 1) != 0) return -1;
    return bipo_model_load(m, dir, bipo_backend_open("cpu", 0));
}

void tm_remove(const char *tmp) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmp);
}
