/*
 * check_data.c -- IDX reader on good and malformed files, dataset loading,
 * normalisation, batch slicing.
 */
#include "check_suites.h"

#include "alig/data.h"
#include "alig/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char path_[512];

static const char *tmp_(const char *name)
{
    snprintf(path_, sizeof path_, "%s/alig-data-%d-%s", test_tmpdir(), (int)getpid(), name);
    return path_;
}

START_TEST(idx_reads_raw_and_gzip)
{
    uint8_t data[2 * 3 * 4];
    for (int i = 0; i < 24; i++)
        data[i] = (uint8_t)(i * 7);
    uint32_t dims[3] = {2, 3, 4};
    for (int gz = 0; gz < 2; gz++) {
        const char *p = tmp_(gz ? "a.gz" : "a.idx");
        ck_assert_int_eq(test_write_idx(p, 3, dims, data, gz), 0);
        alig_idx_t idx;
        ck_assert_int_eq(alig_idx_read(p, &idx), ALIG_OK);
        ck_assert_int_eq(idx.ndim, 3);
        ck_assert_int_eq(idx.dims[0], 2);
        ck_assert_int_eq(idx.dims[1], 3);
        ck_assert_int_eq(idx.dims[2], 4);
        ck_assert_int_eq(idx.count, 24);
        ck_assert_int_eq(idx.data[5], 35);
        ck_assert_int_eq(idx.data[23], (uint8_t)(23 * 7));
        alig_idx_free(&idx);
        remove(p);
    }
}
END_TEST

/* Expect ALIG_E_DATA with `needle` in the message. */
static void expect_bad_(const char *p, const char *needle)
{
    alig_idx_t idx;
    int rc = alig_idx_read(p, &idx);
    ck_assert_int_eq(rc, ALIG_E_DATA);
    ck_assert_msg(strstr(alig_error_message(), needle) != NULL, "message '%s' lacks '%s'",
                  alig_error_message(), needle);
    ck_assert_msg(strstr(alig_error_message(), p) != NULL, "message '%s' lacks the path",
                  alig_error_message());
    ck_assert_ptr_null(idx.data);
}

