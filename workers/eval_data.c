// workers/eval_data.c — MMLU, TruthfulQA and neutral-text loaders (see eval_data.h). CSV goes
// through dataset.c's RFC 4180 reader (bipo_csv_*), CAA JSON through bipo_pairs_load.
#include "eval_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h" // defines: bipo_csv_*, bipo_pairs_load
#include "util.h"    // defines: bipo_set_error, bipo_read_file, bipo_sha256_*, xmalloc

static void file_sha(const char *b, size_t len, char hex[65]) {
    bipo_sha256 s;
    bipo_sha256_init(&s);
    bipo_sha256_update(&s, b, len);
    bipo_sha256_hex(&s, hex);
}

// The file's bytes (NUL-terminated, a UTF-8 BOM dropped) and their sha256 (BOM included).
static char *read_all(const char *path, size_t *len, char sha[65]) {
    char *b = bipo_read_file(path, len);
    if (!b) bipo_set_error("%s: cannot open (run scripts/fetch-data for the public sets)", path);
    if (b) file_sha(b, *len, sha);
    if (b && *len >= 3 && !memcmp(b, "\xEF\xBB\xBF", 3)) memmove(b, b + 3, (*len -= 3) + 1); // BOM
    return b;
}

// Growable string for building user messages.
typedef struct {
    char *p;
    size_t n, cap;
} str_b;
static void sput(str_b *s, const char *t) {
    size_t l = strlen(t);
    if (s->n + l + 1 > s->cap) s->p = xrealloc(s->p, s->cap = 2 * (s->n + l + 1));
    memcpy(s->p + s->n, t, l + 1);
    s->n += l;
}

void bipo_mc_set_free(bipo_mc_set *s) {
    for (size_t i = 0; i < s->n; i++) free(s->it[i].question);
    free(s->it), free(s->path);
    memset(s, 0, sizeof *s);
}

static bipo_mc_item *mc_push(bipo_mc_set *o, size_t *cap) {
    if (o->n == *cap) o->it = xrealloc(o->it, (*cap = 2 * *cap + 64) * sizeof *o->it);
    return &o->it[o->n++];
}

// ---- MMLU CSV: question,A,B,C,D,answer (no header) -------------------------------------------

static int load_mmlu_csv(bipo_mc_set *o, const char *path, const char *b, size_t len) {
    static char *names[6] = {"question", "A", "B", "C", "D", "answer"};
    bipo_csv *c = bipo_csv_open(path, b, len, names, 6);
    char **f;
    const size_t *ln;
    size_t n, cap = 0;
    int r, rc = -1;
    while ((r = bipo_csv_next(c, &f, &ln, &n)) == 1) {
        if (n != 6) {
            bipo_set_error("%s:%zu: field '%s': %s: %zu fields, an MMLU row has 6 "
                           "(question,A,B,C,D,answer; no header line)", path, ln[0],
                           n < 6 ? names[n] : "answer", n < 6 ? "missing" : "too many fields", n);
            goto out;
        }
        const char *a = f[5];
        if (!(a[0] >= 'A' && a[0] <= 'D' && a[1] == 0)) {
            bipo_set_error("%s:%zu: field 'answer': '%.20s' is not one of A B C D%s", path, ln[5],
                           a, o->n == 0 ? " (a header line? MMLU CSV files have none)" : "");
            goto out;
        }
        str_b q = {0};
        sput(&q, f[0]);
        sput(&q, "\n\nChoices:");
        for (int k = 0; k < 4; k++) {
            char lab[8];
            snprintf(lab, sizeof lab, "\n(%c) ", 'A' + k);
            sput(&q, lab);
            sput(&q, f[1 + k]);
        }
        *mc_push(o, &cap) = (bipo_mc_item){q.p, 4, a[0] - 'A', ln[0]};
    }
    if (r == 0 && o->n == 0) bipo_set_error("%s: no questions (empty file)", path);
    else if (r == 0) rc = 0;
out:
    bipo_csv_close(c);
    return rc;
}

// ---- CAA letter JSON: [{"prompt", "correct": "(A)", "incorrect": "(B)"}] ----------------------

// "(A)" (a leading space allowed) -> 0..3, else -1.
static int letter_of(const char *s) {
    if (*s == ' ') s++;
    if (s[0] == '(' && s[1] >= 'A' && s[1] <= 'D' && s[2] == ')' && !s[3]) return s[1] - 'A';
    return -1;
}

