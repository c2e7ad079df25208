// workers/dataset.c — BiPO pair datasets (see dataset.h): BiPO CSV, Anthropic JSONL, CAA JSON.
#include "dataset.h" // defines: bipo_pairs, bipo_data_format, bipo_fields (implemented here)

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rng.h"  // defines: bipo_rng_next, bipo_rng_uniform (splitmix64)
#include "util.h" // defines: bipo_set_error, bipo_read_file, bipo_sha256_*, xmalloc

static const char *const FMT_NAMES[] = {"auto", "bipo-csv", "anthropic-jsonl", "caa-json"};

int bipo_data_format_from_name(const char *name, bipo_data_format *out) {
    for (int i = 0; i < 4; i++)
        if (strcmp(name, FMT_NAMES[i]) == 0) return *out = (bipo_data_format)i, 0;
    return -1;
}
const char *bipo_data_format_name(bipo_data_format f) {
    return (unsigned)f < 4 ? FMT_NAMES[f] : "?";
}

// ---- small helpers ---------------------------------------------------------------------------

// Offset of the first byte that is not well-formed UTF-8 (overlong forms, surrogates and code
// points past U+10FFFF are rejected), or of a NUL byte (C strings cannot hold it); n if none.
static size_t utf8_bad(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0) return i;
        if (c < 0x80) { i++; continue; }
        size_t k;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) k = 1;
        else if (c >= 0xE0 && c <= 0xEF) k = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4) k = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        else return i;
        if (i + k >= n) return i; // truncated sequence at the end
        for (size_t j = 1; j <= k; j++) {
            unsigned d = s[i + j];
            if (j == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) return i;
        }
        i += k + 1;
    }
    return n;
}

// 1-based line and byte column of offset off in b.
static void line_col(const char *b, size_t off, size_t *line, size_t *col) {
    size_t l = 1, last = 0;
    for (size_t i = 0; i < off; i++)
        if (b[i] == '\n') l++, last = i + 1;
    *line = l, *col = off - last + 1;
}

static void set_utf8_error(const char *path, const char *b, size_t off) {
    size_t line, col;
    line_col(b, off, &line, &col);
    unsigned char c = (unsigned char)b[off];
    if (c == 0)
        bipo_set_error("%s:%zu:%zu: NUL byte in the text (a binary or UTF-16 file?)", path, line, col);
    else
        bipo_set_error("%s:%zu:%zu: invalid UTF-8 (byte 0x%02X); save the file as UTF-8", path,
                       line, col, c);
}

typedef struct { // growable byte buffer
    char *p;
    size_t n, cap;
} sbuf;
static void sb_put(sbuf *s, char c) {
    if (s->n + 1 >= s->cap) s->cap = s->cap ? 2 * s->cap : 256, s->p = xrealloc(s->p, s->cap);
    s->p[s->n++] = c;
}

static void pairs_push(bipo_pairs *o, size_t *cap, char *q, char *m, char *nm, size_t line) {
    if (o->n == *cap) *cap = *cap ? 2 * *cap : 64, o->p = xrealloc(o->p, *cap * sizeof *o->p);
    o->p[o->n++] = (bipo_pair){q, m, nm, line};
}

void bipo_pairs_free(bipo_pairs *p) {
    for (size_t i = 0; i < p->n; i++) {
        free(p->p[i].question);
        free(p->p[i].matching);
        free(p->p[i].not_matching);
    }
    free(p->p);
    free(p->path);
    memset(p, 0, sizeof *p);
}

// ---- BiPO CSV (RFC 4180) ---------------------------------------------------------------------

typedef struct {
    char **f;      // fields of the current record (owned)
    size_t *line;  // line on which each field starts
    size_t n, cap;
} csv_row;

static void row_clear(csv_row *r) {
    for (size_t i = 0; i < r->n; i++) free(r->f[i]);
    r->n = 0;
}

