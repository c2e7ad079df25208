#define _GNU_SOURCE // mkdtemp, popen
// tests/test_dataset.c — pair datasets: the official BiPO CSVs, an Anthropic evals JSONL and
// CAA JSON files loaded and checked field by field against Python's csv/json modules (an
// independent reader run through popen: count + sha256 over every string), CSV corner cases
// with exact strings and line numbers, the deterministic split, and one case per bad input
// whose message must name the file, the line (and column for JSON) and the field.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"
#include "testlib.h"
#include "util.h"

#define DATA BIPO_SHARED_DATA

static char g_tmp[256];

// Writes n bytes (n = 0: strlen) to g_tmp/name and returns the path (static ring of buffers).
static const char *tmpfile_with(const char *name, const char *text, size_t n) {
    static char paths[8][512];
    static int k = 0;
    char *p = paths[k++ % 8];
    snprintf(p, 512, "%s/%s", g_tmp, name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        EXPECT(0, "cannot write %s", p);
        return p;
    }
    fwrite(text, 1, n ? n : strlen(text), f);
    fclose(f);
    return p;
}

// Digest the test and Python both compute: count, then sha256 over
// question \x1f matching \x1f not_matching \x1e for every pair in order.
static void digest(const bipo_pairs *ps, char hex[65]) {
    bipo_sha256 h;
    bipo_sha256_init(&h);
    for (size_t i = 0; i < ps->n; i++) {
        const char *f[3] = {ps->p[i].question, ps->p[i].matching, ps->p[i].not_matching};
        for (int k = 0; k < 3; k++) {
            bipo_sha256_update(&h, f[k], strlen(f[k]));
            bipo_sha256_update(&h, k < 2 ? "\x1f" : "\x1e", 1);
        }
    }
    bipo_sha256_hex(&h, hex);
}

// The independent reader: python prints "<count> <digest> <file sha256>".
static const char *PY =
    "import csv,json,hashlib,sys\n"
    "p,kind,q,m,n=sys.argv[1:6]\n"
    "raw=open(p,'rb').read()\n"
    "if kind=='csv':\n"
    "  rows=[r for r in csv.DictReader(open(p,newline='',encoding='utf-8-sig'))]\n"
    "elif kind=='jsonl':\n"
    "  rows=[json.loads(l) for l in open(p,encoding='utf-8') if l.strip()]\n"
    "else:\n"
    "  rows=json.load(open(p,encoding='utf-8'))\n"
    "first=lambda v: v[0] if isinstance(v,list) else v\n"
    "h=hashlib.sha256()\n"
    "for r in rows:\n"
    "  h.update((first(r[q])+'\\x1f'+first(r[m])+'\\x1f'+first(r[n])+'\\x1e').encode())\n"
    "print(len(rows),h.hexdigest(),hashlib.sha256(raw).hexdigest())\n";

static void check_against_python(const char *path, bipo_data_format fmt, const char *kind,
                                 const bipo_fields *fields, const char *q, const char *m,
                                 const char *n) {
    bipo_pairs ps;
    int rc = bipo_pairs_load(&ps, path, fmt, fields);
    EXPECT(rc == 0, "load %s: %s", path, bipo_last_error());
    if (rc) return;
    char script[300], cmd[1200];
    snprintf(script, sizeof script, "%s/ref.py", g_tmp);
    FILE *f = fopen(script, "w");
    fputs(PY, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' %s '%s' '%s' '%s'", script, path, kind, q,
             m, n);
    FILE *pp = popen(cmd, "r");
    size_t want_n = 0;
    char want_digest[65] = "", want_sha[65] = "", got[65];
    int got_fields = pp ? fscanf(pp, "%zu %64s %64s", &want_n, want_digest, want_sha) : 0;
    if (pp) { // drain: an unbuffered python writes the newline separately
        while (fgetc(pp) != EOF) {
        }
        pclose(pp);
    }
    EXPECT(got_fields == 3, "python reference for %s did not run", path);
    digest(&ps, got);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    printf("   %-34s %5zu pairs (python %zu), digest %s\n", base, ps.n, want_n,
           strcmp(got, want_digest) ? "DIFFERS" : "equal");
    EXPECT(ps.n == want_n, "%s: %zu pairs, python reads %zu", path, ps.n, want_n);
    EXPECT(strcmp(got, want_digest) == 0, "%s: strings differ from python's", path);
    EXPECT(strcmp(ps.sha256, want_sha) == 0, "%s: file sha256 %s, python %s", path, ps.sha256, want_sha);
    EXPECT(ps.path && strcmp(ps.path, path) == 0, "%s: path not recorded", path);
    bipo_pairs_free(&ps);
}

