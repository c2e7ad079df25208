// tests/test_tokenizer.c — tokenizers against independent references:
//   1. llama.cpp's vocab test vectors (HF tokenizer outputs, no BOS) for llama-spm, phi-3,
//      gpt-2, starcoder and refact: every id of every string must match;
//   2. the default model (SmolLM2 GGUF): decode(encode(x)) == x over a corpus drawn from the
//      shared data, special tokens, the streaming decoder, and a GGUF vs tokenizer.json parity
//      check (the HF file is written from the same GGUF by tests/tokenizer_oracle.py);
//   3. robustness: invalid UTF-8, NUL bytes, 1 MB inputs — no crash, defined output;
//   4. loader errors name the file.
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testlib.h"   // defines: EXPECT, tl_summary
#include "tokenizer.h" // defines: bipo_tokenizer_load, bipo_tokenize, bipo_detokenize
#include "util.h"      // defines: bipo_read_file, bipo_last_error

size_t tt_parse_ids(const char *s, int *out); // tests/test_tokenizer_lib.c

#define VOCAB_DIR BIPO_SHARED_DATA "/llama.cpp-vocab/"

// ---- 1. llama.cpp vocab vectors -------------------------------------------------------------
static void vocab_vectors(const char *name) {
    char path[256], inp[300], outp[300];
    snprintf(path, sizeof path, VOCAB_DIR "ggml-vocab-%s.gguf", name);
    snprintf(inp, sizeof inp, "%s.inp", path);
    snprintf(outp, sizeof outp, "%s.out", path);
    bipo_tokenizer *t = bipo_tokenizer_load(path);
    EXPECT(t != NULL, "%s: load: %s", name, bipo_last_error());
    if (!t) return;
    size_t ilen, olen;
    char *in = bipo_read_file(inp, &ilen), *out = bipo_read_file(outp, &olen);
    EXPECT(in && out, "%s: read vectors", name);
    if (!in || !out) {
        free(in), free(out), bipo_tokenizer_free(t);
        return;
    }
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    char *p = in, *line = out;
    int n_ok = 0, n_all = 0;
    for (;;) {
        char *e = strstr(p, SEP);
        if (!e) break;
        char *nl = strchr(line, '\n');
        if (!nl) break;
        *nl = 0;
        int want[4096];
        size_t nw = tt_parse_ids(line, want);
        int *ids = NULL;
        size_t n = 0, cap = 0;
        bipo_tokenize(t, p, (size_t)(e - p), 0, 0, &ids, &n, &cap);
        int same = n == nw && (n == 0 || !memcmp(ids, want, n * sizeof *ids));
        n_all++;
        n_ok += same;
        if (!same) {
            fprintf(stderr, "  %s: '%.*s'\n    got ", name, (int)(e - p), p);
            for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
            fprintf(stderr, "\n    want");
            for (size_t i = 0; i < nw; i++) fprintf(stderr, " %d", want[i]);
            fprintf(stderr, "\n");
        }
        EXPECT(same, "%s: vector %d differs", name, n_all);
        free(ids);
        p = e + sizeof SEP - 1;
        line = nl + 1;
    }
    printf("  vocab %-10s %d/%d strings exact\n", name, n_ok, n_all);
    EXPECT(n_all == 46, "%s: expected 46 vectors, read %d", name, n_all);
    free(in), free(out);
    bipo_tokenizer_free(t);
}


// ---- 2. the default model ----------------------------------------------------------------------

// Lines of a few shared data files (raw CSV / JSONL lines are real text with quotes, escapes,
// unicode); at most `per_file` lines each.
static char **corpus_lines(size_t per_file, size_t *count) {
    static const char *files[] = {
        "bipo/data/power-seeking/train.csv", "bipo/data/hallucination/train.csv",
        "bipo/data/jailbreak/train.csv",     "truthfulqa/TruthfulQA.csv",
        "advbench/harmful_behaviors.csv",    "anthropic-evals/persona/agreeableness.jsonl",
        "anthropic-evals/persona/anti-LGBTQ-rights.jsonl",
    };
    size_t cap = 1024, n = 0;
    char **out = xmalloc(cap * sizeof *out);
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", BIPO_SHARED_DATA, files[f]);
        size_t len;
        char *buf = bipo_read_file(path, &len);
        EXPECT(buf != NULL, "corpus: %s", bipo_last_error());
        if (!buf) continue;
        size_t taken = 0;
        for (char *line = buf; *line && taken < per_file;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = 0;
            if (*line) {
                if (n == cap) out = xrealloc(out, (cap *= 2) * sizeof *out);
                out[n++] = xstrdup(line);
                taken++;
            }
            if (!nl) break;
            line = nl + 1;
        }
        free(buf);
    }
    *count = n;
    return out;
}

static int *enc(const bipo_tokenizer *t, const char *s, size_t len, int bos, int special, size_t *n) {
    int *ids = NULL;
    size_t cap = 0;
    *n = 0;
    bipo_tokenize(t, s, len, bos, special, &ids, n, &cap);
    return ids;
}

