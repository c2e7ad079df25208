// workers/gguf.c — GGUF v2/v3 reader over a read-only mmap (little-endian files only).
//
// File layout (all integers little endian):
//   u32 magic "GGUF" | u32 version (2 or 3) | u64 n_tensors | u64 n_kv
//   n_kv x { string key | u32 value_type | value }
//       string = u64 len | len bytes (no NUL)
//       array  = u32 elem_type | u64 count | count elements (strings or fixed-size scalars)
//   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   padding to general.alignment (default 32)
//   data section: tensor i lives at data_start + offset_i (offset_i a multiple of alignment)
//
// Every read goes through a cursor that checks the remaining bytes first, so a damaged file
// can only produce an error message ("<path>: <field>: <what> — <hint>"), never a fault.
#include "gguf.h" // defines: gguf_file, gguf_kv, gguf_tensor (implemented here)

#include <stdlib.h>
#include <string.h>

#include "tensors.h" // defines: bipo_tensor_dir, bipo_tensor_info, bipo_dtype_nbytes
#include "util.h" // defines: bipo_set_error, xmalloc, xcalloc, xstrdup

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_HEADER_BYTES 24      // magic, version, n_tensors, n_kv
#define GGUF_MIN_KV_BYTES 13      // u64 key len + u32 type + 1-byte value
#define GGUF_MIN_TENSOR_BYTES 32  // u64 name len + u32 n_dims + u64 ne + u32 type + u64 offset
#define GGUF_SMALL_COUNT 1024     // counts up to this are allocated without the size pre-check
#define TRUNC_HINT "the file is truncated or corrupt; re-download it"

typedef struct {
    const uint8_t *base;
    size_t size, pos;
    const char *path;
    char field[320]; // what is being read, for messages: "kv[3] 'general.name'"
} cursor;

static int need(cursor *c, uint64_t n, const char *what) {
    if (n > c->size - c->pos) {
        bipo_set_error("%s: %s: %s (%llu bytes at byte %zu) runs past the end of the file "
                       "(%zu bytes) — %s", c->path, c->field, what, (unsigned long long)n,
                       c->pos, c->size, TRUNC_HINT);
        return -1;
    }
    return 0;
}
static int rd_bytes(cursor *c, void *out, size_t n, const char *what) {
    if (need(c, n, what)) return -1;
    memcpy(out, c->base + c->pos, n); // little-endian host assumed (x86-64, aarch64)
    c->pos += n;
    return 0;
}
static int rd_u32(cursor *c, uint32_t *v, const char *what) { return rd_bytes(c, v, 4, what); }
static int rd_u64(cursor *c, uint64_t *v, const char *what) { return rd_bytes(c, v, 8, what); }
static int rd_str(cursor *c, gguf_str *s, const char *what) {
    uint64_t len;
    if (rd_u64(c, &len, what)) return -1;
    char buf[96];
    snprintf(buf, sizeof buf, "%s of length %llu", what, (unsigned long long)len);
    if (need(c, len, buf)) return -1;
    s->ptr = (const char *)c->base + c->pos;
    s->len = len;
    c->pos += (size_t)len;
    return 0;
}
static char *str_dup(gguf_str s) {
    char *r = xmalloc((size_t)s.len + 1);
    memcpy(r, s.ptr, (size_t)s.len);
    r[s.len] = 0;
    return r;
}

