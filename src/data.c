/*
 * data.c -- IDX reader, in-memory datasets, batch gathering and slicing.
 */
#include "alig/data.h"
#include "alig/error.h"
#include "data-impl.h" /* defines: alig_gz_*, alig_data_regular */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Largest payload we accept: 1 TiB is far beyond any dataset that fits in memory,
 * and keeps every size computation far from int64 overflow. */
#define IDX_MAX_BYTES ((int64_t)1 << 40)

int alig_data_regular(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode))
        return ALIG_OK; /* a missing file: the open says why */
    const char *kind = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a pipe (FIFO)"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    return alig_fail(ALIG_E_DATA, "%s: is %s; expected a data file", path, kind);
}

int alig_idx_read(const char *path, alig_idx_t *out)
{
    memset(out, 0, sizeof *out);
    alig_gz_t *f;
    int rc = alig_gz_open(path, &f);
    if (rc)
        return rc;
    uint8_t head[4];
    int64_t got = alig_gz_read(f, head, 4);
    if (got < 0) {
        rc = alig_fail(ALIG_E_DATA, "%s: %s", path, alig_gz_reason(f));
        goto done;
    }
    if (got < 4) {
        rc = alig_fail(ALIG_E_DATA, "%s: not an IDX file: %lld bytes, shorter than the 4-byte magic",
                       path, (long long)got);
        goto done;
    }
    if (head[0] != 0 || head[1] != 0) {
        rc = alig_fail(ALIG_E_DATA,
                       "%s: not an IDX file: magic %02x %02x %02x %02x, expected 00 00 08 <ndim>",
                       path, head[0], head[1], head[2], head[3]);
        goto done;
    }
    if (head[2] != 0x08) {
        rc = alig_fail(ALIG_E_DATA,
                       "%s: IDX element type 0x%02x is not supported, expected 0x08 (unsigned byte)",
                       path, head[2]);
        goto done;
    }
    out->ndim = head[3];
    if (out->ndim < 1 || out->ndim > 4) {
        rc = alig_fail(ALIG_E_DATA, "%s: IDX file has %d dimensions, expected 1 to 4", path,
                       out->ndim);
        goto done;
    }
    uint8_t dimbytes[16];
    got = alig_gz_read(f, dimbytes, 4 * out->ndim);
    if (got != 4 * out->ndim) {
        rc = alig_fail(ALIG_E_DATA, "%s: truncated IDX header: %d dimensions need %d bytes, got %lld",
                       path, out->ndim, 4 * out->ndim, (long long)(got < 0 ? 0 : got));
        goto done;
    }
    int64_t count = 1;
    for (int i = 0; i < out->ndim; i++) {
        const uint8_t *b = dimbytes + 4 * i;
        out->dims[i] = ((int64_t)b[0] << 24) | ((int64_t)b[1] << 16) | ((int64_t)b[2] << 8) | b[3];
        if (out->dims[i] == 0) {
            rc = alig_fail(ALIG_E_DATA, "%s: IDX dimension %d is 0", path, i);
            goto done;
        }
        /* test before multiplying: count <= 2^40 and dims < 2^32 could overflow int64 */
        if (count > IDX_MAX_BYTES / out->dims[i]) {
            rc = alig_fail(ALIG_E_DATA,
                           "%s: IDX dimensions multiply past %lld elements (corrupt header?)", path,
                           (long long)IDX_MAX_BYTES);
            goto done;
        }
        count *= out->dims[i];
    }
    out->count = count;
    /* Grow the buffer as data arrives instead of trusting the header: a
     * corrupt header promising terabytes then fails as "truncated" after
     * reading what the file really holds, not as an allocation failure. */
    got = 0;
    int64_t cap = 0;
    while (got < count) {
        if (got == cap) {
            int64_t grow = cap ? cap : ((int64_t)1 << 24);
            cap = count - cap < grow ? count : cap + grow;
            uint8_t *p = realloc(out->data, (size_t)cap);
            if (!p) {
                rc = alig_fail(ALIG_E_MEMORY, "%s: cannot allocate %lld bytes", path, (long long)cap);
                goto done;
            }
            out->data = p;
        }
        int64_t r = alig_gz_read(f, out->data + got, cap - got);
        if (r < 0) {
            rc = alig_fail(ALIG_E_DATA, "%s: %s", path, alig_gz_reason(f));
            goto done;
        }
        got += r;
        if (got < cap)
            break; /* end of file */
    }
    if (got < count) {
        rc = alig_fail(ALIG_E_DATA, "%s: truncated: header promises %lld data bytes, file has %lld",
                       path, (long long)count, (long long)got);
        goto done;
    }
    uint8_t extra;
    got = alig_gz_read(f, &extra, 1);
    if (got != 0) {
        rc = got < 0 ? alig_fail(ALIG_E_DATA, "%s: %s", path, alig_gz_reason(f))
                     : alig_fail(ALIG_E_DATA,
                                 "%s: trailing bytes after the %lld data bytes the header promises",
                                 path, (long long)count);
        goto done;
    }
done:
    alig_gz_close(f);
    if (rc != ALIG_OK)
        alig_idx_free(out);
    return rc;
}

