// workers/safetensors.c — Hugging Face .safetensors files and model directories.
//
// File layout:
//   u64 N (little endian) | N bytes of JSON header | data
//   header = { "__metadata__": {...} (ignored),
//              "<name>": {"dtype": "F32"|"F16"|"BF16", "shape": [d0, d1, ...],
//                         "data_offsets": [begin, end]}, ... }
//   offsets are relative to the start of the data (byte 8 + N); end - begin = numel * elemsize.
// A model directory has config.json and either model.safetensors or
// model.safetensors.index.json, whose "weight_map" maps tensor name -> shard file name.
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tensors.h" // defines: bipo_tensor_dir, bipo_tensor_info, bipo_format_map
#include "util.h" // defines: bipo_set_error, xmalloc, xrealloc, bipo_file_exists

#define ST_MAX_HEADER (100u << 20) // the safetensors spec caps the header at 100 MB
#define DIR_HINT "expected config.json and model.safetensors or model.safetensors.index.json"

static void info_free(bipo_tensor_info *t, size_t n) {
    for (size_t i = 0; i < n; i++) free(t[i].name);
    free(t);
}

static int st_dtype(const char *s, uint32_t *dt) {
    if (!strcmp(s, "F32")) *dt = BIPO_DT_F32;
    else if (!strcmp(s, "F16")) *dt = BIPO_DT_F16;
    else if (!strcmp(s, "BF16")) *dt = BIPO_DT_BF16;
    else return -1;
    return 0;
}

// A JSON integer >= 0 into *v; -1 otherwise.
static int json_u64(const json_t *j, uint64_t *v) {
    if (!json_is_integer(j) || json_integer_value(j) < 0) return -1;
    *v = (uint64_t)json_integer_value(j);
    return 0;
}

// One header entry -> *t (data pointer into the mapping). data/data_len: the data section.
static int parse_entry(const char *path, const char *name, json_t *e, const uint8_t *data,
                       size_t data_len, bipo_tensor_info *t) {
    if (!json_is_object(e)) {
        bipo_set_error("%s: tensor '%s': header entry is not a JSON object", path, name);
        return -1;
    }
    json_t *jd = json_object_get(e, "dtype"), *js = json_object_get(e, "shape"),
           *jo = json_object_get(e, "data_offsets");
    if (!json_is_string(jd)) {
        bipo_set_error("%s: tensor '%s': dtype is missing or not a string", path, name);
        return -1;
    }
    if (st_dtype(json_string_value(jd), &t->dtype)) {
        bipo_set_error("%s: tensor '%s': dtype %s is not supported (supported: F32, F16, BF16) "
                       "— convert the checkpoint to a float type", path, name,
                       json_string_value(jd));
        return -1;
    }
    if (!json_is_array(js) || json_array_size(js) > 4) {
        bipo_set_error("%s: tensor '%s': shape is missing, not an array, or has more than 4 "
                       "dimensions", path, name);
        return -1;
    }
    t->ndim = (int)json_array_size(js);
    t->numel = 1;
    for (int k = 0; k < 4; k++) t->shape[k] = 1;
    for (int k = 0; k < t->ndim; k++) {
        if (json_u64(json_array_get(js, (size_t)k), &t->shape[k]) ||
            __builtin_mul_overflow(t->numel, t->shape[k], &t->numel)) {
            bipo_set_error("%s: tensor '%s': shape[%d] is not a non-negative integer or the "
                           "shape overflows", path, name, k);
            return -1;
        }
    }
    uint64_t b, en;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || json_u64(json_array_get(jo, 0), &b) ||
        json_u64(json_array_get(jo, 1), &en)) {
        bipo_set_error("%s: tensor '%s': data_offsets must be [begin, end] with non-negative "
                       "integers", path, name);
        return -1;
    }
    if (en < b) {
        bipo_set_error("%s: tensor '%s': data_offsets [%llu, %llu] end before they begin — the "
                       "header is corrupt", path, name, (unsigned long long)b,
                       (unsigned long long)en);
        return -1;
    }
    if (en > data_len) {
        bipo_set_error("%s: tensor '%s': data_offsets end %llu is past the end of the data "
                       "(%zu bytes) — the file is truncated; re-download it", path, name,
                       (unsigned long long)en, data_len);
        return -1;
    }
    uint64_t want = t->numel * 2 * (t->dtype == BIPO_DT_F32 ? 2 : 1); // numel <= data_len here
    if (t->numel > data_len || en - b != want) {
        bipo_set_error("%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but its "
                       "shape and dtype (%s) need %llu — the header is inconsistent", path, name,
                       (unsigned long long)b, (unsigned long long)en,
                       (unsigned long long)(en - b), json_string_value(jd),
                       t->numel > data_len ? 0ull : (unsigned long long)want);
        return -1;
    }
    t->name = xstrdup(name);
    t->data = data + b;
    t->nbytes = (size_t)(en - b);
    return 0;
}