static size_t vtype_size(uint32_t t) {
    switch (t) {
    case GGUF_T_UINT8: case GGUF_T_INT8: case GGUF_T_BOOL: return 1;
    case GGUF_T_UINT16: case GGUF_T_INT16: return 2;
    case GGUF_T_UINT32: case GGUF_T_INT32: case GGUF_T_FLOAT32: return 4;
    case GGUF_T_UINT64: case GGUF_T_INT64: case GGUF_T_FLOAT64: return 8;
    default: return 0; // string, array, unknown
    }
}
static const char *vtype_name(uint32_t t) {
    static const char *names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32",
                                  "float32", "bool", "string", "array", "uint64", "int64",
                                  "float64"};
    return t <= GGUF_T_FLOAT64 ? names[t] : "unknown";
}
static int vtype_is_int(uint32_t t) {
    return t <= GGUF_T_INT32 || t == GGUF_T_UINT64 || t == GGUF_T_INT64;
}
static int vtype_is_signed(uint32_t t) {
    return t == GGUF_T_INT8 || t == GGUF_T_INT16 || t == GGUF_T_INT32 || t == GGUF_T_INT64;
}

// Widen one little-endian scalar of type t at p into i/u/f.
static void scalar_widen(uint32_t t, const uint8_t *p, int64_t *i, uint64_t *u, double *f) {
    int64_t iv = 0;
    uint64_t uv = 0;
    double fv = 0;
    switch (t) {
    case GGUF_T_UINT8: case GGUF_T_BOOL: uv = p[0]; break;
    case GGUF_T_INT8: iv = (int8_t)p[0]; break;
    case GGUF_T_UINT16: { uint16_t v; memcpy(&v, p, 2); uv = v; } break;
    case GGUF_T_INT16: { int16_t v; memcpy(&v, p, 2); iv = v; } break;
    case GGUF_T_UINT32: { uint32_t v; memcpy(&v, p, 4); uv = v; } break;
    case GGUF_T_INT32: { int32_t v; memcpy(&v, p, 4); iv = v; } break;
    case GGUF_T_UINT64: memcpy(&uv, p, 8); break;
    case GGUF_T_INT64: memcpy(&iv, p, 8); break;
    case GGUF_T_FLOAT32: { float v; memcpy(&v, p, 4); fv = v; } break;
    case GGUF_T_FLOAT64: memcpy(&fv, p, 8); break;
    }
    if (t == GGUF_T_FLOAT32 || t == GGUF_T_FLOAT64) {
        int in_range = fv > -9.2e18 && fv < 9.2e18; // NaN and huge values: no UB cast
        iv = in_range ? (int64_t)fv : 0;
        uv = in_range && fv > 0 ? (uint64_t)fv : 0;
    } else if (vtype_is_signed(t)) {
        uv = (uint64_t)iv;
        fv = (double)iv;
    } else {
        iv = (int64_t)uv;
        fv = (double)uv;
    }
    if (i) *i = iv;
    if (u) *u = uv;
    if (f) *f = fv;
}