void alig_idx_free(alig_idx_t *idx)
{
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}

static void stats_identity_(alig_dataset_t *ds)
{
    for (int c = 0; c < ALIG_MAX_CHANNELS; c++) {
        ds->mean[c] = 0.0f;
        ds->std[c] = 1.0f;
    }
}

int alig_dataset_load_idx(alig_dataset_t *ds, const char *images, const char *labels,
                          int64_t limit)
{
    memset(ds, 0, sizeof *ds);
    alig_idx_t xi, yi;
    int rc = alig_idx_read(images, &xi);
    if (rc)
        return rc;
    rc = alig_idx_read(labels, &yi);
    if (rc) {
        alig_idx_free(&xi);
        return rc;
    }
    if (xi.ndim != 3 && xi.ndim != 4) {
        rc = alig_fail(ALIG_E_DATA, "%s: images must have 3 (n, h, w) or 4 (n, c, h, w) dimensions, found %d",
                       images, xi.ndim);
        goto fail;
    }
    if (yi.ndim != 1) {
        rc = alig_fail(ALIG_E_DATA, "%s: labels must have 1 dimension (n), found %d", labels, yi.ndim);
        goto fail;
    }
    if (xi.dims[0] != yi.dims[0]) {
        rc = alig_fail(ALIG_E_DATA, "%s has %lld images but %s has %lld labels", images,
                       (long long)xi.dims[0], labels, (long long)yi.dims[0]);
        goto fail;
    }
    ds->c = xi.ndim == 4 ? (int)xi.dims[1] : 1;
    ds->h = (int)xi.dims[xi.ndim - 2];
    ds->w = (int)xi.dims[xi.ndim - 1];
    if (ds->c > ALIG_MAX_CHANNELS) {
        rc = alig_fail(ALIG_E_DATA, "%s: %d channels, at most %d supported", images, ds->c,
                       ALIG_MAX_CHANNELS);
        goto fail;
    }
    ds->dim = (int64_t)ds->c * ds->h * ds->w;
    ds->n = xi.dims[0];
    if (limit > 0 && limit < ds->n)
        ds->n = limit;
    ds->x = xi.data; /* keeps the full buffer; only the first n samples are used */
    ds->y = alig_malloc(sizeof(int32_t) * (size_t)ds->n, "labels");
    if (!ds->y) {
        rc = ALIG_E_MEMORY;
        goto fail;
    }
    int maxlabel = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        ds->y[i] = yi.data[i];
        if (ds->y[i] > maxlabel)
            maxlabel = ds->y[i];
    }
    ds->n_classes = maxlabel + 1;
    alig_idx_free(&yi);
    stats_identity_(ds);
    return ALIG_OK;
