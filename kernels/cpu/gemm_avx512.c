// kernels/cpu/gemm_avx512.c — the linear layers' GEMMs on AVX-512 CPUs, with the frozen weights
// packed once (OpenBLAS repacks both operands on every call: ~17 % of a BiPO step here).
//
//   C[N, NC] (= or +=) A[N, K] @ B[K, NC]
//
// B is read as column panels of NR = 32 floats: element (k, j) sits at
//   B[(j / NR) * pstride + k * ldb + j % NR]
// which covers both cases the model needs without a per-call copy:
//   forward  out = inp @ W^T:  B = W^T, packed once per weight into panels [K][NR]
//                              (pstride = K * NR, ldb = NR, zero-padded past NC);
//   backward dinp = dout @ W:  B = W itself, row-major [OC][IC] (pstride = NR, ldb = IC).
//
// Micro-kernel: MR = 14 rows x NR = 32 columns of C in 28 zmm accumulators; per k two vector
// loads of B and 14 broadcasts of A (embedded in the FMAs). Blocking: KC = 384 of K so the
// A rows (14 x KC) stay in L1, column chunks of NCB panels so a KC x NCB*NR block of B stays in
// L2 while every row block of A passes over it. Threads split the panels of a chunk.
//
// Only weights inside a registered region (bipo_cpu_gemm_register: the model's parameter
// buffer) are packed, so a caller that reuses a buffer for something else can never hit a stale
// copy; bipo_cpu_gemm_release drops the copies (model free, LoRA merge).
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <immintrin.h>

#include "cpu_internal.h" // defines: bipo_cpu_nt, bipo_cpu_gemm_*
#include "util.h"         // defines: xmalloc, xcalloc, CHECK

#define MR 14
#define NR 32
#define KC 384
#define NCB 16 // panels per column chunk: KC x 512 floats = 768 KiB of B

#define AVX512 __attribute__((target("avx512f")))

// C[mr, 32] (= or +=) A[mr, kc] @ B[kc, 32]; m0/m1 mask the two 16-column halves.
static inline __attribute__((always_inline)) AVX512 void tile(const int mr, size_t kc,
                                                              const float *A, size_t lda,
                                                              const float *B, size_t ldb, float *C,
                                                              size_t ldc, __mmask16 m0,
                                                              __mmask16 m1, int add) {
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 14
    for (int r = 0; r < mr; r++) c0[r] = c1[r] = _mm512_setzero_ps();
    for (size_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_maskz_loadu_ps(m0, B + k * ldb);
        __m512 b1 = _mm512_maskz_loadu_ps(m1, B + k * ldb + 16);
#pragma GCC unroll 14
        for (int r = 0; r < mr; r++) {
            __m512 a = _mm512_set1_ps(A[(size_t)r * lda + k]);
            c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
        }
    }
#pragma GCC unroll 14
    for (int r = 0; r < mr; r++) {
        float *c = C + (size_t)r * ldc;
        if (add) {
            c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, c));
            c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, c + 16));
        }
        _mm512_mask_storeu_ps(c, m0, c0[r]);
        _mm512_mask_storeu_ps(c + 16, m1, c1[r]);
    }
}

#define TILE_CASE(n)                                                                              \
    case n:                                                                                       \
        tile(n, kc, A, lda, B, ldb, C, ldc, m0, m1, add);                                         \
        break;

static AVX512 void tile_any(int mr, size_t kc, const float *A, size_t lda, const float *B,
                            size_t ldb, float *C, size_t ldc, __mmask16 m0, __mmask16 m1,
                            int add) {
    switch (mr) {
        TILE_CASE(14) TILE_CASE(13) TILE_CASE(12) TILE_CASE(11) TILE_CASE(10) TILE_CASE(9)
        TILE_CASE(8) TILE_CASE(7) TILE_CASE(6) TILE_CASE(5) TILE_CASE(4) TILE_CASE(3)
        TILE_CASE(2) TILE_CASE(1)
    default: break;
    }
}

static __mmask16 half_mask(size_t width) { // the first min(width, 16) lanes
    return width >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << width) - 1u);
}

