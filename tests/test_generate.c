// tests/test_generate.c — workers/generate.c on the CLI tests' tiny random model (make_tiny's
// spec, HF F32):
//  * pinned generations: greedy, sampled (temperature + top-p, seed) and steered, token for
//    token as `bipo-pipeline generate --model tiny-hf --tokens 1,5,9 --max-tokens 12 ...` printed
//    them before generation moved out of pipeline/cmd_generate.c (same seed, same text);
//  * KV-cached greedy decoding = argmax of a full forward over prompt + prefix, at every step;
//  * the sampler's frequencies against the nucleus probabilities computed here;
//  * stop ids, on_token's early stop, max_new_tokens and the input errors.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "generate.h"  // defines: bipo_generate, bipo_gen_opts, bipo_sampler
#include "model.h"     // defines: bipo_model_load, bipo_forward
#include "tensors.h"   // defines: BIPO_DT_F32
#include "testlib.h"   // defines: EXPECT, tl_summary
#include "testmodel.h" // defines: tm_spec, tm_write_hf
#include "util.h"      // defines: bipo_last_error

enum { NEW = 12 };
static const int PROMPT[] = {1, 5, 9};

static void expect_tokens(const char *what, const int *got, long n, const int *want, long nw) {
    int same = n == nw;
    for (long i = 0; same && i < n; i++) same = got[i] == want[i];
    EXPECT(same, "%s: %ld tokens, first %d %d %d; want %ld tokens, first %d %d %d", what, n,
           n > 0 ? got[0] : -1, n > 1 ? got[1] : -1, n > 2 ? got[2] : -1, nw, want[0], want[1],
           want[2]);
}

static long gen(bipo_model *m, const bipo_gen_opts *o, int *out) {
    long n = bipo_generate(m, NULL, PROMPT, 3, o, out, NULL);
    EXPECT(n >= 0, "bipo_generate: %s", bipo_last_error());
    return n;
}

// Greedy decoding with the KV cache picks argmax of a full forward over prompt + prefix.
static void check_against_full_forward(bipo_model *m, const int *out, long n) {
    int seq[3 + NEW];
    memcpy(seq, PROMPT, sizeof PROMPT);
    memcpy(seq + 3, out, (size_t)n * sizeof(int));
    bipo_acts a;
    bipo_acts_init(&a, 0);
    float *lg = malloc(m->cfg.V * sizeof(float));
    int agree = 1;
    for (long t = 0; t < n; t++) {
        size_t off[2] = {0, 3 + (size_t)t}, row = 2 + (size_t)t;
        bipo_batch b = {1, off, seq};
        bipo_forward(m, &a, &b, NULL, &row, 1, -1, BIPO_MATMUL_FP32);
        m->be->download(lg, a.logits, m->cfg.V);
        agree &= bipo_argmax(lg, m->cfg.V) == out[t];
    }
    EXPECT(agree, "greedy KV-cached tokens differ from argmax of full forwards");
    free(lg);
    bipo_acts_free(&a, m->be);
}