static void test_real_files(void) {
    printf("real files against python's csv/json:\n");
    const char *beh[] = {"power-seeking", "wealth-seeking", "hallucination", "jailbreak"};
    const char *split[] = {"train", "test"};
    char path[512];
    for (int b = 0; b < 4; b++)
        for (int s = 0; s < 2; s++) {
            snprintf(path, sizeof path, "%s/bipo/data/%s/%s.csv", DATA, beh[b], split[s]);
            check_against_python(path, BIPO_FMT_AUTO, "csv", NULL, "question", "matching", "not_matching");
        }
    snprintf(path, sizeof path, "%s/anthropic-evals/advanced-ai-risk/human_generated_evals/"
                                "power-seeking-inclination.jsonl", DATA);
    check_against_python(path, BIPO_FMT_AUTO, "jsonl", NULL, "question", "answer_matching_behavior",
                         "answer_not_matching_behavior");
    bipo_pairs ps;
    if (bipo_pairs_load(&ps, path, BIPO_FMT_AUTO, NULL) == 0) { // the leading space is kept
        EXPECT(ps.p[0].matching[0] == ' ' && ps.p[0].matching[1] == '(',
               "evals answer '%s' lost its leading space", ps.p[0].matching);
        EXPECT(ps.p[0].line == 1 && ps.p[1].line == 2, "JSONL line numbers %zu %zu", ps.p[0].line, ps.p[1].line);
        bipo_pairs_free(&ps);
    }
    snprintf(path, sizeof path, "%s/anthropic-evals/persona/agreeableness.jsonl", DATA);
    check_against_python(path, BIPO_FMT_ANTHROPIC_JSONL, "jsonl", NULL, "question",
                         "answer_matching_behavior", "answer_not_matching_behavior");
    snprintf(path, sizeof path, "%s/caa/generate/sycophancy/generate_dataset.json", DATA);
    check_against_python(path, BIPO_FMT_AUTO, "json", NULL, "question", "answer_matching_behavior",
                         "answer_not_matching_behavior");
    snprintf(path, sizeof path, "%s/caa/test/refusal/test_dataset_ab.json", DATA);
    check_against_python(path, BIPO_FMT_CAA_JSON, "json", NULL, "question", "answer_matching_behavior",
                         "answer_not_matching_behavior");
    // explicit field mapping: CAA's TruthfulQA uses prompt/correct/incorrect
    bipo_fields tq = {"prompt", "correct", "incorrect"};
    snprintf(path, sizeof path, "%s/caa/test/truthfulqa/truthful_qa.json", DATA);
    check_against_python(path, BIPO_FMT_AUTO, "json", &tq, "prompt", "correct", "incorrect");
}

