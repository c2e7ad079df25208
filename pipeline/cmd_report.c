// pipeline/cmd_report.c — `bipo-pipeline report LIB.h5 -o|--output REPORT.html`: the library
// as one self-contained HTML page (pipeline/report.c). Written atomically: the page goes to
// "<out>.tmp.<pid>", is flushed and fsync'ed, then rename()d over <out>, so a reader never sees
// half a page and a failure leaves any previous report in place. A missing or damaged library
// is one error line on stderr, exit 1; nothing is written.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h" // defines: cmd_report
#include "report.h"   // defines: bipo_report_write
#include "store.h"    // defines: bipo_store_open, bipo_store_close
#include "util.h"     // defines: bipo_last_error, bipo_set_error

static const char *REPORT_USAGE = "report LIB.h5 -o|--output REPORT.html";

static int usage_error(const char *what, const char *arg) {
    fprintf(stderr, "bipo-pipeline report: %s%s%s\nusage: bipo-pipeline %s\n", what, arg ? " " : "",
            arg ? arg : "", REPORT_USAGE);
    return 2;
}

// The page into tmp, then fsync + rename over out. 0 ok, -1 with bipo_last_error().
static int write_atomic(bipo_store *s, const char *lib, const char *out) {
    size_t n = strlen(out) + 32;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%s.tmp.%ld", out, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        bipo_set_error("cannot create %s: %s (is the directory there and writable?)", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    int rc = bipo_report_write(s, lib, f);
    if (!rc && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        bipo_set_error("cannot write %s: %s", tmp, strerror(errno)), rc = -1;
    if (fclose(f) != 0 && !rc) bipo_set_error("cannot write %s: %s", tmp, strerror(errno)), rc = -1;
    if (!rc && rename(tmp, out) != 0) bipo_set_error("cannot rename %s to %s: %s", tmp, out, strerror(errno)), rc = -1;
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}

int cmd_report(int argc, char **argv) {
    const char *lib = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (i + 1 >= argc) return usage_error("missing file after", argv[i]);
            out = argv[++i];
        } else if (argv[i][0] == '-' || lib)
            return usage_error("unexpected argument", argv[i]);
        else
            lib = argv[i];
    }
    if (!lib) return usage_error("need a library file", NULL);
    if (!out) return usage_error("need an output file (-o REPORT.html)", NULL);
    bipo_store *s = bipo_store_open(lib, BIPO_STORE_READ);
    int rc = s ? write_atomic(s, lib, out) : -1;
    if (rc) fprintf(stderr, "bipo-pipeline report: %s\n", bipo_last_error());
    bipo_store_close(s);
    return rc ? 1 : 0;
}