// Parse the header of a mapped file into a fresh array of tensors.
static int parse_header(const char *path, const uint8_t *map, size_t size, bipo_tensor_info **out,
                        size_t *n_out) {
    if (size < 8) {
        bipo_set_error("%s: header length: file is %zu bytes, too short for the 8-byte header "
                       "length — the file is truncated; re-download it", path, size);
        return -1;
    }
    uint64_t hlen;
    memcpy(&hlen, map, 8);
    if (hlen > ST_MAX_HEADER) {
        bipo_set_error("%s: header length: %llu bytes is absurd (the format allows 100 MB) — "
                       "not a safetensors file, or it is corrupt", path, (unsigned long long)hlen);
        return -1;
    }
    if (hlen > size - 8) {
        bipo_set_error("%s: header length: %llu-byte JSON header runs past the end of the file "
                       "(%zu bytes) — the file is truncated; re-download it", path,
                       (unsigned long long)hlen, size);
        return -1;
    }
    json_error_t err;
    json_t *root = json_loadb((const char *)map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        bipo_set_error("%s: JSON header: %s at line %d, column %d (byte %d of the header) — the "
                       "file is corrupt", path, err.text, err.line, err.column, err.position);
        return -1;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        bipo_set_error("%s: JSON header: not a JSON object — not a safetensors file", path);
        return -1;
    }
    const uint8_t *data = map + 8 + hlen;
    size_t data_len = size - 8 - (size_t)hlen, n = 0;
    bipo_tensor_info *t = xcalloc(json_object_size(root) + 1, sizeof(*t));
    const char *name;
    json_t *e;
    int rc = 0;
    json_object_foreach(root, name, e) {
        if (!strcmp(name, "__metadata__")) continue;
        if (parse_entry(path, name, e, data, data_len, &t[n])) {
            rc = -1;
            break;
        }
        n++;
    }
    json_decref(root);
    if (rc) {
        info_free(t, n);
        return -1;
    }
    *out = t;
    *n_out = n;
    return 0;
}

