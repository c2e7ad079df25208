#define _GNU_SOURCE // mkdtemp, popen, setenv
// tests/test_config.c — the YAML config: a full config read back field by field (from a file,
// hash checked against sha256sum), defaults, relative/~/${VAR} path resolution, single and
// list forms, layer range strings, the layer check against a model's layer count, and one
// case per bad input whose message must carry file:line:column and the key path.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "testlib.h"
#include "util.h"

static char g_tmp[256];

static int parse(bipo_config_file *c, const char *text, const char *vpath) {
    int rc = bipo_config_parse_string(c, text, vpath);
    EXPECT(rc == 0, "parse failed: %s", bipo_last_error());
    return rc;
}

static int streq(const char *a, const char *b) { return a && b && !strcmp(a, b); }

static int layers_are(const bipo_layer_list *l, const size_t *want, size_t n) {
    if (l->n != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (l->v[i] != want[i]) return 0;
    return 1;
}

static const char *FULL =
    "# every key set to a value other than its default\n"
    "model:\n"
    "  path: models/smol.gguf\n"
    "  id: smol\n"
    "  template: chatml\n"
    "  system_prompt: \"Sois bref \xE2\x80\x94 merci.\"\n"
    "  layers: [3, 5]\n"
    "behavior:\n"
    "  name: concise\n"
    "  data: data/concise.csv\n"
    "  test_data: ~/held/out.csv\n"
    "  format: bipo-csv\n"
    "  fields: {question: q, matching: a, not_matching: b}\n"
    "  max_pairs: 100\n"
    "layer: 15\n"
    "train:\n"
    "  beta: 0.2\n"
    "  lr: 1.0e-3\n"
    "  epochs: 10\n"
    "  batch_size: 8\n"
    "  warmup_steps: 0\n"
    "  first_step_lr_zero: false\n"
    "  schedule: linear\n"
    "  schedule_epochs: 12\n"
    "  backward_matmul: fp32\n"
    "  forward_matmul: fp32\n"
    "  save_epochs: [10, 5, 5]\n"
    "  weight_decay: 0.0\n"
    "  adam_betas: [0.8, 0.99]\n"
    "  adam_eps: 1.0e-6\n"
    "  grad_clip: 0\n"
    "  seed: 18446744073709551615\n"
    "  max_length: 256\n"
    "  log_every: 5\n"
    "  checkpoint_every: 50\n"
    "  shared_prompt: no\n"
    "cache:\n"
    "  memory_mb: 64\n"
    "output: ${BIPO_TEST_OUT}/vectors.h5\n"
    "ranks_per_job: 4\n"
    "eval:\n"
    "  multipliers: [-1, 0, 1]\n"
    "  neutral_text: \"caf\xC3\xA9\"\n";

static void check_full(const bipo_config_file *c, const char *dir) {
    char want[512];
    EXPECT(c->n_models == 1 && c->n_behaviors == 1, "counts %zu %zu", c->n_models, c->n_behaviors);
    const bipo_model_cfg *m = &c->models[0];
    snprintf(want, sizeof want, "%s/models/smol.gguf", dir);
    EXPECT(streq(m->path, want), "model.path '%s' want '%s'", m->path, want);
    EXPECT(streq(m->id, "smol"), "model.id '%s'", m->id);
    EXPECT(streq(m->template_name, "chatml"), "template '%s'", m->template_name);
    EXPECT(streq(m->system_prompt, "Sois bref \xE2\x80\x94 merci."), "system_prompt '%s'", m->system_prompt);
    EXPECT(layers_are(&m->layers, (size_t[]){3, 5}, 2), "model.layers");
    EXPECT(m->mark.line == 3 && m->mark.column == 3, "model mark %zu:%zu", m->mark.line, m->mark.column);
    const bipo_behavior_cfg *b = &c->behaviors[0];
    EXPECT(streq(b->name, "concise"), "behavior.name '%s'", b->name);
    snprintf(want, sizeof want, "%s/data/concise.csv", dir);
    EXPECT(streq(b->data, want), "behavior.data '%s' want '%s'", b->data, want);
    EXPECT(streq(b->test_data, "/home/tester/held/out.csv"), "test_data '%s'", b->test_data);
    EXPECT(b->format == BIPO_FMT_BIPO_CSV, "format %d", (int)b->format);
    EXPECT(streq(b->fields.question, "q") && streq(b->fields.matching, "a") &&
           streq(b->fields.not_matching, "b"), "fields");
    EXPECT(b->max_pairs == 100, "max_pairs %zu", b->max_pairs);
    EXPECT(layers_are(&c->layers, (size_t[]){15}, 1), "layer");
    EXPECT(c->layers.mark[0].line == 15 && c->layers.mark[0].column == 8, "layer mark %zu:%zu",
           c->layers.mark[0].line, c->layers.mark[0].column);
    EXPECT(bipo_config_model_layers(c, 0) == &m->layers, "model override not used");
    const bipo_train_cfg *t = &c->train;
    EXPECT(t->hp.beta == 0.2 && t->hp.lr == 1.0e-3 && t->hp.epochs == 10 && t->hp.batch_size == 8,
           "beta/lr/epochs/batch %g %g %zu %zu", t->hp.beta, t->hp.lr, t->hp.epochs, t->hp.batch_size);
    EXPECT(t->hp.warmup_steps == 0 && t->hp.first_step_lr_zero == 0 && t->hp.schedule == BIPO_SCHED_LINEAR &&
           t->hp.schedule_epochs == 12 && t->hp.backward_matmul == BIPO_MATMUL_FP32 &&
           t->hp.forward_matmul == BIPO_MATMUL_FP32, "warmup/first_step/schedule/matmul");
    EXPECT(t->n_save_epochs == 2 && t->save_epochs[0] == 5 && t->save_epochs[1] == 10,
           "save_epochs sorted, deduplicated (%zu)", t->n_save_epochs);
    EXPECT(t->hp.weight_decay == 0.0 && t->hp.adam_beta1 == 0.8 && t->hp.adam_beta2 == 0.99 &&
           t->hp.adam_eps == 1.0e-6 && t->hp.grad_clip == 0.0, "adam/clip");
    EXPECT(t->hp.seed == UINT64_MAX, "seed %llu", (unsigned long long)t->hp.seed);
    EXPECT(t->hp.max_length == 256 && t->hp.log_every == 5 && t->hp.shared_prompt == 0, "max_length/log/shared");
    EXPECT(t->hp.checkpoint_every == 50, "checkpoint_every %zu", t->hp.checkpoint_every);
    EXPECT(c->cache_bytes == (size_t)64 << 20 && t->hp.cache_bytes == c->cache_bytes, "cache %zu", c->cache_bytes);
    EXPECT(streq(c->output, "/out/dir/vectors.h5"), "output '%s'", c->output);
    EXPECT(c->ranks_per_job == 4, "ranks_per_job %zu", c->ranks_per_job);
    EXPECT(streq(c->eval_text, "multipliers: [-1, 0, 1]\n  neutral_text: \"caf\xC3\xA9\""), "eval text '%s'", c->eval_text);
}

static void test_full_from_file(void) {
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/cfg", g_tmp);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/run.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs(FULL, f);
    fclose(f);
    bipo_config_file c;
    int rc = bipo_config_load(&c, path);
    EXPECT(rc == 0, "load %s: %s", path, bipo_last_error());
    if (rc) return;
    check_full(&c, dir);
    EXPECT(streq(c.path, path) && streq(c.text, FULL), "path/text not kept");
    char cmd[500], want[65] = "";
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    if (p) {
        if (fscanf(p, "%64s", want) != 1) want[0] = 0;
        while (fgetc(p) != EOF) {
        }
        pclose(p);
    }
    EXPECT(!strcmp(c.config_hash, want), "config_hash %s, sha256sum %s", c.config_hash, want);
    bipo_config_free(&c);
    EXPECT(c.models == NULL && c.text == NULL, "free does not reset");
    printf("   full config read back from %s\n", path);
}

static void test_defaults(void) {
    bipo_config_file c;
    if (parse(&c, "model: {path: /abs/SmolLM2.Q4_1.gguf}\nbehavior: {name: b, data: d.csv}\nlayer: 7\n",
              "run.yaml"))
        return;
    const bipo_model_cfg *m = &c.models[0];
    EXPECT(streq(m->path, "/abs/SmolLM2.Q4_1.gguf") && streq(m->id, "SmolLM2.Q4_1"), "id default '%s'", m->id);
    EXPECT(streq(m->template_name, "auto") && m->system_prompt == NULL && m->layers.n == 0, "model defaults");
    const bipo_behavior_cfg *b = &c.behaviors[0];
    EXPECT(streq(b->data, "d.csv"), "no folder: data '%s'", b->data);
    EXPECT(b->test_data == NULL && b->test_fraction == 0.1 && b->format == BIPO_FMT_AUTO &&
           b->fields.question == NULL && b->max_pairs == 0 && b->answer_text == 0, "behavior defaults");
    const bipo_train_cfg *t = &c.train;
    EXPECT(t->hp.beta == 0.1 && t->hp.lr == 5e-4 && t->hp.epochs == 20 && t->hp.batch_size == 4 &&
           t->hp.warmup_steps == 100 && t->hp.first_step_lr_zero == 1 &&
           t->hp.schedule == BIPO_SCHED_COSINE && t->hp.schedule_epochs == 0 &&
           t->hp.backward_matmul == BIPO_MATMUL_BF16X3 && t->hp.forward_matmul == BIPO_MATMUL_BF16X3,
           "train defaults 1");
    EXPECT(t->hp.weight_decay == 0.05 && t->hp.adam_beta1 == 0.9 && t->hp.adam_beta2 == 0.999 &&
           t->hp.adam_eps == 1e-8 && t->hp.grad_clip == 1.0 && t->hp.seed == 42 && t->hp.max_length == 512 &&
           t->hp.log_every == 1 && t->hp.shared_prompt == 1 && t->hp.checkpoint_every == 0, "train defaults 2");
    EXPECT(t->n_save_epochs == 1 && t->save_epochs[0] == 20, "save_epochs default [epochs]");
    EXPECT(c.cache_bytes == (size_t)2048 << 20 && t->hp.cache_bytes == c.cache_bytes, "cache default");
    EXPECT(c.output == NULL && c.ranks_per_job == 0 && c.eval_text == NULL, "top-level defaults");
    bipo_config_free(&c);
    // save_epochs default follows a changed epochs; empty train/cache mean defaults
    if (parse(&c, "model: {path: m}\nbehavior: {name: b, data: d}\nlayer: 1\ntrain: {epochs: 3}\ncache:\n",
              "x/run.yaml"))
        return;
    EXPECT(c.train.n_save_epochs == 1 && c.train.save_epochs[0] == 3, "save_epochs default after epochs: 3");
    EXPECT(streq(c.models[0].path, "x/m") && streq(c.models[0].id, "m"), "relative to x/: '%s'", c.models[0].path);
    bipo_config_free(&c);
    bipo_train_cfg d;
    bipo_train_cfg_defaults(&d);
    EXPECT(d.hp.beta == 0.1 && d.hp.max_length == 512 && d.n_save_epochs == 0, "bipo_train_cfg_defaults");
}

static void test_lists_and_ranges(void) {
    bipo_config_file c;
    const char *text = "models:\n"
                       "  - path: a/Llama-2-7b-chat-hf/\n"
                       "    system_prompt: \"\"\n"
                       "  - path: b.gguf\n"
                       "    id: second\n"
                       "    layers: \"2-4\"\n"
                       "behaviors:\n"
                       "  - {name: x, data: x.jsonl, test_fraction: 0.25}\n"
                       "  - {name: y, data: /abs/y.json, format: caa-json}\n"
                       "layers: [10, \"12-16:2\", 20]\n";
    if (parse(&c, text, "cfg/list.yaml")) return;
    EXPECT(c.n_models == 2 && c.n_behaviors == 2, "list counts");
    if (c.n_models == 2 && c.n_behaviors == 2) {
        EXPECT(streq(c.models[0].path, "cfg/a/Llama-2-7b-chat-hf/") && streq(c.models[0].id, "Llama-2-7b-chat-hf"),
               "dir model id '%s'", c.models[0].id);
        EXPECT(streq(c.models[0].system_prompt, ""), "explicit empty system prompt kept as \"\"");
        EXPECT(layers_are(&c.models[1].layers, (size_t[]){2, 3, 4}, 3), "model range 2-4");
        EXPECT(layers_are(&c.layers, (size_t[]){10, 12, 14, 16, 20}, 5), "layers with a stepped range");
        EXPECT(bipo_config_model_layers(&c, 0) == &c.layers, "model 0 uses global layers");
        EXPECT(c.behaviors[0].test_fraction == 0.25 && streq(c.behaviors[0].data, "cfg/x.jsonl"), "behaviors[0]");
        EXPECT(c.behaviors[1].format == BIPO_FMT_CAA_JSON && streq(c.behaviors[1].data, "/abs/y.json"), "behaviors[1]");
        // the layer check knows where each layer was written
        EXPECT(bipo_config_check_layers(&c, 0, 30) == 0, "layers fit 30: %s", bipo_last_error());
        EXPECT(bipo_config_check_layers(&c, 0, 20) == -1, "layer 20 of 20 accepted");
        const char *e = bipo_last_error();
        printf("   check_layers: %s\n", e);
        EXPECT(strstr(e, "cfg/list.yaml:10:25: layers: layer 20 is out of range") != NULL, "check msg '%s'", e);
        EXPECT(bipo_config_check_layers(&c, 0, 15) == -1 && strstr(bipo_last_error(), ":10:14: layers: layer 16"),
               "range item mark: %s", bipo_last_error());
        EXPECT(bipo_config_check_layers(&c, 1, 4) == -1 &&
               strstr(bipo_last_error(), ":6:13: models[1].layers: layer 4") &&
               strstr(bipo_last_error(), "'second' (4 layers: 0..3)"), "override check: %s", bipo_last_error());
    }
    bipo_config_free(&c);
    const struct {
        const char *text;
        size_t want[8], n;
    } R[] = {{"layers: \"10-15\"\n", {10, 11, 12, 13, 14, 15}, 6},
             {"layers: \"10-20:2\"\n", {10, 12, 14, 16, 18, 20}, 6},
             {"layers: 5-5\n", {5}, 1},
             {"layer: \"7\"\n", {7}, 1},
             {"layers: [0, 29]\n", {0, 29}, 2}};
    for (size_t i = 0; i < sizeof R / sizeof *R; i++) {
        char t[256];
        snprintf(t, sizeof t, "model: {path: m}\nbehavior: {name: b, data: d}\n%s", R[i].text);
        if (parse(&c, t, "r.yaml")) continue;
        EXPECT(layers_are(&c.layers, R[i].want, R[i].n), "range case %zu: %s", i, R[i].text);
        bipo_config_free(&c);
    }
    // every model has layers: no global layer needed
    if (!parse(&c, "model: {path: m, layers: [1]}\nbehavior: {name: b, data: d}\neval: {}\n", "r.yaml")) {
        EXPECT(c.layers.n == 0 && layers_are(bipo_config_model_layers(&c, 0), (size_t[]){1}, 1), "per-model only");
        EXPECT(streq(c.eval_text, "{}"), "eval: {} kept as '%s'", c.eval_text);
        bipo_config_free(&c);
    }
}

// Parsing must fail with a message containing every non-NULL want (location, key, problem).
static void bad(const char *what, const char *text, const char *loc, const char *key, const char *problem) {
    bipo_config_file c;
    bipo_clear_error();
    if (bipo_config_parse_string(&c, text, "conf/run.yaml") == 0) {
        EXPECT(0, "%s: accepted but should fail", what);
        bipo_config_free(&c);
        return;
    }
    const char *e = bipo_last_error();
    printf("   %-26s -> %s\n", what, e);
    const char *w[3] = {loc, key, problem};
    for (int k = 0; k < 3; k++)
        if (w[k]) EXPECT(strstr(e, w[k]) != NULL, "%s: error '%s' lacks '%s'", what, e, w[k]);
    EXPECT(c.models == NULL && c.text == NULL, "%s: config not left empty", what);
}

#define BASE "model: {path: m.gguf}\nbehavior: {name: b, data: d.csv}\n"
#define BASE_L BASE "layer: 1\n"

static void test_bad_inputs(void) {
    printf("bad configs:\n");
    bad("unknown key, close", BASE_L "train:\n  bta: 0.1\n", "run.yaml:5:3:", "train.bta", "did you mean 'beta'?");
    bad("unknown key, far", BASE_L "foo: 1\n", "run.yaml:4:1:", "foo:", "known here: model, models");
    bad("unknown top key typo", BASE "layres: [1]\n", "run.yaml:3:1:", "layres", "did you mean 'layers'?");
    {
        bipo_config_file c;
        const char *t = "model: {path: m.gguf}\nbehavior: {name: b, data: d.csv, answer_form: text}\nlayer: 1\n";
        EXPECT(bipo_config_parse_string(&c, t, "conf/run.yaml") == 0 && c.behaviors[0].answer_text == 1,
               "answer_form: text not read: %s", bipo_last_error());
        bipo_config_free(&c);
    }
    bad("answer_form unknown", "model: {path: m.gguf}\nbehavior: {name: b, data: d.csv, answer_form: words}\nlayer: 1\n",
        "run.yaml:2:", "behavior.answer_form", "letter|text");
    bad("string for number", BASE_L "train:\n  beta: abc\n", "run.yaml:5:9:", "train.beta", "expected a number");
    bad("quoted number", BASE_L "train:\n  lr: \"5e-4\"\n", "run.yaml:5:7:", "train.lr", "remove the quotes");
    bad("list for mapping", BASE_L "train: [1, 2]\n", "run.yaml:4:8:", "train", "expected a mapping");
    bad("mapping for string", BASE_L "output: {a: 1}\n", "run.yaml:4:9:", "output", "expected a string, got a mapping");
    bad("beta = 0", BASE_L "train:\n  beta: 0\n", "run.yaml:5:9:", "train.beta", "must be > 0");
    bad("lr < 0", BASE_L "train:\n  lr: -1\n", "run.yaml:5:7:", "train.lr", "must be > 0");
    bad("epochs = 0", BASE_L "train:\n  epochs: 0\n", "run.yaml:5:11:", "train.epochs", "must be >= 1");
    bad("epochs not integer", BASE_L "train: {epochs: 2.5}\n", "run.yaml:4:17:", "train.epochs", "expected an integer");
    bad("batch_size = 0", BASE_L "train: {batch_size: 0}\n", "run.yaml:4:21:", "train.batch_size", ">= 1");
    bad("seed < 0", BASE_L "train: {seed: -1}\n", "run.yaml:4:15:", "train.seed", "must be >= 0");
    bad("save_epochs > epochs", BASE_L "train:\n  epochs: 20\n  save_epochs: [5, 30]\n", "run.yaml:6:20:",
        "train.save_epochs[1]", "1..20");
    bad("save_epochs 0", BASE_L "train: {save_epochs: [0]}\n", "run.yaml:4:23:", "train.save_epochs[0]", ">= 1");
    bad("save_epochs scalar", BASE_L "train: {save_epochs: 5}\n", "run.yaml:4:22:", "train.save_epochs", "list");
    bad("adam_betas length", BASE_L "train: {adam_betas: [0.9]}\n", "run.yaml:4:21:", "train.adam_betas", "two numbers");
    bad("adam_beta2 = 1", BASE_L "train: {adam_betas: [0.9, 1.0]}\n", "run.yaml:4:27:", "train.adam_betas[1]", "[0, 1)");
    bad("bad schedule", BASE_L "train: {schedule: exponential}\n", "run.yaml:4:19:", "train.schedule", "cosine|linear|constant");
    bad("bad backward_matmul", BASE_L "train: {backward_matmul: fp16}\n", "run.yaml:4:26:", "train.backward_matmul", "bf16x3|fp32");
    bad("bad bool", BASE_L "train: {first_step_lr_zero: maybe}\n", "run.yaml:4:29:", "train.first_step_lr_zero", "true or false");
    bad("negative grad_clip", BASE_L "train: {grad_clip: -1}\n", "run.yaml:4:20:", "train.grad_clip", ">= 0");
    bad("negative layer", BASE "layer: -1\n", "run.yaml:3:8:", "layer", "negative layer");
    bad("range backwards", BASE "layers: \"15-10\"\n", "run.yaml:3:9:", "layers", "bad layer range '15-10'");
    bad("range step 0", BASE "layers: [1, \"10-20:0\"]\n", "run.yaml:3:13:", "layers[1]", "bad layer range");
    bad("range garbage", BASE "layers: 1-x\n", "run.yaml:3:9:", "layers", "bad layer range '1-x'");
    bad("layer as mapping", BASE "layer: {a: 1}\n", "run.yaml:3:8:", "layer", "got a mapping");
    bad("layer listed twice", BASE "layers: [3, \"1-4\"]\n", "run.yaml:3:13:", "layers", "layer 3 is listed twice");
    bad("empty layer list", BASE "layers: []\n", "run.yaml:3:9:", "layers", "empty list");
    bad("duplicate key", BASE_L "layer: 2\n", "run.yaml:4:1:", "layer", "duplicate key (first set on line 3)");
    bad("duplicate nested key", BASE_L "train:\n  lr: 1\n  lr: 2\n", "run.yaml:6:3:", "train.lr", "duplicate key");
    bad("empty file", "", "run.yaml:1:1:", NULL, "empty config");
    bad("comments only", "# nothing\n", "run.yaml:1:1:", NULL, "empty config");
    bad("not a mapping", "- a\n- b\n", "run.yaml:1:1:", "config", "expected a mapping");
    bad("model and models", "model: {path: a}\nmodels: [{path: b}]\nbehavior: {name: b, data: d}\nlayer: 1\n",
        "run.yaml:2:9:", "models", "either 'model' or 'models'");
    bad("no model", "behavior: {name: b, data: d}\nlayer: 1\n", "run.yaml:1:1:", "model", "missing");
    bad("layer and layers", BASE "layer: 1\nlayers: [2]\n", "run.yaml:4:9:", "layers", "not both");
    bad("no layers", BASE, "run.yaml:1:1:", "layer", "missing");
    bad("models empty", "models: []\nbehavior: {name: b, data: d}\nlayer: 1\n", "run.yaml:1:9:", "models", "non-empty list");
    bad("duplicate model ids", "models: [{path: a/m.gguf}, {path: b/m.gguf}]\nbehavior: {name: b, data: d}\nlayer: 1\n",
        "run.yaml:1:28:", "models[1].id", "also the id of models[0]");
    bad("duplicate behaviors", "model: {path: m}\nbehaviors:\n  - {name: b, data: d}\n  - {name: b, data: e}\nlayer: 1\n",
        "run.yaml:4:5:", "behaviors[1].name", "also the name");
    bad("model missing path", "model: {id: x}\nbehavior: {name: b, data: d}\nlayer: 1\n", "run.yaml:1:8:", "model.path", "missing");
    bad("behavior missing data", "model: {path: m}\nbehavior: {name: b}\nlayer: 1\n", "run.yaml:2:11:", "behavior.data", "missing");
    bad("bad template", "model: {path: m, template: gpt}\nbehavior: {name: b, data: d}\nlayer: 1\n",
        "run.yaml:1:28:", "model.template", "auto|llama2|mistral|vicuna|chatml|none");
    bad("bad format", "model: {path: m}\nbehavior: {name: b, data: d, format: xml}\nlayer: 1\n", "run.yaml:2:38:",
        "behavior.format", "bipo-csv");
    bad("bad fields key", "model: {path: m}\nbehavior:\n  name: b\n  data: d\n  fields: {question: q, answer: a}\nlayer: 1\n",
        "run.yaml:5:25:", "behavior.fields.answer", "unknown key");
    bad("test_fraction 1.5", "model: {path: m}\nbehavior: {name: b, data: d, test_fraction: 1.5}\nlayer: 1\n",
        "run.yaml:2:45:", "behavior.test_fraction", "[0, 1)");
    bad("test_fraction + test_data", "model: {path: m}\nbehavior: {name: b, data: d, test_data: t, test_fraction: 0.2}\nlayer: 1\n",
        "run.yaml:2:59:", "behavior.test_fraction", "no effect");
    bad("slash in name", "model: {path: m}\nbehavior: {name: a/b, data: d}\nlayer: 1\n", "run.yaml:2:18:", "behavior.name", "HDF5");
    bad("unset ${VAR}", "model: {path: \"${BIPO_SURELY_UNSET_VAR}/m\"}\nbehavior: {name: b, data: d}\nlayer: 1\n",
        "run.yaml:1:15:", "model.path", "BIPO_SURELY_UNSET_VAR is not set");
    bad("unterminated ${", "model: {path: \"${HOME/m\"}\nbehavior: {name: b, data: d}\nlayer: 1\n", "run.yaml:1:15:",
        "model.path", "unterminated");
    bad("ranks_per_job string", BASE_L "ranks_per_job: auto\n", "run.yaml:4:16:", "ranks_per_job", "expected an integer");
    bad("cache negative", BASE_L "cache: {memory_mb: -5}\n", "run.yaml:4:20:", "cache.memory_mb", ">= 0");
    bad("eval not a mapping", BASE_L "eval: [1]\n", "run.yaml:4:7:", "eval", "expected a mapping");
    bad("YAML syntax", BASE_L "train: {beta: 0.1\n", "run.yaml:", NULL, "YAML syntax error");
    bad("YAML bad indentation", BASE_L "train:\n  beta: 1\n lr: 2\n", "run.yaml:6:", NULL, "YAML syntax error");
    bad("two documents", BASE_L "---\nlayer: 2\n", "run.yaml:4:1:", NULL, "second YAML document");
    bad("invalid UTF-8", BASE_L "output: \"\xFF\"\n", "run.yaml:4:10:", NULL, "UTF-8");
    bipo_config_file c;
    char path[400];
    snprintf(path, sizeof path, "%s/missing.yaml", g_tmp);
    EXPECT(bipo_config_load(&c, path) == -1 && strstr(bipo_last_error(), "missing.yaml"), "missing file: %s",
           bipo_last_error());
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/bipo_test_config_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    setenv("HOME", "/home/tester", 1);
    setenv("BIPO_TEST_OUT", "/out/dir", 1);
    unsetenv("BIPO_SURELY_UNSET_VAR");
    test_full_from_file();
    test_defaults();
    test_lists_and_ranges();
    test_bad_inputs();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return tl_summary("test_config");
}
