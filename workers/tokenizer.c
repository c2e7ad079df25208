// workers/tokenizer.c — the tokenizer object: hash tables, UTF-8 helpers, the builder the
// loaders use, special-token partitioning, bipo_tokenize, decoding and the streaming decoder.
// The algorithms live in tokenizer_spm.c and tokenizer_bpe.c; the loaders in tokenizer_load.c.
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h" // defines: bipo_tokenizer internals, tok_* helpers
#include "util.h"           // defines: xmalloc, bipo_set_error

// ---- hashing -----------------------------------------------------------------------------

uint64_t tok_hash_bytes(const char *s, size_t n) { // 8 bytes per step, multiply-xorshift
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, s, n);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

void tok_strmap_init(tok_strmap *m, uint32_t expected) {
    uint32_t sz = 16;
    while (sz < 2u * expected + 16) sz <<= 1;
    m->slot = xcalloc(sz, sizeof *m->slot);
    m->mask = sz - 1;
    m->cap = expected + 1;
    m->n = 0;
    m->key = xmalloc(m->cap * sizeof *m->key);
    m->klen = xmalloc(m->cap * sizeof *m->klen);
    m->val = xmalloc(m->cap * sizeof *m->val);
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slot);
    free(m->key);
    free(m->klen);
    free(m->val);
    memset(m, 0, sizeof *m);
}

void tok_strmap_put(tok_strmap *m, const char *k, uint32_t klen, int32_t v) {
    for (uint32_t i = (uint32_t)tok_hash_bytes(k, klen) & m->mask;; i = (i + 1) & m->mask) {
        uint32_t s = m->slot[i];
        if (!s) {
            CHECK(m->n < m->cap, "tokenizer hash table over capacity");
            m->key[m->n] = k;
            m->klen[m->n] = klen;
            m->val[m->n] = v;
            m->slot[i] = ++m->n;
            return;
        }
        if (m->klen[s - 1] == klen && !memcmp(m->key[s - 1], k, klen)) {
            m->val[s - 1] = v; // duplicates: the last one wins (as llama.cpp's token_to_id)
            return;
        }
    }
}

int32_t tok_strmap_get(const tok_strmap *m, const char *k, size_t klen) {
    if (!m->slot) return -1;
    for (uint32_t i = (uint32_t)tok_hash_bytes(k, klen) & m->mask;; i = (i + 1) & m->mask) {
        uint32_t s = m->slot[i];
        if (!s) return -1;
        if (m->klen[s - 1] == klen && !memcmp(m->key[s - 1], k, klen)) return m->val[s - 1];
    }
}

void tok_pairmap_init(tok_pairmap *m, size_t expected) {
    size_t sz = 16;
    while (sz < 2 * expected + 16) sz <<= 1;
    m->key = xcalloc(sz, sizeof *m->key);
    m->rank = xmalloc(sz * sizeof *m->rank);
    m->merged = xmalloc(sz * sizeof *m->merged);
    m->mask = (uint32_t)(sz - 1);
}

// ---- UTF-8 -------------------------------------------------------------------------------