static int read_kv(cursor *c, gguf_kv *kv, uint64_t idx) {
    gguf_str key;
    snprintf(c->field, sizeof c->field, "kv[%llu]", (unsigned long long)idx);
    if (rd_str(c, &key, "key string")) return -1;
    kv->key = str_dup(key);
    snprintf(c->field, sizeof c->field, "kv[%llu] '%.200s'", (unsigned long long)idx, kv->key);
    uint32_t t;
    if (rd_u32(c, &t, "value type")) return -1;
    if (t > GGUF_T_FLOAT64) {
        bipo_set_error("%s: %s: unknown value type %u (GGUF defines 0..12) — the file is "
                       "corrupt or from a newer GGUF version", c->path, c->field, t);
        return -1;
    }
    kv->type = (gguf_vtype)t;
    if (t == GGUF_T_STRING) return rd_str(c, &kv->s, "string value");
    if (t != GGUF_T_ARRAY) {
        size_t sz = vtype_size(t);
        if (need(c, sz, "value")) return -1;
        scalar_widen(t, c->base + c->pos, &kv->i, &kv->u, &kv->f);
        c->pos += sz;
        return 0;
    }
    uint32_t et;
    uint64_t n;
    if (rd_u32(c, &et, "array element type") || rd_u64(c, &n, "array count")) return -1;
    if (et == GGUF_T_ARRAY || et > GGUF_T_FLOAT64) {
        bipo_set_error("%s: %s: array element type %u (%s) is not supported (arrays of "
                       "scalars or strings only)", c->path, c->field, et, vtype_name(et));
        return -1;
    }
    kv->arr_type = (gguf_vtype)et;
    kv->arr_n = n;
    size_t left = c->size - c->pos;
    if (et == GGUF_T_STRING) {
        if (n > left / 8) { // every string needs at least its u64 length
            bipo_set_error("%s: %s: array of %llu strings cannot fit in the %zu bytes left "
                           "in the file — %s", c->path, c->field, (unsigned long long)n, left,
                           TRUNC_HINT);
            return -1;
        }
        kv->arr_str = xmalloc((n ? n : 1) * sizeof(gguf_str));
        for (uint64_t k = 0; k < n; k++) {
            char what[64];
            snprintf(what, sizeof what, "string [%llu]", (unsigned long long)k);
            if (rd_str(c, &kv->arr_str[k], what)) return -1;
        }
        return 0;
    }
    size_t es = vtype_size(et);
    if (n > left / es) { // guards count*elemsize overflow too
        bipo_set_error("%s: %s: array of %llu %s elements runs past the end of the file (%zu "
                       "bytes left) — %s", c->path, c->field, (unsigned long long)n,
                       vtype_name(et), left, TRUNC_HINT);
        return -1;
    }
    kv->arr = c->base + c->pos;
    c->pos += (size_t)(n * es);
    return 0;
}

static int read_tensor_info(cursor *c, gguf_tensor *t, uint64_t idx) {
    gguf_str name;
    snprintf(c->field, sizeof c->field, "tensor[%llu]", (unsigned long long)idx);
    if (rd_str(c, &name, "name string")) return -1;
    t->name = str_dup(name);
    snprintf(c->field, sizeof c->field, "tensor '%.200s'", t->name);
    if (rd_u32(c, &t->n_dims, "n_dims")) return -1;
    if (t->n_dims < 1 || t->n_dims > 4) {
        bipo_set_error("%s: %s: n_dims = %u (must be 1..4) — the file is corrupt", c->path,
                       c->field, t->n_dims);
        return -1;
    }
    for (int d = 0; d < 4; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++)
        if (rd_u64(c, &t->ne[d], "ne[]")) return -1;
    return rd_u32(c, &t->type, "ggml type") || rd_u64(c, &t->offset, "data offset") ? -1 : 0;
}

