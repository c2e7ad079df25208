// workers/tokenizer.h — in-process tokenizers that agree exactly with the models' own.
//
// Two algorithms, one object:
//   SPM  SentencePiece-style BPE with byte fallback (Llama-2, Mistral, Vicuna, Phi-3): spaces
//        become "▁", a dummy "▁" prefix is added to each text fragment, adjacent symbols are
//        merged by the highest piece score (ties: leftmost), characters outside the vocabulary
//        become <0xNN> byte tokens. Same results as sentencepiece / llama.cpp's SPM tokenizer.
//   BPE  byte-level BPE (GPT-2, StarCoder, SmolLM2): PCRE2 pre-tokenizer regexes split the text
//        into words, each word's bytes are merged by merge rank (ties: leftmost). Vocabulary
//        and merges are converted at load time from the GPT-2 bytes→unicode alphabet to raw
//        bytes, so encoding never builds the unicode-mapped strings.
//
// Sources: an HF directory (tokenizer.json [+ tokenizer_config.json, special_tokens_map.json]),
// a tokenizer.json path, a GGUF model or a vocab-only GGUF (tokenizer.ggml.* metadata).
//
// Text handling, the same for every entry point (documented behavior, tested):
//   * Input is bytes with an explicit length; NUL bytes are ordinary characters.
//   * Invalid UTF-8 is replaced byte by byte with U+FFFD before tokenizing, exactly as
//     sentencepiece does (a truncated 3-byte sequence gives two U+FFFD). decode(encode(x))
//     == x therefore holds for valid UTF-8 only.
//   * Special / added tokens (HF added_tokens; GGUF token types CONTROL, USER_DEFINED,
//     UNKNOWN) are found leftmost-longest and never split. USER_DEFINED (HF added, non-special)
//     tokens are always recognized; CONTROL/UNKNOWN ones only with parse_special = 1.
//   * SPM: the dummy "▁" is added at the start of every text fragment that follows the start
//     of the input or a special token (llama.cpp semantics; equal to HF/sentencepiece for text
//     without special tokens).
//   * Decoding never "cleans up" spaces (clean_up_tokenization_spaces = false), so byte-level
//     round trips are exact; SPM decoding strips the one dummy-prefix space at the start.
#ifndef BIPO_TOKENIZER_H
#define BIPO_TOKENIZER_H
#include <stddef.h>
#include <stdio.h>

#include "gguf.h" // defines: gguf_file

typedef struct bipo_tokenizer bipo_tokenizer;

typedef enum { BIPO_TOK_SPM = 1, BIPO_TOK_BPE = 2 } bipo_tok_kind;

// Token attributes (the GGUF tokenizer.ggml.token_type values).
typedef enum {
    BIPO_TOKEN_NORMAL = 1,
    BIPO_TOKEN_UNKNOWN = 2,
    BIPO_TOKEN_CONTROL = 3,
    BIPO_TOKEN_USER_DEFINED = 4,
    BIPO_TOKEN_UNUSED = 5,
    BIPO_TOKEN_BYTE = 6,
} bipo_token_type;

// ---- loading -----------------------------------------------------------------------------
// path: HF model directory, tokenizer.json file, or GGUF file (model or vocab-only).
// NULL + bipo_set_error("<file>: <field>: <what>") when the tokenizer cannot be built.
bipo_tokenizer *bipo_tokenizer_load(const char *path);
// From an already opened GGUF (the model loader's handle); path is used in messages only.
// The tokenizer copies everything it needs: g may be closed afterwards.
bipo_tokenizer *bipo_tokenizer_from_gguf(const gguf_file *g, const char *path);
void bipo_tokenizer_free(bipo_tokenizer *t);

// ---- encoding ----------------------------------------------------------------------------
// Appends the ids of text[0..len) to the growable array (*ids, *n, *cap) (realloc'd as needed;
// *ids may start NULL with *n = *cap = 0). add_bos: prepend BOS (when the vocab has one);
// parse_special: recognize CONTROL/UNKNOWN token texts such as "<|im_start|>" or "</s>".
// Returns 0; -1 + bipo_set_error only on a NULL tokenizer / text.
int bipo_tokenize(const bipo_tokenizer *t, const char *text, size_t len, int add_bos,
                  int parse_special, int **ids, size_t *n, size_t *cap);

