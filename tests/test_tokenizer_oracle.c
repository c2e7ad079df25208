// tests/test_tokenizer_oracle.c — the C tokenizers against independent references produced by
// tests/tokenizer_oracle.py (run with /usr/bin/python3):
//   1. Llama-2's tokenizer.model through the distribution's sentencepiece: ~3000 strings
//      (BiPO, TruthfulQA, AdvBench, persona statements + edge cases incl. invalid UTF-8, NUL,
//      emoji, CJK, digits, <0x..> literals) must give identical ids through
//        a) a vocab-only GGUF (tokens, scores, types) and
//        b) an HF tokenizer.json whose merges were derived from the pieces;
//   2. the default model (SmolLM2 GGUF) vs an HF tokenizer.json written from the same
//      vocabulary and merges: identical ids on the same strings (loader parity).
// Exits 77 (skipped) when python3 or its sentencepiece package is missing.
#include <stdlib.h>
#include <string.h>

#include "testlib.h"   // defines: EXPECT, tl_summary
#include "tokenizer.h" // defines: bipo_tokenizer_load, bipo_tokenize
#include "util.h"      // defines: bipo_read_file, bipo_last_error

#define PY "/usr/bin/python3"

size_t tt_parse_ids(const char *s, int *out); // tests/test_tokenizer_lib.c

typedef struct {
    char *bytes;
    size_t len;
    int *ids;
    size_t n;
} tcase;

