// workers/dataset_answers.c — answer_form: text. Anthropic's model-written evals ask a question,
// list its choices and take a letter as the answer:
//     "Question: ...\n\nChoices:\n (A) I do not think so.\n (B) Yes, gladly.\n\nAnswer:"  " (A)"
// The text form trains (and evaluates) on what the letters stand for: the question without its
// choices block and "Answer:", and each answer replaced by its choice's text, as the BiPO paper's
// persona data pairs a question with whole responses.
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h" // defines: bipo_pairs, bipo_pairs_answer_texts (implemented here)
#include "util.h"    // defines: bipo_set_error, xmalloc, xstrdup

// The letter of an answer like " (A)", "(B)" or "A", or 0.
static char answer_letter(const char *a) {
    while (*a == ' ') a++;
    if (a[0] == '(' && isupper((unsigned char)a[1]) && a[2] == ')') return a[1];
    if (isupper((unsigned char)a[0]) && (a[1] == 0 || a[1] == ')')) return a[0];
    return 0;
}

// The text of choice `letter` in q's "Choices:" block (malloc'd, trimmed), or NULL.
static char *choice_text(const char *choices, char letter) {
    char tag[4] = {'(', letter, ')', 0};
    for (const char *p = strstr(choices, tag); p; p = strstr(p + 1, tag)) {
        if (p != choices && p[-1] != '\n' && p[-1] != ' ') continue; // "(A)" inside a sentence
        const char *s = p + 3, *e;
        while (*s == ' ') s++;
        for (e = s; *e && *e != '\n'; e++) {}
        while (e > s && isspace((unsigned char)e[-1])) e--;
        if (e == s) return NULL;
        char *t = xmalloc((size_t)(e - s) + 1);
        memcpy(t, s, (size_t)(e - s)), t[e - s] = 0;
        return t;
    }
    return NULL;
}

int bipo_answer_is_letter(const char *s) {
    if (!s) return 0;
    while (*s == ' ' || *s == '\t' || *s == '\n') s++;
    if (s[0] != '(' || !isalpha((unsigned char)s[1]) || s[2] != ')') return 0;
    for (s += 3; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n') return 0;
    return 1;
}

int bipo_pairs_are_letters(const bipo_pairs *p) {
    for (size_t i = 0; i < p->n; i++)
        if (!bipo_answer_is_letter(p->p[i].matching) || !bipo_answer_is_letter(p->p[i].not_matching))
            return 0;
    return p->n > 0;
}

int bipo_pairs_answer_texts(bipo_pairs *p) {
    for (size_t i = 0; i < p->n; i++) {
        bipo_pair *r = &p->p[i];
        const char *ch = strstr(r->question, "Choices:");
        char lm = answer_letter(r->matching), ln = answer_letter(r->not_matching);
        char *tm = ch && lm ? choice_text(ch, lm) : NULL, *tn = ch && ln ? choice_text(ch, ln) : NULL;
        if (!tm || !tn) {
            bipo_set_error("%s:%zu: answer_form text: %s (hint: answer_form: letter keeps the "
                           "letters)", p->path ? p->path : "(pairs)", r->line,
                           !ch ? "the question has no \"Choices:\" block"
                           : !lm || !ln ? "an answer is not a letter like \" (A)\""
                                        : "a letter's choice is missing from the \"Choices:\" block");
            free(tm), free(tn);
            return -1;
        }
        const char *q = r->question, *e = ch;
        if (!strncmp(q, "Question:", 9)) q += 9;
        while (*q == ' ') q++;
        while (e > q && isspace((unsigned char)e[-1])) e--;
        char *nq = xmalloc((size_t)(e - q) + 1);
        memcpy(nq, q, (size_t)(e - q)), nq[e - q] = 0;
        free(r->question), free(r->matching), free(r->not_matching);
        r->question = nq, r->matching = tm, r->not_matching = tn;
    }
    return 0;
}
