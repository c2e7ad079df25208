// tests/test_buffers.c — the activation and gradient buffers (workers/buffers.c): ensure gives
// every buffer the size its shape comment says, shares the slots it should, grows without
// leaking, and free releases every buffer it allocated. A counting backend (the CPU backend
// with alloc/free wrapped) records every live buffer and its size; the ASan build
// (buffers_asan) also checks the writes below stay inside the buffers and that nothing leaks.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"   // defines: bipo_acts, bipo_grads, bipo_acts_ensure, bipo_grads_ensure
#include "testlib.h" // defines: EXPECT, tl_summary

// ---- a backend that keeps a registry of live buffers ----
enum { MAX_LIVE = 4096 };
static struct {
    float *p;
    size_t n;
} live[MAX_LIVE];
static size_t n_live, bad_frees;
static const bipo_backend *cpu;

static float *count_alloc(size_t n) {
    float *p = cpu->alloc(n);
    if (n_live < MAX_LIVE) live[n_live].p = p, live[n_live].n = n, n_live++;
    return p;
}
static void count_free(float *p) {
    for (size_t i = 0; i < n_live; i++)
        if (live[i].p == p) {
            live[i] = live[--n_live];
            cpu->free(p);
            return;
        }
    bad_frees++; // freed twice or never allocated here
}
// The size of live buffer p in floats, 0 when p is not a live buffer.
static size_t live_size(const float *p) {
    for (size_t i = 0; i < n_live; i++)
        if (live[i].p == p) return live[i].n;
    return 0;
}

// Checks buffer p holds need floats and fills all of them (ASan: a short buffer fails here).
static void check_buf(const char *what, size_t l, float *p, size_t need) {
    size_t have = live_size(p);
    EXPECT(p && have >= need, "%s[%zu]: %zu floats live, %zu needed", what, l, have, need);
    if (p && have >= need) memset(p, 0x3f, need * sizeof(float));
}

static const bipo_config CFG = {.L = 5, .C = 8, .NH = 4, .NKV = 2, .HD = 3, .FF = 20, .V = 30};

// Every activation buffer of a after bipo_acts_ensure(N, att, M, first, K); returns how many
// distinct buffers the struct should hold (counted from its fields, not from the table).
static size_t check_acts(bipo_acts *a, size_t N, size_t att, size_t M, size_t first, size_t K) {
    const bipo_config *c = &CFG;
    size_t QD = c->NH * c->HD, KVD = c->NKV * c->HD, big = c->FF; // FF > QD > C here
    struct {
        const char *name;
        float **arr;
        size_t need;
        int per_layer_when_saving;
    } per_layer[] = {{"ln1", a->ln1, N * c->C, 0},         {"ln1_rstd", a->ln1_rstd, N, 1},
                     {"q", a->q, N * QD, 1},               {"k", a->k, N * KVD, 1},
                     {"v", a->v, N * KVD, 1},              {"att", a->att, att, 1},
                     {"attn_out", a->attn_out, N * QD, 0}, {"resid_mid", a->resid_mid, N * c->C, 1},
                     {"ln2", a->ln2, N * c->C, 0},         {"ln2_rstd", a->ln2_rstd, N, 1},
                     {"gate", a->gate, N * c->FF, 1},      {"up", a->up, N * c->FF, 1},
                     {"act", a->act, N * c->FF, 0},        {"kg", a->kg, K * KVD, 1},
                     {"vg", a->vg, K * KVD, 1}};
    size_t nl = c->L - first, expect = 0;
    for (size_t i = 0; i < sizeof per_layer / sizeof per_layer[0]; i++) {
        float **arr = per_layer[i].arr;
        if (per_layer[i].need == 0) { // no shared-prefix layout: no gathered rows
            EXPECT(arr == NULL, "%s: allocated without rows", per_layer[i].name);
            continue;
        }
        EXPECT(arr != NULL, "%s: missing", per_layer[i].name);
        if (!arr) continue;
        int own = a->save && per_layer[i].per_layer_when_saving;
        for (size_t l = first; l < c->L; l++) {
            check_buf(per_layer[i].name, l, arr[l], per_layer[i].need);
            if (l > first)
                EXPECT(own ? arr[l] != arr[first] : arr[l] == arr[first],
                       "%s[%zu]: %s the slot of layer %zu", per_layer[i].name, l,
                       own ? "shares" : "does not share", first);
        }
        expect += own ? nl : 1;
    }
    for (size_t l = first; l <= c->L; l++) check_buf("resid", l, a->resid[l], N * c->C);
    EXPECT(a->final == a->resid[c->L], "final is not resid[L]");
    expect += nl + 1;
    check_buf("scratch", 0, a->scratch, N * big);
    expect += 1;
    if (M > 0) {
        check_buf("lnf", 0, a->lnf, M * c->C);
        check_buf("head_in", 0, a->head_in, M * c->C);
        check_buf("lnf_rstd", 0, a->lnf_rstd, M);
        check_buf("logits", 0, a->logits, M * c->V);
        expect += 4;
    }
    return expect;
}