START_TEST(idx_rejects_malformed)
{
    const char *p = tmp_("bad.idx");
    uint8_t bad_magic[] = {0x12, 0x34, 0x08, 0x01, 0, 0, 0, 1, 9};
    test_write_bytes(p, bad_magic, sizeof bad_magic);
    expect_bad_(p, "magic");

    uint8_t bad_type[] = {0, 0, 0x0d, 0x01, 0, 0, 0, 1, 0, 0, 0, 0};
    test_write_bytes(p, bad_type, sizeof bad_type);
    expect_bad_(p, "element type 0x0d");

    uint8_t zero_dims[] = {0, 0, 0x08, 0x00};
    test_write_bytes(p, zero_dims, sizeof zero_dims);
    expect_bad_(p, "0 dimensions");

    uint8_t five_dims[] = {0, 0, 0x08, 0x05};
    test_write_bytes(p, five_dims, sizeof five_dims);
    expect_bad_(p, "5 dimensions");

    uint8_t short_head[] = {0, 0, 0x08, 0x03, 0, 0, 0, 2, 0, 0};
    test_write_bytes(p, short_head, sizeof short_head);
    expect_bad_(p, "truncated IDX header");

    uint8_t truncated[] = {0, 0, 0x08, 0x02, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4};
    test_write_bytes(p, truncated, sizeof truncated);
    expect_bad_(p, "truncated: header promises 6 data bytes, file has 4");

    uint8_t trailing[] = {0, 0, 0x08, 0x01, 0, 0, 0, 2, 1, 2, 3};
    test_write_bytes(p, trailing, sizeof trailing);
    expect_bad_(p, "trailing bytes");

    uint8_t zero_dim[] = {0, 0, 0x08, 0x02, 0, 0, 0, 2, 0, 0, 0, 0};
    test_write_bytes(p, zero_dim, sizeof zero_dim);
    expect_bad_(p, "dimension 1 is 0");

    /* 2^32-1 cubed overflows int64 if multiplied naively */
    uint8_t huge[] = {0, 0, 0x08, 0x04, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    test_write_bytes(p, huge, sizeof huge);
    expect_bad_(p, "multiply past");

    /* found by `make fuzz` (fuzz_idx): a header promising ~24 GB with a few
     * bytes of payload must fail as truncated, not allocate 24 GB first */
    uint8_t promises_lots[] = {0, 0, 0x08, 0x03, 0, 0, 0, 2, 0, 0, 0, 3, 0xf7, 0, 0, 3, 1, 2, 3};
    test_write_bytes(p, promises_lots, sizeof promises_lots);
    expect_bad_(p, "truncated: header promises 24863834130 data bytes, file has 3");

    uint8_t tiny[] = {0, 0};
    test_write_bytes(p, tiny, sizeof tiny);
    expect_bad_(p, "shorter than the 4-byte magic");
    remove(p);

    expect_bad_(tmp_("does-not-exist.idx"), "cannot open");
}
END_TEST

START_TEST(idx_rejects_corrupt_gzip)
{
    uint8_t data[1000];
    for (int i = 0; i < 1000; i++)
        data[i] = (uint8_t)(i * 31 + (i >> 3));
    uint32_t dims[1] = {1000};
    const char *p = tmp_("c.gz");
    ck_assert_int_eq(test_write_idx(p, 1, dims, data, 1), 0);
    uint8_t buf[4096];
    size_t n = test_read_bytes(p, buf, sizeof buf);
    /* cut the compressed stream in the middle */
    test_write_bytes(p, buf, n / 2);
    alig_idx_t idx;
    ck_assert_int_eq(alig_idx_read(p, &idx), ALIG_E_DATA);
    ck_assert_ptr_nonnull(strstr(alig_error_message(), p));
    remove(p);
}
END_TEST

/* Count the occurrences of needle in hay. */
static int count_(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *q = strstr(hay, needle); q; q = strstr(q + 1, needle))
        n++;
    return n;
}

/* Issue #6: zlib puts the path in front of its reason; the message named the file twice
 * ("f.gz: f.gz: incorrect data check"). A bad CRC in the gzip trailer, read by the IDX
 * and the CIFAR reader: exactly "<path>: incorrect data check". */
START_TEST(gzip_errors_name_the_file_once)
{
    uint8_t data[3073 * 2];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 31 + (i >> 3)) % 10; /* also valid CIFAR-10 labels */
    uint32_t dims[1] = {1000};
    const char *p = tmp_("crc.gz");
    ck_assert_int_eq(test_write_idx(p, 1, dims, data, 1), 0);
    uint8_t buf[8192];
    size_t n = test_read_bytes(p, buf, sizeof buf);
    buf[n - 8] ^= 0xff; /* the CRC-32 of the trailer */
    test_write_bytes(p, buf, n);
    char want[700];
    snprintf(want, sizeof want, "%s: incorrect data check", p);
    alig_idx_t idx;
    ck_assert_int_eq(alig_idx_read(p, &idx), ALIG_E_DATA);
    ck_assert_str_eq(alig_error_message(), want);
    ck_assert_int_eq(count_(alig_error_message(), p), 1);

    /* CIFAR-10: two records, gzip-compressed, the same damage */
    gzFile g = gzopen(p, "wb");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(gzwrite(g, data, sizeof data), (int)sizeof data);
    ck_assert_int_eq(gzclose(g), Z_OK);
    n = test_read_bytes(p, buf, sizeof buf);
    buf[n - 8] ^= 0xff;
    test_write_bytes(p, buf, n);
    alig_dataset_t ds;
    ck_assert_int_eq(alig_dataset_load_cifar(&ds, p, 10, 1, 0), ALIG_E_DATA);
    ck_assert_str_eq(alig_error_message(), want);
    remove(p);
}
END_TEST

