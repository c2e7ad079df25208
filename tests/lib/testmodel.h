// tests/lib/testmodel.h — tiny random Llama/Mistral models written as an HF directory
// (config.json + safetensors, optionally sharded) or as a GGUF the way llama.cpp's
// convert_hf_to_gguf.py writes it. Weights are deterministic functions of (seed, tensor name),
// so a test can regenerate any tensor with tm_weights() and compare it to what a loader read.
//
// Shape letters: L layers, C hidden, NH query heads, NKV key/value heads, HD head dim,
// FF MLP width, V vocab.
#ifndef BIPO_TESTMODEL_H
#define BIPO_TESTMODEL_H
#include <stddef.h>
#include <stdint.h>

#include "model.h" // defines: bipo_model

typedef struct {
    int mistral;               // architectures ["MistralForCausalLM"], model_type "mistral"
    size_t L, C, NH, NKV, HD, FF, V;
    float rope_theta, eps;     // 0 -> 10000 and 1e-5
    size_t window;             // mistral sliding window (0 = none)
    int tied;                  // tie_word_embeddings: no lm_head.weight / output.weight
    unsigned long long seed;
    size_t max_pos;            // max_position_embeddings / llama.context_length (0 -> 2048)
} tm_spec;

// HF tensor names of the model in a fixed order (embed, per layer, norm, lm_head unless tied).
// Returns the count; names[i] are malloc'd (free with tm_names_free). names may be NULL.
size_t tm_names(const tm_spec *s, char ***names);
void tm_names_free(char **names, size_t n);
// HF shape of a tensor (ndim 1 or 2); 0 on success, -1 for an unknown name.
int tm_shape(const tm_spec *s, const char *hf_name, int *ndim, uint64_t shape[2]);
// Deterministic random weights in HF layout (f32): matrices uniform in [-0.08, 0.08), norm
// weights 1 + 0.1*uniform. Caller frees. NULL for an unknown name.
float *tm_weights(const tm_spec *s, const char *hf_name, size_t *numel);
// config.json + model.safetensors (n_shards <= 1) or model-0000k-of-0000n.safetensors +
// model.safetensors.index.json. dtype: BIPO_DT_F32, F16 or BF16. 0 or -1 (+ bipo error).
int tm_write_hf(const tm_spec *s, const char *dir, uint32_t dtype, int n_shards);
// GGUF v2 or v3: llama.* metadata, llama.cpp tensor names, q/k rows permuted like
// convert_hf_to_gguf.py, 1-D tensors F32, 2-D tensors in dtype2d (F32 F16 BF16 Q8_0 Q4_0
// Q4_1 Q5_0 Q5_1), a minimal SPM-style tokenizer when V >= 259. 0 or -1 (+ bipo error).
int tm_write_gguf(const tm_spec *s, const char *path, uint32_t dtype2d, int version);
// GGUF name of an HF tensor ("model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight");
// writes into out (>= 64 bytes); 0 or -1 for an unknown name.
int tm_gguf_name(const char *hf_name, char *out, size_t out_size);
// llama.cpp's q/k permutation on [rows, cols] row-major (rows = n_head * hd):
// out row h*hd + 2i + j = in row h*hd + j*hd/2 + i (i < hd/2, j < 2). inverse=1 undoes it.
void tm_permute_qk(float *out, const float *in, size_t rows, size_t cols, size_t n_head,
                   int inverse);

// ---- a little-endian byte buffer, for tests that hand-craft (and damage) files ------------
typedef struct {
    uint8_t *p;
    size_t n, cap;
} tm_buf;
void tm_put(tm_buf *b, const void *x, size_t n);
void tm_put_u32(tm_buf *b, uint32_t v);
void tm_put_u64(tm_buf *b, uint64_t v);
void tm_put_str(tm_buf *b, const char *s);   // GGUF string: u64 length + bytes
void tm_pad(tm_buf *b, size_t align);        // zero bytes up to a multiple of align
int tm_buf_save(const tm_buf *b, const char *path); // 0 or -1 (+ bipo error)
void tm_buf_free(tm_buf *b);

// Writes the model as an HF F32 directory <tmp>/tiny-hf under a fresh /tmp/bipo-tm-XXXXXX
// (its path into tmp[64]) and loads it on the CPU backend into *m. 0, or -1 + bipo error.
// tm_remove removes tmp again.
int tm_load_tiny_hf(const tm_spec *s, char tmp[64], bipo_model *m);
void tm_remove(const char *tmp);

#endif
