// workers/tokenizer_bpe.c — byte-level BPE (GPT-2, StarCoder, SmolLM2, Llama-3 style).
//   1. pre-tokenize: regexes applied in order (PCRE2, UTF + Unicode properties, JIT); each one
//      splits every current chunk into its matches and the gaps between them (HF "Isolated"
//      splitting, llama.cpp's unicode_regex_split). StarCoder/SmolLM2: "\p{N}" then GPT-2's.
//   2. each chunk ("word") starts as one symbol per byte (the GPT-2 bytes→unicode alphabet
//      is applied to the vocabulary at load time instead of to the text);
//   3. repeatedly merge the adjacent pair with the lowest merge rank (ties: leftmost);
//   4. the word's symbols are token ids (bytes without a token are dropped, as llama.cpp does).
#include <string.h>

#include "tokenizer_impl.h" // defines: bipo_tokenizer internals, tok_bpe_encode, tok_add_merge
#include "tokenizer_util.h" // defines: tok_scratch, tok_push, tok_strmap_get, tok_utf8_get, TOK_HEAP
#include "util.h"           // defines: xrealloc, bipo_set_error

// ---- merge table -------------------------------------------------------------------------

static uint64_t pair_key(int32_t l, int32_t r) {
    return ((uint64_t)(uint32_t)(l + 1) << 32) | (uint32_t)(r + 1);
}
static uint32_t pair_slot(uint64_t k, uint32_t mask) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k & mask;
}

// rank of merging (l, r) and the resulting token, or -1
static int32_t pair_get(const tok_pairmap *m, int32_t l, int32_t r, int32_t *merged) {
    if (!m->key) return -1;
    uint64_t k = pair_key(l, r);
    for (uint32_t i = pair_slot(k, m->mask);; i = (i + 1) & m->mask) {
        if (m->key[i] == k) {
            *merged = m->merged[i];
            return m->rank[i];
        }
        if (!m->key[i]) return -1;
    }
}

int tok_add_merge(bipo_tokenizer *t, const char *l, size_t ln, const char *r, size_t rn,
                  int rank) {
    int32_t a = tok_strmap_get(&t->by_piece, l, ln), b = tok_strmap_get(&t->by_piece, r, rn);
    if (a < 0 || b < 0) return 1;
    char stackbuf[256];
    char *cat = ln + rn <= sizeof stackbuf ? stackbuf : xmalloc(ln + rn);
    memcpy(cat, l, ln);
    memcpy(cat + ln, r, rn);
    int32_t c = tok_strmap_get(&t->by_piece, cat, ln + rn);
    if (cat != stackbuf) free(cat);
    if (c < 0) return 1;
    tok_pairmap *m = &t->merges;
    uint64_t k = pair_key(a, b);
    for (uint32_t i = pair_slot(k, m->mask);; i = (i + 1) & m->mask) {
        if (m->key[i] == k) return 1; // duplicate merge: the first (lowest rank) wins
        if (!m->key[i]) {
            m->key[i] = k;
            m->rank[i] = rank;
            m->merged[i] = c;
            return 0;
        }
    }
}

// ---- pre-tokenizer regexes ----------------------------------------------------------------

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3                                                                              \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"  \
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                               \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"  \
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_PUNCT "[\\p{P}\\$\\+<=>\\^~\\|]+"

int tok_add_regex(bipo_tokenizer *t, const char *pattern) {
    if (t->n_regex >= TOK_MAX_REGEX) {
        bipo_set_error("%s: more than %d pre-tokenizer regexes", t->source, TOK_MAX_REGEX);
        return -1;
    }
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        bipo_set_error("%s: pre-tokenizer regex '%s': %s at offset %zu", t->source, pattern,
                       (const char *)msg, (size_t)off);
        return -1;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); // falls back to the interpreter when unavailable
    t->regex[t->n_regex++] = re;
    return 0;
}

