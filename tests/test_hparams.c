// tests/test_hparams.c — the one table of training settings (workers/hparams.c) and what is
// derived from it: the job hash (pinned to the values the pre-table code gave, and rebuilt
// here from the v1 format string), which rows move the hash and which do not, the run
// attributes, and the YAML reader. Built twice: test_hparams_extra compiles the table, the
// config reader and the plan with BIPO_HPARAMS_TEST, which adds one row (test_knob) and its
// member and nothing else; that row must reach the defaults, the parser, the hash and the
// attributes, and leave every existing hash as it was.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config.h"  // defines: bipo_config_parse_string
#include "hparams.h" // defines: bipo_hp_fields
#include "plan.h"    // defines: bipo_job_hash, bipo_hparams_attrs
#include "testlib.h"
#include "util.h"

static const char *CFG =
    "model: {path: m.gguf}\nbehavior: {name: b, data: d.csv}\nlayer: 3\n"
    "train:\n  beta: 0.2\n  lr: 1.0e-3\n  epochs: 10\n  batch_size: 8\n  warmup_steps: 7\n"
    "  first_step_lr_zero: false\n  schedule: linear\n  schedule_epochs: 12\n  save_epochs: [10, 5]\n"
    "  weight_decay: 0.01\n  adam_betas: [0.8, 0.99]\n  adam_eps: 1.0e-6\n  grad_clip: 0.5\n"
    "  seed: 1234567890123\n  max_length: 256\n  log_every: 5\n  checkpoint_every: 50\n"
    "  shared_prompt: false\n  forward_matmul: fp32\n";
static const char *DEF = "model: {path: m.gguf}\nbehavior: {name: b, data: d.csv}\nlayer: 3\n";
// bipo_job_hash(c, "fp0123", "chatml", "You are helpful.", "b", "datahash", 3) of CFG and DEF,
// computed with the code before the table (pipeline/train.c at 66075c4)
static const char *PIN_CFG = "cd449b51ddd6a8cb807061df4c78429d010029e981097733449b13e39467f0ed";
static const char *PIN_DEF = "ccbbc8e71dca4ce35d391e9f756211a0dd9fae583c8625db17404b265f88af7e";

// The behavior data of the pins: hash "datahash", the official response form (what every run
// before train.response_space / score_eos was trained with).
static void hash_form(const bipo_config_file *c, const char *tpl, bipo_response_form form, char out[65]) {
    bipo_behavior_data d = {.form = form};
    snprintf(d.hash, sizeof d.hash, "datahash");
    bipo_job_hash(c, "fp0123", tpl, "You are helpful.", "b", &d, 3, out);
}
static void hash_of(const bipo_config_file *c, char out[65]) {
    hash_form(c, "chatml", BIPO_RESPONSE_OFFICIAL, out);
}

// The v1 hash text written out by hand, as the pre-table code's format string had it.
static void v1_hash(const bipo_config_file *c, const char *tail, char out[65]) {
    const bipo_hparams *hp = &c->train.hp;
    char buf[2048];
    int k = snprintf(buf, sizeof buf,
                     "bipo-job-v1|model=%s|template=%s|system=%s|behavior=%s|data=%s|layer=%zu|"
                     "beta=%.17g|lr=%.17g|epochs=%zu|sched_epochs=%zu|batch=%zu|warmup=%zu|"
                     "zero=%d|sched=%d|wd=%.17g|b1=%.17g|b2=%.17g|eps=%.17g|clip=%.17g|"
                     "seed=%llu|max_length=%zu|save=",
                     "fp0123", "chatml", "You are helpful.", "b", "datahash", (size_t)3, hp->beta,
                     hp->lr, hp->epochs, hp->schedule_epochs, hp->batch_size, hp->warmup_steps,
                     hp->first_step_lr_zero, (int)hp->schedule, hp->weight_decay, hp->adam_beta1,
                     hp->adam_beta2, hp->adam_eps, hp->grad_clip, (unsigned long long)hp->seed,
                     hp->max_length);
    for (size_t i = 0; i < c->train.n_save_epochs; i++)
        k += snprintf(buf + k, sizeof buf - k, "%zu,", c->train.save_epochs[i]);
    k += snprintf(buf + k, sizeof buf - k, "%s", tail);
    bipo_sha256 sh;
    bipo_sha256_init(&sh);
    bipo_sha256_update(&sh, buf, (size_t)k);
    bipo_sha256_hex(&sh, out);
}

static int parse(bipo_config_file *c, const char *text) {
    int rc = bipo_config_parse_string(c, text, "/tmp/x/run.yaml");
    EXPECT(rc == 0, "parse failed: %s", bipo_last_error());
    return rc;
}