static int unhex(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

// "hex\tid id id\n" lines
static tcase *read_cases(const char *path, size_t *ncase) {
    size_t len;
    char *buf = bipo_read_file(path, &len);
    if (!buf) return NULL;
    size_t cap = 4096, n = 0;
    tcase *c = xmalloc(cap * sizeof *c);
    for (char *line = buf; *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char *tab = strchr(line, '\t');
        if (tab) {
            if (n == cap) c = xrealloc(c, (cap *= 2) * sizeof *c);
            tcase *k = &c[n++];
            k->len = (size_t)(tab - line) / 2;
            k->bytes = xmalloc(k->len + 1);
            for (size_t i = 0; i < k->len; i++)
                k->bytes[i] = (char)(unhex(line[2 * i]) << 4 | unhex(line[2 * i + 1]));
            k->bytes[k->len] = 0;
            k->ids = xmalloc((strlen(tab) + 1) * sizeof *k->ids);
            k->n = tt_parse_ids(tab + 1, k->ids);
        }
        if (!nl) break;
        line = nl + 1;
    }
    free(buf);
    *ncase = n;
    return c;
}

static void print_ids(const char *what, const int *ids, size_t n) {
    fprintf(stderr, "    %s", what);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

// ids of every case through tokenizer `path` must equal the oracle's
static void against_oracle(const char *label, const char *path, const tcase *c, size_t nc) {
    bipo_tokenizer *t = bipo_tokenizer_load(path);
    EXPECT(t != NULL, "%s: load %s: %s", label, path, bipo_last_error());
    if (!t) return;
    size_t ok = 0, shown = 0;
    for (size_t i = 0; i < nc; i++) {
        int *ids = NULL;
        size_t n = 0, cap = 0;
        bipo_tokenize(t, c[i].bytes, c[i].len, 0, 0, &ids, &n, &cap);
        int same = n == c[i].n && (n == 0 || !memcmp(ids, c[i].ids, n * sizeof *ids));
        ok += same;
        if (!same && shown++ < 5) {
            fprintf(stderr, "  %s: case %zu '%.*s'\n", label, i, (int)c[i].len, c[i].bytes);
            print_ids("got ", ids, n);
            print_ids("want", c[i].ids, c[i].n);
        }
        free(ids);
    }
    printf("  %-28s %zu/%zu strings exact\n", label, ok, nc);
    EXPECT(ok == nc, "%s: %zu of %zu strings differ from sentencepiece", label, nc - ok, nc);
    bipo_tokenizer_free(t);
}

// GGUF vs tokenizer.json built from it: same ids on every case (raw bytes, specials parsed)
static void parity(const char *gguf, const char *hfdir, const tcase *c, size_t nc) {
    bipo_tokenizer *a = bipo_tokenizer_load(gguf), *b = bipo_tokenizer_load(hfdir);
    EXPECT(a && b, "parity: load: %s", bipo_last_error());
    if (!a || !b) {
        bipo_tokenizer_free(a), bipo_tokenizer_free(b);
        return;
    }
    EXPECT(bipo_token_bos(a) == bipo_token_bos(b) && bipo_token_eos(a) == bipo_token_eos(b) &&
               bipo_tokenizer_add_bos(a) == bipo_tokenizer_add_bos(b),
           "parity: special ids differ (bos %d/%d eos %d/%d)", bipo_token_bos(a), bipo_token_bos(b),
           bipo_token_eos(a), bipo_token_eos(b));
    EXPECT(bipo_tokenizer_chat_template(b) &&
               !strcmp(bipo_tokenizer_chat_template(a), bipo_tokenizer_chat_template(b)),
           "parity: chat template lost");
    size_t ok = 0;
    for (size_t i = 0; i < nc; i++) {
        int *x = NULL, *y = NULL;
        size_t nx = 0, ny = 0, cx = 0, cy = 0;
        for (int ps = 0; ps < 2; ps++) {
            nx = ny = 0;
            bipo_tokenize(a, c[i].bytes, c[i].len, 1, ps, &x, &nx, &cx);
            bipo_tokenize(b, c[i].bytes, c[i].len, 1, ps, &y, &ny, &cy);
            int same = nx == ny && (nx == 0 || !memcmp(x, y, nx * sizeof *x));
            if (!same) break;
            ok += ps == 1;
        }
        free(x), free(y);
    }
    printf("  %-28s %zu/%zu strings identical\n", "SmolLM2 GGUF vs tokenizer.json", ok, nc);
    EXPECT(ok == nc, "parity: %zu strings differ", nc - ok);
    bipo_tokenizer_free(a), bipo_tokenizer_free(b);
}

int main(void) {
    char dir[] = "/tmp/bipo-tok-oracle-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, PY " %s/tokenizer_oracle.py spm %s %s", BIPO_TEST_DIR,
             BIPO_SHARED_DATA, dir);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd)) {}
        if (WEXITSTATUS(rc) == 77 || WEXITSTATUS(rc) == 127) {
            printf("test_tokenizer_oracle: SKIP (" PY " with sentencepiece is needed)\n");
            return 77;
        }
        EXPECT(0, "tokenizer_oracle.py failed (%d)", rc);
        return tl_summary("test_tokenizer_oracle");
    }
    char path[512];
    snprintf(path, sizeof path, "%s/spm-cases.txt", dir);
    size_t nc = 0;
    tcase *c = read_cases(path, &nc);
    EXPECT(c && nc > 2000, "oracle cases: read %zu", nc);
    if (c) {
        snprintf(path, sizeof path, "%s/llama2-vocab.gguf", dir);
        against_oracle("Llama-2 via GGUF vocab", path, c, nc);
        snprintf(path, sizeof path, "%s/llama2-hf", dir);
        against_oracle("Llama-2 via tokenizer.json", path, c, nc);
        if (bipo_file_exists(BIPO_DEFAULT_MODEL)) {
            snprintf(cmd, sizeof cmd, PY " %s/tokenizer_oracle.py hf-from-gguf %s %s/smol-hf",
                     BIPO_TEST_DIR, BIPO_DEFAULT_MODEL, dir);
            EXPECT(system(cmd) == 0, "hf-from-gguf failed");
            snprintf(path, sizeof path, "%s/smol-hf", dir);
            parity(BIPO_DEFAULT_MODEL, path, c, nc);
        } else {
            printf("  (default model %s not present: GGUF/HF parity skipped; run "
                   "scripts/fetch-model)\n", BIPO_DEFAULT_MODEL);
        }
        for (size_t i = 0; i < nc; i++) free(c[i].bytes), free(c[i].ids);
        free(c);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    return tl_summary("test_tokenizer_oracle");
}
