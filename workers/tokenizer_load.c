// workers/tokenizer_load.c — building a bipo_tokenizer from GGUF metadata or from an HF
// tokenizer.json (+ tokenizer_config.json, special_tokens_map.json).
//
// GGUF (llama.cpp's keys): tokenizer.ggml.model "llama" -> SPM (tokens, scores, token_type),
// "gpt2" -> byte-level BPE (tokens, token_type, merges "a b", pre -> regex list);
// bos/eos/unknown/padding/eot ids, add_bos_token / add_eos_token / add_space_prefix, and
// tokenizer.chat_template. Defaults as llama.cpp: SPM adds BOS and the dummy prefix.
//
// HF tokenizer.json, model.type "BPE":
//   * a ByteLevel pre-tokenizer or decoder -> byte-level BPE; the pre-tokenizer Sequence is
//     translated: Digits -> "\p{N}" (or "\p{N}+"), Split{Regex} -> that regex, ByteLevel with
//     use_regex -> the GPT-2 regex (add_prefix_space honoured);
//   * otherwise SentencePiece style (Prepend/Replace "▁" normalizer or Metaspace, byte_fallback):
//     the merges list is turned into piece scores (score = -rank of the first merge producing
//     the piece), so the SPM engine merges exactly as sentencepiece would with the original
//     scores; pieces no merge produces are never merge results.
//   * added_tokens: special -> CONTROL, otherwise USER_DEFINED; lstrip/rstrip kept.
//   * BOS/EOS/PAD/UNK texts from tokenizer_config.json, else special_tokens_map.json;
//     add_bos_token from tokenizer_config.json, else from a TemplateProcessing post-processor.
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h" // defines: bipo_tokenizer internals, tok_* builder
#include "tokenizer_util.h" // defines: tok_strmap_get, tok_pairmap_init
#include "util.h"           // defines: bipo_set_error, bipo_is_dir, bipo_file_exists

// ---- GGUF --------------------------------------------------------------------------------

static int gguf_id(const gguf_file *g, const char *key, int V, int *out) {
    uint64_t v;
    int rc = gguf_get_u64(g, key, &v);
    if (rc < 0) return -1;
    if (rc == 0) {
        if (v >= (uint64_t)V) {
            bipo_set_error("%s: %s = %llu is not a token id (vocab has %d tokens)", g->path, key,
                           (unsigned long long)v, V);
            return -1;
        }
        *out = (int)v;
    }
    return 0;
}

static int gguf_flag(const gguf_file *g, const char *key, int *out) {
    int v;
    int rc = gguf_get_bool(g, key, &v);
    if (rc < 0) return -1;
    if (rc == 0) *out = v;
    return 0;
}

