// workers/tokenizer_impl.h — the tokenizer object's layout, the builder (tokenizer.c) the loaders
// use and the two algorithms (tokenizer_spm.c, tokenizer_bpe.c) tokenizer.c calls; the helpers
// they share are in tokenizer_util.h. Not a public header.
#ifndef BIPO_TOKENIZER_IMPL_H
#define BIPO_TOKENIZER_IMPL_H
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"      // defines: bipo_tokenizer, bipo_tok_kind, bipo_token_type
#include "tokenizer_util.h" // defines: tok_strmap, tok_pairmap, tok_scratch

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
// Pre-tokenizer regex list from a GGUF tokenizer.ggml.pre name; -1 + error if unknown.
int tok_set_pre(bipo_tokenizer *t, const char *pre);
int tok_add_regex(bipo_tokenizer *t, const char *pattern); // 0 or -1 + error

// ---- the two algorithms (append ids for one text fragment, no specials inside) ------------
void tok_spm_encode(const bipo_tokenizer *t, tok_scratch *s, const char *text, size_t len,
                    int prefix_space, int **ids, size_t *n, size_t *cap);
void tok_bpe_encode(const bipo_tokenizer *t, tok_scratch *s, const char *text, size_t len,
                    int **ids, size_t *n, size_t *cap);

#endif
