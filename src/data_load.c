/*
 * data_load.c -- datasets as the config describes them: the format
 * dispatch (idx, cifar10, cifar100, hdf5), normalisation (none, standard,
 * given) and augmentation (random crop with padding, horizontal flip).
 *
 * Augmentation is a pure function of (seed, epoch, dataset index): a
 * sample is cropped and flipped the same way whichever rank gathers it and
 * whether or not the run was resumed, so the trajectory stays independent
 * of the rank count (alig/data.h).
 */
#include "alig/data.h"
#include "alig/error.h"
#include "alig/rng.h"
#include "data-impl.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int alig_parse_channels(const char *list, int c, int positive, const char *what, float *out)
{
    float v[ALIG_MAX_CHANNELS];
    int n = 0;
    const char *s = list;
    while (*s) {
        while (isspace((unsigned char)*s))
            s++;
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        if (end == s || errno == ERANGE || !isfinite(d) || (positive && !(d > 0.0)))
            return alig_fail(ALIG_E_CONFIG,
                             "[data] %s = %s: expected %d comma-separated %snumbers (one per "
                             "channel, or one for all), e.g. %s",
                             what, list, c, positive ? "positive " : "",
                             positive ? "0.2470, 0.2435, 0.2616" : "0.4914, 0.4822, 0.4465");
        if (n == ALIG_MAX_CHANNELS)
            return alig_fail(ALIG_E_CONFIG, "[data] %s = %s: more than %d values", what, list,
                             ALIG_MAX_CHANNELS);
        v[n++] = (float)d;
        s = end;
        while (isspace((unsigned char)*s))
            s++;
        if (*s == ',')
            s++;
        else if (*s)
            return alig_fail(ALIG_E_CONFIG, "[data] %s = %s: unexpected '%c'; separate values "
                                            "with ','",
                             what, list, *s);
    }
    if (n != c && n != 1)
        return alig_fail(ALIG_E_CONFIG,
                         "[data] %s = %s: %d value%s for data with %d channel%s; give one per "
                         "channel (or one for all)",
                         what, list, n, n == 1 ? "" : "s", c, c == 1 ? "" : "s");
    for (int i = 0; i < c; i++)
        out[i] = v[n == 1 ? 0 : i];
    return ALIG_OK;
}

static int load_one_(alig_dataset_t *ds, const alig_config_t *cfg, int test)
{
    const char *images = test ? cfg->test_images : cfg->train_images;
    const char *labels = test ? cfg->test_labels : cfg->train_labels;
    int64_t limit = test ? cfg->test_limit : cfg->train_limit;
    if (strcmp(cfg->format, "idx") == 0)
        return alig_dataset_load_idx(ds, images, labels, limit);
    if (strcmp(cfg->format, "cifar10") == 0)
        return alig_dataset_load_cifar(ds, images, 10, !test, limit);
    if (strcmp(cfg->format, "cifar100") == 0)
        return alig_dataset_load_cifar(ds, images, 100, !test, limit);
    if (strcmp(cfg->format, "hdf5") == 0) {
        int tx = test && cfg->hdf5_test_images[0], ty = test && cfg->hdf5_test_labels[0];
        const char *const keys[2] = {tx ? "hdf5_test_images" : "hdf5_images",
                                     ty ? "hdf5_test_labels" : "hdf5_labels"};
        return alig_dataset_load_hdf5_as(ds, images, tx ? cfg->hdf5_test_images : cfg->hdf5_images,
                                         labels, ty ? cfg->hdf5_test_labels : cfg->hdf5_labels,
                                         strcmp(cfg->hdf5_layout, "nhwc") == 0, limit, keys);
    }
    return alig_fail(ALIG_E_CONFIG, "[data] format = %s: not supported", cfg->format);
}

/* "x.ini:7: " -- where a [data] key was set, as alig_config_validate names it */
static const char *where_(const alig_config_t *cfg, const char *key, char *buf, size_t size)
{
    char origin[ALIG_PATH_MAX + 64];
    alig_config_origin(cfg, key, origin, sizeof origin);
    snprintf(buf, size, "%s%s", origin, origin[0] ? ": " : "");
    return buf;
}

/* Issue #6: a limit beyond the set is a config error naming the set's size (the
 * readers would keep all the samples, and the user would train on fewer than asked). */
static int check_limit_(const alig_config_t *cfg, const alig_dataset_t *ds, int test)
{
    int64_t limit = test ? cfg->test_limit : cfg->train_limit;
    if (limit <= ds->n) /* 0 (all), or met */
        return ALIG_OK;
    char where[ALIG_PATH_MAX + 80];
    const char *key = test ? "test_limit" : "train_limit";
    where_(cfg, test ? "data.test_limit" : "data.train_limit", where, sizeof where);
    return alig_fail(ALIG_E_CONFIG,
                     "%s[data] %s = %lld is larger than the %s set (%s: %lld samples); expected "
                     "an integer in [0, %lld] (0: all)",
                     where, key, (long long)limit, test ? "test" : "training",
                     test ? cfg->test_images : cfg->train_images, (long long)ds->n,
                     (long long)ds->n);
}

