// tests/test_fluency.c — workers/fluency.c: the mean token log-prob of texts given prompts
// (many packed together, over the packing budget too) against a direct computation: one full
// forward per text, log-softmax in double on the host at the text's positions; distinct-2 on
// hand-counted examples; input errors.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fluency.h"   // defines: bipo_text_mean_logprob, bipo_distinct2
#include "generate.h"  // defines: bipo_argmax
#include "model.h"     // defines: bipo_model_load, bipo_forward
#include "tensors.h"   // defines: BIPO_DT_F32
#include "testlib.h"   // defines: EXPECT, tl_summary
#include "testmodel.h" // defines: tm_spec, tm_write_hf
#include "util.h"      // defines: bipo_last_error

enum { NT = 40, MAXN = 200 };

static double direct_mean_lp(bipo_model *m, const bipo_scored_text *x) {
    int seq[MAXN];
    size_t n = x->n_prompt + x->n_text, V = m->cfg.V;
    memcpy(seq, x->prompt, x->n_prompt * sizeof(int));
    memcpy(seq + x->n_prompt, x->text, x->n_text * sizeof(int));
    size_t off[2] = {0, n}, rows[MAXN];
    for (size_t i = 0; i < n; i++) rows[i] = i;
    bipo_batch b = {1, off, seq};
    bipo_acts a;
    bipo_acts_init(&a, 0);
    bipo_forward(m, &a, &b, NULL, rows, n, -1, BIPO_MATMUL_FP32);
    float *lg = malloc(n * V * sizeof(float));
    m->be->download(lg, a.logits, n * V);
    double sum = 0;
    for (size_t j = 0; j < x->n_text; j++) {
        const float *row = lg + (x->n_prompt - 1 + j) * V;
        double mx = row[bipo_argmax(row, V)], z = 0;
        for (size_t v = 0; v < V; v++) z += exp((double)row[v] - mx);
        sum += (double)row[x->text[j]] - mx - log(z);
    }
    free(lg);
    bipo_acts_free(&a, m->be);
    return sum / (double)x->n_text;
}

int main(void) {
    char tmp[64];
    tm_spec s = {.L = 3, .C = 64, .NH = 4, .NKV = 2, .HD = 16, .FF = 128, .V = 320,
                 .rope_theta = 10000.f, .eps = 1e-5f, .tied = 1, .seed = 5, .max_pos = 256};
    bipo_model m;
    if (tm_load_tiny_hf(&s, tmp, &m) != 0) {
        EXPECT(0, "tiny model: %s", bipo_last_error());
        return tl_summary("test_fluency");
    }
    // 40 texts of 1..30 tokens after prompts of 1..12: 600+ scored rows, so several packs
    static int buf[NT][MAXN];
    bipo_scored_text x[NT];
    for (size_t i = 0; i < NT; i++) {
        size_t np = 1 + i % 12, nt = 1 + (i * 7) % 30;
        for (size_t t = 0; t < np + nt; t++) buf[i][t] = (int)((i * 53 + t * t * 11 + 3) % 320);
        x[i] = (bipo_scored_text){buf[i], np, buf[i] + np, nt};
    }
    x[5].n_text = 0; // no text: NaN
    double got[NT];
    EXPECT(bipo_text_mean_logprob(&m, x, NT, BIPO_MATMUL_FP32, got) == 0, "score: %s",
           bipo_last_error());
    size_t close = 0;
    double maxd = 0;
    for (size_t i = 0; i < NT; i++) {
        if (i == 5) continue;
        double want = direct_mean_lp(&m, &x[i]), d = fabs(got[i] - want);
        if (d > maxd) maxd = d;
        close += d <= 1e-5 * (1 + fabs(want));
    }
    EXPECT(close == NT - 1, "mean log-prob: %zu of %d texts within 1e-5 (max diff %.3g)", close,
           NT - 1, maxd);
    EXPECT(isnan(got[5]), "a text without tokens scores NaN, got %g", got[5]);
    EXPECT(got[0] < 0 && got[0] > -20, "mean log-prob %g not a plausible log-prob", got[0]);
    printf("mean token log-prob: %d texts, max |packed - direct| %.3g\n", NT - 1, maxd);

    // distinct-2: bigrams (1,2) (2,1) (1,2) (2,3) -> 3 / 4; all the same -> 1 / 5
    const int a[] = {1, 2, 1, 2, 3}, b[] = {7, 7, 7, 7, 7, 7}, c[] = {4, 5, 6, 7};
    EXPECT(bipo_distinct2(a, 5) == 0.75, "distinct-2 of 1 2 1 2 3: %g", bipo_distinct2(a, 5));
    EXPECT(fabs(bipo_distinct2(b, 6) - 0.2) < 1e-15, "distinct-2 of 7x6: %g", bipo_distinct2(b, 6));
    EXPECT(bipo_distinct2(c, 4) == 1.0, "distinct-2 of 4 5 6 7: %g", bipo_distinct2(c, 4));
    EXPECT(bipo_distinct2(c, 1) == 0.0, "distinct-2 of one token: %g", bipo_distinct2(c, 1));
    const int d[] = {-1, 1, -1, 1}; // negative ids pack apart from positive ones
    EXPECT(fabs(bipo_distinct2(d, 4) - 2.0 / 3) < 1e-15, "distinct-2 of -1 1 -1 1: %g",
           bipo_distinct2(d, 4));

    // errors name the text
    bipo_scored_text bad[2] = {x[0], x[1]};
    int oov[2] = {3, 320};
    bad[1].text = oov, bad[1].n_text = 2;
    EXPECT(bipo_text_mean_logprob(&m, bad, 2, BIPO_MATMUL_FP32, got) == -1 &&
               strstr(bipo_last_error(), "text 1") && strstr(bipo_last_error(), "vocabulary"),
           "out of vocabulary: %s", bipo_last_error());
    bad[1] = x[1], bad[1].n_prompt = 0;
    EXPECT(bipo_text_mean_logprob(&m, bad, 2, BIPO_MATMUL_FP32, got) == -1 &&
               strstr(bipo_last_error(), "no prompt"), "no prompt: %s", bipo_last_error());

    bipo_model_free(&m);
    tm_remove(tmp);
    return tl_summary("test_fluency");
}
