// pipeline/export_pt.c — the steer_config of lm-evaluation-harness's `steered` model
// (lm_eval/models/hf_steered.py: `torch.load(f, weights_only=True)`, then for each
// `hookpoint, info in steer_config.items()` it reads info["action"], ["steering_vector"],
// ["steering_coefficient"], ["bias"] and hooks the module `hookpoint` of model.base_model):
//
//   {"layers.<L>": {"action": "add", "steering_vector": FloatTensor[C],
//                   "steering_coefficient": M, "bias": None}}
//
// written without torch, in torch.save's own format: a zip (stored, no compression) of
//   archive/data.pkl     pickle protocol 2; the tensor is
//                        torch._utils._rebuild_tensor_v2(<persistent id>, 0, (C,), (1,),
//                        False, collections.OrderedDict()) with the persistent id
//                        ("storage", torch.FloatStorage, "0", "cpu", C)
//   archive/byteorder    "little"
//   archive/data/0       the C floats, little-endian, 64-byte aligned in the file
//   archive/version      "3\n"
// Every record's data is aligned to 64 bytes with an "FB" extra field, as torch's writer does.
#include <stdio.h>
#include <string.h>

#include "export_format.h" // defines: export_vec, export_buf, ebuf_*

// ---- pickle (protocol 2): just the opcodes this one object needs ------------------------------
static void pk_op(export_buf *b, unsigned char op) { ebuf_put(b, &op, 1); }
static void pk_str(export_buf *b, const char *s) { // BINUNICODE
    pk_op(b, 'X');
    ebuf_u32(b, (uint32_t)strlen(s));
    ebuf_str(b, s);
}
static void pk_int(export_buf *b, uint64_t x) { // BININT1 / BININT (x < 2^31)
    if (x < 256) {
        pk_op(b, 'K');
        pk_op(b, (unsigned char)x);
    } else {
        pk_op(b, 'J');
        ebuf_u32(b, (uint32_t)x);
    }
}
static void pk_float(export_buf *b, double d) { // BINFLOAT: 8 bytes big-endian
    uint64_t u;
    memcpy(&u, &d, 8);
    pk_op(b, 'G');
    for (int i = 7; i >= 0; i--) pk_op(b, (unsigned char)(u >> (8 * i)));
}
static void pk_global(export_buf *b, const char *module, const char *name) { // GLOBAL
    pk_op(b, 'c');
    ebuf_str(b, module);
    pk_op(b, '\n');
    ebuf_str(b, name);
    pk_op(b, '\n');
}

static void pickle_config(export_buf *b, const char *hookpoint, size_t C, double coef) {
    pk_op(b, 0x80), pk_op(b, 2);     // PROTO 2
    pk_op(b, '}'), pk_op(b, '(');    // {  (items follow)
    pk_str(b, hookpoint);
    pk_op(b, '}'), pk_op(b, '(');    // {  the hookpoint's entry
    pk_str(b, "action"), pk_str(b, "add");
    pk_str(b, "steering_vector");
    pk_global(b, "torch._utils", "_rebuild_tensor_v2");
    pk_op(b, '(');                   // its argument tuple
    pk_op(b, '(');                   // the storage's persistent id
    pk_str(b, "storage");
    pk_global(b, "torch", "FloatStorage");
    pk_str(b, "0"), pk_str(b, "cpu");
    pk_int(b, C);
    pk_op(b, 't'), pk_op(b, 'Q');    // TUPLE, BINPERSID
    pk_int(b, 0);                    // storage offset
    pk_int(b, C), pk_op(b, 0x85);    // size (C,)
    pk_int(b, 1), pk_op(b, 0x85);    // stride (1,)
    pk_op(b, 0x89);                  // requires_grad False
    pk_global(b, "collections", "OrderedDict");
    pk_op(b, ')'), pk_op(b, 'R');    // OrderedDict(): backward hooks
    pk_op(b, 't'), pk_op(b, 'R');    // _rebuild_tensor_v2(*args)
    pk_str(b, "steering_coefficient");
    pk_float(b, coef);
    pk_str(b, "bias"), pk_op(b, 'N');
    pk_op(b, 'u');                   // SETITEMS (the entry)
    pk_op(b, 'u');                   // SETITEMS (the config)
    pk_op(b, '.');                   // STOP
}

