// tests/test_generate_batch.c — batched steered generation (workers/generate.c:
// bipo_generate_batch, workers/forward.c: bipo_forward_cached_batch) on the tiny random model
// of test_generate:
//  * every sequence of a batch (prompts of different lengths x multipliers -2..2) gives token
//    for token what bipo_generate gives it alone, greedy and sampled (a seed per sequence), in
//    one batch and in chunks of 3 (max_batch), with per-sequence stops;
//  * steering from the last prompt token on (steer_from = n - 1) = argmax of full forwards
//    over prompt + prefix with the hook masked to positions >= n - 1, at every step;
//  * input errors name the sequence.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"  // defines: bipo_generate_batch, bipo_generate, bipo_argmax
#include "model.h"     // defines: bipo_model_load, bipo_forward
#include "tensors.h"   // defines: BIPO_DT_F32
#include "testlib.h"   // defines: EXPECT, tl_summary
#include "testmodel.h" // defines: tm_spec, tm_write_hf
#include "util.h"      // defines: bipo_last_error

enum { NEW = 10, NP = 4, NM = 5, B = NP * NM, MAXP = 9 };
static const float MULTS[NM] = {-2, -1, 0, 1, 2};
static int prompts[NP][MAXP];
static const size_t PLEN[NP] = {3, 1, 9, 5};

static void make_seqs(bipo_gen_seq *seqs, int answer_only) {
    for (size_t p = 0; p < NP; p++)
        for (size_t k = 0; k < NM; k++) {
            bipo_gen_seq *q = &seqs[k * NP + p];
            *q = (bipo_gen_seq){prompts[p], PLEN[p], MULTS[k], answer_only ? PLEN[p] - 1 : 0,
                                1000 + 17 * (k * NP + p)};
        }
}

// Every sequence of one batched run against bipo_generate of that sequence alone; returns the
// 6th token of the first sequence (a stop id that ends some sequences early).
static int check_against_single(bipo_model *m, const char *what, const bipo_gen_batch_opts *o) {
    bipo_gen_seq seqs[B];
    make_seqs(seqs, 0);
    int out[B * NEW], one[NEW];
    size_t n_out[B];
    EXPECT(bipo_generate_batch(m, NULL, seqs, B, o, out, n_out, NULL) == 0, "%s: %s", what,
           bipo_last_error());
    size_t same = 0, total_tokens = 0;
    for (size_t b = 0; b < B; b++) {
        bipo_hook h = {o->layer, o->vec, seqs[b].mult, NULL};
        bipo_gen_opts go = {.max_new_tokens = o->max_new_tokens, .temperature = o->temperature,
                            .top_p = o->top_p, .seed = seqs[b].seed, .stop_ids = o->stop_ids,
                            .n_stop = o->n_stop, .hook = o->vec ? &h : NULL, .prec = o->prec};
        long n = bipo_generate(m, NULL, seqs[b].prompt, seqs[b].n, &go, one, NULL);
        int ok = n == (long)n_out[b];
        for (long i = 0; ok && i < n; i++) ok = one[i] == out[b * NEW + (size_t)i];
        if (!ok && same == b)
            fprintf(stderr, "%s: sequence %zu (mult %g): %zu tokens batched, %ld alone\n", what, b,
                    seqs[b].mult, n_out[b], n);
        same += ok;
        total_tokens += n_out[b];
    }
    EXPECT(same == B, "%s: %zu of %d sequences equal to bipo_generate alone", what, same, B);
    printf("%s: %d sequences, %zu tokens, all equal to one-at-a-time: %s\n", what, B,
           total_tokens, same == B ? "yes" : "no");
    return n_out[0] > 5 ? out[5] : -1;
}

