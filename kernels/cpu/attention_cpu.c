// kernels/cpu/attention_cpu.c — causal GQA attention (optional sliding window) on packed
// variable-length sequences, forward and backward, OpenMP over (query row, head) work items.
//
// Shapes: q, out, dq [Nq, NH*HD]; k, v, dk, dv [Nk, NKV*HD]; G = NH/NKV query heads share a
// kv head (query head h reads kv head h / G).
// Saved probabilities, layout [s][h][i][j]: sequence s starts at att_off[s] = sum over s' < s
// of NH*nq*nk, then row (h, i) is nk floats long; entries a query cannot see are stored as 0.
// The backward relies on that: it never needs the window, it skips exact zeros.
#include <math.h>
#include <string.h>

#include "cpu_internal.h" // defines: bipo_cpu_nt, bipo_cpu_scratch
#include "util.h"         // defines: CHECK

// Sequence that owns global row n: the largest s with off[s] <= n (off[S] > n).
static size_t seq_of_row(const size_t *off, size_t S, size_t n) {
    size_t lo = 0, hi = S;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (off[mid] <= n) lo = mid;
        else hi = mid;
    }
    return lo;
}

// att_off[S+1] in caller scratch: where each sequence's saved probabilities start.
static const size_t *att_offsets(const bipo_seqs *sq, size_t NH, int slot) {
    size_t *ao = bipo_cpu_scratch(slot, (sq->S + 1) * sizeof(size_t));
    ao[0] = 0;
    for (size_t s = 0; s < sq->S; s++) {
        size_t nq = sq->q_off[s + 1] - sq->q_off[s], nk = sq->k_off[s + 1] - sq->k_off[s];
        CHECK(nq <= nk, "attention: sequence %zu has %zu queries but only %zu keys", s, nq, nk);
        ao[s + 1] = ao[s] + NH * nq * nk;
    }
    return ao;
}

static inline float dot(const float *a, const float *b, size_t n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (size_t d = 0; d < n; d++) acc += a[d] * b[d];
    return acc;
}

static inline void axpy(float *y, float a, const float *x, size_t n) {
#pragma omp simd
    for (size_t d = 0; d < n; d++) y[d] += a * x[d];
}

void bipo_cpu_attention_forward(float *out, float *att, const float *q, const float *k,
                                const float *v, const bipo_seqs *sq, size_t NH, size_t NKV,
                                size_t HD, size_t window) {
    CHECK(NKV > 0 && NH % NKV == 0, "attention: NH=%zu is not a multiple of NKV=%zu", NH, NKV);
    if (sq->S == 0) return;
    const size_t G = NH / NKV, qs = NH * HD, ks = NKV * HD;
    const size_t q0 = sq->q_off[0], Nq = sq->q_off[sq->S] - q0;
    const size_t *ao = att_offsets(sq, NH, CPU_SCRATCH_CALLER_0);
    size_t maxnk = 0;
    for (size_t s = 0; s < sq->S; s++)
        if (sq->k_off[s + 1] - sq->k_off[s] > maxnk) maxnk = sq->k_off[s + 1] - sq->k_off[s];
    const float scale = 1.0f / sqrtf((float)HD);

#pragma omp parallel num_threads(bipo_cpu_nt) if (Nq * NH > 1)
    {
        // unsaved probabilities go to this thread's own row
        float *row_scratch = att ? NULL : bipo_cpu_scratch(CPU_SCRATCH_WORKER, maxnk * sizeof(float));
#pragma omp for schedule(dynamic, 8)
        for (size_t r = 0; r < Nq * NH; r++) {
            const size_t n = q0 + r / NH, h = r % NH;
            const size_t s = seq_of_row(sq->q_off, sq->S, n);
            const size_t nq = sq->q_off[s + 1] - sq->q_off[s], nk = sq->k_off[s + 1] - sq->k_off[s];
            const size_t i = n - sq->q_off[s], pos = nk - nq + i;
            const size_t jlo = (window > 0 && pos + 1 > window) ? pos + 1 - window : 0;
            const float *qr = q + n * qs + h * HD;
            const float *kb = k + sq->k_off[s] * ks + (h / G) * HD;
            const float *vb = v + sq->k_off[s] * ks + (h / G) * HD;
            float *p = att ? att + ao[s] + (h * nq + i) * nk : row_scratch;
            float *o = out + n * qs + h * HD;

            float mx = -INFINITY;
            for (size_t j = jlo; j <= pos; j++) {
                p[j] = dot(qr, kb + j * ks, HD) * scale;
                if (p[j] > mx) mx = p[j];
            }
            float sum = 0.0f;
            for (size_t j = jlo; j <= pos; j++) {
                p[j] = expf(p[j] - mx); // <= 1: no overflow; the max term is exactly 1
                sum += p[j];
            }
            const float inv = 1.0f / sum;
            memset(o, 0, HD * sizeof(float));
            for (size_t j = jlo; j <= pos; j++) {
                p[j] *= inv;
                axpy(o, p[j], vb + j * ks, HD);
            }
            if (att) { // invisible keys are saved as exact zeros (see the banner)
                memset(p, 0, jlo * sizeof(float));
                memset(p + pos + 1, 0, (nk - pos - 1) * sizeof(float));
            }
        }
    }
}

