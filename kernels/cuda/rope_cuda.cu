// kernels/cuda/rope_cuda.cu — RoPE (HF rotate-half), in place: one thread per rotated pair,
// angles as the CPU op computes them (float inv_freq and angle, cos/sin in double).
#include "cuda_internal.h" // defines: bipo_cuda_upload_idx, cu_rope_elem

__global__ void rope_kernel(float *x, const int *pos, size_t H, size_t HD, float theta,
                            float sign, size_t n) {
    const size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (e < n) cu_rope_elem(x, pos, H, HD, theta, sign, e);
}

static void rope_apply(float *x, const int *pos, size_t N, size_t H, size_t HD, float theta,
                       float sign) {
    CHECK(HD % 2 == 0, "rope: head dim %zu must be even", HD);
    for (size_t n = 0; n < N; n++) CHECK(pos[n] >= 0, "rope: negative position %d", pos[n]);
    const size_t n = N * H * (HD / 2);
    if (n == 0) return;
    const int *dpos = (const int *)bipo_cuda_upload_idx(CU_SCRATCH_IDX0, pos, N * sizeof(int));
    rope_kernel<<<cu_blocks(n), CU_BLOCK>>>(x, dpos, H, HD, theta, sign, n);
    CUDA_LAUNCHED("rope_kernel");
}

void cuda_rope_forward(float *x, const int *pos, size_t N, size_t H, size_t HD, float theta) {
    rope_apply(x, pos, N, H, HD, theta, 1.0f);
}
void cuda_rope_backward(float *dx, const int *pos, size_t N, size_t H, size_t HD, float theta) {
    rope_apply(dx, pos, N, H, HD, theta, -1.0f);
}
