// kernels/cpu/cpu_internal.h — shared between the CPU backend's files (not a public header).
#ifndef BIPO_CPU_INTERNAL_H
#define BIPO_CPU_INTERNAL_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend_impl.h" // defines: bipo_backend_cpu_set_threads
#include "kernels.h"      // defines: bipo_seqs, bipo_backend

// Threads every OpenMP region of the CPU backend uses (num_threads clause), set by
// bipo_backend_cpu_set_threads. The clause (not only omp_set_num_threads) keeps the count
// right when the backend is called from a host thread other than the one that set it.
extern int bipo_cpu_nt;

// Per-thread scratch that grows and is never shrunk: no allocation on the hot path once the
// largest shape has been seen. Slots let one thread hold several buffers at once (the thread
// that calls an op is also OpenMP worker 0 inside it). Thread-local, so ops are thread-safe.
enum {
    CPU_SCRATCH_CALLER_0,
    CPU_SCRATCH_CALLER_1,
    CPU_SCRATCH_CALLER_2,
    CPU_SCRATCH_WORKER,
    CPU_SCRATCH_SLOTS
};
void *bipo_cpu_scratch(int slot, size_t bytes);

// e^x in plain C that the compiler vectorizes inside `omp simd` loops (glibc's expf is a
// scalar call; its vector variants are only declared under -ffast-math). Cody-Waite reduction
// x = n ln2 + r, |r| <= ln2/2, Cephes' degree-6 polynomial for e^r, 2^n put into the exponent
// bits. Max error 1.01 ulp against exp() in double (checked on every float in [-87.3, 88]).
// Domain: x <= 88 (larger x saturates at e^88); e^x < 2^-126 (x < -87.3) comes out as 0 or a
// subnormal close to it; NaN propagates. Every use here has x <= 0 or close to it.
static inline float bipo_expf(float x) {
    x = x < -88.0f ? -88.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float shift = 12582912.0f;          // 1.5 * 2^23: adding it rounds to an integer
    const float t = fmaf(x, 1.44269504088896341f, shift), n = t - shift;
    float r = fmaf(n, -0.693359375f, x);      // ln2 split so n * hi is exact
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r) + 1.0f;
    int32_t ti, ni;
    memcpy(&ti, &t, sizeof ti);
    ni = ti - 0x4B400000;                     // n as an integer, in [-127, 127]
    const int32_t bits = (ni + 127) * (1 << 23); // 2^n (0 when n = -127)
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// ---- GEMMs on registered (frozen) weights: gemm_packed.c dispatches, gemm_amx.c computes ----
// Row counts below this go to OpenBLAS (token-by-token decoding: a GEMV, memory-bound anyway).
#define BIPO_CPU_GEMM_MIN_ROWS 8
void bipo_cpu_gemm_register(const float *base, size_t n);
void bipo_cpu_gemm_release(const float *base, size_t n);
int bipo_cpu_supports_precision(bipo_matmul_precision p); // fp32 always, bf16x3 with AMX
// The matmul ops on this path (prec = BIPO_MATMUL_BF16X3 on AMX); return 0 (nothing done) when
// it does not apply.
int bipo_cpu_gemm_forward(float *out, const float *inp, const float *w, size_t N, size_t IC,
                          size_t OC, bipo_matmul_precision prec);
int bipo_cpu_gemm_backward(float *dinp, const float *dout, const float *w, size_t N, size_t IC,
                           size_t OC, int accumulate, bipo_matmul_precision prec);
int bipo_cpu_gemm_logprob_backward(float *dinp, const float *dlp, const float *logits,
                                   const float *lse, const int *targets, const float *w, size_t M,
                                   size_t IC, size_t V, bipo_matmul_precision prec);
const char *bipo_cpu_describe(void); // blas_tune.c: OpenBLAS build, kernel, AMX

// ---- AMX bf16x3 (gemm_amx.c) ----
int bipo_cpu_amx_available(void); // AMX-BF16 + AVX512-BF16 present and the OS grants tiles
size_t bipo_amx_b_elems(size_t K, size_t NC);
void bipo_amx_pack_b(uint16_t *hi, uint16_t *lo, const float *src, size_t sk, size_t sj,
                     size_t K, size_t NC);
// With sg, A holds logits and the GEMM's left operand is their log-prob gradient
// dlp[r] * (onehot(targets[r]) - exp(A[r] - lse[r])), made while splitting (K = vocabulary).
typedef struct {
    const float *dlp, *lse; // [N] host
    const int *targets;     // [N]
} bipo_amx_softmax_grad;
void bipo_amx_gemm(float *C, size_t ldc, const float *A, size_t lda, const uint16_t *bhi,
                   const uint16_t *blo, size_t N, size_t K, size_t NC, int accumulate,
                   const bipo_amx_softmax_grad *sg);

void bipo_cpu_attention_forward(float *out, float *att, const float *q, const float *k,
                                const float *v, const bipo_seqs *sq, size_t NH, size_t NKV,
                                size_t HD, size_t window);
void bipo_cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                 const float *q, const float *k, const float *v,
                                 const float *att, const bipo_seqs *sq, size_t NH, size_t NKV,
                                 size_t HD);

#endif
