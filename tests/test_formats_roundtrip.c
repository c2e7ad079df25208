// tests/test_formats_roundtrip.c — tiny random models written by tests/lib/testmodel.c and
// read back by the loaders: HF safetensors (F32, F16, BF16, sharded) and GGUF (v2/v3, F32 and
// quantized). References: tm_weights() (the generator), f16/bf16 rounding of it, gguf-py's
// GGUFReader for the written GGUF's metadata, and numpy running convert_hf_to_gguf.py's
// permute formula for the q/k rows.
//
// usage: test_formats_roundtrip PYTHON
#include <jansson.h>
#include <sys/stat.h>

#include "gguf.h"
#include "tensors.h"
#include "test_formats_common.h"
#include "testmodel.h"

static const char *PY;

static const tm_spec LLAMA = {.mistral = 0, .L = 2, .C = 64, .NH = 4, .NKV = 2, .HD = 16,
                              .FF = 96, .V = 300, .rope_theta = 10000.0f, .eps = 1e-5f,
                              .seed = 7, .max_pos = 256};
static const tm_spec MISTRAL = {.mistral = 1, .L = 1, .C = 32, .NH = 2, .NKV = 1, .HD = 16,
                                .FF = 64, .V = 40, .rope_theta = 1e6f, .eps = 1e-6f,
                                .window = 16, .tied = 1, .seed = 11};

// Expected values after storing as dt: F32 exact, F16/BF16 rounded to nearest even.
static float *expected(const float *w, size_t n, uint32_t dt) {
    float *e = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        e[i] = dt == BIPO_DT_F16    ? bipo_f16_to_f32(bipo_f32_to_f16(w[i]))
               : dt == BIPO_DT_BF16 ? bipo_bf16_to_f32(bipo_f32_to_bf16(w[i]))
                                    : w[i];
    return e;
}

// Every tensor of the spec is in d with the HF shape and dtype, and bit-exact values.
static void check_dir_hf(const tm_spec *s, const bipo_tensor_dir *d, uint32_t dt, const char *what) {
    char **names;
    size_t n = tm_names(s, &names), bad = 0;
    EXPECT(d->n == n, "%s: %zu tensors, want %zu", what, d->n, n);
    for (size_t i = 0; i < n; i++) {
        const bipo_tensor_info *t = bipo_tensor_dir_find(d, names[i]);
        int nd;
        uint64_t sh[2];
        tm_shape(s, names[i], &nd, sh);
        if (!t || t->ndim != nd || t->shape[0] != sh[0] || (nd == 2 && t->shape[1] != sh[1]) ||
            t->dtype != dt || !t->file) {
            EXPECT(0, "%s: %s missing or wrong shape/dtype", what, names[i]);
            continue;
        }
        size_t numel;
        float *w = tm_weights(s, names[i], &numel), *want = expected(w, numel, dt);
        float *got = xmalloc(numel * sizeof(float));
        bipo_dequantize(got, t->data, t->dtype, numel);
        bad += memcmp(got, want, numel * sizeof(float)) != 0;
        free(w), free(want), free(got);
    }
    EXPECT(bad == 0, "%s: %zu tensors differ from the generator", what, bad);
    tm_names_free(names, n);
}

