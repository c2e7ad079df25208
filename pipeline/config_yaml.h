// pipeline/config_yaml.h — config.c's YAML readers for the other config sections
// (pipeline/config_eval.c). Not an API beyond the config files: each wraps the static helper of
// the same name in config.c, so every section reports errors the same way:
//     file:line:column: key.path: problem (hint)
#ifndef BIPO_CONFIG_YAML_H
#define BIPO_CONFIG_YAML_H
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "config.h" // defines: bipo_mark, bipo_layer_list

typedef struct bipo_yaml_ctx bipo_yaml_ctx; // the document being read (config.c)

bipo_mark bipo_yaml_mark(const yaml_node_t *n);
// "file:line:column: key: problem" at node n; always returns -1.
int bipo_yaml_fail(bipo_yaml_ctx *x, const yaml_node_t *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
const char *bipo_yaml_file(const bipo_yaml_ctx *x);
yaml_node_t *bipo_yaml_node(bipo_yaml_ctx *x, int id);
int bipo_yaml_is_null(const yaml_node_t *n);
const char *bipo_yaml_what(const yaml_node_t *n, char *buf, size_t cap); // "a list", ...
// Mapping with known keys only (unknown: "did you mean"; duplicates: both lines).
int bipo_yaml_check_keys(bipo_yaml_ctx *x, yaml_node_t *map, const char *prefix, const char *const *known);
yaml_node_t *bipo_yaml_get(bipo_yaml_ctx *x, yaml_node_t *map, const char *name);
int bipo_yaml_str(bipo_yaml_ctx *x, yaml_node_t *v, const char *key, int allow_null, char **out);
int bipo_yaml_double(bipo_yaml_ctx *x, yaml_node_t *v, const char *key, double *out);
int bipo_yaml_size(bipo_yaml_ctx *x, yaml_node_t *v, const char *key, size_t lo, size_t *out);
int bipo_yaml_u64(bipo_yaml_ctx *x, yaml_node_t *v, const char *key, uint64_t *out);
int bipo_yaml_choice(bipo_yaml_ctx *x, yaml_node_t *v, const char *key, const char *const *names, int *out);
int bipo_yaml_path(bipo_yaml_ctx *x, yaml_node_t *v, const char *key, char **out); // resolved
int bipo_yaml_layers(bipo_yaml_ctx *x, yaml_node_t *v, const char *key, bipo_layer_list *l);
int bipo_yaml_name(bipo_yaml_ctx *x, yaml_node_t *v, const char *key, char **out); // HDF5 group name
// ${name} as paths expand it (BIPO_DATA defaults to the fetch-data folder); NULL when unset.
const char *bipo_config_env(const char *name, char *buf, size_t cap);

#endif
