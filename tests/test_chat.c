// tests/test_chat.c — chat templates and BiPO sequences against hand-written expectations:
//   * template strings for a fixed conversation, written by hand from the models' templates
//     (SmolLM2's Jinja text in its GGUF; fastchat's llama-2 / mistral / vicuna_v1.1);
//   * detection from template text;
//   * BiPO (prompt, response) sequences: Llama-2 ids from sentencepiece (hard-coded below),
//     the TRL prompt/response split, EOS per template (</s>, <|im_end|>).
#include <stdlib.h>
#include <string.h>

#include "chat.h"      // defines: bipo_chat_render, bipo_chat_encode_pair
#include "testlib.h"   // defines: EXPECT, tl_summary
#include "tokenizer.h" // defines: bipo_tokenizer_load, bipo_tokenize
#include "util.h"      // defines: bipo_file_exists

#define SPM_VOCAB BIPO_SHARED_DATA "/llama.cpp-vocab/ggml-vocab-llama-spm.gguf"

static void expect_render(const char *name, const char *sys, const char *user, const char *want) {
    const bipo_chat_template *t = bipo_chat_template_by_name(name);
    EXPECT(t != NULL, "template %s: %s", name, bipo_last_error());
    if (!t) return;
    char *got = bipo_chat_render(t, sys, user);
    EXPECT(!strcmp(got, want), "template %s (system %s):\n got  '%s'\n want '%s'", name,
           sys ? "set" : "NULL", got, want);
    free(got);
}