int bipo_safetensors_open_file(bipo_tensor_dir *d, const char *path) {
    size_t size;
    void *map = bipo_format_map(path, &size);
    if (!map) return -1;
    bipo_tensor_info *t;
    size_t n;
    if (parse_header(path, map, size, &t, &n)) {
        bipo_format_unmap(map, size);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const bipo_tensor_info *prev = bipo_tensor_dir_find(d, t[i].name);
        if (prev) {
            bipo_set_error("%s: tensor '%s': also defined in %s — duplicate tensor", path,
                           t[i].name, prev->file);
            info_free(t, n);
            bipo_format_unmap(map, size);
            return -1;
        }
    }
    size_t k = d->n_maps++;
    d->maps = xrealloc(d->maps, d->n_maps * sizeof(*d->maps));
    d->map_sizes = xrealloc(d->map_sizes, d->n_maps * sizeof(*d->map_sizes));
    d->files = xrealloc(d->files, d->n_maps * sizeof(*d->files));
    d->maps[k] = map;
    d->map_sizes[k] = size;
    d->files[k] = xstrdup(path);
    d->t = xrealloc(d->t, (d->n + n + 1) * sizeof(*d->t));
    for (size_t i = 0; i < n; i++) {
        t[i].file = d->files[k];
        d->t[d->n + i] = t[i];
    }
    d->n += n;
    free(t); // names moved into d
    return 0;
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

// model.safetensors.index.json: open each shard named in weight_map once, then check that
// every listed tensor is in the shard the index names.
static int open_index(bipo_tensor_dir *d, const char *dir, const char *index) {
    json_error_t err;
    json_t *root = json_load_file(index, 0, &err);
    if (!root) {
        bipo_set_error("%s: %s at line %d, column %d — the index is not valid JSON", index,
                       err.text, err.line, err.column);
        return -1;
    }
    json_t *wm = json_object_get(root, "weight_map");
    int rc = 0;
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        bipo_set_error("%s: weight_map: missing, empty or not an object", index);
        rc = -1;
    }
    const char *name;
    json_t *v;
    if (!rc) json_object_foreach(wm, name, v) {
        const char *shard = json_string_value(v);
        if (!shard || !*shard || strchr(shard, '/') || !strcmp(shard, "..")) {
            bipo_set_error("%s: weight_map: tensor '%s': shard must be a file name in the model "
                           "directory", index, name);
            rc = -1;
            break;
        }
        char *sp = path_join(dir, shard);
        int seen = 0;
        for (size_t k = 0; k < d->n_maps && !seen; k++) seen = !strcmp(d->files[k], sp);
        if (!seen && !bipo_file_exists(sp)) {
            bipo_set_error("%s: shard listed in %s (for tensor '%s') is missing — re-download "
                           "the model", sp, index, name);
            rc = -1;
        } else if (!seen) {
            rc = bipo_safetensors_open_file(d, sp);
        }
        free(sp);
        if (rc) break;
    }
    if (!rc) json_object_foreach(wm, name, v) {
        const bipo_tensor_info *t = bipo_tensor_dir_find(d, name);
        const char *shard = json_string_value(v);
        const char *base = t ? strrchr(t->file, '/') : NULL;
        if (!t || strcmp(base ? base + 1 : t->file, shard)) {
            bipo_set_error("%s: weight_map: tensor '%s' is listed in shard %s, but that file does "
                           "not contain it — the index and shards disagree", index, name, shard);
            rc = -1;
            break;
        }
    }
    json_decref(root);
    return rc;
}

int bipo_safetensors_open_dir(bipo_tensor_dir *d, const char *dir) {
    memset(d, 0, sizeof *d);
    if (!bipo_is_dir(dir)) {
        bipo_set_error("%s: model directory does not exist or is not a directory (%s)", dir,
                       DIR_HINT);
        return -1;
    }
    char *single = path_join(dir, "model.safetensors");
    char *index = path_join(dir, "model.safetensors.index.json");
    int rc;
    if (bipo_file_exists(single)) {
        rc = bipo_safetensors_open_file(d, single);
    } else if (bipo_file_exists(index)) {
        rc = open_index(d, dir, index);
    } else {
        bipo_set_error("%s: no model.safetensors or model.safetensors.index.json in the model "
                       "directory (%s)", dir, DIR_HINT);
        rc = -1;
    }
    free(single);
    free(index);
    if (rc) bipo_tensor_dir_free(d);
    return rc;
}

void bipo_tensor_dir_free(bipo_tensor_dir *d) {
    for (size_t i = 0; i < d->n; i++) free(d->t[i].name);
    free(d->t);
    for (size_t k = 0; k < d->n_maps; k++) {
        bipo_format_unmap(d->maps[k], d->map_sizes[k]);
        free(d->files[k]);
    }
    free(d->maps);
    free(d->map_sizes);
    free(d->files);
    memset(d, 0, sizeof *d);
}

const bipo_tensor_info *bipo_tensor_dir_find(const bipo_tensor_dir *d, const char *name) {
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->t[i].name, name)) return &d->t[i];
    return NULL;
}