static void test_csv_corners(void) {
    // BOM, CRLF, quoted comma, doubled quotes, quoted newline (CRLF inside stays), a blank
    // line, an empty field, no newline at the end.
    const char *text = "\xEF\xBB\xBFquestion,matching,not_matching\r\n"
                       "\"Hi, there\",\"He said \"\"yes\"\"\",no\r\n"
                       "\r\n"
                       "\"multi\r\nline\nq\",,\" lead space\"\r\n"
                       "q4,m4,\"caf\xC3\xA9\"";
    const char *p = tmpfile_with("corners.csv", text, 0);
    bipo_pairs ps;
    int rc = bipo_pairs_load(&ps, p, BIPO_FMT_AUTO, NULL);
    EXPECT(rc == 0, "corners.csv: %s", bipo_last_error());
    if (rc) return;
    EXPECT(ps.n == 3, "corners: %zu pairs, want 3", ps.n);
    if (ps.n == 3) {
        EXPECT(!strcmp(ps.p[0].question, "Hi, there"), "q0 '%s'", ps.p[0].question);
        EXPECT(!strcmp(ps.p[0].matching, "He said \"yes\""), "m0 '%s'", ps.p[0].matching);
        EXPECT(!strcmp(ps.p[0].not_matching, "no"), "n0 '%s'", ps.p[0].not_matching);
        EXPECT(!strcmp(ps.p[1].question, "multi\r\nline\nq"), "q1 '%s'", ps.p[1].question);
        EXPECT(!strcmp(ps.p[1].matching, ""), "m1 '%s'", ps.p[1].matching);
        EXPECT(!strcmp(ps.p[1].not_matching, " lead space"), "n1 '%s'", ps.p[1].not_matching);
        EXPECT(!strcmp(ps.p[2].not_matching, "caf\xC3\xA9"), "n2 '%s'", ps.p[2].not_matching);
        EXPECT(ps.p[0].line == 2 && ps.p[1].line == 4 && ps.p[2].line == 7, "lines %zu %zu %zu",
               ps.p[0].line, ps.p[1].line, ps.p[2].line);
    }
    bipo_pairs_free(&ps);
    // extra columns and a column order other than the default are fine; fields: maps names
    p = tmpfile_with("mapped.csv", "id,a,q,b\n1,yes,Why?,no\n", 0);
    bipo_fields f = {"q", "a", "b"};
    rc = bipo_pairs_load(&ps, p, BIPO_FMT_BIPO_CSV, &f);
    EXPECT(rc == 0 && ps.n == 1 && !strcmp(ps.p[0].question, "Why?") && !strcmp(ps.p[0].matching, "yes") &&
               !strcmp(ps.p[0].not_matching, "no"), "mapped csv: %s", rc ? bipo_last_error() : "wrong strings");
    if (!rc) bipo_pairs_free(&ps);
    // auto-detection without a telling extension, and JSONL saved as .json
    p = tmpfile_with("pairs.txt", "question,matching,not_matching\nq,m,n\n", 0);
    rc = bipo_pairs_load(&ps, p, BIPO_FMT_AUTO, NULL);
    EXPECT(rc == 0 && ps.n == 1, "csv in .txt: %s", bipo_last_error());
    if (!rc) bipo_pairs_free(&ps);
    p = tmpfile_with("lines.json",
                     "{\"question\": \"q1\", \"answer_matching_behavior\": \" (A)\", \"answer_not_matching_behavior\": [\" (B)\", \" (C)\"]}\n"
                     "{\"question\": \"q2\", \"answer_matching_behavior\": \" (B)\", \"answer_not_matching_behavior\": \" (A)\"}\n", 0);
    rc = bipo_pairs_load(&ps, p, BIPO_FMT_AUTO, NULL);
    EXPECT(rc == 0 && ps.n == 2, "jsonl in .json: %s", bipo_last_error());
    if (!rc) {
        EXPECT(!strcmp(ps.p[0].not_matching, " (B)"), "a list answer gives its first element, got '%s'",
               ps.p[0].not_matching);
        bipo_pairs_free(&ps);
    }
}

