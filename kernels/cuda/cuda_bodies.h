// kernels/cuda/cuda_bodies.h — the per-thread bodies of the CUDA kernels, as functions of their
// indices. Plain C that nvcc compiles as __host__ __device__ and a C compiler as static inline:
// the kernels (kernels/cuda/*.cu) call them per thread, and tests/test_cuda_bodies.c loops
// over the same grid on the host calling them, against the CPU ops (kernels/cpu), so indexing
// and tail bugs show up without a GPU. Cross-thread steps (block and warp reductions, the
// broadcast of a tile's 32 scores) are not in here: the kernels do them with shuffles, the
// test with plain loops over the lanes.
//
// Shapes as in kernels/kernels.h. Offsets of packed sequences are unsigned long long (size_t
// on both sides of the host/device boundary here).
#ifndef BIPO_CUDA_BODIES_H
#define BIPO_CUDA_BODIES_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define BIPO_HD static inline __host__ __device__
#else
#define BIPO_HD static inline
#endif

// Attention works in tiles of CU_TILE keys (forward, dq pass) or queries (dk/dv pass): one per
// lane of a warp. Heads up to CU_MAX_HD floats (each lane owns dims lane + 32 k).
#define CU_TILE 32
#define CU_MAX_HD 256

// ---- reductions over a row, split over nt threads (thread t takes c = t, t + nt, ...) --------
BIPO_HD double cu_sumsq_part(const float *x, size_t C, size_t t, size_t nt) {
    double s = 0.0;
    for (size_t c = t; c < C; c += nt) s += (double)x[c] * x[c];
    return s;
}
// sum_c dy[c] * w[c] * x[c] (the rmsnorm backward's projection)
BIPO_HD double cu_dot3_part(const float *dy, const float *w, const float *x, size_t C, size_t t,
                            size_t nt) {
    double s = 0.0;
    for (size_t c = t; c < C; c += nt) s += (double)(dy[c] * w[c]) * x[c];
    return s;
}
BIPO_HD float cu_max_part(const float *x, size_t V, size_t t, size_t nt) {
    float m = -INFINITY;
    for (size_t i = t; i < V; i += nt) m = x[i] > m ? x[i] : m;
    return m;
}
BIPO_HD double cu_sumexp_part(const float *x, size_t V, float mx, size_t t, size_t nt) {
    double s = 0.0;
    for (size_t i = t; i < V; i += nt) s += (double)expf(x[i] - mx);
    return s;
}

// ---- RMSNorm -----------------------------------------------------------------------------------
BIPO_HD float cu_rstd(double sumsq, size_t C, float eps) {
    return (float)(1.0 / sqrt(sumsq / (double)C + (double)eps));
}
// dinp[c] += r w dy - (r^3/C) x dot  (element c of one row)
BIPO_HD void cu_rmsnorm_bwd_elem(float *dx, const float *dy, const float *x, const float *w,
                                 float r, double dot, size_t C, size_t c) {
    const float k = (float)(dot * r * r * r / (double)C);
    dx[c] += r * w[c] * dy[c] - k * x[c];
}

// ---- RoPE: element e of [N, H, HD/2] pairs; sign +1 forward, -1 backward ------------------------
BIPO_HD void cu_rope_elem(float *x, const int *pos, size_t H, size_t HD, float theta, float sign,
                          size_t e) {
    const size_t half = HD / 2, i = e % half, nh = e / half; // nh = n * H + h
    const size_t n = nh / H;
    const float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)HD);
    const float ang = (float)pos[n] * inv_freq;
    const float c = (float)cos((double)ang), s = sign * (float)sin((double)ang);
    float *x1 = x + nh * HD + i, *x2 = x1 + half;
    const float a = *x1, b = *x2;
    *x1 = a * c - b * s;
    *x2 = b * c + a * s;
}

// ---- SwiGLU ------------------------------------------------------------------------------------
BIPO_HD float cu_sigmoid(float g) {
    const float e = expf(-fabsf(g)), inv = 1.0f / (1.0f + e);
    return g >= 0.0f ? inv : e * inv;
}
BIPO_HD void cu_swiglu_fwd_elem(float *out, const float *gate, const float *up, size_t i) {
    out[i] = gate[i] * cu_sigmoid(gate[i]) * up[i];
}
BIPO_HD void cu_swiglu_bwd_elem(float *dgate, float *dup, const float *dout, const float *gate,
                                const float *up, size_t i) {
    const float g = gate[i], s = cu_sigmoid(g);
    dgate[i] = dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
    dup[i] = dout[i] * g * s;
}

// ---- rows: element e of [M, C] -----------------------------------------------------------------
BIPO_HD void cu_gather_elem(float *out, const float *inp, const unsigned long long *rows, size_t C,
                            size_t e) {
    out[e] = inp[rows[e / C] * C + e % C];
}
BIPO_HD void cu_embed_elem(float *out, const int *tokens, const float *wte, size_t C, size_t e) {
    out[e] = wte[(size_t)tokens[e / C] * C + e % C];
}
// The address scatter_add_rows adds dout[e] to (the kernel adds atomically: rows may repeat).
BIPO_HD size_t cu_scatter_dst(const unsigned long long *rows, size_t C, size_t e) {
    return rows[e / C] * C + e % C;
}