/*
 * Found by a new-user trial: a gzip file cut where the compressor had flushed (at a record
 * boundary) decompresses to whole records; only its missing trailer (CRC and length) shows
 * the cut, and it was not checked: the CIFAR reader took 1 of 2 records and trained. Now
 * both readers refuse a stream that ends without its trailer, naming the file.
 */
START_TEST(gzip_cut_at_a_flush_point_is_truncated)
{
    uint8_t data[3073 * 2];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)((i * 31 + (i >> 3)) % 10); /* valid CIFAR-10 labels everywhere */
    const char *p = tmp_("cut.gz");
    char want[800];
    snprintf(want, sizeof want, "%s: the gzip stream ends early (no end-of-stream trailer): "
             "the file is truncated", p);
    uint8_t buf[16384];
    for (int kind = 0; kind < 2; kind++) { /* 0: CIFAR-10, two records; 1: IDX, 1000 bytes */
        static const uint8_t idx_head[8] = {0, 0, 0x08, 1, 0, 0, 0x03, 0xe8};
        gzFile g = gzopen(p, "wb");
        ck_assert_ptr_nonnull(g);
        if (kind == 1)
            ck_assert_int_eq(gzwrite(g, idx_head, 8), 8);
        int first = kind == 0 ? 3073 : 1000;
        ck_assert_int_eq(gzwrite(g, data, (unsigned)first), first);
        ck_assert_int_eq(gzflush(g, Z_FULL_FLUSH), Z_OK);
        long cut = (long)gzoffset(g); /* everything so far is out, decodable on its own */
        if (kind == 0)
            ck_assert_int_eq(gzwrite(g, data + 3073, 3073), 3073);
        ck_assert_int_eq(gzclose(g), Z_OK);
        size_t n = test_read_bytes(p, buf, sizeof buf);
        ck_assert_int_gt((long)n, cut);
        test_write_bytes(p, buf, (size_t)cut);
        if (kind == 0) {
            alig_dataset_t ds;
            ck_assert_int_eq(alig_dataset_load_cifar(&ds, p, 10, 1, 0), ALIG_E_DATA);
        } else {
            alig_idx_t idx;
            ck_assert_int_eq(alig_idx_read(p, &idx), ALIG_E_DATA);
        }
        ck_assert_str_eq(alig_error_message(), want);
    }
    remove(p);
}
END_TEST

/* Rewrite the file at p without its last `cut` bytes. */
static void cut_tail_(const char *p, size_t cut)
{
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f);
    rewind(f);
    uint8_t *buf = malloc(n);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(fread(buf, 1, n, f), n);
    fclose(f);
    ck_assert_int_gt(n, cut);
    ck_assert_int_eq(test_write_bytes(p, buf, n - cut), 0);
    free(buf);
}

/*
 * Found by a new-user trial: `head -c -8 f.idx.gz` (the trailer, CRC-32 and length, cut
 * off; -4 and -1 too) was accepted when the payload was larger than about 32 KiB. zlib's
 * gzread inflated the last block straight into the reader's buffer, filling it exactly,
 * and the next call found the input used up and reported a clean end of file without
 * looking for the trailer, so the CRC was never checked. Small and large IDX images and
 * labels and CIFAR-10 files, each cut 1, 4 and 8 bytes short, must all be refused.
 */
