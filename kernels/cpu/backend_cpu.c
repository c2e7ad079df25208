// kernels/cpu/backend_cpu.c — the CPU backend: OpenBLAS sgemm for the linear layers, OpenMP
// for everything else (attention lives in attention_cpu.c). Forward and backward side by side.
//
// Threads: OpenMP owns them all (bipo_backend_cpu_set_threads); OpenBLAS runs single-threaded
// calls, one per OpenMP thread on a slice of the output (see cpu_matmul_forward).
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h> // defines: cblas_sgemm

#include "cpu_internal.h" // defines: bipo_cpu_nt, bipo_cpu_scratch, bipo_cpu_attention_*, bipo_expf
#include "util.h"         // defines: CHECK, xmalloc

void openblas_set_num_threads(int); // OpenBLAS's cblas.h declares it; netlib's does not

int bipo_cpu_nt = 1;
static int cpu_threads_set = 0; // set_threads called: bipo_backend_cpu() keeps the choice

// ---- threads ---------------------------------------------------------------------------
void bipo_backend_cpu_set_threads(int n) {
    if (n <= 0) {
        const char *e = getenv("OMP_NUM_THREADS"); // "4" or a list "4,2": the first level
        n = e ? atoi(e) : 0;
        if (n <= 0) n = omp_get_num_procs();
    }
    bipo_cpu_nt = n;
    cpu_threads_set = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(1); // OpenMP owns the threads: see cpu_matmul_forward
}
int bipo_backend_cpu_threads(void) { return bipo_cpu_nt; }

// ---- scratch -----------------------------------------------------------------------------
void *bipo_cpu_scratch(int slot, size_t bytes) {
    static _Thread_local void *buf[CPU_SCRATCH_SLOTS];
    static _Thread_local size_t cap[CPU_SCRATCH_SLOTS];
    if (bytes > cap[slot]) {
        free(buf[slot]);
        size_t want = bytes < 4096 ? 4096 : bytes + bytes / 2;
        buf[slot] = xmalloc(want);
        cap[slot] = want;
    }
    return buf[slot];
}

// Elementwise loops go parallel only when there is enough work to pay for the fork.
#define PAR_MIN 16384

// ---- memory ------------------------------------------------------------------------------
static float *cpu_alloc(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63; // aligned_alloc wants a multiple
    if (bytes == 0) bytes = 64;
    float *p = aligned_alloc(64, bytes);
    CHECK(p != NULL, "out of memory allocating %zu floats (%.1f MiB)", n, bytes / 1048576.0);
    memset(p, 0, bytes);
    return p;
}
static void cpu_free(float *p) { free(p); }
static void cpu_memcpy(float *dst, const float *src, size_t n) {
    if (n) memcpy(dst, src, n * sizeof(float));
}
static void cpu_zero(float *p, size_t n) {
    if (n) memset(p, 0, n * sizeof(float));
}
static void cpu_sync(void) {}

// ---- linear: out[N,OC] = inp[N,IC] @ w[OC,IC]^T -------------------------------------------
// The GEMMs run single-threaded OpenBLAS calls inside an OpenMP region, each thread on its own
// slice of output columns: OpenMP owns every thread. With OpenBLAS's own pthreads next to
// OpenMP's, the two pools spin-wait against each other on a 2-core machine (measured here:
// token-by-token decoding 12x slower, prompt processing 2x slower).
static size_t col_slice(size_t n, int t, int nt, size_t *c0) {
    // slices aligned to 16 columns (whole vector registers), the last one takes the rest
    size_t chunk = ((n + (size_t)nt - 1) / (size_t)nt + 15) / 16 * 16;
    *c0 = (size_t)t * chunk;
    if (*c0 >= n) return 0;
    return n - *c0 < chunk ? n - *c0 : chunk;
}

