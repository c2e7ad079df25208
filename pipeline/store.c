// pipeline/store.c — see store.h and docs/LIBRARY.md. Opening the vector library and writing
// to it: the transaction (lock, side file, fsync, rename), then the writes of a run, a
// checkpoint and a provenance record. HDF5 helpers: store_h5.c; reads, listing: store_read.c.
#define _GNU_SOURCE // copy_file_range
#include "store_internal.h" // defines: bipo_store, H5_TRY, FAIL, put_f32, store_err

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h> // defines: FICLONE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// ---- names and paths (writes and reads share them) -----------------------------------------
static int valid_name(const char *what, const char *v, int hash) {
    if (!v || !*v) {
        store_err("%s is empty", what);
        return -1;
    }
    size_t n = strlen(v);
    const char *ok = hash ? "0123456789abcdefABCDEFghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ"
                          : "0123456789abcdefABCDEFghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ._+=@-";
    if (n >= BIPO_NAME_MAX || strspn(v, ok) != n || v[0] == '.' || (hash && n < 12)) {
        store_err("%s '%s' is not a valid name (%s)", what, v,
                  hash ? "expected at least 12 letters/digits, e.g. a sha256 hex digest"
                       : "use 1-127 of A-Z a-z 0-9 . _ + = @ -, not starting with '.'; e.g. "
                         "SmolLM2-135M-Instruct for HuggingFaceTB/SmolLM2-135M-Instruct");
        return -1;
    }
    return 0;
}
int valid_key(const bipo_job_key *k) {
    if (valid_name("model id", k->model_id, 0) || valid_name("behavior", k->behavior, 0) ||
        valid_name("config hash", k->config_hash, 1))
        return -1;
    if (k->layer < 0 || k->layer > 100000) {
        store_err("layer %d out of range", k->layer);
        return -1;
    }
    return 0;
}
void layer_path(char *out, size_t n, const char *model, const char *behavior, int layer) {
    snprintf(out, n, "models/%s/behaviors/%s/layer_%d", model, behavior, layer);
}

void ckpt_name(char *out, size_t n, const bipo_job_key *k) {
    snprintf(out, n, "%s:%s:layer_%d:%s", k->model_id, k->behavior, k->layer, k->config_hash);
}

