// kernels/cuda/logprob_cuda.cu — log-softmax at the targets of the M scored rows: one block per
// row for max and sum of exp (double partials), the gradient one thread per logit. Nothing
// beyond the [M, V] logits (and dlogits for the backward) is ever in memory.
#include "cuda_internal.h" // defines: cu_block_max, cu_block_sum, the bodies

#define LP_THREADS 512

__global__ void logprob_fwd_kernel(float *lp, float *lse, const float *logits, const int *targets,
                                   size_t V) {
    __shared__ float shm[32];
    __shared__ double shs[32];
    const size_t m = blockIdx.x;
    const float *x = logits + m * V;
    const float mx = cu_block_max(cu_max_part(x, V, threadIdx.x, blockDim.x), shm);
    const double sum = cu_block_sum(cu_sumexp_part(x, V, mx, threadIdx.x, blockDim.x), shs);
    if (threadIdx.x == 0) {
        const float l = (float)((double)mx + log(sum));
        lse[m] = l;
        lp[m] = x[targets[m]] - l;
    }
}

__global__ void logprob_bwd_kernel(float *dlogits, const float *logits, const float *dlp,
                                   const float *lse, const int *targets, size_t V, size_t n) {
    const size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (e < n) cu_logprob_bwd_elem(dlogits, logits, dlp, lse, targets, V, e);
}

static const int *upload_targets(const int *targets, size_t M, size_t V) {
    for (size_t m = 0; m < M; m++)
        CHECK(targets[m] >= 0 && (size_t)targets[m] < V,
              "logprob: target %d at row %zu outside vocab %zu", targets[m], m, V);
    return (const int *)bipo_cuda_upload_idx(CU_SCRATCH_IDX1, targets, M * sizeof(int));
}

void cuda_logprob_forward(float *lp, float *lse, const float *logits, const int *targets,
                          size_t M, size_t V) {
    if (M == 0) return;
    const int *dt = upload_targets(targets, M, V);
    logprob_fwd_kernel<<<(unsigned)M, LP_THREADS>>>(lp, lse, logits, dt, V);
    CUDA_LAUNCHED("logprob_fwd_kernel");
}

void cuda_logprob_backward(float *dlogits, const float *dlp, const float *logits,
                           const float *lse, const int *targets, size_t M, size_t V) {
    if (M * V == 0) return;
    const int *dt = upload_targets(targets, M, V);
    const float *dg = (const float *)bipo_cuda_upload_idx(CU_SCRATCH_IDX2, dlp, M * sizeof(float));
    logprob_bwd_kernel<<<cu_blocks(M * V), CU_BLOCK>>>(dlogits, logits, dg, lse, dt, V, M * V);
    CUDA_LAUNCHED("logprob_bwd_kernel");
}
