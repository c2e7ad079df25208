// pipeline/export_safetensors.c — the vector as a safetensors file: u64 header length N, N
// bytes of JSON (space-padded so the data starts 8-aligned, as the reference writer does),
// then the data. One F32 tensor "layers.<L>" [C] — the name of the HF module whose output it
// is added to (model.layers[L] under the base model, lm-eval's hookpoint) — and __metadata__
// (string to string): format, model, behavior, method, run, config_hash, layer,
// layer_convention, architecture.
#include <stdio.h>
#include <string.h>

#include "export_format.h" // defines: export_vec, export_buf, ebuf_*

// A JSON string literal of s (names are plain ASCII, the notes too; escape what JSON needs).
static void json_str(export_buf *b, const char *s) {
    ebuf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p;
            ebuf_put(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            ebuf_str(b, esc);
        } else {
            ebuf_put(b, p, 1);
        }
    }
    ebuf_put(b, "\"", 1);
}
static void json_kv(export_buf *b, const char *k, const char *v, int comma) {
    json_str(b, k);
    ebuf_put(b, ":", 1);
    json_str(b, v);
    if (comma) ebuf_put(b, ",", 1);
}

int export_safetensors(const export_vec *e, export_buf *out) {
    char name[48], layer[24], shape[160], note[256];
    snprintf(name, sizeof name, "layers.%d", e->layer);
    snprintf(layer, sizeof layer, "%d", e->layer);
    export_layer_note(e, note, sizeof note);
    export_buf h = {0};
    ebuf_str(&h, "{\"__metadata__\":{");
    const char *meta[][2] = {
        {"format", "bipo-steering-vector"}, {"model", e->model},       {"behavior", e->behavior},
        {"method", e->method},              {"run", e->run},           {"config_hash", e->config_hash ? e->config_hash : ""},
        {"layer", layer},                   {"layer_convention", note}, {"architecture", e->architecture ? e->architecture : ""},
    };
    size_t nm = sizeof meta / sizeof meta[0];
    for (size_t i = 0; i < nm; i++) json_kv(&h, meta[i][0], meta[i][1], i + 1 < nm);
    ebuf_str(&h, "},");
    json_str(&h, name);
    snprintf(shape, sizeof shape, ":{\"dtype\":\"F32\",\"shape\":[%zu],\"data_offsets\":[0,%zu]}}",
             e->C, 4 * e->C);
    ebuf_str(&h, shape);
    ebuf_pad(&h, 8, (unsigned char)' '); // 8 + N is a multiple of 8: the data is aligned
    ebuf_u64(out, h.n);
    ebuf_put(out, h.p, h.n);
    ebuf_f32(out, e->v, e->C);
    ebuf_free(&h);
    return 0;
}