static void check_config(const tm_spec *s, const char *dir, const char *torch_dtype) {
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_error_t err;
    json_t *c = json_load_file(p, 0, &err);
    EXPECT(c != NULL, "%s: %s", p, err.text);
    if (!c) return;
    const char *arch = json_string_value(json_array_get(json_object_get(c, "architectures"), 0));
    EXPECT(arch && !strcmp(arch, s->mistral ? "MistralForCausalLM" : "LlamaForCausalLM"), "architectures");
    EXPECT(json_integer_value(json_object_get(c, "hidden_size")) == (json_int_t)s->C &&
               json_integer_value(json_object_get(c, "num_key_value_heads")) == (json_int_t)s->NKV &&
               json_integer_value(json_object_get(c, "head_dim")) == (json_int_t)s->HD &&
               json_integer_value(json_object_get(c, "vocab_size")) == (json_int_t)s->V,
           "config sizes");
    EXPECT((float)json_real_value(json_object_get(c, "rms_norm_eps")) == s->eps, "rms_norm_eps");
    EXPECT(json_is_true(json_object_get(c, "tie_word_embeddings")) == s->tied, "tie_word_embeddings");
    json_t *sw = json_object_get(c, "sliding_window");
    EXPECT(s->mistral ? json_integer_value(sw) == (json_int_t)s->window : json_is_null(sw), "sliding_window");
    EXPECT(!strcmp(json_string_value(json_object_get(c, "torch_dtype")), torch_dtype), "torch_dtype");
    json_decref(c);
}

static void test_hf(const tm_spec *s, uint32_t dt, int shards, const char *torch_dtype) {
    char dir[512], what[128];
    snprintf(what, sizeof what, "%s %s x%d", s->mistral ? "mistral" : "llama", bipo_dtype_name(dt), shards);
    snprintf(dir, sizeof dir, "%s/hf_%s_%s_%d", fmt_tmpdir(), s->mistral ? "m" : "l", bipo_dtype_name(dt), shards);
    CHECK(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    EXPECT(tm_write_hf(s, dir, dt, shards) == 0, "tm_write_hf %s: %s", what, bipo_last_error());
    check_config(s, dir, torch_dtype);
    bipo_tensor_dir d;
    if (bipo_safetensors_open_dir(&d, dir)) {
        EXPECT(0, "open %s: %s", dir, bipo_last_error());
        return;
    }
    EXPECT(d.n_maps == (size_t)(shards > 1 ? shards : 1), "%s: %zu files mapped", what, d.n_maps);
    check_dir_hf(s, &d, dt, what);
    bipo_tensor_dir_free(&d);
}

// GGUF metadata the loader needs, as convert_hf_to_gguf.py names it.
static void check_gguf_meta(const tm_spec *s, const gguf_file *g) {
    uint64_t u = 0;
    double f = 0;
    gguf_str str = {0};
    EXPECT(gguf_get_str(g, "general.architecture", &str) == 0 && str.len == 5 &&
               !memcmp(str.ptr, "llama", 5), "general.architecture");
    static const char *keys[] = {"llama.block_count", "llama.embedding_length",
                                 "llama.feed_forward_length", "llama.attention.head_count",
                                 "llama.attention.head_count_kv", "llama.rope.dimension_count",
                                 "llama.attention.key_length", "llama.vocab_size"};
    const size_t want[] = {s->L, s->C, s->FF, s->NH, s->NKV, s->HD, s->HD, s->V};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        EXPECT(gguf_get_u64(g, keys[k], &u) == 0 && u == want[k], "%s = %llu, want %zu", keys[k],
               (unsigned long long)u, want[k]);
    EXPECT(gguf_get_f64(g, "llama.rope.freq_base", &f) == 0 && (float)f == s->rope_theta, "freq_base");
    EXPECT(gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &f) == 0 && (float)f == s->eps, "eps");
    int r = gguf_get_u64(g, "llama.attention.sliding_window", &u);
    EXPECT(s->mistral ? r == 0 && u == s->window : r == 1, "sliding_window");
    uint64_t n = 0;
    const gguf_kv *tok = gguf_get_array(g, "tokenizer.ggml.tokens", GGUF_T_STRING, &n);
    if (s->V >= 259)
        EXPECT(tok && n == s->V && tok->arr_str[1].len == 3 && !memcmp(tok->arr_str[1].ptr, "<s>", 3) &&
                   tok->arr_str[3].len == 6 && !memcmp(tok->arr_str[3].ptr, "<0x00>", 6),
               "tokenizer tokens");
    else
        EXPECT(tok == NULL, "no tokenizer for V < 259");
}

