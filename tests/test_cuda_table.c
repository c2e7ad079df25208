// tests/test_cuda_table.c — the CUDA backend's table is complete (no NULL op: the CUDA backend
// has no optional entries, it implements weights_register/release too) and the device probe
// agrees with bipo_backend_open: with no usable device (this machine: cudaGetDeviceCount
// fails with error 35) bipo_backend_cuda() is NULL and "auto" is the CPU backend.
#include <string.h>

#include "cuda/backend_cuda.h" // defines: bipo_cuda_table
#include "kernels.h"           // defines: bipo_backend, bipo_backend_cuda, bipo_backend_open
#include "backend_impl.h" // defines: bipo_backend_cuda, bipo_backend_cpu
#include "testlib.h"           // defines: EXPECT, tl_summary

int main(void) {
    const bipo_backend *t = bipo_cuda_table();
    EXPECT(t != NULL && t->name && strcmp(t->name, "cuda") == 0, "table named cuda");
    // every entry after the name is a function pointer of the same size
    const size_t nfn = (sizeof *t - offsetof(bipo_backend, alloc)) / sizeof(void (*)(void));
    const char *base = (const char *)t + offsetof(bipo_backend, alloc);
    size_t nulls = 0;
    for (size_t i = 0; i < nfn; i++) {
        void (*f)(void);
        memcpy(&f, base + i * sizeof f, sizeof f);
        if (!f) {
            nulls++;
            fprintf(stderr, "FAIL: entry %zu after name is NULL\n", i);
        }
    }
    EXPECT(nulls == 0, "%zu NULL entries of %zu", nulls, nfn);
    EXPECT(nfn >= 30, "the table has %zu function entries (expected >= 30)", nfn);
    const bipo_backend *dev = bipo_backend_cuda(), *aut = bipo_backend_open("auto", 0);
    EXPECT(dev == NULL || dev == t, "bipo_backend_cuda() is NULL or the table");
    EXPECT(aut == (dev ? t : bipo_backend_open("cpu", 0)), "auto picks %s", dev ? "cuda" : "cpu");
    EXPECT(bipo_backend_open("cuda", 0) == dev, "\"cuda\" is bipo_backend_cuda()");
    printf("CUDA device: %s\n", dev ? "present" : "none (CPU fallback)");
    return tl_summary("test_cuda_table");
}