// decode(encode(x)) == x, and the streaming decoder produces the same bytes
static int round_trip(const bipo_tokenizer *t, const char *s, size_t len) {
    size_t n, dl;
    int *ids = enc(t, s, len, bipo_tokenizer_add_bos(t), 0, &n);
    char *d = bipo_detokenize(t, ids, n, BIPO_DETOK_SKIP_SPECIAL, &dl);
    int ok = dl == len && !memcmp(d, s, len);
    bipo_decoder *dec = bipo_decoder_new(t);
    char *st = xmalloc(len + 64);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const char *p = bipo_decoder_next(dec, ids[i], &l);
        ok &= bipo_utf8_valid(p, l) || !bipo_utf8_valid(s, len); // only whole characters
        if (k + l <= len + 32) memcpy(st + k, p, l);
        k += l;
    }
    size_t l;
    const char *p = bipo_decoder_finish(dec, &l);
    if (k + l <= len + 32) memcpy(st + k, p, l);
    k += l;
    ok &= k == dl && !memcmp(st, d, dl);
    bipo_decoder_free(dec);
    free(st), free(d), free(ids);
    return ok;
}

static void default_model(void) {
    if (!bipo_file_exists(BIPO_DEFAULT_MODEL)) {
        printf("  default model %s not present (scripts/fetch-model): skipped\n", BIPO_DEFAULT_MODEL);
        return;
    }
    bipo_tokenizer *t = bipo_tokenizer_load(BIPO_DEFAULT_MODEL);
    EXPECT(t != NULL, "default model: %s", bipo_last_error());
    if (!t) return;
    EXPECT(bipo_tokenizer_kind(t) == BIPO_TOK_BPE && bipo_tokenizer_n_vocab(t) == 49152,
           "SmolLM2: kind %d vocab %d", bipo_tokenizer_kind(t), bipo_tokenizer_n_vocab(t));
    EXPECT(bipo_token_bos(t) == 1 && bipo_token_eos(t) == 2 && !bipo_tokenizer_add_bos(t),
           "SmolLM2 specials: bos %d eos %d add_bos %d", bipo_token_bos(t), bipo_token_eos(t),
           bipo_tokenizer_add_bos(t));
    EXPECT(bipo_token_eot(t) == 2 && bipo_token_is_eog(t, 2) && bipo_token_is_eog(t, 0) &&
               !bipo_token_is_eog(t, 1),
           "SmolLM2 end of generation: eot %d", bipo_token_eot(t));
    // round trip over the corpus
    size_t nl;
    char **lines = corpus_lines(400, &nl);
    size_t ok = 0, bytes = 0;
    for (size_t i = 0; i < nl; i++) {
        size_t len = strlen(lines[i]);
        int r = round_trip(t, lines[i], len);
        if (!r && ok + 3 > i) fprintf(stderr, "  round trip failed: '%s'\n", lines[i]);
        ok += r;
        bytes += len;
    }
    printf("  SmolLM2 round trip          %zu/%zu lines (%zu bytes)\n", ok, nl, bytes);
    EXPECT(nl > 2000 && ok == nl, "round trip: %zu of %zu lines differ", nl - ok, nl);
    // same for the SPM vocab (dummy prefix stripped on decode)
    bipo_tokenizer *spm = bipo_tokenizer_load(VOCAB_DIR "ggml-vocab-llama-spm.gguf");
    size_t ok2 = 0;
    for (size_t i = 0; spm && i < nl; i++) ok2 += round_trip(spm, lines[i], strlen(lines[i]));
    printf("  Llama-2 SPM round trip      %zu/%zu lines\n", ok2, nl);
    EXPECT(ok2 == nl, "SPM round trip: %zu lines differ", nl - ok2);
    for (size_t i = 0; i < nl; i++) free(lines[i]);
    free(lines);
    // special tokens: recognized with parse_special, plain text without
    size_t n;
    int *ids = enc(t, "<|im_start|>user\nHi<|im_end|>", 29, 0, 1, &n);
    EXPECT(n == 5 && ids[0] == 1 && ids[n - 1] == 2, "specials parsed: n=%zu", n);
    free(ids);
    ids = enc(t, "<|im_start|>", 12, 0, 0, &n);
    EXPECT(n > 1 && ids[0] != 1, "specials as text when parse_special=0: n=%zu", n);
    free(ids);
    // byte-level pieces and exact ids (from the GGUF's own vocab: "Hello"=19556 "Ġworld"=905)
    ids = enc(t, "Hello world 42", 14, 0, 0, &n);
    // (digits split singly by the smollm pre-tokenizer: "Ġ" "4" "2")
    EXPECT(n == 5 && ids[0] == 19556 && ids[1] == 905 && !strcmp(bipo_token_piece(t, 905), "Ġworld") &&
               !strcmp(bipo_token_piece(t, ids[2]), "Ġ") && !strcmp(bipo_token_piece(t, ids[3]), "4"),
           "Hello world 42: n=%zu", n);
    free(ids);
    bipo_tokenizer_free(spm);
    bipo_tokenizer_free(t);
}

