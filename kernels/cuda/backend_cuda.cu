// kernels/cuda/backend_cuda.cu — the CUDA backend: device probe, memory, scratch and the table
// (CUDA runtime API + cuBLAS only; never the driver API, so the binary runs on machines without
// libcuda). Compiled only when CMake finds nvcc; the core then gets BIPO_HAVE_CUDA and takes
// bipo_backend_cuda() from here. The ops live one family per file: gemm_cuda.cu,
// attention_cuda.cu, norm_cuda.cu, rope_cuda.cu, swiglu_cuda.cu, residual_cuda.cu,
// rows_cuda.cu (embedding, gather, scatter), logprob_cuda.cu, steer_cuda.cu.
//
// Plain C-style host code only (pthread_once, no C++ statics or exceptions), so C executables
// link this static library without libstdc++.
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cuda_internal.h" // defines: CUDA_CHECK, bipo_cuda_scratch, the cuda_* ops

extern "C" {
#include "backend_cuda.h" // defines: bipo_cuda_table
}

// ---- memory ------------------------------------------------------------------------------------
static float *cuda_alloc(size_t n) {
    float *p = NULL;
    const size_t bytes = (n ? n : 1) * sizeof(float);
    CUDA_CHECK(cudaMalloc((void **)&p, bytes));
    CUDA_CHECK(cudaMemset(p, 0, bytes));
    return p;
}
static void cuda_free(float *p) {
    if (p) CUDA_CHECK(cudaFree(p));
}
static void cuda_upload(float *dst, const float *src, size_t n) {
    if (n) CUDA_CHECK(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyHostToDevice));
}
static void cuda_download(float *dst, const float *src, size_t n) {
    if (n) CUDA_CHECK(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost));
}
static void cuda_copy(float *dst, const float *src, size_t n) {
    if (n && dst != src)
        CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, 0));
}
static void cuda_zero(float *p, size_t n) {
    if (n) CUDA_CHECK(cudaMemsetAsync(p, 0, n * sizeof(float), 0));
}
static void cuda_sync(void) { CUDA_CHECK(cudaDeviceSynchronize()); }

// ---- scratch -----------------------------------------------------------------------------------
static void *scratch_buf[CU_SCRATCH_SLOTS];
static size_t scratch_cap[CU_SCRATCH_SLOTS];

void *bipo_cuda_scratch(int slot, size_t bytes) {
    if (bytes > scratch_cap[slot]) {
        if (scratch_buf[slot]) CUDA_CHECK(cudaFree(scratch_buf[slot])); // waits for users
        const size_t want = bytes < 4096 ? 4096 : bytes + bytes / 2;
        CUDA_CHECK(cudaMalloc(&scratch_buf[slot], want));
        scratch_cap[slot] = want;
    }
    return scratch_buf[slot];
}

const void *bipo_cuda_upload_idx(int slot, const void *host, size_t bytes) {
    void *d = bipo_cuda_scratch(slot, bytes);
    // pageable source: the copy is staged before the call returns, so the caller may reuse host
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(d, host, bytes, cudaMemcpyHostToDevice, 0));
    return d;
}

void bipo_cuda_upload_seqs(const bipo_seqs *sq, const unsigned long long **qo,
                           const unsigned long long **ko) {
    const size_t n = sq->S + 1;
    unsigned long long *h = (unsigned long long *)xmalloc(2 * n * sizeof *h);
    for (size_t s = 0; s < n; s++) h[s] = sq->q_off[s], h[n + s] = sq->k_off[s];
    const unsigned long long *d =
        (const unsigned long long *)bipo_cuda_upload_idx(CU_SCRATCH_IDX0, h, 2 * n * sizeof *h);
    free(h);
    *qo = d;
    *ko = d + n;
}

// For provenance: runtime and device, e.g. "CUDA runtime 13000, NVIDIA H200 (sm_90, 132 SMs,
// 139.8 GiB), weights BIPO_CUDA_WEIGHTS=bf16". Made once; the table is only handed out after
// the probe found a device, so the device query here succeeds.
static char cuda_desc[256];
static const char *cuda_describe(void) {
    if (!cuda_desc[0]) {
        int rt = 0, dev = 0;
        cudaDeviceProp p;
        CUDA_CHECK(cudaRuntimeGetVersion(&rt));
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
        const char *w = getenv("BIPO_CUDA_WEIGHTS");
        snprintf(cuda_desc, sizeof cuda_desc,
                 "CUDA runtime %d, %.96s (sm_%d%d, %d SMs, %.1f GiB), weights %.8s", rt, p.name,
                 p.major, p.minor, p.multiProcessorCount, p.totalGlobalMem / 1073741824.0,
                 w && *w ? w : "bf16");
    }
    return cuda_desc;
}

static const bipo_backend cuda_table = {
    .name = "cuda",
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .copy = cuda_copy,
    .zero = cuda_zero,
    .sync = cuda_sync,
    .weights_register = cuda_weights_register,
    .weights_release = cuda_weights_release,
    .supports_precision = cuda_supports_precision,
    .describe = cuda_describe,
    .matmul_forward = cuda_matmul_forward,
    .matmul_backward = cuda_matmul_backward,
    .rmsnorm_forward = cuda_rmsnorm_forward,
    .rmsnorm_backward = cuda_rmsnorm_backward,
    .rope_forward = cuda_rope_forward,
    .rope_backward = cuda_rope_backward,
    .attention_forward = cuda_attention_forward,
    .attention_backward = cuda_attention_backward,
    .swiglu_forward = cuda_swiglu_forward,
    .swiglu_backward = cuda_swiglu_backward,
    .residual_forward = cuda_residual_forward,
    .residual_backward = cuda_residual_backward,
    .embedding_forward = cuda_embedding_forward,
    .gather_rows = cuda_gather_rows,
    .scatter_add_rows = cuda_scatter_add_rows,
    .logprob_forward = cuda_logprob_forward,
    .logprob_backward = cuda_logprob_backward,
    .logprob_matmul_backward = cuda_logprob_matmul_backward,
    .add_vector_forward = cuda_add_vector_forward,
    .add_vector_backward = cuda_add_vector_backward,
};

extern "C" const bipo_backend *bipo_cuda_table(void) { return &cuda_table; }

// ---- probe -------------------------------------------------------------------------------------
static pthread_once_t cuda_once = PTHREAD_ONCE_INIT;
static const bipo_backend *cuda_backend = NULL;

// A device that answers cudaGetDeviceCount, takes a context and a cuBLAS handle: the table.
// Anything less (no driver: error 35 here; no device; a broken context): NULL, CPU fallback.
static void cuda_probe(void) {
    int ndev = 0;
    cudaError_t err = cudaGetDeviceCount(&ndev);
    if (err != cudaSuccess || ndev <= 0) {
        (void)cudaGetLastError(); // clear the sticky error state
        return;
    }
    if (cudaSetDevice(0) != cudaSuccess || cudaFree(0) != cudaSuccess) {
        fprintf(stderr, "note: CUDA device 0 did not take a context (%s); using the CPU backend\n",
                cudaGetErrorString(cudaGetLastError()));
        return;
    }
    if (!bipo_cuda_cublas()) {
        fprintf(stderr, "note: cuBLAS did not initialize on CUDA device 0; using the CPU backend\n");
        return;
    }
    cuda_backend = &cuda_table;
}

extern "C" const bipo_backend *bipo_backend_cuda(void) {
    pthread_once(&cuda_once, cuda_probe);
    return cuda_backend;
}
