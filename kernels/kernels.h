// kernels/kernels.h — the one backend table every piece of model code calls.
//
// Shape letters used everywhere in this project (llm.c style):
//   N   rows = tokens in a packed batch (variable-length sequences, no padding)
//   S   sequences in the batch;   T = tokens of one sequence
//   C   hidden size (d_model)     NH = query heads   NKV = key/value heads   HD = head dim
//   FF  MLP inner size            V  = vocab size    L  = decoder layers
//   M   rows whose log-probs are scored (response + EOS positions only)
// Weights are HF layout: a linear layer W is (out, in) = [OC, IC], y = x @ W^T.
// Gradients are prefixed d. Backward ops compute input gradients only: weights are frozen,
// there are no weight gradients anywhere in this project.
//
// Conventions:
//  * float pointers are backend (device) buffers from be->alloc; CPU = host memory.
//  * index arrays (tokens, positions, sequence offsets, targets, masks) are HOST arrays;
//    a device backend uploads them itself.
//  * unless a comment says "accumulates", a backward op SETS its outputs.
//  * ops never allocate per call on the hot path except through the backend's scratch.
#ifndef BIPO_KERNELS_H
#define BIPO_KERNELS_H
#include <stddef.h>
#include <stdint.h>

// Packed sequence layout for attention. Sequence s owns query rows [q_off[s], q_off[s+1]) and
// key/value rows [k_off[s], k_off[s+1]). The nq = q_off[s+1]-q_off[s] queries are the LAST nq
// positions of the nk keys (nq == nk for a full pass, nq < nk when decoding with a KV cache):
// query i of sequence s sits at absolute position (nk - nq + i) and sees key j iff
// j <= that position and (window == 0 || position - j < window).
typedef struct {
    size_t S;           // number of sequences
    const size_t *q_off; // [S+1] host
    const size_t *k_off; // [S+1] host
} bipo_seqs;

// Number of floats the saved attention probabilities take: sum_s NH * nq_s * nk_s.
size_t bipo_att_floats(const bipo_seqs *sq, size_t NH);

// Arithmetic of the linear layers' GEMMs (matmul_forward/backward on registered weights).
typedef enum {
    BIPO_MATMUL_FP32 = 0, // fp32 products and sums
    // each fp32 product from three bf16 products with fp32 sums (hi*hi + hi*lo + lo*hi, x = hi +
    // lo): ~1e-6 relative to the terms instead of fp32's ~1e-7, on CPU matrix units (Intel AMX)
    BIPO_MATMUL_BF16X3 = 1,
} bipo_matmul_precision;

