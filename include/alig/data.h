/*
 * alig/data.h -- datasets in memory, the IDX reader and batch slicing.
 *
 * A dataset is n samples of c*h*w values (uint8 as stored, converted to
 * float when a batch is gathered) and one integer label each. Every rank
 * loads the whole dataset; the global order of an epoch is a permutation
 * drawn from (seed, epoch) (alig/rng.h), each global batch is a contiguous
 * run of that order, and each rank takes a contiguous, balanced slice of
 * the batch (alig_batch_slice). So the samples in every global batch, and
 * therefore the training trajectory, do not depend on the number of ranks.
 */
#ifndef ALIG_DATA_H
#define ALIG_DATA_H

#include <stdint.h>

#define ALIG_MAX_CHANNELS 16

typedef struct {
    int64_t n;          /* number of samples */
    int c, h, w;        /* per-sample shape (channels, height, width) */
    int64_t dim;        /* c*h*w */
    uint8_t *x;         /* (n, c, h, w) raw pixels, 0..255 */
    int32_t *y;         /* (n) labels in [0, n_classes) */
    int n_classes;      /* 1 + largest label seen */
    /* per-channel affine normalisation applied by alig_dataset_gather:
     * value = (x/255 - mean[ch]) / std[ch] */
    float mean[ALIG_MAX_CHANNELS];
    float std[ALIG_MAX_CHANNELS];
} alig_dataset_t;

/* One IDX file: magic 0x0000TTDD (TT = 0x08 unsigned byte), big-endian dims. */
typedef struct {
    int ndim;           /* 1..4 */
    int64_t dims[4];
    int64_t count;      /* product of dims */
    uint8_t *data;      /* count bytes, owned */
} alig_idx_t;

/*
 * Read an IDX file, gzip-compressed or raw (zlib's gzread reads both).
 * Validates the magic (type must be 0x08, unsigned byte), 1..4
 * dimensions, each >= 1, a product that does not overflow, and that the
 * payload has exactly that many bytes (no less, no more).
 * Returns ALIG_OK or ALIG_E_DATA (message names the path and the defect).
 */
int alig_idx_read(const char *path, alig_idx_t *out);
void alig_idx_free(alig_idx_t *idx);

/*
 * Load an images file ((n, h, w) or (n, c, h, w)) and a labels file ((n)),
 * keep the first `limit` samples when limit > 0, and check that the
 * counts agree. Normalisation starts as identity (mean 0, std 1).
 */
int alig_dataset_load_idx(alig_dataset_t *ds, const char *images, const char *labels,
                          int64_t limit);

/* Set mean/std per channel from this dataset's pixels (scaled to [0, 1]). */
void alig_dataset_compute_stats(alig_dataset_t *ds);

/* Copy another dataset's normalisation (the test set uses the training set's). */
void alig_dataset_copy_stats(alig_dataset_t *dst, const alig_dataset_t *src);

void alig_dataset_free(alig_dataset_t *ds);

/*
 * Gather samples idx[0..n) into x (n, dim) as normalised floats and y (n).
 */
void alig_dataset_gather(const alig_dataset_t *ds, const int64_t *idx, int64_t n, float *x,
                         int32_t *y);

/*
 * The slice [*lo, *hi) of a batch of `n` samples that `rank` of `world`
 * takes: contiguous, sizes differ by at most one, ranks in order.
 */
void alig_batch_slice(int64_t n, int rank, int world, int64_t *lo, int64_t *hi);

/* Number of global batches per epoch for n samples. */
int64_t alig_batches_per_epoch(int64_t n, int64_t batch, int drop_last);

#endif /* ALIG_DATA_H */
