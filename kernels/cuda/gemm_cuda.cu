// kernels/cuda/gemm_cuda.cu — the linear layers through cuBLAS, on weights kept resident in
// bf16 (default), f16 or f32 (env BIPO_CUDA_WEIGHTS=bf16|f16|f32, read at each
// weights_register), with f32 accumulation and f32 outputs.
//
// weights_register(w, n) converts [w, w + n) once into a device copy of that type and keeps
// (w, n, copy) in a small map; a GEMM whose w lies inside a registered range uses the copy at
// the same offset, its activations converted to the same type in scratch (cuBLAS wants both
// operands in one type). Unregistered weights, and f32 mode, run plain fp32 SGEMM (no TF32).
//
// Row-major to cuBLAS's column-major: a row-major [R, K] matrix is a column-major [K, R] one.
//   forward  out^T[OC,N] = W^T'[OC,IC] x^T[IC,N]: gemm(T, N, m=OC, n=N, k=IC, A=w lda=IC, B=x ldb=IC)
//   backward dinp^T[IC,N] = W^T[IC,OC] dout^T[OC,N]: gemm(N, N, m=IC, n=N, k=OC, A=w lda=IC, B=dout ldb=OC)
#include <stdlib.h>
#include <string.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda_internal.h" // defines: CUDA_CHECK, CUBLAS_CHECK, bipo_cuda_scratch

static cublasHandle_t cublas_handle = NULL;
static int cublas_tried = 0;

// The handle, created on first use (NULL when cuBLAS cannot start: the probe then falls back).
cublasHandle_t bipo_cuda_cublas(void) {
    if (!cublas_tried) {
        cublas_tried = 1;
        if (cublasCreate(&cublas_handle) != CUBLAS_STATUS_SUCCESS) cublas_handle = NULL;
        else CUBLAS_CHECK(cublasSetStream(cublas_handle, 0));
    }
    return cublas_handle;
}
static cublasHandle_t handle(void) {
    cublasHandle_t h = bipo_cuda_cublas();
    CHECK(h != NULL, "cuBLAS is not initialized (no CUDA device?)");
    return h;
}

// ---- the registered weights --------------------------------------------------------------------
typedef enum { WT_BF16, WT_F16, WT_F32 } weight_type;
typedef struct {
    const float *base;
    size_t n;
    weight_type type;
    void *copy; // [n] of type (NULL for WT_F32: the f32 weights themselves)
} reg_entry;
enum { REG_MAX = 64 };
static reg_entry regs[REG_MAX];
static size_t nregs = 0;

static weight_type env_weight_type(void) {
    const char *e = getenv("BIPO_CUDA_WEIGHTS");
    if (!e || !*e || strcmp(e, "bf16") == 0) return WT_BF16;
    if (strcmp(e, "f16") == 0) return WT_F16;
    if (strcmp(e, "f32") == 0) return WT_F32;
    BIPO_FATAL("BIPO_CUDA_WEIGHTS=%s: expected bf16, f16 or f32", e);
}

__global__ void to_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]);
}
__global__ void to_f16_kernel(__half *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2half_rn(src[i]);
}
static void convert(void *dst, const float *src, size_t n, weight_type t) {
    if (n == 0) return;
    const unsigned g = cu_blocks(n) < 65536u ? cu_blocks(n) : 65536u;
    if (t == WT_BF16) to_bf16_kernel<<<g, CU_BLOCK>>>((__nv_bfloat16 *)dst, src, n);
    else to_f16_kernel<<<g, CU_BLOCK>>>((__half *)dst, src, n);
    CUDA_LAUNCHED("to_bf16_kernel / to_f16_kernel");
}

void cuda_weights_register(const float *w, size_t n) {
    CHECK(nregs < REG_MAX, "CUDA backend: more than %d registered weight ranges", REG_MAX);
    reg_entry *r = &regs[nregs++];
    r->base = w, r->n = n, r->type = env_weight_type(), r->copy = NULL;
    if (r->type == WT_F32) return;
    CUDA_CHECK(cudaMalloc(&r->copy, (n ? n : 1) * 2));
    convert(r->copy, w, n, r->type);
}