static void test_pinned(void) {
    const char *texts[2] = {CFG, DEF}, *pins[2] = {PIN_CFG, PIN_DEF};
    for (int i = 0; i < 2; i++) {
        bipo_config_file c;
        if (parse(&c, texts[i])) continue;
        char h[65], v1[65];
        hash_of(&c, h);
        v1_hash(&c, "", v1);
        EXPECT(!strcmp(h, pins[i]), "%s config: hash %s, pinned %s", i ? "default" : "full", h, pins[i]);
        EXPECT(!strcmp(h, v1), "%s config: hash %s, v1 text gives %s", i ? "default" : "full", h, v1);
        bipo_config_free(&c);
    }
}

// A valid value other than the current one, for any row.
static void nudge(bipo_hparams *hp, const bipo_hp_field *f) {
    if (f->type == BIPO_HP_DOUBLE) bipo_hp_set_double(hp, f, bipo_hp_get_double(hp, f) * 0.5 + 0.3);
    else if (f->type == BIPO_HP_BOOL) bipo_hp_set_u64(hp, f, !bipo_hp_get_u64(hp, f));
    else if (f->type == BIPO_HP_ENUM) bipo_hp_set_u64(hp, f, (uint64_t)(bipo_hp_get_u64(hp, f) == (uint64_t)f->values[0] ? f->values[1] : f->values[0]));
    else bipo_hp_set_u64(hp, f, bipo_hp_get_u64(hp, f) + 3);
}

// Every row marked "in the hash" moves it; every other row leaves it alone.
static void test_hash_column(void) {
    bipo_config_file c;
    if (parse(&c, DEF)) return;
    char h0[65];
    hash_of(&c, h0);
    size_t n_in = 0, n_out = 0;
    for (size_t i = 0; i < bipo_hp_n_fields; i++) {
        const bipo_hp_field *f = &bipo_hp_fields[i];
        bipo_hparams keep = c.train.hp;
        nudge(&c.train.hp, f);
        EXPECT(!bipo_hp_is_default(&c.train.hp, f), "%s: nudged value is still the default", f->name);
        char h[65];
        hash_of(&c, h);
        int in = (f->flags & (BIPO_HP_HASH | BIPO_HP_HASH_IF_SET)) != 0;
        EXPECT(in == !!strcmp(h, h0), "%s: %s the hash but is %s", f->name, in ? "does not move" : "moves",
               in ? "in it" : "not in it");
        in ? n_in++ : n_out++;
        c.train.hp = keep;
    }
    // the v1 settings are 15 hashed rows; performance settings stay out
    EXPECT(n_in >= 15, "%zu hashed rows", n_in);
    const char *out[] = {"forward_matmul", "backward_matmul", "log_every", "checkpoint_every",
                         "shared_prompt", "cache_bytes", "use_cache"};
    for (size_t i = 0; i < sizeof out / sizeof *out; i++) {
        const bipo_hp_field *f = bipo_hp_find(out[i]);
        EXPECT(f && !(f->flags & (BIPO_HP_HASH | BIPO_HP_HASH_IF_SET)), "%s must not be hashed", out[i]);
    }
    bipo_config_free(&c);
}

typedef struct {
    const char *key;
    bipo_attr_type type;
    const char *s;
    int64_t i;
    double d;
} want_attr;

static void check_attrs(const bipo_attr *a, size_t n, const want_attr *w, size_t nw) {
    EXPECT(n == nw, "%zu attributes, want %zu", n, nw);
    for (size_t i = 0; i < n && i < nw; i++) {
        int ok = !strcmp(a[i].key, w[i].key) && a[i].type == w[i].type &&
                 (w[i].type == BIPO_ATTR_STR ? !strcmp(a[i].s, w[i].s)
                  : w[i].type == BIPO_ATTR_INT ? a[i].i == w[i].i : a[i].d == w[i].d);
        EXPECT(ok, "attribute %zu: %s (type %d, '%s' %lld %.17g), want %s", i, a[i].key, (int)a[i].type,
               a[i].s ? a[i].s : "", (long long)a[i].i, a[i].d, w[i].key);
    }
}

