// tests/lib/testlib.c — see testlib.h.
#include "testlib.h"

#include "kernels.h" // defines: bipo_blas_tune

// Tests run the same OpenBLAS kernel as the program (see kernels/cpu/blas_tune.c), so the
// kernel chosen for this CPU is the one the numeric tests validate. glibc passes argv to
// ELF constructors.
__attribute__((constructor)) static void tl_blas_tune(int argc, char **argv, char **envp) {
    (void)argc, (void)envp;
    bipo_blas_tune(argv);
}

int tl_pass = 0, tl_fail = 0;
static unsigned long long tl_state = 0x9E3779B97F4A7C15ull;

int tl_allclose(const char *what, const float *a, const float *b, size_t n, double atol,
                double rtol) {
    double maxabs = 0, maxrel = 0;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double r = d / (fabs((double)b[i]) + 1e-30);
        if (d > maxabs) maxabs = d;
        if (r > maxrel && fabs((double)b[i]) > atol) maxrel = r;
        if (!(d <= atol + rtol * fabs((double)b[i]))) { // also catches NaN
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: got %.9g want %.9g (diff %.3g)\n", what, i, a[i], b[i], d);
            bad++;
        }
    }
    if (bad) {
        fprintf(stderr, "FAIL %s: %zu/%zu elements off (max abs %.3g, max rel %.3g; atol %.1g rtol %.1g)\n",
                what, bad, n, maxabs, maxrel, atol, rtol);
        tl_fail++;
        return 0;
    }
    tl_pass++;
    return 1;
}

int tl_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, tl_pass, tl_fail);
    return tl_fail ? 1 : 0;
}

void tl_seed(unsigned long long s) { tl_state = s ? s : 1; }
float tl_randf(void) {
    tl_state ^= tl_state >> 12;
    tl_state ^= tl_state << 25;
    tl_state ^= tl_state >> 27;
    unsigned long long r = tl_state * 2685821657736338717ull;
    return (float)((double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
void tl_fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * tl_randf();
}
