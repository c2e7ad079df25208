// tests/test_formats.c — dtype table, dequantization and quantization against an independent
// reference (the PyPI gguf package through tests/dequant_ref.py), and the real files: every
// llama.cpp vocab GGUF and the default model (SmolLM2-135M-Instruct Q4_1).
//
// Exactness claim: dequantization is BIT-IDENTICAL to gguf-py (which mirrors ggml's
// dequantize_row_*) for all 11 types; the round-to-nearest quantizers (Q8_0 Q4_0 Q4_1 Q5_0
// Q5_1 F16 BF16) produce BYTE-IDENTICAL blocks to gguf-py's quantize().
//
// usage: test_formats PYTHON     (PYTHON = an interpreter with numpy + gguf, /usr/bin/python3)
#include <glob.h>

#include "gguf.h"
#include "tensors.h"
#include "test_formats_common.h"

static const char *PY;
static int ref_ok = 1; // 0 when the gguf package is missing (reference checks skipped)

static uint8_t rand_byte(void) { return (uint8_t)((tl_randf() + 1.0f) * 128.0f); }
static void put_f16(uint8_t *p, float f) {
    uint16_t h = bipo_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

// ---- the dtype table against ggml's numbers -------------------------------------------------
static void test_dtype_table(void) {
    static const struct { uint32_t dt; const char *name; size_t block, bytes; } want[] = {
        {0, "F32", 1, 4},      {1, "F16", 1, 2},     {30, "BF16", 1, 2},   {8, "Q8_0", 32, 34},
        {2, "Q4_0", 32, 18},   {3, "Q4_1", 32, 20},  {6, "Q5_0", 32, 22},  {7, "Q5_1", 32, 24},
        {12, "Q4_K", 256, 144}, {13, "Q5_K", 256, 176}, {14, "Q6_K", 256, 210},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *n = bipo_dtype_name(want[i].dt);
        EXPECT(n && !strcmp(n, want[i].name), "dtype %u name %s", want[i].dt, n ? n : "(null)");
        EXPECT(bipo_dtype_block(want[i].dt) == want[i].block, "%s block", want[i].name);
        EXPECT(bipo_dtype_block_bytes(want[i].dt) == want[i].bytes, "%s block bytes", want[i].name);
        EXPECT(bipo_dtype_nbytes(want[i].dt, want[i].block * 3) == want[i].bytes * 3, "%s nbytes",
               want[i].name);
    }
    EXPECT(bipo_dtype_name(10) == NULL && bipo_dtype_block(10) == 0, "Q2_K must be unsupported");
    EXPECT(bipo_dtype_nbytes(BIPO_DT_Q8_0, 33) == 0, "33 elements are not whole Q8_0 blocks");
    float out[32];
    uint8_t raw[64] = {0};
    EXPECT(bipo_dequantize(out, raw, 10, 32) == -1 && strstr(bipo_last_error(), "10"),
           "dequantize of an unsupported type must fail naming it");
}

// ---- dequantization vs gguf-py on random raw blocks ------------------------------------------
typedef struct {
    uint32_t dt;
    int n_f16;
    size_t f16_off[2]; // positions of the f16 scale fields inside a block
} qspec;
static const qspec QTYPES[] = {
    {BIPO_DT_Q8_0, 1, {0}},      {BIPO_DT_Q4_0, 1, {0}},      {BIPO_DT_Q4_1, 2, {0, 2}},
    {BIPO_DT_Q5_0, 1, {0}},      {BIPO_DT_Q5_1, 2, {0, 2}},   {BIPO_DT_Q4_K, 2, {0, 2}},
    {BIPO_DT_Q5_K, 2, {0, 2}},   {BIPO_DT_Q6_K, 1, {208}},
};

// Random raw data of n elements of type dt: random bytes, scales forced finite and small;
// F16/BF16 as random bit patterns without Inf/NaN (subnormals and -0 included).
static uint8_t *random_raw(uint32_t dt, size_t n, size_t *nbytes) {
    *nbytes = bipo_dtype_nbytes(dt, n);
    uint8_t *b = xmalloc(*nbytes);
    for (size_t i = 0; i < *nbytes; i++) b[i] = rand_byte();
    if (dt == BIPO_DT_F32) {
        for (size_t i = 0; i < n; i++) ((float *)b)[i] = tl_randf() * 3.0f;
    } else if (dt == BIPO_DT_F16 || dt == BIPO_DT_BF16) {
        uint8_t exp_hi = dt == BIPO_DT_F16 ? 0x7C : 0x7F; // exponent bits in the high byte
        for (size_t i = 0; i < n; i++)
            if ((b[2 * i + 1] & exp_hi) == exp_hi && (dt == BIPO_DT_F16 || (b[2 * i] & 0x80)))
                b[2 * i + 1] &= (uint8_t)~0x40; // all-ones exponent -> finite
    } else {
        const qspec *q = NULL;
        for (size_t k = 0; k < sizeof QTYPES / sizeof QTYPES[0]; k++)
            if (QTYPES[k].dt == dt) q = &QTYPES[k];
        size_t bb = bipo_dtype_block_bytes(dt), nb = n / bipo_dtype_block(dt);
        for (size_t blk = 0; blk < nb; blk++)
            for (int k = 0; k < q->n_f16; k++) put_f16(b + blk * bb + q->f16_off[k], tl_randf() * 0.05f);
    }
    return b;
}

static void test_dequant_vs_reference(void) {
    static const uint32_t all[] = {BIPO_DT_F32, BIPO_DT_F16, BIPO_DT_BF16, BIPO_DT_Q8_0,
                                   BIPO_DT_Q4_0, BIPO_DT_Q4_1, BIPO_DT_Q5_0, BIPO_DT_Q5_1,
                                   BIPO_DT_Q4_K, BIPO_DT_Q5_K, BIPO_DT_Q6_K};
    const size_t NT = sizeof all / sizeof all[0], n = 256 * 96;
    char args[1024] = "", path[256];
    tl_seed(1234);
    for (size_t t = 0; t < NT; t++) {
        size_t nbytes;
        uint8_t *raw = random_raw(all[t], n, &nbytes);
        snprintf(path, sizeof path, "%s/%s.bin", fmt_tmpdir(), bipo_dtype_name(all[t]));
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(raw, 1, nbytes, f) == nbytes && fclose(f) == 0, "write %s", path);
        free(raw);
        strcat(args, " ");
        strcat(args, bipo_dtype_name(all[t]));
    }
    int rc = fmt_run_ref(PY, "raw '%s'%s", fmt_tmpdir(), args);
    if (rc == 77) {
        printf("SKIP dequantization reference: the gguf Python package is missing (scripts/setup)\n");
        ref_ok = 0;
        return;
    }
    EXPECT(rc == 0, "dequant_ref.py raw exited %d", rc);
    for (size_t t = 0; t < NT && rc == 0; t++) {
        const char *name = bipo_dtype_name(all[t]);
        size_t len, nref = 0;
        snprintf(path, sizeof path, "%s/%s.bin", fmt_tmpdir(), name);
        char *raw = bipo_read_file(path, &len);
        snprintf(path, sizeof path, "%s/%s.f32", fmt_tmpdir(), name);
        float *want = fmt_read_f32(path, &nref), *got = xmalloc(n * sizeof(float));
        EXPECT(want && nref == n, "%s: reference has %zu elements, want %zu", name, nref, n);
        EXPECT(bipo_dequantize(got, raw, all[t], n) == 0, "dequantize %s: %s", name, bipo_last_error());
        if (want && nref == n) {
            char what[64];
            snprintf(what, sizeof what, "dequantize %s vs gguf-py", name);
            fmt_bits_equal(what, got, want, n);
        }
        free(raw);
        free(want);
        free(got);
    }
}