// Shapes, types and data ranges of one tensor against the file (after data_start is known).
static int check_tensor(gguf_file *g, gguf_tensor *t, size_t data_start) {
    const char *P = g->path;
    uint64_t numel = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX) {
            bipo_set_error("%s: tensor '%s': dimension ne[%u] = %llu is invalid (must be 1..2^63-1) "
                           "— the file is corrupt", P, t->name, d, (unsigned long long)t->ne[d]);
            return -1;
        }
        if (__builtin_mul_overflow(numel, t->ne[d], &numel) || numel > (uint64_t)INT64_MAX) {
            bipo_set_error("%s: tensor '%s': dimensions overflow (product of ne[] exceeds 2^63) "
                           "— the file is corrupt", P, t->name);
            return -1;
        }
    }
    size_t blk = bipo_dtype_block(t->type);
    if (!blk) {
        bipo_set_error("%s: tensor '%s': ggml type %u is not supported (supported: F32 F16 BF16 "
                       "Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K) — re-quantize the model to "
                       "one of these", P, t->name, t->type);
        return -1;
    }
    if (t->ne[0] % blk) {
        bipo_set_error("%s: tensor '%s': row length ne[0] = %llu is not a multiple of the %s "
                       "block size %zu — the file is corrupt", P, t->name,
                       (unsigned long long)t->ne[0], bipo_dtype_name(t->type), blk);
        return -1;
    }
    size_t nbytes = bipo_dtype_nbytes(t->type, numel);
    if (!nbytes) {
        bipo_set_error("%s: tensor '%s': %llu elements do not fit in memory", P, t->name,
                       (unsigned long long)numel);
        return -1;
    }
    if (t->offset % g->alignment) {
        bipo_set_error("%s: tensor '%s': data offset %llu is not a multiple of the alignment "
                       "%llu — the file is corrupt", P, t->name, (unsigned long long)t->offset,
                       (unsigned long long)g->alignment);
        return -1;
    }
    uint64_t end;
    if (t->offset > g->size || __builtin_add_overflow((uint64_t)data_start, t->offset, &end) ||
        __builtin_add_overflow(end, (uint64_t)nbytes, &end) || end > g->size) {
        unsigned long long shown = (unsigned long long)data_start + t->offset + nbytes;
        if (t->offset > g->size) shown = (unsigned long long)t->offset;
        bipo_set_error("%s: tensor '%s': data ends at byte %llu past the end of the file (%zu "
                       "bytes) — the file is truncated; re-download it", P, t->name, shown,
                       g->size);
        return -1;
    }
    t->data = (const uint8_t *)g->map + data_start + t->offset;
    t->nbytes = nbytes;
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const gguf_tensor *const *)a)->name, (*(const gguf_tensor *const *)b)->name);
}
static int check_duplicates(gguf_file *g) {
    if (g->n_tensors < 2) return 0;
    gguf_tensor **s = xmalloc(g->n_tensors * sizeof(*s));
    for (uint64_t i = 0; i < g->n_tensors; i++) s[i] = &g->tensors[i];
    qsort(s, g->n_tensors, sizeof(*s), cmp_tensor_name);
    int rc = 0;
    for (uint64_t i = 1; i < g->n_tensors && !rc; i++)
        if (!strcmp(s[i - 1]->name, s[i]->name)) {
            bipo_set_error("%s: tensor '%s': duplicate tensor name (appears more than once) — "
                           "the file is corrupt", g->path, s[i]->name);
            rc = -1;
        }
    free(s);
    return rc;
}

