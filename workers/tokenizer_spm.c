// workers/tokenizer_spm.c — SentencePiece-style BPE with byte fallback (Llama-2, Mistral,
// Vicuna, Phi-3). Same algorithm as sentencepiece's bpe_model.cc and llama.cpp's
// llm_tokenizer_spm:
//   1. text' = ("▁" if dummy prefix) + text with every ' ' replaced by "▁" (U+2581)
//   2. symbols = the UTF-8 characters of text'
//   3. repeatedly merge the adjacent pair whose concatenation is a vocabulary piece with the
//      highest score (ties: the leftmost pair); only NORMAL / USER_DEFINED / UNUSED pieces
//      are merge results (never <s>, <unk> or <0xNN>, as in sentencepiece)
//   4. each final symbol is its piece id, or, when not in the vocabulary, one <0xNN> token per
//      byte (byte fallback), or <unk> when the vocab has no byte tokens.
// A binary heap holds candidate pairs; a popped pair is stale when either side has changed.
#include <string.h>

#include "tokenizer_impl.h" // defines: bipo_tokenizer internals, tok_spm_encode
#include "tokenizer_util.h" // defines: tok_scratch, tok_push, tok_strmap_get, tok_utf8_get, TOK_HEAP
#include "util.h"           // defines: xrealloc

typedef struct {
    int32_t start, len; // byte span in the prepared text; len 0 = merged away
    int32_t prev, next; // neighbours in the chain (-1 = none)
} spm_sym;

typedef struct {
    float score;
    int32_t left, right;
    int32_t size; // bytes of left+right when pushed (staleness check)
} spm_pair;

// heap order: higher score first, then the leftmost pair
static int pair_before(const spm_pair *a, const spm_pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

TOK_HEAP(spm_heap, spm_pair, pair_before)

static void try_pair(const bipo_tokenizer *t, const char *txt, const spm_sym *sym, int32_t l,
                     int32_t r, tok_scratch *s, size_t *nheap) {
    if (l < 0 || r < 0) return;
    int32_t size = sym[l].len + sym[r].len;
    int32_t id = tok_strmap_get(&t->by_piece, txt + sym[l].start, (size_t)size);
    if (id < 0 || !t->mergeable[id]) return;
    if (*nheap == s->heap_cap) {
        s->heap_cap = s->heap_cap ? 2 * s->heap_cap : 256;
        s->heap = xrealloc(s->heap, s->heap_cap * sizeof(spm_pair));
    }
    spm_pair p = {t->score[id], l, r, size};
    spm_heap_push((spm_pair *)s->heap, nheap, p);
}

static void emit_symbol(const bipo_tokenizer *t, const char *p, size_t n, int **ids, size_t *nid,
                        size_t *cap) {
    int32_t id = tok_strmap_get(&t->by_piece, p, n);
    int ty = id >= 0 ? t->type[id] : 0;
    if (ty == BIPO_TOKEN_NORMAL || ty == BIPO_TOKEN_USER_DEFINED || ty == BIPO_TOKEN_UNUSED) {
        tok_push(ids, nid, cap, id);
        return;
    }
    for (size_t j = 0; j < n; j++) {
        int b = t->byte_id[(uint8_t)p[j]];
        if (b >= 0) {
            tok_push(ids, nid, cap, b);
        } else if (t->unk >= 0) { // no byte fallback: one <unk> for the whole symbol
            tok_push(ids, nid, cap, t->unk);
            return;
        }
    }
}

// Merges symbols [a, b) (a chain of their own) and appends their ids. Short words use a
// linear scan over cached pair scores (same choice as the heap: best score, then leftmost);
// long ones the heap.
#define SPM_SMALL 48
static void merge_range(const bipo_tokenizer *t, tok_scratch *s, const char *txt, spm_sym *sym,
                        int32_t a, int32_t b, int **ids, size_t *n, size_t *cap) {
    int32_t m = b - a;
    if (m <= SPM_SMALL) {
        int32_t st[SPM_SMALL], ln[SPM_SMALL], pid[SPM_SMALL];
        for (int32_t i = 0; i < m; i++) st[i] = sym[a + i].start, ln[i] = sym[a + i].len;
        for (int32_t i = 0; i + 1 < m; i++) {
            pid[i] = tok_strmap_get(&t->by_piece, txt + st[i], (size_t)(ln[i] + ln[i + 1]));
            if (pid[i] >= 0 && !t->mergeable[pid[i]]) pid[i] = -1;
        }
        while (m > 1) {
            int32_t best = -1;
            for (int32_t i = 0; i + 1 < m; i++)
                if (pid[i] >= 0 && (best < 0 || t->score[pid[i]] > t->score[pid[best]])) best = i;
            if (best < 0) break;
            ln[best] += ln[best + 1];
            for (int32_t i = best + 1; i + 1 < m; i++) st[i] = st[i + 1], ln[i] = ln[i + 1];
            for (int32_t i = best + 1; i + 2 < m; i++) pid[i] = pid[i + 1];
            m--;
            for (int32_t i = best - 1; i <= best; i++) {
                if (i < 0 || i + 1 >= m) continue;
                pid[i] = tok_strmap_get(&t->by_piece, txt + st[i], (size_t)(ln[i] + ln[i + 1]));
                if (pid[i] >= 0 && !t->mergeable[pid[i]]) pid[i] = -1;
            }
        }
        for (int32_t i = 0; i < m; i++) emit_symbol(t, txt + st[i], (size_t)ln[i], ids, n, cap);
        return;
    }
    sym[a].prev = -1;
    sym[b - 1].next = -1;
    size_t nheap = 0;
    for (int32_t i = a + 1; i < b; i++) try_pair(t, txt, sym, i - 1, i, s, &nheap);
    while (nheap > 0) {
        spm_pair p = spm_heap_pop((spm_pair *)s->heap, &nheap);
        spm_sym *L = &sym[p.left], *R = &sym[p.right];
        if (L->len == 0 || R->len == 0 || L->next != p.right || L->len + R->len != p.size)
            continue; // stale
        L->len += R->len;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) sym[R->next].prev = p.left;
        try_pair(t, txt, sym, L->prev, p.left, s, &nheap);
        try_pair(t, txt, sym, p.left, L->next, s, &nheap);
    }
    for (int32_t i = a; i >= 0; i = sym[i].next)
        emit_symbol(t, txt + sym[i].start, (size_t)sym[i].len, ids, n, cap);
}

