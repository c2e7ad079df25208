// kernels/cuda/rows_cuda.cu — row moves: embedding gather, gather_rows, and scatter_add_rows
// (atomicAdd per element: rows may repeat, so the sum over repeats is in arrival order).
#include "cuda_internal.h" // defines: bipo_cuda_upload_idx, cu_gather_elem, cu_embed_elem

__global__ void embed_kernel(float *out, const int *tokens, const float *wte, size_t C, size_t n) {
    const size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (e < n) cu_embed_elem(out, tokens, wte, C, e);
}
__global__ void gather_kernel(float *out, const float *inp, const unsigned long long *rows,
                              size_t C, size_t n) {
    const size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (e < n) cu_gather_elem(out, inp, rows, C, e);
}
__global__ void scatter_add_kernel(float *dinp, const float *dout, const unsigned long long *rows,
                                   size_t C, size_t n) {
    const size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (e < n) atomicAdd(dinp + cu_scatter_dst(rows, C, e), dout[e]);
}

void cuda_embedding_forward(float *out, const int *tokens, const float *wte, size_t N, size_t C) {
    for (size_t n = 0; n < N; n++) CHECK(tokens[n] >= 0, "embedding: token %d at row %zu", tokens[n], n);
    if (N * C == 0) return;
    const int *dt = (const int *)bipo_cuda_upload_idx(CU_SCRATCH_IDX0, tokens, N * sizeof(int));
    embed_kernel<<<cu_blocks(N * C), CU_BLOCK>>>(out, dt, wte, C, N * C);
    CUDA_LAUNCHED("embed_kernel");
}

// size_t rows as unsigned long long on the device (same width on every platform we build for)
static const unsigned long long *upload_rows(const size_t *rows, size_t M) {
    static_assert(sizeof(size_t) == sizeof(unsigned long long), "size_t is 64-bit");
    return (const unsigned long long *)bipo_cuda_upload_idx(CU_SCRATCH_IDX1, rows, M * sizeof(size_t));
}

void cuda_gather_rows(float *out, const float *inp, const size_t *rows, size_t M, size_t C) {
    if (M * C == 0) return;
    gather_kernel<<<cu_blocks(M * C), CU_BLOCK>>>(out, inp, upload_rows(rows, M), C, M * C);
    CUDA_LAUNCHED("gather_kernel");
}
void cuda_scatter_add_rows(float *dinp, const float *dout, const size_t *rows, size_t M,
                           size_t C) {
    if (M * C == 0) return;
    scatter_add_kernel<<<cu_blocks(M * C), CU_BLOCK>>>(dinp, dout, upload_rows(rows, M), C, M * C);
    CUDA_LAUNCHED("scatter_add_kernel");
}