void bipo_cpu_gemm(float *C, size_t ldc, const float *A, size_t lda, const float *B,
                   size_t pstride, size_t ldb, size_t N, size_t K, size_t NC, int accumulate) {
    size_t np = (NC + NR - 1) / NR;
#pragma omp parallel num_threads(bipo_cpu_nt)
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        for (size_t j0 = 0; j0 < np; j0 += NCB) { // column chunk: panels [j0, j1)
            size_t j1 = j0 + NCB < np ? j0 + NCB : np, cnt = j1 - j0;
            // this thread's panels of the chunk (contiguous, as even as possible)
            size_t p0 = j0 + cnt * (size_t)t / (size_t)nt, p1 = j0 + cnt * (size_t)(t + 1) / (size_t)nt;
            if (p0 == p1) continue;
            for (size_t k0 = 0; k0 < K; k0 += KC) {
                size_t kc = K - k0 < KC ? K - k0 : KC;
                int add = accumulate || k0 > 0;
                for (size_t i = 0; i < N; i += MR) {
                    int mr = N - i < MR ? (int)(N - i) : MR;
                    for (size_t p = p0; p < p1; p++) {
                        size_t w = NC - p * NR < NR ? NC - p * NR : NR;
                        tile_any(mr, kc, A + i * lda + k0, lda, B + p * pstride + k0 * ldb, ldb,
                                 C + i * ldc + p * NR, ldc, half_mask(w),
                                 half_mask(w > 16 ? w - 16 : 0), add);
                    }
                }
            }
        }
    }
}

// ---- which CPUs, and the packed weights ----------------------------------------------------

static int gemm_on = -1; // -1: not decided yet

int bipo_cpu_gemm_available(void) {
    if (gemm_on < 0) {
        const char *e = getenv("BIPO_GEMM"); // "blas" forces OpenBLAS (comparisons, debugging)
        __builtin_cpu_init();
        gemm_on = __builtin_cpu_supports("avx512f") && !(e && !strcmp(e, "blas"));
    }
    return gemm_on;
}

static bipo_matmul_precision mm_prec = BIPO_MATMUL_FP32;

bipo_matmul_precision bipo_cpu_set_matmul_precision(bipo_matmul_precision p) {
    mm_prec = p == BIPO_MATMUL_BF16X3 && bipo_cpu_amx_available() ? p : BIPO_MATMUL_FP32;
    return mm_prec;
}

int bipo_cpu_gemm_enable(int on) {
    __builtin_cpu_init();
    gemm_on = on && __builtin_cpu_supports("avx512f");
    return gemm_on;
}

enum { PACK_FWD_F32, PACK_FWD_AMX, PACK_BWD_AMX }; // what a packed copy is for

typedef struct {
    const float *w; // the weight [OC, IC] as the model holds it
    size_t OC, IC;
    int kind;
    void *data;     // PACK_FWD_F32: W^T as panels [ceil(OC/NR)][IC][NR], zero-padded;
                    // PACK_BWD_AMX: W as AMX tiles, hi then lo (gemm_amx.c)
} packed_w;

#define MAX_REGIONS 64
static struct {
    pthread_mutex_t mu;
    struct {
        const float *base;
        size_t n;
    } region[MAX_REGIONS];
    size_t nregion;
    packed_w *tab; // open addressing on the pointer, cap a power of two
    size_t cap, count;
} reg = {.mu = PTHREAD_MUTEX_INITIALIZER};

void bipo_cpu_gemm_register(const float *base, size_t n) {
    pthread_mutex_lock(&reg.mu);
    CHECK(reg.nregion < MAX_REGIONS, "more than %d weight buffers registered", MAX_REGIONS);
    reg.region[reg.nregion].base = base;
    reg.region[reg.nregion].n = n;
    reg.nregion++;
    pthread_mutex_unlock(&reg.mu);
}

static size_t slot_of(const float *w, int kind, size_t cap) {
    uint64_t h = ((uint64_t)(uintptr_t)w + (uint64_t)kind) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (cap - 1);
}

static void tab_put(packed_w *tab, size_t cap, packed_w e) {
    size_t s = slot_of(e.w, e.kind, cap);
    while (tab[s].w) s = (s + 1) & (cap - 1);
    tab[s] = e;
}

void bipo_cpu_gemm_release(const float *base, size_t n) {
    pthread_mutex_lock(&reg.mu);
    for (size_t i = 0; i < reg.nregion;)
        if (reg.region[i].base == base) reg.region[i] = reg.region[--reg.nregion];
        else i++;
    // rebuild the table without the copies of weights inside [base, base + n)
    packed_w *old = reg.tab;
    size_t cap = reg.cap;
    reg.tab = cap ? xcalloc(cap, sizeof *reg.tab) : NULL;
    reg.count = 0;
    for (size_t s = 0; s < cap; s++) {
        if (!old[s].w) continue;
        if (old[s].w >= base && old[s].w < base + n) {
            free(old[s].data);
            continue;
        }
        tab_put(reg.tab, cap, old[s]);
        reg.count++;
    }
    free(old);
    pthread_mutex_unlock(&reg.mu);
}