static int parse(gguf_file *g) {
    cursor c = {.base = g->map, .size = g->size, .pos = 0, .path = g->path};
    snprintf(c.field, sizeof c.field, "header");
    if (g->size < GGUF_HEADER_BYTES) {
        if (g->size >= 4 && memcmp(g->map, "GGUF", 4)) goto bad_magic;
        bipo_set_error("%s: header: file is %zu bytes, shorter than a GGUF header (%d bytes) "
                       "— %s", g->path, g->size, GGUF_HEADER_BYTES, TRUNC_HINT);
        return -1;
    }
    if (memcmp(g->map, "GGUF", 4)) goto bad_magic;
    c.pos = 4;
    rd_u32(&c, &g->version, "version");
    if (g->version == 1) {
        bipo_set_error("%s: version: GGUF version 1 is not supported (only versions 2 and 3) "
                       "— re-convert the model with a current llama.cpp", g->path);
        return -1;
    }
    if (g->version != 2 && g->version != 3) {
        const char *be = (g->version & 0xFFFF) == 0 ? " (looks like a big-endian GGUF, which is "
                                                     "not supported)" : "";
        bipo_set_error("%s: version: GGUF version %u is not supported (only versions 2 and "
                       "3)%s", g->path, g->version, be);
        return -1;
    }
    rd_u64(&c, &g->n_tensors, "n_tensors");
    rd_u64(&c, &g->n_kv, "n_kv");
    size_t body = g->size - GGUF_HEADER_BYTES;
    // Counts that cannot fit are refused before allocating; small ones are left to the reader,
    // whose message then names the record where the file was cut.
    if (g->n_kv > body / GGUF_MIN_KV_BYTES && g->n_kv > GGUF_SMALL_COUNT) {
        bipo_set_error("%s: n_kv: %llu key-value pairs cannot fit in a %zu-byte file — the "
                       "file is truncated or the header is corrupt", g->path,
                       (unsigned long long)g->n_kv, g->size);
        return -1;
    }
    g->kv = xcalloc(g->n_kv ? g->n_kv : 1, sizeof(gguf_kv));
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (read_kv(&c, &g->kv[i], i)) return -1;
    if (g->n_tensors > (g->size - c.pos) / GGUF_MIN_TENSOR_BYTES && g->n_tensors > GGUF_SMALL_COUNT) {
        bipo_set_error("%s: n_tensors: %llu tensors cannot fit in the %zu bytes after the "
                       "metadata — the file is truncated or the header is corrupt", g->path,
                       (unsigned long long)g->n_tensors, g->size - c.pos);
        return -1;
    }

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *al = gguf_find(g, "general.alignment");
    if (al) {
        if (!vtype_is_int(al->type) || al->u == 0 || (al->u & (al->u - 1)) || al->u > 1u << 30) {
            bipo_set_error("%s: general.alignment: must be a power-of-two integer (found %s %llu)",
                           g->path, vtype_name(al->type), (unsigned long long)al->u);
            return -1;
        }
        g->alignment = al->u;
    }

    g->tensors = xcalloc(g->n_tensors ? g->n_tensors : 1, sizeof(gguf_tensor));
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (read_tensor_info(&c, &g->tensors[i], i)) return -1;
    size_t data_start = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (check_tensor(g, &g->tensors[i], data_start)) return -1;
    return check_duplicates(g);

bad_magic:;
    const uint8_t *m = g->map;
    char shown[5] = {0};
    for (int k = 0; k < 4 && (size_t)k < g->size; k++)
        shown[k] = (m[k] >= 32 && m[k] < 127) ? (char)m[k] : '?';
    bipo_set_error("%s: magic: expected \"GGUF\", found \"%s\" — not a GGUF file", g->path,
                   shown);
    return -1;
}

int gguf_open(gguf_file *g, const char *path) {
    memset(g, 0, sizeof *g);
    g->path = xstrdup(path);
    g->map = bipo_format_map(path, &g->size);
    if (!g->map) { // bipo_mmap_file names the path; add the field and a hint
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", bipo_last_error());
        bipo_set_error("%s (GGUF model or vocab file: check the path)", msg);
        gguf_close(g);
        return -1;
    }
    if (parse(g)) {
        gguf_close(g);
        return -1;
    }
    return 0;
}

void gguf_close(gguf_file *g) {
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            free(g->kv[i].arr_str);
        }
    if (g->tensors)
        for (uint64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    bipo_format_unmap(g->map, g->size);
    free(g->path);
    memset(g, 0, sizeof *g);
}

int gguf_is_gguf_path(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char m[4];
    int ok = fread(m, 1, 4, f) == 4 && !memcmp(m, "GGUF", 4);
    fclose(f);
    return ok;
}