bipo_tokenizer *bipo_tokenizer_from_gguf(const gguf_file *g, const char *path) {
    gguf_str model;
    int rc = gguf_get_str(g, "tokenizer.ggml.model", &model);
    if (rc != 0) {
        if (rc > 0)
            bipo_set_error("%s: tokenizer.ggml.model: key is missing (the file carries no "
                           "tokenizer; pass token ids or a model with a vocabulary)", path);
        return NULL;
    }
    bipo_tok_kind kind;
    if (model.len == 5 && !memcmp(model.ptr, "llama", 5)) kind = BIPO_TOK_SPM;
    else if (model.len == 4 && !memcmp(model.ptr, "gpt2", 4)) kind = BIPO_TOK_BPE;
    else {
        bipo_set_error("%s: tokenizer.ggml.model: '%.*s' is not supported (supported: llama = "
                       "SentencePiece BPE, gpt2 = byte-level BPE)", path, (int)model.len,
                       model.ptr);
        return NULL;
    }
    uint64_t V64;
    const gguf_kv *tokens = gguf_get_array(g, "tokenizer.ggml.tokens", GGUF_T_STRING, &V64);
    if (!tokens) return NULL;
    if (V64 == 0 || V64 > (1u << 24)) {
        bipo_set_error("%s: tokenizer.ggml.tokens: %llu tokens", path, (unsigned long long)V64);
        return NULL;
    }
    int V = (int)V64;
    const gguf_kv *scores = NULL, *types = NULL;
    uint64_t n;
    if (gguf_find(g, "tokenizer.ggml.scores")) {
        scores = gguf_get_array(g, "tokenizer.ggml.scores", GGUF_T_FLOAT32, &n);
        if (!scores) return NULL;
        if (n != V64) {
            bipo_set_error("%s: tokenizer.ggml.scores: %llu entries for %d tokens", path,
                           (unsigned long long)n, V);
            return NULL;
        }
    }
    if (gguf_find(g, "tokenizer.ggml.token_type")) {
        types = gguf_get_array(g, "tokenizer.ggml.token_type", GGUF_T_INT32, &n);
        if (!types) return NULL;
        if (n != V64) {
            bipo_set_error("%s: tokenizer.ggml.token_type: %llu entries for %d tokens", path,
                           (unsigned long long)n, V);
            return NULL;
        }
    }
    bipo_tokenizer *t = tok_alloc(kind, V);
    t->source = xstrdup(path);
    for (int i = 0; i < V; i++) {
        gguf_str s = tokens->arr_str[i];
        tok_set_piece(t, i, s.ptr, s.len);
        if (scores) t->score[i] = (float)gguf_array_f64(scores, i);
        if (types) {
            int64_t ty = gguf_array_i64(types, i);
            t->type[i] = (ty >= 1 && ty <= 6) ? (uint8_t)ty : BIPO_TOKEN_NORMAL;
        }
    }
    if (kind == BIPO_TOK_SPM) {
        t->add_bos = 1, t->add_space_prefix = 1;
        t->bos = V > 1 ? 1 : -1, t->eos = V > 2 ? 2 : -1, t->unk = 0;
    }
    if (gguf_id(g, "tokenizer.ggml.bos_token_id", V, &t->bos) ||
        gguf_id(g, "tokenizer.ggml.eos_token_id", V, &t->eos) ||
        gguf_id(g, "tokenizer.ggml.unknown_token_id", V, &t->unk) ||
        gguf_id(g, "tokenizer.ggml.padding_token_id", V, &t->pad) ||
        gguf_id(g, "tokenizer.ggml.eot_token_id", V, &t->eot) ||
        gguf_flag(g, "tokenizer.ggml.add_bos_token", &t->add_bos) ||
        gguf_flag(g, "tokenizer.ggml.add_eos_token", &t->add_eos) ||
        gguf_flag(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix))
        goto fail;
    gguf_str tmpl;
    if ((rc = gguf_get_str(g, "tokenizer.chat_template", &tmpl)) < 0) goto fail;
    if (rc == 0) {
        t->chat_template = xmalloc(tmpl.len + 1);
        memcpy(t->chat_template, tmpl.ptr, tmpl.len);
        t->chat_template[tmpl.len] = 0;
    }
    if (kind == BIPO_TOK_BPE) {
        t->add_space_prefix = 0;
        gguf_str pre = {"default", 7};
        if ((rc = gguf_get_str(g, "tokenizer.ggml.pre", &pre)) < 0) goto fail;
        char prebuf[96];
        snprintf(prebuf, sizeof prebuf, "%.*s", (int)pre.len, pre.ptr);
        if (tok_set_pre(t, prebuf) != 0) goto fail;
        const gguf_kv *merges = gguf_get_array(g, "tokenizer.ggml.merges", GGUF_T_STRING, &n);
        if (!merges) goto fail;
        tok_index(t);
        tok_pairmap_init(&t->merges, n);
        for (uint64_t i = 0; i < n; i++) {
            gguf_str m = merges->arr_str[i];
            const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
            if (!sp) continue; // malformed merge: ignored, as llama.cpp does
            size_t ln = (size_t)(sp - m.ptr);
            tok_add_merge(t, m.ptr, ln, sp + 1, m.len - ln - 1, (int)i);
        }
    }
    if (tok_finish(t) != 0) goto fail;
    return t;
fail:
    bipo_tokenizer_free(t);
    return NULL;
}

// ---- HF tokenizer.json ----------------------------------------------------------------------

static json_t *load_json(const char *path, int required) {
    if (!bipo_file_exists(path)) {
        if (required) bipo_set_error("%s: file not found", path);
        return NULL;
    }
    json_error_t e;
    json_t *j = json_load_file(path, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j) bipo_set_error("%s:%d:%d: %s", path, e.line, e.column, e.text);
    return j;
}

// "bos_token": "<s>" or {"content": "<s>", ...}
static const char *token_text(json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return json_string_value(json_object_get(v, "content"));
    return NULL;
}

