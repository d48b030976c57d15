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

#include "alig/config.h"

#define ALIG_MAX_CHANNELS 16

typedef struct {
    int64_t n;          /* number of samples */
    int c, h, w;        /* per-sample shape (channels, height, width) */
    int64_t dim;        /* c*h*w */
    uint8_t *x;         /* (n, c, h, w) raw pixels, 0..255; NULL for float data */
    float *xf;          /* (n, c, h, w) float32 samples (HDF5 float32 images), else NULL */
    int32_t *y;         /* (n) labels in [0, n_classes) */
    int n_classes;      /* 1 + largest label seen (CIFAR: 10 or 100) */
    /* per-channel affine normalisation applied by alig_dataset_gather:
     * value = (x/255 - mean[ch]) / std[ch] for uint8 pixels,
     * value = (xf - mean[ch]) / std[ch] for float data */
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
 * Read an IDX file, gzip-compressed or raw (a gzip file must end with its
 * trailer, whose CRC-32 and length are checked). Validates the magic (type must be 0x08, unsigned byte), 1..4
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

/* Set mean/std per channel from this dataset's pixels (uint8: scaled to [0, 1]). */
void alig_dataset_compute_stats(alig_dataset_t *ds);

/* Copy another dataset's normalisation (the test set uses the training set's). */
void alig_dataset_copy_stats(alig_dataset_t *dst, const alig_dataset_t *src);

void alig_dataset_free(alig_dataset_t *ds);

/*
 * Gather samples idx[0..n) into x (n, dim) as normalised floats and y (n).
 */
void alig_dataset_gather(const alig_dataset_t *ds, const int64_t *idx, int64_t n, float *x,
                         int32_t *y);

/* ---- issue 4: CIFAR and HDF5 readers, normalisation options, augmentation ---- */

/*
 * CIFAR-10 / CIFAR-100 binary files (https://www.cs.toronto.edu/~kriz/cifar.html):
 * records of 1 label byte (CIFAR-10) or 2 (CIFAR-100: coarse, fine; the fine
 * label is used) followed by 3072 pixel bytes, 1024 red, 1024 green, 1024
 * blue, each 32x32 in row order -- already (c, h, w). `path` is a file, a
 * comma-separated list of files, or a directory holding the standard names:
 *   classes 10, train: data_batch_1.bin ... data_batch_5.bin; test: test_batch.bin
 *   classes 100, train: train.bin; test: test.bin
 * Files may be gzip-compressed. Validates that each file is a whole number
 * of records (at least one) and every label is in range; errors are
 * ALIG_E_DATA naming the file (and the record for a bad label).
 * Keeps the first `limit` samples when limit > 0. n_classes = classes.
 */
int alig_dataset_load_cifar(alig_dataset_t *ds, const char *path, int classes, int train,
                            int64_t limit);

/*
 * A generic HDF5 dataset: images in dataset `images_name` of file
 * `images_path`, uint8 or float32, shaped (n, h, w), or (n, c, h, w) with
 * nhwc = 0 or (n, h, w, c) with nhwc = 1 (converted to NCHW in memory);
 * labels in dataset `labels_name` of `labels_path` (may be the same file),
 * any integer type, shaped (n) or (n, 1), each in [0, 2^31). Reads only the
 * first `limit` samples when limit > 0. Errors are ALIG_E_DATA naming the
 * file and dataset.
 */
int alig_dataset_load_hdf5(alig_dataset_t *ds, const char *images_path, const char *images_name,
                           const char *labels_path, const char *labels_name, int nhwc,
                           int64_t limit);

/*
 * Parse per-channel values "0.4914, 0.4822, 0.4465" (one per channel, or one
 * for all) into out[0..c). `what` names the key in messages. std values
 * must be > 0 (positive = 1). Returns ALIG_OK or ALIG_E_CONFIG.
 */
int alig_parse_channels(const char *list, int c, int positive, const char *what, float *out);

/*
 * Load the training and (when configured) test set as the config says
 * ([data] format, paths, limits, normalize, mean, std, hdf5_*): the test set
 * must match the training shape and takes its normalisation.
 */
int alig_datasets_load(alig_dataset_t *train, alig_dataset_t *test, const alig_config_t *cfg);

/* Random crop with zero padding and horizontal flip, as torchvision's
 * RandomCrop(size, padding=crop) and RandomHorizontalFlip(). */
typedef struct {
    int crop;           /* padding in pixels for the random crop; 0: no crop */
    int flip;           /* 1: flip left-right with probability 1/2 */
    uint64_t seed;      /* the run seed */
} alig_augment_t;

/*
 * alig_dataset_gather, then augment each sample: the crop offset and the
 * flip of sample idx[i] in epoch `epoch` come from the stream
 * (seed, ALIG_STREAM_AUGMENT) mixed with (epoch, idx[i]) only, so neither
 * the number of ranks nor a resume changes them. Padding is a zero pixel
 * (after normalisation: -mean/std), as torchvision pads before Normalize.
 * aug NULL or all off: exactly alig_dataset_gather.
 */
void alig_dataset_gather_augmented(const alig_dataset_t *ds, const int64_t *idx, int64_t n,
                                   float *x, int32_t *y, const alig_augment_t *aug,
                                   int64_t epoch);

/*
 * The slice [*lo, *hi) of a batch of `n` samples that `rank` of `world`
 * takes: contiguous, sizes differ by at most one, ranks in order.
 */
void alig_batch_slice(int64_t n, int rank, int world, int64_t *lo, int64_t *hi);

/* Number of global batches per epoch for n samples. */
int64_t alig_batches_per_epoch(int64_t n, int64_t batch, int drop_last);

#endif /* ALIG_DATA_H */