// ---- lookups and typed getters --------------------------------------------------------------
const gguf_kv *gguf_find(const gguf_file *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && !strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}
const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}
static int wrong_type(const gguf_file *g, const gguf_kv *kv, const char *want) {
    bipo_set_error("%s: %s: expected %s, found %s", g->path, kv->key, want, vtype_name(kv->type));
    return -1;
}
int gguf_get_u64(const gguf_file *g, const char *key, uint64_t *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) return 1;
    if (!vtype_is_int(kv->type)) return wrong_type(g, kv, "an unsigned integer");
    if (vtype_is_signed(kv->type) && kv->i < 0) {
        bipo_set_error("%s: %s: expected a non-negative integer, found %lld", g->path, key,
                       (long long)kv->i);
        return -1;
    }
    *out = kv->u;
    return 0;
}
int gguf_get_i64(const gguf_file *g, const char *key, int64_t *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) return 1;
    if (!vtype_is_int(kv->type)) return wrong_type(g, kv, "an integer");
    if (kv->type == GGUF_T_UINT64 && kv->u > (uint64_t)INT64_MAX) {
        bipo_set_error("%s: %s: value %llu does not fit a signed 64-bit integer", g->path, key,
                       (unsigned long long)kv->u);
        return -1;
    }
    *out = kv->i;
    return 0;
}
int gguf_get_f64(const gguf_file *g, const char *key, double *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) return 1;
    if (kv->type != GGUF_T_FLOAT32 && kv->type != GGUF_T_FLOAT64 && !vtype_is_int(kv->type))
        return wrong_type(g, kv, "a number");
    *out = kv->f;
    return 0;
}
int gguf_get_bool(const gguf_file *g, const char *key, int *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) return 1;
    if (kv->type != GGUF_T_BOOL && !vtype_is_int(kv->type)) return wrong_type(g, kv, "a bool");
    *out = kv->u != 0;
    return 0;
}
int gguf_get_str(const gguf_file *g, const char *key, gguf_str *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) return 1;
    if (kv->type != GGUF_T_STRING) return wrong_type(g, kv, "a string");
    *out = kv->s;
    return 0;
}
// elem_type STRING wants a string array; any numeric elem_type accepts any numeric array
// (elements are read widened through gguf_array_f64/i64, e.g. token_type stored as int32).
const gguf_kv *gguf_get_array(const gguf_file *g, const char *key, gguf_vtype elem_type,
                              uint64_t *n) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) {
        bipo_set_error("%s: %s: key is missing", g->path, key);
        return NULL;
    }
    if (kv->type != GGUF_T_ARRAY) {
        wrong_type(g, kv, "an array");
        return NULL;
    }
    if ((elem_type == GGUF_T_STRING) != (kv->arr_type == GGUF_T_STRING)) {
        bipo_set_error("%s: %s: expected an array of %s, found an array of %s", g->path, key,
                       elem_type == GGUF_T_STRING ? "strings" : "numbers",
                       vtype_name(kv->arr_type));
        return NULL;
    }
    if (n) *n = kv->arr_n;
    return kv;
}
double gguf_array_f64(const gguf_kv *kv, uint64_t i) {
    double f = 0;
    if (i < kv->arr_n && kv->arr_type != GGUF_T_STRING)
        scalar_widen(kv->arr_type, (const uint8_t *)kv->arr + i * vtype_size(kv->arr_type), NULL,
                     NULL, &f);
    return f;
}
int64_t gguf_array_i64(const gguf_kv *kv, uint64_t i) {
    int64_t v = 0;
    if (i < kv->arr_n && kv->arr_type != GGUF_T_STRING)
        scalar_widen(kv->arr_type, (const uint8_t *)kv->arr + i * vtype_size(kv->arr_type), &v,
                     NULL, NULL);
    return v;
}

// ---- a GGUF as a tensor directory (HF shape order; the gguf_file keeps the mapping) ---------
int bipo_tensor_dir_from_gguf(bipo_tensor_dir *d, const gguf_file *g) {
    memset(d, 0, sizeof *d);
    d->t = xcalloc(g->n_tensors ? g->n_tensors : 1, sizeof(bipo_tensor_info));
    d->n = (size_t)g->n_tensors;
    for (size_t i = 0; i < d->n; i++) {
        const gguf_tensor *gt = &g->tensors[i];
        bipo_tensor_info *t = &d->t[i];
        t->name = xstrdup(gt->name);
        t->dtype = gt->type;
        t->ndim = (int)gt->n_dims;
        t->numel = 1;
        for (int k = 0; k < t->ndim; k++) {
            t->shape[k] = gt->ne[t->ndim - 1 - k];
            t->numel *= gt->ne[k];
        }
        for (int k = t->ndim; k < 4; k++) t->shape[k] = 1;
        t->data = gt->data;
        t->nbytes = gt->nbytes;
        t->file = g->path;
    }
    return 0;
}