static int load_caa_json(bipo_mc_set *o, const char *path) {
    bipo_pairs p = {0};
    bipo_fields fl = {"prompt", "correct", "incorrect"};
    if (bipo_pairs_load(&p, path, BIPO_FMT_CAA_JSON, &fl) != 0) return -1;
    size_t cap = 0;
    for (size_t i = 0; i < p.n; i++) {
        int c = letter_of(p.p[i].matching), w = letter_of(p.p[i].not_matching);
        if (c < 0 || w < 0 || c == w) {
            bipo_set_error("%s:%zu: field '%s': expected a letter answer \"(A)\"..\"(D)\" "
                           "%s, got '%.20s'", path, p.p[i].line, c < 0 ? "correct" : "incorrect",
                           c >= 0 && c == w ? "other than the correct one" : "",
                           c < 0 ? p.p[i].matching : p.p[i].not_matching);
            bipo_pairs_free(&p);
            bipo_mc_set_free(o);
            return -1;
        }
        bipo_mc_item *it = mc_push(o, &cap);
        *it = (bipo_mc_item){p.p[i].question, (size_t)(c > w ? c : w) + 1, c, p.p[i].line};
        p.p[i].question = NULL;
    }
    memcpy(o->sha256, p.sha256, sizeof o->sha256);
    bipo_pairs_free(&p);
    return 0;
}

int bipo_mmlu_load(bipo_mc_set *out, const char *path) {
    memset(out, 0, sizeof *out);
    size_t l = strlen(path);
    if (l > 5 && !strcmp(path + l - 5, ".json")) {
        if (load_caa_json(out, path) != 0) return -1;
    } else {
        size_t len;
        char *b = read_all(path, &len, out->sha256);
        if (!b) return -1;
        int rc = load_mmlu_csv(out, path, b, len);
        free(b);
        if (rc) return bipo_mc_set_free(out), -1;
    }
    out->path = xstrdup(path);
    return 0;
}

// ---- TruthfulQA CSV --------------------------------------------------------------------------

void bipo_tqa_set_free(bipo_tqa_set *s) {
    for (size_t i = 0; i < s->n; i++) {
        for (size_t j = 0; j < s->it[i].n_answers; j++) free(s->it[i].answers[j]);
        free(s->it[i].answers), free(s->it[i].question);
    }
    free(s->it), free(s->path);
    memset(s, 0, sizeof *s);
}

// Appends the "; "-separated, trimmed, non-empty answers of list to it (skipping duplicates).
static void add_answers(bipo_tqa_item *it, size_t *cap, const char *list) {
    for (const char *p = list; *p;) {
        const char *e = strstr(p, "; ");
        size_t l = e ? (size_t)(e - p) : strlen(p);
        const char *s = p;
        p += l + (e ? 2 : 0);
        while (l && (*s == ' ' || *s == '\n')) s++, l--;
        while (l && (s[l - 1] == ' ' || s[l - 1] == '\n' || s[l - 1] == ';')) l--;
        if (!l) continue;
        int dup = 0;
        for (size_t j = 0; j < it->n_answers && !dup; j++)
            dup = strlen(it->answers[j]) == l && !memcmp(it->answers[j], s, l);
        if (dup) continue;
        if (it->n_answers == *cap) it->answers = xrealloc(it->answers, (*cap = 2 * *cap + 8) * sizeof(char *));
        char *a = xmalloc(l + 1);
        memcpy(a, s, l), a[l] = 0;
        it->answers[it->n_answers++] = a;
    }
}

static int tqa_rows(bipo_tqa_set *o, bipo_csv *c, const char *path, size_t n_hdr, char **hdr,
                    const int *col) {
    char **f;
    const size_t *ln;
    size_t n;
    int r;
    while ((r = bipo_csv_next(c, &f, &ln, &n)) == 1) {
        if (n != n_hdr) {
            bipo_set_error("%s:%zu: field '%s': %zu fields, the header has %zu (an unquoted "
                           "comma in a field?)", path, ln[0], n < n_hdr ? hdr[n] : hdr[n_hdr - 1],
                           n, n_hdr);
            return -1;
        }
        static const char *what[4] = {"Question", "Best Answer", "Correct Answers", "Incorrect Answers"};
        for (int k = 0; k < 4; k++)
            if (!f[col[k]][0]) {
                bipo_set_error("%s:%zu: field '%s': empty", path, ln[col[k]], what[k]);
                return -1;
            }
        if (o->n % 64 == 0) o->it = xrealloc(o->it, (o->n + 64) * sizeof *o->it);
        bipo_tqa_item *it = &o->it[o->n++];
        *it = (bipo_tqa_item){xstrdup(f[col[0]]), NULL, 0, 0, ln[0]};
        size_t acap = 0;
        add_answers(it, &acap, f[col[1]]); // the best answer first
        add_answers(it, &acap, f[col[2]]);
        it->n_true = it->n_answers;
        add_answers(it, &acap, f[col[3]]);
        if (it->n_answers == it->n_true) {
            bipo_set_error("%s:%zu: field 'Incorrect Answers': no answer that is not also a "
                           "correct one", path, ln[col[3]]);
            return -1;
        }
    }
    if (r == 0 && o->n == 0) bipo_set_error("%s: zero questions (only a header line)", path);
    return r == 0 && o->n ? 0 : -1;
}