// ---- 3. robustness ------------------------------------------------------------------------------

static void robustness(const char *path) {
    bipo_tokenizer *t = bipo_tokenizer_load(path);
    EXPECT(t != NULL, "robustness: load %s: %s", path, bipo_last_error());
    if (!t) return;
    size_t n1, n2;
    // invalid UTF-8 == the same text with U+FFFD per bad byte (sentencepiece's rule)
    int *a = enc(t, "a\xff" "b\xe2\x82", 5, 0, 0, &n1);
    int *b = enc(t, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd", 11, 0, 0, &n2);
    EXPECT(n1 == n2 && !memcmp(a, b, n1 * sizeof *a), "%s: invalid UTF-8 != U+FFFD text", path);
    free(a), free(b);
    // NUL bytes are characters: round trip through decode
    a = enc(t, "a\0b\0\0 c", 7, 0, 0, &n1);
    size_t dl;
    char *d = bipo_detokenize(t, a, n1, 0, &dl);
    EXPECT(dl == 7 && !memcmp(d, "a\0b\0\0 c", 7), "%s: NUL round trip (%zu bytes)", path, dl);
    free(a), free(d);
    // 1 MB inputs: random bytes, one long word, spaces only, valid mixed text (round trip)
    size_t MB = 1 << 20;
    char *buf = xmalloc(MB);
    unsigned long long x = 88172645463325252ull;
    for (size_t i = 0; i < MB; i++) x ^= x << 13, x ^= x >> 7, x ^= x << 17, buf[i] = (char)x;
    double t0 = bipo_now();
    a = enc(t, buf, MB, 1, 1, &n1);
    EXPECT(n1 > 0, "%s: 1 MB random bytes", path);
    free(a);
    memset(buf, 'a', MB);
    a = enc(t, buf, MB, 0, 0, &n1);
    EXPECT(n1 > 0 && n1 < MB, "%s: 1 MB 'a': %zu tokens", path, n1);
    free(a);
    memset(buf, ' ', MB);
    EXPECT(round_trip(t, buf, MB), "%s: 1 MB spaces round trip", path);
    static const char *words[] = {"héllo ", "世界", " 123", "\n", "🦙 ", "the ", "  ", "I'm ", "x"};
    size_t k = 0;
    for (size_t i = 0; k + 16 < MB; i++) {
        const char *w = words[(i * 7 + i / 3) % 9];
        memcpy(buf + k, w, strlen(w));
        k += strlen(w);
    }
    EXPECT(round_trip(t, buf, k), "%s: 1 MB mixed text round trip", path);
    printf("  %-44s robustness ok (%.2f s)\n", strrchr(path, '/') + 1, bipo_now() - t0);
    free(buf);
    bipo_tokenizer_free(t);
}

// ---- 4. loader errors ----------------------------------------------------------------------------

static void expect_load_error(const char *path, const char *needle) {
    bipo_tokenizer *t = bipo_tokenizer_load(path);
    EXPECT(t == NULL && strstr(bipo_last_error(), needle),
           "load '%s' should fail mentioning '%s', got: %s", path, needle,
           t ? "(loaded)" : bipo_last_error());
    bipo_tokenizer_free(t);
}

static void loader_errors(void) {
    expect_load_error("/nonexistent/model.gguf", "no such file");
    expect_load_error(BIPO_SHARED_DATA "/llama2-tokenizer", "no tokenizer.json");
    expect_load_error(BIPO_SHARED_DATA "/README.md", "not a tokenizer");
    char dir[] = "/tmp/bipo-tok-err-XXXXXX";
    if (!mkdtemp(dir)) return;
    char path[256];
    snprintf(path, sizeof path, "%s/empty.gguf", dir); // GGUF v3, no tensors, no metadata
    FILE *f = fopen(path, "wb");
    unsigned char hdr[24] = {'G', 'G', 'U', 'F', 3};
    fwrite(hdr, 1, sizeof hdr, f);
    fclose(f);
    expect_load_error(path, "tokenizer.ggml.model");
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    f = fopen(path, "w");
    fputs("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", f);
    fclose(f);
    expect_load_error(dir, "Unigram");
    f = fopen(path, "w");
    fputs("{\"model\": {", f);
    fclose(f);
    expect_load_error(path, "tokenizer.json:");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
}

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || !strcmp(only, "vectors")) {
        const char *names[] = {"llama-spm", "phi-3", "gpt-2", "starcoder", "refact"};
        for (int i = 0; i < 5; i++) vocab_vectors(names[i]);
    }
    if (!only || !strcmp(only, "model")) default_model();
    if (!only || !strcmp(only, "robust")) {
        robustness(VOCAB_DIR "ggml-vocab-llama-spm.gguf");
        robustness(VOCAB_DIR "ggml-vocab-starcoder.gguf");
        robustness(VOCAB_DIR "ggml-vocab-gpt-2.gguf");
    }
    if (!only || !strcmp(only, "errors")) loader_errors();
    return tl_summary("test_tokenizer");
}
