// kernels/cuda/attention_cuda.cu — causal GQA attention (optional sliding window) on packed
// variable-length sequences (bipo_seqs, nq <= nk for KV-cache decoding), flash-style: no score
// matrix is ever stored. One warp per (query row, head) walks the row's visible keys in tiles
// of 32, one key per lane (its score = q . k_j), with an online softmax (running max and sum)
// and the P V sum of the tile in registers, each lane owning head dims lane, lane + 32, ...
//
// What `att` holds on this backend: the per-row logsumexp of the scaled scores, at
// att[n * NH + h] for query row n and head h (Nq * NH floats, which is <= bipo_att_floats since
// every sequence has nk >= 1). The backward recomputes the probabilities p = exp(s - lse) from
// it, tile by tile:
//   pass A, a warp per (query row, head): D = sum_j p_j (dO . v_j), then
//           dq = scale sum_j p_j (dO . v_j - D) k_j;  D is kept in scratch [Nq * NH];
//   pass B, a warp per (key row, kv head): over the G heads of the group and the query rows
//           that see the key, in tiles of 32 queries, dv = sum_i p_i dO_i and
//           dk = scale sum_i p_i (dO_i . v - D_i) q_i. Each dk/dv row has one writer: no
//           atomics, the result does not depend on scheduling.
// The backward of kernels.h carries no window: the forward records (att pointer -> window) in a
// small table the backward looks up (see window_of).
#include <stdlib.h>

#include "cuda_internal.h" // defines: bipo_cuda_upload_seqs, bipo_cuda_scratch, the bodies

#define ATT_WARPS 4
#define ATT_DPL (CU_MAX_HD / 32) // head dims per lane, at most

// ---- the window each saved att buffer was made with ---------------------------------------------
enum { WIN_MAX = 1024 };
static struct { const float *att; size_t window; } wins[WIN_MAX];
static size_t nwins = 0, wnext = 0;

static void window_record(const float *att, size_t window) {
    for (size_t i = 0; i < nwins; i++)
        if (wins[i].att == att) { wins[i].window = window; return; }
    const size_t i = nwins < WIN_MAX ? nwins++ : (wnext++ % WIN_MAX); // oldest goes first
    wins[i].att = att, wins[i].window = window;
}
static size_t window_of(const float *att) {
    for (size_t i = 0; i < nwins; i++)
        if (wins[i].att == att) return wins[i].window;
    BIPO_FATAL("attention_backward: att was not saved by this backend's attention_forward");
}

// ---- forward -----------------------------------------------------------------------------------
__global__ void att_fwd_kernel(float *out, float *lse_out, const float *q, const float *k,
                               const float *v, const unsigned long long *qo,
                               const unsigned long long *ko, size_t S, size_t NH, size_t NKV,
                               size_t HD, size_t window, size_t Nq, float scale) {
    __shared__ float sp[ATT_WARPS][CU_TILE];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const size_t gw = blockIdx.x * (size_t)ATT_WARPS + w;
    if (gw >= Nq * NH) return; // the whole warp: no block-wide barrier below
    const size_t n = gw / NH, h = gw % NH, g = h / (NH / NKV), qs = NH * HD, ks = NKV * HD;
    size_t k0, k1;
    cu_att_query_range(qo, ko, S, window, n, &k0, &k1);
    const float *qr = q + n * qs + h * HD, *kb = k + g * HD, *vb = v + g * HD;
    float o[ATT_DPL], m = -INFINITY, l = 0.0f;
#pragma unroll
    for (int t = 0; t < ATT_DPL; t++) o[t] = 0.0f;
    for (size_t j0 = k0; j0 < k1; j0 += CU_TILE) {
        const size_t cnt = k1 - j0 < CU_TILE ? k1 - j0 : CU_TILE;
        const float s = lane < cnt ? cu_dot(qr, kb + (j0 + lane) * ks, HD, scale) : -INFINITY;
        const float mnew = cu_online_max(m, cu_warp_max(s));
        const float p = lane < cnt ? expf(s - mnew) : 0.0f;
        const float corr = cu_online_step(&m, &l, mnew, cu_warp_sum(p));
        sp[w][lane] = p;
        __syncwarp();
#pragma unroll
        for (int t = 0; t < ATT_DPL; t++) {
            const size_t d = lane + 32 * t;
            if (d < HD) o[t] = o[t] * corr + cu_tile_acc(sp[w], vb + j0 * ks, ks, cnt, d);
        }
        __syncwarp();
    }
    if (lse_out && lane == 0) lse_out[n * NH + h] = m + logf(l);
    const float inv = 1.0f / l;
#pragma unroll
    for (int t = 0; t < ATT_DPL; t++) {
        const size_t d = lane + 32 * t;
        if (d < HD) out[n * qs + h * HD + d] = o[t] * inv;
    }
}

