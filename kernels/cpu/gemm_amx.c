// kernels/cpu/gemm_amx.c — GEMMs on Intel AMX tiles at near-fp32 accuracy ("bf16x3").
//
//   C[N, NC] (= or +=) A[N, K] @ B[K, NC]
//
// Every fp32 input x is split into two bf16 numbers, x = hi + lo + r with hi = bf16(x),
// lo = bf16(x - hi), |r| <= 2^-17 |x|, and a product is computed as hi*hi' + hi*lo' + lo*hi'
// with fp32 accumulation (the dropped lo*lo' is below 2^-16 |x x'|). Each product is then
// exact to ~2^-16 relative instead of fp32's 2^-24: ~1e-5 on a layer's output (bench/gemm prints
// the measured error against fp64), three AMX products cost ~1/4 of one AVX-512 fp32 product.
// Used for the backward GEMMs only when the caller opts in (bipo_backend_cpu_set_gemm), never
// for the forward: the loss keeps full fp32 accuracy, the gradient gets ~1e-5 relative.
//
// B (a frozen weight) is packed once into AMX's "VNNI" tile layout, hi and lo apart: tile
// (jb, kb) covers columns [16 jb, 16 jb + 16) and k in [32 kb, 32 kb + 32); its row r holds, for
// each column c, the pair B(32 kb + 2r, j), B(32 kb + 2r + 1, j). A is split on every call.
// Register tiles: C 0..3 (32 rows x 32 columns of C: four independent accumulation chains),
// A (two row blocks), B (two column blocks).
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cpuid.h>
#include <immintrin.h>

#include "cpu_internal.h" // defines: bipo_cpu_nt, bipo_amx_b
#include "util.h"         // defines: CHECK, xmalloc

#define AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512bf16")))
// k blocks (of 32) per pass: a 1024 x 320 block of B, hi + lo, is 1.25 MiB (L2); fewer passes
// mean fewer C tile reloads (measured interleaved: 16 -> 32 is 5-10 % faster, 64 no better)
#define KB_CHUNK 32

// C tile (2r + c) += A tile (4 + r) x B tile (6 + c), r, c in {0, 1} (tile numbers must be
// compile-time constants, hence a macro)
#define PRODUCTS_2X2()                                                                            \
    do {                                                                                          \
        _tile_dpbf16ps(0, 4, 6);                                                                  \
        _tile_dpbf16ps(1, 4, 7);                                                                  \
        _tile_dpbf16ps(2, 5, 6);                                                                  \
        _tile_dpbf16ps(3, 5, 7);                                                                  \
    } while (0)
#define COL_CHUNK 320 // columns of C per pass (10 pairs of tiles: a thread's 288 columns of C = 576
                      // in one pass, so A (the LM head backward's 49,152-wide dlogits) is read once)

int bipo_cpu_amx_available(void) {
    static int avail = -1;
    if (avail >= 0) return avail;
    unsigned a, b, c, d;
    avail = 0;
    const char *off = getenv("BIPO_AMX"); // "0": behave as a CPU without AMX (tests, comparisons)
    if (off && !strcmp(off, "0")) return avail;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 22)) && (d & (1u << 24)) &&
        __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5))) {
        // Linux hands out the 8 KiB tile state only on request (ARCH_REQ_XCOMP_PERM, XTILEDATA)
        avail = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    }
    return avail;
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

static AMX void tiles_on(void) {
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    _tile_loadconfig(&cfg);
}

static AMX inline __m256i bf16_round(__m512 x) { return (__m256i)_mm512_cvtneps_pbh(x); }
static AMX inline __m512 bf16_widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// 16 floats -> their hi and lo bf16 halves
static AMX inline void split16(uint16_t *hi, uint16_t *lo, __m512 x) {
    __m256i h = bf16_round(x);
    __m256i l = bf16_round(_mm512_sub_ps(x, bf16_widen(h)));
    _mm256_storeu_si256((__m256i *)hi, h);
    _mm256_storeu_si256((__m256i *)lo, l);
}

size_t bipo_amx_b_elems(size_t K, size_t NC) { // bf16 numbers in one of the hi/lo halves
    return ((K + 31) / 32 * 32) * ((NC + 31) / 32 * 32);
}

