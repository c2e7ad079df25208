// kernels/cuda/norm_cuda.cu — RMSNorm forward and backward: one block per row, the row's sum
// (of squares; of dy*w*x) in double from per-thread partials (cuda_bodies.h), then per element.
#include "cuda_internal.h" // defines: cu_block_sum, CUDA_LAUNCHED, the bodies

#define NORM_THREADS 256

__global__ void rmsnorm_fwd_kernel(float *out, float *rstd, const float *inp, const float *w,
                                   size_t C, float eps) {
    __shared__ double sh[32];
    const size_t n = blockIdx.x;
    const float *x = inp + n * C;
    const double ss = cu_block_sum(cu_sumsq_part(x, C, threadIdx.x, blockDim.x), sh);
    const float r = cu_rstd(ss, C, eps);
    float *o = out + n * C;
    for (size_t c = threadIdx.x; c < C; c += blockDim.x) o[c] = w[c] * (x[c] * r);
    if (threadIdx.x == 0) rstd[n] = r;
}

__global__ void rmsnorm_bwd_kernel(float *dinp, const float *dout, const float *inp,
                                   const float *w, const float *rstd, size_t C) {
    __shared__ double sh[32];
    const size_t n = blockIdx.x;
    const float *x = inp + n * C, *dy = dout + n * C;
    const double dot = cu_block_sum(cu_dot3_part(dy, w, x, C, threadIdx.x, blockDim.x), sh);
    for (size_t c = threadIdx.x; c < C; c += blockDim.x)
        cu_rmsnorm_bwd_elem(dinp + n * C, dy, x, w, rstd[n], dot, C, c);
}

void cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, size_t N,
                          size_t C, float eps) {
    if (N == 0) return;
    rmsnorm_fwd_kernel<<<(unsigned)N, NORM_THREADS>>>(out, rstd, inp, w, C, eps);
    CUDA_LAUNCHED("rmsnorm_fwd_kernel");
}

void cuda_rmsnorm_backward(float *dinp, const float *dout, const float *inp, const float *w,
                           const float *rstd, size_t N, size_t C) {
    if (N == 0) return;
    rmsnorm_bwd_kernel<<<(unsigned)N, NORM_THREADS>>>(dinp, dout, inp, w, rstd, C);
    CUDA_LAUNCHED("rmsnorm_bwd_kernel");
}
