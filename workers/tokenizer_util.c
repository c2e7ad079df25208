// workers/tokenizer_util.c — the helpers every part of the tokenizer shares: hash tables
// (byte string -> id, token pair -> merge), UTF-8 encoding and validation, the GPT-2 byte
// alphabet, the id vector and the encoder's scratch. Depends on nothing else of the tokenizer,
// so tokenizer.c, tokenizer_spm.c and tokenizer_bpe.c all build on it without a circle.
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"      // defines: bipo_utf8_valid, bipo_utf8_complete_prefix
#include "tokenizer_util.h" // defines: tok_strmap, tok_pairmap, tok_scratch
#include "util.h"           // defines: xmalloc, xcalloc, xrealloc

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

// ---- encoder helpers -------------------------------------------------------------------

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

