/* duet_image.h - for tests and fuzz targets: a .duet image rebuilt with a
 * changed meta JSON or changed blob bytes and every checksum recomputed
 * (header, meta, blob chunks), so that what a hostile file can hold (a NaN
 * weight, 80,000 tensors, a bad adapter name) reaches the checks behind the
 * checksums. Layout as docs/FORMAT.md. */
#ifndef DUET_TEST_DUET_IMAGE_H
#define DUET_TEST_DUET_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* The whole file in a 64-byte aligned malloc'd buffer (free()), or NULL. */
unsigned char *duet_image_read(const char *path, size_t *len);

/* The parsed meta JSON of an image (cJSON_Delete it), or NULL. */
cJSON *duet_image_meta(const unsigned char *img, size_t len);

/* The file offset of field `field` ("data", "scales") of tensor `name` in
 * meta, or -1. */
long long duet_image_tensor(const cJSON *meta, const char *name, const char *field);

/* A new image (64-byte aligned malloc'd, free()) from meta, whose offsets
 * are those of `old` (they are shifted to the new meta size), and the blob
 * section of `old` (as it is now: changed bytes are hashed again).
 * blob_hashes are recomputed over the same chunks; meta is modified. */
unsigned char *duet_image_build(const unsigned char *old, size_t old_len, cJSON *meta, size_t *out_len);

/* Writes len bytes to path; 0 or -1. */
int duet_image_write(const char *path, const unsigned char *img, size_t len);

#endif
