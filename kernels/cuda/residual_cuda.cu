// kernels/cuda/residual_cuda.cu — residual add forward (out may alias a) and its backward
// (da += dout, db += dout; either may be NULL).
#include "cuda_internal.h" // defines: cu_blocks, CUDA_LAUNCHED

__global__ void add_kernel(float *out, const float *a, const float *b, size_t n) {
    const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + b[i];
}

void cuda_residual_forward(float *out, const float *a, const float *b, size_t n) {
    if (n == 0) return;
    add_kernel<<<cu_blocks(n), CU_BLOCK>>>(out, a, b, n);
    CUDA_LAUNCHED("add_kernel");
}
void cuda_residual_backward(float *da, float *db, const float *dout, size_t n) {
    if (n == 0) return;
    float *d[2] = {da, db};
    for (int t = 0; t < 2; t++)
        if (d[t]) {
            add_kernel<<<cu_blocks(n), CU_BLOCK>>>(d[t], d[t], dout, n);
            CUDA_LAUNCHED("add_kernel");
        }
}
