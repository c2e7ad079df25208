// workers/tensors.h — dtype table, dequantization, and the tensor directory both weight
// formats (HF safetensors, GGUF) are turned into before the model is built.
#ifndef BIPO_TENSORS_H
#define BIPO_TENSORS_H
#include <stddef.h>
#include <stdint.h>

#include "gguf.h" // defines: gguf_file (for bipo_tensor_dir_from_gguf)

// ggml type ids (the numbers GGUF stores); safetensors dtypes map onto the same ids.
enum {
    BIPO_DT_F32 = 0, BIPO_DT_F16 = 1, BIPO_DT_Q4_0 = 2, BIPO_DT_Q4_1 = 3, BIPO_DT_Q5_0 = 6,
    BIPO_DT_Q5_1 = 7, BIPO_DT_Q8_0 = 8, BIPO_DT_Q4_K = 12, BIPO_DT_Q5_K = 13,
    BIPO_DT_Q6_K = 14, BIPO_DT_BF16 = 30,
};
const char *bipo_dtype_name(uint32_t dt);   // "F32", "Q4_K", ... or NULL if unsupported
size_t bipo_dtype_block(uint32_t dt);       // elements per block (1 for F32/F16/BF16), 0 if unsupported
size_t bipo_dtype_block_bytes(uint32_t dt); // bytes per block, 0 if unsupported
// Bytes for n elements; 0 if the type is unsupported or n is not a multiple of the block.
size_t bipo_dtype_nbytes(uint32_t dt, uint64_t n);
// out[n] = dequantized data (n a multiple of the block). 0, or -1 + error for a bad type.
int bipo_dequantize(float *out, const void *data, uint32_t dt, size_t n);
// Reference quantizers used by tests to write quantized models (round-to-nearest, like ggml's
// *_ref quantizers). Returns bytes written, 0 for a type without a quantizer.
size_t bipo_quantize(void *out, const float *in, uint32_t dt, size_t n);

// Read-only mapping of a model file for the format readers: mmap, or under AddressSanitizer
// (__SANITIZE_ADDRESS__) an exact-size heap copy, so any read past the end of a damaged file
// is caught by the ASan test build. NULL + bipo error on failure.
void *bipo_format_map(const char *path, size_t *size);
void bipo_format_unmap(void *p, size_t size);

// One tensor of a model file, with its shape in HF order (outermost first: a linear weight is
// {OC, IC}; for GGUF the ggml ne[] is reversed).
typedef struct {
    char *name;
    uint32_t dtype;
    int ndim;
    uint64_t shape[4];
    uint64_t numel;
    const void *data; // in a mapping owned by the directory
    size_t nbytes;
    const char *file; // the file it came from, for messages
} bipo_tensor_info;

typedef struct {
    bipo_tensor_info *t;
    size_t n;
    // mappings to release
    void **maps;
    size_t *map_sizes;
    size_t n_maps;
    char **files;
} bipo_tensor_dir;

// HF: a directory with model.safetensors or model.safetensors.index.json (+ shards).
int bipo_safetensors_open_dir(bipo_tensor_dir *d, const char *dir);
// A single .safetensors file (used by the directory loader and by LoRA adapters later).
// Appends the file's tensors to d (zero d with memset before the first call); on failure d
// is left as it was.
int bipo_safetensors_open_file(bipo_tensor_dir *d, const char *path);
// A GGUF's tensors as a directory (shape reversed into HF order, file = the GGUF's path). The
// directory points into g's mapping and does not own it: keep g open while d is used.
int bipo_tensor_dir_from_gguf(bipo_tensor_dir *d, const gguf_file *g);
void bipo_tensor_dir_free(bipo_tensor_dir *d);
const bipo_tensor_info *bipo_tensor_dir_find(const bipo_tensor_dir *d, const char *name);

#endif