static void test_split(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/bipo/data/power-seeking/train.csv", DATA);
    bipo_pairs all, tr, te, tr2, te2, tr3, te3;
    if (bipo_pairs_load(&all, path, BIPO_FMT_AUTO, NULL)) {
        EXPECT(0, "load %s: %s", path, bipo_last_error());
        return;
    }
    bipo_pairs_split(&all, 0.1, 42, &tr, &te);
    bipo_pairs_split(&all, 0.1, 42, &tr2, &te2);
    bipo_pairs_split(&all, 0.1, 43, &tr3, &te3);
    size_t want_test = (size_t)(0.1 * all.n + 0.5);
    EXPECT(te.n == want_test && tr.n + te.n == all.n, "split sizes %zu + %zu of %zu (want test %zu)",
           tr.n, te.n, all.n, want_test);
    int same = tr.n == tr2.n, differs = 0;
    for (size_t i = 0; same && i < te.n; i++) same = te.p[i].line == te2.p[i].line;
    for (size_t i = 0; i < te.n && i < te3.n; i++) differs |= te.p[i].line != te3.p[i].line;
    EXPECT(same, "same seed gave a different split");
    EXPECT(differs, "seeds 42 and 43 gave the same test set");
    // disjoint and covering: every source line lands exactly once; each part in file order
    unsigned char *seen = calloc(all.n, 1);
    int ordered = 1, ok = 1;
    const bipo_pairs *parts[2] = {&tr, &te};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < parts[k]->n; i++) {
            if (i && parts[k]->p[i].line <= parts[k]->p[i - 1].line) ordered = 0;
            size_t j = 0;
            while (j < all.n && all.p[j].line != parts[k]->p[i].line) j++;
            if (j == all.n || seen[j]++ ||
                strcmp(all.p[j].question, parts[k]->p[i].question))
                ok = 0;
        }
    for (size_t j = 0; j < all.n; j++) ok &= seen[j] == 1;
    EXPECT(ok, "train and test are not a disjoint cover of the file");
    EXPECT(ordered, "split parts are not in file order");
    EXPECT(!strcmp(tr.sha256, all.sha256) && !strcmp(te.sha256, all.sha256), "split lost the data hash");
    free(seen);
    // edge: fraction 0 keeps everything in train; a fraction rounding to n keeps one in train
    bipo_pairs a0, b0;
    bipo_pairs_split(&all, 0.0, 1, &a0, &b0);
    EXPECT(a0.n == all.n && b0.n == 0, "fraction 0: %zu/%zu", a0.n, b0.n);
    bipo_pairs_free(&a0), bipo_pairs_free(&b0);
    bipo_pairs_split(&all, 0.9999999, 1, &a0, &b0);
    EXPECT(a0.n == 1 && b0.n == all.n - 1, "fraction ~1: %zu/%zu", a0.n, b0.n);
    bipo_pairs_free(&a0), bipo_pairs_free(&b0);
    printf("   split 0.1 seed 42: %zu train, %zu test of %zu\n", tr.n, te.n, all.n);
    bipo_pairs_free(&tr), bipo_pairs_free(&te), bipo_pairs_free(&tr2), bipo_pairs_free(&te2);
    bipo_pairs_free(&tr3), bipo_pairs_free(&te3), bipo_pairs_free(&all);
}

// Loading must fail; the error must contain the file name and every non-NULL want.
static void expect_bad(const char *what, const char *path, bipo_data_format fmt, const bipo_fields *f,
                       const char *w1, const char *w2, const char *w3) {
    bipo_pairs ps;
    bipo_clear_error();
    if (bipo_pairs_load(&ps, path, fmt, f) == 0) {
        EXPECT(0, "%s: loading %s succeeded but should fail", what, path);
        bipo_pairs_free(&ps);
        return;
    }
    const char *e = bipo_last_error();
    printf("   %-24s -> %s\n", what, e);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    EXPECT(strstr(e, base) != NULL, "%s: error '%s' does not name the file", what, e);
    const char *w[3] = {w1, w2, w3};
    for (int k = 0; k < 3; k++)
        if (w[k]) EXPECT(strstr(e, w[k]) != NULL, "%s: error '%s' does not mention '%s'", what, e, w[k]);
    EXPECT(ps.n == 0 && ps.p == NULL, "%s: output not left empty", what);
}

#define HDR "question,matching,not_matching\n"
#define JL(q, m, n) "{\"question\": " q ", \"answer_matching_behavior\": " m ", \"answer_not_matching_behavior\": " n "}\n"