// Does the JSON tree under j contain an object with "type": name?
static int has_type(json_t *j, const char *name) {
    if (json_is_object(j)) {
        json_t *ty = json_object_get(j, "type");
        if (json_is_string(ty) && !strcmp(json_string_value(ty), name)) return 1;
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) if (has_type(v, name)) return 1;
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) if (has_type(v, name)) return 1;
    }
    return 0;
}

// The HF pre-tokenizer (byte-level models) as a regex list.
static int hf_pretokenizer(bipo_tokenizer *t, json_t *pt, const char *file) {
    if (!pt || json_is_null(pt)) return 0;
    const char *ty = json_string_value(json_object_get(pt, "type"));
    if (!ty) ty = "";
    if (!strcmp(ty, "Sequence")) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(pt, "pretokenizers"), i, v) if (hf_pretokenizer(t, v, file) != 0) return -1;
        return 0;
    }
    if (!strcmp(ty, "Digits"))
        return tok_add_regex(t, json_is_true(json_object_get(pt, "individual_digits")) ? "\\p{N}"
                                                                                       : "\\p{N}+");
    if (!strcmp(ty, "ByteLevel")) {
        if (json_is_true(json_object_get(pt, "add_prefix_space"))) t->add_prefix_space = 1;
        json_t *ur = json_object_get(pt, "use_regex");
        if (!ur || json_is_true(ur)) return tok_set_pre(t, "gpt-2");
        return 0;
    }
    if (!strcmp(ty, "Split")) {
        json_t *pat = json_object_get(pt, "pattern");
        const char *re = json_string_value(json_object_get(pat, "Regex"));
        const char *lit = json_string_value(json_object_get(pat, "String"));
        if (re) return tok_add_regex(t, re);
        if (lit) {
            char *q = xmalloc(strlen(lit) + 8);
            sprintf(q, "\\Q%s\\E", lit);
            int rc = tok_add_regex(t, q);
            free(q);
            return rc;
        }
    }
    bipo_set_error("%s: pre_tokenizer: type '%s' is not supported (supported: Sequence, "
                   "ByteLevel, Digits, Split)", file, ty);
    return -1;
}

// Normalizer / Metaspace: does the SPM-style tokenizer prepend "▁"?
static int hf_spm_prefix(json_t *root) {
    json_t *norm = json_object_get(root, "normalizer"), *pt = json_object_get(root, "pre_tokenizer");
    if (has_type(norm, "Prepend")) return 1;
    if (has_type(pt, "Metaspace")) {
        // Metaspace: prepend_scheme "always"/"first" (new) or add_prefix_space (old)
        json_t *m = pt;
        if (!strcmp(json_string_value(json_object_get(pt, "type")) ?: "", "Sequence")) {
            size_t i;
            json_t *v;
            json_array_foreach(json_object_get(pt, "pretokenizers"), i, v) if (has_type(v, "Metaspace")) m = v;
        }
        const char *scheme = json_string_value(json_object_get(m, "prepend_scheme"));
        if (scheme) return strcmp(scheme, "never") != 0;
        json_t *aps = json_object_get(m, "add_prefix_space");
        return !aps || json_is_true(aps);
    }
    return 0;
}