static void check_freed_acts(const bipo_acts *a) {
    EXPECT(n_live == 0 && bad_frees == 0, "after bipo_acts_free: %zu buffers live, %zu bad frees",
           n_live, bad_frees);
    const void *ptrs[] = {a->ln1, a->ln1_rstd, a->q,    a->k,     a->v,        a->kg,
                          a->vg,  a->att,      a->attn_out, a->resid_mid, a->ln2, a->ln2_rstd,
                          a->gate, a->up,      a->act,  a->resid, a->head_in,  a->lnf,
                          a->lnf_rstd, a->logits, a->scratch};
    int all_null = 1;
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) all_null &= ptrs[i] == NULL;
    EXPECT(all_null, "bipo_acts_free left a member set");
    EXPECT(a->cap_N == 0 && a->cap_M == 0 && a->cap_att == 0 && a->cap_K == 0, "caps not reset");
}

static void test_acts(const bipo_model *m, int save) {
    bipo_acts a;
    bipo_acts_init(&a, save);
    // a first forward, then one that grows every kind of rows, then one that only needs more
    // scored rows, then one that starts lower (first 2 -> 0) with the shared-prefix layout
    struct {
        size_t N, att, M, first, K;
    } steps[] = {{10, 300, 0, 2, 0}, {40, 2000, 3, 2, 0}, {40, 2000, 9, 2, 0}, {7, 50, 2, 0, 30}};
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        const float *resid_before = a.resid ? a.resid[a.first] : NULL;
        size_t first_before = a.first;
        bipo_acts_ensure(&a, m, steps[s].N, steps[s].att, steps[s].M, steps[s].first, steps[s].K);
        size_t expect = check_acts(&a, steps[s].N, steps[s].att, steps[s].M, steps[s].first, steps[s].K);
        EXPECT(n_live == expect, "save %d step %zu: %zu buffers live, the fields hold %zu", save,
               s, n_live, expect);
        if (s == 2) // only M grew: the token buffers stay
            EXPECT(a.resid[first_before] == resid_before, "M growth reallocated resid");
    }
    bipo_acts_free(&a, m->be);
    check_freed_acts(&a);
    bipo_acts_free(&a, m->be); // twice is harmless
    EXPECT(bad_frees == 0, "second bipo_acts_free freed again");
}

static void test_grads(const bipo_model *m) {
    const bipo_config *c = &CFG;
    size_t QD = c->NH * c->HD, KVD = c->NKV * c->HD;
    bipo_grads g = {0};
    struct {
        size_t N, M, K;
    } steps[] = {{10, 0, 0}, {12, 4, 0}, {50, 4, 20}, {20, 2, 5}};
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        size_t N = steps[s].N, M = steps[s].M, K = steps[s].K;
        bipo_grads_ensure(&g, m, N, M, K);
        struct {
            const char *name;
            float *p;
            size_t need;
        } bufs[] = {{"dresid", g.dresid, N * c->C}, {"dln", g.dln, N * c->C},
                    {"dq", g.dq, N * QD},           {"dk", g.dk, N * KVD},
                    {"dv", g.dv, N * KVD},          {"dattn", g.dattn, N * QD},
                    {"dgate", g.dgate, N * c->FF},  {"dup", g.dup, N * c->FF},
                    {"dact", g.dact, N * c->FF},    {"dhead", g.dhead, (M ? M : 1) * c->C},
                    {"dkg", g.dkg, K * KVD},        {"dvg", g.dvg, K * KVD}};
        size_t expect = 0;
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
            if (bufs[i].need == 0 && !g.cap_K) {
                EXPECT(bufs[i].p == NULL, "%s: allocated without rows", bufs[i].name);
                continue;
            }
            check_buf(bufs[i].name, 0, bufs[i].p, bufs[i].need);
            expect++;
        }
        EXPECT(n_live == expect, "grads step %zu: %zu buffers live, the fields hold %zu", s,
               n_live, expect);
    }
    bipo_grads_free(&g, m->be);
    EXPECT(n_live == 0 && bad_frees == 0, "after bipo_grads_free: %zu live, %zu bad frees",
           n_live, bad_frees);
    EXPECT(!g.dresid && !g.dhead && !g.dkg && !g.dvg && !g.dact && g.cap_N == 0 && g.cap_K == 0,
           "bipo_grads_free left a member set");
}

int main(void) {
    cpu = bipo_backend_open("cpu", 0);
    bipo_backend be = *cpu;
    be.alloc = count_alloc;
    be.free = count_free;
    bipo_model m = {.cfg = CFG, .be = &be};
    test_acts(&m, 1); // training: one slot per layer for what the backward reads
    test_acts(&m, 0); // inference: one slot for every layer
    test_grads(&m);
    return tl_summary("test_buffers");
}
