// common/util.h — error reporting, checked calls, timing, hashing shared by every layer.
// Kernels, workers and the pipeline all use these; none of them know about MPI. The pipeline
// installs a die hook (MPI_Abort) so a fatal error on one rank never leaves others hanging.
#ifndef BIPO_UTIL_H
#define BIPO_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// ---- recoverable errors (bad user input) ------------------------------------------------
// Library functions that can fail on user input return -1 (or NULL) and record one message
// with bipo_set_error(); the caller prints bipo_last_error() and exits non-zero. The message
// names the file and field and, where useful, a hint. Thread-local, overwritten on each set.
void bipo_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *bipo_last_error(void);
void bipo_clear_error(void);

// ---- fatal errors (internal invariants, out of memory, failed library calls) -------------
// Prints "[rank] HH:MM:SS file:function():line: message" to stderr and calls the die hook
// (default: exit(1); the pipeline sets MPI_Abort).
void bipo_fatal(const char *file, const char *func, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));
typedef void (*bipo_die_fn)(int code);
void bipo_set_die_hook(bipo_die_fn fn);
void bipo_set_rank(int rank); // shown in fatal messages; -1 (default) = not under MPI
int bipo_rank(void);

#define BIPO_FATAL(...) bipo_fatal(__FILE__, __func__, __LINE__, __VA_ARGS__)
// One check macro for every library call: CHECK(cond, "what failed: %s", detail)
#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond)) bipo_fatal(__FILE__, __func__, __LINE__, __VA_ARGS__);                   \
    } while (0)

void *xmalloc(size_t n);            // fatal on failure
void *xcalloc(size_t n, size_t sz); // fatal on failure
void *xrealloc(void *p, size_t n);  // fatal on failure
char *xstrdup(const char *s);

// ---- time --------------------------------------------------------------------------------
double bipo_now(void); // monotonic seconds

// ---- hashing -----------------------------------------------------------------------------
// SHA-256 for fingerprints and data hashes (provenance). hex must hold 65 bytes.
typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t nbuf;
} bipo_sha256;
void bipo_sha256_init(bipo_sha256 *s);
void bipo_sha256_update(bipo_sha256 *s, const void *data, size_t n);
void bipo_sha256_hex(bipo_sha256 *s, char hex[65]); // finalizes

// ---- files -------------------------------------------------------------------------------
// Read a whole file into a NUL-terminated buffer; NULL + bipo_set_error on failure.
char *bipo_read_file(const char *path, size_t *len_out);
// Read-only mmap of a whole file; NULL + bipo_set_error on failure (empty file is an error).
void *bipo_mmap_file(const char *path, size_t *len_out);
void bipo_munmap(void *p, size_t len);
int bipo_is_dir(const char *path);
int bipo_file_exists(const char *path);

// ---- fp16 / bf16 -------------------------------------------------------------------------
float bipo_f16_to_f32(uint16_t h);
uint16_t bipo_f32_to_f16(float f); // round to nearest even
float bipo_bf16_to_f32(uint16_t h);
uint16_t bipo_f32_to_bf16(float f); // round to nearest even

#endif
