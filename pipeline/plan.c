// pipeline/plan.c — the plan: jobs from the config, each behavior's data, rank 0's checks of
// every input, the job hash and the run attributes of the hyperparameters (from the table in
// workers/hparams.c).
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bipo.h"    // defines: bipo_examples_build
#include "chat.h"    // defines: bipo_chat_template_by_name, bipo_chat_for
#include "config_eval.h" // defines: bipo_config_split_seed
#include "dataset.h" // defines: bipo_pairs_load, bipo_pairs_split
#include "hparams.h" // defines: bipo_hp_fields, bipo_hparams_hash_text
#include "model.h"   // defines: bipo_model_probe, bipo_lora_fingerprint
#include "util.h"    // defines: bipo_sha256, xmalloc

size_t bipo_plan(const bipo_config_file *c, bipo_job **jobs) {
    size_t n = 0, cap = 16;
    *jobs = xmalloc(cap * sizeof **jobs);
    for (size_t m = 0; m < c->n_models; m++) {
        const bipo_layer_list *ls = bipo_config_model_layers(c, m);
        for (size_t b = 0; b < c->n_behaviors; b++)
            for (size_t l = 0; l < ls->n; l++) {
                if (n == cap) *jobs = xrealloc(*jobs, (cap *= 2) * sizeof **jobs);
                (*jobs)[n++] = (bipo_job){m, b, ls->v[l]};
            }
    }
    return n;
}

// ---- data ------------------------------------------------------------------------------------
int bipo_load_behavior(const bipo_config_file *c, const bipo_behavior_cfg *b, bipo_behavior_data *d) {
    memset(d, 0, sizeof *d);
    bipo_pairs all = {0};
    if (bipo_pairs_load(&all, b->data, b->format, &b->fields) != 0) return -1;
    if (b->max_pairs && all.n > b->max_pairs) all.n = b->max_pairs; // rest freed with all
    if (b->answer_text && bipo_pairs_answer_texts(&all) != 0) {
        bipo_pairs_free(&all);
        return -1;
    }
    char rule[192];
    if (b->test_data) {
        if (bipo_pairs_load(&d->test, b->test_data, b->format, &b->fields) != 0 ||
            (b->answer_text && bipo_pairs_answer_texts(&d->test) != 0)) {
            bipo_pairs_free(&all);
            bipo_pairs_free(&d->test);
            return -1;
        }
        d->train = all;
        snprintf(rule, sizeof rule, "test:%s", d->test.sha256);
    } else {
        bipo_pairs_split(&all, b->test_fraction, bipo_config_split_seed(c), &d->train, &d->test);
        bipo_pairs_free(&all);
        snprintf(rule, sizeof rule, "split:%.17g:%llu:%zu", b->test_fraction,
                 (unsigned long long)bipo_config_split_seed(c), b->max_pairs);
    }
    if (b->answer_text) strcat(rule, ":answers=text"); // other pairs: another data hash
    bipo_sha256 sh;
    bipo_sha256_init(&sh);
    bipo_sha256_update(&sh, d->train.sha256, 64);
    bipo_sha256_update(&sh, rule, strlen(rule));
    bipo_sha256_hex(&sh, d->hash);
    const bipo_hparams *hp = &c->train.hp;
    d->form.space = (bipo_space_rule)hp->response_space;
    d->form.score_eos = hp->score_eos >= 0 ? hp->score_eos : !bipo_pairs_are_letters(&d->train);
    return 0;
}

void bipo_free_behavior(bipo_behavior_data *d) {
    bipo_pairs_free(&d->train);
    bipo_pairs_free(&d->test);
}

int bipo_tokenize_pairs(const bipo_pairs *p, const bipo_tokenizer *tok,
                        const bipo_chat_template *tpl, const char *system,
                        const bipo_response_form *form, size_t max_length, bipo_example **ex,
                        size_t *n_trunc) {
    int rc = bipo_examples_from_pairs(tok, tpl, system, form, p, max_length, ex, n_trunc);
    if (rc != 0) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s: %s", p->path, bipo_last_error());
        bipo_set_error("%s", msg);
    }
    return rc;
}