// Packs B(k, j) = src[k * sk + j * sj] (k < K, j < NC) into the tile layout, zero-padded.
AMX void bipo_amx_pack_b(uint16_t *hi, uint16_t *lo, const float *src, size_t sk, size_t sj,
                         size_t K, size_t NC) {
    size_t nkb = (K + 31) / 32, njb = (NC + 31) / 32 * 2;
#pragma omp parallel for num_threads(bipo_cpu_nt) schedule(static)
    for (size_t jb = 0; jb < njb; jb++)
        for (size_t kb = 0; kb < nkb; kb++) {
            uint16_t *th = hi + (jb * nkb + kb) * 512, *tl = lo + (jb * nkb + kb) * 512;
            float v[512];
            for (size_t r = 0; r < 16; r++)
                for (size_t c = 0; c < 16; c++)
                    for (size_t e = 0; e < 2; e++) {
                        size_t k = kb * 32 + 2 * r + e, j = jb * 16 + c;
                        v[r * 32 + c * 2 + e] = k < K && j < NC ? src[k * sk + j * sj] : 0.0f;
                    }
            for (size_t q = 0; q < 512; q += 16) split16(th + q, tl + q, _mm512_loadu_ps(v + q));
        }
}

// Per-thread buffers: A split (hi, lo) [Np, Kp] and one column chunk of C [Np, COL_CHUNK].
static _Thread_local uint16_t *a_buf;
static _Thread_local size_t a_cap;
static _Thread_local float *c_buf;
static _Thread_local size_t c_cap;

static void *grow(void *p, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return p;
    free(p);
    p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    CHECK(p != NULL, "out of memory (%zu bytes for the AMX GEMM)", bytes);
    *cap = bytes;
    return p;
}