static void check_shapes(const bipo_seqs *sq, size_t NH, size_t NKV, size_t HD) {
    CHECK(NKV > 0 && NH % NKV == 0, "attention: NH=%zu is not a multiple of NKV=%zu", NH, NKV);
    CHECK(HD > 0 && HD <= CU_MAX_HD, "attention: head dim %zu outside 1..%d on CUDA", HD, CU_MAX_HD);
    for (size_t s = 0; s < sq->S; s++) {
        const size_t nq = sq->q_off[s + 1] - sq->q_off[s], nk = sq->k_off[s + 1] - sq->k_off[s];
        CHECK(nq <= nk, "attention: sequence %zu has %zu queries but only %zu keys", s, nq, nk);
    }
}

static unsigned warp_blocks(size_t warps) {
    const size_t b = (warps + ATT_WARPS - 1) / ATT_WARPS;
    CHECK(b <= 0x7fffffff, "attention: %zu warps is too many for one grid", warps);
    return (unsigned)b;
}

void cuda_attention_forward(float *out, float *att, const float *q, const float *k,
                            const float *v, const bipo_seqs *sq, size_t NH, size_t NKV,
                            size_t HD, size_t window) {
    check_shapes(sq, NH, NKV, HD);
    if (att) window_record(att, window);
    const size_t Nq = sq->q_off[sq->S] - sq->q_off[0];
    if (sq->S == 0 || Nq == 0) return;
    CHECK(sq->q_off[0] == 0 && sq->k_off[0] == 0, "attention: offsets must start at 0");
    const unsigned long long *qo, *ko;
    bipo_cuda_upload_seqs(sq, &qo, &ko);
    att_fwd_kernel<<<warp_blocks(Nq * NH), 32 * ATT_WARPS>>>(out, att, q, k, v, qo, ko, sq->S, NH,
                                                              NKV, HD, window, Nq,
                                                              1.0f / sqrtf((float)HD));
    CUDA_LAUNCHED("att_fwd_kernel");
}

// ---- backward ----------------------------------------------------------------------------------
__global__ void att_dq_kernel(float *dq, float *Dbuf, const float *dout, const float *q,
                              const float *k, const float *v, const float *lse,
                              const unsigned long long *qo, const unsigned long long *ko,
                              size_t S, size_t NH, size_t NKV, size_t HD, size_t window,
                              size_t Nq, float scale) {
    __shared__ float sp[ATT_WARPS][CU_TILE];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const size_t gw = blockIdx.x * (size_t)ATT_WARPS + w;
    if (gw >= Nq * NH) return;
    const size_t n = gw / NH, h = gw % NH, g = h / (NH / NKV), qs = NH * HD, ks = NKV * HD;
    size_t k0, k1;
    cu_att_query_range(qo, ko, S, window, n, &k0, &k1);
    const float *qr = q + n * qs + h * HD, *dor = dout + n * qs + h * HD;
    const float *kb = k + g * HD, *vb = v + g * HD, L = lse[n * NH + h];
    float Dp = 0.0f; // pass 1: this lane's share of D
    for (size_t j0 = k0; j0 < k1; j0 += CU_TILE)
        if (j0 + lane < k1) {
            const size_t j = j0 + lane;
            Dp += expf(cu_dot(qr, kb + j * ks, HD, scale) - L) * cu_dot(dor, vb + j * ks, HD, 1.0f);
        }
    const float D = cu_warp_sum(Dp);
    float acc[ATT_DPL];
#pragma unroll
    for (int t = 0; t < ATT_DPL; t++) acc[t] = 0.0f;
    for (size_t j0 = k0; j0 < k1; j0 += CU_TILE) { // pass 2: dq
        const size_t cnt = k1 - j0 < CU_TILE ? k1 - j0 : CU_TILE, j = j0 + lane;
        float ds = 0.0f;
        if (lane < cnt) {
            const float p = expf(cu_dot(qr, kb + j * ks, HD, scale) - L);
            ds = p * (cu_dot(dor, vb + j * ks, HD, 1.0f) - D);
        }
        sp[w][lane] = ds;
        __syncwarp();
#pragma unroll
        for (int t = 0; t < ATT_DPL; t++) {
            const size_t d = lane + 32 * t;
            if (d < HD) acc[t] += cu_tile_acc(sp[w], kb + j0 * ks, ks, cnt, d);
        }
        __syncwarp();
    }
    if (lane == 0) Dbuf[n * NH + h] = D;
#pragma unroll
    for (int t = 0; t < ATT_DPL; t++) {
        const size_t d = lane + 32 * t;
        if (d < HD) dq[n * qs + h * HD + d] = scale * acc[t];
    }
}

