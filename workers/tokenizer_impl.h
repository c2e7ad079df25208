// workers/tokenizer_impl.h — the tokenizer's internals, shared by tokenizer.c (core, specials,
// decode), tokenizer_spm.c, tokenizer_bpe.c and tokenizer_load.c. Not a public header.
#ifndef BIPO_TOKENIZER_IMPL_H
#define BIPO_TOKENIZER_IMPL_H
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h" // defines: bipo_tokenizer, bipo_tok_kind, bipo_token_type

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

// A special / added token for the leftmost-longest matcher.
typedef struct {
    int id;
    uint32_t len;  // piece length
    uint8_t first; // first byte of the piece
    uint8_t lstrip, rstrip;
} tok_special;

#define TOK_MAX_REGEX 8

struct bipo_tokenizer {
    bipo_tok_kind kind;
    int n_vocab;
    char **piece;        // [V] raw vocab pieces, NUL-terminated
    uint32_t *piece_len; // [V]
    char **text;         // [V] decoded bytes (may contain NUL; NUL-terminated for convenience)
    uint32_t *text_len;  // [V]
    float *score;        // [V] SPM merge priority (higher first)
    uint8_t *type;       // [V] bipo_token_type
    uint8_t *mergeable;  // [V] SPM: may be the result of a merge (normal/user-defined/unused)
    uint8_t *strip;      // [V] added tokens: bit 0 lstrip, bit 1 rstrip (HF added_tokens)
    tok_strmap by_piece; // raw piece -> id (all tokens)
    tok_pairmap merges;  // BPE: (left, right) -> rank, merged id
    int byte_id[256];    // token for a single raw byte (SPM <0xNN>; BPE the byte's symbol)
    int bos, eos, eot, unk, pad;
    int add_bos, add_eos, add_space_prefix;
    int spm_word_split; // SPM: words ("▁..." runs) can be merged independently (see tok_finish)
    int eog[8], n_eog; // tokens that end generation

    // special / added tokens: buckets by first byte, longest first inside a bucket
    tok_special *special;
    int n_special;
    int first_idx[257]; // special[first_idx[b] .. first_idx[b+1]) start with byte b

    // BPE pre-tokenizer: regexes applied in order, each splitting every current chunk
    int n_regex;
    pcre2_code *regex[TOK_MAX_REGEX];
    int add_prefix_space; // ByteLevel add_prefix_space (prepend ' ' to the input)

    char *chat_template; // or NULL
    char *source;        // path, for messages
};

// ---- builder used by the loaders ----------------------------------------------------------
// Allocates the per-token arrays for V tokens (pieces set later with tok_set_piece).
bipo_tokenizer *tok_alloc(bipo_tok_kind kind, int V);
void tok_set_piece(bipo_tokenizer *t, int id, const char *s, size_t n);
// Builds the piece -> id map (needed before tok_add_merge); tok_finish calls it if not done.
void tok_index(bipo_tokenizer *t);
// After pieces, types, scores (SPM) / merges (BPE) are in place: builds the decoded texts,
// byte table, special-token buckets, EOT/EOG ids. 0 or -1 + bipo_set_error.
int tok_finish(bipo_tokenizer *t);
// BPE: registers merge "left right" (pieces in the vocab's alphabet) with the given rank.
// Returns 0 when added, 1 when skipped (unknown pieces / result not in the vocab).
int tok_add_merge(bipo_tokenizer *t, const char *l, size_t ln, const char *r, size_t rn,
                  int rank);
void tok_pairmap_init(tok_pairmap *m, size_t expected);
// Pre-tokenizer regex list from a GGUF tokenizer.ggml.pre name; -1 + error if unknown.
int tok_set_pre(bipo_tokenizer *t, const char *pre);
int tok_add_regex(bipo_tokenizer *t, const char *pattern); // 0 or -1 + error
// The GPT-2 byte <-> unicode alphabet: code point for byte b, and byte for code point (-1).
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp);
// Appends the UTF-8 encoding of cp to buf (at most 4 bytes); returns the byte count.
int tok_utf8_put(char *buf, uint32_t cp);
// Decodes one strict UTF-8 sequence at s[0..n): code point, or -1 when invalid (length 1).
int32_t tok_utf8_get(const char *s, size_t n, int *len);

// ---- the two algorithms (append ids for one text fragment, no specials inside) ------------
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
void tok_spm_encode(const bipo_tokenizer *t, tok_scratch *s, const char *text, size_t len,
                    int prefix_space, int **ids, size_t *n, size_t *cap);
void tok_bpe_encode(const bipo_tokenizer *t, tok_scratch *s, const char *text, size_t len,
                    int **ids, size_t *n, size_t *cap);
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