fail:
    alig_idx_free(&xi);
    alig_idx_free(&yi);
    free(ds->y);
    memset(ds, 0, sizeof *ds);
    return rc;
}

void alig_dataset_compute_stats(alig_dataset_t *ds)
{
    int64_t hw = (int64_t)ds->h * ds->w;
    for (int c = 0; ds->xf && c < ds->c; c++) {
        /* float data: two passes in double, values used as they are */
        double s = 0.0, s2 = 0.0, m = (double)ds->n * (double)hw;
        for (int64_t i = 0; i < ds->n; i++)
            for (int64_t k = 0; k < hw; k++)
                s += ds->xf[i * ds->dim + c * hw + k];
        double mean = s / m;
        for (int64_t i = 0; i < ds->n; i++)
            for (int64_t k = 0; k < hw; k++) {
                double d = ds->xf[i * ds->dim + c * hw + k] - mean;
                s2 += d * d;
            }
        ds->mean[c] = (float)mean;
        ds->std[c] = s2 / m > 1e-12 ? (float)sqrt(s2 / m) : 1.0f;
    }
    for (int c = 0; !ds->xf && c < ds->c; c++) {
        double s = 0.0, s2 = 0.0;
        for (int64_t i = 0; i < ds->n; i++) {
            const uint8_t *p = ds->x + i * ds->dim + c * hw;
            uint64_t a = 0, a2 = 0;
            for (int64_t k = 0; k < hw; k++) {
                a += p[k];
                a2 += (uint64_t)p[k] * p[k];
            }
            s += (double)a;
            s2 += (double)a2;
        }
        double m = (double)ds->n * (double)hw;
        double mean = s / m / 255.0;
        double var = s2 / m / (255.0 * 255.0) - mean * mean;
        ds->mean[c] = (float)mean;
        ds->std[c] = var > 1e-12 ? (float)sqrt(var) : 1.0f;
    }
}

void alig_dataset_copy_stats(alig_dataset_t *dst, const alig_dataset_t *src)
{
    memcpy(dst->mean, src->mean, sizeof dst->mean);
    memcpy(dst->std, src->std, sizeof dst->std);
}

void alig_dataset_free(alig_dataset_t *ds)
{
    free(ds->x);
    free(ds->xf);
    free(ds->y);
    memset(ds, 0, sizeof *ds);
}

void alig_dataset_gather(const alig_dataset_t *ds, const int64_t *idx, int64_t n, float *x,
                         int32_t *y)
{
    int64_t hw = (int64_t)ds->h * ds->w;
    for (int64_t i = 0; i < n; i++) {
        float *dst = x + i * ds->dim;
        for (int c = 0; c < ds->c; c++) {
            /* (p/255 - mean)/std as one multiply-add per pixel; float data: (v - mean)/std */
            float scale = 1.0f / ((ds->xf ? 1.0f : 255.0f) * ds->std[c]);
            float shift = -ds->mean[c] / ds->std[c];
            if (ds->xf) {
                const float *src = ds->xf + idx[i] * ds->dim;
                for (int64_t k = 0; k < hw; k++)
                    dst[c * hw + k] = src[c * hw + k] * scale + shift;
            } else {
                const uint8_t *src = ds->x + idx[i] * ds->dim;
                for (int64_t k = 0; k < hw; k++)
                    dst[c * hw + k] = (float)src[c * hw + k] * scale + shift;
            }
        }
        y[i] = ds->y[idx[i]];
    }
}

void alig_batch_slice(int64_t n, int rank, int world, int64_t *lo, int64_t *hi)
{
    int64_t base = n / world, rem = n % world;
    *lo = rank * base + (rank < rem ? rank : rem);
    *hi = *lo + base + (rank < rem ? 1 : 0);
}

int64_t alig_batches_per_epoch(int64_t n, int64_t batch, int drop_last)
{
    return drop_last ? n / batch : (n + batch - 1) / batch;
}