// The arrays of a run or checkpoint (read back by store_read.c get_run_data).
static int put_run_data(hid_t g, const bipo_run_data *d) {
    hid_t ev = -1;
    int rc = -1;
    H5_TRY(put_f32(g, "vector", d->vector, d->C));
    H5_TRY(put_f32(g, "loss", d->loss, d->n_steps));
    H5_TRY(put_f32(g, "heldout_loss_pos", d->heldout_pos, d->n_epochs));
    H5_TRY(put_f32(g, "heldout_loss_neg", d->heldout_neg, d->n_epochs));
    H5_TRY(ev = H5Gcreate2(g, "epoch_vectors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    for (size_t e = 0; e < d->n_saved; e++) {
        char name[32];
        snprintf(name, sizeof name, "epoch_%d", (int)d->epoch_ids[e]);
        H5_TRY(put_f32(ev, name, d->epoch_vectors + e * d->C, d->C));
    }
    rc = 0;
fail:
    return H5_DONE(rc, ev);
}

static void iso_now(char out[32]) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

// ---- files, lock and transaction ------------------------------------------------------------
static hid_t make_fapl(void) {
    hid_t p = -1;
    H5_TRY(p = H5Pcreate(H5P_FILE_ACCESS));
    H5_TRY(H5Pset_fclose_degree(p, H5F_CLOSE_STRONG)); // close = everything closed, flushed
    // Our own lock + rename replace HDF5's flock, which fails on some cluster file systems.
    H5_TRY(H5Pset_file_locking(p, 0, 1));
    return p;
fail:
    H5_DONE(-1, p);
    return -1;
}

static hid_t h5_open(const char *path, unsigned flags) {
    hid_t fapl = -1, f = -1;
    H5_TRY(fapl = make_fapl());
    H5_TRY(f = H5Fopen(path, flags, fapl));
fail:
    H5_DONE(0, fapl);
    return f;
}

// Opens path read-only and checks it is a bipo library: one clear error naming the file.
static hid_t open_library(const char *path) {
    struct stat st;
    hid_t f = -1;
    htri_t is;
    char fmt[64];
    int64_t ver = 0;
    if (stat(path, &st) != 0) FAIL("cannot open: %s", strerror(errno));
    if (!S_ISREG(st.st_mode)) FAIL("not a regular file");
    is = H5Fis_hdf5(path); // negative ("cannot tell") is reported as not HDF5 too
    H5Eclear2(H5E_DEFAULT);
    if (is <= 0)
        FAIL("not an HDF5 file (a bipo vector library is HDF5; was another file given, or "
             "is the path a typo?)");
    if ((f = h5_open(path, H5F_ACC_RDONLY)) < 0) FAIL("HDF5 file cannot be opened (damaged?)");
    if (get_s(f, "format", fmt, sizeof fmt) <= 0 || strcmp(fmt, BIPO_LIBRARY_FORMAT) != 0)
        FAIL("an HDF5 file but not a bipo vector library (no root attribute format = \"%s\"); "
             "refusing to use it — give a new path for the library",
             BIPO_LIBRARY_FORMAT);
    if (get_i(f, "format_version", &ver) <= 0 || ver < 1 || ver > BIPO_LIBRARY_VERSION)
        FAIL("bipo library format_version %lld is not supported (this program reads 1..%d)",
             (long long)ver, BIPO_LIBRARY_VERSION);
    return f;
fail:
    H5_DONE(0, f);
    return -1;
}

// Copies src to dst (new file, same permission bits): reflink where the file system allows,
// else copy_file_range, else read/write.
static int copy_file(const char *src, const char *dst) {
    int in = -1, out = -1, rc = -1;
    struct stat st;
    if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0 || fstat(in, &st) != 0) goto fail;
    if ((out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0777)) < 0)
        goto fail;
    if (ioctl(out, FICLONE, in) != 0) {
        off_t left = st.st_size;
        while (left > 0) {
            ssize_t k = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
            if (k <= 0) break;
            left -= k;
        }
        if (left > 0) { // copy_file_range unsupported here: plain copy from where it stopped
            char buf[1 << 16];
            if (lseek(in, st.st_size - left, SEEK_SET) < 0 ||
                lseek(out, st.st_size - left, SEEK_SET) < 0)
                goto fail;
            ssize_t k;
            while ((k = read(in, buf, sizeof buf)) > 0)
                for (ssize_t w = 0, m; w < k; w += m)
                    if ((m = write(out, buf + w, (size_t)(k - w))) <= 0) goto fail;
            if (k < 0) goto fail;
        }
    }
    rc = 0;
fail:
    if (rc) store_err("cannot copy the library to the side file %s: %s", dst, strerror(errno));
    if (in >= 0) close(in);
    if (out >= 0 && close(out) != 0 && rc == 0) {
        store_err("cannot write the side file %s: %s", dst, strerror(errno));
        rc = -1;
    }
    return rc;
}