START_TEST(gzip_without_its_trailer_is_truncated)
{
    enum { MAX = 3073 * 30 };
    uint8_t *data = malloc(MAX);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < MAX; i++)
        data[i] = (uint8_t)((i * 31 + (i >> 3)) % 10); /* valid CIFAR-10 labels everywhere */
    const char *p = tmp_("notrailer.gz");
    char want[800];
    snprintf(want, sizeof want, "%s: the gzip stream ends early (no end-of-stream trailer): "
             "the file is truncated", p);
    /* IDX (n, 28, 28) images and (n) labels, small and past 32 KiB; CIFAR-10 records */
    static const struct {
        int ndim;
        uint32_t n;
    } kinds[] = {{3, 2}, {3, 100}, {1, 1000}, {1, 60000}, {0, 2}, {0, 30}};
    static const size_t cuts[] = {1, 4, 8};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (size_t c = 0; c < 3; c++) {
            uint32_t dims[3] = {kinds[k].n, 28, 28};
            if (kinds[k].ndim) {
                ck_assert_int_eq(test_write_idx(p, kinds[k].ndim, dims, data, 1), 0);
            } else {
                gzFile g = gzopen(p, "wb");
                ck_assert_ptr_nonnull(g);
                int size = (int)(3073 * kinds[k].n);
                ck_assert_int_eq(gzwrite(g, data, (unsigned)size), size);
                ck_assert_int_eq(gzclose(g), Z_OK);
            }
            cut_tail_(p, cuts[c]);
            int rc;
            if (kinds[k].ndim) {
                alig_idx_t idx;
                rc = alig_idx_read(p, &idx);
            } else {
                alig_dataset_t ds;
                rc = alig_dataset_load_cifar(&ds, p, 10, 1, 0);
            }
            ck_assert_msg(rc == ALIG_E_DATA, "%s of %u cut by %zu bytes: rc %d",
                          kinds[k].ndim == 3   ? "IDX images"
                          : kinds[k].ndim == 1 ? "IDX labels"
                                               : "CIFAR-10 records",
                          kinds[k].n, cuts[c], rc);
            ck_assert_str_eq(alig_error_message(), want);
        }
    free(data);
    remove(p);
}
END_TEST