// ---- quantizers: bytes vs gguf-py's quantize(), and the round-trip error bound -------------
static void test_quantize(void) {
    static const uint32_t qt[] = {BIPO_DT_Q8_0, BIPO_DT_Q4_0, BIPO_DT_Q4_1, BIPO_DT_Q5_0,
                                  BIPO_DT_Q5_1, BIPO_DT_F16, BIPO_DT_BF16};
    const size_t NQ = sizeof qt / sizeof qt[0], nb = 512, n = nb * 32;
    float *x = xmalloc(n * sizeof(float)), *y = xmalloc(n * sizeof(float));
    tl_seed(99);
    for (size_t b = 0; b < nb; b++) { // per-block magnitudes from 1e-3 to 10; one zero block
        float scale = b == 7 ? 0.0f : powf(10.0f, 2.0f * tl_randf() - 1.0f) * ((b % 3) ? 1.0f : 0.01f);
        float shift = (b % 5 == 0) ? 3.0f * scale : 0.0f; // some blocks all positive
        for (size_t j = 0; j < 32; j++) x[b * 32 + j] = scale * tl_randf() + shift;
    }
    char args[256] = "", path[256];
    uint8_t *q[8];
    size_t qn[8];
    for (size_t t = 0; t < NQ; t++) {
        const char *name = bipo_dtype_name(qt[t]);
        q[t] = xmalloc(bipo_dtype_nbytes(qt[t], n));
        qn[t] = bipo_quantize(q[t], x, qt[t], n);
        EXPECT(qn[t] == bipo_dtype_nbytes(qt[t], n), "quantize %s wrote %zu bytes", name, qn[t]);
        EXPECT(bipo_dequantize(y, q[t], qt[t], n) == 0, "dequantize %s", name);
        // Bound per block, from the quantizer's own scale d (and min m): half a step (a full
        // step for the symmetric types, whose value -max is clamped to the last level) plus
        // what storing d and m as f16 costs: qmax * |d - f16(d)| + |m - f16(m)|. Subnormal f16
        // scales (blocks of ~1e-3) make the second term dominate, as they do in ggml.
        size_t bad = 0;
        double worst = 0;
        for (size_t b = 0; b < nb; b++) {
            float mn = x[b * 32], mx = x[b * 32], amax = 0, vmax = 0;
            for (size_t j = 0; j < 32; j++) {
                float v = x[b * 32 + j];
                mn = fminf(mn, v), mx = fmaxf(mx, v);
                if (fabsf(v) > amax) amax = fabsf(v), vmax = v;
            }
            double d = 0, step_frac = 0.5, qmax = 0, em = 0;
            switch (qt[t]) {
            case BIPO_DT_Q8_0: d = amax / 127.0f, qmax = 127; break;
            case BIPO_DT_Q4_0: d = vmax / -8.0f, qmax = 8, step_frac = 1; break;
            case BIPO_DT_Q5_0: d = vmax / -16.0f, qmax = 16, step_frac = 1; break;
            case BIPO_DT_Q4_1: d = (mx - mn) / 15.0f, qmax = 15; break;
            case BIPO_DT_Q5_1: d = (mx - mn) / 31.0f, qmax = 31; break;
            }
            if (qt[t] == BIPO_DT_Q4_1 || qt[t] == BIPO_DT_Q5_1)
                em = fabs(mn - bipo_f16_to_f32(bipo_f32_to_f16(mn)));
            double ed = fabs(d - bipo_f16_to_f32(bipo_f32_to_f16((float)d)));
            double bound = 1.001 * (step_frac * fabs(d) + qmax * ed + em) + 1e-12;
            if (qt[t] == BIPO_DT_F16) bound = amax * 0x1p-11 + 0x1p-25;
            if (qt[t] == BIPO_DT_BF16) bound = amax * 0x1p-8;
            for (size_t j = 0; j < 32; j++) {
                double e = fabs((double)y[b * 32 + j] - x[b * 32 + j]);
                if (e > bound) bad++;
                if (bound > 0 && e / bound > worst) worst = e / bound;
            }
        }
        EXPECT(bad == 0, "quantize %s round trip: %zu elements beyond the bound (worst %.2fx)", name,
               bad, worst);
        snprintf(path, sizeof path, "%s/%s.in", fmt_tmpdir(), name);
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(x, 4, n, f) == n && fclose(f) == 0, "write %s", path);
        strcat(args, " ");
        strcat(args, name);
    }
    EXPECT(bipo_quantize(y, x, BIPO_DT_Q4_K, 256) == 0, "Q4_K has no quantizer: must return 0");
    if (ref_ok) {
        int rc = fmt_run_ref(PY, "quant '%s'%s", fmt_tmpdir(), args);
        EXPECT(rc == 0, "dequant_ref.py quant exited %d", rc);
        for (size_t t = 0; t < NQ && rc == 0; t++) {
            const char *name = bipo_dtype_name(qt[t]);
            size_t len;
            snprintf(path, sizeof path, "%s/%s.q", fmt_tmpdir(), name);
            char *ref = bipo_read_file(path, &len);
            size_t diff = 0;
            if (ref && len == qn[t])
                for (size_t i = 0; i < len; i++) diff += ref[i] != (char)q[t][i];
            EXPECT(ref && len == qn[t] && diff == 0,
                   "quantize %s: %zu of %zu bytes differ from gguf-py (reference: %zu bytes)",
                   name, diff, qn[t], len);
            free(ref);
        }
    }
    for (size_t t = 0; t < NQ; t++) free(q[t]);
    free(x);
    free(y);
}

