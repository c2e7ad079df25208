// pipeline/cmd_tokenize.c — `bipo-pipeline tokenize --model PATH --text TEXT [--no-bos] [--chat]`
// Prints one JSON object {"ids": [...], "pieces": [...]} (pieces are the raw vocabulary
// strings, e.g. "▁Hello" or "Ġworld"). --model: HF directory, tokenizer.json, GGUF model or
// vocab-only GGUF. BOS follows the model's add_bos setting unless --no-bos; special-token
// texts in TEXT ("<|im_start|>", "</s>") are recognized. --chat wraps TEXT as a user message
// in the model's chat template (detected from its template text) with the generation prompt.
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"      // defines: arg_spec, args_parse
#include "chat.h"      // defines: bipo_chat_render_user
#include "commands.h"  // defines: cmd_tokenize
#include "tokenizer.h" // defines: bipo_tokenizer_load, bipo_tokenize, bipo_token_piece
#include "util.h"      // defines: bipo_last_error

static const char *TOK_USAGE = "tokenize --model PATH --text TEXT [--no-bos] [--chat]";

// A JSON string for a vocabulary piece; invalid UTF-8 bytes (only in damaged vocabularies)
// become U+FFFD so the output stays valid JSON.
static json_t *piece_json(const char *s) {
    json_t *j = json_string(s);
    if (j) return j;
    size_t n = strlen(s);
    char *o = xmalloc(3 * n + 1), *q = o;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) *q++ = (char)c;
        else q += sprintf(q, "\xef\xbf\xbd");
    }
    *q = 0;
    j = json_string(o);
    free(o);
    return j ? j : json_string("");
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL;
    int no_bos = 0, chat = 0;
    arg_spec sp[] = {
        {"--model", ARG_STR, &model, 0, 0, 0},
        {"--text", ARG_STR, &text, 0, 0, 0},
        {"--no-bos", ARG_FLAG, &no_bos, 0, 0, 0},
        {"--chat", ARG_FLAG, &chat, 0, 0, 0},
    };
    if (args_parse("tokenize", TOK_USAGE, sp, sizeof sp / sizeof sp[0], argc, argv) != 0) return 2;
    if (!model || !text) {
        fprintf(stderr, "bipo-pipeline tokenize: need --model and --text\nusage: bipo-pipeline %s\n",
                TOK_USAGE);
        return 2;
    }
    bipo_tokenizer *t = bipo_tokenizer_load(model);
    if (!t) {
        fprintf(stderr, "bipo-pipeline tokenize: %s\n", bipo_last_error());
        return 1;
    }
    char *prompt = chat ? bipo_chat_render_user(t, NULL, text) : NULL;
    const char *in = prompt ? prompt : text;
    int *ids = NULL;
    size_t n = 0, cap = 0;
    int add_bos = !no_bos && bipo_tokenizer_add_bos(t);
    if (bipo_tokenize(t, in, strlen(in), add_bos, 1, &ids, &n, &cap) != 0) {
        fprintf(stderr, "bipo-pipeline tokenize: %s\n", bipo_last_error());
        free(prompt);
        bipo_tokenizer_free(t);
        return 1;
    }
    json_t *o = json_object(), *ja = json_array(), *jp = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(ja, json_integer(ids[i]));
        json_array_append_new(jp, piece_json(bipo_token_piece(t, ids[i])));
    }
    json_object_set_new(o, "ids", ja);
    json_object_set_new(o, "pieces", jp);
    char *s = json_dumps(o, JSON_PRESERVE_ORDER);
    printf("%s\n", s);
    free(s);
    json_decref(o);
    free(ids);
    free(prompt);
    bipo_tokenizer_free(t);
    return 0;
}
