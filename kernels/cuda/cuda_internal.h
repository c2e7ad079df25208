// kernels/cuda/cuda_internal.h — shared between the CUDA backend's files (not a public header).
// Everything runs on the legacy default stream (kernels, cuBLAS, copies), so ops are ordered
// without events; the backend is meant for one host thread (its scratch is process-wide).
#ifndef BIPO_CUDA_INTERNAL_H
#define BIPO_CUDA_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "kernels.h" // defines: bipo_backend, bipo_seqs, bipo_matmul_precision
#include "util.h"    // defines: bipo_fatal
}
#include "cuda_bodies.h" // defines: the per-thread bodies

// Every CUDA runtime / cuBLAS call goes through one of these: a failure is fatal and names
// the call, file and line.
#define CUDA_CHECK(call)                                                                       \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess)                                                                 \
            bipo_fatal(__FILE__, __func__, __LINE__, "%s failed: %s (%d)", #call,             \
                       cudaGetErrorString(e_), (int)e_);                                       \
    } while (0)
#define CUBLAS_CHECK(call)                                                                     \
    do {                                                                                       \
        cublasStatus_t s_ = (call);                                                            \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                       \
            bipo_fatal(__FILE__, __func__, __LINE__, "%s failed: %s (%d)", #call,             \
                       cublasGetStatusString(s_), (int)s_);                                    \
    } while (0)
// After a <<<...>>> launch: a bad configuration shows up here, named by the kernel.
#define CUDA_LAUNCHED(name) CUDA_CHECK(cudaGetLastError()) /* name */

// Threads per block of the elementwise kernels, and the grid that covers n elements.
#define CU_BLOCK 256
static inline unsigned cu_blocks(size_t n) {
    size_t b = (n + CU_BLOCK - 1) / CU_BLOCK;
    return (unsigned)(b > 0x7fffffffu ? 0x7fffffffu : (b ? b : 1));
}

// Device scratch that grows and is never shrunk (slots: several live at once in one op).
enum {
    CU_SCRATCH_IDX0, // uploaded host index arrays
    CU_SCRATCH_IDX1,
    CU_SCRATCH_IDX2,
    CU_SCRATCH_ACT,  // activations converted to the weights' type
    CU_SCRATCH_ATT,  // attention backward: D = rowsum(dO o O)
    CU_SCRATCH_SLOTS
};
void *bipo_cuda_scratch(int slot, size_t bytes);
// A host array copied into scratch slot `slot` (ordered on the default stream).
const void *bipo_cuda_upload_idx(int slot, const void *host, size_t bytes);
// Sequence offsets as unsigned long long on the device (q_off then k_off, [S+1] each).
void bipo_cuda_upload_seqs(const bipo_seqs *sq, const unsigned long long **qo,
                           const unsigned long long **ko);

// ---- block reductions (blockDim.x a multiple of 32, <= 1024) -----------------------------------
template <typename T> __device__ inline T cu_warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ inline float cu_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// Sum over the block; every thread gets the total. sh: >= 32 elements of shared memory.
template <typename T> __device__ inline T cu_block_sum(T v, T *sh) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = cu_warp_sum(v);
    __syncthreads(); // sh may still be read by an earlier reduction
    if (lane == 0) sh[w] = v;
    __syncthreads();
    T t = lane < nw ? sh[lane] : (T)0;
    return cu_warp_sum(t);
}
__device__ inline float cu_block_max(float v, float *sh) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = cu_warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    float t = lane < nw ? sh[lane] : -INFINITY;
    return cu_warp_max(t);
}

// ---- the ops, with the table's final signatures (precision per call) ---------------------------
cublasHandle_t bipo_cuda_cublas(void);
void cuda_weights_register(const float *w, size_t n);
void cuda_weights_release(const float *w, size_t n);
int cuda_supports_precision(bipo_matmul_precision p);
void cuda_matmul_forward(float *out, const float *inp, const float *w, size_t N, size_t IC,
                         size_t OC, bipo_matmul_precision prec);
void cuda_matmul_backward(float *dinp, const float *dout, const float *w, size_t N, size_t IC,
                          size_t OC, int accumulate, bipo_matmul_precision prec);
void cuda_logprob_matmul_backward(float *dinp, float *dlogits, const float *dlp,
                                  const float *logits, const float *lse, const int *targets,
                                  const float *w, size_t M, size_t IC, size_t V,
                                  bipo_matmul_precision prec);

void cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, size_t N,
                          size_t C, float eps);
void cuda_rmsnorm_backward(float *dinp, const float *dout, const float *inp, const float *w,
                           const float *rstd, size_t N, size_t C);
void cuda_rope_forward(float *x, const int *pos, size_t N, size_t H, size_t HD, float theta);
void cuda_rope_backward(float *dx, const int *pos, size_t N, size_t H, size_t HD, float theta);
void cuda_attention_forward(float *out, float *att, const float *q, const float *k,
                            const float *v, const bipo_seqs *sq, size_t NH, size_t NKV,
                            size_t HD, size_t window);
void cuda_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                             const float *k, const float *v, const float *att,
                             const bipo_seqs *sq, size_t NH, size_t NKV, size_t HD);
void cuda_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
void cuda_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                          const float *up, size_t n);
void cuda_residual_forward(float *out, const float *a, const float *b, size_t n);
void cuda_residual_backward(float *da, float *db, const float *dout, size_t n);
void cuda_embedding_forward(float *out, const int *tokens, const float *wte, size_t N, size_t C);
void cuda_gather_rows(float *out, const float *inp, const size_t *rows, size_t M, size_t C);
void cuda_scatter_add_rows(float *dinp, const float *dout, const size_t *rows, size_t M,
                           size_t C);
void cuda_logprob_forward(float *lp, float *lse, const float *logits, const int *targets,
                          size_t M, size_t V);
void cuda_logprob_backward(float *dlogits, const float *dlp, const float *logits,
                           const float *lse, const int *targets, size_t M, size_t V);
void cuda_add_vector_forward(float *h, const float *v, float scale, const uint8_t *mask, size_t N,
                             size_t C);
void cuda_add_vector_backward(float *dv, const float *dh, float scale, const uint8_t *mask,
                              size_t N, size_t C);

#endif