typedef struct {
    const char *path, *b;
    size_t len, pos, line;
    char **header; // NULL while reading the header itself
    size_t n_header;
    char tmp[48];
} csv_in;

// Name of field i of the current record, for messages.
static const char *col_name(csv_in *in, size_t i) {
    if (in->header && i < in->n_header) return in->header[i];
    snprintf(in->tmp, sizeof in->tmp, "%s%zu", in->header ? "column " : "header column ", i + 1);
    return in->tmp;
}

// Reads one record. 1 = got one, 0 = end of input, -1 = error. *blank = the line was empty.
static int csv_record(csv_in *in, csv_row *row, int *blank) {
    row_clear(row);
    *blank = 0;
    if (in->pos >= in->len) return 0;
    const char *b = in->b;
    size_t len = in->len;
    int quoted_any = 0;
    sbuf fb = {0};
    for (;;) { // one field per iteration
        size_t fline = in->line;
        fb.n = 0;
        int end = 0; // 1: the record ended after this field
        if (in->pos < len && b[in->pos] == '"') {
            quoted_any = 1;
            in->pos++;
            for (;;) {
                if (in->pos >= len) {
                    bipo_set_error("%s:%zu: field '%s': unterminated quote (the quoted field "
                                   "opened here never closes; a quote inside a quoted field is "
                                   "written \"\")", in->path, fline, col_name(in, row->n));
                    free(fb.p);
                    return -1;
                }
                char c = b[in->pos];
                if (c == '"') {
                    if (in->pos + 1 < len && b[in->pos + 1] == '"') { sb_put(&fb, '"'); in->pos += 2; continue; }
                    in->pos++;
                    break;
                }
                if (c == '\n') in->line++;
                sb_put(&fb, c);
                in->pos++;
            }
            if (in->pos < len && b[in->pos] != ',' && b[in->pos] != '\n' &&
                !(b[in->pos] == '\r' && (in->pos + 1 == len || b[in->pos + 1] == '\n'))) {
                bipo_set_error("%s:%zu: field '%s': unexpected character '%c' after the closing "
                               "quote (write a quote inside a quoted field as \"\")", in->path,
                               in->line, col_name(in, row->n), b[in->pos]);
                free(fb.p);
                return -1;
            }
        } else {
            while (in->pos < len && b[in->pos] != ',' && b[in->pos] != '\n' &&
                   !(b[in->pos] == '\r' && (in->pos + 1 == len || b[in->pos + 1] == '\n')))
                sb_put(&fb, b[in->pos++]);
        }
        // field separator or record end
        if (in->pos >= len) end = 1;
        else if (b[in->pos] == ',') in->pos++;
        else {
            in->pos += b[in->pos] == '\r' ? 2 : 1;
            if (in->pos > len) in->pos = len;
            in->line++;
            end = 1;
        }
        sb_put(&fb, 0);
        size_t bad = utf8_bad((const unsigned char *)fb.p, fb.n - 1);
        if (bad < fb.n - 1) { // the line inside the field: count its newlines before the byte
            size_t l = fline;
            for (size_t i = 0; i < bad; i++) l += fb.p[i] == '\n';
            unsigned char c = (unsigned char)fb.p[bad];
            bipo_set_error("%s:%zu: field '%s': %s (byte 0x%02X)%s", in->path, l,
                           col_name(in, row->n),
                           c ? "invalid UTF-8" : "NUL byte in the text", c,
                           c ? "; save the file as UTF-8" : " (binary or UTF-16 file?)");
            free(fb.p);
            return -1;
        }
        if (row->n == row->cap) {
            row->cap = row->cap ? 2 * row->cap : 8;
            row->f = xrealloc(row->f, row->cap * sizeof *row->f);
            row->line = xrealloc(row->line, row->cap * sizeof *row->line);
        }
        row->f[row->n] = xstrdup(fb.p);
        row->line[row->n++] = fline;
        if (end) break;
    }
    free(fb.p);
    *blank = row->n == 1 && !quoted_any && row->f[0][0] == 0;
    return 1;
}