// Backward from the saved P, per (sequence, head, query row i):
//   dP_ij = dout_i . v_j,   D_i = sum_j P_ij dP_ij,   dS_ij = P_ij (dP_ij - D_i)
//   dq_i = scale sum_j dS_ij k_j;  dk_j = scale sum_{h in group, i} dS_ij q_i;
//   dv_j = sum_{h in group, i} P_ij dout_i.
// Pass A (rows: (query row, head)) writes dq and D; pass B (rows: (key row, kv head)) writes dk
// and dv, recomputing dP_ij. Each output row has one owner, so no atomics and the result does
// not depend on the thread count.
void bipo_cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                 const float *q, const float *k, const float *v,
                                 const float *att, const bipo_seqs *sq, size_t NH, size_t NKV,
                                 size_t HD) {
    CHECK(NKV > 0 && NH % NKV == 0, "attention: NH=%zu is not a multiple of NKV=%zu", NH, NKV);
    CHECK(att != NULL, "attention_backward needs the probabilities saved by the forward");
    if (sq->S == 0) return;
    const size_t G = NH / NKV, qs = NH * HD, ks = NKV * HD;
    const size_t q0 = sq->q_off[0], Nq = sq->q_off[sq->S] - q0;
    const size_t k0 = sq->k_off[0], Nk = sq->k_off[sq->S] - k0;
    const size_t *ao = att_offsets(sq, NH, CPU_SCRATCH_CALLER_0);
    float *D = bipo_cpu_scratch(CPU_SCRATCH_CALLER_1, (Nq * NH + 1) * sizeof(float));
    size_t maxnk = 0;
    for (size_t s = 0; s < sq->S; s++)
        if (sq->k_off[s + 1] - sq->k_off[s] > maxnk) maxnk = sq->k_off[s + 1] - sq->k_off[s];
    const float scale = 1.0f / sqrtf((float)HD);

#pragma omp parallel num_threads(bipo_cpu_nt) if (Nq * NH > 1)
    {
        float *dp = bipo_cpu_scratch(CPU_SCRATCH_WORKER, maxnk * sizeof(float));
        // ---- pass A: dq and D ----
#pragma omp for schedule(dynamic, 8)
        for (size_t r = 0; r < Nq * NH; r++) {
            const size_t n = q0 + r / NH, h = r % NH;
            const size_t s = seq_of_row(sq->q_off, sq->S, n);
            const size_t nq = sq->q_off[s + 1] - sq->q_off[s], nk = sq->k_off[s + 1] - sq->k_off[s];
            const size_t i = n - sq->q_off[s], pos = nk - nq + i;
            const float *p = att + ao[s] + (h * nq + i) * nk;
            const float *dor = dout + n * qs + h * HD;
            const float *kb = k + sq->k_off[s] * ks + (h / G) * HD;
            const float *vb = v + sq->k_off[s] * ks + (h / G) * HD;
            float *dqr = dq + n * qs + h * HD;
            float Di = 0.0f;
            for (size_t j = 0; j <= pos; j++) {
                dp[j] = p[j] != 0.0f ? dot(dor, vb + j * ks, HD) : 0.0f;
                Di += p[j] * dp[j];
            }
            memset(dqr, 0, HD * sizeof(float));
            for (size_t j = 0; j <= pos; j++)
                if (p[j] != 0.0f) axpy(dqr, p[j] * (dp[j] - Di), kb + j * ks, HD);
#pragma omp simd
            for (size_t d = 0; d < HD; d++) dqr[d] *= scale;
            D[r] = Di;
        }
        // implicit barrier: D is complete
        // ---- pass B: dk, dv ----
#pragma omp for schedule(dynamic, 8)
        for (size_t r = 0; r < Nk * NKV; r++) {
            const size_t m = k0 + r / NKV, g = r % NKV;
            const size_t s = seq_of_row(sq->k_off, sq->S, m);
            const size_t nq = sq->q_off[s + 1] - sq->q_off[s], nk = sq->k_off[s + 1] - sq->k_off[s];
            const size_t jj = m - sq->k_off[s], first = nk - nq; // query i sits at first + i
            const size_t i0 = jj > first ? jj - first : 0;       // first query that can see jj
            const float *vr = v + m * ks + g * HD;
            float *dkr = dk + m * ks + g * HD, *dvr = dv + m * ks + g * HD;
            memset(dkr, 0, HD * sizeof(float));
            memset(dvr, 0, HD * sizeof(float));
            for (size_t h = g * G; h < (g + 1) * G; h++) {
                for (size_t i = i0; i < nq; i++) {
                    const float pij = att[ao[s] + (h * nq + i) * nk + jj];
                    if (pij == 0.0f) continue; // masked (or underflowed): contributes nothing
                    const size_t n = sq->q_off[s] + i;
                    const float *dor = dout + n * qs + h * HD;
                    const float dsij = pij * (dot(dor, vr, HD) - D[(n - q0) * NH + h]);
                    axpy(dvr, pij, dor, HD);
                    axpy(dkr, dsij, q + n * qs + h * HD, HD);
                }
            }
#pragma omp simd
            for (size_t d = 0; d < HD; d++) dkr[d] *= scale;
        }
    }
}