// llama.cpp's tokenizer.ggml.pre names -> regex lists (llama-vocab.cpp, Feb 2025).
int tok_set_pre(bipo_tokenizer *t, const char *pre) {
    static const struct {
        const char *names;
        const char *re[4];
    } table[] = {
        {"|gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v1-en|jina-v2-es|jina-v2-de|jina-v2-code|"
         "roberta-bpe|mpt|olmo|jais|",
         {RE_GPT2}},
        {"|starcoder|refact|smollm|command-r|codeshell|exaone|minerva-7b|", {"\\p{N}", RE_GPT2}},
        {"|llama3|llama-v3|llama-bpe|falcon3|dbrx|smaug-bpe|chatglm-bpe|", {RE_LLAMA3}},
        {"|qwen2|deepseek-r1-qwen|megrez|stablelm2|", {RE_QWEN2}},
        {"|falcon|", {RE_PUNCT, RE_GPT2, "[0-9][0-9][0-9]"}},
        {"|default||", {RE_PUNCT, RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
    };
    char key[96];
    snprintf(key, sizeof key, "|%s|", pre ? pre : "");
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        if (!strstr(table[i].names, key)) continue;
        for (int j = 0; j < 4 && table[i].re[j]; j++)
            if (tok_add_regex(t, table[i].re[j]) != 0) return -1;
        return 0;
    }
    bipo_set_error("%s: tokenizer.ggml.pre: unknown pre-tokenizer '%s' (supported: gpt-2, "
                   "starcoder, refact, smollm, llama3, qwen2, falcon, default, ...)",
                   t->source, pre);
    return -1;
}

// Splits every chunk of (in, nin) by regex re into (out); returns the new chunk count.
static size_t split_chunks(const pcre2_code *re, pcre2_match_data *md, const char *text,
                           const size_t *in, size_t nin, size_t **out, size_t *out_cap) {
    size_t nout = 0;
    for (size_t c = 0; c < nin; c++) {
        size_t base = in[2 * c], len = in[2 * c + 1], pos = 0, gap = 0;
        const PCRE2_SPTR subj = (PCRE2_SPTR)(text + base);
        while (pos <= len) {
            int rc = pcre2_match(re, subj, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) rc = PCRE2_ERROR_NOMATCH; // limits: gap
            if (rc == PCRE2_ERROR_NOMATCH) break;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me == ms) { // empty match: step over one character
                if (ms >= len) break;
                int l;
                if (tok_utf8_get(text + base + ms, len - ms, &l) < 0) l = 1;
                pos = ms + (size_t)l;
                continue;
            }
            if (nout + 2 > *out_cap) {
                *out_cap = 2 * (nout + 2) + 64;
                *out = xrealloc(*out, *out_cap * 2 * sizeof **out);
            }
            if (ms > gap) (*out)[2 * nout] = base + gap, (*out)[2 * nout + 1] = ms - gap, nout++;
            (*out)[2 * nout] = base + ms, (*out)[2 * nout + 1] = me - ms, nout++;
            pos = gap = me;
        }
        if (gap < len) {
            if (nout + 1 > *out_cap) {
                *out_cap = 2 * (nout + 1) + 64;
                *out = xrealloc(*out, *out_cap * 2 * sizeof **out);
            }
            (*out)[2 * nout] = base + gap, (*out)[2 * nout + 1] = len - gap, nout++;
        }
    }
    return nout;
}

// ---- BPE on one word -----------------------------------------------------------------------

typedef struct {
    int32_t id, len, prev, next;
} bpe_sym;

typedef struct {
    int32_t rank, left, right, lid, rid;
} bpe_pair;