__global__ void att_dkv_kernel(float *dk, float *dv, const float *Dbuf, const float *dout,
                               const float *q, const float *k, const float *v, const float *lse,
                               const unsigned long long *qo, const unsigned long long *ko,
                               size_t S, size_t NH, size_t NKV, size_t HD, size_t window,
                               size_t Nk, float scale) {
    __shared__ float sp[ATT_WARPS][CU_TILE], sd[ATT_WARPS][CU_TILE];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const size_t gw = blockIdx.x * (size_t)ATT_WARPS + w;
    if (gw >= Nk * NKV) return;
    const size_t r = gw / NKV, g = gw % NKV, G = NH / NKV, qs = NH * HD, ks = NKV * HD;
    size_t q0, q1;
    cu_att_key_range(qo, ko, S, window, r, &q0, &q1);
    const float *kr = k + r * ks + g * HD, *vr = v + r * ks + g * HD;
    float ak[ATT_DPL], av[ATT_DPL];
#pragma unroll
    for (int t = 0; t < ATT_DPL; t++) ak[t] = av[t] = 0.0f;
    for (size_t h = g * G; h < (g + 1) * G; h++)
        for (size_t i0 = q0; i0 < q1; i0 += CU_TILE) {
            const size_t cnt = q1 - i0 < CU_TILE ? q1 - i0 : CU_TILE, i = i0 + lane;
            float p = 0.0f, ds = 0.0f;
            if (lane < cnt) {
                p = expf(cu_dot(q + i * qs + h * HD, kr, HD, scale) - lse[i * NH + h]);
                ds = p * (cu_dot(dout + i * qs + h * HD, vr, HD, 1.0f) - Dbuf[i * NH + h]);
            }
            sp[w][lane] = p, sd[w][lane] = ds;
            __syncwarp();
#pragma unroll
            for (int t = 0; t < ATT_DPL; t++) {
                const size_t d = lane + 32 * t;
                if (d < HD) {
                    av[t] += cu_tile_acc(sp[w], dout + i0 * qs + h * HD, qs, cnt, d);
                    ak[t] += cu_tile_acc(sd[w], q + i0 * qs + h * HD, qs, cnt, d);
                }
            }
            __syncwarp();
        }
#pragma unroll
    for (int t = 0; t < ATT_DPL; t++) {
        const size_t d = lane + 32 * t;
        if (d < HD) dk[r * ks + g * HD + d] = scale * ak[t], dv[r * ks + g * HD + d] = av[t];
    }
}

void cuda_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                             const float *k, const float *v, const float *att,
                             const bipo_seqs *sq, size_t NH, size_t NKV, size_t HD) {
    CHECK(att != NULL, "attention_backward needs the logsumexp saved by the forward");
    check_shapes(sq, NH, NKV, HD);
    const size_t window = window_of(att);
    const size_t Nq = sq->q_off[sq->S] - sq->q_off[0], Nk = sq->k_off[sq->S] - sq->k_off[0];
    if (sq->S == 0 || Nk == 0) return;
    const unsigned long long *qo, *ko;
    bipo_cuda_upload_seqs(sq, &qo, &ko);
    float *D = (float *)bipo_cuda_scratch(CU_SCRATCH_ATT, (Nq * NH + 1) * sizeof(float));
    const float scale = 1.0f / sqrtf((float)HD);
    if (Nq) {
        att_dq_kernel<<<warp_blocks(Nq * NH), 32 * ATT_WARPS>>>(dq, D, dout, q, k, v, att, qo, ko,
                                                                 sq->S, NH, NKV, HD, window, Nq,
                                                                 scale);
        CUDA_LAUNCHED("att_dq_kernel");
    }
    att_dkv_kernel<<<warp_blocks(Nk * NKV), 32 * ATT_WARPS>>>(dk, dv, D, dout, q, k, v, att, qo, ko,
                                                               sq->S, NH, NKV, HD, window, Nk,
                                                               scale);
    CUDA_LAUNCHED("att_dkv_kernel");
}