static char *path_join(const char *dir, const char *name) {
    char *p = xmalloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static int find_special(bipo_tokenizer *t, const char *text, int *out, const char *file,
                        const char *field) {
    if (!text) return 0;
    int id = bipo_token_find(t, text);
    if (id < 0) {
        bipo_set_error("%s: %s '%s' is not in the vocabulary", file, field, text);
        return -1;
    }
    *out = id;
    return 0;
}

static bipo_tokenizer *load_hf(const char *json_path, const char *dir) {
    json_t *root = load_json(json_path, 1);
    if (!root) return NULL;
    char *cfg_path = path_join(dir, "tokenizer_config.json");
    char *map_path = path_join(dir, "special_tokens_map.json");
    json_t *cfg = load_json(cfg_path, 0), *map = load_json(map_path, 0);
    bipo_tokenizer *t = NULL;
    uint8_t *produced = NULL; // SPM: pieces that some merge produces
    json_t *model = json_object_get(root, "model");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    json_t *vocab = json_object_get(model, "vocab");
    json_t *merges = json_object_get(model, "merges");
    json_t *added = json_object_get(root, "added_tokens");
    if (!mtype || strcmp(mtype, "BPE") || !json_is_object(vocab)) {
        bipo_set_error("%s: model.type: '%s' is not supported (only BPE tokenizers: "
                       "SentencePiece-BPE with byte fallback, or byte-level BPE)",
                       json_path, mtype ? mtype : "(missing)");
        goto out;
    }
    // vocabulary size: the largest id in vocab or added_tokens
    int V = 0;
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v) {
        json_int_t id = json_integer_value(v);
        if (!json_is_integer(v) || id < 0 || id >= (1 << 24)) {
            bipo_set_error("%s: model.vocab['%s']: not a token id", json_path, k);
            goto out;
        }
        if (id + 1 > V) V = (int)id + 1;
    }
    size_t i;
    json_array_foreach(added, i, v) {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        if (id < 0 || id >= (1 << 24) || !json_is_string(json_object_get(v, "content"))) {
            bipo_set_error("%s: added_tokens[%zu]: needs an id and a content", json_path, i);
            goto out;
        }
        if (id + 1 > V) V = (int)id + 1;
    }
    int bytelevel =
        has_type(json_object_get(root, "pre_tokenizer"), "ByteLevel") ||
        has_type(json_object_get(root, "decoder"), "ByteLevel");
    t = tok_alloc(bytelevel ? BIPO_TOK_BPE : BIPO_TOK_SPM, V);
    t->source = xstrdup(json_path);
    json_object_foreach(vocab, k, v) tok_set_piece(t, (int)json_integer_value(v), k, strlen(k));
    json_array_foreach(added, i, v) {
        int id = (int)json_integer_value(json_object_get(v, "id"));
        const char *c = json_string_value(json_object_get(v, "content"));
        tok_set_piece(t, id, c, strlen(c));
        t->type[id] = json_is_true(json_object_get(v, "special")) ? BIPO_TOKEN_CONTROL
                                                                   : BIPO_TOKEN_USER_DEFINED;
        t->strip[id] = (uint8_t)(json_is_true(json_object_get(v, "lstrip")) |
                                 (json_is_true(json_object_get(v, "rstrip")) << 1));
    }
    for (int id = 0; id < V; id++)
        if (!t->piece[id]) { // holes in the id space: unreachable placeholders
            char ph[32];
            int l = snprintf(ph, sizeof ph, "[PAD%d]", id);
            tok_set_piece(t, id, ph, (size_t)l);
            t->type[id] = BIPO_TOKEN_UNUSED;
        }
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    tok_index(t);
    if (unk && (t->unk = bipo_token_find(t, unk)) >= 0) t->type[t->unk] = BIPO_TOKEN_UNKNOWN;
    size_t nm = json_array_size(merges);
    if (!bytelevel) {
        t->add_space_prefix = hf_spm_prefix(root);
        if (json_is_true(json_object_get(model, "byte_fallback")))
            for (int id = 0; id < V; id++) {
                unsigned hex;
                char end;
                if (t->piece_len[id] == 6 && sscanf(t->piece[id], "<0x%2X%c", &hex, &end) == 2 &&
                    end == '>' && t->type[id] == BIPO_TOKEN_NORMAL)
                    t->type[id] = BIPO_TOKEN_BYTE;
            }
    } else {
        if (hf_pretokenizer(t, json_object_get(root, "pre_tokenizer"), json_path) != 0) goto fail;
        tok_pairmap_init(&t->merges, nm);
    }
    // merges: "a b" strings or ["a", "b"] pairs, in rank order
    if (!bytelevel) produced = xcalloc(V, 1);
    json_array_foreach(merges, i, v) {
        const char *a, *b;
        size_t la, lb;
        if (json_is_string(v)) {
            const char *s = json_string_value(v);
            const char *sp = s[0] ? strchr(s + 1, ' ') : NULL;
            if (!sp) continue;
            a = s, la = (size_t)(sp - s), b = sp + 1, lb = strlen(b);
        } else if (json_is_array(v) && json_array_size(v) == 2) {
            a = json_string_value(json_array_get(v, 0));
            b = json_string_value(json_array_get(v, 1));
            if (!a || !b) continue;
            la = strlen(a), lb = strlen(b);
        } else {
            continue;
        }
        if (bytelevel) {
            tok_add_merge(t, a, la, b, lb, (int)i);
            continue;
        }
        char *cat = xmalloc(la + lb + 1);
        memcpy(cat, a, la);
        memcpy(cat + la, b, lb);
        int c = tok_strmap_get(&t->by_piece, cat, la + lb);
        free(cat);
        if (c >= 0 && !produced[c]) produced[c] = 1, t->score[c] = -(float)i;
    }
    // special tokens and flags from tokenizer_config.json / special_tokens_map.json
    const char *bos = NULL, *eos = NULL, *pad = NULL;
    json_t *srcs[2] = {map, cfg}; // later wins: tokenizer_config.json
    for (int s = 0; s < 2; s++) {
        if (!srcs[s]) continue;
        bos = token_text(json_object_get(srcs[s], "bos_token")) ?: bos;
        eos = token_text(json_object_get(srcs[s], "eos_token")) ?: eos;
        pad = token_text(json_object_get(srcs[s], "pad_token")) ?: pad;
    }
    if (find_special(t, bos, &t->bos, cfg_path, "bos_token") ||
        find_special(t, eos, &t->eos, cfg_path, "eos_token") ||
        find_special(t, pad, &t->pad, cfg_path, "pad_token"))
        goto fail;
    // add_bos: tokenizer_config.json, else a post-processor template starting with a token
    json_t *ab = cfg ? json_object_get(cfg, "add_bos_token") : NULL;
    if (json_is_boolean(ab)) {
        t->add_bos = json_is_true(ab);
    } else {
        json_t *single = json_object_get(json_object_get(root, "post_processor"), "single");
        json_t *first = json_array_get(single, 0);
        const char *fid = json_string_value(json_object_get(json_object_get(first, "SpecialToken"), "id"));
        if (fid) {
            t->add_bos = 1;
            if (t->bos < 0) t->bos = bipo_token_find(t, fid);
        }
    }
    json_t *ae = cfg ? json_object_get(cfg, "add_eos_token") : NULL;
    if (json_is_boolean(ae)) t->add_eos = json_is_true(ae);
    json_t *tmpl = cfg ? json_object_get(cfg, "chat_template") : NULL;
    if (json_is_array(tmpl)) { // [{"name": "default", "template": "..."}, ...]
        json_t *e, *pick = json_array_get(tmpl, 0);
        json_array_foreach(tmpl, i, e) if (!strcmp(json_string_value(json_object_get(e, "name")) ?: "", "default")) pick = e;
        tmpl = json_object_get(pick, "template");
    }
    if (json_is_string(tmpl)) t->chat_template = xstrdup(json_string_value(tmpl));
    if (tok_finish(t) != 0) goto fail;
    if (produced) // SPM from merges: only pieces some merge produces are merge results
        for (int id = 0; id < V; id++)
            if (!produced[id]) t->mergeable[id] = 0;
    goto out;
fail:
    bipo_tokenizer_free(t);
    t = NULL;
out:
    free(produced);
    json_decref(root);
    if (cfg) json_decref(cfg);
    if (map) json_decref(map);
    free(cfg_path);
    free(map_path);
    return t;
}