static int bpair_before(const bpe_pair *a, const bpe_pair *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

TOK_HEAP(bpe_heap, bpe_pair, bpair_before)

static void try_bpair(const bipo_tokenizer *t, const bpe_sym *sym, int32_t l, int32_t r,
                      tok_scratch *s, size_t *nheap) {
    if (l < 0 || r < 0 || sym[l].id < 0 || sym[r].id < 0) return;
    int32_t merged;
    int32_t rank = pair_get(&t->merges, sym[l].id, sym[r].id, &merged);
    if (rank < 0) return;
    if (*nheap == s->heap_cap) {
        s->heap_cap = s->heap_cap ? 2 * s->heap_cap : 256;
        s->heap = xrealloc(s->heap, s->heap_cap * sizeof(bpe_pair));
    }
    bpe_pair p = {rank, l, r, sym[l].id, sym[r].id};
    bpe_heap_push((bpe_pair *)s->heap, nheap, p);
}

static void bpe_word(const bipo_tokenizer *t, tok_scratch *s, const char *w, size_t len,
                     int **ids, size_t *n, size_t *cap) {
    if (len == 1) {
        if (t->byte_id[(uint8_t)w[0]] >= 0) tok_push(ids, n, cap, t->byte_id[(uint8_t)w[0]]);
        return;
    }
    if (len > s->sym_cap) {
        s->sym_cap = len;
        s->sym = xrealloc(s->sym, len * sizeof(bpe_sym));
    }
    bpe_sym *sym = (bpe_sym *)s->sym;
    for (size_t i = 0; i < len; i++)
        sym[i] = (bpe_sym){t->byte_id[(uint8_t)w[i]], 1, (int32_t)i - 1,
                           i + 1 < len ? (int32_t)i + 1 : -1};
    size_t nheap = 0;
    for (size_t i = 1; i < len; i++) try_bpair(t, sym, (int32_t)i - 1, (int32_t)i, s, &nheap);
    while (nheap > 0) {
        bpe_pair p = bpe_heap_pop((bpe_pair *)s->heap, &nheap);
        bpe_sym *L = &sym[p.left], *R = &sym[p.right];
        if (L->len == 0 || R->len == 0 || L->next != p.right || L->id != p.lid || R->id != p.rid)
            continue; // stale
        int32_t merged = -1;
        pair_get(&t->merges, L->id, R->id, &merged);
        L->id = merged;
        L->len += R->len;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) sym[R->next].prev = p.left;
        try_bpair(t, sym, L->prev, p.left, s, &nheap);
        try_bpair(t, sym, p.left, L->next, s, &nheap);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        if (sym[i].id >= 0) {
            tok_push(ids, n, cap, sym[i].id);
        } else { // a byte without a token: dropped (llama.cpp) — only in incomplete vocabs
        }
    }
}

void tok_bpe_encode(const bipo_tokenizer *t, tok_scratch *s, const char *text, size_t len,
                    int **ids, size_t *n, size_t *cap) {
    char *pref = NULL;
    if (t->add_prefix_space && len && text[0] != ' ') { // HF ByteLevel(add_prefix_space=true)
        pref = xmalloc(len + 1);
        pref[0] = ' ';
        memcpy(pref + 1, text, len);
        text = pref;
        len++;
    }
    if (s->chunk_cap < 1) {
        s->chunk_cap = 64;
        s->chunks = xrealloc(s->chunks, s->chunk_cap * 2 * sizeof *s->chunks);
    }
    s->chunks[0] = 0;
    s->chunks[1] = len;
    size_t nch = 1;
    if (t->n_regex > 0 && !s->md) s->md = pcre2_match_data_create(32, NULL);
    for (int r = 0; r < t->n_regex; r++) {
        nch = split_chunks(t->regex[r], s->md, text, s->chunks, nch, &s->chunks2, &s->chunk2_cap);
        size_t *tmp = s->chunks;
        s->chunks = s->chunks2;
        s->chunks2 = tmp;
        size_t tc = s->chunk_cap;
        s->chunk_cap = s->chunk2_cap;
        s->chunk2_cap = tc;
    }
    for (size_t c = 0; c < nch; c++)
        bpe_word(t, s, text + s->chunks[2 * c], s->chunks[2 * c + 1], ids, n, cap);
    free(pref);
}