int tok_utf8_put(char *buf, uint32_t cp) {
    if (cp < 0x80) {
        buf[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        buf[0] = (char)(0xC0 | (cp >> 6));
        buf[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        buf[0] = (char)(0xE0 | (cp >> 12));
        buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        buf[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    buf[0] = (char)(0xF0 | (cp >> 18));
    buf[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    buf[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    buf[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int32_t tok_utf8_get(const char *s, size_t n, int *len) {
    const uint8_t *u = (const uint8_t *)s;
    *len = 1;
    if (n == 0) return -1;
    uint8_t c = u[0];
    if (c < 0x80) return c;
    int need;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) need = 1, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) need = 2, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) need = 3, cp = c & 0x07, min = 0x10000;
    else return -1;
    if ((size_t)need >= n) return -1;
    for (int i = 1; i <= need; i++) {
        if ((u[i] & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (u[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    *len = need + 1;
    return (int32_t)cp;
}

int bipo_utf8_valid(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        if ((uint8_t)s[i] < 0x80) {
            i++;
            continue;
        }
        int l;
        if (tok_utf8_get(s + i, n - i, &l) < 0) return 0;
        i += l;
    }
    return 1;
}

// Could s[0..n) (n < 4) be the start of a valid sequence that more bytes would complete?
static int utf8_incomplete(const uint8_t *s, size_t n) {
    if (n == 0) return 0;
    uint8_t c = s[0];
    size_t need;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) need = 3;
    else if (c >= 0xF0 && c <= 0xF4) need = 4;
    else return 0;
    if (n >= need) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        // the second byte's range rules out overlongs, surrogates and > U+10FFFF early
        if (i == 1 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) ||
                       (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F)))
            return 0;
    }
    return 1;
}

size_t bipo_utf8_complete_prefix(const char *s, size_t n) {
    // only the last up-to-3 bytes can be an incomplete-but-possible sequence
    size_t from = n > 3 ? n - 3 : 0;
    for (size_t i = from; i < n; i++)
        if (utf8_incomplete((const uint8_t *)s + i, n - i)) {
            // it must not itself be the tail of an earlier valid sequence: a lead byte is never
            // a continuation byte, so s[i] starting a sequence is enough
            return i;
        }
    return n;
}

// Copy of text with each invalid byte replaced by U+FFFD (sentencepiece's rule), or NULL when
// the text is already valid.
static char *utf8_sanitize(const char *s, size_t n, size_t *out_n) {
    size_t i = 0;
    while (i < n) {
        if ((uint8_t)s[i] < 0x80) {
            i++;
            continue;
        }
        int l;
        if (tok_utf8_get(s + i, n - i, &l) < 0) break;
        i += l;
    }
    if (i == n) return NULL;
    char *o = xmalloc(3 * n + 1);
    memcpy(o, s, i);
    size_t k = i;
    while (i < n) {
        if ((uint8_t)s[i] < 0x80) {
            o[k++] = s[i++];
            continue;
        }
        int l;
        if (tok_utf8_get(s + i, n - i, &l) < 0) {
            k += tok_utf8_put(o + k, 0xFFFD);
            i++;
        } else {
            memcpy(o + k, s + i, l);
            k += l;
            i += l;
        }
    }
    o[k] = 0;
    *out_n = k;
    return o;
}

// ---- the GPT-2 byte <-> unicode alphabet ----------------------------------------------------

// Printable bytes map to themselves; the 68 others (0x00-0x20, 0x7F-0xA0, 0xAD), in byte
// order, to U+0100.. U+0143. Pure functions: no table to initialize (thread-safe).
static int byte_printable(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }
uint32_t tok_byte_to_cp(uint8_t b) {
    if (byte_printable(b)) return b;
    if (b <= 0x20) return 256u + b;
    if (b <= 0xA0) return 256u + 33 + (b - 0x7Fu);
    return 256u + 67; // 0xAD
}
int tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_printable((int)cp) ? (int)cp : -1;
    if (cp <= 256 + 32) return (int)(cp - 256);
    if (cp <= 256 + 66) return (int)(0x7F + cp - 256 - 33);
    return cp == 256 + 67 ? 0xAD : -1;
}

// ---- builder -----------------------------------------------------------------------------

bipo_tokenizer *tok_alloc(bipo_tok_kind kind, int V) {
    bipo_tokenizer *t = xcalloc(1, sizeof *t);
    t->kind = kind;
    t->n_vocab = V;
    t->piece = xcalloc(V, sizeof *t->piece);
    t->piece_len = xcalloc(V, sizeof *t->piece_len);
    t->text = xcalloc(V, sizeof *t->text);
    t->text_len = xcalloc(V, sizeof *t->text_len);
    t->score = xcalloc(V, sizeof *t->score);
    t->type = xmalloc(V);
    memset(t->type, BIPO_TOKEN_NORMAL, V);
    t->mergeable = xcalloc(V, 1);
    t->strip = xcalloc(V, 1);
    t->bos = t->eos = t->eot = t->unk = t->pad = -1;
    return t;
}

void tok_set_piece(bipo_tokenizer *t, int id, const char *s, size_t n) {
    free(t->piece[id]);
    t->piece[id] = xmalloc(n + 1);
    memcpy(t->piece[id], s, n);
    t->piece[id][n] = 0;
    t->piece_len[id] = (uint32_t)n;
}

// The text a token stands for: SPM "▁" -> ' ' and <0xNN> -> byte; byte-level alphabet -> bytes.
static void build_text(bipo_tokenizer *t, int id) {
    const char *p = t->piece[id];
    size_t n = t->piece_len[id];
    char *o = xmalloc(n + 1);
    size_t k = 0;
    int ty = t->type[id];
    if (ty == BIPO_TOKEN_CONTROL || ty == BIPO_TOKEN_UNKNOWN ||
        (ty == BIPO_TOKEN_USER_DEFINED && t->kind == BIPO_TOK_BPE)) {
        memcpy(o, p, n);
        k = n;
    } else if (t->kind == BIPO_TOK_SPM) {
        unsigned hex;
        if (ty == BIPO_TOKEN_BYTE && n == 6 && sscanf(p, "<0x%2X>", &hex) == 1) {
            o[k++] = (char)hex;
        } else {
            for (size_t i = 0; i < n;) {
                if (i + 3 <= n && !memcmp(p + i, "\xe2\x96\x81", 3)) {
                    o[k++] = ' ';
                    i += 3;
                } else {
                    o[k++] = p[i++];
                }
            }
        }
    } else {
        for (size_t i = 0; i < n;) {
            int l;
            int32_t cp = tok_utf8_get(p + i, n - i, &l);
            int b = cp >= 0 ? tok_cp_to_byte((uint32_t)cp) : -1;
            if (b >= 0) {
                o[k++] = (char)b;
            } else { // not in the alphabet: keep the character itself
                memcpy(o + k, p + i, l);
                k += l;
            }
            i += l;
        }
    }
    o[k] = 0;
    t->text[id] = o;
    t->text_len[id] = (uint32_t)k;
}

static int by_first_byte_then_longest(const void *a, const void *b) {
    const tok_special *x = a, *y = b;
    if (x->first != y->first) return x->first - y->first;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id - y->id;
}

void tok_index(bipo_tokenizer *t) {
    if (t->by_piece.slot) return;
    tok_strmap_init(&t->by_piece, (uint32_t)t->n_vocab);
    for (int i = 0; i < t->n_vocab; i++)
        if (t->piece[i]) tok_strmap_put(&t->by_piece, t->piece[i], t->piece_len[i], i);
}

int tok_finish(bipo_tokenizer *t) {
    int V = t->n_vocab;
    for (int i = 0; i < V; i++)
        if (!t->piece[i]) {
            bipo_set_error("%s: token %d has no text", t->source, i);
            return -1;
        }
    tok_index(t);
    for (int i = 0; i < V; i++) {
        build_text(t, i);
        int ty = t->type[i];
        t->mergeable[i] =
            ty == BIPO_TOKEN_NORMAL || ty == BIPO_TOKEN_USER_DEFINED || ty == BIPO_TOKEN_UNUSED;
    }
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    if (t->kind == BIPO_TOK_SPM) {
        // Words may be encoded separately when no merge result has "▁" after another
        // character (x▁): then no merge can cross a "x|▁" boundary and the result is the same.
        t->spm_word_split = 1;
        for (int i = 0; i < V && t->spm_word_split; i++) {
            if (!t->mergeable[i]) continue;
            const char *p = t->piece[i];
            for (uint32_t k = 1; k + 3 <= t->piece_len[i]; k++)
                if (!memcmp(p + k, "\xe2\x96\x81", 3) && !(k >= 3 && !memcmp(p + k - 3, "\xe2\x96\x81", 3))) {
                    t->spm_word_split = 0;
                    break;
                }
        }
        for (int i = 0; i < V; i++)
            if (t->type[i] == BIPO_TOKEN_BYTE && t->text_len[i] == 1 &&
                t->byte_id[(uint8_t)t->text[i][0]] < 0)
                t->byte_id[(uint8_t)t->text[i][0]] = i;
    } else {
        for (int b = 0; b < 256; b++) {
            char buf[4];
            int l = tok_utf8_put(buf, tok_byte_to_cp((uint8_t)b));
            t->byte_id[b] = tok_strmap_get(&t->by_piece, buf, l);
        }
    }
    // special / added tokens, bucketed by first byte, longest first
    int ns = 0;
    for (int i = 0; i < V; i++) {
        int ty = t->type[i];
        if ((ty == BIPO_TOKEN_CONTROL || ty == BIPO_TOKEN_USER_DEFINED ||
             ty == BIPO_TOKEN_UNKNOWN) && t->piece_len[i] > 0)
            ns++;
    }
    t->special = xcalloc(ns + 1, sizeof *t->special);
    t->n_special = 0;
    for (int i = 0; i < V; i++) {
        int ty = t->type[i];
        if ((ty == BIPO_TOKEN_CONTROL || ty == BIPO_TOKEN_USER_DEFINED ||
             ty == BIPO_TOKEN_UNKNOWN) && t->piece_len[i] > 0) {
            tok_special *s = &t->special[t->n_special++];
            s->id = i;
            s->len = t->piece_len[i];
            s->first = (uint8_t)t->piece[i][0];
            s->lstrip = t->strip[i] & 1;
            s->rstrip = (t->strip[i] >> 1) & 1;
        }
    }
    qsort(t->special, t->n_special, sizeof *t->special, by_first_byte_then_longest);
    for (int b = 0, k = 0; b <= 256; b++) {
        while (k < t->n_special && t->special[k].first < b) k++;
        t->first_idx[b] = k;
    }
    // end of turn / end of generation (by text, as llama.cpp does)
    static const char *eot_names[] = {"<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>",
                                      "<EOT>"};
    for (size_t k = 0; k < sizeof eot_names / sizeof *eot_names && t->eot < 0; k++)
        t->eot = bipo_token_find(t, eot_names[k]);
    static const char *eog_names[] = {"<|im_end|>", "<|eot_id|>",    "<|end|>", "<end_of_turn>",
                                      "<EOT>",      "<|endoftext|>", "<|eom_id|>"};
    t->n_eog = 0;
    if (t->eos >= 0) t->eog[t->n_eog++] = t->eos;
    if (t->eot >= 0 && t->eot != t->eos) t->eog[t->n_eog++] = t->eot;
    for (size_t k = 0; k < sizeof eog_names / sizeof *eog_names; k++) {
        int id = bipo_token_find(t, eog_names[k]);
        if (id < 0 || t->n_eog >= 8) continue;
        int dup = 0;
        for (int j = 0; j < t->n_eog; j++) dup |= t->eog[j] == id;
        if (!dup) t->eog[t->n_eog++] = id;
    }
    return 0;
}

void bipo_tokenizer_free(bipo_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_vocab; i++) {
        free(t->piece[i]);
        free(t->text[i]);
    }
    free(t->piece);
    free(t->piece_len);
    free(t->text);
    free(t->text_len);
    free(t->score);
    free(t->type);
    free(t->mergeable);
    free(t->strip);
    tok_strmap_free(&t->by_piece);
    free(t->merges.key);
    free(t->merges.rank);
    free(t->merges.merged);
    free(t->special);
    for (int i = 0; i < t->n_regex; i++) pcre2_code_free(t->regex[i]);
    free(t->chat_template);
    free(t->source);
    free(t);
}

// ---- encoding ----------------------------------------------------------------------------

void tok_push(int **ids, size_t *n, size_t *cap, int id) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        *ids = xrealloc(*ids, *cap * sizeof **ids);
    }
    (*ids)[(*n)++] = id;
}

void tok_scratch_free(tok_scratch *s) {
    free(s->buf);
    free(s->sym);
    free(s->heap);
    free(s->chunks);
    free(s->chunks2);
    if (s->md) pcre2_match_data_free(s->md);
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// The special token starting at text[pos] (leftmost-longest), or NULL.
static const tok_special *special_at(const bipo_tokenizer *t, const char *text, size_t len,
                                     size_t pos, int parse_special) {
    uint8_t b = (uint8_t)text[pos];
    for (int k = t->first_idx[b]; k < t->first_idx[b + 1]; k++) {
        const tok_special *s = &t->special[k];
        uint32_t l = t->piece_len[s->id];
        if (l > len - pos || memcmp(text + pos, t->piece[s->id], l)) continue;
        if (!parse_special && t->type[s->id] != BIPO_TOKEN_USER_DEFINED) continue;
        return s;
    }
    return NULL;
}

static void encode_fragment(const bipo_tokenizer *t, tok_scratch *s, const char *text, size_t len,
                            int after_special, int **ids, size_t *n, size_t *cap) {
    if (len == 0) return;
    if (t->kind == BIPO_TOK_SPM)
        tok_spm_encode(t, s, text, len, t->add_space_prefix && after_special, ids, n, cap);
    else
        tok_bpe_encode(t, s, text, len, ids, n, cap);
}

int bipo_tokenize(const bipo_tokenizer *t, const char *text, size_t len, int add_bos,
                  int parse_special, int **ids, size_t *n, size_t *cap) {
    if (!t || (!text && len)) {
        bipo_set_error("bipo_tokenize: no tokenizer or no text");
        return -1;
    }
    size_t clean_n = 0;
    char *clean = utf8_sanitize(text, len, &clean_n);
    if (clean) text = clean, len = clean_n;
    if (add_bos && t->bos >= 0) tok_push(ids, n, cap, t->bos);
    tok_scratch s = {0};
    size_t frag = 0, pos = 0;
    int after_special = 1; // the input start counts as a boundary (SPM dummy prefix)
    if (t->n_special > 0) {
        while (pos < len) {
            const tok_special *sp = special_at(t, text, len, pos, parse_special);
            if (!sp) {
                pos++;
                continue;
            }
            size_t end = pos;
            if (sp->lstrip)
                while (end > frag && is_space(text[end - 1])) end--;
            encode_fragment(t, &s, text + frag, end - frag, after_special && frag < end, ids, n,
                            cap);
            tok_push(ids, n, cap, sp->id);
            pos += t->piece_len[sp->id];
            if (sp->rstrip)
                while (pos < len && is_space(text[pos])) pos++;
            frag = pos;
            after_special = 1;
        }
    }
    encode_fragment(t, &s, text + frag, len - frag, after_special, ids, n, cap);
    tok_scratch_free(&s);
    free(clean);
    return 0;
}

// ---- vocabulary accessors ------------------------------------------------------------------

bipo_tok_kind bipo_tokenizer_kind(const bipo_tokenizer *t) { return t->kind; }
int bipo_tokenizer_n_vocab(const bipo_tokenizer *t) { return t->n_vocab; }
int bipo_token_bos(const bipo_tokenizer *t) { return t->bos; }
int bipo_token_eos(const bipo_tokenizer *t) { return t->eos; }
int bipo_token_eot(const bipo_tokenizer *t) { return t->eot; }
int bipo_token_unk(const bipo_tokenizer *t) { return t->unk; }
int bipo_token_pad(const bipo_tokenizer *t) { return t->pad; }
int bipo_tokenizer_add_bos(const bipo_tokenizer *t) { return t->add_bos && t->bos >= 0; }
int bipo_tokenizer_add_eos(const bipo_tokenizer *t) { return t->add_eos && t->eos >= 0; }
const char *bipo_tokenizer_chat_template(const bipo_tokenizer *t) { return t->chat_template; }

const char *bipo_token_piece(const bipo_tokenizer *t, int id) {
    return (id >= 0 && id < t->n_vocab) ? t->piece[id] : "";
}
const char *bipo_token_text(const bipo_tokenizer *t, int id) { return bipo_token_piece(t, id); }

bipo_token_type bipo_token_get_type(const bipo_tokenizer *t, int id) {
    return (id >= 0 && id < t->n_vocab) ? (bipo_token_type)t->type[id] : BIPO_TOKEN_UNUSED;
}

int bipo_token_is_special(const bipo_tokenizer *t, int id) {
    int ty = bipo_token_get_type(t, id);
    return id >= 0 && id < t->n_vocab &&
           (ty == BIPO_TOKEN_CONTROL || ty == BIPO_TOKEN_UNKNOWN || ty == BIPO_TOKEN_USER_DEFINED);
}

int bipo_token_is_eog(const bipo_tokenizer *t, int id) {
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return 1;
    return 0;
}

int bipo_token_find(const bipo_tokenizer *t, const char *piece) {
    return tok_strmap_get(&t->by_piece, piece, strlen(piece));
}

// ---- decoding ----------------------------------------------------------------------------

const char *bipo_token_bytes(const bipo_tokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    *len = t->text_len[id];
    return t->text[id];
}

static int skipped(const bipo_tokenizer *t, int id, int flags) {
    int ty = t->type[id];
    return (flags & BIPO_DETOK_SKIP_SPECIAL) && (ty == BIPO_TOKEN_CONTROL || ty == BIPO_TOKEN_UNKNOWN);
}

char *bipo_detokenize(const bipo_tokenizer *t, const int *ids, size_t n, int flags, size_t *len) {
    size_t total = 1;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < t->n_vocab) total += t->text_len[ids[i]];
    char *o = xmalloc(total);
    size_t k = 0;
    int strip = t->kind == BIPO_TOK_SPM && t->add_space_prefix && !(flags & BIPO_DETOK_KEEP_PREFIX);
    for (size_t i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->n_vocab || skipped(t, id, flags)) continue;
        const char *s = t->text[id];
        size_t l = t->text_len[id];
        int ty = t->type[id];
        if (strip && k == 0 && ty != BIPO_TOKEN_CONTROL && ty != BIPO_TOKEN_UNKNOWN) {
            if (l && s[0] == ' ') s++, l--;
            strip = 0;
        }
        memcpy(o + k, s, l);
        k += l;
    }
    o[k] = 0;
    if (len) *len = k;
    return o;
}

