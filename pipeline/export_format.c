// pipeline/export_format.c — see export_format.h: the byte buffer, the format names, the raw
// f32 encoding and the all-or-nothing file write shared by every export format.
#include "export_format.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h" // defines: xrealloc, bipo_set_error

void ebuf_put(export_buf *b, const void *x, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, x, n);
    b->n += n;
}
static void put_le(export_buf *b, uint64_t x, size_t bytes) {
    unsigned char t[8];
    for (size_t i = 0; i < bytes; i++) t[i] = (unsigned char)(x >> (8 * i));
    ebuf_put(b, t, bytes);
}
void ebuf_u16(export_buf *b, uint16_t x) { put_le(b, x, 2); }
void ebuf_u32(export_buf *b, uint32_t x) { put_le(b, x, 4); }
void ebuf_u64(export_buf *b, uint64_t x) { put_le(b, x, 8); }
void ebuf_str(export_buf *b, const char *s) { ebuf_put(b, s, strlen(s)); }
void ebuf_f32(export_buf *b, const float *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        ebuf_u32(b, u);
    }
}
void ebuf_pad(export_buf *b, size_t align, unsigned char fill) {
    while (b->n % align) ebuf_put(b, &fill, 1);
}
void ebuf_free(export_buf *b) {
    free(b->p);
    *b = (export_buf){0};
}

static const char *NAMES[] = {"f32", "gguf", "safetensors", "pt"};

int export_format_parse(const char *name, export_format *f) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, NAMES[i])) {
            *f = (export_format)i;
            return 0;
        }
    bipo_set_error("--format: unknown format '%s' (expected f32, gguf, safetensors or pt)", name);
    return -1;
}
const char *export_format_ext(export_format f) { return NAMES[f]; }

void export_layer_note(const export_vec *e, char *out, size_t n) {
    snprintf(out, n, "added to the output of decoder layer %d (model.layers[%d], HF "
                     "hidden_states[%d]) at every position", e->layer, e->layer, e->layer + 1);
}

int export_encode(export_format f, const export_vec *e, export_buf *out) {
    switch (f) {
    case EXPORT_GGUF: return export_gguf(e, out);
    case EXPORT_SAFETENSORS: return export_safetensors(e, out);
    case EXPORT_PT: return export_pt(e, out);
    case EXPORT_F32: break;
    }
    ebuf_f32(out, e->v, e->C); // what `generate --vector` reads
    return 0;
}

// ---- all-or-nothing write ------------------------------------------------------------------
static int write_all(int fd, const unsigned char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int export_write_atomic(const char *path, const export_buf *b) {
    char tmp[4200], dir[4200];
    if (strlen(path) > 4000) {
        bipo_set_error("%.60s...: output path too long", path);
        return -1;
    }
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) + (slash == path), path);
    else snprintf(dir, sizeof dir, ".");
    // The temp file sits in the target's folder so rename() is atomic (same file system).
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        bipo_set_error("%s: cannot write: %s (is the folder %s there and writable?)", path,
                       strerror(errno), dir);
        return -1;
    }
    mode_t um = umask(0); // mkstemp makes 0600: give the file the mode fopen() would
    umask(um);
    int err = 0;
    errno = 0;
    if (write_all(fd, b->p, b->n) != 0 || fchmod(fd, 0666 & ~um) != 0 || fsync(fd) != 0)
        err = errno ? errno : EIO;
    if (close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        bipo_set_error("%s: cannot write: %s", path, strerror(err));
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY); // make the rename itself durable
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}
