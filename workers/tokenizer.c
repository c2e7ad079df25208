// workers/tokenizer.c — the tokenizer object: the builder the loaders use, special-token
// partitioning, bipo_tokenize, decoding and the streaming decoder. The algorithms live in
// tokenizer_spm.c and tokenizer_bpe.c, the loaders in tokenizer_load.c, and the helpers they
// all share (hash tables, UTF-8, the byte alphabet) in tokenizer_util.c.
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h" // defines: bipo_tokenizer internals, tok_spm_encode, tok_bpe_encode
#include "tokenizer_util.h" // defines: tok_strmap_*, tok_utf8_*, tok_byte_to_cp, tok_push
#include "util.h"           // defines: xmalloc, bipo_set_error

// ---- UTF-8 clean-up for the encoder -------------------------------------------------------

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
