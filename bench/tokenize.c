// bench/tokenize.c — tokenizer throughput on the persona corpus (one core).
//   build/bench/tokenize [MODEL_OR_VOCAB ...]
// Encodes every "question" and "statement" of anthropic-evals/persona/*.jsonl (string by
// string, as dataset loading does) and prints MB/s and tokens/s per tokenizer. Defaults: the
// default model (SmolLM2, byte-level BPE) and the Llama-2 SPM vocab. Target: >= 5 MB/s.
#include <glob.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h" // defines: bipo_tokenizer_load, bipo_tokenize
#include "util.h"      // defines: bipo_now, bipo_read_file, bipo_file_exists

#include <unistd.h>

// The shared data folder: $BIPO_SHARED_DATA, ../shared/data (from the repository root), or
// next to the repository this binary was built in (build/bench/tokenize -> ../../../shared).
static const char *data_dir(void) {
    static char buf[4096];
    const char *env = getenv("BIPO_SHARED_DATA");
    if (env) return env;
    if (bipo_is_dir("../shared/data")) return "../shared/data";
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 32);
    if (n > 0) {
        buf[n] = 0;
        for (int up = 0; up < 3; up++) {
            char *slash = strrchr(buf, '/');
            if (slash) *slash = 0;
        }
        strcat(buf, "/../shared/data");
        if (bipo_is_dir(buf)) return buf;
    }
    return "../shared/data";
}

typedef struct {
    char **s;
    size_t *len;
    size_t n, cap, bytes;
} corpus;

static void add(corpus *c, const char *s) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 4096;
        c->s = xrealloc(c->s, c->cap * sizeof *c->s);
        c->len = xrealloc(c->len, c->cap * sizeof *c->len);
    }
    c->s[c->n] = xstrdup(s);
    c->len[c->n] = strlen(s);
    c->bytes += c->len[c->n++];
}

static int load_corpus(const char *data, corpus *c) {
    char pat[1024];
    snprintf(pat, sizeof pat, "%s/anthropic-evals/persona/*.jsonl", data);
    glob_t g;
    if (glob(pat, 0, NULL, &g) != 0) return -1;
    for (size_t f = 0; f < g.gl_pathc; f++) {
        size_t len;
        char *buf = bipo_read_file(g.gl_pathv[f], &len);
        if (!buf) continue;
        for (char *line = buf; *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = 0;
            json_t *o = json_loads(line, 0, NULL);
            if (o) {
                const char *q = json_string_value(json_object_get(o, "question"));
                const char *st = json_string_value(json_object_get(o, "statement"));
                if (q) add(c, q);
                if (st) add(c, st);
                json_decref(o);
            }
            if (!nl) break;
            line = nl + 1;
        }
        free(buf);
    }
    globfree(&g);
    return c->n ? 0 : -1;
}

static void bench(const char *path, const corpus *c) {
    bipo_tokenizer *t = bipo_tokenizer_load(path);
    if (!t) {
        printf("%-40s  (load failed: %s)\n", path, bipo_last_error());
        return;
    }
    int *ids = NULL;
    size_t cap = 0, total = 0;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = bipo_now();
        total = 0;
        for (size_t i = 0; i < c->n; i++) {
            size_t n = 0;
            bipo_tokenize(t, c->s[i], c->len[i], 0, 1, &ids, &n, &cap);
            total += n;
        }
        double dt = bipo_now() - t0;
        if (dt < best) best = dt;
    }
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    printf("%-40s %4s %9.2f %10zu %8.3f %8.2f %10.0f\n", name,
           bipo_tokenizer_kind(t) == BIPO_TOK_SPM ? "SPM" : "BPE", c->bytes / 1e6, total, best,
           c->bytes / 1e6 / best, total / best);
    free(ids);
    bipo_tokenizer_free(t);
}

int main(int argc, char **argv) {
    const char *data = data_dir();
    corpus c = {0};
    if (load_corpus(data, &c) != 0) {
        fprintf(stderr, "bench/tokenize: no persona corpus under %s/anthropic-evals/persona "
                        "(set BIPO_SHARED_DATA)\n", data);
        return 1;
    }
    printf("persona corpus: %zu strings, %.2f MB (best of 3 passes, one core)\n", c.n, c.bytes / 1e6);
    printf("%-40s %4s %9s %10s %8s %8s %10s\n", "tokenizer", "kind", "MB", "tokens", "s", "MB/s",
           "tokens/s");
    if (argc > 1) {
        for (int i = 1; i < argc; i++) bench(argv[i], &c);
    } else {
        char p[1024];
        const char *home = getenv("BIPO_CACHE") ? getenv("BIPO_CACHE") : NULL;
        if (home) snprintf(p, sizeof p, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", home);
        else snprintf(p, sizeof p, "%s/.cache/bipo-pipeline/SmolLM2-135M-Instruct.Q4_1.gguf",
                      getenv("HOME") ? getenv("HOME") : ".");
        if (bipo_file_exists(p)) bench(p, &c);
        snprintf(p, sizeof p, "%s/llama.cpp-vocab/ggml-vocab-llama-spm.gguf", data);
        bench(p, &c);
        snprintf(p, sizeof p, "%s/llama.cpp-vocab/ggml-vocab-gpt-2.gguf", data);
        bench(p, &c);
    }
    for (size_t i = 0; i < c.n; i++) free(c.s[i]);
    free(c.s), free(c.len);
    return 0;
}