AMX void bipo_amx_gemm(float *C, size_t ldc, const float *A, size_t lda, const uint16_t *bhi,
                       const uint16_t *blo, size_t N, size_t K, size_t NC, int accumulate,
                       const bipo_amx_softmax_grad *sg) {
    size_t Np = (N + 31) / 32 * 32, Kp = (K + 31) / 32 * 32, nkb = Kp / 32;
    size_t npairs = (NC + 31) / 32, full_pairs = NC / 32; // pairs of 16-column tiles
    // A's buffer belongs to the caller's thread; the workers fill and read it
    a_buf = grow(a_buf, &a_cap, 2 * Np * Kp * sizeof(uint16_t));
    uint16_t *ahi = a_buf, *alo = a_buf + Np * Kp;
    // A's halves in tile order: block (16 rows rb, 32 k kb) is 1 KiB at (rb * nkb + kb) * 512,
    // so every tile load reads 1 KiB in a row (a strided one touches 16 scattered lines). With
    // sg, A is the log-softmax gradient made here from the logits (never stored in fp32).
    // one parallel region: the rows of A split among the threads, a barrier, then the columns
#pragma omp parallel num_threads(bipo_cpu_nt)
    {
#pragma omp for schedule(static)
        for (size_t r = 0; r < Np; r++)
            for (size_t k = 0; k < Kp; k += 16) {
                __m512 x = _mm512_setzero_ps();
                if (r < N && k < K) {
                    __mmask16 m = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1u);
                    x = _mm512_maskz_loadu_ps(m, A + r * lda + k);
                    if (sg) { // dlogits = dlp (onehot(target) - softmax), as cpu_logprob_backward
                        float v[16], g = sg->dlp[r], l = sg->lse[r];
                        _mm512_storeu_ps(v, x);
#pragma omp simd
                        for (int j = 0; j < 16; j++) v[j] = -g * bipo_expf(v[j] - l);
                        size_t tg = (size_t)sg->targets[r];
                        if (tg >= k && tg < k + 16) v[tg - k] += g;
                        x = _mm512_maskz_loadu_ps(m, v);
                    }
                }
                size_t at = ((r / 16) * nkb + k / 32) * 512 + (r % 16) * 32 + k % 32;
                split16(ahi + at, alo + at, x);
            } // (implicit barrier: all of A is split)
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        size_t p0 = npairs * (size_t)t / (size_t)nt, p1 = npairs * (size_t)(t + 1) / (size_t)nt;
        if (p0 < p1) {
            tiles_on();
            c_buf = grow(c_buf, &c_cap, Np * COL_CHUNK * sizeof(float));
            float *cb = c_buf;
            for (size_t q0 = p0; q0 < p1; q0 += COL_CHUNK / 32) { // a chunk of column pairs
                size_t q1 = q0 + COL_CHUNK / 32 < p1 ? q0 + COL_CHUNK / 32 : p1;
                for (size_t k0 = 0; k0 < nkb; k0 += KB_CHUNK) {
                    size_t k1 = k0 + KB_CHUNK < nkb ? k0 + KB_CHUNK : nkb;
                    for (size_t i = 0; i < Np; i += 32)
                        for (size_t q = q0; q < q1; q++) {
                            // C tiles 0..3: rows i / i+16 x columns 32q / 32q+16, accumulated
                            // in C itself where the 32 x 32 block lies inside it, else in the
                            // chunk buffer (copied out below)
                            int inside = i + 32 <= N && q < full_pairs;
                            float *c0 = inside ? C + i * ldc + q * 32 : cb + i * COL_CHUNK + (q - q0) * 32;
                            const size_t cs = (inside ? ldc : COL_CHUNK) * sizeof(float);
                            float *c1 = c0 + 16 * (cs / sizeof(float));
                            if (k0 == 0 && !(inside && accumulate)) {
                                _tile_zero(0);
                                _tile_zero(1);
                                _tile_zero(2);
                                _tile_zero(3);
                            } else {
                                _tile_loadd(0, c0, cs);
                                _tile_loadd(1, c0 + 16, cs);
                                _tile_loadd(2, c1, cs);
                                _tile_loadd(3, c1 + 16, cs);
                            }
                            const uint16_t *bh0 = bhi + (2 * q) * nkb * 512, *bh1 = bh0 + nkb * 512;
                            const uint16_t *bl0 = blo + (2 * q) * nkb * 512, *bl1 = bl0 + nkb * 512;
                            const uint16_t *ah = ahi + i * Kp, *al = alo + i * Kp;
                            const size_t a16 = 16 * Kp; // the next row block
                            // per k block: hi x lo, hi x hi, lo x hi, ordered so that each
                            // step changes one operand: 8 tile loads for 12 products
                            for (size_t kb = k0; kb < k1; kb++) {
                                _tile_loadd(4, ah + kb * 512, 64); // hi x lo
                                _tile_loadd(5, ah + a16 + kb * 512, 64);
                                _tile_loadd(6, bl0 + kb * 512, 64);
                                _tile_loadd(7, bl1 + kb * 512, 64);
                                PRODUCTS_2X2();
                                _tile_loadd(6, bh0 + kb * 512, 64); // hi x hi
                                _tile_loadd(7, bh1 + kb * 512, 64);
                                PRODUCTS_2X2();
                                _tile_loadd(4, al + kb * 512, 64); // lo x hi
                                _tile_loadd(5, al + a16 + kb * 512, 64);
                                PRODUCTS_2X2();
                            }
                            _tile_stored(0, c0, cs);
                            _tile_stored(1, c0 + 16, cs);
                            _tile_stored(2, c1, cs);
                            _tile_stored(3, c1 + 16, cs);
                        }
                }
                // the chunk is complete: its blocks that were not inside C go there (set or add)
                size_t j0 = q0 * 32, w = (q1 * 32 < NC ? q1 * 32 : NC) - j0;
                size_t jin = q1 <= full_pairs ? w : full_pairs > q0 ? (full_pairs - q0) * 32 : 0;
                for (size_t r = 0; r < N; r++) {
                    size_t ja = r < N / 32 * 32 ? jin : 0; // columns [ja, w) of row r are here
                    float *dst = C + r * ldc + j0;
                    const float *src = cb + r * COL_CHUNK;
                    if (accumulate)
                        for (size_t j = ja; j < w; j++) dst[j] += src[j];
                    else if (ja < w)
                        memcpy(dst + ja, src + ja, (w - ja) * sizeof(float));
                }
            }
            _tile_release();
        }
    }
}
