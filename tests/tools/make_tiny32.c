// tests/tools/make_tiny32.c — a tiny random model with another hidden size than make_tiny's
// (C = 32 instead of 64) for the eval CLI test's transfer check:  make_tiny32 DIR -> DIR/tiny32.gguf
#include <stdio.h>
#include <sys/stat.h>

#include "tensors.h"
#include "testmodel.h"
#include "util.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_tiny32 DIR\n");
        return 2;
    }
    tm_spec s = {.L = 3, .C = 32, .NH = 4, .NKV = 2, .HD = 8, .FF = 64, .V = 320,
                 .rope_theta = 10000.f, .eps = 1e-5f, .tied = 1, .seed = 78, .max_pos = 512};
    char path[4096];
    mkdir(argv[1], 0755);
    snprintf(path, sizeof path, "%s/tiny32.gguf", argv[1]);
    if (tm_write_gguf(&s, path, BIPO_DT_Q8_0, 3) != 0) {
        fprintf(stderr, "make_tiny32: %s\n", bipo_last_error());
        return 1;
    }
    return 0;
}