// ---- real files -----------------------------------------------------------------------------
static void test_vocab_files(void) {
    glob_t gl;
    char pat[1024];
    snprintf(pat, sizeof pat, "%s/llama.cpp-vocab/*.gguf", BIPO_SHARED_DATA);
    int grc = glob(pat, 0, NULL, &gl);
    EXPECT(grc == 0 && gl.gl_pathc >= 2, "no vocab GGUFs under %s", pat);
    if (grc) return;
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        gguf_file g;
        const char *p = gl.gl_pathv[i];
        EXPECT(gguf_is_gguf_path(p), "%s: not recognized as GGUF", p);
        if (gguf_open(&g, p)) {
            EXPECT(0, "open %s: %s", p, bipo_last_error());
            continue;
        }
        EXPECT(g.n_tensors == 0, "%s: vocab-only file has %llu tensors", p,
               (unsigned long long)g.n_tensors);
        gguf_str model;
        EXPECT(gguf_get_str(&g, "tokenizer.ggml.model", &model) == 0 && model.len > 0,
               "%s: tokenizer.ggml.model", p);
        if (ref_ok) fmt_check_meta(PY, &g, p);
        if (strstr(p, "llama-spm")) {
            uint64_t n = 0;
            gguf_get_array(&g, "tokenizer.ggml.tokens", GGUF_T_STRING, &n);
            const gguf_kv *sc = gguf_get_array(&g, "tokenizer.ggml.scores", GGUF_T_FLOAT32, NULL);
            EXPECT(n == 32000 && sc && sc->arr_n == n, "llama-spm: 32000 tokens with scores");
        }
        gguf_close(&g);
    }
    globfree(&gl);
    EXPECT(!gguf_is_gguf_path(BIPO_TEST_DIR "/dequant_ref.py"), "a .py file is not a GGUF");
}

