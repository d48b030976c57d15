/*
 * data-impl.h -- alig-train internal header shared by the dataset readers
 * (src/data.c, src/data_cifar.c, src/data_hdf5.c, src/data_load.c). Not part of the
 * public API.
 */
#ifndef ALIG_DATA_IMPL_H
#define ALIG_DATA_IMPL_H

#include "alig/data.h"

#include <zlib.h>

/*
 * Why the last gzread on f (opened as `path`) failed: strerror for an OS
 * error, else zlib's reason without the "<path>: " zlib puts in front, so
 * "<path>: <reason>" names the file once. Never NULL.
 */
const char *alig_gz_reason(gzFile f, const char *path);
/* After gzread returned 0: did the gzip stream end before its trailer (a cut file)? */
int alig_gz_truncated(gzFile f);

/* ALIG_OK when path is a regular file (or missing: opening it says why); else
 * ALIG_E_DATA saying what it is. A device or pipe is refused before it is opened:
 * /dev/zero was read until the kernel killed the rank, a FIFO blocked the open. */
int alig_data_regular(const char *path);

/* alig_dataset_load_hdf5 naming other config keys than hdf5_images and hdf5_labels in
 * its errors (keys[0] for the images' dataset, keys[1] for the labels'): the test set's
 * hdf5_test_images and hdf5_test_labels when those gave the names. */
int alig_dataset_load_hdf5_as(alig_dataset_t *ds, const char *images_path,
                              const char *images_name, const char *labels_path,
                              const char *labels_name, int nhwc, int64_t limit,
                              const char *const keys[2]);

#endif /* ALIG_DATA_IMPL_H */