void cuda_weights_release(const float *w, size_t n) {
    for (size_t i = 0; i < nregs; i++)
        if (regs[i].base == w) {
            if (regs[i].copy) CUDA_CHECK(cudaFree(regs[i].copy));
            regs[i] = regs[--nregs];
            return;
        }
}

// The registration holding [w, w + len), or NULL.
static const reg_entry *find_reg(const float *w, size_t len) {
    for (size_t i = 0; i < nregs; i++)
        if (w >= regs[i].base && w + len <= regs[i].base + regs[i].n) return &regs[i];
    return NULL;
}

// One precision: the registered weights' type decides the arithmetic (docs/CUDA.md).
int cuda_supports_precision(bipo_matmul_precision p) { return p == BIPO_MATMUL_FP32; }

// C[m,n] (col-major, ldc = m) (beta) += op(A) B with A the (maybe registered) weights.
static void gemm(cublasOperation_t ta, int m, int n, int k, const float *w, int lda,
                 const float *x, size_t xlen, int ldb, float beta, float *c, size_t wlen) {
    const float one = 1.0f;
    const reg_entry *r = find_reg(w, wlen);
    if (!r || r->type == WT_F32) {
        CUBLAS_CHECK(cublasSgemm(handle(), ta, CUBLAS_OP_N, m, n, k, &one, w, lda, x, ldb, &beta,
                                 c, m));
        return;
    }
    const cudaDataType_t dt = r->type == WT_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    void *xc = bipo_cuda_scratch(CU_SCRATCH_ACT, xlen * 2);
    convert(xc, x, xlen, r->type);
    const char *copy = (const char *)r->copy + (size_t)(w - r->base) * 2;
    CUBLAS_CHECK(cublasGemmEx(handle(), ta, CUBLAS_OP_N, m, n, k, &one, copy, dt, lda, xc, dt, ldb,
                              &beta, c, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

static void check_dims(size_t a, size_t b, size_t c) {
    CHECK(a <= 0x7fffffff && b <= 0x7fffffff && c <= 0x7fffffff,
          "CUDA GEMM: dimension over 2^31 (%zu, %zu, %zu)", a, b, c);
}

void cuda_matmul_forward(float *out, const float *inp, const float *w, size_t N, size_t IC,
                         size_t OC, bipo_matmul_precision prec) {
    (void)prec; // only FP32 (cuda_supports_precision)
    if (N == 0 || OC == 0) return;
    if (IC == 0) { CUDA_CHECK(cudaMemsetAsync(out, 0, N * OC * sizeof(float), 0)); return; }
    check_dims(N, IC, OC);
    gemm(CUBLAS_OP_T, (int)OC, (int)N, (int)IC, w, (int)IC, inp, N * IC, (int)IC, 0.0f, out,
         OC * IC);
}

void cuda_matmul_backward(float *dinp, const float *dout, const float *w, size_t N, size_t IC,
                          size_t OC, int accumulate, bipo_matmul_precision prec) {
    (void)prec;
    if (N == 0 || IC == 0) return;
    if (OC == 0) {
        if (!accumulate) CUDA_CHECK(cudaMemsetAsync(dinp, 0, N * IC * sizeof(float), 0));
        return;
    }
    check_dims(N, IC, OC);
    gemm(CUBLAS_OP_N, (int)IC, (int)N, (int)OC, w, (int)IC, dout, N * OC, (int)OC,
         accumulate ? 1.0f : 0.0f, dinp, OC * IC);
}

// The log-softmax gradient into dlogits (logprob_cuda.cu), then the LM head's input gradient.
void cuda_logprob_matmul_backward(float *dinp, float *dlogits, const float *dlp,
                                  const float *logits, const float *lse, const int *targets,
                                  const float *w, size_t M, size_t IC, size_t V,
                                  bipo_matmul_precision prec) {
    cuda_logprob_backward(dlogits, dlp, logits, lse, targets, M, V);
    cuda_matmul_backward(dinp, dlogits, w, M, IC, V, 0, prec);
}