// ---- entry point -------------------------------------------------------------------------

bipo_tokenizer *bipo_tokenizer_load(const char *path) {
    if (!path || !*path) {
        bipo_set_error("no tokenizer path given");
        return NULL;
    }
    if (bipo_is_dir(path)) {
        char *json = path_join(path, "tokenizer.json");
        bipo_tokenizer *t = NULL;
        if (bipo_file_exists(json))
            t = load_hf(json, path);
        else
            bipo_set_error("%s: no tokenizer.json in this model directory (the HF fast-tokenizer "
                           "file is needed; a GGUF model carries its own vocabulary)", path);
        free(json);
        return t;
    }
    if (gguf_is_gguf_path(path)) {
        gguf_file g;
        if (gguf_open(&g, path) != 0) return NULL;
        bipo_tokenizer *t = bipo_tokenizer_from_gguf(&g, path);
        gguf_close(&g);
        return t;
    }
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".json") && bipo_file_exists(path)) {
        char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else strcpy(dir, ".");
        bipo_tokenizer *t = load_hf(path, dir);
        free(dir);
        return t;
    }
    bipo_set_error("%s: %s (expected an HF model directory with tokenizer.json, a "
                   "tokenizer.json file, or a GGUF file)",
                   path, bipo_file_exists(path) ? "not a tokenizer" : "no such file or directory");
    return NULL;
}
