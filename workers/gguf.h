// workers/gguf.h — GGUF v2/v3 reader (mmap). Metadata for model config and tokenizers,
// tensor directory for the weight loader. Every offset, length and count is validated
// against the file size at open: a damaged file gives one error naming the file and field.
#ifndef BIPO_GGUF_H
#define BIPO_GGUF_H
#include <stddef.h>
#include <stdint.h>

typedef enum {
    GGUF_T_UINT8 = 0, GGUF_T_INT8 = 1, GGUF_T_UINT16 = 2, GGUF_T_INT16 = 3,
    GGUF_T_UINT32 = 4, GGUF_T_INT32 = 5, GGUF_T_FLOAT32 = 6, GGUF_T_BOOL = 7,
    GGUF_T_STRING = 8, GGUF_T_ARRAY = 9, GGUF_T_UINT64 = 10, GGUF_T_INT64 = 11,
    GGUF_T_FLOAT64 = 12,
} gguf_vtype;

typedef struct {
    const char *ptr; // points into the mapping, NOT NUL-terminated
    uint64_t len;
} gguf_str;

typedef struct {
    char *key;        // NUL-terminated copy
    gguf_vtype type;
    // scalars (any integer type widened; bool as 0/1; floats as double)
    int64_t i;
    uint64_t u;
    double f;
    gguf_str s;          // type == STRING
    gguf_vtype arr_type; // type == ARRAY
    uint64_t arr_n;
    const void *arr;     // numeric arrays: raw little-endian elements in the mapping
    gguf_str *arr_str;   // string arrays: arr_n entries (allocated at open)
} gguf_kv;

typedef struct {
    char *name;       // NUL-terminated copy
    uint32_t n_dims;  // 1..4
    uint64_t ne[4];   // GGML order: ne[0] is the fastest-varying (row length); unused = 1
    uint32_t type;    // ggml type id (see workers/tensors.h)
    uint64_t offset;  // relative to the data section
    const void *data; // in the mapping
    size_t nbytes;
} gguf_tensor;

typedef struct {
    char *path;
    void *map;
    size_t size;
    uint32_t version;
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    uint64_t alignment;
} gguf_file;

// 0 on success; -1 and bipo_set_error("<path>: <field>: <what> (hint)") on any defect.
int gguf_open(gguf_file *g, const char *path);
void gguf_close(gguf_file *g);
int gguf_is_gguf_path(const char *path); // file exists and starts with the "GGUF" magic

const gguf_kv *gguf_find(const gguf_file *g, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name);
// Typed getters: return 0 and set *out when the key exists with a compatible type,
// 1 when missing (out untouched), -1 + bipo_set_error when present with a wrong type.
int gguf_get_u64(const gguf_file *g, const char *key, uint64_t *out); // any unsigned/signed>=0 int
int gguf_get_i64(const gguf_file *g, const char *key, int64_t *out);
int gguf_get_f64(const gguf_file *g, const char *key, double *out);   // float32/64 or int
int gguf_get_bool(const gguf_file *g, const char *key, int *out);
int gguf_get_str(const gguf_file *g, const char *key, gguf_str *out);
// Arrays: *n = element count; strings via kv->arr_str; numeric via the element getter.
const gguf_kv *gguf_get_array(const gguf_file *g, const char *key, gguf_vtype elem_type,
                              uint64_t *n); // NULL if missing or wrong element type (error set)
double gguf_array_f64(const gguf_kv *kv, uint64_t i); // numeric element widened
int64_t gguf_array_i64(const gguf_kv *kv, uint64_t i);

#endif