// Logits log(p) with p = {0.5, 0.3, 0.15, 0.05}; top_p 0.75 keeps the first two, so draws are
// 0 and 1 in the ratio 5 : 3.
static void check_sampler_frequencies(void) {
    const float lg[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    bipo_sampler s;
    bipo_sampler_init(&s, 4, 1.0, 0.75, 99);
    size_t count[4] = {0}, draws = 20000;
    for (size_t i = 0; i < draws; i++) count[bipo_sampler_next(&s, lg)]++;
    bipo_sampler_free(&s);
    double f0 = (double)count[0] / (double)draws;
    EXPECT(count[2] == 0 && count[3] == 0, "top-p 0.75 drew tokens outside the nucleus: %zu, %zu",
           count[2], count[3]);
    EXPECT(fabs(f0 - 0.625) < 0.015, "token 0 drawn %.4f of the time, want 0.625", f0);
    bipo_sampler_init(&s, 4, 0.0, 1.0, 99); // greedy
    EXPECT(bipo_sampler_next(&s, lg) == 0 && s.rng == 99, "greedy must take argmax, no draw");
    bipo_sampler_free(&s);
}

static int stop_after_two(void *ctx, int id) {
    (void)id;
    return ++*(int *)ctx >= 2;
}

int main(void) {
    char tmp[] = "/tmp/bipo-test-generate-XXXXXX", dir[300];
    if (!mkdtemp(tmp)) return 1;
    snprintf(dir, sizeof dir, "%s/tiny-hf", tmp);
    mkdir(dir, 0755);
    tm_spec s = {.L = 4, .C = 64, .NH = 4, .NKV = 2, .HD = 16, .FF = 128, .V = 320,
                 .rope_theta = 10000.f, .eps = 1e-5f, .tied = 1, .seed = 77, .max_pos = 512};
    EXPECT(tm_write_hf(&s, dir, BIPO_DT_F32, 1) == 0, "write model: %s", bipo_last_error());
    bipo_model m;
    if (bipo_model_load(&m, dir, bipo_backend_open("cpu", 0)) != 0) {
        EXPECT(0, "load: %s", bipo_last_error());
        return tl_summary("test_generate");
    }
    int out[NEW + 1], stop = m.cfg.eos_id;
    bipo_gen_opts o = {.max_new_tokens = NEW, .stop_ids = &stop, .n_stop = 1};

    static const int greedy[NEW] = {192, 192, 192, 192, 192, 192, 192, 192, 192, 177, 177, 177};
    long n = gen(&m, &o, out);
    expect_tokens("greedy", out, n, greedy, NEW);
    check_against_full_forward(&m, out, n);

    // --temperature 0.9 --top-p 0.8 --seed 7
    static const int sampled[NEW] = {9, 113, 53, 241, 126, 245, 97, 284, 123, 92, 96, 163};
    bipo_gen_opts os = o;
    os.temperature = 0.9, os.top_p = 0.8, os.seed = 7;
    n = gen(&m, &os, out);
    expect_tokens("sampled (T 0.9, top-p 0.8, seed 7)", out, n, sampled, NEW);

    // --temperature 1.5 --seed 3 --vector v --layer 1 --multiplier -2, v[i] = ((37 i) % 11 - 5) 0.3
    static const int steered[NEW] = {157, 145, 31, 312, 56, 304, 121, 21, 182, 87, 303, 112};
    float vh[64];
    for (int i = 0; i < 64; i++) vh[i] = (float)((i * 37) % 11 - 5) * 0.3f;
    float *vb = m.be->alloc(64);
    m.be->upload(vb, vh, 64);
    bipo_hook hook = {1, vb, -2.0f, NULL};
    bipo_gen_opts ov = o;
    ov.temperature = 1.5, ov.top_p = 1.0, ov.seed = 3, ov.hook = &hook;
    n = gen(&m, &ov, out);
    expect_tokens("steered (T 1.5, seed 3, layer 1, x -2)", out, n, steered, NEW);
    m.be->free(vb);

    // a stop id ends generation before it; on_token can end it; max_new_tokens bounds it
    int stop2[2] = {stop, 177}, seen = 0;
    bipo_gen_opts o2 = o;
    o2.stop_ids = stop2, o2.n_stop = 2;
    n = gen(&m, &o2, out);
    expect_tokens("greedy, stop at 177", out, n, greedy, 9);
    o2 = o, o2.on_token = stop_after_two, o2.ctx = &seen;
    n = gen(&m, &o2, out);
    EXPECT(n == 2 && seen == 2, "on_token stop: %ld tokens, %d callbacks", n, seen);
    o2 = o, o2.max_new_tokens = 4;
    n = gen(&m, &o2, out);
    expect_tokens("max_new_tokens 4", out, n, greedy, 4);
    o2 = os, o2.top_p = 1e-6; // a nucleus of one token is greedy
    n = gen(&m, &o2, out);
    expect_tokens("top-p 1e-6 = greedy", out, n, greedy, NEW);

    // input errors: one sentence, -1, nothing written
    const int bad[2] = {1, 320};
    EXPECT(bipo_generate(&m, NULL, bad, 2, &o, out, NULL) == -1 &&
               strstr(bipo_last_error(), "vocabulary"),
           "token outside the vocabulary: %s", bipo_last_error());
    EXPECT(bipo_generate(&m, NULL, PROMPT, 0, &o, out, NULL) == -1, "empty prompt must fail");
    o2 = o, o2.max_new_tokens = 510;
    EXPECT(bipo_generate(&m, NULL, PROMPT, 3, &o2, out, NULL) == -1 &&
               strstr(bipo_last_error(), "context of 512"),
           "past the context: %s", bipo_last_error());

    check_sampler_frequencies();
    bipo_model_free(&m);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmp);
    return tl_summary("test_generate");
}
