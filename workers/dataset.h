// workers/dataset.h — BiPO pair datasets: (question, matching, not_matching) UTF-8 strings.
//
// Three on-disk formats:
//   bipo-csv         the official BiPO CSV, header `question,matching,not_matching` (RFC 4180:
//                    quoted fields, "" for a quote, quoted newlines, CRLF, UTF-8 BOM)
//   anthropic-jsonl  Anthropic model-written evals, one object per line:
//                    {"question", "answer_matching_behavior", "answer_not_matching_behavior"}
//   caa-json         CAA: one JSON array of objects with the same keys
// Strings are kept byte for byte (the evals' leading space in " (A)" stays; the tokenizer
// layer decides what to do with it). An answer given as a JSON list of strings (some
// Anthropic eval files list several not-matching answers) contributes its FIRST element.
// Empty strings are kept (the official power-seeking train.csv has two).
//
// Every bad input is one bipo_set_error() sentence naming the file, the line (and column for
// JSON syntax and UTF-8 errors) and the field, with a hint where one helps.
#ifndef BIPO_DATASET_H
#define BIPO_DATASET_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *question, *matching, *not_matching;
    size_t line; // 1-based line of the file where this record starts
} bipo_pair;

typedef struct {
    bipo_pair *p;
    size_t n;
    char sha256[65]; // hash of the file's bytes (data hash for provenance)
    char *path;      // the path it was loaded from
} bipo_pairs;

typedef enum {
    BIPO_FMT_AUTO = 0,
    BIPO_FMT_BIPO_CSV,
    BIPO_FMT_ANTHROPIC_JSONL,
    BIPO_FMT_CAA_JSON,
} bipo_data_format;

// Column (CSV) or key (JSON) names; a NULL member means the format's default:
// CSV question/matching/not_matching, JSON question/answer_matching_behavior/
// answer_not_matching_behavior. E.g. CAA's truthful_qa.json: {"prompt","correct","incorrect"}.
// A CSV column may serve two fields (each gets its own copy): AdvBench's goal,target file
// loads with {"goal", "target", "target"} (workers/jailbreak.c).
typedef struct {
    const char *question, *matching, *not_matching;
} bipo_fields;

// "auto", "bipo-csv", "anthropic-jsonl", "caa-json" <-> enum. from_name: -1 if unknown.
int bipo_data_format_from_name(const char *name, bipo_data_format *out);
const char *bipo_data_format_name(bipo_data_format f);

// Loads every pair of a file. fmt AUTO decides by extension (.csv, .jsonl, .json) and
// content (header / first character); ambiguous -> error with a hint to set format/fields.
// fields may be NULL. Returns 0, or -1 + bipo_set_error (out is then empty).
int bipo_pairs_load(bipo_pairs *out, const char *path, bipo_data_format fmt,
                    const bipo_fields *fields);
void bipo_pairs_free(bipo_pairs *p);

// answer_form: text (workers/dataset_answers.c): every pair's question loses its "Choices:"
// block (and a leading "Question:"), and its letter answers (" (A)") become the text of those
// choices. -1 + bipo_set_error naming file and line when a pair has no such choices.
int bipo_pairs_answer_texts(bipo_pairs *p);
// 1 when s is a letter choice: optional blanks, "(", one ASCII letter, ")", optional blanks.
int bipo_answer_is_letter(const char *s);
// 1 when every answer of p (n >= 1) is a letter choice.
int bipo_pairs_are_letters(const bipo_pairs *p);

// Deterministic split. RNG: splitmix64 seeded with `seed`; a Fisher-Yates shuffle of the
// indices 0..n-1 (for i = n-1 down to 1: j = next() % (i+1), swap i, j). The first n_test
// shuffled indices go to test, the rest to train; each part keeps file order.
// n_test = round(test_fraction * n), at most n - 1 so train is never empty (n >= 1).
// Both outputs are deep copies (free each with bipo_pairs_free) and carry all's sha256/path.
void bipo_pairs_split(const bipo_pairs *all, double test_fraction, uint64_t seed,
                      bipo_pairs *train, bipo_pairs *test);

// ---- the RFC 4180 reader of bipo-csv, for other CSV loaders (workers/eval_data.c) ----------
// Records of the text b[len] (kept by the caller); errors name path, line and column. names
// [n] are the column names used in messages (NULL: "header column k" until bipo_csv_names).
typedef struct bipo_csv bipo_csv;
bipo_csv *bipo_csv_open(const char *path, const char *b, size_t len, char **names, size_t n);
void bipo_csv_names(bipo_csv *c, char **names, size_t n);
// Next non-blank record: 1 (fields[n], each field's starting line), 0 at the end, -1 + error.
// The fields belong to the reader until the next call; set one to NULL to keep it.
int bipo_csv_next(bipo_csv *c, char ***fields, const size_t **lines, size_t *n);
void bipo_csv_close(bipo_csv *c);

#endif
