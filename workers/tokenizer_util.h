// workers/tokenizer_util.h — helpers shared by every part of the tokenizer (tokenizer_util.c):
// hash tables, UTF-8, the GPT-2 byte alphabet, the id vector, the encoder's scratch and a
// binary heap. Knows nothing of the tokenizer object. Not a public header.
#ifndef BIPO_TOKENIZER_UTIL_H
#define BIPO_TOKENIZER_UTIL_H
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

// Open-addressing hash from a byte string to an int (the strings live elsewhere).
typedef struct {
    uint32_t *slot; // index+1 into keys, 0 = empty
    uint32_t mask;
    const char **key;
    uint32_t *klen;
    int32_t *val;
    uint32_t n, cap;
} tok_strmap;
void tok_strmap_init(tok_strmap *m, uint32_t expected);
void tok_strmap_free(tok_strmap *m);
void tok_strmap_put(tok_strmap *m, const char *k, uint32_t klen, int32_t v); // last put wins
int32_t tok_strmap_get(const tok_strmap *m, const char *k, size_t klen);     // -1 if absent
uint64_t tok_hash_bytes(const char *s, size_t n);

// Hash from a token pair (left id, right id) to (rank, merged id) for byte-level BPE.
typedef struct {
    uint64_t *key; // (left+1) << 32 | (right+1); 0 = empty
    int32_t *rank;
    int32_t *merged;
    uint32_t mask;
} tok_pairmap;

void tok_pairmap_init(tok_pairmap *m, size_t expected);

// The GPT-2 byte <-> unicode alphabet: code point for byte b, and byte for code point (-1).
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp);
// Appends the UTF-8 encoding of cp to buf (at most 4 bytes); returns the byte count.
int tok_utf8_put(char *buf, uint32_t cp);
// Decodes one strict UTF-8 sequence at s[0..n): code point, or -1 when invalid (length 1).
int32_t tok_utf8_get(const char *s, size_t n, int *len);

// Scratch space reused across calls within one bipo_tokenize (not shared between threads).
typedef struct {
    char *buf;
    size_t buf_cap;
    void *sym;
    size_t sym_cap;
    void *heap;
    size_t heap_cap;
    size_t *chunks, *chunks2; // BPE pre-tokenizer: (start, len) pairs, double-buffered
    size_t chunk_cap, chunk2_cap;
    pcre2_match_data *md;
} tok_scratch;
void tok_scratch_free(tok_scratch *s);
void tok_push(int **ids, size_t *n, size_t *cap, int id);

// A binary heap of element type T ordered by BEFORE(a, b) (a pops first): defines
// NAME_push(h, &n, x) and NAME_pop(h, &n). Used for the merge candidates of both algorithms.
#define TOK_HEAP(NAME, T, BEFORE)                                                              \
    static void NAME##_push(T *h, size_t *n, T p) {                                            \
        size_t i = (*n)++;                                                                     \
        while (i > 0) {                                                                        \
            size_t parent = (i - 1) / 2;                                                       \
            if (!BEFORE(&p, &h[parent])) break;                                                \
            h[i] = h[parent];                                                                  \
            i = parent;                                                                        \
        }                                                                                      \
        h[i] = p;                                                                              \
    }                                                                                          \
    static T NAME##_pop(T *h, size_t *n) {                                                     \
        T top = h[0], last = h[--(*n)];                                                        \
        size_t i = 0;                                                                          \
        for (;;) {                                                                             \
            size_t c = 2 * i + 1;                                                              \
            if (c >= *n) break;                                                                \
            if (c + 1 < *n && BEFORE(&h[c + 1], &h[c])) c++;                                   \
            if (!BEFORE(&h[c], &last)) break;                                                  \
            h[i] = h[c];                                                                       \
            i = c;                                                                             \
        }                                                                                      \
        h[i] = last;                                                                           \
        return top;                                                                            \
    }

#endif