// GGUF tensors vs the generator: names mapped, ne reversed, 1-D F32, 2-D in dt2 (F32 fallback
// when the row is not whole blocks); q/k rows permuted (numpy reference for one of each).
static void check_gguf_tensors(const tm_spec *s, const gguf_file *g, uint32_t dt2, const char *what) {
    char **names;
    size_t n = tm_names(s, &names), bad = 0;
    EXPECT(g->n_tensors == n, "%s: %llu tensors, want %zu", what, (unsigned long long)g->n_tensors, n);
    for (size_t i = 0; i < n; i++) {
        char gname[128];
        tm_gguf_name(names[i], gname, sizeof gname);
        const gguf_tensor *t = gguf_find_tensor(g, gname);
        int nd;
        uint64_t sh[2];
        tm_shape(s, names[i], &nd, sh);
        uint32_t want_dt = nd == 1 || sh[1] % bipo_dtype_block(dt2) ? BIPO_DT_F32 : dt2;
        if (!t || (int)t->n_dims != nd || t->ne[0] != (nd == 2 ? sh[1] : sh[0]) ||
            (nd == 2 && t->ne[1] != sh[0]) || t->type != want_dt) {
            EXPECT(0, "%s: %s missing or wrong shape/type", what, gname);
            continue;
        }
        size_t numel;
        float *w = tm_weights(s, names[i], &numel), *got = xmalloc(numel * sizeof(float));
        bipo_dequantize(got, t->data, t->type, numel);
        int is_q = strstr(gname, "attn_q.") != NULL, is_k = strstr(gname, "attn_k.") != NULL;
        if (is_q || is_k) { // undo llama.cpp's permutation: must give the HF tensor back
            float *un = xmalloc(numel * sizeof(float));
            tm_permute_qk(un, got, sh[0], sh[1], is_q ? s->NH : s->NKV, 1);
            free(got);
            got = un;
        }
        if (want_dt == BIPO_DT_F32) {
            bad += memcmp(got, w, numel * sizeof(float)) != 0;
        } else {
            char label[300];
            snprintf(label, sizeof label, "%s %s", what, gname);
            // quantized: |err| <= one step of the block scale (weights are < 0.08 in magnitude)
            double step = 0.08 / (dt2 == BIPO_DT_Q8_0 ? 127 : dt2 == BIPO_DT_Q4_0 || dt2 == BIPO_DT_Q4_1 ? 7.5 : 15.5);
            if (dt2 == BIPO_DT_F16 || dt2 == BIPO_DT_BF16) step = 0.08 * 0x1p-8;
            tl_allclose(label, got, w, numel, step * 1.01, 0);
        }
        free(w), free(got);
    }
    EXPECT(bad == 0, "%s: %zu F32 tensors differ from the generator", what, bad);
    tm_names_free(names, n);
}

// The q rows in the GGUF equal numpy's reshape(n_head, 2, hd/2, C).swapaxes(1, 2) of HF's.
static void check_permute_vs_numpy(const tm_spec *s, const gguf_file *g) {
    const char *hf[] = {"model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight"};
    for (int k = 0; k < 2; k++) {
        size_t numel, nref = 0;
        int nd;
        uint64_t sh[2];
        float *w = tm_weights(s, hf[k], &numel);
        tm_shape(s, hf[k], &nd, sh);
        char in[512], out[512], gname[128];
        fmt_path(in, sizeof in, "perm_in.f32");
        fmt_path(out, sizeof out, "perm_out.f32");
        FILE *f = fopen(in, "wb");
        CHECK(f && fwrite(w, 4, numel, f) == numel && fclose(f) == 0, "write %s", in);
        int rc = fmt_run_ref(PY, "permute '%s' '%s' %zu %llu %llu", in, out, k ? s->NKV : s->NH,
                             (unsigned long long)sh[0], (unsigned long long)sh[1]);
        EXPECT(rc == 0, "dequant_ref.py permute exited %d", rc);
        float *want = rc ? NULL : fmt_read_f32(out, &nref);
        tm_gguf_name(hf[k], gname, sizeof gname);
        const gguf_tensor *t = gguf_find_tensor(g, gname);
        if (want && t && nref == numel && t->type == BIPO_DT_F32)
            fmt_bits_equal(gname, (const float *)t->data, want, numel);
        else
            EXPECT(0, "%s: cannot compare the permutation with numpy", gname);
        free(w), free(want);
    }
}