// ---- rank 0's checks before anything is loaded ------------------------------------------------
int bipo_plan_check(const bipo_config_file *c, bipo_behavior_data *bd, bipo_model_check *mp) {
    for (size_t b = 0; b < c->n_behaviors; b++)
        if (bipo_load_behavior(c, &c->behaviors[b], &bd[b]) != 0) return -1;
    for (size_t m = 0; m < c->n_models; m++) {
        bipo_model pm;
        if (bipo_model_probe(&pm, c->models[m].path) != 0) return -1;
        snprintf(mp[m].fingerprint, sizeof mp[m].fingerprint, "%s", pm.fingerprint);
        size_t L = pm.cfg.L;
        bipo_model_free(&pm);
        if (c->models[m].lora && bipo_lora_fingerprint(mp[m].fingerprint, c->models[m].lora, mp[m].fingerprint) != 0)
            return -1;
        if (bipo_config_check_layers(c, m, L) != 0) return -1;
        bipo_tokenizer *tok = bipo_tokenizer_load(c->models[m].path);
        if (!tok) return -1;
        const char *tn = c->models[m].template_name;
        const bipo_chat_template *tpl = !tn || !strcmp(tn, "auto") ? bipo_chat_for(tok)
                                                                   : bipo_chat_template_by_name(tn);
        bipo_tokenizer_free(tok);
        if (!tpl) return -1;
        snprintf(mp[m].template_name, sizeof mp[m].template_name, "%s", tpl->name);
    }
    return 0;
}

const char *bipo_system_of(const bipo_model_cfg *mc) {
    return mc->system_prompt ? mc->system_prompt : BIPO_DEFAULT_SYSTEM;
}

// The settings that determine a job's result: a rerun with the same hash skips the job, a
// changed one writes a new run (the old one is kept). Performance-only settings (cache size,
// threads, backend, ranks, shared_prompt, forward/backward_matmul: they move results by rounding
// only) are not part of it, nor are other jobs of the config: adding a behavior to a nightly
// config leaves the existing jobs' hashes alone. The text is the v1 format byte for byte
// (tests/test_hparams.c pins it): the BIPO_HP_HASH rows in table order, save_epochs, then
// the rows added later (BIPO_HP_HASH_IF_SET) that are not at their default.
// The response form enters as "|form=<space>:<eos>" unless it tokenizes as the official one
// (a forced space and a scored EOS; "auto" spacing after a template whose prompt never ends in
// whitespace is the same), so every run written before the form existed keeps its hash.
static int form_is_official(const bipo_response_form *f, const char *template_name) {
    const bipo_chat_template *t = bipo_chat_template_by_name(template_name);
    int space_same = f->space == BIPO_SPACE_ALWAYS ||
                     (f->space == BIPO_SPACE_AUTO && t && t->ends_blank == 0);
    return space_same && f->score_eos;
}

void bipo_job_hash(const bipo_config_file *c, const char *fingerprint, const char *template_name,
                   const char *system, const char *behavior, const bipo_behavior_data *d,
                   size_t layer, char out[65]) {
    const char *data_hash = d->hash;
    const bipo_hparams *hp = &c->train.hp;
    size_t cap = strlen(fingerprint) + strlen(template_name) + strlen(system) + strlen(behavior) +
                 strlen(data_hash) + 32 * (bipo_hp_n_fields + c->train.n_save_epochs) + 256;
    char *buf = xmalloc(cap);
    int k = snprintf(buf, cap, "bipo-job-v1|model=%s|template=%s|system=%s|behavior=%s|data=%s|layer=%zu|",
                     fingerprint, template_name, system, behavior, data_hash, layer);
    bipo_hparams_hash_text(hp, BIPO_HP_HASH, buf, cap, &k);
    k += snprintf(buf + k, cap - (size_t)k, "save=");
    for (size_t i = 0; i < c->train.n_save_epochs; i++)
        k += snprintf(buf + k, cap - (size_t)k, "%zu,", c->train.save_epochs[i]);
    bipo_hparams_hash_text(hp, BIPO_HP_HASH_IF_SET, buf, cap, &k);
    if (!form_is_official(&d->form, template_name))
        k += snprintf(buf + k, cap - (size_t)k, "|form=%s:%d", bipo_space_rule_name(d->form.space),
                      d->form.score_eos);
    bipo_sha256 sh;
    bipo_sha256_init(&sh);
    bipo_sha256_update(&sh, buf, (size_t)k);
    bipo_sha256_hex(&sh, out);
    free(buf);
}

size_t bipo_hparams_attrs(const bipo_hparams *hp, bipo_attr *out) {
    size_t n = 0;
    for (size_t i = 0; i < bipo_hp_n_fields; i++) {
        const bipo_hp_field *f = &bipo_hp_fields[i];
        if (!(f->flags & BIPO_HP_ATTR)) continue;
        if (f->type == BIPO_HP_DOUBLE) out[n++] = BIPO_ATTR_D(f->name, bipo_hp_get_double(hp, f));
        else if (f->type == BIPO_HP_ENUM) out[n++] = BIPO_ATTR_S(f->name, bipo_hp_enum_name(hp, f));
        else out[n++] = BIPO_ATTR_I(f->name, (int64_t)bipo_hp_get_u64(hp, f));
    }
    return n;
}

void bipo_fmt_duration(char *b, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) snprintf(b, n, "?");
    else if (s < 60) snprintf(b, n, "%.0fs", s);
    else if (s < 3600) snprintf(b, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(b, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}
