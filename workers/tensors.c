// workers/tensors.c — dtype table, dequantization and reference quantizers (ggml block formats).
//
// Block layouts (little endian, QK = 32 elements per block, QK_K = 256 per super-block):
//   Q8_0  34 B: f16 d | int8 qs[32]                      x[j] = d * qs[j]
//   Q4_0  18 B: f16 d | u8 qs[16]                        x[j] = d * ((qs[j] & 15) - 8), j < 16
//                                                        x[j+16] = d * ((qs[j] >> 4) - 8)
//   Q4_1  20 B: f16 d | f16 m | u8 qs[16]                x = d * nibble + m (nibbles as Q4_0)
//   Q5_0  22 B: f16 d | u32 qh | u8 qs[16]               q = nibble | (bit j of qh) << 4;
//                                                        x = d * (q - 16)
//   Q5_1  24 B: f16 d | f16 m | u32 qh | u8 qs[16]       x = d * q + m
//   Q4_K 144 B: f16 d | f16 dmin | u8 scales[12] | u8 qs[128]
//               8 sub-blocks of 32 with 6-bit scale sc and 6-bit min m: x = d*sc*q - dmin*m;
//               qs chunk c (32 bytes) holds sub-block 2c in low nibbles, 2c+1 in high nibbles
//   Q5_K 176 B: f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128]
//               as Q4_K plus bit s of qh[l] as the 5th bit of element l of sub-block s
//   Q6_K 210 B: u8 ql[128] | u8 qh[64] | int8 scales[16] | f16 d
//               two halves of 128; 16 sub-blocks of 16 with int8 scale: x = d*sc*(q - 32)
//
// Exactness: every formula is evaluated with separate float multiplies and adds in the same
// order as ggml's dequantize_row_* (and the gguf Python package), so results are
// bit-identical to both. GCC would otherwise contract a*b+c into an FMA under -std=gnu11.
#pragma GCC optimize("fp-contract=off")
#include "tensors.h" // defines: bipo_dtype_*, bipo_dequantize, bipo_quantize (implemented here)

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h" // defines: bipo_f16_to_f32, bipo_bf16_to_f32, bipo_mmap_file, bipo_set_error

#define QK 32
#define QK_K 256

typedef struct {
    uint32_t id;
    const char *name;
    size_t block;       // elements per block
    size_t block_bytes; // bytes per block
} dtype_info;

static const dtype_info DTYPES[] = {
    {BIPO_DT_F32, "F32", 1, 4},          {BIPO_DT_F16, "F16", 1, 2},
    {BIPO_DT_BF16, "BF16", 1, 2},        {BIPO_DT_Q8_0, "Q8_0", QK, 34},
    {BIPO_DT_Q4_0, "Q4_0", QK, 18},      {BIPO_DT_Q4_1, "Q4_1", QK, 20},
    {BIPO_DT_Q5_0, "Q5_0", QK, 22},      {BIPO_DT_Q5_1, "Q5_1", QK, 24},
    {BIPO_DT_Q4_K, "Q4_K", QK_K, 144},   {BIPO_DT_Q5_K, "Q5_K", QK_K, 176},
    {BIPO_DT_Q6_K, "Q6_K", QK_K, 210},
};

static const dtype_info *dtype_find(uint32_t dt) {
    for (size_t i = 0; i < sizeof(DTYPES) / sizeof(DTYPES[0]); i++)
        if (DTYPES[i].id == dt) return &DTYPES[i];
    return NULL;
}
const char *bipo_dtype_name(uint32_t dt) {
    const dtype_info *d = dtype_find(dt);
    return d ? d->name : NULL;
}
size_t bipo_dtype_block(uint32_t dt) {
    const dtype_info *d = dtype_find(dt);
    return d ? d->block : 0;
}
size_t bipo_dtype_block_bytes(uint32_t dt) {
    const dtype_info *d = dtype_find(dt);
    return d ? d->block_bytes : 0;
}
size_t bipo_dtype_nbytes(uint32_t dt, uint64_t n) {
    const dtype_info *d = dtype_find(dt);
    if (!d || n % d->block) return 0;
    uint64_t nb = n / d->block;
    if (nb > SIZE_MAX / d->block_bytes) return 0;
    return (size_t)(nb * d->block_bytes);
}

