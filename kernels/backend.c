// kernels/backend.c — backend selection and the shared size helper.
#include <string.h>

#include "backend_impl.h" // defines: bipo_backend_cpu, bipo_backend_cuda, bipo_backend_cpu_set_threads
#include "kernels.h"      // defines: bipo_backend, bipo_seqs, bipo_backend_open
#include "util.h"         // defines: bipo_set_error

size_t bipo_att_floats(const bipo_seqs *sq, size_t NH) {
    size_t n = 0;
    for (size_t s = 0; s < sq->S; s++)
        n += NH * (sq->q_off[s + 1] - sq->q_off[s]) * (sq->k_off[s + 1] - sq->k_off[s]);
    return n;
}

#ifndef BIPO_HAVE_CUDA
// Built without nvcc: there is no CUDA backend (kernels/cuda/ defines it otherwise).
const bipo_backend *bipo_backend_cuda(void) { return NULL; }
#endif

const bipo_backend *bipo_backend_open(const char *name, int threads) {
    // host threads first: the CPU backend's first use would otherwise pick its default
    if (threads > 0) bipo_backend_cpu_set_threads(threads);
    if (!name || strcmp(name, "auto") == 0) {
        const bipo_backend *be = bipo_backend_cuda();
        return be ? be : bipo_backend_cpu();
    }
    if (strcmp(name, "cpu") == 0) return bipo_backend_cpu();
    if (strcmp(name, "cuda") == 0) {
        const bipo_backend *be = bipo_backend_cuda();
        if (!be)
            bipo_set_error("backend 'cuda' is not available: it needs a GPU and a CUDA build "
                           "(use auto or cpu)");
        return be;
    }
    bipo_set_error("backend '%s' is unknown (use auto, cpu or cuda)", name);
    return NULL;
}