int alig_datasets_load(alig_dataset_t *train, alig_dataset_t *test, const alig_config_t *cfg)
{
    int rc = load_one_(train, cfg, 0);
    if (!rc)
        rc = check_limit_(cfg, train, 0);
    if (rc)
        return rc;
    /* Issue #6: a crop padding of the image's side or more can shift a sample entirely
     * out of view (a sample of padding only) -- a typo, not an augmentation */
    int side = train->h < train->w ? train->h : train->w;
    if (cfg->augment_crop > 0 && cfg->augment_crop >= side) {
        char where[ALIG_PATH_MAX + 80];
        return alig_fail(ALIG_E_CONFIG,
                         "%s[data] augment_crop = %d: expected an integer in [0, %d] for the "
                         "%dx%d training images (%s): the padding must be smaller than the image",
                         where_(cfg, "data.augment_crop", where, sizeof where), cfg->augment_crop,
                         side - 1, train->h, train->w, cfg->train_images);
    }
    if (strcmp(cfg->normalize, "standard") == 0) {
        alig_dataset_compute_stats(train);
    } else if (strcmp(cfg->normalize, "given") == 0) {
        const char *key = "data.mean";
        rc = alig_parse_channels(cfg->mean, train->c, 0, "mean", train->mean);
        if (!rc) {
            key = "data.std";
            rc = alig_parse_channels(cfg->std, train->c, 1, "std", train->std);
        }
        if (rc) { /* checked against the data's channels only now: say where it was set */
            char where[ALIG_PATH_MAX + 80], msg[1024];
            snprintf(msg, sizeof msg, "%s", alig_error_message());
            return alig_fail(rc, "%s%s", where_(cfg, key, where, sizeof where), msg);
        }
    }
    if (!cfg->test_images[0])
        return ALIG_OK;
    rc = load_one_(test, cfg, 1);
    if (!rc)
        rc = check_limit_(cfg, test, 1);
    if (rc)
        return rc;
    if (test->c != train->c || test->h != train->h || test->w != train->w)
        return alig_fail(ALIG_E_DATA,
                         "%s: test images are %dx%dx%d but training images (%s) are %dx%dx%d",
                         cfg->test_images, test->c, test->h, test->w, cfg->train_images, train->c,
                         train->h, train->w);
    if ((test->xf != NULL) != (train->xf != NULL))
        return alig_fail(ALIG_E_DATA, "%s: test images are %s but training images (%s) are %s",
                         cfg->test_images, test->xf ? "float32" : "uint8", cfg->train_images,
                         train->xf ? "float32" : "uint8");
    alig_dataset_copy_stats(test, train);
    return ALIG_OK;
}

/* ------------------------------------------------------------------------ */
/* augmentation */

static uint64_t mix64_(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Shift one (h, w) plane in place: out(y, x) = in(y + oy, x + ox), `pad` outside. */
static void shift_plane_(float *p, int h, int w, int oy, int ox, float pad)
{
    int64_t off = (int64_t)oy * w + ox;
    if (off == 0)
        return;
    /* reading ahead of the write position when off > 0: go forward; else backward */
    int64_t hw = (int64_t)h * w;
    for (int64_t k = 0; k < hw; k++) {
        int64_t q = off > 0 ? k : hw - 1 - k;
        int y = (int)(q / w), x = (int)(q % w);
        int sy = y + oy, sx = x + ox;
        p[q] = sy >= 0 && sy < h && sx >= 0 && sx < w ? p[q + off] : pad;
    }
}

void alig_dataset_gather_augmented(const alig_dataset_t *ds, const int64_t *idx, int64_t n,
                                   float *x, int32_t *y, const alig_augment_t *aug,
                                   int64_t epoch)
{
    alig_dataset_gather(ds, idx, n, x, y);
    if (!aug || (aug->crop <= 0 && !aug->flip))
        return;
    int h = ds->h, w = ds->w, crop = aug->crop > 0 ? aug->crop : 0;
    for (int64_t i = 0; i < n; i++) {
        alig_rng_t r;
        alig_rng_seed(&r, mix64_(aug->seed ^ mix64_((uint64_t)epoch ^ mix64_((uint64_t)idx[i]))),
                      ALIG_STREAM_AUGMENT);
        /* torchvision RandomCrop(padding=crop): offset (dy, dx) in [0, 2 crop] of the padded image */
        int oy = crop ? (int)alig_rng_below(&r, (uint64_t)(2 * crop + 1)) - crop : 0;
        int ox = crop ? (int)alig_rng_below(&r, (uint64_t)(2 * crop + 1)) - crop : 0;
        int flip = aug->flip ? (int)(alig_rng_next(&r) >> 63) : 0;
        for (int c = 0; c < ds->c; c++) {
            float *p = x + i * ds->dim + (int64_t)c * h * w;
            shift_plane_(p, h, w, oy, ox, -ds->mean[c] / ds->std[c]); /* a zero pixel */
            if (flip)
                for (int row = 0; row < h; row++)
                    for (int a = 0, b = w - 1; a < b; a++, b--) {
                        float t = p[row * w + a];
                        p[row * w + a] = p[row * w + b];
                        p[row * w + b] = t;
                    }
        }
    }
}
