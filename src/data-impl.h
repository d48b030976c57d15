/*
 * data-impl.h -- alig-train internal header shared by the dataset readers
 * (src/data.c, src/data_cifar.c). Not part of the public API.
 */
#ifndef ALIG_DATA_IMPL_H
#define ALIG_DATA_IMPL_H

#include <zlib.h>

/*
 * Why the last gzread on f (opened as `path`) failed: strerror for an OS
 * error, else zlib's reason without the "<path>: " zlib puts in front, so
 * "<path>: <reason>" names the file once. Never NULL.
 */
const char *alig_gz_reason(gzFile f, const char *path);
/* After gzread returned 0: did the gzip stream end before its trailer (a cut file)? */
int alig_gz_truncated(gzFile f);

#endif /* ALIG_DATA_IMPL_H */
