// workers/chat.c — chat templates and the BiPO sequence builder (see chat.h for the exact
// strings and the prompt/response split rule).
#include <stdlib.h>
#include <string.h>

#include "chat.h" // defines: bipo_chat_template, bipo_chat_seq
#include "util.h" // defines: bipo_set_error, xmalloc

#define SMOLLM_SYSTEM "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
#define VICUNA_SYSTEM                                                                          \
    "A chat between a curious user and an artificial intelligence assistant. The assistant "   \
    "gives helpful, detailed, and polite answers to the user's questions."

static const bipo_chat_template T_NONE = {BIPO_CHAT_NONE, "none", NULL, -1};
static const bipo_chat_template T_LLAMA2 = {BIPO_CHAT_LLAMA2, "llama2", NULL, 0};
static const bipo_chat_template T_MISTRAL = {BIPO_CHAT_MISTRAL, "mistral", NULL, 0};
static const bipo_chat_template T_VICUNA = {BIPO_CHAT_VICUNA, "vicuna", VICUNA_SYSTEM, 0};
static const bipo_chat_template T_CHATML = {BIPO_CHAT_CHATML, "chatml", NULL, 1};
static const bipo_chat_template T_SMOLLM = {BIPO_CHAT_CHATML, "chatml", SMOLLM_SYSTEM, 1};

static const char *const space_names[] = {"auto", "always", "never"};

int bipo_space_rule_from_name(const char *name, bipo_space_rule *out) {
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, space_names[i]) == 0) return *out = (bipo_space_rule)i, 0;
    return -1;
}

const char *bipo_space_rule_name(bipo_space_rule r) {
    return (unsigned)r < 3 ? space_names[r] : "?";
}

const bipo_chat_template *bipo_chat_template_by_name(const char *name) {
    static const struct {
        const char *name;
        const bipo_chat_template *t;
    } names[] = {{"none", &T_NONE},       {"llama2", &T_LLAMA2}, {"llama-2", &T_LLAMA2},
                 {"mistral", &T_MISTRAL}, {"vicuna", &T_VICUNA}, {"vicuna_v1.1", &T_VICUNA},
                 {"chatml", &T_CHATML},   {"smollm", &T_SMOLLM}};
    for (size_t i = 0; name && i < sizeof names / sizeof *names; i++)
        if (!strcmp(name, names[i].name)) return names[i].t;
    bipo_set_error("chat template '%s' is unknown (use llama2, mistral, vicuna, chatml, smollm "
                   "or none)", name ? name : "(null)");
    return NULL;
}

const bipo_chat_template *bipo_chat_detect(const char *text) {
    if (!text) return &T_NONE;
    if (strstr(text, "<|im_start|>"))
        return strstr(text, "named SmolLM, trained by Hugging Face") ? &T_SMOLLM : &T_CHATML;
    if (strstr(text, "[INST]")) return strstr(text, "<<SYS>>") ? &T_LLAMA2 : &T_MISTRAL;
    if (strstr(text, "USER:") && strstr(text, "ASSISTANT:")) return &T_VICUNA;
    return &T_NONE;
}

const bipo_chat_template *bipo_chat_for(const bipo_tokenizer *t) {
    return bipo_chat_detect(t ? bipo_tokenizer_chat_template(t) : NULL);
}

// ---- rendering ---------------------------------------------------------------------------

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void put(sbuf *b, const char *s) {
    size_t l = strlen(s);
    if (b->n + l + 1 > b->cap) {
        b->cap = 2 * (b->n + l + 1) + 64;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, l + 1);
    b->n += l;
}

