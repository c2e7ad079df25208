// tests/test_formats_bad.c — damaged and wrong model files: every open must fail with one
// message naming the file and the field, never crash or read out of bounds. Built twice:
// test_formats_bad and test_formats_bad_asan (AddressSanitizer over an ASan copy of the core).
//
// The GGUF cases start from one small hand-built file whose byte positions are known:
//   [0,24) header | kv[0] general.architecture = "llama" | kv[1] tokenizer.ggml.tokens =
//   ["a","b","c"] | tensor[0] blk.0.attn_q.weight Q8_0 ne [32, 4] @0 (136 B) |
//   tensor[1] output_norm.weight F32 ne [32] @160 (128 B) | pad to 32 | data (288 B)
#include <sys/stat.h>

#include "gguf.h"
#include "tensors.h"
#include "test_formats_common.h"
#include "testmodel.h"

typedef struct {
    uint32_t version;
    uint64_t n_tensors, n_kv;   // header counts (0 = the real ones)
    uint64_t str_len;           // kv[0] string length field (0 = real)
    uint32_t kv1_type;          // kv[1] value type (0 = ARRAY)
    uint32_t arr_type;          // kv[1] element type (0 = STRING)
    uint64_t arr_count;         // kv[1] count (0 = 3)
    uint32_t n_dims0;           // tensor[0] n_dims (0 = 2)
    uint64_t ne0[2];            // tensor[0] ne (0 = real)
    uint32_t type0;             // tensor[0] ggml type (0 = Q8_0)
    const char *name1;          // tensor[1] name (NULL = output_norm.weight)
    uint64_t off1;              // tensor[1] offset (0 = 160)
} gspec;
typedef struct {
    size_t kv0, kv1, infos, info1, data; // byte positions
} gpos;

static void build_gguf(tm_buf *b, const gspec *s, gpos *p) {
    memset(b, 0, sizeof *b);
    tm_put(b, "GGUF", 4);
    tm_put_u32(b, s->version ? s->version : 3);
    tm_put_u64(b, s->n_tensors ? s->n_tensors : 2);
    tm_put_u64(b, s->n_kv ? s->n_kv : 2);
    p->kv0 = b->n;
    tm_put_str(b, "general.architecture");
    tm_put_u32(b, GGUF_T_STRING);
    tm_put_u64(b, s->str_len ? s->str_len : 5);
    tm_put(b, "llama", 5);
    p->kv1 = b->n;
    tm_put_str(b, "tokenizer.ggml.tokens");
    tm_put_u32(b, s->kv1_type ? s->kv1_type : GGUF_T_ARRAY);
    tm_put_u32(b, s->arr_type ? s->arr_type : GGUF_T_STRING);
    tm_put_u64(b, s->arr_count ? s->arr_count : 3);
    tm_put_str(b, "a");
    tm_put_str(b, "b");
    tm_put_str(b, "c");
    p->infos = b->n;
    tm_put_str(b, "blk.0.attn_q.weight");
    tm_put_u32(b, s->n_dims0 ? s->n_dims0 : 2);
    tm_put_u64(b, s->ne0[0] ? s->ne0[0] : 32);
    tm_put_u64(b, s->ne0[1] ? s->ne0[1] : 4);
    tm_put_u32(b, s->type0 ? s->type0 : BIPO_DT_Q8_0);
    tm_put_u64(b, 0);
    p->info1 = b->n;
    tm_put_str(b, s->name1 ? s->name1 : "output_norm.weight");
    tm_put_u32(b, 1);
    tm_put_u64(b, 32);
    tm_put_u32(b, BIPO_DT_F32);
    tm_put_u64(b, s->off1 ? s->off1 : 160);
    tm_pad(b, 32);
    p->data = b->n;
    uint8_t blk[34] = {0x00, 0x3c}; // d = 1.0 (f16), qs = 0
    for (int r = 0; r < 4; r++) tm_put(b, blk, sizeof blk);
    tm_pad(b, 32);
    float one = 1.0f;
    for (int i = 0; i < 32; i++) tm_put(b, &one, 4);
}

static char PATH[512];
// Write bytes [0, n) of b to a fresh file and try to open it as GGUF.
static int open_bytes(const tm_buf *b, size_t n) {
    fmt_path(PATH, sizeof PATH, "case.gguf");
    FILE *f = fopen(PATH, "wb");
    CHECK(f && fwrite(b->p, 1, n, f) == n && fclose(f) == 0, "write %s", PATH);
    gguf_file g;
    int rc = gguf_open(&g, PATH);
    if (rc == 0) gguf_close(&g);
    return rc;
}
static int open_spec(const gspec *s) {
    tm_buf b;
    gpos p;
    build_gguf(&b, s, &p);
    int rc = open_bytes(&b, b.n);
    tm_buf_free(&b);
    return rc;
}