static void cpu_matmul_forward(float *out, const float *inp, const float *w, size_t N, size_t IC,
                               size_t OC, bipo_matmul_precision prec) {
    if (N == 0 || OC == 0) return;
    if (IC == 0) { cpu_zero(out, N * OC); return; }
    if (bipo_cpu_gemm_forward(out, inp, w, N, IC, OC, prec)) return;
#pragma omp parallel num_threads(bipo_cpu_nt)
    {
        size_t o0, no = col_slice(OC, omp_get_thread_num(), omp_get_num_threads(), &o0);
        if (no) // out[:, o0:o0+no] = inp @ w[o0:o0+no, :]^T
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)no, (int)IC, 1.0f,
                        inp, (int)IC, w + o0 * IC, (int)IC, 0.0f, out + o0, (int)OC);
    }
}
static void cpu_matmul_backward(float *dinp, const float *dout, const float *w, size_t N,
                                size_t IC, size_t OC, int accumulate, bipo_matmul_precision prec) {
    if (N == 0 || IC == 0) return;
    if (OC == 0) { if (!accumulate) cpu_zero(dinp, N * IC); return; }
    if (bipo_cpu_gemm_backward(dinp, dout, w, N, IC, OC, accumulate, prec)) return;
#pragma omp parallel num_threads(bipo_cpu_nt)
    {
        size_t i0, ni = col_slice(IC, omp_get_thread_num(), omp_get_num_threads(), &i0);
        if (ni) // dinp[:, i0:i0+ni] (+)= dout @ w[:, i0:i0+ni]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)ni, (int)OC, 1.0f,
                        dout, (int)OC, w + i0, (int)IC, accumulate ? 1.0f : 0.0f, dinp + i0,
                        (int)IC);
    }
}

// ---- RMSNorm -----------------------------------------------------------------------------
// out = w * (inp * rstd), rstd = 1/sqrt(mean(inp^2) + eps); the mean of squares in double.
static void cpu_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w,
                                size_t N, size_t C, float eps) {
#pragma omp parallel for num_threads(bipo_cpu_nt) if (N * C >= PAR_MIN) schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        double ss = 0.0;
#pragma omp simd reduction(+ : ss)
        for (size_t c = 0; c < C; c++) ss += (double)x[c] * x[c];
        const float r = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
        float *o = out + n * C;
#pragma omp simd
        for (size_t c = 0; c < C; c++) o[c] = w[c] * (x[c] * r);
        rstd[n] = r;
    }
}
// dinp += r w dout - (r^3 / C) x sum_c(dout w x)   (accumulates)
static void cpu_rmsnorm_backward(float *dinp, const float *dout, const float *inp, const float *w,
                                 const float *rstd, size_t N, size_t C) {
#pragma omp parallel for num_threads(bipo_cpu_nt) if (N * C >= PAR_MIN) schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *dy = dout + n * C;
        const float r = rstd[n];
        double dot = 0.0;
#pragma omp simd reduction(+ : dot)
        for (size_t c = 0; c < C; c++) dot += (double)(dy[c] * w[c]) * x[c];
        const float k = (float)(dot * r * r * r / (double)C);
        float *dx = dinp + n * C;
#pragma omp simd
        for (size_t c = 0; c < C; c++) dx[c] += r * w[c] * dy[c] - k * x[c];
    }
}

// ---- RoPE (HF rotate-half) ------------------------------------------------------------------
// Angles as HF computes them, so numbers agree with PyTorch: inv_freq[i] = 1/theta^(2i/HD)
// in float32, angle = (float)pos * inv_freq[i] in float32; cos/sin of that float angle are
// evaluated in double and rounded once (torch's float32 cos/sin are accurate to ~1 ulp).
// The angles depend on (position, i) only and every layer of a forward reuses them: a table of
// cos/sin by position (per host thread, grown to the largest position seen) replaces ~N*HD/2
// sincos calls per op. Positions past ROPE_TABLE_MAX are computed directly.
#define ROPE_TABLE_MAX 65536
typedef struct {
    float theta;
    size_t HD, npos; // cos/sin of positions [0, npos)
    float *cs, *sn;  // [npos][HD/2]
} rope_table;
static _Thread_local rope_table rope_tab;

