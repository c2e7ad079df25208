// kernels/backend.c — backend selection and the shared size helper.
#include <string.h>

#include "kernels.h" // defines: bipo_backend, bipo_seqs, bipo_backend_cpu, bipo_backend_cuda

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

const bipo_backend *bipo_backend_by_name(const char *name) {
    if (!name || strcmp(name, "auto") == 0) {
        const bipo_backend *be = bipo_backend_cuda();
        return be ? be : bipo_backend_cpu();
    }
    if (strcmp(name, "cpu") == 0) return bipo_backend_cpu();
    if (strcmp(name, "cuda") == 0) return bipo_backend_cuda();
    return NULL;
}
