/*
 * data-impl.h -- alig-train internal header shared by the dataset readers
 * (src/data.c, src/data_cifar.c, src/data_gz.c, src/data_hdf5.c, src/data_load.c). Not
 * part of the public API.
 */
#ifndef ALIG_DATA_IMPL_H
#define ALIG_DATA_IMPL_H

#include "alig/data.h"

#include <stdint.h>

/*
 * A data file, gzip-compressed or plain (src/data_gz.c). A file that starts with the
 * gzip magic is inflated member after member, as gzip -d does, and must end with a
 * member's trailer (CRC-32 and length, checked), with no other bytes after it; any
 * other file is read as it is.
 */
typedef struct alig_gz alig_gz_t;

/* Open path, a regular file, for alig_gz_read: ALIG_OK and *out, else ALIG_E_DATA or
 * ALIG_E_MEMORY with a message naming the file (*out NULL). */
int alig_gz_open(const char *path, alig_gz_t **out);
/*
 * Up to n bytes of the file's (decompressed) data into buf: n, or fewer at the end of
 * the data -- for gzip only once the last trailer was checked -- or -1 on an error,
 * which alig_gz_reason describes. After -1 every call returns -1.
 */
int64_t alig_gz_read(alig_gz_t *g, void *buf, int64_t n);
/* Why alig_gz_read returned -1, without the file name ("<path>: <reason>" names it
 * once): strerror, zlib's reason ("incorrect data check") or ours. Never NULL. */
const char *alig_gz_reason(const alig_gz_t *g);
/* Close and free g; NULL is allowed. */
void alig_gz_close(alig_gz_t *g);

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