struct bipo_decoder {
    const bipo_tokenizer *t;
    int strip;   // SPM dummy prefix still to strip
    char *buf;   // held (incomplete) bytes followed by new text
    size_t held; // bytes held back from the previous call
    size_t cap;
    char *out; // what the last call returned
    size_t out_cap;
};

bipo_decoder *bipo_decoder_new(const bipo_tokenizer *t) {
    bipo_decoder *d = xcalloc(1, sizeof *d);
    d->t = t;
    d->strip = t->kind == BIPO_TOK_SPM && t->add_space_prefix;
    return d;
}

const char *bipo_decoder_next(bipo_decoder *d, int id, size_t *len) {
    const bipo_tokenizer *t = d->t;
    *len = 0;
    if (id < 0 || id >= t->n_vocab || skipped(t, id, BIPO_DETOK_SKIP_SPECIAL)) return "";
    const char *s = t->text[id];
    size_t l = t->text_len[id];
    if (d->strip) {
        if (l && s[0] == ' ') s++, l--;
        d->strip = 0;
    }
    if (d->held + l > d->cap) {
        d->cap = 2 * (d->held + l) + 16;
        d->buf = xrealloc(d->buf, d->cap);
    }
    memcpy(d->buf + d->held, s, l);
    size_t all = d->held + l;
    size_t done = bipo_utf8_complete_prefix(d->buf, all);
    if (done + 1 > d->out_cap) {
        d->out_cap = 2 * done + 16;
        d->out = xrealloc(d->out, d->out_cap);
    }
    memcpy(d->out, d->buf, done);
    d->out[done] = 0;
    memmove(d->buf, d->buf + done, all - done);
    d->held = all - done;
    *len = done;
    return d->out;
}

const char *bipo_decoder_finish(bipo_decoder *d, size_t *len) {
    if (d->held + 1 > d->out_cap) {
        d->out_cap = d->held + 16;
        d->out = xrealloc(d->out, d->out_cap);
    }
    memcpy(d->out, d->buf, d->held);
    d->out[d->held] = 0;
    *len = d->held;
    d->held = 0;
    return d->out;
}

size_t bipo_decoder_push(bipo_decoder *d, int id, FILE *f) {
    size_t len;
    const char *s = bipo_decoder_next(d, id, &len);
    if (f && len) fwrite(s, 1, len, f);
    return len;
}

size_t bipo_decoder_flush(bipo_decoder *d, FILE *f) {
    size_t len;
    const char *s = bipo_decoder_finish(d, &len);
    if (f && len) fwrite(s, 1, len, f);
    return len;
}

void bipo_decoder_free(bipo_decoder *d) {
    if (!d) return;
    free(d->buf);
    free(d->out);
    free(d);
}