// The attributes of the full config: names, types and order as the pre-table code wrote them,
// then the rows added since.
static void test_attrs(void) {
    bipo_config_file c;
    if (parse(&c, CFG)) return;
    bipo_attr a[64];
    size_t n = bipo_hparams_attrs(&c.train.hp, a);
    const want_attr w[] = {
        {"beta", BIPO_ATTR_DOUBLE, 0, 0, 0.2},         {"lr", BIPO_ATTR_DOUBLE, 0, 0, 1e-3},
        {"epochs", BIPO_ATTR_INT, 0, 10, 0},           {"schedule_epochs", BIPO_ATTR_INT, 0, 12, 0},
        {"batch_size", BIPO_ATTR_INT, 0, 8, 0},        {"warmup_steps", BIPO_ATTR_INT, 0, 7, 0},
        {"first_step_lr_zero", BIPO_ATTR_INT, 0, 0, 0}, {"schedule", BIPO_ATTR_STR, "linear", 0, 0},
        {"forward_matmul", BIPO_ATTR_STR, "fp32", 0, 0}, {"backward_matmul", BIPO_ATTR_STR, "bf16x3", 0, 0},
        {"weight_decay", BIPO_ATTR_DOUBLE, 0, 0, 0.01}, {"adam_beta1", BIPO_ATTR_DOUBLE, 0, 0, 0.8},
        {"adam_beta2", BIPO_ATTR_DOUBLE, 0, 0, 0.99},  {"adam_eps", BIPO_ATTR_DOUBLE, 0, 0, 1e-6},
        {"grad_clip", BIPO_ATTR_DOUBLE, 0, 0, 0.5},    {"seed", BIPO_ATTR_INT, 0, 1234567890123LL, 0},
        {"max_length", BIPO_ATTR_INT, 0, 256, 0},
        {"response_space", BIPO_ATTR_STR, "auto", 0, 0}, {"score_eos", BIPO_ATTR_STR, "auto", 0, 0},
        {"preset", BIPO_ATTR_STR, "none", 0, 0},
#ifdef BIPO_HPARAMS_TEST
        {"test_knob", BIPO_ATTR_DOUBLE, 0, 0, 0.25},
#endif
    };
    check_attrs(a, n, w, sizeof w / sizeof *w);
    bipo_config_free(&c);
}

// Every YAML row is read from `train:` into its member (the value written back as text).
static void test_parser_rows(void) {
    bipo_config_file d;
    if (parse(&d, DEF)) return;
    for (size_t i = 0; i < bipo_hp_n_fields; i++) {
        const bipo_hp_field *f = &bipo_hp_fields[i];
        if (!(f->flags & BIPO_HP_YAML) || f->elem) continue;
        bipo_hparams hp = d.train.hp;
        nudge(&hp, f);
        char text[512], val[64];
        if (f->type == BIPO_HP_DOUBLE) snprintf(val, sizeof val, "%.17g", bipo_hp_get_double(&hp, f));
        else if (f->type == BIPO_HP_BOOL) snprintf(val, sizeof val, "%s", bipo_hp_get_u64(&hp, f) ? "true" : "false");
        else if (f->type == BIPO_HP_ENUM) snprintf(val, sizeof val, "%s", bipo_hp_enum_name(&hp, f));
        else snprintf(val, sizeof val, "%llu", (unsigned long long)bipo_hp_get_u64(&hp, f));
        snprintf(text, sizeof text, "%strain: {%s: %s}\n", DEF, f->name, val);
        bipo_config_file c;
        if (parse(&c, text)) continue;
        int same = f->type == BIPO_HP_DOUBLE ? bipo_hp_get_double(&c.train.hp, f) == bipo_hp_get_double(&hp, f)
                                             : bipo_hp_get_u64(&c.train.hp, f) == bipo_hp_get_u64(&hp, f);
        EXPECT(same, "train.%s: %s was not read into the member", f->name, val);
        bipo_config_free(&c);
    }
    bipo_config_free(&d);
}

// A YAML error that must name the key and carry the hint.
static void bad(const char *yaml_train, const char *key, const char *hint) {
    char text[512];
    snprintf(text, sizeof text, "%strain: {%s}\n", DEF, yaml_train);
    bipo_config_file c;
    int rc = bipo_config_parse_string(&c, text, "/tmp/x/run.yaml");
    const char *e = bipo_last_error();
    EXPECT(rc != 0 && strstr(e, key) && strstr(e, hint), "'%s': got '%s', want %s ... %s", yaml_train,
           rc ? e : "(accepted)", key, hint);
    if (!rc) bipo_config_free(&c);
}

static void test_bounds(void) {
    bad("beta: 0", "train.beta", "must be > 0");
    bad("weight_decay: -0.1", "train.weight_decay", "must be >= 0");
    bad("batch_size: 0", "train.batch_size", "must be >= 1");
    bad("adam_betas: [0.9, 1.0]", "train.adam_betas[1]", "must be in [0, 1)");
    bad("adam_betas: [0.9]", "train.adam_betas", "two numbers");
    bad("schedule: step", "train.schedule", "cosine|linear|constant");
    bad("forward_matmul: fp16", "train.forward_matmul", "bf16x3|fp32");
    bad("shared_prompt: 2", "train.shared_prompt", "true or false");
    bad("cache_bytes: 5", "train.cache_bytes", "unknown key"); // a row without BIPO_HP_YAML
}