static void rope_angles(float *cs, float *sn, int p, const float *inv_freq, size_t half) {
    for (size_t i = 0; i < half; i++) {
        const float ang = (float)p * inv_freq[i];
        cs[i] = (float)cos((double)ang);
        sn[i] = (float)sin((double)ang);
    }
}

// sign = +1: x <- R x;  sign = -1: x <- R^T x.
static void rope_apply(float *x, const int *pos, size_t N, size_t H, size_t HD, float theta,
                       float sign) {
    CHECK(HD % 2 == 0 && HD <= 4096, "rope: head dim %zu must be even (and <= 4096)", HD);
    const size_t half = HD / 2;
    float inv_freq[2048];
    for (size_t i = 0; i < half; i++)
        inv_freq[i] = 1.0f / powf(theta, (float)(2 * i) / (float)HD);
    int maxpos = 0;
    for (size_t n = 0; n < N; n++) {
        CHECK(pos[n] >= 0, "rope: negative position %d", pos[n]);
        if (pos[n] > maxpos) maxpos = pos[n];
    }
    rope_table *t = &rope_tab;
    if (t->theta != theta || t->HD != HD) { // another model: start over
        free(t->cs), free(t->sn);
        *t = (rope_table){theta, HD, 0, NULL, NULL};
    }
    size_t want = (size_t)maxpos + 1 < ROPE_TABLE_MAX ? (size_t)maxpos + 1 : ROPE_TABLE_MAX;
    if (want > t->npos) {
        size_t np = want < 2 * t->npos ? 2 * t->npos : want;
        np = np < ROPE_TABLE_MAX ? np : ROPE_TABLE_MAX;
        t->cs = xrealloc(t->cs, np * half * sizeof(float));
        t->sn = xrealloc(t->sn, np * half * sizeof(float));
        for (size_t p = t->npos; p < np; p++)
            rope_angles(t->cs + p * half, t->sn + p * half, (int)p, inv_freq, half);
        t->npos = np;
    }
    const float *tcs = t->cs, *tsn = t->sn;
    const size_t npos = t->npos;
#pragma omp parallel for num_threads(bipo_cpu_nt) if (N * H * HD >= PAR_MIN) schedule(static)
    for (size_t n = 0; n < N; n++) {
        float cbuf[2048], sbuf[2048];
        const float *cs = tcs + (size_t)pos[n] * half, *sn = tsn + (size_t)pos[n] * half;
        if ((size_t)pos[n] >= npos) {
            rope_angles(cbuf, sbuf, pos[n], inv_freq, half);
            cs = cbuf, sn = sbuf;
        }
        for (size_t h = 0; h < H; h++) {
            float *x1 = x + (n * H + h) * HD, *x2 = x1 + half;
#pragma omp simd
            for (size_t i = 0; i < half; i++) {
                const float a = x1[i], b = x2[i], c = cs[i], si = sign * sn[i];
                x1[i] = a * c - b * si;
                x2[i] = b * c + a * si;
            }
        }
    }
}
static void cpu_rope_forward(float *x, const int *pos, size_t N, size_t H, size_t HD, float theta) {
    rope_apply(x, pos, N, H, HD, theta, 1.0f);
}
static void cpu_rope_backward(float *dx, const int *pos, size_t N, size_t H, size_t HD,
                              float theta) {
    rope_apply(dx, pos, N, H, HD, theta, -1.0f);
}

// ---- SwiGLU: out = silu(g) * u ----------------------------------------------------------
// Branch-free on e = exp(-|g|) <= 1 (no overflow), with the vectorizable bipo_expf: the
// scalar libm expf call was ~12% of a prompt-processing forward.
static inline float sigmoidf_stable(float g) {
    const float e = bipo_expf(-fabsf(g)), inv = 1.0f / (1.0f + e);
    return g >= 0.0f ? inv : e * inv;
}
static void cpu_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
#pragma omp parallel for simd num_threads(bipo_cpu_nt) if (n >= PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = gate[i] * sigmoidf_stable(gate[i]) * up[i];
}
// d silu(g)/dg = s (1 + g (1 - s)), s = sigmoid(g)
static void cpu_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                                const float *up, size_t n) {
#pragma omp parallel for simd num_threads(bipo_cpu_nt) if (n >= PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i], s = sigmoidf_stable(g);
        dgate[i] = dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        dup[i] = dout[i] * g * s;
    }
}

