/*
 * data_cifar.c -- the CIFAR-10 and CIFAR-100 binary formats (alig/data.h).
 *
 * A file is a run of fixed-size records: CIFAR-10 <1 x label><3072 x pixel>,
 * CIFAR-100 <1 x coarse label><1 x fine label><3072 x pixel>; pixels are the
 * red, green and blue 32x32 planes, so a record's pixels are already the
 * (c, h, w) = (3, 32, 32) sample alig-train wants. There is no header: the
 * only checks possible are a whole number of records and labels in range,
 * and both are made for every file.
 */
#include "alig/data.h"
#include "alig/error.h"
#include "data-impl.h" /* alig_gz_* */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CIFAR_PIXELS 3072
#define CIFAR_MAX_FILES 64
#define CIFAR_MAX_BYTES ((int64_t)1 << 40)

/* Read a whole (possibly gzip-compressed) file into *out (malloc'd). */
static int read_all_(const char *path, uint8_t **out, int64_t *size)
{
    *out = NULL;
    *size = 0;
    alig_gz_t *f;
    int rc = alig_gz_open(path, &f);
    if (rc)
        return rc;
    int64_t cap = 0, got = 0;
    uint8_t *buf = NULL;
    for (;;) {
        if (got == cap) {
            if (cap >= CIFAR_MAX_BYTES) {
                rc = alig_fail(ALIG_E_DATA, "%s: larger than %lld bytes; not a CIFAR file?", path,
                               (long long)CIFAR_MAX_BYTES);
                break;
            }
            cap = cap ? 2 * cap : ((int64_t)1 << 22);
            uint8_t *p = realloc(buf, (size_t)cap);
            if (!p) {
                rc = alig_fail(ALIG_E_MEMORY, "%s: cannot allocate %lld bytes", path,
                               (long long)cap);
                break;
            }
            buf = p;
        }
        int64_t r = alig_gz_read(f, buf + got, cap - got);
        if (r < 0) { /* a gzip file cut at a record boundary too: its trailer is missing */
            rc = alig_fail(ALIG_E_DATA, "%s: %s", path, alig_gz_reason(f));
            break;
        }
        got += r;
        if (got < cap)
            break; /* the end of the data */
    }
    alig_gz_close(f);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *size = got;
    return ALIG_OK;
}

/* The files behind `path`: a directory with the standard names, or a comma-separated list. */
static int list_files_(const char *path, int classes, int train, char (*files)[ALIG_PATH_MAX],
                       int *count)
{
    struct stat st;
    *count = 0;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        const char *names10[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                 "data_batch_4.bin", "data_batch_5.bin"};
        const char *one = classes == 100 ? (train ? "train.bin" : "test.bin") : "test_batch.bin";
        int n = classes == 10 && train ? 5 : 1;
        for (int i = 0; i < n; i++) {
            const char *name = n == 5 ? names10[i] : one;
            int w = snprintf(files[i], ALIG_PATH_MAX, "%s/%s", path, name);
            if (w < 0 || w >= ALIG_PATH_MAX)
                return alig_fail(ALIG_E_DATA, "%s: path too long", path);
            if (stat(files[i], &st) != 0)
                return alig_fail(ALIG_E_DATA,
                                 "%s: no %s in this directory: expected the CIFAR-%d binary "
                                 "files (%s; see docs/datasets.md)",
                                 path, name, classes,
                                 classes == 100 ? "train.bin, test.bin"
                                                : "data_batch_1.bin ... data_batch_5.bin, "
                                                  "test_batch.bin");
        }
        *count = n;
        return ALIG_OK;
    }
    const char *s = path;
    for (;;) { /* every item, the one after a trailing comma too: it is empty */
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        while (len && isspace((unsigned char)*s)) {
            s++;
            len--;
        }
        while (len && isspace((unsigned char)s[len - 1]))
            len--;
        if (len == 0)
            return alig_fail(ALIG_E_DATA, "'%s': empty file name in the list", path);
        if (*count == CIFAR_MAX_FILES)
            return alig_fail(ALIG_E_DATA, "'%s': more than %d files", path, CIFAR_MAX_FILES);
        if (len >= ALIG_PATH_MAX)
            return alig_fail(ALIG_E_DATA, "'%.64s...': path too long", s);
        memcpy(files[*count], s, len);
        files[*count][len] = '\0';
        (*count)++;
        if (!comma)
            break;
        s = comma + 1;
    }
    if (*count == 0)
        return alig_fail(ALIG_E_DATA, "CIFAR-%d: no file given", classes);
    return ALIG_OK;
}

