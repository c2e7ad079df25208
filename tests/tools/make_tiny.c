// tests/tools/make_tiny.c — writes the tiny random models the CLI tests use:
//   make_tiny DIR  ->  DIR/tiny.gguf (Llama, GQA, Q8_0 matrices, byte-fallback SPM vocab)
//                      DIR/tiny-hf/ (the same weights as an HF F32 directory)
#include <stdio.h>
#include <sys/stat.h>

#include "tensors.h"
#include "testmodel.h"
#include "util.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_tiny DIR\n");
        return 2;
    }
    tm_spec s = {.L = 4, .C = 64, .NH = 4, .NKV = 2, .HD = 16, .FF = 128, .V = 320,
                 .rope_theta = 10000.f, .eps = 1e-5f, .tied = 1, .seed = 77, .max_pos = 512};
    char path[4096];
    mkdir(argv[1], 0755);
    snprintf(path, sizeof path, "%s/tiny.gguf", argv[1]);
    if (tm_write_gguf(&s, path, BIPO_DT_Q8_0, 3) != 0) {
        fprintf(stderr, "make_tiny: %s\n", bipo_last_error());
        return 1;
    }
    snprintf(path, sizeof path, "%s/tiny-hf", argv[1]);
    mkdir(path, 0755);
    if (tm_write_hf(&s, path, BIPO_DT_F32, 1) != 0) {
        fprintf(stderr, "make_tiny: %s\n", bipo_last_error());
        return 1;
    }
    return 0;
}
