// kernels/cpu/gemm_packed.c — the linear layers' GEMMs on frozen weights: which kernel runs,
// and the weights packed once for it (kernels/cpu/gemm_amx.c's bf16x3 tiles).
//
// Only weights inside a registered region (bipo_cpu_gemm_register: the model's parameter
// buffer) are packed, so a caller that reuses a buffer for something else can never hit a stale
// copy; bipo_cpu_gemm_release drops the copies (model free, LoRA merge). Everything else, and
// every fp32 GEMM, is OpenBLAS (backend_cpu.c): an own AVX-512 fp32 kernel on packed W^T panels
// was tried here and measured no faster than OpenBLAS's in a BiPO step (slower at 700 rows).
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h" // defines: bipo_cpu_nt, bipo_cpu_gemm_*
#include "util.h"         // defines: xmalloc, xcalloc, CHECK

// ---- precision, and the packed weights ---------------------------------------------------

int bipo_cpu_supports_precision(bipo_matmul_precision p) {
    return p == BIPO_MATMUL_FP32 || (p == BIPO_MATMUL_BF16X3 && bipo_cpu_amx_available());
}

enum { PACK_FWD_AMX, PACK_BWD_AMX }; // what a packed copy is for

typedef struct {
    const float *w; // the weight [OC, IC] as the model holds it
    size_t OC, IC;
    int kind;
    void *data;     // B as AMX tiles, hi then lo (gemm_amx.c): W^T (forward) or W (backward)
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
    int bwd = kind == PACK_BWD_AMX; // B(k, j) = W[k][j] (K = OC) or W[j][k] (K = IC)
    size_t K = bwd ? OC : IC, NC = bwd ? IC : OC, n = bipo_amx_b_elems(K, NC);
    uint16_t *p = aligned_alloc(64, 2 * n * sizeof(uint16_t));
    CHECK(p != NULL, "out of memory packing a %zu x %zu weight", OC, IC);
    bipo_amx_pack_b(p, p + n, w, bwd ? IC : 1, bwd ? 1 : IC, K, NC);
    return p;
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

// AMX bf16x3 for out[N, NC] (+)= inp[N, K] @ B when that precision is asked for, the CPU has
// it and w is registered.
static int amx_gemm(float *out, const float *inp, const float *w, size_t N, size_t OC, size_t IC,
                    int bwd, int accumulate, const bipo_amx_softmax_grad *sg,
                    bipo_matmul_precision prec) {
    if (prec != BIPO_MATMUL_BF16X3 || !bipo_cpu_amx_available()) return 0;
    const uint16_t *pk = packed_for(w, OC, IC, bwd ? PACK_BWD_AMX : PACK_FWD_AMX);
    if (!pk) return 0;
    size_t K = bwd ? OC : IC, NC = bwd ? IC : OC;
    bipo_amx_gemm(out, NC, inp, K, pk, pk + bipo_amx_b_elems(K, NC), N, K, NC, accumulate, sg);
    return 1;
}

int bipo_cpu_gemm_forward(float *out, const float *inp, const float *w, size_t N, size_t IC,
                          size_t OC, bipo_matmul_precision prec) {
    return N >= BIPO_CPU_GEMM_MIN_ROWS && amx_gemm(out, inp, w, N, OC, IC, 0, 0, NULL, prec);
}

int bipo_cpu_gemm_backward(float *dinp, const float *dout, const float *w, size_t N, size_t IC,
                           size_t OC, int accumulate, bipo_matmul_precision prec) {
    return N >= BIPO_CPU_GEMM_MIN_ROWS &&
           amx_gemm(dinp, dout, w, N, OC, IC, 1, accumulate, NULL, prec);
}

int bipo_cpu_gemm_logprob_backward(float *dinp, const float *dlp, const float *logits,
                                   const float *lse, const int *targets, const float *w, size_t M,
                                   size_t IC, size_t V, bipo_matmul_precision prec) {
    bipo_amx_softmax_grad sg = {dlp, lse, targets};
    return M >= BIPO_CPU_GEMM_MIN_ROWS && amx_gemm(dinp, logits, w, M, V, IC, 1, 0, &sg, prec);
}