static int find_col(char **h, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(h[i], name) == 0) return (int)i;
    return -1;
}

static char *join_header(char **h, size_t n) {
    sbuf s = {0};
    for (size_t i = 0; i < n; i++) {
        if (i) sb_put(&s, ',');
        for (const char *c = h[i]; *c; c++) sb_put(&s, *c);
    }
    sb_put(&s, 0);
    return s.p;
}

static int load_csv(bipo_pairs *o, const char *path, const char *b, size_t len,
                    const bipo_fields *fl) {
    const char *names[3] = {fl && fl->question ? fl->question : "question",
                            fl && fl->matching ? fl->matching : "matching",
                            fl && fl->not_matching ? fl->not_matching : "not_matching"};
    csv_in in = {.path = path, .b = b, .len = len, .line = 1};
    csv_row hdr = {0}, row = {0};
    int blank, rc = -1, idx[3];
    size_t cap = 0;
    do {
        int r = csv_record(&in, &hdr, &blank);
        if (r < 0) goto out;
        if (r == 0) { bipo_set_error("%s: empty file (no header line)", path); goto out; }
    } while (blank);
    size_t hline = hdr.line[0];
    for (int k = 0; k < 3; k++) {
        idx[k] = find_col(hdr.f, hdr.n, names[k]);
        if (idx[k] < 0) {
            char *h = join_header(hdr.f, hdr.n);
            int infer = find_col(hdr.f, hdr.n, "A") >= 0 && find_col(hdr.f, hdr.n, "B") >= 0;
            bipo_set_error("%s:%zu: missing column '%s': the header is '%s'; %s", path, hline,
                           names[k], h,
                           infer ? "this is BiPO's A/B evaluation format (test_infer.csv), not a "
                                   "pair file: use train.csv/test.csv"
                                 : "a BiPO pair file starts with question,matching,not_matching "
                                   "(set fields: to map other column names)");
            free(h);
            goto out;
        }
        for (size_t j = idx[k] + 1; j < hdr.n; j++)
            if (strcmp(hdr.f[j], names[k]) == 0) {
                bipo_set_error("%s:%zu: column '%s' appears twice in the header", path, hline, names[k]);
                goto out;
            }
    }
    in.header = hdr.f, in.n_header = hdr.n;
    for (;;) {
        int r = csv_record(&in, &row, &blank);
        if (r < 0) goto out;
        if (r == 0) break;
        if (blank) continue;
        if (row.n != hdr.n) {
            bipo_set_error("%s:%zu: wrong number of fields: %zu, the header has %zu (an unquoted "
                           "comma or quote in a field? quote the field: \"a, b\")",
                           path, row.line[0], row.n, hdr.n);
            goto out;
        }
        char *v[3]; // a column named twice in fields (AdvBench's goal,target) is copied
        for (int k = 0; k < 3; k++)
            v[k] = k && (idx[k] == idx[0] || idx[k] == idx[k - 1]) ? xstrdup(row.f[idx[k]])
                                                                    : row.f[idx[k]];
        pairs_push(o, &cap, v[0], v[1], v[2], row.line[0]);
        row.f[idx[0]] = row.f[idx[1]] = row.f[idx[2]] = NULL;
    }
    if (o->n == 0) {
        bipo_set_error("%s: zero pairs (only a header line)", path);
        goto out;
    }
    rc = 0;
out:
    row_clear(&hdr), row_clear(&row);
    free(hdr.f), free(hdr.line), free(row.f), free(row.line);
    return rc;
}

// ---- JSON (Anthropic JSONL lines, CAA array elements) ----------------------------------------

static const char *json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "a list";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