static void test_gguf_valid_base(void) {
    tm_buf b;
    gpos p;
    build_gguf(&b, &(gspec){0}, &p);
    fmt_path(PATH, sizeof PATH, "base.gguf");
    tm_buf_save(&b, PATH);
    gguf_file g;
    int rc = gguf_open(&g, PATH);
    EXPECT(rc == 0, "the undamaged base file must open: %s", bipo_last_error());
    if (rc) return;
    const gguf_tensor *t = gguf_find_tensor(&g, "blk.0.attn_q.weight");
    float x[128];
    EXPECT(t && t->nbytes == 136 && (const uint8_t *)t->data == (const uint8_t *)g.map + p.data,
           "tensor[0] data at the data section start");
    EXPECT(t && bipo_dequantize(x, t->data, t->type, 128) == 0 && x[0] == 0.0f, "dequantize");
    t = gguf_find_tensor(&g, "output_norm.weight");
    EXPECT(t && ((const float *)t->data)[31] == 1.0f, "tensor[1] values");
    gguf_close(&g);
    tm_buf_free(&b);
}

static void test_gguf_bad(void) {
    // missing / empty / not GGUF
    gguf_file g;
    fmt_path(PATH, sizeof PATH, "does-not-exist.gguf");
    EXPECT_FAIL_MSG(gguf_open(&g, PATH), PATH, "cannot open");
    EXPECT(!gguf_is_gguf_path(PATH), "a missing file is not GGUF");
    tm_buf b = {0};
    tm_put(&b, "GGML\x01\0\0\0ABCDEFGHIJKLMNOPQRSTUVWXYZ", 34);
    EXPECT_FAIL_MSG(open_bytes(&b, 0), PATH, "empty");
    EXPECT_FAIL_MSG(open_bytes(&b, b.n), PATH, "magic", "GGML");
    EXPECT_FAIL_MSG(open_bytes(&b, 3), PATH, "header", "truncated");
    tm_buf_free(&b);

    EXPECT_FAIL_MSG(open_spec(&(gspec){.version = 1}), PATH, "version", "version 1");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.version = 0x03000000}), PATH, "version", "big-endian");

    // truncated at several points, one per region
    gpos p;
    build_gguf(&b, &(gspec){0}, &p);
    EXPECT_FAIL_MSG(open_bytes(&b, 20), PATH, "header", "truncated");
    EXPECT_FAIL_MSG(open_bytes(&b, p.kv0 + 30), PATH, "kv[0] 'general.architecture'", "truncated");
    EXPECT_FAIL_MSG(open_bytes(&b, p.kv1 + 40), PATH, "kv[1] 'tokenizer.ggml.tokens'", "truncated");
    EXPECT_FAIL_MSG(open_bytes(&b, p.infos + 10), PATH, "tensor[0]", "truncated");
    EXPECT_FAIL_MSG(open_bytes(&b, p.info1 - 4), PATH, "tensor 'blk.0.attn_q.weight'", "data offset");
    EXPECT_FAIL_MSG(open_bytes(&b, p.data + 100), PATH, "tensor 'blk.0.attn_q.weight'", "past the end of the file");
    EXPECT_FAIL_MSG(open_bytes(&b, b.n - 1), PATH, "tensor 'output_norm.weight'", "past the end of the file", "truncated");
    // every prefix fails cleanly (ASan build: no out-of-bounds read on any of them)
    size_t clean = 0;
    for (size_t n = 1; n < b.n; n++) clean += open_bytes(&b, n) != 0 && strstr(bipo_last_error(), PATH);
    EXPECT(clean == b.n - 1, "all %zu truncations must fail naming the file (%zu did)", b.n - 1, clean);
    // random byte damage: open or fail with a message, never crash
    tl_seed(5);
    size_t failed = 0;
    for (int it = 0; it < 400; it++) {
        tm_buf c = {0};
        tm_put(&c, b.p, b.n);
        for (int k = 0; k < 3; k++) c.p[(size_t)((tl_randf() + 1) * 0.5f * (float)(c.n - 1))] ^= (uint8_t)(1u << (it % 8));
        if (open_bytes(&c, c.n)) failed += strstr(bipo_last_error(), PATH) != NULL;
        tm_buf_free(&c);
    }
    EXPECT(failed > 50, "byte damage: only %zu of 400 damaged files were refused", failed);
    tm_buf_free(&b);

    EXPECT_FAIL_MSG(open_spec(&(gspec){.str_len = 1ull << 40}), PATH,
                    "kv[0] 'general.architecture'", "string value", "past the end of the file");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.n_tensors = 1ull << 40}), PATH, "n_tensors", "cannot fit");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.n_kv = UINT64_MAX}), PATH, "n_kv", "cannot fit");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.n_kv = 5000}), PATH, "n_kv", "cannot fit");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.n_tensors = 5000}), PATH, "n_tensors", "cannot fit");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.n_kv = 3}), PATH, "corrupt"); // infos misread as a kv
    EXPECT_FAIL_MSG(open_spec(&(gspec){.arr_count = 1ull << 40}), PATH, "kv[1]", "strings cannot fit");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.arr_type = GGUF_T_UINT32, .arr_count = 1ull << 62}), PATH,
                    "kv[1]", "uint32", "past the end");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.arr_type = GGUF_T_ARRAY}), PATH, "kv[1]", "array element type");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.kv1_type = 13}), PATH, "kv[1]", "value type 13");
    const char *tq = "tensor 'blk.0.attn_q.weight'";
    EXPECT_FAIL_MSG(open_spec(&(gspec){.n_dims0 = 5}), PATH, tq, "n_dims");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.ne0 = {32, 1ull << 63}}), PATH, tq, "ne[1]");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.ne0 = {32, 1ull << 62}}), PATH, tq, "overflow");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.ne0 = {32, 1ull << 40}}), PATH, tq, "past the end of the file");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.ne0 = {33, 4}}), PATH, tq, "block size 32");
    // zero dimension: n_dims 2 with ne[1] patched to 0 after building
    build_gguf(&b, &(gspec){0}, &p);
    memset(b.p + p.infos + 8 + strlen("blk.0.attn_q.weight") + 4 + 8, 0, 8);
    EXPECT_FAIL_MSG(open_bytes(&b, b.n), PATH, tq, "ne[1] = 0");
    tm_buf_free(&b);
    EXPECT_FAIL_MSG(open_spec(&(gspec){.type0 = 10}), PATH, tq, "ggml type 10", "supported: F32");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.type0 = 999}), PATH, tq, "ggml type 999");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.name1 = "blk.0.attn_q.weight"}), PATH, tq, "duplicate");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.off1 = 161}), PATH, "tensor 'output_norm.weight'", "alignment");
    EXPECT_FAIL_MSG(open_spec(&(gspec){.off1 = 1ull << 63}), PATH, "tensor 'output_norm.weight'",
                    "past the end of the file");
}