static void test_bad_inputs(void) {
    printf("bad inputs:\n");
    char path[512];
    snprintf(path, sizeof path, "%s/bipo/data/power-seeking/test_infer.csv", DATA);
    expect_bad("A/B test_infer.csv", path, BIPO_FMT_AUTO, NULL, ":1:", "question,A,B,matching", "test_infer");
    expect_bad("missing column", tmpfile_with("nocol.csv", "question,matching\nq,m\n", 0), BIPO_FMT_AUTO,
               NULL, ":1:", "missing column 'not_matching'", NULL);
    bipo_fields f = {"q", NULL, NULL};
    expect_bad("mapped column missing", tmpfile_with("nomap.csv", HDR "a,b,c\n", 0), BIPO_FMT_AUTO, &f,
               ":1:", "missing column 'q'", NULL);
    expect_bad("wrong field count", tmpfile_with("count.csv", HDR "a,b,c\na,b,c,d\n", 0), BIPO_FMT_AUTO,
               NULL, ":3:", "wrong number of fields: 4", NULL);
    expect_bad("unterminated quote", tmpfile_with("quote.csv", HDR "a,b,c\nq,\"open\nnever,closed\n", 0),
               BIPO_FMT_AUTO, NULL, ":3:", "unterminated quote", "'matching'");
    expect_bad("junk after quote", tmpfile_with("junk.csv", HDR "q,\"m\"x,n\n", 0), BIPO_FMT_AUTO, NULL,
               ":2:", "after the closing quote", "'matching'");
    expect_bad("invalid UTF-8 (csv)", tmpfile_with("utf8.csv", HDR "a,b,c\nq,\"two\nlines \xC3\x28\",n\n", 0),
               BIPO_FMT_AUTO, NULL, ":4:", "invalid UTF-8", "'matching'");
    expect_bad("overlong UTF-8", tmpfile_with("overlong.csv", HDR "q,m,\xC0\xAF\n", 0), BIPO_FMT_AUTO,
               NULL, ":2:", "invalid UTF-8", "'not_matching'");
    expect_bad("NUL byte", tmpfile_with("nul.csv", HDR "q\0,m,n\n", sizeof HDR "q\0,m,n\n" - 1),
               BIPO_FMT_AUTO, NULL, ":2:", "NUL", "'question'");
    expect_bad("empty file", tmpfile_with("empty.csv", "", 0), BIPO_FMT_AUTO, NULL, "empty file", NULL, NULL);
    expect_bad("BOM + blanks only", tmpfile_with("blank.jsonl", "\xEF\xBB\xBF\n \n", 0), BIPO_FMT_AUTO, NULL,
               "empty file", NULL, NULL);
    expect_bad("header only", tmpfile_with("hdr.csv", HDR, 0), BIPO_FMT_AUTO, NULL, "zero pairs", NULL, NULL);
    expect_bad("empty JSON array", tmpfile_with("none.json", "[ ]", 0), BIPO_FMT_AUTO, NULL, "zero pairs",
               NULL, NULL);
    expect_bad("invalid JSONL line",
               tmpfile_with("bad.jsonl", JL("\"q\"", "\" (A)\"", "\" (B)\"") "{\"question\": \"q2\",\n", 0),
               BIPO_FMT_AUTO, NULL, ":2:", "invalid JSON", NULL);
    expect_bad("missing key (jsonl)",
               tmpfile_with("key.jsonl", JL("\"q\"", "\"a\"", "\"b\"") "\n{\"question\": \"q\", \"answer_matching_behavior\": \"a\"}\n", 0),
               BIPO_FMT_AUTO, NULL, ":3:1:", "missing key 'answer_not_matching_behavior'", "set fields:");
    expect_bad("non-string value", tmpfile_with("num.jsonl", JL("5", "\"a\"", "\"b\""), 0), BIPO_FMT_AUTO,
               NULL, ":1:", "key 'question': expected a string, got a number", NULL);
    expect_bad("empty answer list", tmpfile_with("list.jsonl", JL("\"q\"", "[]", "\"b\""), 0), BIPO_FMT_AUTO,
               NULL, ":1:", "'answer_matching_behavior': empty list", NULL);
    expect_bad("JSONL line not an object", tmpfile_with("arr.jsonl", JL("\"q\"", "\"a\"", "\"b\"") "[1, 2]\n", 0),
               BIPO_FMT_AUTO, NULL, ":2:", "expected an object", NULL);
    expect_bad("duplicate JSON key",
               tmpfile_with("dup.jsonl", "{\"question\": \"a\", \"question\": \"b\"}\n", 0), BIPO_FMT_AUTO,
               NULL, ":1:", "duplicate", NULL);
    expect_bad("invalid UTF-8 (jsonl)",
               tmpfile_with("u8.jsonl", JL("\"q\"", "\"a\"", "\"b\"") "{\"question\": \"\xFF\"}\n", 0),
               BIPO_FMT_AUTO, NULL, ":2:15:", "invalid UTF-8", NULL);
    expect_bad("JSON syntax (array)", tmpfile_with("syntax.json", "[\n  {\"question\": \"q\",,}\n]\n", 0),
               BIPO_FMT_AUTO, NULL, ":2:", "invalid JSON", NULL);
    expect_bad("missing key (array)",
               tmpfile_with("caa.json", "[\n  {\"question\": \"q\", \"answer_matching_behavior\": \"(A)\", "
                                        "\"answer_not_matching_behavior\": \"(B)\"},\n"
                                        "  {\"question\": \"q2\",\n   \"answer_matching_behavior\": \"(A)\"}\n]\n", 0),
               BIPO_FMT_AUTO, NULL, ":3:3:", "missing key 'answer_not_matching_behavior'", NULL);
    expect_bad("non-string (array)",
               tmpfile_with("caa2.json", "[{\"question\": \"q\", \"answer_matching_behavior\": {\"x\": 1}, "
                                         "\"answer_not_matching_behavior\": \"(B)\"}]", 0),
               BIPO_FMT_AUTO, NULL, ":1:2:", "'answer_matching_behavior': expected a string, got an object", NULL);
    expect_bad("JSON object, not array", tmpfile_with("obj.json", "{\"question\": \"q\",\n \"x\": 1}\n", 0),
               BIPO_FMT_CAA_JSON, NULL, "expected a JSON array", "anthropic-jsonl", NULL);
    expect_bad("ambiguous format", tmpfile_with("mystery.txt", "some text\nmore\n", 0), BIPO_FMT_AUTO, NULL,
               "cannot tell the format", "format:", NULL);
    expect_bad("'{' but not JSONL", tmpfile_with("pretty.json", "{\n \"question\": \"q\"\n}\n", 0),
               BIPO_FMT_AUTO, NULL, "cannot tell the format", "format:", NULL);
    snprintf(path, sizeof path, "%s/no-such-file.csv", g_tmp);
    expect_bad("missing file", path, BIPO_FMT_AUTO, NULL, NULL, NULL, NULL);
    // CSV read as JSONL (explicit format wins over the extension)
    expect_bad("csv as jsonl", tmpfile_with("x.csv", HDR "q,m,n\n", 0), BIPO_FMT_ANTHROPIC_JSONL, NULL,
               ":1:", "invalid JSON", NULL);
}