int alig_dataset_load_cifar(alig_dataset_t *ds, const char *path, int classes, int train,
                            int64_t limit)
{
    memset(ds, 0, sizeof *ds);
    if (classes != 10 && classes != 100)
        return alig_fail(ALIG_E_INTERNAL, "CIFAR with %d classes", classes);
    char(*files)[ALIG_PATH_MAX] = alig_malloc(sizeof *files * CIFAR_MAX_FILES, "file list");
    if (!files)
        return ALIG_E_MEMORY;
    int nfiles = 0;
    int rc = list_files_(path, classes, train, files, &nfiles);
    int label_bytes = classes == 100 ? 2 : 1;
    int64_t rec = label_bytes + CIFAR_PIXELS, cap = 0;
    for (int f = 0; !rc && f < nfiles && !(limit > 0 && ds->n >= limit); f++) {
        uint8_t *buf;
        int64_t size;
        rc = read_all_(files[f], &buf, &size);
        if (rc)
            break;
        if (size == 0 || size % rec != 0) {
            rc = alig_fail(ALIG_E_DATA,
                           "%s: %lld bytes is not a whole number of %lld-byte CIFAR-%d records "
                           "(%d label byte%s + 3072 pixel bytes); truncated, or not a CIFAR-%d "
                           "file?",
                           files[f], (long long)size, (long long)rec, classes, label_bytes,
                           label_bytes > 1 ? "s" : "", classes);
            free(buf);
            break;
        }
        int64_t nrec = size / rec;
        if (limit > 0 && ds->n + nrec > limit)
            nrec = limit - ds->n;
        if (ds->n + nrec > cap) {
            int64_t ncap = ds->n + nrec;
            uint8_t *x = realloc(ds->x, (size_t)(ncap * CIFAR_PIXELS));
            int32_t *y = x ? realloc(ds->y, sizeof(int32_t) * (size_t)ncap) : NULL;
            if (x)
                ds->x = x;
            if (y)
                ds->y = y;
            if (!x || !y) {
                rc = alig_fail(ALIG_E_MEMORY, "%s: cannot allocate %lld samples", files[f],
                               (long long)ncap);
                free(buf);
                break;
            }
            cap = ncap;
        }
        for (int64_t r = 0; r < nrec; r++) {
            const uint8_t *p = buf + r * rec;
            int coarse = classes == 100 ? p[0] : -1, label = p[label_bytes - 1];
            if (label >= classes || coarse >= 20) {
                rc = alig_fail(ALIG_E_DATA,
                               "%s: record %lld (byte offset %lld) has %s %d; CIFAR-%d "
                               "labels are 0..%d -- not a CIFAR-%d file?",
                               files[f], (long long)r, (long long)(r * rec),
                               coarse >= 20  ? "coarse label"
                               : classes == 100 ? "fine label"
                                                : "label",
                               coarse >= 20 ? coarse : label, classes,
                               coarse >= 20 ? 19 : classes - 1, classes);
                break;
            }
            ds->y[ds->n + r] = label;
            memcpy(ds->x + (ds->n + r) * CIFAR_PIXELS, p + label_bytes, CIFAR_PIXELS);
        }
        free(buf);
        ds->n += nrec;
    }
    free(files);
    if (rc) {
        alig_dataset_free(ds);
        return rc;
    }
    ds->c = 3;
    ds->h = ds->w = 32;
    ds->dim = CIFAR_PIXELS;
    ds->n_classes = classes;
    for (int c = 0; c < ALIG_MAX_CHANNELS; c++) {
        ds->mean[c] = 0.0f;
        ds->std[c] = 1.0f;
    }
    return ALIG_OK;
}