#ifdef BIPO_HPARAMS_TEST
// The row that only the table knows reaches defaults, parser, hash and attributes.
static void test_extra_row(void) {
    bipo_hparams hp;
    bipo_hparams_defaults(&hp);
    EXPECT(hp.test_knob == 0.25, "test_knob default %g", hp.test_knob);
    char text[512];
    snprintf(text, sizeof text, "%strain: {test_knob: 0.5}\n", DEF);
    bipo_config_file c;
    if (parse(&c, text)) return;
    EXPECT(c.train.hp.test_knob == 0.5, "test_knob parsed as %g", c.train.hp.test_knob);
    char h[65], v1[65];
    hash_of(&c, h);
    v1_hash(&c, "|test_knob=0.5", v1);
    EXPECT(!strcmp(h, v1), "hash with test_knob 0.5: %s, v1 text + '|test_knob=0.5' gives %s", h, v1);
    EXPECT(strcmp(h, PIN_DEF) != 0, "test_knob 0.5 left the default config's hash unchanged");
    bipo_attr a[64];
    size_t n = bipo_hparams_attrs(&c.train.hp, a);
    EXPECT(n && !strcmp(a[n - 1].key, "test_knob") && a[n - 1].d == 0.5, "last attribute %s = %g",
           n ? a[n - 1].key : "-", n ? a[n - 1].d : 0);
    bipo_config_free(&c);
    bad("test_knob: -1", "train.test_knob", "must be >= 0");
    bad("test_knop: 1", "train.test_knop", "did you mean 'test_knob'");
}
#endif

// The resolved response form is in the hash unless it tokenizes as the official one: a letter
// run in the model's own form (chatml, no forced space, no EOS) never reuses an official run.
static void test_form_hash(void) {
    bipo_config_file c;
    if (parse(&c, DEF)) return;
    char off[65], h[65], v1[65];
    hash_of(&c, off);
    hash_form(&c, "chatml", (bipo_response_form){BIPO_SPACE_AUTO, 0}, h);
    EXPECT(strcmp(h, off) != 0, "chatml auto:0 has the official form's hash");
    // v1_hash's data/template are the pins' ("chatml"); the form is appended after the rows
    v1_hash(&c, "|form=auto:0", v1);
    EXPECT(!strcmp(h, v1), "chatml auto:0: hash %s, v1 text + '|form=auto:0' gives %s", h, v1);
    hash_form(&c, "chatml", (bipo_response_form){BIPO_SPACE_AUTO, 1}, h);
    EXPECT(strcmp(h, off) != 0, "chatml auto:1 (no forced space after 'assistant\\n') has the official hash");
    char l_off[65];
    hash_form(&c, "llama2", BIPO_RESPONSE_OFFICIAL, l_off);
    hash_form(&c, "llama2", (bipo_response_form){BIPO_SPACE_AUTO, 1}, h);
    EXPECT(!strcmp(h, l_off), "llama2 auto:1 tokenizes as the official form but moved the hash");
    hash_form(&c, "llama2", (bipo_response_form){BIPO_SPACE_ALWAYS, 0}, h);
    EXPECT(strcmp(h, l_off) != 0, "llama2 always:0 (EOS not scored) kept the official hash");
    bipo_config_free(&c);
    // preset: the official code's settings, and a key after it still wins
    char text[512];
    snprintf(text, sizeof text, "%strain: {preset: bipo-official, epochs: 7}\n", DEF);
    if (parse(&c, text)) return;
    const bipo_hparams *hp = &c.train.hp;
    EXPECT(hp->preset == BIPO_PRESET_BIPO_OFFICIAL && hp->weight_decay == 0 && hp->schedule_epochs == 100 &&
               hp->max_length == 2048 && hp->lr == 5e-4 && hp->warmup_steps == 100 && hp->epochs == 7 &&
               hp->response_space == BIPO_SPACE_ALWAYS && hp->score_eos == 1,
           "bipo-official preset: wd %g sched_epochs %zu max_length %zu epochs %zu space %d eos %d",
           hp->weight_decay, hp->schedule_epochs, hp->max_length, hp->epochs, hp->response_space, hp->score_eos);
    bipo_config_free(&c);
    bad("preset: official", "train.preset", "none|bipo-official");
    bad("score_eos: maybe", "train.score_eos", "auto|true|false");
}

int main(void) {
    test_pinned();
    test_form_hash(); // with BIPO_HPARAMS_TEST: the new row at its default leaves both hashes alone
    test_hash_column();
    test_attrs();
    test_parser_rows();
    test_bounds();
#ifdef BIPO_HPARAMS_TEST
    test_extra_row();
    return tl_summary("test_hparams_extra");
#else
    return tl_summary("test_hparams");
#endif
}
