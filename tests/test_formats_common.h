// tests/test_formats_common.h — small helpers shared by the format tests (header-only):
// a scratch directory under /tmp, running tests/dequant_ref.py, reading float files.
#ifndef BIPO_TEST_FORMATS_COMMON_H
#define BIPO_TEST_FORMATS_COMMON_H
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "gguf.h"
#include "testlib.h"
#include "util.h"

// mkdtemp under /tmp; removed by fmt_tmp_cleanup() (rm -rf on our own mkdtemp result only).
static inline const char *fmt_tmpdir(void) {
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/bipo_formats_XXXXXX");
        CHECK(mkdtemp(dir), "mkdtemp %s failed", dir);
    }
    return dir;
}
static inline void fmt_tmp_cleanup(void) {
    const char *d = fmt_tmpdir();
    if (strncmp(d, "/tmp/bipo_formats_", 18)) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", d);
}
// fmt_path(buf, "x.bin") -> "<tmpdir>/x.bin"
static inline char *fmt_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", fmt_tmpdir(), name);
    return buf;
}

// Run "<python> tests/dequant_ref.py <args>"; returns the exit status (77 = gguf missing).
static inline int fmt_run_ref(const char *python, const char *fmt, ...) {
    char args[8192], cmd[9000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' '%s/dequant_ref.py' %s", python, BIPO_TEST_DIR, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

// Whole file as floats (n_out = count); NULL with a FAIL when missing.
static inline float *fmt_read_f32(const char *path, size_t *n_out) {
    size_t len = 0;
    char *b = bipo_read_file(path, &len);
    if (!b) {
        EXPECT(0, "cannot read %s: %s", path, bipo_last_error());
        return NULL;
    }
    *n_out = len / 4;
    return (float *)b; // bipo_read_file's buffer is malloc'd (aligned)
}

// Bit-exact comparison of float arrays (NaN patterns included); one check. Prints the first
// mismatches. Returns the number of differing elements.
static inline size_t fmt_bits_equal(const char *what, const float *got, const float *want,
                                    size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], 4)) {
            if (bad++ < 3)
                fprintf(stderr, "  %s[%zu]: got %.9g want %.9g\n", what, i, got[i], want[i]);
        }
    EXPECT(bad == 0, "%s: %zu/%zu elements differ from the reference (bit-exact check)", what,
           bad, n);
    return bad;
}

// An open that must fail, with an error naming every needle (file, field, ...). One check.
// BIPO_TEST_VERBOSE=1 prints each message, to review their wording.
#define EXPECT_FAIL_MSG(rc, ...)                                                               \
    do {                                                                                       \
        bipo_clear_error();                                                                    \
        int rc_ = (rc); /* evaluated before the message is read */                             \
        const char *needles_[] = {__VA_ARGS__};                                                \
        const char *msg_ = bipo_last_error();                                                  \
        int ok_ = rc_ != 0;                                                                    \
        for (size_t k_ = 0; ok_ && k_ < sizeof(needles_) / sizeof(needles_[0]); k_++)          \
            ok_ = strstr(msg_, needles_[k_]) != NULL;                                          \
        if (ok_ && getenv("BIPO_TEST_VERBOSE")) printf("  refused: %s\n", msg_);             \
        EXPECT(ok_, "expected failure naming %s; rc=%d, error: %s", needles_[0], rc_,          \
               msg_);                                                                          \
    } while (0)

// Compare n_tensors, n_kv, token count and first/last token bytes with gguf-py's reader
// (GGUFReader, an independent parser).
static inline void fmt_check_meta(const char *python, const gguf_file *g, const char *path) {
    char out[256];
    fmt_path(out, sizeof out, "meta.txt");
    int rc = fmt_run_ref(python, "meta '%s' '%s'", path, out);
    EXPECT(rc == 0, "%s: dequant_ref.py meta exited %d", path, rc);
    if (rc) return;
    FILE *f = fopen(out, "r");
    unsigned long long nt = 0, nkv = 0, ntok = 0;
    char first[4096] = "", last[4096] = "";
    int got = f ? fscanf(f, "%llu %llu %llu %4095s %4095s", &nt, &nkv, &ntok, first, last) : 0;
    if (f) fclose(f);
    EXPECT(got == 5, "%s: unreadable reference metadata", path);
    EXPECT(g->n_tensors == nt && g->n_kv == nkv, "%s: %llu tensors / %llu kv, reference %llu / %llu",
           path, (unsigned long long)g->n_tensors, (unsigned long long)g->n_kv, nt, nkv);
    uint64_t n = 0;
    const gguf_kv *kv = gguf_get_array(g, "tokenizer.ggml.tokens", GGUF_T_STRING, &n);
    if (ntok == 0) { // no tokenizer in the file
        EXPECT(!kv, "%s: tokens found where the reference has none", path);
        return;
    }
    EXPECT(kv && n == ntok, "%s: tokens: %llu, reference %llu", path, (unsigned long long)n, ntok);
    if (!kv || n == 0) return;
    for (int k = 0; k < 2; k++) {
        const gguf_str *s = &kv->arr_str[k ? n - 1 : 0];
        char hex[4096] = "-";
        for (uint64_t i = 0; i < s->len && i < 2000; i++)
            snprintf(hex + 2 * i, 3, "%02x", (unsigned char)s->ptr[i]);
        EXPECT(!strcmp(hex, k ? last : first), "%s: token %s: %s, reference %s", path,
               k ? "last" : "first", hex, k ? last : first);
    }
}

#endif