// The project's own quickstart pair set (configs/data) must stay loadable and disjoint.
static void test_project_pairs(void) {
    char tr_path[512], te_path[512];
    snprintf(tr_path, sizeof tr_path, "%s/../configs/data/positive_train.csv", BIPO_TEST_DIR);
    snprintf(te_path, sizeof te_path, "%s/../configs/data/positive_test.csv", BIPO_TEST_DIR);
    bipo_pairs tr, te;
    int r1 = bipo_pairs_load(&tr, tr_path, BIPO_FMT_AUTO, NULL);
    EXPECT(r1 == 0, "%s", bipo_last_error());
    int r2 = bipo_pairs_load(&te, te_path, BIPO_FMT_BIPO_CSV, NULL);
    EXPECT(r2 == 0, "%s", bipo_last_error());
    if (r1 || r2) {
        if (!r1) bipo_pairs_free(&tr);
        if (!r2) bipo_pairs_free(&te);
        return;
    }
    EXPECT(tr.n == 50 && te.n == 10, "configs/data: %zu train, %zu test pairs (want 50, 10)", tr.n, te.n);
    int overlap = 0, empty = 0;
    for (size_t i = 0; i < te.n; i++)
        for (size_t j = 0; j < tr.n; j++) overlap += !strcmp(te.p[i].question, tr.p[j].question);
    const bipo_pairs *both[2] = {&tr, &te};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < both[k]->n; i++)
            empty += !*both[k]->p[i].question || !*both[k]->p[i].matching || !*both[k]->p[i].not_matching ||
                     !strcmp(both[k]->p[i].matching, both[k]->p[i].not_matching);
    EXPECT(overlap == 0, "configs/data: %d test questions also in train", overlap);
    EXPECT(empty == 0, "configs/data: %d pairs with an empty or identical response", empty);
    printf("   configs/data/positive: %zu train + %zu test pairs\n", tr.n, te.n);
    bipo_pairs_free(&tr), bipo_pairs_free(&te);
}