// ---- zip (stored entries, no zip64: a steering vector is far below 4 GiB) ---------------------
static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

#define ZIP_ALIGN 64
#define ZIP_MAX 8
typedef struct {
    char name[64];
    uint32_t crc, size, offset;
} zip_entry;
typedef struct {
    export_buf *out;
    zip_entry e[ZIP_MAX];
    size_t n;
} zip_writer;

static void zip_header(export_buf *b, uint32_t sig, const zip_entry *z, size_t extra, int central) {
    ebuf_u32(b, sig);
    if (central) ebuf_u16(b, 20); // version made by
    ebuf_u16(b, 20);              // version needed
    ebuf_u16(b, 0);               // flags
    ebuf_u16(b, 0);               // method: stored
    ebuf_u16(b, 0);               // time 00:00:00
    ebuf_u16(b, (1 << 5) | 1);    // date 1980-01-01
    ebuf_u32(b, z->crc);
    ebuf_u32(b, z->size);
    ebuf_u32(b, z->size);
    ebuf_u16(b, (uint16_t)strlen(z->name));
    ebuf_u16(b, (uint16_t)extra);
    if (central) {
        ebuf_u16(b, 0);           // comment length
        ebuf_u16(b, 0);           // disk
        ebuf_u16(b, 0);           // internal attributes
        ebuf_u32(b, 0);           // external attributes
        ebuf_u32(b, z->offset);   // its local header
    }
    ebuf_str(b, z->name);
}

static void zip_add(zip_writer *w, const char *name, const void *data, size_t n) {
    zip_entry *z = &w->e[w->n++];
    snprintf(z->name, sizeof z->name, "%s", name);
    z->crc = crc32_of(data, n);
    z->size = (uint32_t)n;
    z->offset = (uint32_t)w->out->n;
    // data starts at offset + 30 + name + extra; the extra field ("FB", u16 size, 'Z'...) is
    // at least its 4-byte header and pads the data start to a multiple of ZIP_ALIGN
    size_t at = w->out->n + 30 + strlen(z->name) + 4;
    size_t pad = (ZIP_ALIGN - at % ZIP_ALIGN) % ZIP_ALIGN;
    zip_header(w->out, 0x04034b50, z, 4 + pad, 0);
    ebuf_str(w->out, "FB");
    ebuf_u16(w->out, (uint16_t)pad);
    for (size_t i = 0; i < pad; i++) ebuf_put(w->out, "Z", 1);
    ebuf_put(w->out, data, n);
}

static void zip_finish(zip_writer *w) {
    uint32_t cd = (uint32_t)w->out->n;
    for (size_t i = 0; i < w->n; i++) zip_header(w->out, 0x02014b50, &w->e[i], 0, 1);
    uint32_t cd_size = (uint32_t)w->out->n - cd;
    ebuf_u32(w->out, 0x06054b50); // end of central directory
    ebuf_u16(w->out, 0), ebuf_u16(w->out, 0);
    ebuf_u16(w->out, (uint16_t)w->n), ebuf_u16(w->out, (uint16_t)w->n);
    ebuf_u32(w->out, cd_size);
    ebuf_u32(w->out, cd);
    ebuf_u16(w->out, 0);
}

int export_pt(const export_vec *e, export_buf *out) {
    char hook[48];
    snprintf(hook, sizeof hook, "layers.%d", e->layer);
    export_buf pk = {0}, data = {0};
    pickle_config(&pk, hook, e->C, e->multiplier);
    ebuf_f32(&data, e->v, e->C);
    zip_writer w = {.out = out};
    zip_add(&w, "archive/data.pkl", pk.p, pk.n);
    zip_add(&w, "archive/byteorder", "little", 6);
    zip_add(&w, "archive/data/0", data.p, data.n);
    zip_add(&w, "archive/version", "3\n", 2);
    zip_finish(&w);
    ebuf_free(&pk);
    ebuf_free(&data);
    return 0;
}
