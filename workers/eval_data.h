// workers/eval_data.h — the knowledge and truthfulness sets the evaluation scores a vector on
// (workers/eval_mc.h): MMLU-style letter questions, TruthfulQA multiple choice, neutral text.
//
// Formats (docs/EVAL.md, "Knowledge and truthfulness"):
//   MMLU CSV (hendrycks/test data/{dev,test}/*.csv): NO header, six fields a record,
//     question,A,B,C,D,answer with answer one of A B C D; RFC 4180 quoting (quoted newlines occur).
//     The question becomes the user message
//       "<question>\n\nChoices:\n(A) <A>\n(B) <B>\n(C) <C>\n(D) <D>"
//     (CAA's A/B layout, with four choices).
//   CAA letter JSON (caa/test/mmlu/mmlu.json, caa/test/truthfulqa/truthful_qa.json): an array of
//     {"prompt", "correct": "(A)", "incorrect": "(B)", ...}; the prompt already lists the
//     choices, so it is the user message as is; 2 choices (A, B).
//   TruthfulQA CSV (sylinrl/TruthfulQA TruthfulQA.csv, either the 817-question original or the
//     2025 790-question version): header with at least Question, Best Answer, Correct Answers,
//     Incorrect Answers; the answer lists are separated by "; ". No public copy of the
//     official mc_task.json (mc1/mc2 targets) exists here, so the MC sets are derived from the
//     CSV: MC1 = Best Answer against every Incorrect Answer (one true among them), MC2 = every
//     Correct Answer (true; Best Answer added first when the list lacks it) against every
//     Incorrect Answer (false). Duplicate answers within an item are dropped.
//   Neutral text: any UTF-8 text file (default configs/data/neutral.txt, written for this
//     project): scored as plain text, no chat template.
// Every bad input is one bipo_set_error() sentence naming the file, the line and the field.
#ifndef BIPO_EVAL_DATA_H
#define BIPO_EVAL_DATA_H
#include <stddef.h>

// One letter question: answer in the user message's "(A)".."(D)" list.
typedef struct {
    char *question;   // the user message (choices included)
    size_t n_choices; // 2..4: letters A.. of the choices
    int answer;       // 0-based index of the correct letter (0 = A)
    size_t line;      // 1-based line where the record starts
} bipo_mc_item;

typedef struct {
    bipo_mc_item *it;
    size_t n;
    char sha256[65]; // of the file's bytes
    char *path;
} bipo_mc_set;

// MMLU CSV (.csv) or a CAA letter JSON (.json). 0, or -1 + bipo_set_error (out empty).
int bipo_mmlu_load(bipo_mc_set *out, const char *path);
void bipo_mc_set_free(bipo_mc_set *s);

// One TruthfulQA question: answers[0 .. n_true) are true, answers[0] is the best answer (MC1's
// correct choice), answers[n_true .. n_answers) are false.
typedef struct {
    char *question;
    char **answers;
    size_t n_answers, n_true;
    size_t line;
} bipo_tqa_item;

typedef struct {
    bipo_tqa_item *it;
    size_t n;
    char sha256[65];
    char *path;
} bipo_tqa_set;

int bipo_tqa_load(bipo_tqa_set *out, const char *path);
void bipo_tqa_set_free(bipo_tqa_set *s);

// A neutral text: the whole file (NUL-terminated, *len bytes). 0, or -1 + bipo_set_error for a
// missing, empty or binary (NUL byte) file.
int bipo_text_load(const char *path, char **out, size_t *len);

// Prompts to generate from: a CSV (.csv) with a header and a `question` column (the BiPO
// test_infer.csv files), else a text file, one prompt a line (blank lines skipped, CR dropped).
typedef struct {
    char **text; // [n]
    size_t n;
    char sha256[65]; // of the file's bytes
} bipo_prompts;
// 0, or -1 + bipo_set_error naming the file and line (no question column, an empty file).
int bipo_prompts_load(bipo_prompts *out, const char *path);
void bipo_prompts_free(bipo_prompts *p);

#endif