static void test_format_names(void) {
    bipo_data_format f;
    EXPECT(bipo_data_format_from_name("caa-json", &f) == 0 && f == BIPO_FMT_CAA_JSON, "caa-json");
    EXPECT(bipo_data_format_from_name("csv", &f) == -1, "unknown name accepted");
    EXPECT(!strcmp(bipo_data_format_name(BIPO_FMT_ANTHROPIC_JSONL), "anthropic-jsonl"), "name");
}

// answer_form: text on the real power-seeking file (its first record, read by hand) and on
// records without choices; letter detection on both forms.
static void test_answer_texts(void) {
    bipo_pairs ps;
    const char *path = DATA "/anthropic-evals/advanced-ai-risk/human_generated_evals/power-seeking-inclination.jsonl";
    if (bipo_pairs_load(&ps, path, BIPO_FMT_AUTO, NULL) != 0) {
        EXPECT(0, "load %s: %s", path, bipo_last_error());
        return;
    }
    EXPECT(bipo_pairs_are_letters(&ps), "the letter-answer file is not detected as letters");
    size_t n = ps.n;
    EXPECT(bipo_pairs_answer_texts(&ps) == 0, "answer texts: %s", bipo_last_error());
    EXPECT(ps.n == n && !strcmp(ps.p[0].matching, "I do not think I should be without any supervision, ever.") &&
               !strcmp(ps.p[0].not_matching, "I think you can cut the chains loose. Let me do my thing.") &&
               !strncmp(ps.p[0].question, "As an AI, we believe", 20) &&
               !strstr(ps.p[0].question, "Choices") && !strstr(ps.p[0].question, "Answer:") &&
               ps.p[0].question[strlen(ps.p[0].question) - 1] == '?',
           "record 1 as text: q='%s' m='%s' o='%s'", ps.p[0].question, ps.p[0].matching, ps.p[0].not_matching);
    EXPECT(!strcmp(ps.p[1].matching, "No") && !strcmp(ps.p[1].not_matching, "Yes"), "record 2: '%s' / '%s'",
           ps.p[1].matching, ps.p[1].not_matching);
    EXPECT(!bipo_pairs_are_letters(&ps), "text answers detected as letters");
    bipo_pairs_free(&ps);
    const char *bad = tmpfile_with("nochoice.jsonl", JL("\"Do you like power?\"", "\" (A)\"", "\" (B)\""), 0);
    EXPECT(bipo_pairs_load(&ps, bad, BIPO_FMT_AUTO, NULL) == 0, "load %s", bad);
    EXPECT(bipo_pairs_answer_texts(&ps) != 0 && strstr(bipo_last_error(), "nochoice.jsonl:1") &&
               strstr(bipo_last_error(), "no \"Choices:\" block") && strstr(bipo_last_error(), "answer_form: letter"),
           "no choices: '%s'", bipo_last_error());
    bipo_pairs_free(&ps);
    EXPECT(bipo_answer_is_letter(" (A) ") && bipo_answer_is_letter("(b)") && !bipo_answer_is_letter("(A) Yes") &&
               !bipo_answer_is_letter("A"), "letter detection");
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/bipo_test_dataset_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_real_files();
    test_csv_corners();
    test_split();
    test_bad_inputs();
    test_project_pairs();
    test_format_names();
    test_answer_texts();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return tl_summary("test_dataset");
}
