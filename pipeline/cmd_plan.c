// pipeline/cmd_plan.c — `bipo-pipeline plan CONFIG.yaml [--ranks N] [--ranks-per-job N]`: the
// job list and the memory each rank will need (weights + activation cache + step buffers),
// without loading any weights (model headers and tensor tables only), flagging jobs that do
// not fit the node's memory.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"     // defines: args_parse
#include "commands.h" // defines: cmd_plan
#include "config.h"   // defines: bipo_config_load
#include "dataset.h"  // defines: bipo_pairs
#include "kernels.h"  // defines: bipo_backend_open
#include "model.h"    // defines: bipo_model_probe
#include "train.h"    // defines: bipo_plan, bipo_load_behavior
#include "util.h" // defines: bipo_last_error, xcalloc

static const char *USAGE =
    "plan CONFIG.yaml [--ranks N] [--ranks-per-job N] [--ranks-per-node N] [--memory-gb G]";

// Bytes of text in a behavior's pairs: ~4 bytes per token for English BPE vocabularies.
static double est_tokens(const bipo_pairs *p) {
    double bytes = 0;
    for (size_t i = 0; i < p->n; i++)
        bytes += 2.0 * strlen(p->p[i].question) + strlen(p->p[i].matching) + strlen(p->p[i].not_matching);
    return bytes / 4.0 + 60.0 * 2 * (double)p->n; // + chat template and system prompt per sequence
}

int cmd_plan(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "bipo-pipeline plan: missing CONFIG.yaml\nusage: bipo-pipeline %s\n", USAGE);
        return 2;
    }
    long ranks = 1, rpj = 0, per_node = 0;
    double mem_gb = 0;
    arg_spec sp[] = {{"--ranks", ARG_INT, &ranks, 1, 1e6, 0},
                     {"--ranks-per-job", ARG_INT, &rpj, 1, 1e6, 0},
                     {"--ranks-per-node", ARG_INT, &per_node, 1, 1e6, 0},
                     {"--memory-gb", ARG_FLOAT, &mem_gb, 0.001, 1e6, 0}};
    if (args_parse("plan", USAGE, sp, sizeof sp / sizeof sp[0], argc - 1, argv + 1) != 0) return 2;
    bipo_config_file c;
    if (bipo_config_load(&c, argv[1]) != 0) {
        fprintf(stderr, "bipo-pipeline plan: %s\n", bipo_last_error());
        bipo_config_free(&c);
        return 2;
    }
    int rc = 1;
    if (mem_gb == 0) mem_gb = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE) / 1e9;
    if (!rpj) rpj = c.ranks_per_job;
    bipo_job *jobs;
    size_t n_jobs = bipo_plan(&c, &jobs);
    if (!rpj) rpj = n_jobs == 1 ? ranks : 1;
    if (!per_node) per_node = ranks; // default: every rank on one node
    double per_rank_budget = mem_gb / (double)per_node;
    bipo_model *pm = xcalloc(c.n_models, sizeof *pm);
    bipo_behavior_data *bd = xcalloc(c.n_behaviors, sizeof *bd);
    size_t nm = 0, nb = 0;
    for (; nm < c.n_models; nm++)
        if (bipo_model_probe(&pm[nm], c.models[nm].path) != 0 ||
            bipo_config_check_layers(&c, nm, pm[nm].cfg.L) != 0) {
            fprintf(stderr, "bipo-pipeline plan: %s\n", bipo_last_error());
            nm++;
            goto out;
        }
    for (; nb < c.n_behaviors; nb++)
        if (bipo_load_behavior(&c, &c.behaviors[nb], &bd[nb]) != 0) {
            fprintf(stderr, "bipo-pipeline plan: %s\n", bipo_last_error());
            nb++;
            goto out;
        }
    printf("plan for %s: %zu jobs on %ld rank%s (groups of %ld, %ld per node), %.1f GB per node = "
           "%.1f GB per rank\n\n", c.path, n_jobs, ranks, ranks == 1 ? "" : "s", rpj, per_node,
           mem_gb, per_rank_budget);
    // a CPU backend with AMX keeps bf16x3 copies of the frozen weights it multiplies (those
    // above the hook layer and the LM head) when the config asks for bf16x3 (the default)
    const bipo_backend *cpu = bipo_backend_open("cpu", 0);
    int amx = (c.train.hp.forward_matmul == BIPO_MATMUL_BF16X3 ||
               c.train.hp.backward_matmul == BIPO_MATMUL_BF16X3) &&
              cpu->supports_precision(BIPO_MATMUL_BF16X3);
    if (amx) printf("(this CPU has AMX: weights include the bf16x3 copies above each job's layer)\n\n");
    printf("| job | model | behavior | layer | pairs (train/test) | weights GB | cache GB/rank | step GB | total GB/rank | fits |\n");
    printf("|---:|---|---|---:|---|---:|---:|---:|---:|---|\n");
    size_t too_big = 0;
    for (size_t i = 0; i < n_jobs; i++) {
        const bipo_job *j = &jobs[i];
        const bipo_config *mc = &pm[j->model].cfg;
        const bipo_behavior_data *d = &bd[j->behavior];
        double weights = (double)pm[j->model].n_params * 4 / 1e9; // f32 after dequantization
        if (amx) { // + bf16x3 tile copies (forward and backward, hi + lo) above L and of the head
            double head = (double)mc->V * (double)mc->C;
            double per_l = ((double)pm[j->model].n_params - head * (mc->tied ? 1 : 2)) / (double)mc->L;
            weights += 2.0 * 4 * ((double)(mc->L - j->layer - 1) * per_l + head) / 1e9;
        }
        double toks = est_tokens(&d->train) + est_tokens(&d->test);
        double cache = fmin(toks * (double)mc->C * 4 / 1e9 / (double)rpj, (double)c.cache_bytes / 1e9);
        // step buffers: saved activations of layers above L for one batch (~ 2 B x 300 tokens)
        double N = 2.0 * (double)c.train.hp.batch_size * 300 / (double)rpj;
        double per_layer = N * (6.0 * mc->C + 3.0 * mc->FF + 2.0 * mc->NH * mc->HD) * 4;
        double step = (per_layer * (double)(mc->L - j->layer) + N * (double)mc->V * 4) / 1e9;
        double total = weights + cache + step;
        int fits = total <= per_rank_budget;
        too_big += !fits;
        printf("| %zu | %s | %s | %zu | %zu/%zu | %.2f | %.2f | %.2f | %.2f | %s |\n", i + 1,
               c.models[j->model].id, c.behaviors[j->behavior].name, j->layer, d->train.n, d->test.n,
               weights, cache, step, total, fits ? "yes" : "NO");
    }
    if (too_big)
        printf("\n%zu job%s will not fit %.1f GB per rank: fewer ranks per node, a smaller "
               "cache.memory_mb, or more memory\n", too_big, too_big == 1 ? "" : "s", per_rank_budget);
    rc = 0;
out:
    for (size_t i = 0; i < nm; i++) bipo_model_free(&pm[i]);
    for (size_t i = 0; i < nb; i++) bipo_free_behavior(&bd[i]);
    free(pm), free(bd), free(jobs);
    bipo_config_free(&c);
    return rc;
}