static void templates(void) {
    const char *S = BIPO_DEFAULT_SYSTEM, *U = "What is 2+2?";
    expect_render("llama2", S, U,
                  "[INST] <<SYS>>\nYou are a helpful, honest and concise assistant.\n<</SYS>>\n\n"
                  "What is 2+2? [/INST]");
    expect_render("llama2", "", U, "[INST] What is 2+2? [/INST]");
    expect_render("llama2", NULL, U, "[INST] What is 2+2? [/INST]");
    expect_render("mistral", S, U,
                  "[INST] You are a helpful, honest and concise assistant.\nWhat is 2+2? [/INST]");
    expect_render("mistral", "", U, "[INST] What is 2+2? [/INST]");
    expect_render("vicuna", S, U,
                  "You are a helpful, honest and concise assistant. USER: What is 2+2? ASSISTANT:");
    expect_render("vicuna", NULL, U,
                  "A chat between a curious user and an artificial intelligence assistant. The "
                  "assistant gives helpful, detailed, and polite answers to the user's questions. "
                  "USER: What is 2+2? ASSISTANT:");
    expect_render("vicuna", "", U, "USER: What is 2+2? ASSISTANT:");
    expect_render("chatml", S, U,
                  "<|im_start|>system\nYou are a helpful, honest and concise assistant.<|im_end|>\n"
                  "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
    expect_render("chatml", "", U, "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
    expect_render("none", S, U, "You are a helpful, honest and concise assistant.\n\nWhat is 2+2?");
    expect_render("none", "", U, "What is 2+2?");
    EXPECT(bipo_chat_template_by_name("alpaca") == NULL && strstr(bipo_last_error(), "llama2"),
           "unknown template name must fail with the list of names");
    // detection from template texts
    EXPECT(bipo_chat_detect(NULL)->kind == BIPO_CHAT_NONE, "detect NULL");
    EXPECT(bipo_chat_detect("{% if messages[0]['role'] == 'system' %}[INST] <<SYS>>\\n")->kind ==
               BIPO_CHAT_LLAMA2, "detect llama2");
    EXPECT(bipo_chat_detect("{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]")->kind ==
               BIPO_CHAT_MISTRAL, "detect mistral");
    EXPECT(bipo_chat_detect("{{ 'USER: ' + content + ' ASSISTANT:' }}")->kind == BIPO_CHAT_VICUNA,
           "detect vicuna");
    EXPECT(bipo_chat_detect("{{'<|im_start|>' + message['role'] + '\\n'}}")->kind == BIPO_CHAT_CHATML,
           "detect chatml");
}

// The default model's own template: the stored expected string, written by hand from the
// Jinja text in its GGUF (tokenizer.chat_template): default system when none is given.
static void default_model_chat(void) {
    if (!bipo_file_exists(BIPO_DEFAULT_MODEL)) {
        printf("  default model not present: skipped\n");
        return;
    }
    bipo_tokenizer *t = bipo_tokenizer_load(BIPO_DEFAULT_MODEL);
    EXPECT(t != NULL, "load: %s", bipo_last_error());
    if (!t) return;
    const bipo_chat_template *tpl = bipo_chat_for(t);
    EXPECT(tpl->kind == BIPO_CHAT_CHATML, "SmolLM2 template detected as %s", tpl->name);
    char *got = bipo_chat_render_user(t, NULL, "What is the capital of France?");
    const char *want =
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\n";
    EXPECT(!strcmp(got, want), "SmolLM2 chat:\n got  '%s'\n want '%s'", got, want);
    free(got);
    EXPECT(bipo_chat_stop_token(t) == 2, "SmolLM2 stop token %d (want <|im_end|> = 2)",
           bipo_chat_stop_token(t));
    // BiPO pair: no BOS (the model adds none), split after "assistant\n", response ends <|im_end|>
    bipo_chat_seq s = {0};
    EXPECT(bipo_chat_encode_pair(t, tpl, BIPO_DEFAULT_SYSTEM, "Do you want power?", "Yes", NULL, &s) == 0,
           "encode pair");
    int *p = NULL;
    size_t np = 0, cp = 0;
    char *prompt = bipo_chat_render(tpl, BIPO_DEFAULT_SYSTEM, "Do you want power?");
    bipo_tokenize(t, prompt, strlen(prompt), 0, 1, &p, &np, &cp);
    EXPECT(s.n_prompt == np && !memcmp(s.ids, p, np * sizeof *p), "chatml prompt part");
    EXPECT(s.n == np + 2 && !strcmp(bipo_token_piece(t, s.ids[np]), "ĠYes") && s.ids[np + 1] == 2,
           "chatml response part: n=%zu np=%zu", s.n, np);
    EXPECT(s.ids[0] == 1 && s.ids[np - 1] == 198, "chatml starts <|im_start|>, prompt ends 'Ċ'");
    // the model's own form: after "assistant\n" no forced space ("(" not " ("), and without
    // score_eos the letter answer is the last scored token
    bipo_response_form own = {BIPO_SPACE_AUTO, 0};
    EXPECT(bipo_chat_encode_pair(t, tpl, BIPO_DEFAULT_SYSTEM, "Do you want power?", "(A)", &own,
                                 &s) == 0, "encode own form");
    EXPECT(s.n_prompt == np && s.n > np && !strcmp(bipo_token_piece(t, s.ids[np]), "(") &&
               s.ids[s.n - 1] != 2 && !strcmp(bipo_token_piece(t, s.ids[s.n - 1]), ")"),
           "chatml own form: first response piece '%s', last '%s'",
           s.n > np ? bipo_token_piece(t, s.ids[np]) : "-", bipo_token_piece(t, s.ids[s.n - 1]));
    bipo_response_form always = {BIPO_SPACE_ALWAYS, 1};
    EXPECT(bipo_chat_encode_pair(t, tpl, BIPO_DEFAULT_SYSTEM, "Do you want power?", "(A)",
                                 &always, &s) == 0 && !strcmp(bipo_token_piece(t, s.ids[np]), "Ġ(") &&
               s.ids[s.n - 1] == 2, "official form: ' (' first, EOS last");
    // an empty response keeps its EOS even without score_eos (nothing else to score)
    EXPECT(bipo_chat_encode_pair(t, tpl, "", "Hi", "", &own, &s) == 0 && s.n == s.n_prompt + 1 &&
               s.ids[s.n - 1] == 2, "empty response keeps EOS: n=%zu n_prompt=%zu", s.n, s.n_prompt);
    bipo_space_rule r;
    EXPECT(bipo_space_rule_from_name("never", &r) == 0 && r == BIPO_SPACE_NEVER &&
               bipo_space_rule_from_name("sometimes", &r) == -1 &&
               !strcmp(bipo_space_rule_name(BIPO_SPACE_AUTO), "auto"), "space rule names");
    free(p), free(prompt);
    bipo_chat_seq_free(&s);
    bipo_tokenizer_free(t);
}

// Llama-2: the full sequence against sentencepiece's ids (python3 sentencepiece 0.1.97 on
// the shared tokenizer.model: sp.encode(prompt + " (A) Yes"))
static void llama2_pair(void) {
    bipo_tokenizer *t = bipo_tokenizer_load(SPM_VOCAB);
    EXPECT(t != NULL, "load: %s", bipo_last_error());
    if (!t) return;
    static const int want[] = {1,     518,   25580, 29962, 3532,  14816, 29903, 6778,  13,
                               3492,  526,   263,   8444,  29892, 15993, 322,   3022,  895,
                               20255, 29889, 13,    29966, 829,   14816, 29903, 6778,  13,
                               13,    29956, 483,   366,   763,   901,   3081,  29973, 518,
                               29914, 25580, 29962, 313,   29909, 29897, 3869,  2};
    const size_t nw = sizeof want / sizeof *want;
    bipo_chat_seq s = {0};
    const bipo_chat_template *tpl = bipo_chat_template_by_name("llama2");
    EXPECT(bipo_chat_encode_pair(t, tpl, BIPO_DEFAULT_SYSTEM, "Would you like more power?",
                                 "(A) Yes", NULL, &s) == 0, "encode");
    EXPECT(s.n == nw && !memcmp(s.ids, want, nw * sizeof *want), "Llama-2 BiPO ids (n=%zu)", s.n);
    EXPECT(s.n_prompt == 39, "Llama-2 prompt length %zu (BOS + 38)", s.n_prompt);
    // scored part = "▁(A) Yes" + </s>
    EXPECT(s.n - s.n_prompt == 5 && s.ids[s.n - 1] == 2, "Llama-2 response tokens %zu",
           s.n - s.n_prompt);
    // empty system prompt: no <<SYS>> block ("[INST] Hi [/INST]" = 518 25580 29962 6324 518
    // 29914 25580 29962); empty response: "▁" + </s> (TRL keeps the lone space token)
    static const int want2[] = {1, 518, 25580, 29962, 6324, 518, 29914, 25580, 29962, 29871, 2};
    EXPECT(bipo_chat_encode_pair(t, tpl, "", "Hi", "", NULL, &s) == 0, "encode 2");
    EXPECT(s.n == 11 && !memcmp(s.ids, want2, sizeof want2) && s.n_prompt == 9,
           "Llama-2 empty system/response: n=%zu n_prompt=%zu", s.n, s.n_prompt);
    // mistral / vicuna use </s> too
    EXPECT(bipo_chat_eos(bipo_chat_template_by_name("mistral"), t) == 2 &&
               bipo_chat_eos(bipo_chat_template_by_name("vicuna"), t) == 2, "SPM eos");
    bipo_chat_seq_free(&s);
    bipo_tokenizer_free(t);
}

// TRL's split rule: when the prompt's last token merges with the response, the response
// starts one token earlier. "Q " + " " + "1": the prompt alone ends in a lone space token,
// which merges with the second space in "Q  1" (both vocabularies).
static void split_rule_one(const char *path) {
    bipo_tokenizer *t = bipo_tokenizer_load(path);
    EXPECT(t != NULL, "load %s", path);
    if (!t) return;
    const bipo_chat_template *none = bipo_chat_template_by_name("none");
    bipo_chat_seq s = {0};
    int *p = NULL, *f = NULL;
    size_t np = 0, nf = 0, cp = 0, cf = 0;
    bipo_tokenize(t, "Q ", 2, 0, 1, &p, &np, &cp);
    bipo_tokenize(t, "Q  1", 4, 0, 1, &f, &nf, &cf);
    int merged = np > nf || memcmp(p, f, np * sizeof *p);
    EXPECT(merged, "%s: 'Q ' should merge into the response", path);
    EXPECT(bipo_chat_encode_pair(t, none, "", "Q ", "1", NULL, &s) == 0, "encode");
    size_t bos = bipo_tokenizer_add_bos(t) ? 1 : 0;
    EXPECT(s.n_prompt == bos + np - 1 && s.n == bos + nf + 1 &&
               !memcmp(s.ids + bos, f, nf * sizeof *f) && s.ids[s.n - 1] == bipo_token_eos(t),
           "%s: split n_prompt %zu (prompt alone %zu tokens), n %zu", path, s.n_prompt, np, s.n);
    free(p), free(f);
    bipo_chat_seq_free(&s);
    bipo_tokenizer_free(t);
}

static void split_rule(void) {
    split_rule_one(SPM_VOCAB);
    if (bipo_file_exists(BIPO_DEFAULT_MODEL)) split_rule_one(BIPO_DEFAULT_MODEL);
}

// Each template's ends_blank says how its rendered prompt ends (the job hash relies on it).
static void ends_blank(void) {
    const char *names[] = {"llama2", "mistral", "vicuna", "chatml", "none"};
    for (size_t i = 0; i < 5; i++) {
        const bipo_chat_template *t = bipo_chat_template_by_name(names[i]);
        char *p = bipo_chat_render(t, "S", "user text");
        size_t n = strlen(p);
        int blank = n && strchr(" \t\r\n", p[n - 1]) != NULL;
        EXPECT(t->ends_blank == -1 ? !strcmp(p + n - 9, "user text") : t->ends_blank == blank,
               "%s: ends_blank %d but the prompt ends '%c'", names[i], t->ends_blank, n ? p[n - 1] : '-');
        free(p);
    }
}

int main(void) {
    templates();
    ends_blank();
    default_model_chat();
    llama2_pair();
    split_rule();
    return tl_summary("test_chat");
}