static void *pack(const float *w, size_t OC, size_t IC, int kind) {
    if (kind != PACK_FWD_F32) { // AMX tiles of B, hi then lo
        int bwd = kind == PACK_BWD_AMX; // B(k, j) = W[k][j] (K = OC) or W[j][k] (K = IC)
        size_t K = bwd ? OC : IC, NC = bwd ? IC : OC, n = bipo_amx_b_elems(K, NC);
        uint16_t *p = aligned_alloc(64, 2 * n * sizeof(uint16_t));
        CHECK(p != NULL, "out of memory packing a %zu x %zu weight", OC, IC);
        bipo_amx_pack_b(p, p + n, w, bwd ? IC : 1, bwd ? 1 : IC, K, NC);
        return p;
    }
    size_t np = (OC + NR - 1) / NR;
    float *pk = aligned_alloc(64, np * IC * NR * sizeof(float));
    CHECK(pk != NULL, "out of memory packing a %zu x %zu weight", OC, IC);
#pragma omp parallel for num_threads(bipo_cpu_nt) schedule(static)
    for (size_t p = 0; p < np; p++)
        for (size_t k = 0; k < IC; k++) {
            float *dst = pk + (p * IC + k) * NR;
            for (size_t j = 0; j < NR; j++) {
                size_t o = p * NR + j;
                dst[j] = o < OC ? w[o * IC + k] : 0.0f;
            }
        }
    return pk;
}

// The packed copy of w [OC, IC] of this kind, made on first use; NULL when w is not inside a
// registered weight buffer.
static const void *packed_for(const float *w, size_t OC, size_t IC, int kind) {
    const void *out = NULL;
    pthread_mutex_lock(&reg.mu);
    int inside = 0;
    for (size_t i = 0; i < reg.nregion && !inside; i++)
        inside = w >= reg.region[i].base && w + OC * IC <= reg.region[i].base + reg.region[i].n;
    if (!inside) goto done;
    if (reg.cap) {
        for (size_t s = slot_of(w, kind, reg.cap); reg.tab[s].w; s = (s + 1) & (reg.cap - 1))
            if (reg.tab[s].w == w && reg.tab[s].kind == kind && reg.tab[s].OC == OC &&
                reg.tab[s].IC == IC) {
                out = reg.tab[s].data;
                goto done;
            }
    }
    if (2 * (reg.count + 1) > reg.cap) { // grow (load factor <= 1/2)
        size_t cap = reg.cap ? 2 * reg.cap : 256;
        packed_w *tab = xcalloc(cap, sizeof *tab);
        for (size_t s = 0; s < reg.cap; s++)
            if (reg.tab[s].w) tab_put(tab, cap, reg.tab[s]);
        free(reg.tab);
        reg.tab = tab;
        reg.cap = cap;
    }
    void *pk = pack(w, OC, IC, kind);
    tab_put(reg.tab, reg.cap, (packed_w){w, OC, IC, kind, pk});
    reg.count++;
    out = pk;
done:
    pthread_mutex_unlock(&reg.mu);
    return out;
}

// AMX bf16x3 for out[N, NC] (+)= inp[N, K] @ B when that precision is on and w is registered.
static int amx_gemm(float *out, const float *inp, const float *w, size_t N, size_t OC, size_t IC,
                    int bwd, int accumulate) {
    if (mm_prec != BIPO_MATMUL_BF16X3) return 0;
    const uint16_t *pk = packed_for(w, OC, IC, bwd ? PACK_BWD_AMX : PACK_FWD_AMX);
    if (!pk) return 0;
    size_t K = bwd ? OC : IC, NC = bwd ? IC : OC;
    bipo_amx_gemm(out, NC, inp, K, pk, pk + bipo_amx_b_elems(K, NC), N, K, NC, accumulate);
    return 1;
}

int bipo_cpu_gemm_forward(float *out, const float *inp, const float *w, size_t N, size_t IC,
                          size_t OC) {
    if (N < BIPO_CPU_GEMM_MIN_ROWS) return 0;
    if (amx_gemm(out, inp, w, N, OC, IC, 0, 0)) return 1;
    if (!bipo_cpu_gemm_available()) return 0;
    const float *pk = packed_for(w, OC, IC, PACK_FWD_F32);
    if (!pk) return 0;
    bipo_cpu_gemm(out, OC, inp, IC, pk, IC * NR, NR, N, IC, OC, 0);
    return 1;
}

int bipo_cpu_gemm_backward(float *dinp, const float *dout, const float *w, size_t N, size_t IC,
                           size_t OC, int accumulate) {
    if (N < BIPO_CPU_GEMM_MIN_ROWS) return 0;
    if (amx_gemm(dinp, dout, w, N, OC, IC, 1, accumulate)) return 1;
    // a long K (the LM head's 49,152-row vocabulary) is OpenBLAS's case: its packed panels of
    // the unpacked W beat our strided reads there (bench/gemm)
    if (!bipo_cpu_gemm_available() || OC > 4096) return 0;
    bipo_cpu_gemm(dinp, IC, dout, OC, w, NR, IC, N, OC, IC, accumulate);
    return 1;
}
