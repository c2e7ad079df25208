// pipeline/export_gguf.c — a llama.cpp control vector: a GGUF v3 file (alignment 32) with
// general.architecture = "controlvector", controlvector.model_hint, controlvector.layer_count
// and one F32 tensor "direction.<n>" [C]. llama.cpp adds direction.n to the output of its
// block n (0-based, the same numbering as model.layers[n]), for n >= 1 only, so our layer L is
// direction.L and L = 0 cannot be expressed (docs/EXPORT.md, with the llama.cpp source lines).
#include <stdio.h>
#include <string.h>

#include "export_format.h" // defines: export_vec, export_buf, ebuf_*
#include "util.h"          // defines: bipo_set_error

#define GGUF_VERSION 3
#define GGUF_ALIGN 32
enum { T_UINT32 = 4, T_INT32 = 5, T_STRING = 8 }; // GGUF metadata value types
enum { GGML_F32 = 0 };

static void put_gstr(export_buf *b, const char *s) { // u64 length + bytes
    ebuf_u64(b, strlen(s));
    ebuf_str(b, s);
}
static void kv_str(export_buf *b, const char *k, const char *v) {
    put_gstr(b, k);
    ebuf_u32(b, T_STRING);
    put_gstr(b, v);
}
static void kv_i32(export_buf *b, const char *k, int32_t v) {
    put_gstr(b, k);
    ebuf_u32(b, T_INT32);
    ebuf_u32(b, (uint32_t)v);
}
static void kv_u32(export_buf *b, const char *k, uint32_t v) {
    put_gstr(b, k);
    ebuf_u32(b, T_UINT32);
    ebuf_u32(b, v);
}

int export_gguf(const export_vec *e, export_buf *out) {
    if (e->layer < 1) {
        bipo_set_error("%s / %s / layer %d: a llama.cpp control vector cannot steer layer 0 "
                       "(llama.cpp rejects direction.0 and applies direction.n to the output of "
                       "block n >= 1); export it as f32, safetensors or pt",
                       e->model, e->behavior, e->layer);
        return -1;
    }
    if (e->n_layers > 0 && e->layer >= e->n_layers) {
        bipo_set_error("%s / %s: layer %d is outside the model's %lld layers", e->model,
                       e->behavior, e->layer, (long long)e->n_layers);
        return -1;
    }
    char name[64], gname[3 * 128 + 32], note[256];
    snprintf(name, sizeof name, "direction.%d", e->layer);
    snprintf(gname, sizeof gname, "%s %s layer %d (bipo-pipeline)", e->model, e->behavior, e->layer);
    export_layer_note(e, note, sizeof note);
    const size_t n_kv = 12; // the kv_* calls below
    if (out->n) {
        bipo_set_error("export_gguf: the output buffer must start empty (offsets are absolute)");
        return -1;
    }
    ebuf_str(out, "GGUF");
    ebuf_u32(out, GGUF_VERSION);
    ebuf_u64(out, 1); // tensors
    ebuf_u64(out, n_kv);
    kv_str(out, "general.architecture", "controlvector");
    kv_str(out, "general.name", gname);
    kv_u32(out, "general.alignment", GGUF_ALIGN);
    kv_str(out, "controlvector.model_hint", e->architecture ? e->architecture : "llama");
    kv_i32(out, "controlvector.layer_count", 1); // tensors in the file, as llama.cpp's own writer
    kv_str(out, "bipo.model", e->model);
    kv_str(out, "bipo.behavior", e->behavior);
    kv_str(out, "bipo.method", e->method);
    kv_str(out, "bipo.run", e->run);
    kv_str(out, "bipo.config_hash", e->config_hash ? e->config_hash : "");
    kv_i32(out, "bipo.layer", e->layer);
    kv_str(out, "bipo.layer_convention", note);
    // tensor info: name, n_dims, ne[], type, offset (from the data section's start)
    put_gstr(out, name);
    ebuf_u32(out, 1);
    ebuf_u64(out, e->C);
    ebuf_u32(out, GGML_F32);
    ebuf_u64(out, 0);
    ebuf_pad(out, GGUF_ALIGN, 0); // the data section starts aligned
    ebuf_f32(out, e->v, e->C);
    ebuf_pad(out, GGUF_ALIGN, 0);
    return 0;
}