static void test_gguf(const tm_spec *s, uint32_t dt2, int version, int with_ref) {
    char path[512], what[128];
    snprintf(what, sizeof what, "gguf v%d %s %s", version, s->mistral ? "mistral" : "llama", bipo_dtype_name(dt2));
    snprintf(path, sizeof path, "%s/%s_%s_v%d.gguf", fmt_tmpdir(), s->mistral ? "m" : "l", bipo_dtype_name(dt2), version);
    EXPECT(tm_write_gguf(s, path, dt2, version) == 0, "tm_write_gguf %s: %s", what, bipo_last_error());
    gguf_file g;
    if (gguf_open(&g, path)) {
        EXPECT(0, "open %s: %s", path, bipo_last_error());
        return;
    }
    EXPECT(g.version == (uint32_t)version, "%s: version %u", what, g.version);
    check_gguf_meta(s, &g);
    check_gguf_tensors(s, &g, dt2, what);
    bipo_tensor_dir d;
    EXPECT(bipo_tensor_dir_from_gguf(&d, &g) == 0, "dir from gguf");
    const bipo_tensor_info *ti = bipo_tensor_dir_find(&d, "blk.0.ffn_down.weight");
    EXPECT(ti && ti->ndim == 2 && ti->shape[0] == s->C && ti->shape[1] == s->FF &&
               ti->numel == s->C * s->FF && !strcmp(ti->file, path), "%s: dir shape in HF order", what);
    bipo_tensor_dir_free(&d);
    if (with_ref) {
        fmt_check_meta(PY, &g, path); // the official reader parses what we wrote
        if (dt2 == BIPO_DT_F32) check_permute_vs_numpy(s, &g);
    }
    gguf_close(&g);
}

int main(int argc, char **argv) {
    PY = argc > 1 ? argv[1] : "/usr/bin/python3";
    int ref = fmt_run_ref(PY, "check") == 0;
    if (!ref) printf("SKIP gguf-py cross-checks: the gguf Python package is missing (scripts/setup)\n");
    test_hf(&LLAMA, BIPO_DT_F32, 1, "float32");
    test_hf(&LLAMA, BIPO_DT_F16, 1, "float16");
    test_hf(&LLAMA, BIPO_DT_BF16, 1, "bfloat16");
    test_hf(&LLAMA, BIPO_DT_F32, 3, "float32");
    test_hf(&MISTRAL, BIPO_DT_BF16, 2, "bfloat16");
    test_gguf(&LLAMA, BIPO_DT_F32, 3, ref);
    test_gguf(&LLAMA, BIPO_DT_Q8_0, 2, ref);
    test_gguf(&LLAMA, BIPO_DT_F32, 2, 0);
    test_gguf(&LLAMA, BIPO_DT_Q8_0, 3, 0);
    static const uint32_t more[] = {BIPO_DT_F16, BIPO_DT_BF16, BIPO_DT_Q4_0, BIPO_DT_Q4_1,
                                    BIPO_DT_Q5_0, BIPO_DT_Q5_1};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) test_gguf(&LLAMA, more[i], 3, 0);
    test_gguf(&MISTRAL, BIPO_DT_Q8_0, 3, ref);
    EXPECT(tm_write_gguf(&LLAMA, "/tmp/x.gguf", BIPO_DT_Q4_K, 3) == -1, "Q4_K writer must refuse");
    fmt_tmp_cleanup();
    return tl_summary("test_formats_roundtrip");
}
