/*
 * embedded.h - data files compiled into libjunction (cmake/embed_files.cmake).
 *
 * Each array is sorted by file name; data is NUL-terminated and len excludes the NUL.
 */
#ifndef JN_EMBEDDED_H
#define JN_EMBEDDED_H

#include <stddef.h>

typedef struct {
    const char *name; /* file name without folder, e.g. "0001_environments.sql" */
    const char *data;
    size_t len;
} jn_embedded_file_t;

/* common/store/migrations/NNNN_*.sql */
extern const jn_embedded_file_t jn_embedded_migrations[];
extern const size_t jn_embedded_migrations_count;

/* common/providers/catalog/<name>.json */
extern const jn_embedded_file_t jn_embedded_providers[];
extern const size_t jn_embedded_providers_count;

/* examples/<provider>/<function>.lua: the function templates of each provider (name is
 * "<provider>/<function>.lua") */
extern const jn_embedded_file_t jn_embedded_templates[];
extern const size_t jn_embedded_templates_count;

#endif
