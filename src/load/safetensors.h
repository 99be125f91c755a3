/* safetensors.h - read-only view of one .safetensors file.
 * The file is memory-mapped; tensor data points into the mapping and stays
 * valid until st_close(). Every header field and offset is checked at open:
 * after st_open() succeeds, each tensor's bytes lie inside the file, match its
 * dtype and shape, and no two tensors overlap. */
#ifndef DUET_SAFETENSORS_H
#define DUET_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "kern/kern.h"
#include "util/err.h"

#define ST_MAX_DIMS 8

typedef struct StTensor {
    char *name;
    DType dtype;                  /* DT_F32, DT_F16 or DT_BF16 */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;             /* into the mapping; 2-byte aligned at least */
    size_t nbytes;
} StTensor;

typedef struct StFile {
    char *path;
    void *map;        /* NULL when parsed from a caller's buffer */
    size_t size;
    int n;
    StTensor *t;      /* sorted by data offset */
} StFile;

/* Maps and parses `path`. 0 on success; -1 with *e naming the file, the
 * tensor and the field at fault. On failure *f is left closed. */
int st_open(StFile *f, const char *path, Err *e);

/* Parses a safetensors image already in memory (buf must outlive *f); `name`
 * is used in messages. Used by st_open and by the fuzz target. */
int st_parse(StFile *f, const void *buf, size_t size, const char *name, Err *e);

/* Unmaps and frees; safe on a zeroed or already-closed StFile. */
void st_close(StFile *f);

/* The tensor called `name`, or NULL. */
const StTensor *st_find(const StFile *f, const char *name);

/* Number of elements of a tensor. */
int64_t st_numel(const StTensor *t);

#endif