char *bipo_chat_render(const bipo_chat_template *tpl, const char *system, const char *user) {
    if (!tpl) tpl = &T_NONE;
    if (!user) user = "";
    const char *sys = system ? system : tpl->default_system;
    int has_sys = sys && *sys;
    sbuf b = {0};
    put(&b, "");
    switch (tpl->kind) {
    case BIPO_CHAT_LLAMA2:
        if (has_sys) put(&b, "[INST] <<SYS>>\n"), put(&b, sys), put(&b, "\n<</SYS>>\n\n");
        else put(&b, "[INST] ");
        put(&b, user), put(&b, " [/INST]");
        break;
    case BIPO_CHAT_MISTRAL:
        put(&b, "[INST] ");
        if (has_sys) put(&b, sys), put(&b, "\n");
        put(&b, user), put(&b, " [/INST]");
        break;
    case BIPO_CHAT_VICUNA:
        if (has_sys) put(&b, sys), put(&b, " ");
        put(&b, "USER: "), put(&b, user), put(&b, " ASSISTANT:");
        break;
    case BIPO_CHAT_CHATML:
        if (has_sys) put(&b, "<|im_start|>system\n"), put(&b, sys), put(&b, "<|im_end|>\n");
        put(&b, "<|im_start|>user\n"), put(&b, user), put(&b, "<|im_end|>\n");
        put(&b, "<|im_start|>assistant\n");
        break;
    case BIPO_CHAT_NONE:
        if (has_sys) put(&b, sys), put(&b, "\n\n");
        put(&b, user);
        break;
    }
    return b.s;
}

char *bipo_chat_render_user(const bipo_tokenizer *t, const char *system, const char *user) {
    return bipo_chat_render(bipo_chat_for(t), system, user);
}

int bipo_chat_eos(const bipo_chat_template *tpl, const bipo_tokenizer *t) {
    if (tpl && tpl->kind == BIPO_CHAT_CHATML) {
        int id = bipo_token_find(t, "<|im_end|>");
        if (id >= 0) return id;
    }
    return bipo_token_eos(t);
}

int bipo_chat_stop_token(const bipo_tokenizer *t) { return bipo_chat_eos(bipo_chat_for(t), t); }

// ---- BiPO sequences ------------------------------------------------------------------------

void bipo_chat_seq_free(bipo_chat_seq *s) {
    free(s->ids);
    memset(s, 0, sizeof *s);
}

int bipo_chat_encode_pair(const bipo_tokenizer *t, const bipo_chat_template *tpl,
                          const char *system, const char *question, const char *response,
                          const bipo_response_form *form, bipo_chat_seq *out) {
    if (!t || !question || !response) {
        bipo_set_error("bipo_chat_encode_pair: tokenizer, question and response are required");
        return -1;
    }
    int eos = bipo_chat_eos(tpl, t);
    if (eos < 0) {
        bipo_set_error("the tokenizer has no EOS / end-of-turn token to end BiPO responses");
        return -1;
    }
    const bipo_response_form official = BIPO_RESPONSE_OFFICIAL;
    if (!form) form = &official;
    char *prompt = bipo_chat_render(tpl, system, question);
    size_t lp = strlen(prompt), lr = strlen(response);
    int ends_in_space = lp > 0 && strchr(" \t\r\n", prompt[lp - 1]) != NULL;
    size_t space = form->space == BIPO_SPACE_ALWAYS ||
                   (form->space == BIPO_SPACE_AUTO && !ends_in_space);
    char *full = xmalloc(lp + lr + 2);
    memcpy(full, prompt, lp);
    if (space) full[lp] = ' ';
    memcpy(full + lp + space, response, lr + 1);
    int *p = NULL, *f = NULL;
    size_t np = 0, nf = 0, cp = 0, cf = 0;
    bipo_tokenize(t, prompt, lp, 0, 1, &p, &np, &cp);
    bipo_tokenize(t, full, lp + space + lr, 0, 1, &f, &nf, &cf);
    // TRL: response starts at len(enc(prompt)), one earlier when the last prompt token merged
    size_t split = np <= nf ? np : nf;
    if (split > 0 && (np > nf || memcmp(p, f, split * sizeof *p))) split--;
    int bos = bipo_tokenizer_add_bos(t) ? bipo_token_bos(t) : -1;
    int add_bos = bos >= 0 && (nf == 0 || f[0] != bos);
    size_t need = nf + 2;
    if (need > out->cap) {
        out->cap = need;
        out->ids = xrealloc(out->ids, need * sizeof *out->ids);
    }
    out->n = 0;
    if (add_bos) out->ids[out->n++] = bos;
    memcpy(out->ids + out->n, f, nf * sizeof *f);
    out->n += nf;
    out->n_prompt = (size_t)add_bos + split;
    int want_eos = form->score_eos || out->n <= out->n_prompt; // an empty response keeps it
    if (want_eos && (nf == 0 || f[nf - 1] != eos)) out->ids[out->n++] = eos; // TRL: unless there
    free(p), free(f), free(prompt), free(full);
    return 0;
}