// ---- vocabulary --------------------------------------------------------------------------
bipo_tok_kind bipo_tokenizer_kind(const bipo_tokenizer *t);
int bipo_tokenizer_n_vocab(const bipo_tokenizer *t);
int bipo_token_bos(const bipo_tokenizer *t); // -1 when none
int bipo_token_eos(const bipo_tokenizer *t); // -1 when none
int bipo_token_eot(const bipo_tokenizer *t); // end of turn (<|im_end|>, <|eot_id|>, ...) or -1
int bipo_token_unk(const bipo_tokenizer *t);
int bipo_token_pad(const bipo_tokenizer *t);
int bipo_tokenizer_add_bos(const bipo_tokenizer *t); // the model's add_bos_token setting
int bipo_tokenizer_add_eos(const bipo_tokenizer *t);
// Raw vocabulary piece ("▁Hello", "Ġworld", "<0x0A>", "<|im_end|>"); "" for a bad id.
const char *bipo_token_piece(const bipo_tokenizer *t, int id);
const char *bipo_token_text(const bipo_tokenizer *t, int id); // same as bipo_token_piece
bipo_token_type bipo_token_get_type(const bipo_tokenizer *t, int id);
int bipo_token_is_special(const bipo_tokenizer *t, int id); // CONTROL, UNKNOWN or USER_DEFINED
int bipo_token_is_eog(const bipo_tokenizer *t, int id);     // EOS, EOT and friends: stop here
// Id of a token whose piece is exactly `piece` (e.g. "<|im_end|>"), or -1.
int bipo_token_find(const bipo_tokenizer *t, const char *piece);
// The model's chat template text (GGUF tokenizer.chat_template / tokenizer_config.json), or NULL.
const char *bipo_tokenizer_chat_template(const bipo_tokenizer *t);

// ---- decoding ----------------------------------------------------------------------------
#define BIPO_DETOK_SKIP_SPECIAL 1 // omit CONTROL / UNKNOWN tokens (else their text is emitted)
#define BIPO_DETOK_KEEP_PREFIX 2  // SPM: keep the leading dummy-prefix space
// The bytes of one token as text (byte tokens → the byte, "▁" → ' ', byte-level → raw bytes).
// *len gets the length; the pointer stays valid while t lives. NULL for a bad id.
const char *bipo_token_bytes(const bipo_tokenizer *t, int id, size_t *len);
// Decodes ids into a malloc'd NUL-terminated buffer (*len = byte length, may hold NULs).
char *bipo_detokenize(const bipo_tokenizer *t, const int *ids, size_t n, int flags, size_t *len);

// Streaming decoder for generate: emits only complete UTF-8 sequences, so a multi-byte
// character split over byte tokens is written once whole. Bytes that can never become valid
// UTF-8 are written as they are (the stream equals bipo_detokenize's output).
// Special tokens are skipped; the SPM dummy-prefix space is stripped at the stream start.
typedef struct bipo_decoder bipo_decoder;
bipo_decoder *bipo_decoder_new(const bipo_tokenizer *t);
// Feeds one id; returns the newly completed text (valid until the next call) and its length.
const char *bipo_decoder_next(bipo_decoder *d, int id, size_t *len);
// Same, written to f (when not NULL); returns the number of bytes produced.
size_t bipo_decoder_push(bipo_decoder *d, int id, FILE *f);
// End of stream: the held incomplete bytes (as they are), written to f / returned.
const char *bipo_decoder_finish(bipo_decoder *d, size_t *len);
size_t bipo_decoder_flush(bipo_decoder *d, FILE *f);
void bipo_decoder_free(bipo_decoder *d);

// ---- helpers shared with chat.c / tests --------------------------------------------------
// Length of the longest prefix of s[0..n) that is whole valid UTF-8 sequences, plus any
// bytes that can never start/continue a valid sequence; an incomplete but still possible
// tail is excluded.
size_t bipo_utf8_complete_prefix(const char *s, size_t n);
// Valid UTF-8 (no overlongs, surrogates or code points above U+10FFFF)?
int bipo_utf8_valid(const char *s, size_t n);

#endif