// ---- safetensors ----------------------------------------------------------------------------
// <dir>/<name>: u64 header length (hlen_field, or the real length when 0) + header + data.
static void st_write(const char *path, const char *header, uint64_t hlen_field, size_t data_len) {
    tm_buf b = {0};
    tm_put_u64(&b, hlen_field ? hlen_field : strlen(header));
    tm_put(&b, header, strlen(header));
    for (size_t i = 0; i < data_len; i++) tm_put(&b, "\0", 1);
    CHECK(tm_buf_save(&b, path) == 0, "write %s", path);
    tm_buf_free(&b);
}
static int st_open(const char *header, uint64_t hlen_field, size_t data_len) {
    fmt_path(PATH, sizeof PATH, "case.safetensors");
    st_write(PATH, header, hlen_field, data_len);
    bipo_tensor_dir d;
    memset(&d, 0, sizeof d);
    int rc = bipo_safetensors_open_file(&d, PATH);
    bipo_tensor_dir_free(&d);
    return rc;
}

static void test_safetensors_bad(void) {
    const char *ok = "{\"__metadata__\":{\"format\":\"pt\"},"
                     "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}";
    EXPECT(st_open(ok, 0, 24) == 0, "valid safetensors must open: %s", bipo_last_error());
    EXPECT_FAIL_MSG(st_open(ok, 0, 23), PATH, "tensor 'w'", "data_offsets", "past the end");
    EXPECT_FAIL_MSG(st_open(ok, 4096, 24), PATH, "header length", "past the end of the file");
    EXPECT_FAIL_MSG(st_open(ok, 1ull << 60, 24), PATH, "header length", "absurd");
    EXPECT_FAIL_MSG(st_open("{\"w\": {\"dtype\": \"F32\",\n \"shape\": [2,3", 0, 24), PATH,
                    "JSON header", "line 2");
    EXPECT_FAIL_MSG(st_open("[1,2]", 0, 0), PATH, "JSON header", "not a JSON object");
    EXPECT_FAIL_MSG(st_open("{\"w\":{\"dtype\":\"I8\",\"shape\":[6],\"data_offsets\":[0,6]}}", 0, 8),
                    PATH, "tensor 'w'", "dtype I8", "supported");
    EXPECT_FAIL_MSG(st_open("{\"w\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 0, 8),
                    PATH, "tensor 'w'", "dtype F64");
    EXPECT_FAIL_MSG(st_open("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 0, 24),
                    PATH, "tensor 'w'", "data_offsets", "shape");
    EXPECT_FAIL_MSG(st_open("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[24,0]}}", 0, 24),
                    PATH, "tensor 'w'", "end before they begin");
    EXPECT_FAIL_MSG(st_open("{\"w\":{\"dtype\":\"F16\",\"shape\":[4294967296,4294967296],"
                            "\"data_offsets\":[0,8]}}", 0, 8), PATH, "tensor 'w'", "shape");
    EXPECT_FAIL_MSG(st_open("{\"w\":{\"dtype\":\"F16\",\"shape\":[-1],\"data_offsets\":[0,2]}}", 0, 2),
                    PATH, "tensor 'w'", "shape[0]");
    fmt_path(PATH, sizeof PATH, "short.safetensors");
    FILE *f = fopen(PATH, "wb");
    CHECK(f && fwrite("abc", 1, 3, f) == 3 && fclose(f) == 0, "write");
    bipo_tensor_dir d;
    memset(&d, 0, sizeof d);
    EXPECT_FAIL_MSG(bipo_safetensors_open_file(&d, PATH), PATH, "header length", "truncated");

    // directories
    char dir[512], p2[700];
    fmt_path(dir, sizeof dir, "no-such-model");
    EXPECT_FAIL_MSG(bipo_safetensors_open_dir(&d, dir), dir, "does not exist", "config.json");
    fmt_path(dir, sizeof dir, "empty-model");
    mkdir(dir, 0755);
    EXPECT_FAIL_MSG(bipo_safetensors_open_dir(&d, dir), dir, "model.safetensors.index.json", "config.json");
    // sharded: shard 1 exists, shard 2 is missing
    fmt_path(dir, sizeof dir, "sharded-model");
    mkdir(dir, 0755);
    snprintf(p2, sizeof p2, "%s/model-00001-of-00002.safetensors", dir);
    st_write(p2, ok, 0, 24);
    snprintf(p2, sizeof p2, "%s/model.safetensors.index.json", dir);
    f = fopen(p2, "w");
    CHECK(f, "write %s", p2);
    fprintf(f, "{\"metadata\":{},\"weight_map\":{\"w\":\"model-00001-of-00002.safetensors\","
               "\"v\":\"model-00002-of-00002.safetensors\"}}");
    fclose(f);
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", dir);
    EXPECT_FAIL_MSG(bipo_safetensors_open_dir(&d, dir), p2, "missing", "index.json", "'v'");
    // the index names a tensor the shard does not hold
    st_write(p2, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4);
    EXPECT_FAIL_MSG(bipo_safetensors_open_dir(&d, dir), "index.json", "weight_map", "'v'");
    // a tensor in two shards
    st_write(p2, ok, 0, 24);
    EXPECT_FAIL_MSG(bipo_safetensors_open_dir(&d, dir), p2, "tensor 'w'", "duplicate");
    // an index that escapes the directory
    snprintf(p2, sizeof p2, "%s/model.safetensors.index.json", dir);
    f = fopen(p2, "w");
    CHECK(f, "write %s", p2);
    fprintf(f, "{\"weight_map\":{\"w\":\"../x.safetensors\"}}");
    fclose(f);
    EXPECT_FAIL_MSG(bipo_safetensors_open_dir(&d, dir), p2, "weight_map", "'w'");
    f = fopen(p2, "w");
    CHECK(f, "write %s", p2);
    fprintf(f, "{\"weight_map\": {\"w\": ");
    fclose(f);
    EXPECT_FAIL_MSG(bipo_safetensors_open_dir(&d, dir), p2, "line 1");
}

int main(void) {
    test_gguf_valid_base();
    test_gguf_bad();
    test_safetensors_bad();
    fmt_tmp_cleanup();
#if defined(__SANITIZE_ADDRESS__)
    return tl_summary("test_formats_bad_asan");
#else
    return tl_summary("test_formats_bad");
#endif
}