typedef struct bipo_backend {
    const char *name; // "cpu" or "cuda"

    // ---- memory ----
    float *(*alloc)(size_t nfloats);  // zero-initialized, fatal on failure
    void (*free)(float *p);
    void (*upload)(float *dst, const float *src_host, size_t n);   // host -> backend
    void (*download)(float *dst_host, const float *src, size_t n); // backend -> host
    void (*copy)(float *dst, const float *src, size_t n);          // backend -> backend
    void (*zero)(float *p, size_t n);
    void (*sync)(void);
    // Frozen weights: [w, w + n) holds parameters that stay constant until released, so the
    // backend may keep a transformed copy (the CPU backend packs them into AMX tiles for bf16x3).
    // Optional (NULL = nothing to do). Release before freeing or changing the weights.
    void (*weights_register)(const float *w, size_t n);
    void (*weights_release)(const float *w, size_t n);
    // Pure query, no state: 1 when this backend runs `p` natively, 0 when a call with `p`
    // falls back to fp32 (bf16x3 needs AMX on the CPU backend; BIPO_AMX=0 switches it off).
    int (*supports_precision)(bipo_matmul_precision p);
    // One line about the backend's libraries and hardware for reports, e.g. "OpenBLAS 0.3.21
    // DYNAMIC_ARCH ... (kernel SkylakeX), AMX bf16x3: no". Optional (NULL = nothing to say).
    const char *(*describe)(void);

    // ---- linear: out[N,OC] = inp[N,IC] @ w[OC,IC]^T ----
    // prec: the arithmetic of this call (fp32 where the backend does not support it; a weight
    // outside a registered buffer is always multiplied in fp32).
    void (*matmul_forward)(float *out, const float *inp, const float *w, size_t N, size_t IC,
                           size_t OC, bipo_matmul_precision prec);
    // dinp[N,IC] (= or += when accumulate) dout[N,OC] @ w[OC,IC]
    void (*matmul_backward)(float *dinp, const float *dout, const float *w, size_t N, size_t IC,
                            size_t OC, int accumulate, bipo_matmul_precision prec);

    // ---- RMSNorm: out[N,C] = inp * rstd * w, rstd[N] = 1/sqrt(mean(inp^2) + eps) (saved) ----
    void (*rmsnorm_forward)(float *out, float *rstd, const float *inp, const float *w, size_t N,
                            size_t C, float eps);
    // dinp[N,C] accumulates (it is the residual-stream gradient)
    void (*rmsnorm_backward)(float *dinp, const float *dout, const float *inp, const float *w,
                             const float *rstd, size_t N, size_t C);

    // ---- RoPE, HF rotate-half layout, in place on x[N, H*HD] (H heads of size HD) ----
    // pair (i, i+HD/2) of each head rotated by pos[n] * theta^(-2i/HD); pos is host [N].
    void (*rope_forward)(float *x, const int *pos, size_t N, size_t H, size_t HD, float theta);
    // in place: dx <- R^T dx (rotation by the negative angle)
    void (*rope_backward)(float *dx, const int *pos, size_t N, size_t H, size_t HD, float theta);

    // ---- causal attention with GQA (NH % NKV == 0) and optional sliding window ----
    // q[Nq, NH*HD], k,v[Nk, NKV*HD] -> out[Nq, NH*HD]; scale = 1/sqrt(HD).
    // att: saved probabilities [bipo_att_floats] for backward, or NULL (not saved).
    void (*attention_forward)(float *out, float *att, const float *q, const float *k,
                              const float *v, const bipo_seqs *sq, size_t NH, size_t NKV,
                              size_t HD, size_t window);
    // dq[Nq,NH*HD], dk,dv[Nk,NKV*HD] set, from dout[Nq,NH*HD] and the saved att.
    void (*attention_backward)(float *dq, float *dk, float *dv, const float *dout,
                               const float *q, const float *k, const float *v, const float *att,
                               const bipo_seqs *sq, size_t NH, size_t NKV, size_t HD);

    // ---- SwiGLU: out[N,FF] = silu(gate) * up ----
    void (*swiglu_forward)(float *out, const float *gate, const float *up, size_t n);
    void (*swiglu_backward)(float *dgate, float *dup, const float *dout, const float *gate,
                            const float *up, size_t n);

    // ---- residual: out = a + b (out may alias a) ----
    void (*residual_forward)(float *out, const float *a, const float *b, size_t n);
    // da += dout, db += dout  (accumulates; either may be NULL)
    void (*residual_backward)(float *da, float *db, const float *dout, size_t n);

    // ---- embedding gather (forward only): out[N,C] = wte[tokens[n], :] ----
    void (*embedding_forward)(float *out, const int *tokens, const float *wte, size_t N, size_t C);

    // ---- gather rows: out[M,C] = inp[rows[m], :]  (selects scored rows for the LM head) ----
    void (*gather_rows)(float *out, const float *inp, const size_t *rows, size_t M, size_t C);
    // dinp[rows[m], :] += dout[m, :]  (accumulates)
    void (*scatter_add_rows)(float *dinp, const float *dout, const size_t *rows, size_t M,
                             size_t C);

    // ---- log-softmax + gather at the M scored rows ----
    // lp[m] = logits[m, targets[m]] - logsumexp(logits[m, :]); lse[M] saved. lp, lse backend.
    void (*logprob_forward)(float *lp, float *lse, const float *logits, const int *targets,
                            size_t M, size_t V);
    // dlogits[M,V] = dlp[m] * (onehot(targets[m]) - softmax(logits[m])); dlp is HOST [M].
    void (*logprob_backward)(float *dlogits, const float *dlp, const float *logits,
                             const float *lse, const int *targets, size_t M, size_t V);

    // The two above and the LM head's input gradient in one: dinp[M,IC] = dlogits @ w[V,IC] with
    // dlogits = logprob_backward(dlp, logits, lse, targets); dlogits [M,V] is scratch the op may
    // use (the CPU backend's bf16x3 path never writes it). dlp is HOST [M]. Optional (NULL:
    // callers run logprob_backward, then matmul_backward).
    void (*logprob_matmul_backward)(float *dinp, float *dlogits, const float *dlp,
                                    const float *logits, const float *lse, const int *targets,
                                    const float *w, size_t M, size_t IC, size_t V,
                                    bipo_matmul_precision prec);

    // ---- steering hook: h[N,C] += scale * v[C] on rows where mask[n] != 0 (mask NULL = all) --
    void (*add_vector_forward)(float *h, const float *v, float scale, const uint8_t *mask,
                               size_t N, size_t C);
    // dv[C] += scale * sum over masked rows of dh[n, :]  (accumulates)
    void (*add_vector_backward)(float *dv, const float *dh, float scale, const uint8_t *mask,
                                size_t N, size_t C);
} bipo_backend;

// The one way to get a backend: "cpu" (OpenBLAS + OpenMP, always available), "cuda" (CUDA +
// cuBLAS, when compiled in and a GPU is present) or "auto" / NULL (CUDA when available, else
// CPU). threads > 0 sets the host threads the backend uses (OpenMP and OpenBLAS together);
// threads <= 0 keeps the current count (on first use: OMP_NUM_THREADS, else all cores).
// NULL + bipo_set_error for an unknown or unavailable name.
const bipo_backend *bipo_backend_open(const char *name, int threads);
int bipo_backend_cpu_threads(void); // host threads the CPU backend uses now

// Call first thing in main() (before MPI_Init): when OpenBLAS fell back to a generic SSE kernel
// on a CPU it does not know, re-executes the program once with OPENBLAS_CORETYPE set to the
// best kernel the CPU supports (see kernels/cpu/blas_tune.c). Returns when nothing to do.
void bipo_blas_tune(char **argv);
const char *bipo_blas_corename(void); // the OpenBLAS kernel in use, for reports
const char *bipo_blas_config(void);   // OpenBLAS's build description (openblas_get_config)

#endif
