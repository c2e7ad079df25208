// tests/test_tokenizer_lib.c — helpers shared by test_tokenizer and test_tokenizer_oracle.
#include <stdlib.h>

// Parses space-separated ids ("  15043 3186") into out (room for strlen(s)/2+1 ids);
// returns the count.
size_t tt_parse_ids(const char *s, int *out) {
    size_t n = 0;
    for (const char *q = s; *q;) {
        char *end;
        long v = strtol(q, &end, 10);
        if (end == q) break;
        out[n++] = (int)v;
        q = end;
    }
    return n;
}