// ---- residual ------------------------------------------------------------------------------
static void cpu_residual_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd num_threads(bipo_cpu_nt) if (n >= PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
static void cpu_residual_backward(float *da, float *db, const float *dout, size_t n) {
    float *d[2] = {da, db};
    for (int t = 0; t < 2; t++) {
        float *g = d[t];
        if (!g) continue;
#pragma omp parallel for simd num_threads(bipo_cpu_nt) if (n >= PAR_MIN) schedule(static)
        for (size_t i = 0; i < n; i++) g[i] += dout[i];
    }
}

// ---- embedding / row gather / row scatter --------------------------------------------------
static void cpu_embedding_forward(float *out, const int *tokens, const float *wte, size_t N,
                                  size_t C) {
    for (size_t n = 0; n < N; n++) CHECK(tokens[n] >= 0, "embedding: token %d at row %zu", tokens[n], n);
#pragma omp parallel for num_threads(bipo_cpu_nt) if (N * C >= PAR_MIN) schedule(static)
    for (size_t n = 0; n < N; n++) memcpy(out + n * C, wte + (size_t)tokens[n] * C, C * sizeof(float));
}
static void cpu_gather_rows(float *out, const float *inp, const size_t *rows, size_t M, size_t C) {
#pragma omp parallel for num_threads(bipo_cpu_nt) if (M * C >= PAR_MIN) schedule(static)
    for (size_t m = 0; m < M; m++) memcpy(out + m * C, inp + rows[m] * C, C * sizeof(float));
}
// Serial over m: rows may repeat, and M*C is tiny next to the LM head it feeds.
static void cpu_scatter_add_rows(float *dinp, const float *dout, const size_t *rows, size_t M,
                                 size_t C) {
    for (size_t m = 0; m < M; m++) {
        float *d = dinp + rows[m] * C;
        const float *s = dout + m * C;
#pragma omp simd
        for (size_t c = 0; c < C; c++) d[c] += s[c];
    }
}

// ---- log-softmax at the targets ------------------------------------------------------------
// lse = max + log(sum exp(x - max)): every exp argument <= 0, the sum (in double) >= 1.
static void cpu_logprob_forward(float *lp, float *lse, const float *logits, const int *targets,
                                size_t M, size_t V) {
    for (size_t m = 0; m < M; m++)
        CHECK(targets[m] >= 0 && (size_t)targets[m] < V, "logprob: target %d at row %zu outside vocab %zu",
              targets[m], m, V);
#pragma omp parallel for num_threads(bipo_cpu_nt) if (M * V >= PAR_MIN) schedule(static)
    for (size_t m = 0; m < M; m++) {
        const float *x = logits + m * V;
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (size_t i = 0; i < V; i++) mx = x[i] > mx ? x[i] : mx;
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (size_t i = 0; i < V; i++) sum += (double)bipo_expf(x[i] - mx);
        const float l = (float)((double)mx + log(sum));
        lse[m] = l;
        lp[m] = x[targets[m]] - l;
    }
}
static void cpu_logprob_backward(float *dlogits, const float *dlp, const float *logits,
                                 const float *lse, const int *targets, size_t M, size_t V) {
#pragma omp parallel for num_threads(bipo_cpu_nt) if (M * V >= PAR_MIN) schedule(static)
    for (size_t m = 0; m < M; m++) {
        const float *x = logits + m * V;
        float *d = dlogits + m * V;
        const float g = dlp[m], l = lse[m];
#pragma omp simd
        for (size_t i = 0; i < V; i++) d[i] = -g * bipo_expf(x[i] - l); // x - l <= ~0
        d[targets[m]] += g;
    }
}

static void cpu_logprob_matmul_backward(float *dinp, float *dlogits, const float *dlp,
                                        const float *logits, const float *lse, const int *targets,
                                        const float *w, size_t M, size_t IC, size_t V,
                                        bipo_matmul_precision prec) {
    if (bipo_cpu_gemm_logprob_backward(dinp, dlp, logits, lse, targets, w, M, IC, V, prec)) return;
    cpu_logprob_backward(dlogits, dlp, logits, lse, targets, M, V);
    cpu_matmul_backward(dinp, dlogits, w, M, IC, V, 0, prec);
}

// ---- steering hook -------------------------------------------------------------------------
static void cpu_add_vector_forward(float *h, const float *v, float scale, const uint8_t *mask,
                                   size_t N, size_t C) {
#pragma omp parallel for num_threads(bipo_cpu_nt) if (N * C >= PAR_MIN) schedule(static)
    for (size_t n = 0; n < N; n++) {
        if (mask && !mask[n]) continue;
        float *r = h + n * C;
#pragma omp simd
        for (size_t c = 0; c < C; c++) r[c] += scale * v[c];
    }
}
// dv[C] += scale * sum over masked rows of dh[n,:]; columns in blocks of 64 per thread, each
// summed over rows in double (N can be thousands of rows).
static void cpu_add_vector_backward(float *dv, const float *dh, float scale, const uint8_t *mask,
                                    size_t N, size_t C) {
    enum { CB = 64 };
    const size_t nb = (C + CB - 1) / CB;
#pragma omp parallel for num_threads(bipo_cpu_nt) if (N * C >= PAR_MIN) schedule(static)
    for (size_t b = 0; b < nb; b++) {
        const size_t c0 = b * CB, c1 = c0 + CB < C ? c0 + CB : C;
        double acc[CB] = {0};
        for (size_t n = 0; n < N; n++) {
            if (mask && !mask[n]) continue;
            const float *r = dh + n * C;
#pragma omp simd
            for (size_t c = c0; c < c1; c++) acc[c - c0] += r[c];
        }
        for (size_t c = c0; c < c1; c++) dv[c] += (float)(scale * acc[c - c0]);
    }
}

// ---- the table -----------------------------------------------------------------------------
static const bipo_backend cpu_backend = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .copy = cpu_memcpy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .weights_register = bipo_cpu_gemm_register,
    .weights_release = bipo_cpu_gemm_release,
    .supports_precision = bipo_cpu_supports_precision,
    .describe = bipo_cpu_describe,
    .matmul_forward = cpu_matmul_forward,
    .matmul_backward = cpu_matmul_backward,
    .rmsnorm_forward = cpu_rmsnorm_forward,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .rope_forward = cpu_rope_forward,
    .rope_backward = cpu_rope_backward,
    .attention_forward = bipo_cpu_attention_forward,
    .attention_backward = bipo_cpu_attention_backward,
    .swiglu_forward = cpu_swiglu_forward,
    .swiglu_backward = cpu_swiglu_backward,
    .residual_forward = cpu_residual_forward,
    .residual_backward = cpu_residual_backward,
    .embedding_forward = cpu_embedding_forward,
    .gather_rows = cpu_gather_rows,
    .scatter_add_rows = cpu_scatter_add_rows,
    .logprob_forward = cpu_logprob_forward,
    .logprob_backward = cpu_logprob_backward,
    .logprob_matmul_backward = cpu_logprob_matmul_backward,
    .add_vector_forward = cpu_add_vector_forward,
    .add_vector_backward = cpu_add_vector_backward,
};

static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;
static void cpu_init(void) {
    if (!cpu_threads_set) bipo_backend_cpu_set_threads(0);
}

const bipo_backend *bipo_backend_cpu(void) {
    pthread_once(&cpu_once, cpu_init);
    return &cpu_backend;
}