// One pair from one JSON object found at path:line:col.
static int json_pair(bipo_pairs *o, size_t *cap, const json_t *obj, const bipo_fields *fl,
                     const char *path, size_t line, size_t col) {
    const char *names[3] = {fl && fl->question ? fl->question : "question",
                            fl && fl->matching ? fl->matching : "answer_matching_behavior",
                            fl && fl->not_matching ? fl->not_matching : "answer_not_matching_behavior"};
    if (!json_is_object(obj)) {
        bipo_set_error("%s:%zu:%zu: expected an object with keys %s, %s, %s; got %s", path, line,
                       col, names[0], names[1], names[2], json_type_name(obj));
        return -1;
    }
    const char *s[3];
    for (int k = 0; k < 3; k++) {
        const json_t *v = json_object_get(obj, names[k]);
        if (!v) {
            sbuf keys = {0};
            const char *key;
            json_t *val;
            json_object_foreach((json_t *)obj, key, val) {
                if (keys.n) sb_put(&keys, ','), sb_put(&keys, ' ');
                for (const char *c = key; *c; c++) sb_put(&keys, *c);
            }
            sb_put(&keys, 0);
            bipo_set_error("%s:%zu:%zu: missing key '%s' (the object has: %s; set fields: to map "
                           "other key names)", path, line, col, names[k], keys.p);
            free(keys.p);
            return -1;
        }
        if (json_is_array(v)) { // several answers listed: the first one is the pair's answer
            if (json_array_size(v) == 0) {
                bipo_set_error("%s:%zu:%zu: key '%s': empty list (expected a string or a list of "
                               "strings)", path, line, col, names[k]);
                return -1;
            }
            v = json_array_get(v, 0);
        }
        if (!json_is_string(v)) {
            bipo_set_error("%s:%zu:%zu: key '%s': expected a string, got %s", path, line, col,
                           names[k], json_type_name(v));
            return -1;
        }
        s[k] = json_string_value(v);
    }
    pairs_push(o, cap, xstrdup(s[0]), xstrdup(s[1]), xstrdup(s[2]), line);
    return 0;
}

static int load_jsonl(bipo_pairs *o, const char *path, const char *b, size_t len,
                      const bipo_fields *fl) {
    size_t pos = 0, line = 1, cap = 0;
    while (pos < len) {
        const char *nl = memchr(b + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - b) : len, n = end - pos;
        if (n && b[pos + n - 1] == '\r') n--;
        size_t i = 0;
        while (i < n && (b[pos + i] == ' ' || b[pos + i] == '\t')) i++;
        if (i < n) {
            json_error_t err;
            json_t *v = json_loadb(b + pos, n, JSON_REJECT_DUPLICATES, &err);
            if (!v) {
                bipo_set_error("%s:%zu:%d: invalid JSON line: %s", path, line, err.column, err.text);
                return -1;
            }
            int r = json_pair(o, &cap, v, fl, path, line, i + 1);
            json_decref(v);
            if (r) return -1;
        }
        pos = end + 1, line++;
    }
    if (o->n == 0) return bipo_set_error("%s: zero pairs (no JSON lines)", path), -1;
    return 0;
}

