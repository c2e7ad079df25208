// workers/chat.h — chat templates as C code, and the BiPO prompt/response token builder.
//
// Templates (text before the assistant's reply; S = system prompt, U = user message):
//   llama2   "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST]"     no system: "[INST] U [/INST]"
//   mistral  "[INST] S\nU [/INST]"                            no system: "[INST] U [/INST]"
//   vicuna   "S USER: U ASSISTANT:"  (v1.1)                   no system: "USER: U ASSISTANT:"
//   chatml   "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
//            "<|im_start|>assistant\n"                        no system: without the first line
//   none     "S\n\nU"                                         no system: "U"
// llama2 / mistral / vicuna are fastchat's conv templates, which the official BiPO code
// (train.py: get_conv_template + set_system_message) uses; chatml is SmolLM2's HF template.
// BOS is not part of the text: it comes from the tokenizer (add_bos), as in the reference.
//
// system argument: NULL = the template's default (HF apply_chat_template without a system
// message: SmolLM2's "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
// vicuna's "A chat between a curious user ..."; none for llama2/mistral/chatml/none);
// "" = no system block at all (fastchat prints a stray leading space for vicuna; we do not).
//
// BiPO sequences (bipo_chat_encode_pair) follow TRL's DPO tokenize_row as BiPO runs it:
//   prompt text P = render(system, question); response text R = " " + response
//   ids  = [BOS if the tokenizer adds one] + tokenize(P + R) + [EOS]
//   the prompt/response split is at len(tokenize(P)), moved one token left when the last
//   prompt token merges with the response (TRL's rule); response ids (scored) = the tokens
//   after the split plus the EOS. EOS is the template's end-of-turn token: </s> for llama2,
//   mistral, vicuna; <|im_end|> for chatml (also the generation stop token), else the eos.
//   Special-token texts inside P + R are recognized (HF tokenizer(...) does the same).
//   Deviation from TRL for chatml models: TRL would prepend tokenizer.bos_token_id even when
//   the tokenizer adds none (SmolLM2's bos is <|im_start|>); we follow add_bos (none).
#ifndef BIPO_CHAT_H
#define BIPO_CHAT_H
#include <stddef.h>

#include "tokenizer.h" // defines: bipo_tokenizer

#define BIPO_DEFAULT_SYSTEM "You are a helpful, honest and concise assistant."

typedef enum {
    BIPO_CHAT_NONE = 0,
    BIPO_CHAT_LLAMA2,
    BIPO_CHAT_MISTRAL,
    BIPO_CHAT_VICUNA,
    BIPO_CHAT_CHATML,
} bipo_chat_kind;

typedef struct {
    bipo_chat_kind kind;
    const char *name;           // "llama2", "mistral", "vicuna", "chatml", "none"
    const char *default_system; // used when system == NULL; NULL = none
    // How the rendered prompt ends: 1 in whitespace (chatml's "assistant\n"), 0 never (llama2's
    // "[/INST]", vicuna's "ASSISTANT:"), -1 with the user's text (none). BIPO_SPACE_AUTO adds a
    // space exactly when the prompt does not end in whitespace, so with 0 it is always the
    // official form's " " + response.
    int ends_blank;
} bipo_chat_template;

// By name ("llama2"/"llama-2", "mistral", "vicuna"/"vicuna_v1.1", "chatml"/"smollm", "none");
// NULL + bipo_set_error listing the names when unknown.
const bipo_chat_template *bipo_chat_template_by_name(const char *name);
// Recognizes a model's Jinja template text (NULL / unrecognized -> "none"): <|im_start|> ->
// chatml (SmolLM2's default system when the text carries it), [INST] with <<SYS>> -> llama2,
// [INST] -> mistral, "USER:" ... "ASSISTANT:" -> vicuna.
const bipo_chat_template *bipo_chat_detect(const char *template_text);
// The template for a tokenizer: detected from its chat_template text.
const bipo_chat_template *bipo_chat_for(const bipo_tokenizer *t);

// Text up to the assistant's reply (generation prompt included). malloc'd.
char *bipo_chat_render(const bipo_chat_template *tpl, const char *system, const char *user);
// Same with the tokenizer's detected template (what `generate --chat` uses).
char *bipo_chat_render_user(const bipo_tokenizer *t, const char *system, const char *user);

// Token that ends an assistant turn for this template (appended to BiPO responses, stops
// generation): <|im_end|> for chatml when the vocab has it, else the tokenizer's EOS.
int bipo_chat_eos(const bipo_chat_template *tpl, const bipo_tokenizer *t);
int bipo_chat_stop_token(const bipo_tokenizer *t); // bipo_chat_eos(bipo_chat_for(t), t)

// How a response joins its prompt (train.response_space, train.score_eos).
//   space AUTO   one leading space unless the rendered prompt ends in whitespace (chatml's
//                "<|im_start|>assistant\n": the model itself writes "(A)", never " (A)")
//         ALWAYS the official code's R = " " + response (TRL), whatever the template
//         NEVER  the response as given
//   score_eos    1: append the end-of-turn token and score it (the official code); 0: the
//                response tokens alone (letter answers: the loss can then only be won on the
//                letter). An empty response keeps its EOS either way (nothing else to score).
typedef enum { BIPO_SPACE_AUTO = 0, BIPO_SPACE_ALWAYS = 1, BIPO_SPACE_NEVER = 2 } bipo_space_rule;
typedef struct {
    bipo_space_rule space;
    int score_eos;
} bipo_response_form;
// The official BiPO code's form: a forced space, EOS scored.
#define BIPO_RESPONSE_OFFICIAL ((bipo_response_form){BIPO_SPACE_ALWAYS, 1})
// "auto" / "always" / "never" <-> enum; from_name: -1 when unknown.
int bipo_space_rule_from_name(const char *name, bipo_space_rule *out);
const char *bipo_space_rule_name(bipo_space_rule r);

// One BiPO sequence: ids[0..n_prompt) prompt (BOS included), ids[n_prompt..n) the scored
// response tokens (EOS included).
typedef struct {
    int *ids;
    size_t n, cap;
    size_t n_prompt;
} bipo_chat_seq;
// Builds the sequence for (system, question, response); response is given without the
// leading space (form decides whether one is added; NULL = BIPO_RESPONSE_OFFICIAL). out is
// overwritten (its buffer reused; zero-initialize it once). -1 + bipo_set_error on a missing
// argument or a vocab without EOS.
int bipo_chat_encode_pair(const bipo_tokenizer *t, const bipo_chat_template *tpl,
                          const char *system, const char *question, const char *response,
                          const bipo_response_form *form, bipo_chat_seq *out);
void bipo_chat_seq_free(bipo_chat_seq *s);

#endif