static int fsync_path(const char *path, int flags) {
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        store_err("fsync %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static char *dir_of(const char *path) {
    char *d = xstrdup(path), *slash = strrchr(d, '/');
    if (!slash)
        strcpy(d, ".");
    else if (slash == d)
        d[1] = 0;
    else
        *slash = 0;
    return d;
}

// Removes "<path>.tmp.<digits>" left by a killed writer (we hold the lock: nobody else writes).
static void remove_stale(const bipo_store *s) {
    char *dir = dir_of(s->path);
    const char *base = strrchr(s->path, '/') ? strrchr(s->path, '/') + 1 : s->path;
    size_t nb = strlen(base);
    DIR *dp = opendir(dir);
    struct dirent *e;
    while (dp && (e = readdir(dp))) {
        const char *n = e->d_name;
        if (strncmp(n, base, nb) != 0 || strncmp(n + nb, ".tmp.", 5) != 0) continue;
        const char *p = n + nb + 5;
        if (!*p || strspn(p, "0123456789") != strlen(p)) continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", dir, n);
        unlink(full);
    }
    if (dp) closedir(dp);
    free(dir);
}

// Starts a transaction: the side file is a copy of the library (or a new library).
static int txn_begin(bipo_store *s, int create) {
    hid_t fcpl = -1, fapl = -1;
    if (s->mode != BIPO_STORE_WRITE) {
        store_err("opened read-only; open it for writing to change it");
        return -1;
    }
    if (s->wfid >= 0) {
        store_err("a transaction is already open");
        return -1;
    }
    s->failed = 0;
    if (create) {
        H5_TRY(fcpl = H5Pcreate(H5P_FILE_CREATE));
        // Free-space tracking persists across sessions, so space freed by replacing a
        // checkpoint in one transaction is reused by the next.
        H5_TRY(H5Pset_file_space_strategy(fcpl, H5F_FSPACE_STRATEGY_FSM_AGGR, 1, 1));
        H5_TRY(fapl = make_fapl());
        H5_TRY(s->wfid = H5Fcreate(s->tmp, H5F_ACC_TRUNC, fcpl, fapl));
    } else {
        H5_TRY(copy_file(s->path, s->tmp));
        H5_TRY(s->wfid = h5_open(s->tmp, H5F_ACC_RDWR));
    }
    return H5_DONE(0, fcpl, fapl);
fail:
    H5_DONE(-1, fcpl, fapl);
    s->wfid = -1;
    unlink(s->tmp);
    return -1;
}

void bipo_store_abort(bipo_store *s) {
    if (!s || s->wfid < 0) return;
    H5_DONE(0, s->wfid);
    s->wfid = -1;
    s->batch = 0;
    unlink(s->tmp);
}

// Flush, close, fsync the side file, rename it over the library, fsync the directory.
static int txn_commit(bipo_store *s) {
    char *dir = NULL;
    hid_t f = s->wfid;
    if (s->failed) FAIL("a write in this transaction failed; nothing was committed");
    H5_TRY(H5Fflush(f, H5F_SCOPE_GLOBAL));
    s->wfid = -1;
    H5_TRY(H5_DONE(0, f));
    H5_TRY(fsync_path(s->tmp, O_RDONLY));
    if (rename(s->tmp, s->path) != 0)
        FAIL("cannot rename %s over the library: %s", s->tmp, strerror(errno));
    dir = dir_of(s->path);
    H5_TRY(fsync_path(dir, O_RDONLY | O_DIRECTORY));
    free(dir);
    if (s->fid >= 0) H5_TRY(H5_DONE(0, s->fid));
    s->fid = -1;
    H5_TRY(s->fid = h5_open(s->path, H5F_ACC_RDONLY));
    s->batch = 0;
    return 0;
fail:
    free(dir);
    s->wfid = f >= 0 && H5Iis_valid(f) > 0 ? f : -1;
    bipo_store_abort(s);
    s->batch = 0;
    return -1;
}

// Wraps one write: its own transaction unless inside a batch.
static int write_begin(bipo_store *s) { return s->batch ? 0 : txn_begin(s, 0); }
static int write_end(bipo_store *s, int rc) {
    if (s->batch) {
        if (rc) s->failed = 1;
        return rc;
    }
    if (rc) {
        bipo_store_abort(s);
        return -1;
    }
    return txn_commit(s);
}

bipo_store *bipo_store_open(const char *path, bipo_store_mode mode) {
    bipo_store *s = xcalloc(1, sizeof *s);
    hid_t root = -1;
    char now[32];
    size_t n = strlen(path) + 32;
    s->path = xstrdup(path);
    s->tmp = xmalloc(n);
    s->lockpath = xmalloc(n);
    snprintf(s->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    snprintf(s->lockpath, n, "%s.lock", path);
    s->mode = mode;
    s->lock_fd = -1;
    s->fid = s->wfid = -1;
    ENTER(s);
    H5_TRY(H5Eset_auto2(H5E_DEFAULT, NULL, NULL)); // errors are reported through H5_TRY
    int exists = access(path, F_OK) == 0;
    if (mode == BIPO_STORE_READ || exists) { // validate before creating any file next to it
        H5_TRY(s->fid = open_library(path));
        if (mode == BIPO_STORE_READ) return s;
        H5_TRY(H5_DONE(0, s->fid));
        s->fid = -1;
    }
    s->lock_fd = open(s->lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) FAIL("cannot create the lock file %s: %s", s->lockpath, strerror(errno));
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0)
        FAIL(errno == EWOULDBLOCK ? "another process is writing this library (lock %s is held); "
                                    "two writers at once are not supported"
                                  : "cannot lock %s: %s",
             s->lockpath, strerror(errno));
    remove_stale(s);
    if (access(path, F_OK) == 0) {
        H5_TRY(s->fid = open_library(path));
        return s;
    }
    H5_TRY(txn_begin(s, 1)); // a new library, created through the same rename
    H5_TRY(root = H5Gopen2(s->wfid, "/", H5P_DEFAULT));
    iso_now(now);
    H5_TRY(put_s(root, "format", BIPO_LIBRARY_FORMAT));
    H5_TRY(put_i(root, "format_version", BIPO_LIBRARY_VERSION));
    H5_TRY(put_s(root, "created", now));
    H5_TRY(H5_DONE(0, root));
    root = -1;
    const char *top[] = {"models", "checkpoints", "provenance"};
    for (int k = 0; k < 3; k++) {
        H5_TRY(root = group_ensure(s->wfid, top[k]));
        H5_TRY(H5_DONE(0, root));
        root = -1;
    }
    H5_TRY(txn_commit(s));
    return s;
fail:
    H5_DONE(0, root);
    bipo_store_close(s);
    return NULL;
}

void bipo_store_close(bipo_store *s) {
    if (!s) return;
    bipo_store_abort(s);
    if (s->fid >= 0) H5_DONE(0, s->fid);
    if (s->lock_fd >= 0) close(s->lock_fd); // releases the flock
    free(s->path);
    free(s->tmp);
    free(s->lockpath);
    free(s);
}

const char *bipo_store_path(const bipo_store *s) { return s->path; }

int bipo_store_begin(bipo_store *s) {
    ENTER(s);
    if (txn_begin(s, 0) < 0) return -1;
    s->batch = 1;
    return 0;
}
int bipo_store_commit(bipo_store *s) {
    ENTER(s);
    if (s->wfid < 0) {
        store_err("commit without begin");
        return -1;
    }
    return txn_commit(s);
}

// ---- runs -----------------------------------------------------------------------------------
static double norm2(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

// Every count > 0 needs its array (the caller's data, checked before a transaction starts).
static int data_ok(const char *what, const bipo_run_data *d) {
    if (!d || !d->C || !d->vector || (d->n_steps && !d->loss) ||
        (d->n_epochs && (!d->heldout_pos || !d->heldout_neg)) ||
        (d->n_saved && (!d->epoch_vectors || !d->epoch_ids))) {
        store_err("%s: no vector, or an array missing for its count", what);
        return -1;
    }
    return 0;
}

// /models/<m>: created with m's attrs, or checked against them.
static hid_t model_group(hid_t f, const char *id, const bipo_model_info *m, size_t C) {
    char path[2 * BIPO_NAME_MAX], fp[256];
    hid_t g = -1;
    int64_t hidden = 0;
    int have = 0;
    if ((int64_t)C != m->hidden)
        FAIL("vector has %zu values but model %s has hidden size %lld", C, id,
             (long long)m->hidden);
    snprintf(path, sizeof path, "models/%s", id);
    H5_TRY(have = group_find(f, path, &g));
    if (have) {
        H5_TRY(get_s(g, "fingerprint", fp, sizeof fp));
        H5_TRY(get_i(g, "hidden", &hidden));
        if (m->fingerprint && strcmp(fp, m->fingerprint))
            FAIL("model id '%s' is already in the library with fingerprint %.16s…, this model has "
                 "%.16s… (a different model under the same id: give it another model id)",
                 id, fp, m->fingerprint);
        if (hidden != m->hidden)
            FAIL("model '%s': library hidden %lld, now %lld", id, (long long)hidden,
                 (long long)m->hidden);
        return g;
    }
    H5_TRY(g = H5Gcreate2(f, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5_TRY(put_s(g, "source", m->source ? m->source : ""));
    H5_TRY(put_s(g, "architecture", m->architecture ? m->architecture : ""));
    H5_TRY(put_s(g, "fingerprint", m->fingerprint ? m->fingerprint : ""));
    H5_TRY(put_s(g, "dtype", m->dtype ? m->dtype : ""));
    H5_TRY(put_i(g, "hidden", m->hidden));
    H5_TRY(put_i(g, "layers", m->layers));
    return g;
fail:
    H5_DONE(0, g);
    return -1;
}

static int do_write_run(hid_t f, const bipo_job_key *k, const bipo_model_info *m,
                        const bipo_behavior_info *b, const bipo_run_data *d, const bipo_attr *attrs,
                        size_t n_attrs, char *run_out) {
    hid_t mg = -1, bh = -1, bg = -1, lg = -1, rs = -1, r = -1, sp = -1, t = -1, a = -1;
    char name[BIPO_NAME_MAX], now[32], *paths = NULL;
    int rc = -1;
    htri_t e = 1;
    static const char *OWNED[] = {"status", "config_hash", "finished", "vector_norm"};
    for (size_t i = 0; i < n_attrs; i++)
        for (int j = 0; j < 4; j++)
            if (attrs[i].key && !strcmp(attrs[i].key, OWNED[j]))
                FAIL("attribute '%s' is set by the store, not by the caller", OWNED[j]);
    H5_TRY(mg = model_group(f, k->model_id, m, d->C));
    H5_TRY(bh = group_ensure(mg, "behaviors"));
    H5_TRY(bg = group_ensure(bh, k->behavior));
    if (b) { // data_paths: a 1-D array of fixed-length strings
        hsize_t n = b->n_data_paths;
        size_t w = 1;
        for (size_t i = 0; i < n; i++)
            w = strlen(b->data_paths[i]) + 1 > w ? strlen(b->data_paths[i]) + 1 : w;
        paths = xcalloc(n ? n : 1, w);
        for (size_t i = 0; i < n; i++)
            memcpy(paths + i * w, b->data_paths[i], strlen(b->data_paths[i]));
        H5_TRY(attr_del(bg, "data_paths"));
        H5_TRY(t = str_type(w, 0));
        H5_TRY(sp = H5Screate_simple(1, &n, NULL));
        H5_TRY(a = H5Acreate2(bg, "data_paths", t, sp, H5P_DEFAULT, H5P_DEFAULT));
        if (n) H5_TRY(H5Awrite(a, t, paths));
        H5_TRY(put_s(bg, "data_hash", b->data_hash ? b->data_hash : ""));
    }
    snprintf(name, sizeof name, "layer_%d", k->layer);
    H5_TRY(lg = group_ensure(bg, name));
    H5_TRY(put_i(lg, "layer", k->layer));
    H5_TRY(rs = group_ensure(lg, "runs"));
    for (int n = 1; e; n++) { // first free name: <hash12>, <hash12>-2, ...
        if (n == 1)
            snprintf(name, sizeof name, "%.12s", k->config_hash);
        else
            snprintf(name, sizeof name, "%.12s-%d", k->config_hash, n);
        H5_TRY(e = H5Lexists(rs, name, H5P_DEFAULT));
    }
    H5_TRY(r = H5Gcreate2(rs, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5_TRY(put_run_data(r, d));
    iso_now(now);
    H5_TRY(put_s(r, "created", now)); // replaced by the caller's start time when given
    H5_TRY(put_s(r, "model_fingerprint", m->fingerprint ? m->fingerprint : ""));
    if (b && b->data_hash) H5_TRY(put_s(r, "data_hash", b->data_hash));
    if (d->n_steps) H5_TRY(put_d(r, "final_loss", d->loss[d->n_steps - 1]));
    H5_TRY(put_list(r, attrs, n_attrs));
    H5_TRY(put_s(r, "status", "complete"));
    H5_TRY(put_s(r, "config_hash", k->config_hash));
    H5_TRY(put_s(r, "finished", now));
    H5_TRY(put_d(r, "vector_norm", norm2(d->vector, d->C)));
    H5_TRY(put_s(lg, "newest", name));
    if (run_out) snprintf(run_out, BIPO_NAME_MAX, "%s", name);
    rc = 0;
fail:
    free(paths);
    return H5_DONE(rc, a, sp, t, r, rs, lg, bg, bh, mg);
}

int bipo_store_write_run(bipo_store *s, const bipo_job_key *k, const bipo_model_info *m,
                         const bipo_behavior_info *b, const bipo_run_data *d,
                         const bipo_attr *attrs, size_t n_attrs, char run[BIPO_NAME_MAX]) {
    ENTER(s);
    if (valid_key(k)) return -1;
    if (data_ok("run", d)) return -1;
    if (!m) {
        store_err("run %s/%s/layer_%d: no model info", k->model_id, k->behavior, k->layer);
        return -1;
    }
    if (write_begin(s)) return -1;
    return write_end(s, do_write_run(s->wfid, k, m, b, d, attrs, n_attrs, run));
}

// ---- checkpoints ----------------------------------------------------------------------------
static int do_write_checkpoint(hid_t f, const bipo_job_key *k, const bipo_checkpoint *c) {
    char name[4 * BIPO_NAME_MAX], now[32];
    hid_t cg = -1, g = -1;
    htri_t e;
    int rc = -1;
    ckpt_name(name, sizeof name, k);
    H5_TRY(cg = group_ensure(f, "checkpoints"));
    H5_TRY(e = H5Lexists(cg, name, H5P_DEFAULT));
    if (e) H5_TRY(H5Ldelete(cg, name, H5P_DEFAULT)); // its space is reused (persistent FSM)
    H5_TRY(g = H5Gcreate2(cg, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5_TRY(put_run_data(g, &c->d));
    H5_TRY(put_f32(g, "adam_m", c->adam_m, c->d.C));
    H5_TRY(put_f32(g, "adam_v", c->adam_v, c->d.C));
    H5_TRY(dset_put(g, "rng", H5T_STD_U64LE, H5T_NATIVE_UINT64, c->rng, c->n_rng));
    H5_TRY(dset_put(g, "order", H5T_STD_U64LE, H5T_NATIVE_UINT64, c->order, c->n_order));
    iso_now(now);
    H5_TRY(put_i(g, "step", c->step));
    H5_TRY(put_i(g, "epoch", c->epoch));
    H5_TRY(put_s(g, "model_id", k->model_id));
    H5_TRY(put_s(g, "behavior", k->behavior));
    H5_TRY(put_i(g, "layer", k->layer));
    H5_TRY(put_s(g, "config_hash", k->config_hash));
    H5_TRY(put_s(g, "written", now));
    rc = 0;
fail:
    return H5_DONE(rc, g, cg);
}

int bipo_store_write_checkpoint(bipo_store *s, const bipo_job_key *k, const bipo_checkpoint *c) {
    ENTER(s);
    if (valid_key(k) || data_ok("checkpoint", &c->d)) return -1;
    if (!c->adam_m || !c->adam_v || (c->n_rng && !c->rng) || (c->n_order && !c->order)) {
        store_err("checkpoint: adam_m/adam_v missing, or rng/order missing for its count");
        return -1;
    }
    if (write_begin(s)) return -1;
    return write_end(s, do_write_checkpoint(s->wfid, k, c));
}

static int do_delete_checkpoint(hid_t f, const char *name) {
    hid_t cg = -1;
    htri_t e;
    int rc = -1;
    H5_TRY(cg = group_ensure(f, "checkpoints"));
    H5_TRY(e = H5Lexists(cg, name, H5P_DEFAULT));
    if (e) H5_TRY(H5Ldelete(cg, name, H5P_DEFAULT));
    rc = 0;
fail:
    return H5_DONE(rc, cg);
}

int bipo_store_delete_checkpoint(bipo_store *s, const bipo_job_key *k) {
    char path[5 * BIPO_NAME_MAX] = "checkpoints/";
    hid_t g = -1;
    int have = 0;
    ENTER(s);
    if (valid_key(k)) return -1;
    ckpt_name(path + strlen(path), sizeof path - strlen(path), k);
    H5_TRY(have = group_find(cur(s), path, &g));
    H5_TRY(H5_DONE(0, g));
    if (!have) return 0; // nothing to delete: no transaction
    if (write_begin(s)) return -1;
    return write_end(s, do_delete_checkpoint(s->wfid, path + strlen("checkpoints/")));
fail:
    return -1;
}

// ---- provenance -----------------------------------------------------------------------------
static int do_write_provenance(hid_t f, const char *config_text, const bipo_attr *attrs,
                               size_t n_attrs, char *name_out) {
    char name[BIPO_NAME_MAX], stamp[32], now[32], ver[32];
    hid_t pg = -1, g = -1, t = -1, sp = -1, d = -1;
    unsigned maj, min, rel;
    htri_t e = 1;
    int rc = -1;
    time_t tt = time(NULL);
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(stamp, sizeof stamp, "run_%Y%m%dT%H%M%SZ", &tm);
    H5_TRY(pg = group_ensure(f, "provenance"));
    for (int n = 1; e; n++) { // two pipeline runs in the same second: run_..Z-2
        if (n == 1)
            snprintf(name, sizeof name, "%s", stamp);
        else
            snprintf(name, sizeof name, "%s-%d", stamp, n);
        H5_TRY(e = H5Lexists(pg, name, H5P_DEFAULT));
    }
    H5_TRY(g = H5Gcreate2(pg, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5_TRY(H5get_libversion(&maj, &min, &rel));
    snprintf(ver, sizeof ver, "%u.%u.%u", maj, min, rel);
    iso_now(now);
    H5_TRY(put_s(g, "hdf5_version", ver));
    H5_TRY(put_s(g, "created", now));
    H5_TRY(put_list(g, attrs, n_attrs));
    if (config_text) {
        H5_TRY(t = str_type(strlen(config_text) + 1, 0));
        H5_TRY(sp = H5Screate(H5S_SCALAR));
        H5_TRY(d = H5Dcreate2(g, "config_text", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        H5_TRY(H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, config_text));
    }
    H5_TRY(put_s(pg, "latest", name));
    if (name_out) snprintf(name_out, BIPO_NAME_MAX, "%s", name);
    rc = 0;
fail:
    return H5_DONE(rc, d, sp, t, g, pg);
}

int bipo_store_write_provenance(bipo_store *s, const char *config_text, const bipo_attr *attrs,
                                size_t n_attrs, char name[BIPO_NAME_MAX]) {
    ENTER(s);
    if (write_begin(s)) return -1;
    return write_end(s, do_write_provenance(s->wfid, config_text, attrs, n_attrs, name));
}
