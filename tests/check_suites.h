/*
 * check_suites.h -- one Suite constructor per module; check_main.c runs them all.
 * Add a suite: write tests/check_<module>.c defining <module>_suite(), declare it
 * here and list it in check_main.c.
 */
#ifndef ALIG_CHECK_SUITES_H
#define ALIG_CHECK_SUITES_H

#include <check.h>

Suite *config_suite(void);
Suite *data_suite(void);
Suite *rng_suite(void);
Suite *model_suite(void);
Suite *optim_suite(void);
Suite *train_suite(void);
Suite *layers_suite(void);
Suite *datasets_suite(void);

Suite *mpi_suite(void);
Suite *reference_suite(void);
Suite *ckpt_suite(void);
Suite *faults_suite(void);
Suite *metrics_suite(void);

#include <stddef.h>
#include <stdint.h>

/* Directory for scratch files of this test run (ALIG_TEST_TMP or /tmp). */
const char *test_tmpdir(void);

/* Write an unsigned-byte IDX file (gzip-compressed when gz). 0 on success. */
int test_write_idx(const char *path, int ndim, const uint32_t *dims, const uint8_t *data, int gz);

/* Write raw bytes to a file. 0 on success. */
int test_write_bytes(const char *path, const void *data, size_t n);

/* Read up to cap bytes of a file into buf (the test fails if it cannot be opened);
 * returns the number read. */
size_t test_read_bytes(const char *path, void *buf, size_t cap);

/*
 * Write DIR/PREFIX-images.idx (n, h, w) and DIR/PREFIX-labels.idx (n):
 * label i % classes, pixels noise plus a bright band whose position encodes
 * the label (learnable by a small MLP). 0 on success.
 */
int test_make_dataset(const char *dir, const char *prefix, int n, int h, int w, int classes,
                      unsigned seed);

/*
 * HDF5 identifiers left open by the code under test: test_h5_mark before it,
 * test_h5_left_open after. Counts the dataspace, datatype and property-list
 * identifiers created in between that are still valid (identifiers of a kind
 * are numbered in sequence), and the objects of every file still open; their
 * kinds go to `what`. 0 when everything was closed.
 */
typedef struct {
    int64_t first[3];
} test_h5_mark_t;
void test_h5_mark(test_h5_mark_t *m);
int test_h5_left_open(const test_h5_mark_t *m, char *what, size_t size);

/* The mpirun prefix for np ranks ("mpirun [--allow-run-as-root] --oversubscribe -np N"). */
void test_mpirun(char *buf, size_t size, int np);

/*
 * Run `cmd` with /bin/sh in its own process group, killing the group after
 * timeout_s. Captures stdout+stderr into out. Returns the exit status,
 * 128+signal, or -2 on time-out; *elapsed gets the wall time.
 */
int test_run(const char *cmd, double timeout_s, char *out, size_t out_size, double *elapsed);

#endif
