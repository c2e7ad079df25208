// kernels/cuda/steer_cuda.cu — the steering hook h[n,:] += scale * v on masked rows, and its
// backward dv[c] += scale * sum over masked rows of dh[n, c]: one thread per column, rows
// summed in double in a fixed order (deterministic; consecutive threads read consecutive
// columns of a row, so the loads coalesce).
#include "cuda_internal.h" // defines: bipo_cuda_upload_idx, cu_addvec_*

__global__ void addvec_fwd_kernel(float *h, const float *v, float scale, const uint8_t *mask,
                                  size_t C, size_t n) {
    const size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (e < n) cu_addvec_fwd_elem(h, v, scale, mask, C, e);
}
__global__ void addvec_bwd_kernel(float *dv, const float *dh, float scale, const uint8_t *mask,
                                  size_t N, size_t C) {
    const size_t c = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (c < C) cu_addvec_bwd_col(dv, dh, scale, mask, N, C, c);
}

static const uint8_t *upload_mask(const uint8_t *mask, size_t N) {
    return mask ? (const uint8_t *)bipo_cuda_upload_idx(CU_SCRATCH_IDX2, mask, N) : NULL;
}

void cuda_add_vector_forward(float *h, const float *v, float scale, const uint8_t *mask, size_t N,
                             size_t C) {
    if (N * C == 0) return;
    addvec_fwd_kernel<<<cu_blocks(N * C), CU_BLOCK>>>(h, v, scale, upload_mask(mask, N), C, N * C);
    CUDA_LAUNCHED("addvec_fwd_kernel");
}
void cuda_add_vector_backward(float *dv, const float *dh, float scale, const uint8_t *mask,
                              size_t N, size_t C) {
    if (C == 0) return;
    addvec_bwd_kernel<<<cu_blocks(C), CU_BLOCK>>>(dv, dh, scale, upload_mask(mask, N), N, C);
    CUDA_LAUNCHED("addvec_bwd_kernel");
}