// ---- little-endian field readers (blocks are byte-packed, so no aligned loads) -------------
static inline float rd_f16(const uint8_t *p) { return bipo_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static inline uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void wr_f16(uint8_t *p, float f) {
    uint16_t h = bipo_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

// ---- one block each: y[block] from b[block_bytes] -------------------------------------------
static void deq_q8_0(float *y, const uint8_t *b) {
    float d = rd_f16(b);
    for (int j = 0; j < QK; j++) y[j] = d * (float)(int8_t)b[2 + j];
}
// Q4_0 / Q4_1 / Q5_0 / Q5_1 share one body: q = nibble | high bit << 4, x = d*(q - off) + m.
static inline void deq_q45(float *y, const uint8_t *qs, float d, float m, int has_m, uint32_t qh,
                           int five, int off) {
    for (int j = 0; j < QK / 2; j++) {
        int q0 = qs[j] & 0x0F, q1 = qs[j] >> 4;
        if (five) {
            q0 |= (int)((qh >> j) & 1) << 4;
            q1 |= (int)((qh >> (j + 16)) & 1) << 4;
        }
        if (has_m) {
            y[j] = (float)q0 * d + m;
            y[j + 16] = (float)q1 * d + m;
        } else {
            y[j] = (float)(q0 - off) * d;
            y[j + 16] = (float)(q1 - off) * d;
        }
    }
}
static void deq_q4_0(float *y, const uint8_t *b) { deq_q45(y, b + 2, rd_f16(b), 0, 0, 0, 0, 8); }
static void deq_q4_1(float *y, const uint8_t *b) { deq_q45(y, b + 4, rd_f16(b), rd_f16(b + 2), 1, 0, 0, 0); }
static void deq_q5_0(float *y, const uint8_t *b) { deq_q45(y, b + 6, rd_f16(b), 0, 0, rd_u32(b + 2), 1, 16); }
static void deq_q5_1(float *y, const uint8_t *b) {
    deq_q45(y, b + 8, rd_f16(b), rd_f16(b + 2), 1, rd_u32(b + 4), 1, 0);
}

// 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes (ggml get_scale_min_k4):
// bytes 0-3 low 6 bits = sc[0..3], bytes 4-7 low 6 bits = m[0..3]; sc[4+i] = low nibble of
// byte 8+i | top 2 bits of byte i << 4; m[4+i] = high nibble of byte 8+i | top 2 of byte 4+i.
static inline void scale_min_k4(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}
// Q4_K (qh == NULL) and Q5_K: 4 chunks of 64 elements, each = two sub-blocks of 32.
static inline void deq_k45(float *y, const uint8_t *b, const uint8_t *qh, const uint8_t *qs) {
    float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *scales = b + 4;
    for (int c = 0; c < 4; c++) {
        int sc0, m0, sc1, m1;
        scale_min_k4(2 * c, scales, &sc0, &m0);
        scale_min_k4(2 * c + 1, scales, &sc1, &m1);
        float d1 = d * (float)sc0, mm1 = dmin * (float)m0;
        float d2 = d * (float)sc1, mm2 = dmin * (float)m1;
        for (int l = 0; l < 32; l++) {
            int lo = qs[l] & 0x0F, hi = qs[l] >> 4;
            if (qh) {
                lo |= ((qh[l] >> (2 * c)) & 1) << 4;
                hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
            }
            y[l] = d1 * (float)lo - mm1;
            y[l + 32] = d2 * (float)hi - mm2;
        }
        qs += 32;
        y += 64;
    }
}
static void deq_q4_k(float *y, const uint8_t *b) { deq_k45(y, b, NULL, b + 16); }
static void deq_q5_k(float *y, const uint8_t *b) { deq_k45(y, b, b + 16, b + 48); }
static void deq_q6_k(float *y, const uint8_t *b) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = rd_f16(b + 208);
    for (int half = 0; half < 2; half++) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[l] & 0x0F) | ((qh[l] >> 0) & 3) << 4) - 32;
            int q2 = (int)((ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4) - 32;
            int q3 = (int)((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            int q4 = (int)((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            y[l] = (d * (float)sc[is + 0]) * (float)q1;
            y[l + 32] = (d * (float)sc[is + 2]) * (float)q2;
            y[l + 64] = (d * (float)sc[is + 4]) * (float)q3;
            y[l + 96] = (d * (float)sc[is + 6]) * (float)q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

typedef void (*deq_block_fn)(float *y, const uint8_t *b);

int bipo_dequantize(float *out, const void *data, uint32_t dt, size_t n) {
    const dtype_info *info = dtype_find(dt);
    if (!info) {
        bipo_set_error("dequantize: unsupported ggml type %u (supported: F32 F16 BF16 Q8_0 Q4_0 "
                       "Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K)", dt);
        return -1;
    }
    if (n % info->block) {
        bipo_set_error("dequantize: %zu elements is not a multiple of the %s block (%zu)", n,
                       info->name, info->block);
        return -1;
    }
    const uint8_t *src = data;
    long long nn = (long long)n;
    switch (dt) {
    case BIPO_DT_F32: memcpy(out, data, n * sizeof(float)); return 0;
    case BIPO_DT_F16:
#pragma omp parallel for schedule(static) if (nn > 65536)
        for (long long i = 0; i < nn; i++) out[i] = rd_f16(src + 2 * i);
        return 0;
    case BIPO_DT_BF16:
#pragma omp parallel for schedule(static) if (nn > 65536)
        for (long long i = 0; i < nn; i++)
            out[i] = bipo_bf16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        return 0;
    default: break;
    }
    deq_block_fn fn = NULL;
    switch (dt) {
    case BIPO_DT_Q8_0: fn = deq_q8_0; break;
    case BIPO_DT_Q4_0: fn = deq_q4_0; break;
    case BIPO_DT_Q4_1: fn = deq_q4_1; break;
    case BIPO_DT_Q5_0: fn = deq_q5_0; break;
    case BIPO_DT_Q5_1: fn = deq_q5_1; break;
    case BIPO_DT_Q4_K: fn = deq_q4_k; break;
    case BIPO_DT_Q5_K: fn = deq_q5_k; break;
    case BIPO_DT_Q6_K: fn = deq_q6_k; break;
    }
    long long nb = (long long)(n / info->block);
    size_t bs = info->block, bb = info->block_bytes;
#pragma omp parallel for schedule(static) if (nb > 2048)
    for (long long i = 0; i < nb; i++) fn(out + (size_t)i * bs, src + (size_t)i * bb);
    return 0;
}

// ---- reference quantizers (round to nearest; same arithmetic as ggml quantize_row_*_ref) ----
static void q8_0_block(uint8_t *b, const float *x) {
    float amax = 0;
    for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    for (int j = 0; j < QK; j++) b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}
// Q4_0 / Q5_0: symmetric, d = (value of largest magnitude) / -(2^(bits-1)).
static void q_sym_block(uint8_t *qs, uint32_t *qh, const float *x, int five, float *d_out) {
    float amax = 0, max = 0;
    for (int j = 0; j < QK; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    int half = five ? 16 : 8, top = five ? 31 : 15;
    float d = max / (float)-half, id = d != 0 ? 1.0f / d : 0.0f;
    uint32_t h = 0;
    for (int j = 0; j < QK / 2; j++) {
        int q0 = (int)(int8_t)(x[j] * id + ((float)half + 0.5f));
        int q1 = (int)(int8_t)(x[j + 16] * id + ((float)half + 0.5f));
        q0 = q0 < 0 ? 0 : q0 > top ? top : q0;
        q1 = q1 < 0 ? 0 : q1 > top ? top : q1;
        qs[j] = (uint8_t)((q0 & 0x0F) | (q1 & 0x0F) << 4);
        h |= (uint32_t)((q0 >> 4) & 1) << j;
        h |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
    }
    *qh = h;
    *d_out = d;
}
// Q4_1 / Q5_1: affine, d = (max - min) / (2^bits - 1), m = min.
static void q_aff_block(uint8_t *qs, uint32_t *qh, const float *x, int five, float *d_out,
                        float *m_out) {
    float mn = FLT_MAX, mx = -FLT_MAX;
    for (int j = 0; j < QK; j++) {
        mn = fminf(mn, x[j]);
        mx = fmaxf(mx, x[j]);
    }
    int top = five ? 31 : 15;
    float d = (mx - mn) / (float)top, id = d != 0 ? 1.0f / d : 0.0f;
    uint32_t h = 0;
    for (int j = 0; j < QK / 2; j++) {
        int q0 = (int)((x[j] - mn) * id + 0.5f), q1 = (int)((x[j + 16] - mn) * id + 0.5f);
        q0 = q0 < 0 ? 0 : q0 > top ? top : q0;
        q1 = q1 < 0 ? 0 : q1 > top ? top : q1;
        qs[j] = (uint8_t)((q0 & 0x0F) | (q1 & 0x0F) << 4);
        h |= (uint32_t)((q0 >> 4) & 1) << j;
        h |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
    }
    *qh = h;
    *d_out = d;
    *m_out = mn;
}
static void wr_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void quant_block(uint8_t *b, const float *x, uint32_t dt) {
    float d, m;
    uint32_t qh;
    switch (dt) {
    case BIPO_DT_Q8_0: q8_0_block(b, x); break;
    case BIPO_DT_Q4_0: q_sym_block(b + 2, &qh, x, 0, &d); wr_f16(b, d); break;
    case BIPO_DT_Q5_0:
        q_sym_block(b + 6, &qh, x, 1, &d);
        wr_f16(b, d);
        wr_u32(b + 2, qh);
        break;
    case BIPO_DT_Q4_1:
        q_aff_block(b + 4, &qh, x, 0, &d, &m);
        wr_f16(b, d);
        wr_f16(b + 2, m);
        break;
    case BIPO_DT_Q5_1:
        q_aff_block(b + 8, &qh, x, 1, &d, &m);
        wr_f16(b, d);
        wr_f16(b + 2, m);
        wr_u32(b + 4, qh);
        break;
    }
}

size_t bipo_quantize(void *out, const float *in, uint32_t dt, size_t n) {
    uint8_t *dst = out;
    switch (dt) {
    case BIPO_DT_F32: memcpy(out, in, n * sizeof(float)); return n * 4;
    case BIPO_DT_F16:
    case BIPO_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = dt == BIPO_DT_F16 ? bipo_f32_to_f16(in[i]) : bipo_f32_to_bf16(in[i]);
            dst[2 * i] = (uint8_t)h;
            dst[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return n * 2;
    case BIPO_DT_Q8_0: case BIPO_DT_Q4_0: case BIPO_DT_Q4_1: case BIPO_DT_Q5_0: case BIPO_DT_Q5_1:
        break;
    default: return 0; // K-quants: no quantizer (tests write random blocks instead)
    }
    if (n % QK) return 0;
    size_t bb = bipo_dtype_block_bytes(dt), nb = n / QK;
    for (size_t i = 0; i < nb; i++) quant_block(dst + i * bb, in + i * QK, dt);
    return nb * bb;
}

// ---- file mapping for the readers -----------------------------------------------------------
void *bipo_format_map(const char *path, size_t *size) {
    void *m = bipo_mmap_file(path, size);
#if defined(__SANITIZE_ADDRESS__)
    if (m) { // heap copy: ASan sees every byte past the end, which it cannot on an mmap
        void *h = xmalloc(*size);
        memcpy(h, m, *size);
        bipo_munmap(m, *size);
        m = h;
    }
#endif
    return m;
}
void bipo_format_unmap(void *p, size_t size) {
#if defined(__SANITIZE_ADDRESS__)
    (void)size;
    free(p);
#else
    bipo_munmap(p, size);
#endif
}
