// kernels/cuda/swiglu_cuda.cu — SwiGLU out = silu(gate) * up, forward and backward, one thread
// per element (bodies in cuda_bodies.h).
#include "cuda_internal.h" // defines: cu_blocks, cu_swiglu_*_elem

__global__ void swiglu_fwd_kernel(float *out, const float *gate, const float *up, size_t n) {
    const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) cu_swiglu_fwd_elem(out, gate, up, i);
}
__global__ void swiglu_bwd_kernel(float *dgate, float *dup, const float *dout, const float *gate,
                                  const float *up, size_t n) {
    const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) cu_swiglu_bwd_elem(dgate, dup, dout, gate, up, i);
}

void cuda_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    if (n == 0) return;
    swiglu_fwd_kernel<<<cu_blocks(n), CU_BLOCK>>>(out, gate, up, n);
    CUDA_LAUNCHED("swiglu_fwd_kernel");
}
void cuda_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                          const float *up, size_t n) {
    if (n == 0) return;
    swiglu_bwd_kernel<<<cu_blocks(n), CU_BLOCK>>>(dgate, dup, dout, gate, up, n);
    CUDA_LAUNCHED("swiglu_bwd_kernel");
}