void tok_spm_encode(const bipo_tokenizer *t, tok_scratch *s, const char *text, size_t len,
                    int prefix_space, int **ids, size_t *n, size_t *cap) {
    // 1. escape whitespace (each ' ' becomes 3 bytes)
    size_t need = 3 * len + 3;
    if (need > s->buf_cap) {
        s->buf_cap = need;
        s->buf = xrealloc(s->buf, need);
    }
    char *txt = s->buf;
    size_t k = 0;
    if (prefix_space) memcpy(txt, "\xe2\x96\x81", 3), k = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(txt + k, "\xe2\x96\x81", 3);
            k += 3;
        } else {
            txt[k++] = text[i];
        }
    }
    // 2. one symbol per UTF-8 character (the text is valid UTF-8 here)
    if (k > s->sym_cap) {
        s->sym_cap = k;
        s->sym = xrealloc(s->sym, k * sizeof(spm_sym));
    }
    spm_sym *sym = (spm_sym *)s->sym;
    int32_t nsym = 0;
    for (size_t i = 0; i < k;) {
        int l;
        if (tok_utf8_get(txt + i, k - i, &l) < 0) l = 1;
        sym[nsym] = (spm_sym){(int32_t)i, l, nsym - 1, -1};
        if (nsym > 0) sym[nsym - 1].next = nsym;
        nsym++;
        i += (size_t)l;
    }
    // 3.-4. per word when the vocabulary allows it (no merge crosses "x|▁"), else whole
    if (!t->spm_word_split) {
        merge_range(t, s, txt, sym, 0, nsym, ids, n, cap);
        return;
    }
    static const char SP[3] = {'\xe2', '\x96', '\x81'};
    int32_t a = 0;
    for (int32_t i = 1; i <= nsym; i++) {
        if (i < nsym && !(sym[i].len == 3 && !memcmp(txt + sym[i].start, SP, 3) &&
                          !(sym[i - 1].len == 3 && !memcmp(txt + sym[i - 1].start, SP, 3))))
            continue;
        merge_range(t, s, txt, sym, a, i, ids, n, cap);
        a = i;
    }
}