// steer_from = n - 1: greedy tokens = argmax of a full forward over prompt + prefix with the
// hook masked to positions >= n - 1.
static void check_answer_only(bipo_model *m, const bipo_gen_batch_opts *o) {
    bipo_gen_seq seqs[B];
    make_seqs(seqs, 1);
    int out[B * NEW], seq[MAXP + NEW];
    size_t n_out[B];
    EXPECT(bipo_generate_batch(m, NULL, seqs, B, o, out, n_out, NULL) == 0, "answer-only: %s",
           bipo_last_error());
    bipo_acts a;
    bipo_acts_init(&a, 0);
    float *lg = malloc(m->cfg.V * sizeof(float));
    uint8_t mask[MAXP + NEW];
    size_t agree = 0, steps = 0, differs_from_all = 0;
    for (size_t b = 0; b < B; b++) {
        size_t n = seqs[b].n;
        memcpy(seq, seqs[b].prompt, n * sizeof(int));
        memcpy(seq + n, out + b * NEW, n_out[b] * sizeof(int));
        for (size_t i = 0; i < n + NEW; i++) mask[i] = i >= n - 1;
        for (size_t t = 0; t < n_out[b]; t++) {
            size_t off[2] = {0, n + t}, row = n + t - 1;
            bipo_batch bt = {1, off, seq};
            bipo_hook h = {o->layer, o->vec, seqs[b].mult, mask};
            bipo_forward(m, &a, &bt, &h, &row, 1, -1, BIPO_MATMUL_FP32);
            m->be->download(lg, a.logits, m->cfg.V);
            agree += bipo_argmax(lg, m->cfg.V) == seq[n + t];
            steps++;
        }
    }
    // and the mask matters: steering every position gives other tokens for some sequence
    bipo_gen_seq all[B];
    make_seqs(all, 0);
    int out_all[B * NEW];
    size_t n_all[B];
    bipo_generate_batch(m, NULL, all, B, o, out_all, n_all, NULL);
    for (size_t b = 0; b < B; b++)
        differs_from_all += n_all[b] != n_out[b] ||
                            memcmp(out_all + b * NEW, out + b * NEW, n_out[b] * sizeof(int)) != 0;
    EXPECT(agree == steps && steps > 0, "answer-only steering: %zu of %zu steps agree with full "
           "forwards", agree, steps);
    EXPECT(differs_from_all > 0, "steering from the answer on changed no sequence");
    printf("answer-only steering: %zu steps = full forwards with the masked hook; %zu of %d "
           "sequences differ from steering every position\n", agree, differs_from_all, B);
    free(lg);
    bipo_acts_free(&a, m->be);
}

int main(void) {
    char tmp[64];
    tm_spec s = {.L = 4, .C = 64, .NH = 4, .NKV = 2, .HD = 16, .FF = 128, .V = 320,
                 .rope_theta = 10000.f, .eps = 1e-5f, .tied = 1, .seed = 77, .max_pos = 512};
    bipo_model m;
    if (tm_load_tiny_hf(&s, tmp, &m) != 0) {
        EXPECT(0, "tiny model: %s", bipo_last_error());
        return tl_summary("test_generate_batch");
    }
    for (size_t p = 0; p < NP; p++)
        for (size_t i = 0; i < PLEN[p]; i++) prompts[p][i] = (int)((p * 131 + i * 29 + 7) % 320);
    float vh[64];
    for (int i = 0; i < 64; i++) vh[i] = (float)((i * 37) % 11 - 5) * 0.3f;
    float *vb = m.be->alloc(64);
    m.be->upload(vb, vh, 64);
    int stops[2] = {m.cfg.eos_id, -1};

    bipo_gen_batch_opts o = {.max_new_tokens = NEW, .stop_ids = stops, .n_stop = 1, .layer = 1,
                             .vec = vb};
    stops[1] = check_against_single(&m, "greedy steered", &o);
    o.max_batch = 3;
    check_against_single(&m, "greedy steered, chunks of 3", &o);
    o.max_batch = 0, o.temperature = 1.2, o.top_p = 0.9;
    check_against_single(&m, "sampled steered (T 1.2, top-p 0.9)", &o);
    o.n_stop = 2; // a token greedy decoding makes: sequences stop at different steps
    o.temperature = 0;
    check_against_single(&m, "greedy steered, a second stop id", &o);
    o.vec = NULL;
    check_against_single(&m, "greedy unsteered", &o);
    o.vec = vb, o.n_stop = 1;
    check_answer_only(&m, &o);

    // errors name the sequence; max_new_tokens 0 makes nothing
    bipo_gen_seq seqs[B];
    make_seqs(seqs, 0);
    int bad[2] = {1, 320}, out[B * NEW];
    size_t n_out[B];
    seqs[2].prompt = bad, seqs[2].n = 2;
    EXPECT(bipo_generate_batch(&m, NULL, seqs, B, &o, out, n_out, NULL) == -1 &&
               strstr(bipo_last_error(), "sequence 2") && strstr(bipo_last_error(), "vocabulary"),
           "bad token: %s", bipo_last_error());
    seqs[2].n = 0;
    EXPECT(bipo_generate_batch(&m, NULL, seqs, B, &o, out, n_out, NULL) == -1 &&
               strstr(bipo_last_error(), "no tokens"), "empty prompt: %s", bipo_last_error());
    make_seqs(seqs, 0);
    o.max_new_tokens = 0;
    EXPECT(bipo_generate_batch(&m, NULL, seqs, B, &o, out, n_out, NULL) == 0 && n_out[B - 1] == 0,
           "max_new_tokens 0");

    m.be->free(vb);
    bipo_model_free(&m);
    tm_remove(tmp);
    return tl_summary("test_generate_batch");
}