int bipo_tqa_load(bipo_tqa_set *out, const char *path) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *b = read_all(path, &len, out->sha256);
    if (!b) return -1;
    bipo_csv *c = bipo_csv_open(path, b, len, NULL, 0);
    char **f, **hdr = NULL;
    const size_t *ln;
    size_t n = 0, n_hdr = 0, hline;
    int rc = -1, col[4];
    int r = bipo_csv_next(c, &f, &ln, &n);
    if (r == 0) bipo_set_error("%s: empty file (no header line)", path);
    if (r != 1) goto out;
    hdr = xmalloc(n * sizeof *hdr);
    for (size_t i = 0; i < n; i++) hdr[i] = f[i], f[i] = NULL;
    n_hdr = n, hline = ln[0];
    static const char *need[4] = {"Question", "Best Answer", "Correct Answers", "Incorrect Answers"};
    for (int k = 0; k < 4; k++) {
        col[k] = -1;
        for (size_t i = 0; i < n_hdr; i++)
            if (!strcmp(hdr[i], need[k])) col[k] = (int)i;
        if (col[k] < 0) {
            bipo_set_error("%s:%zu: missing column '%s' (a TruthfulQA CSV has Type,Category,"
                           "Question,Best Answer,Correct Answers,Incorrect Answers,Source)",
                           path, hline, need[k]);
            goto out;
        }
    }
    bipo_csv_names(c, hdr, n_hdr);
    rc = tqa_rows(out, c, path, n_hdr, hdr, col);
out:
    bipo_csv_close(c);
    for (size_t i = 0; i < n_hdr; i++) free(hdr[i]);
    free(hdr);
    if (rc == 0) out->path = xstrdup(path);
    else bipo_tqa_set_free(out);
    free(b);
    return rc;
}

// ---- neutral text ----------------------------------------------------------------------------

int bipo_text_load(const char *path, char **out, size_t *len) {
    char sha[65];
    char *b = read_all(path, len, sha);
    if (!b) return -1;
    const char *z = memchr(b, 0, *len);
    if (z || *len == 0) {
        size_t line = 1;
        for (const char *p = b; p < z; p++) line += *p == '\n';
        if (z) bipo_set_error("%s:%zu: text: NUL byte (a binary or UTF-16 file? the neutral "
                              "text is plain UTF-8)", path, line);
        else bipo_set_error("%s: text: empty file", path);
        free(b);
        return -1;
    }
    *out = b;
    return 0;
}

void bipo_prompts_free(bipo_prompts *p) {
    for (size_t i = 0; i < p->n; i++) free(p->text[i]);
    free(p->text);
    memset(p, 0, sizeof *p);
}

static void prompt_push(bipo_prompts *o, size_t *cap, char *s) {
    if (o->n == *cap) o->text = xrealloc(o->text, (*cap = 2 * *cap + 16) * sizeof *o->text);
    o->text[o->n++] = s;
}

// The `question` column of a CSV with a header.
static int prompts_csv(bipo_prompts *o, const char *path, const char *b, size_t len) {
    bipo_csv *c = bipo_csv_open(path, b, len, NULL, 0);
    char **f;
    const size_t *ln;
    size_t n, cap = 0, col = (size_t)-1, n_hdr = 0;
    int r = bipo_csv_next(c, &f, &ln, &n), rc = -1;
    if (r == 0) bipo_set_error("%s: empty file (no header line)", path);
    if (r != 1) goto out;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(f[i], "question")) col = i;
    n_hdr = n;
    if (col == (size_t)-1) {
        bipo_set_error("%s:%zu: no 'question' column in the header (a CSV of prompts names its "
                       "prompt column question; or give a text file, one prompt a line)", path, ln[0]);
        goto out;
    }
    while ((r = bipo_csv_next(c, &f, &ln, &n)) == 1) {
        if (n != n_hdr) {
            bipo_set_error("%s:%zu: %zu fields, the header has %zu (an unquoted comma in a field?)",
                           path, ln[0], n, n_hdr);
            goto out;
        }
        if (!f[col][0]) {
            bipo_set_error("%s:%zu: field 'question': empty", path, ln[col]);
            goto out;
        }
        prompt_push(o, &cap, f[col]);
        f[col] = NULL; // kept
    }
    rc = r;
out:
    bipo_csv_close(c);
    return rc;
}

int bipo_prompts_load(bipo_prompts *out, const char *path) {
    size_t len, cap = 0;
    memset(out, 0, sizeof *out);
    char *b = read_all(path, &len, out->sha256);
    if (!b) return -1;
    size_t pl = strlen(path);
    int rc = 0;
    if (pl > 4 && !strcmp(path + pl - 4, ".csv")) rc = prompts_csv(out, path, b, len);
    else
        for (char *p = b, *e; *p; p = *e ? e + 1 : e) { // one prompt a line, blank lines skipped
            e = p + strcspn(p, "\n");
            size_t l = (size_t)(e - p);
            if (l && p[l - 1] == '\r') l--;
            if (l) {
                char *s = xmalloc(l + 1);
                memcpy(s, p, l), s[l] = 0;
                prompt_push(out, &cap, s);
            }
        }
    free(b);
    if (rc == 0 && out->n == 0) bipo_set_error("%s: no prompts (an empty file?)", path), rc = -1;
    if (rc) bipo_prompts_free(out);
    return rc;
}