// ---- log-prob backward: element e of [M, V] ----------------------------------------------------
BIPO_HD void cu_logprob_bwd_elem(float *dlogits, const float *logits, const float *dlp,
                                 const float *lse, const int *targets, size_t V, size_t e) {
    const size_t m = e / V, i = e % V;
    const float g = dlp[m];
    float d = -g * expf(logits[e] - lse[m]);
    if ((int)i == targets[m]) d += g;
    dlogits[e] = d;
}

// ---- steering: add_vector ----------------------------------------------------------------------
BIPO_HD void cu_addvec_fwd_elem(float *h, const float *v, float scale, const uint8_t *mask,
                                size_t C, size_t e) {
    if (mask && !mask[e / C]) return;
    h[e] += scale * v[e % C];
}
// Column c of dv: scale * sum over masked rows of dh[n, c], rows summed in double.
BIPO_HD void cu_addvec_bwd_col(float *dv, const float *dh, float scale, const uint8_t *mask,
                               size_t N, size_t C, size_t c) {
    double acc = 0.0;
    for (size_t n = 0; n < N; n++)
        if (!mask || mask[n]) acc += dh[n * C + c];
    dv[c] += (float)(scale * acc);
}

// ---- attention ---------------------------------------------------------------------------------
// Sequence s with off[s] <= n < off[s+1] (binary search; off [S+1] nondecreasing, n < off[S]).
BIPO_HD size_t cu_find_seq(const unsigned long long *off, size_t S, size_t n) {
    size_t lo = 0, hi = S; // off[lo] <= n < off[hi]
    while (hi - lo > 1) {
        const size_t mid = (lo + hi) / 2;
        if (off[mid] <= n) lo = mid;
        else hi = mid;
    }
    return lo;
}

// What query row n (global, in [0, Nq)) sees: global key rows [*k0, *k1). *qi = the row's index
// in its sequence, *kb = the sequence's first key row (global).
BIPO_HD void cu_att_query_range(const unsigned long long *q_off, const unsigned long long *k_off,
                                size_t S, size_t window, size_t n, size_t *k0, size_t *k1) {
    const size_t s = cu_find_seq(q_off, S, n);
    const size_t nq = q_off[s + 1] - q_off[s], nk = k_off[s + 1] - k_off[s];
    const size_t pos = nk - nq + (n - q_off[s]); // absolute position of the query
    const size_t lo = window > 0 && pos + 1 > window ? pos + 1 - window : 0;
    *k0 = k_off[s] + lo;
    *k1 = k_off[s] + pos + 1;
}

// The query rows that see key row r (global, in [0, Nk)): global query rows [*q0, *q1).
// Query i sees key j iff j <= p_i < j + window (window 0: no upper bound), p_i = nk - nq + i.
BIPO_HD void cu_att_key_range(const unsigned long long *q_off, const unsigned long long *k_off,
                              size_t S, size_t window, size_t r, size_t *q0, size_t *q1) {
    const size_t s = cu_find_seq(k_off, S, r);
    const size_t nq = q_off[s + 1] - q_off[s], nk = k_off[s + 1] - k_off[s];
    const size_t j = r - k_off[s], first = nk - nq; // position of query 0
    const size_t ia = j > first ? j - first : 0;
    size_t ib = nq;
    if (window > 0) { // p_i < j + window
        const size_t lim = j + window;
        ib = lim > first ? lim - first : 0;
        if (ib > nq) ib = nq;
    }
    if (ib < ia) ib = ia;
    *q0 = q_off[s] + ia;
    *q1 = q_off[s] + ib;
}

// scale * a . b over HD floats
BIPO_HD float cu_dot(const float *a, const float *b, size_t HD, float scale) {
    float s = 0.0f;
    for (size_t d = 0; d < HD; d++) s = fmaf(a[d], b[d], s);
    return s * scale;
}

// Online-softmax step for one tile: running max *m and sum *l take the tile's max tmax and
// (after the caller computed p = exp(s - new max)) sum psum; returns the factor the running
// output must be scaled by. *m starts at -INFINITY, *l at 0.
BIPO_HD float cu_online_max(float m, float tmax) { return tmax > m ? tmax : m; }
BIPO_HD float cu_online_step(float *m, float *l, float mnew, float psum) {
    const float corr = *m == -INFINITY ? 0.0f : expf(*m - mnew);
    *l = *l * corr + psum;
    *m = mnew;
    return corr;
}

// Dim d of sum_{t < cnt} p[t] * x[row(t)][d], row(t) = rows0 + t, row stride ld (the PV product
// of a tile, and dq / dk / dv's sums).
BIPO_HD float cu_tile_acc(const float *p, const float *x, size_t ld, size_t cnt, size_t d) {
    float s = 0.0f;
    for (size_t t = 0; t < cnt; t++) s = fmaf(p[t], x[t * ld + d], s);
    return s;
}

#endif