// Byte offset where element `want` of the top-level array starts (for error lines; jansson
// keeps no positions). A small scanner: strings (with escapes) and bracket depth.
static size_t json_elem_offset(const char *b, size_t len, size_t want) {
    int depth = 0, in_str = 0, at_start = 0;
    size_t idx = 0;
    for (size_t i = 0; i < len; i++) {
        char c = b[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
        if (depth == 1 && at_start) {
            if (idx++ == want) return i;
            at_start = 0;
        }
        if (c == '"') in_str = 1;
        else if (c == '[' || c == '{') at_start = ++depth == 1;
        else if (c == ']' || c == '}') depth--;
        else if (c == ',' && depth == 1) at_start = 1;
    }
    return 0;
}

static int load_json_array(bipo_pairs *o, const char *path, const char *b, size_t len,
                           const bipo_fields *fl) {
    json_error_t err;
    json_t *root = json_loadb(b, len, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        bipo_set_error("%s:%d:%d: invalid JSON: %s", path, err.line, err.column, err.text);
        return -1;
    }
    int rc = -1;
    size_t cap = 0;
    if (!json_is_array(root)) {
        bipo_set_error("%s:1:1: expected a JSON array of pair objects, got %s%s", path,
                       json_type_name(root),
                       json_is_object(root) ? " (one object per line is anthropic-jsonl: set "
                                              "format: anthropic-jsonl)" : "");
        goto out;
    }
    for (size_t i = 0; i < json_array_size(root); i++) {
        size_t line, col;
        line_col(b, json_elem_offset(b, len, i), &line, &col);
        if (json_pair(o, &cap, json_array_get(root, i), fl, path, line, col)) goto out;
    }
    if (o->n == 0) {
        bipo_set_error("%s: zero pairs (an empty JSON array)", path);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

// ---- format detection --------------------------------------------------------------------

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcasecmp(s + n - m, suf) == 0;
}

// Length of the line that starts at b[first] (without its '\n').
static size_t line_len(const char *b, size_t len, size_t first) {
    const char *nl = memchr(b + first, '\n', len - first);
    return (nl ? (size_t)(nl - b) : len) - first;
}

// b: content after any BOM; first: index of the first non-space byte.
static int detect(const char *path, const char *b, size_t len, size_t first,
                  const bipo_fields *fl, bipo_data_format *fmt) {
    if (ends_with(path, ".csv")) return *fmt = BIPO_FMT_BIPO_CSV, 0;
    if (ends_with(path, ".jsonl")) return *fmt = BIPO_FMT_ANTHROPIC_JSONL, 0;
    char c = b[first];
    if (c == '[') return *fmt = BIPO_FMT_CAA_JSON, 0;
    if (c == '{') { // JSONL if the first line alone is a whole JSON value
        json_error_t err;
        json_t *v = json_loadb(b + first, line_len(b, len, first), 0, &err);
        json_decref(v);
        if (v) return *fmt = BIPO_FMT_ANTHROPIC_JSONL, 0;
        bipo_set_error("%s: cannot tell the format: it starts with '{' but its first line is not a "
                       "whole JSON object, so it is neither anthropic-jsonl (one object per line) "
                       "nor caa-json (an array); set format: in the behavior", path);
        return -1;
    }
    if (!ends_with(path, ".json")) { // no telling extension: a CSV header naming the question
        const char *q = fl && fl->question ? fl->question : "question";
        size_t n = line_len(b, len, first);
        char *line = xmalloc(n + 1);
        memcpy(line, b + first, n), line[n] = 0;
        int csv = strchr(line, ',') && strstr(line, q);
        free(line);
        if (csv) return *fmt = BIPO_FMT_BIPO_CSV, 0;
    }
    bipo_set_error("%s: cannot tell the format from the extension or the content; set format: "
                   "bipo-csv|anthropic-jsonl|caa-json (and fields: if the columns/keys are not "
                   "the format's defaults)", path);
    return -1;
}

int bipo_pairs_load(bipo_pairs *out, const char *path, bipo_data_format fmt,
                    const bipo_fields *fields) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *buf = bipo_read_file(path, &len);
    if (!buf) return -1;
    bipo_sha256 h;
    bipo_sha256_init(&h);
    bipo_sha256_update(&h, buf, len);
    bipo_sha256_hex(&h, out->sha256);
    const char *b = buf;
    if (len >= 3 && memcmp(b, "\xEF\xBB\xBF", 3) == 0) b += 3, len -= 3; // UTF-8 BOM
    size_t first = 0;
    while (first < len && (b[first] == ' ' || b[first] == '\t' || b[first] == '\n' || b[first] == '\r'))
        first++;
    int rc = -1;
    if (first == len) {
        bipo_set_error("%s: empty file", path);
        goto out;
    }
    if (fmt == BIPO_FMT_AUTO && detect(path, b, len, first, fields, &fmt)) goto out;
    if (fmt != BIPO_FMT_BIPO_CSV) { // jansson would stop at bad UTF-8 without saying where
        size_t bad = utf8_bad((const unsigned char *)b, len);
        if (bad < len) {
            set_utf8_error(path, b, bad);
            goto out;
        }
    }
    switch (fmt) {
    case BIPO_FMT_BIPO_CSV: rc = load_csv(out, path, b, len, fields); break;
    case BIPO_FMT_ANTHROPIC_JSONL: rc = load_jsonl(out, path, b, len, fields); break;
    case BIPO_FMT_CAA_JSON: rc = load_json_array(out, path, b, len, fields); break;
    default: bipo_set_error("%s: unknown data format %d", path, (int)fmt);
    }
out:
    free(buf);
    if (rc) {
        bipo_pairs_free(out);
        return -1;
    }
    out->path = xstrdup(path);
    return 0;
}

// ---- split -----------------------------------------------------------------------------------

static void copy_pairs(const bipo_pairs *all, const unsigned char *pick, unsigned char want,
                       size_t n, bipo_pairs *o) {
    memset(o, 0, sizeof *o);
    o->p = xcalloc(n ? n : 1, sizeof *o->p);
    for (size_t i = 0; i < all->n; i++) {
        if (pick[i] != want) continue;
        const bipo_pair *s = &all->p[i];
        o->p[o->n++] = (bipo_pair){xstrdup(s->question), xstrdup(s->matching),
                                   xstrdup(s->not_matching), s->line};
    }
    memcpy(o->sha256, all->sha256, sizeof o->sha256);
    o->path = all->path ? xstrdup(all->path) : NULL;
}

void bipo_pairs_split(const bipo_pairs *all, double test_fraction, uint64_t seed,
                      bipo_pairs *train, bipo_pairs *test) {
    size_t n = all->n;
    double want = test_fraction > 0 ? test_fraction * (double)n + 0.5 : 0;
    size_t n_test = want >= (double)n ? n : (size_t)want;
    if (n_test >= n && n > 0) n_test = n - 1;
    size_t *idx = xmalloc((n ? n : 1) * sizeof *idx);
    unsigned char *is_test = xcalloc(n ? n : 1, 1);
    for (size_t i = 0; i < n; i++) idx[i] = i;
    uint64_t s = seed;
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)(bipo_rng_next(&s) % (uint64_t)(i + 1));
        size_t t = idx[i];
        idx[i] = idx[j], idx[j] = t;
    }
    for (size_t i = 0; i < n_test; i++) is_test[idx[i]] = 1;
    copy_pairs(all, is_test, 0, n - n_test, train);
    copy_pairs(all, is_test, 1, n_test, test);
    free(idx);
    free(is_test);
}

// ---- RFC 4180 records for other loaders (dataset.h: bipo_csv_*) ------------------------------

struct bipo_csv {
    csv_in in;
    csv_row row;
};

bipo_csv *bipo_csv_open(const char *path, const char *b, size_t len, char **names, size_t n) {
    bipo_csv *c = xcalloc(1, sizeof *c);
    c->in = (csv_in){.path = path, .b = b, .len = len, .line = 1, .header = names, .n_header = n};
    return c;
}

void bipo_csv_names(bipo_csv *c, char **names, size_t n) {
    c->in.header = names, c->in.n_header = n;
}

int bipo_csv_next(bipo_csv *c, char ***fields, const size_t **lines, size_t *n) {
    int r, blank;
    do r = csv_record(&c->in, &c->row, &blank);
    while (r == 1 && blank);
    *fields = c->row.f, *lines = c->row.line, *n = r == 1 ? c->row.n : 0;
    return r;
}

void bipo_csv_close(bipo_csv *c) {
    if (!c) return;
    row_clear(&c->row);
    free(c->row.f), free(c->row.line), free(c);
}