static long file_size_(const char *p)
{
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/* Append n bytes to the file at p. */
static void append_(const char *p, const void *bytes, size_t n)
{
    FILE *f = fopen(p, "ab");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(bytes, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* Write `size` bytes of data as one more gzip member at the end of p ("ab": appended). */
static void append_member_(const char *p, const uint8_t *data, int size)
{
    gzFile g = gzopen(p, "ab");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(gzwrite(g, data, (unsigned)size), size);
    ck_assert_int_eq(gzclose(g), Z_OK);
}

/*
 * Found by a new-user trial: `(cat f.idx.gz; printf GARBAGE) > g.idx.gz` was read as good,
 * by the IDX and the CIFAR reader alike (zlib's gzread skips what follows the last gzip
 * member; `gzip -t` says "trailing garbage ignored"). Now it is a data error naming the
 * file and the bytes. A second gzip member is still read on after the first, as gzip -d
 * does: an empty one changes nothing, a CIFAR file in two members is its records.
 */
START_TEST(gzip_with_bytes_after_its_end_is_refused)
{
    enum { MAX = 3073 * 20 };
    uint8_t *data = malloc(MAX);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < MAX; i++)
        data[i] = (uint8_t)((i * 31 + (i >> 3)) % 10); /* valid CIFAR-10 labels everywhere */
    const char *p = tmp_("garbage.gz");
    /* IDX (n, 28, 28) images and (n) labels, small and past 32 KiB; CIFAR-10 records */
    static const struct {
        int ndim;
        uint32_t n;
    } kinds[] = {{3, 2}, {3, 60}, {1, 1000}, {1, 60000}, {0, 1}, {0, 20}};
    /* what follows the gzip stream (a lone 1f is half a gzip magic), after its first
     * member or after a second, empty one */
    static const struct {
        const char *bytes;
        size_t n;
        int empty_member;
    } tails[] = {{"GARBAGE", 7, 0}, {"\0", 1, 0}, {"\x1f", 1, 0}, {"GARBAGE", 7, 1}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
            uint32_t dims[3] = {kinds[k].n, 28, 28};
            int cifar = kinds[k].ndim == 0;
            if (cifar) {
                remove(p);
                append_member_(p, data, (int)(3073 * kinds[k].n));
            } else {
                ck_assert_int_eq(test_write_idx(p, kinds[k].ndim, dims, data, 1), 0);
            }
            if (tails[t].empty_member)
                append_member_(p, data, 0);
            long end = file_size_(p);
            append_(p, tails[t].bytes, tails[t].n);
            char want[800];
            snprintf(want, sizeof want,
                     "%s: %zu byte%s after the end of the gzip stream (at byte %ld of %ld); "
                     "expected the file to end there, or another gzip member",
                     p, tails[t].n, tails[t].n == 1 ? "" : "s", end, end + (long)tails[t].n);
            int rc;
            if (cifar) {
                alig_dataset_t ds;
                rc = alig_dataset_load_cifar(&ds, p, 10, 1, 0);
            } else {
                alig_idx_t idx;
                rc = alig_idx_read(p, &idx);
            }
            ck_assert_msg(rc == ALIG_E_DATA, "%s of %u followed by %zu bytes (case %zu): rc %d",
                          kinds[k].ndim == 3   ? "IDX images"
                          : kinds[k].ndim == 1 ? "IDX labels"
                                               : "CIFAR-10 records",
                          kinds[k].n, tails[t].n, t, rc);
            ck_assert_str_eq(alig_error_message(), want);
        }

    /* members after the first are read on: CIFAR-10 records in two members ... */
    remove(p);
    append_member_(p, data, 3073);
    append_member_(p, data + 3073, 2 * 3073);
    alig_dataset_t ds;
    ck_assert_int_eq(alig_dataset_load_cifar(&ds, p, 10, 1, 0), ALIG_OK);
    ck_assert_int_eq(ds.n, 3);
    ck_assert_int_eq(ds.y[2], data[2 * 3073]);
    ck_assert_int_eq(ds.x[2 * 3072 + 5], data[2 * 3073 + 6]);
    alig_dataset_free(&ds);
    /* ... an IDX file with an empty second member is the same file ... */
    uint32_t dims[1] = {1000};
    ck_assert_int_eq(test_write_idx(p, 1, dims, data, 1), 0);
    append_member_(p, data, 0);
    alig_idx_t idx;
    ck_assert_int_eq(alig_idx_read(p, &idx), ALIG_OK);
    ck_assert_int_eq(idx.count, 1000);
    alig_idx_free(&idx);
    /* ... and one with more data has bytes the header does not promise */
    append_member_(p, data, 1);
    ck_assert_int_eq(alig_idx_read(p, &idx), ALIG_E_DATA);
    ck_assert_ptr_nonnull(strstr(alig_error_message(), "trailing bytes after the 1000 data bytes"));
    free(data);
    remove(p);
}
END_TEST

START_TEST(dataset_load_checks_counts_and_normalises)
{
    const char *dir = test_tmpdir();
    char pi[512], pl[512];
    snprintf(pi, sizeof pi, "%s/alig-ds-%d-images.idx", dir, (int)getpid());
    snprintf(pl, sizeof pl, "%s/alig-ds-%d-labels.idx", dir, (int)getpid());
    /* 3 images 1x2: pixel values 0,255 | 51,102 | 0,0 */
    uint8_t x[6] = {0, 255, 51, 102, 0, 0}, y[3] = {2, 0, 1};
    uint32_t dx[3] = {3, 1, 2}, dy[1] = {3};
    test_write_idx(pi, 3, dx, x, 0);
    test_write_idx(pl, 1, dy, y, 0);
    alig_dataset_t ds;
    ck_assert_int_eq(alig_dataset_load_idx(&ds, pi, pl, 0), ALIG_OK);
    ck_assert_int_eq(ds.n, 3);
    ck_assert_int_eq(ds.dim, 2);
    ck_assert_int_eq(ds.n_classes, 3);
    alig_dataset_compute_stats(&ds);
    /* mean of 0,1,0.2,0.4,0,0 = 1.6/6; E[x^2] = (1+0.04+0.16)/6 = 0.2 */
    double mean = 1.6 / 6, sd = sqrt(0.2 - mean * mean);
    ck_assert_double_eq_tol(ds.mean[0], mean, 1e-6);
    ck_assert_double_eq_tol(ds.std[0], sd, 1e-6);
    int64_t idx[2] = {1, 0};
    float xb[4];
    int32_t yb[2];
    alig_dataset_gather(&ds, idx, 2, xb, yb);
    ck_assert_int_eq(yb[0], 0);
    ck_assert_int_eq(yb[1], 2);
    ck_assert_double_eq_tol(xb[0], (0.2 - mean) / sd, 1e-5);
    ck_assert_double_eq_tol(xb[1], (0.4 - mean) / sd, 1e-5);
    ck_assert_double_eq_tol(xb[3], (1.0 - mean) / sd, 1e-5);
    alig_dataset_free(&ds);

    /* limit keeps the first samples */
    ck_assert_int_eq(alig_dataset_load_idx(&ds, pi, pl, 2), ALIG_OK);
    ck_assert_int_eq(ds.n, 2);
    ck_assert_int_eq(ds.n_classes, 3);
    alig_dataset_free(&ds);

    /* label count differs from image count */
    uint32_t dy2[1] = {2};
    test_write_idx(pl, 1, dy2, y, 0);
    ck_assert_int_eq(alig_dataset_load_idx(&ds, pi, pl, 0), ALIG_E_DATA);
    ck_assert_ptr_nonnull(strstr(alig_error_message(), "3 images"));
    ck_assert_ptr_nonnull(strstr(alig_error_message(), "2 labels"));

    /* labels given as images: wrong number of dimensions */
    ck_assert_int_eq(alig_dataset_load_idx(&ds, pl, pl, 0), ALIG_E_DATA);
    ck_assert_ptr_nonnull(strstr(alig_error_message(), "3 (n, h, w) or 4"));
    remove(pi);
    remove(pl);
}
END_TEST

START_TEST(batch_slices_partition_the_batch)
{
    for (int world = 1; world <= 7; world++)
        for (int64_t n = 0; n <= 20; n++) {
            int64_t next = 0;
            for (int r = 0; r < world; r++) {
                int64_t lo, hi;
                alig_batch_slice(n, r, world, &lo, &hi);
                ck_assert_int_eq(lo, next);
                ck_assert(hi - lo == n / world || hi - lo == n / world + 1);
                next = hi;
            }
            ck_assert_int_eq(next, n);
        }
    int64_t lo, hi;
    alig_batch_slice(10, 2, 3, &lo, &hi); /* 4, 3, 3 */
    ck_assert_int_eq(lo, 7);
    ck_assert_int_eq(hi, 10);
    ck_assert_int_eq(alig_batches_per_epoch(10, 4, 0), 3);
    ck_assert_int_eq(alig_batches_per_epoch(10, 4, 1), 2);
    ck_assert_int_eq(alig_batches_per_epoch(8, 4, 0), 2);
}
END_TEST

START_TEST(fashion_mnist_if_installed)
{
    const char *p = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
    if (access(p, R_OK) != 0)
        return; /* the package is installed by `make check`; nothing to read otherwise */
    alig_idx_t idx;
    ck_assert_int_eq(alig_idx_read(p, &idx), ALIG_OK);
    ck_assert_int_eq(idx.ndim, 1);
    ck_assert_int_eq(idx.dims[0], 10000);
    int counts[10] = {0};
    for (int i = 0; i < 10000; i++) {
        ck_assert_int_lt(idx.data[i], 10);
        counts[idx.data[i]]++;
    }
    for (int k = 0; k < 10; k++)
        ck_assert_int_eq(counts[k], 1000); /* the test set is balanced */
    alig_idx_free(&idx);
}
END_TEST

Suite *data_suite(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("idx");
    tcase_add_test(tc, idx_reads_raw_and_gzip);
    tcase_add_test(tc, idx_rejects_malformed);
    tcase_add_test(tc, idx_rejects_corrupt_gzip);
    tcase_add_test(tc, gzip_errors_name_the_file_once);
    tcase_add_test(tc, gzip_cut_at_a_flush_point_is_truncated);
    tcase_add_test(tc, gzip_without_its_trailer_is_truncated);
    tcase_add_test(tc, gzip_with_bytes_after_its_end_is_refused);
    tcase_add_test(tc, dataset_load_checks_counts_and_normalises);
    tcase_add_test(tc, batch_slices_partition_the_batch);
    tcase_add_test(tc, fashion_mnist_if_installed);
    suite_add_tcase(s, tc);
    return s;
}