static void test_default_model(void) {
    const char *path = BIPO_DEFAULT_MODEL;
    if (!bipo_file_exists(path)) {
        printf("SKIP default model checks: %s not found (run scripts/fetch-model)\n", path);
        return;
    }
    gguf_file g;
    if (gguf_open(&g, path)) {
        EXPECT(0, "open %s: %s", path, bipo_last_error());
        return;
    }
    EXPECT(g.n_tensors == 272, "default model: %llu tensors, want 272", (unsigned long long)g.n_tensors);
    EXPECT(g.version == 3 && g.alignment == 32, "version %u alignment %llu", g.version,
           (unsigned long long)g.alignment);
    uint64_t u = 0;
    double f = 0;
    gguf_str s;
    EXPECT(gguf_get_u64(&g, "llama.block_count", &u) == 0 && u == 30, "block_count %llu", (unsigned long long)u);
    EXPECT(gguf_get_u64(&g, "llama.embedding_length", &u) == 0 && u == 576, "embedding_length");
    EXPECT(gguf_get_u64(&g, "llama.attention.head_count", &u) == 0 && u == 9, "head_count");
    EXPECT(gguf_get_u64(&g, "llama.attention.head_count_kv", &u) == 0 && u == 3, "head_count_kv");
    EXPECT(gguf_get_f64(&g, "llama.rope.freq_base", &f) == 0 && f == 100000.0, "freq_base %g", f);
    EXPECT(gguf_get_str(&g, "general.architecture", &s) == 0 && s.len == 5 && !memcmp(s.ptr, "llama", 5),
           "general.architecture");
    EXPECT(gguf_get_u64(&g, "no.such.key", &u) == 1, "missing key -> 1");
    EXPECT(gguf_get_str(&g, "llama.block_count", &s) == -1 &&
               strstr(bipo_last_error(), "llama.block_count") && strstr(bipo_last_error(), path),
           "wrong type -> -1 naming file and key: %s", bipo_last_error());
    int b = -1;
    EXPECT(gguf_get_bool(&g, "tokenizer.ggml.add_bos_token", &b) == 0 && (b == 0 || b == 1), "bool");
    const gguf_kv *tt = gguf_get_array(&g, "tokenizer.ggml.token_type", GGUF_T_INT32, &u);
    EXPECT(tt && u == 49152 && gguf_array_i64(tt, 0) == 3, "token_type[0] = control");
    EXPECT(gguf_get_array(&g, "tokenizer.ggml.tokens", GGUF_T_FLOAT32, NULL) == NULL,
           "string array asked as numbers must fail");
    if (ref_ok) fmt_check_meta(PY, &g, path);

    const gguf_tensor *te = gguf_find_tensor(&g, "token_embd.weight");
    EXPECT(te && te->type == BIPO_DT_Q8_0 && te->ne[0] == 576 && te->ne[1] == 49152,
           "token_embd.weight is Q8_0 [576, 49152]");
    bipo_tensor_dir d;
    EXPECT(bipo_tensor_dir_from_gguf(&d, &g) == 0 && d.n == 272, "tensor dir from gguf");
    const bipo_tensor_info *ti = bipo_tensor_dir_find(&d, "blk.0.ffn_down.weight");
    EXPECT(ti && ti->ndim == 2 && ti->shape[0] == 576 && ti->shape[1] == 1536 &&
               ti->numel == 576 * 1536 && ti->dtype == BIPO_DT_Q4_1 && ti->file == g.path,
           "blk.0.ffn_down.weight in HF order [576, 1536] Q4_1");
    bipo_tensor_dir_free(&d);

    static const char *names[] = {"token_embd.weight", "blk.0.ffn_down.weight",
                                  "blk.29.attn_q.weight", "output_norm.weight"};
    const size_t NN = sizeof names / sizeof names[0];
    if (ref_ok) {
        int rc = fmt_run_ref(PY, "gguf '%s' '%s' %s %s %s %s", path, fmt_tmpdir(), names[0],
                             names[1], names[2], names[3]);
        EXPECT(rc == 0, "dequant_ref.py gguf exited %d", rc);
        for (size_t i = 0; i < NN && rc == 0; i++) {
            const gguf_tensor *t = gguf_find_tensor(&g, names[i]);
            char p[512];
            size_t nref = 0;
            snprintf(p, sizeof p, "%s/%s.f32", fmt_tmpdir(), names[i]);
            float *want = fmt_read_f32(p, &nref);
            size_t n = t ? (size_t)(t->ne[0] * t->ne[1]) : 0;
            float *got = xmalloc((n ? n : 1) * sizeof(float));
            EXPECT(t && want && nref == n, "%s: %zu reference elements, want %zu", names[i], nref, n);
            if (t && want && nref == n) {
                double t0 = bipo_now();
                EXPECT(bipo_dequantize(got, t->data, t->type, n) == 0, "dequantize %s", names[i]);
                double dt = bipo_now() - t0;
                if (i == 0)
                    printf("  dequantize %s (%s, %zu elements): %.1f ms, %.2f GB/s out\n", names[i],
                           bipo_dtype_name(t->type), n, dt * 1e3, n * 4.0 / dt / 1e9);
                char what[128];
                snprintf(what, sizeof what, "%s (%s) vs gguf-py", names[i], bipo_dtype_name(t->type));
                fmt_bits_equal(what, got, want, n);
            }
            free(want);
            free(got);
        }
    }
    gguf_close(&g);
}

int main(int argc, char **argv) {
    PY = argc > 1 ? argv[1] : "/usr/bin/python3";
    test_dtype_table();
    test_dequant_vs_reference();
    test_quantize();
    test_vocab_files();
    test_default_model();
    fmt_tmp_cleanup();
    return tl_summary("test_formats");
}
