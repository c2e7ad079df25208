// pipeline/export_format.h — one library vector encoded as a file other tools load: raw f32
// (our `generate --vector`), a llama.cpp control vector (GGUF), safetensors, and the torch .pt
// steer_config of lm-evaluation-harness's `steered` model. Layouts, names and the layer
// conventions of each: docs/EXPORT.md. Encoders build the whole file in memory (a vector is
// C floats); export_write_atomic() puts it on disk all or nothing.
#ifndef BIPO_EXPORT_FORMAT_H
#define BIPO_EXPORT_FORMAT_H
#include <stddef.h>
#include <stdint.h>

typedef enum { EXPORT_F32, EXPORT_GGUF, EXPORT_SAFETENSORS, EXPORT_PT } export_format;

// What is exported: the vector and where it came from.
typedef struct {
    const char *model, *behavior, *run, *config_hash;
    const char *method;       // "bipo" (the only training method in a library today)
    const char *architecture; // the model's general.architecture ("llama"): GGUF model_hint
    int layer;                // L: v is added to the output of model.layers[L] (HF hidden_states[L+1])
    int64_t n_layers;         // the model's decoder layers (0 when the library does not say)
    const float *v;           // [C]
    size_t C;
    double multiplier; // the .pt steering_coefficient (other formats store v unscaled)
} export_vec;

// A growing byte buffer (fatal on out-of-memory, like xmalloc).
typedef struct {
    unsigned char *p;
    size_t n, cap;
} export_buf;
void ebuf_put(export_buf *b, const void *x, size_t n);
void ebuf_u16(export_buf *b, uint16_t x); // little-endian, as every format here
void ebuf_u32(export_buf *b, uint32_t x);
void ebuf_u64(export_buf *b, uint64_t x);
void ebuf_str(export_buf *b, const char *s); // the bytes, no terminator
void ebuf_f32(export_buf *b, const float *v, size_t n); // n little-endian f32
void ebuf_pad(export_buf *b, size_t align, unsigned char fill); // up to a multiple of align
void ebuf_free(export_buf *b);

// "f32" | "gguf" | "safetensors" | "pt" -> *f; -1 (error set, listing the formats) otherwise.
int export_format_parse(const char *name, export_format *f);
const char *export_format_ext(export_format f); // "f32", "gguf", "safetensors", "pt"

// The file's bytes appended to out. -1 + bipo_set_error when the vector cannot be expressed in
// the format (a llama.cpp control vector has no layer 0).
int export_encode(export_format f, const export_vec *e, export_buf *out);
int export_gguf(const export_vec *e, export_buf *out);        // export_gguf.c
int export_safetensors(const export_vec *e, export_buf *out); // export_safetensors.c
int export_pt(const export_vec *e, export_buf *out);          // export_pt.c

// The one-line text of the layer convention every format's metadata carries.
void export_layer_note(const export_vec *e, char *out, size_t n);

// Writes b to path: a temp file in path's folder, fsync, rename over path, fsync the folder.
// 0, or -1 + bipo_set_error naming path; on failure nothing is left behind.
int export_write_atomic(const char *path, const export_buf *b);

#endif
