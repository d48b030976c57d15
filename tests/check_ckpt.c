/*
 * check_ckpt.c -- checkpoints (alig/ckpt.h, issue 3).
 *
 * tcase "file" (one process, no MPI): the HDF5 layout, a bit-for-bit round
 * trip, Fletcher-32 and truncation detection, architecture mismatches,
 * [checkpoint] init, the save protocol (temp files, `latest`, keep) and the
 * [checkpoint] config keys.
 *
 * tcase "mpirun" (real ranks): every scenario ends by comparing the final
 * checkpoint with one of an uninterrupted run of the same config --
 * bitwise (parameters and momentum) at the same rank count, to 1e-5 of
 * max |w| across rank counts: resume mid-epoch, elastic resume 4 -> 2 and
 * 4 -> 3 ranks, SIGTERM to one rank, SIGUSR1 to mpirun, kill -9 during a
 * write, corrupted and truncated newest checkpoints, a refused
 * architecture, an unwritable directory and a full disk (ulimit -f), the
 * --resume modes and launch/run-until-done.sh.
 *
 * The data are noise with random labels: nothing to learn, so the loss and
 * the gradients stay large and the parameters keep moving; any difference
 * in what a resumed run does shows in the final bits.
 */
#include "check_suites.h"

#include "alig/ckpt.h"
#include "ckpt-impl.h" /* alig_ckpt_read_second_moment */
#include "alig/comm.h"
#include "alig/config.h"
#include "alig/error.h"
#include "alig/train.h"

#include <hdf5.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LAYERS "dense 16, relu, dense 12, relu, dense 5"
#define N_SAMPLES 60 /* batches of 9: 6 x 9 + 1 x 6 = 7 steps per epoch, 21 in 3 epochs */

static char out_[1 << 17];
static char dir_[512];
static char cfg_[640];
static int serial_;

static const char *env_(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* mpirun prefix as in check_mpi.c: --allow-run-as-root as root, always --oversubscribe */
static void mpirun_(char *buf, size_t size, int np) { test_mpirun(buf, size, np); }

/* Shell prefix for commands that start ranks: Open MPI keeps allocations
 * until exit by design, so no leak checks in sanitized ranks (as check_mpi.c). */
static const char *san_env_(void)
{
    const char *san = getenv("ALIG_SANITIZE");
    return san && *san == '1' ? "export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1; " : "";
}

static int count_(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static int exists_(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A fresh scratch directory for this test. */
static void scratch_(void)
{
    snprintf(dir_, sizeof dir_, "%s/alig-ckpt-%d-%d", test_tmpdir(), (int)getpid(), serial_++);
    ck_assert_msg(mkdir(dir_, 0777) == 0 || errno == EEXIST, "mkdir %s: %s", dir_, strerror(errno));
}

/* DIR/s-{images,labels}.idx: n 6x6 noise images, labels 0..4 at random. */
static void make_data_(int n)
{
    uint8_t *x = malloc((size_t)n * 36), *y = malloc((size_t)n);
    ck_assert(x && y);
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 36; k++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            x[(size_t)i * 36 + k] = (uint8_t)(s >> 56);
        }
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        y[i] = (uint8_t)(i < 5 ? i : (int)((s >> 33) % 5)); /* every class present */
    }
    char pi[600], pl[600];
    snprintf(pi, sizeof pi, "%s/s-images.idx", dir_);
    snprintf(pl, sizeof pl, "%s/s-labels.idx", dir_);
    uint32_t di[3] = {(uint32_t)n, 6, 6}, dl[1] = {(uint32_t)n};
    ck_assert_int_eq(test_write_idx(pi, 3, di, x, 0), 0);
    ck_assert_int_eq(test_write_idx(pl, 1, dl, y, 0), 0);
    free(x);
    free(y);
}

/* The config text: 3 epochs of 7 steps, momentum, a test set; `extra`
 * goes under [checkpoint]. */
static void config_text_(char *buf, size_t size, const char *extra)
{
    int len = snprintf(
        buf, size,
        "[run]\nseed = 7\nepochs = 3\nout_dir = %s/run\nthreads = 1\n\n"
        "[data]\ntrain_images = %s/s-images.idx\ntrain_labels = %s/s-labels.idx\n"
        "test_images = %s/s-images.idx\ntest_labels = %s/s-labels.idx\nbatch_size = 9\n\n"
        "[model]\nlayers = " LAYERS "\n\n"
        "[optimizer]\nmax_lr = 0.2\nmomentum = 0.9\n\n[eval]\nbatch_size = 20\n\n"
        "[checkpoint]\n%s",
        dir_, dir_, dir_, dir_, dir_, extra);
    ck_assert_msg(len > 0 && (size_t)len < size, "config text does not fit");
}

static void write_config_(const char *extra)
{
    char text[4096];
    config_text_(text, sizeof text, extra);
    snprintf(cfg_, sizeof cfg_, "%s/c.ini", dir_);
    ck_assert_int_eq(test_write_bytes(cfg_, text, strlen(text)), 0);
}

static void parse_config_(alig_config_t *cfg, const char *extra)
{
    char text[4096];
    config_text_(text, sizeof text, extra);
    alig_config_defaults(cfg);
    ck_assert_msg(alig_config_parse(cfg, text, "inproc.ini") == ALIG_OK, "%s",
                  alig_error_message());
}

/* mpirun -np N alig-train CONFIG ARGS: the exit status; output in out_. */
static int train_(int np, const char *args)
{
    char cmd[8192], pre[160];
    mpirun_(pre, sizeof pre, np);
    snprintf(cmd, sizeof cmd, "%s%s %s/alig-train %s %s", san_env_(), pre, env_("ALIG_BIN", "bin"),
             cfg_, args);
    return test_run(cmd, 120, out_, sizeof out_, NULL);
}

/* Run under /bin/sh with $BIN, $CFG, $DIR and $MPIRUN (an mpirun prefix for NP ranks) set. */
static int shell_(int np, const char *script, double timeout, double *elapsed)
{
    char cmd[16384], pre[160];
    mpirun_(pre, sizeof pre, np);
    snprintf(cmd, sizeof cmd, "%sBIN='%s/alig-train'; CFG='%s'; DIR='%s'; MPIRUN='%s'; %s",
             san_env_(), env_("ALIG_BIN", "bin"), cfg_, dir_, pre, script);
    return test_run(cmd, timeout, out_, sizeof out_, elapsed);
}

static const char *ckpt_(const char *run, long long step)
{
    static char buf[4][700];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s/ckpt-%08lld.h5", dir_, run, step);
    return buf[k];
}

/* ------------------------------------------------------------------ */
/* reading checkpoints back */

typedef struct {
    int64_t n;
    float *p, *v;
    alig_ckpt_info_t info;
} snap_t;

static const char *snap_layers_ = LAYERS; /* the model the snapshots are read with */

static int read_snap_(const char *path, snap_t *s)
{
    alig_model_t m;
    ck_assert_int_eq(alig_model_build(&m, snap_layers_, 1, 6, 6, 5, 1), ALIG_OK);
    s->n = m.n_params;
    s->p = malloc(sizeof(float) * (size_t)m.n_params);
    s->v = malloc(sizeof(float) * (size_t)m.n_params);
    float *state = malloc(sizeof(float) * (size_t)(m.n_state + 1));
    int rc = alig_ckpt_read_file(path, &m, s->p, state, s->v, &s->info, NULL);
    free(state);
    alig_model_free(&m);
    return rc;
}

static void snap_(const char *path, snap_t *s)
{
    int rc = read_snap_(path, s);
    ck_assert_msg(rc == ALIG_OK, "%s: %s\n--- last output:\n%s", path, alig_error_message(), out_);
}

static void snap_free_(snap_t *s)
{
    free(s->p);
    free(s->v);
    alig_ckpt_info_free(&s->info);
}

static double max_abs_diff_(const float *a, const float *b, int64_t n)
{
    double d = 0;
    for (int64_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
    return d;
}

/* Same step, parameters and momentum bit for bit. */
static void assert_bitwise_(const snap_t *a, const snap_t *b, const char *what)
{
    ck_assert_int_eq(a->n, b->n);
    ck_assert_int_eq(a->info.step, b->info.step);
    ck_assert_int_eq(a->info.epoch, b->info.epoch);
    ck_assert_int_eq(a->info.batch, b->info.batch);
    ck_assert_msg(memcmp(a->p, b->p, sizeof(float) * (size_t)a->n) == 0,
                  "%s: parameters differ (max |diff| %g)", what, max_abs_diff_(a->p, b->p, a->n));
    ck_assert_msg(memcmp(a->v, b->v, sizeof(float) * (size_t)a->n) == 0,
                  "%s: momentum differs (max |diff| %g)", what, max_abs_diff_(a->v, b->v, a->n));
}

/* assert_bitwise_ on the checkpoints of runs DIR/ra at step sa and DIR/rb at step sb. */
static void assert_runs_bitwise_(const char *ra, long long sa, const char *rb, long long sb,
                                 const char *what)
{
    snap_t a, b;
    snap_(ckpt_(ra, sa), &a);
    snap_(ckpt_(rb, sb), &b);
    assert_bitwise_(&a, &b, what);
    snap_free_(&a);
    snap_free_(&b);
}

/* Flip one byte in the middle of the first chunk of dataset `dset`. */
static void flip_byte_(const char *path, const char *dset)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    hsize_t off[4], size = 0;
    haddr_t addr = 0;
    unsigned mask = 0;
    hid_t space = H5Dget_space(d);
    ck_assert_int_ge(H5Dget_chunk_info(d, space, 0, off, &mask, &addr, &size), 0);
    ck_assert_uint_gt(size, 8);
    H5Sclose(space);
    H5Dclose(d);
    H5Fclose(f);
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    unsigned char b;
    ck_assert_int_eq(pread(fd, &b, 1, (off_t)(addr + size / 2)), 1);
    b ^= 0x5a;
    ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)(addr + size / 2)), 1);
    close(fd);
}

static void truncate_half_(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(truncate(path, st.st_size / 2), 0);
}

static void read_text_(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* "train loss X acc Y%" of the line of epoch `e` in a log ("" if none). */
static void epoch_stats_(const char *log, int e, char *buf, size_t size)
{
    char head[32];
    snprintf(head, sizeof head, "epoch %3d ", e);
    buf[0] = '\0';
    const char *p = strstr(log, head);
    const char *q = p ? strstr(p, "train loss") : NULL;
    const char *r = q ? strstr(q, "  test") : NULL;
    if (q && r)
        snprintf(buf, size, "%.*s", (int)(r - q), q);
}

/* ------------------------------------------------------------------ */
/* tcase "file" */

START_TEST(round_trip_restores_every_byte_and_h5_layout_is_by_name)
{
    scratch_();
    make_data_(N_SAMPLES);
    alig_config_t cfg;
    parse_config_(&cfg, "");
    alig_comm_t *comm = alig_comm_init_self();
    alig_trainer_t t;
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(alig_trainer_step(&t, NULL), ALIG_OK);
    char path[700];
    snprintf(path, sizeof path, "%s/rt.h5", dir_);
    ck_assert_int_eq(alig_ckpt_write_file(path, &t), ALIG_OK);

    snap_t s;
    snap_(path, &s);
    ck_assert_int_eq(memcmp(s.p, t.model.params, sizeof(float) * (size_t)s.n), 0);
    ck_assert_int_eq(memcmp(s.v, t.optim.v, sizeof(float) * (size_t)s.n), 0);
    ck_assert_int_eq(s.info.version, ALIG_CKPT_VERSION);
    ck_assert_int_eq(s.info.step, 10);
    ck_assert_int_eq(s.info.epoch, 1); /* 10 = 7 + 3 */
    ck_assert_int_eq(s.info.batch, 3);
    ck_assert_int_eq(s.info.batches_per_epoch, 7);
    ck_assert_int_eq(s.info.train_samples, N_SAMPLES);
    ck_assert_uint_eq(s.info.seed, 7);
    ck_assert_int_eq(s.info.world_size, 1);
    ck_assert_int_eq(s.info.batch_size, 9);
    ck_assert_int_eq(s.info.has_momentum, 1);
    /* the running epoch statistics, so a resumed epoch line is right */
    ck_assert_int_eq(t.stats.steps, 10);
    ck_assert_int_eq(memcmp(&s.info.stats, &t.stats, sizeof t.stats), 0);
    ck_assert_str_eq(s.info.config, cfg.text);
    ck_assert_ptr_nonnull(strstr(s.info.config_effective, "\n[checkpoint]\n"));
    ck_assert_ptr_nonnull(strstr(s.info.config_effective, "layers = " LAYERS "\n"));
    snap_free_(&s);

    /* what h5dump / h5py users see */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    struct {
        const char *name;
        int ndim;
        hsize_t d0, d1;
    } want[] = {
        {"/params/00_dense/weight", 2, 16, 36}, {"/params/00_dense/bias", 1, 16, 0},
        {"/params/02_dense/weight", 2, 12, 16}, {"/params/04_dense/weight", 2, 5, 12},
        {"/params/04_dense/bias", 1, 5, 0},     {"/optim/momentum/02_dense/weight", 2, 12, 16}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        hid_t d = H5Dopen2(f, want[i].name, H5P_DEFAULT);
        ck_assert_msg(d >= 0, "no dataset %s", want[i].name);
        hid_t sp = H5Dget_space(d);
        hsize_t dims[4];
        ck_assert_int_eq(H5Sget_simple_extent_ndims(sp), want[i].ndim);
        H5Sget_simple_extent_dims(sp, dims, NULL);
        ck_assert_uint_eq(dims[0], want[i].d0);
        if (want[i].ndim == 2)
            ck_assert_uint_eq(dims[1], want[i].d1);
        hid_t dcpl = H5Dget_create_plist(d);
        ck_assert_int_eq(H5Pget_layout(dcpl), H5D_CHUNKED);
        ck_assert_int_ge(H5Pget_nfilters(dcpl), 1);
        unsigned flags;
        size_t nelem = 0;
        unsigned config;
        ck_assert_int_eq(H5Pget_filter2(dcpl, 0, &flags, &nelem, NULL, 0, NULL, &config),
                         H5Z_FILTER_FLETCHER32);
        H5Pclose(dcpl);
        H5Sclose(sp);
        H5Dclose(d);
    }
    long long step = 0;
    hid_t g = H5Gopen2(f, "/train", H5P_DEFAULT);
    hid_t a = H5Aopen(g, "step", H5P_DEFAULT);
    ck_assert_int_ge(H5Aread(a, H5T_NATIVE_LLONG, &step), 0);
    ck_assert_int_eq(step, 10);
    H5Aclose(a);
    H5Gclose(g);
    ck_assert_int_gt(H5Lexists(f, "/model", H5P_DEFAULT), 0);
    ck_assert_int_gt(H5Lexists(f, "/config", H5P_DEFAULT), 0);
    ck_assert_int_gt(H5Aexists(f, "format"), 0);
    H5Fclose(f);
    alig_trainer_free(&t);
    alig_config_free(&cfg);

    /* without momentum: no /optim/momentum; a reader asking for it gets zeros */
    parse_config_(&cfg, "");
    cfg.momentum = 0;
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    ck_assert_int_eq(alig_trainer_step(&t, NULL), ALIG_OK);
    ck_assert_int_eq(alig_ckpt_write_file(path, &t), ALIG_OK);
    snap_(path, &s);
    ck_assert_int_eq(s.info.has_momentum, 0);
    for (int64_t i = 0; i < s.n; i++)
        ck_assert(s.v[i] == 0.0f);
    ck_assert_int_eq(memcmp(s.p, t.model.params, sizeof(float) * (size_t)s.n), 0);
    snap_free_(&s);
    alig_trainer_free(&t);
    alig_config_free(&cfg);
    alig_comm_finalize(comm);
}
END_TEST

/* Write a checkpoint of a short in-process run to DIR/x.h5. */
static void small_ckpt_(const char *path)
{
    alig_config_t cfg;
    parse_config_(&cfg, "");
    alig_comm_t *comm = alig_comm_init_self();
    alig_trainer_t t;
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(alig_trainer_step(&t, NULL), ALIG_OK);
    ck_assert_int_eq(alig_ckpt_write_file(path, &t), ALIG_OK);
    alig_trainer_free(&t);
    alig_config_free(&cfg);
    alig_comm_finalize(comm);
}

START_TEST(flipped_byte_fails_fletcher32_with_the_path)
{
    scratch_();
    make_data_(N_SAMPLES);
    char path[700];
    snprintf(path, sizeof path, "%s/x.h5", dir_);
    small_ckpt_(path);
    snap_t s;
    snap_(path, &s);
    snap_free_(&s);
    flip_byte_(path, "/params/02_dense/weight");
    int mismatch = -1;
    alig_model_t m;
    ck_assert_int_eq(alig_model_build(&m, LAYERS, 1, 6, 6, 5, 1), ALIG_OK);
    float *p = malloc(sizeof(float) * (size_t)m.n_params);
    ck_assert_int_eq(alig_ckpt_read_file(path, &m, p, NULL, NULL, NULL, &mismatch), ALIG_E_CKPT);
    ck_assert_int_eq(mismatch, 0); /* corrupt, not another architecture */
    const char *msg = alig_error_message();
    ck_assert_msg(strncmp(msg, path, strlen(path)) == 0, "message does not start with the path: %s",
                  msg);
    ck_assert_msg(strstr(msg, "/params/02_dense/weight") && strstr(msg, "Fletcher32"), "%s", msg);
    /* the same file as [checkpoint] init: refused, parameters untouched */
    memset(m.params, 0, sizeof(float) * (size_t)m.n_params);
    ck_assert_int_eq(alig_ckpt_load_params(&m, path), ALIG_E_CKPT);
    ck_assert(m.params[0] == 0.0f && m.params[m.n_params - 1] == 0.0f);
    free(p);
    alig_model_free(&m);
}
END_TEST

START_TEST(truncated_empty_or_foreign_files_are_refused_with_the_path)
{
    scratch_();
    make_data_(N_SAMPLES);
    char path[700];
    snprintf(path, sizeof path, "%s/x.h5", dir_);
    alig_model_t m;
    ck_assert_int_eq(alig_model_build(&m, LAYERS, 1, 6, 6, 5, 1), ALIG_OK);
    float *p = malloc(sizeof(float) * (size_t)m.n_params);
    const char *cases[][2] = {{"truncate", "truncated"},
                              {"empty", "signature"},
                              {"text", "signature"},
                              {"missing", "No such file"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        small_ckpt_(path);
        if (!strcmp(cases[i][0], "truncate"))
            truncate_half_(path);
        else if (!strcmp(cases[i][0], "empty"))
            ck_assert_int_eq(truncate(path, 0), 0);
        else if (!strcmp(cases[i][0], "text"))
            ck_assert_int_eq(test_write_bytes(path, "[run]\nseed = 1\n", 15), 0);
        else
            ck_assert_int_eq(unlink(path), 0);
        int mismatch = -1;
        ck_assert_int_eq(alig_ckpt_read_file(path, &m, p, NULL, NULL, NULL, &mismatch),
                         ALIG_E_CKPT);
        ck_assert_int_eq(mismatch, 0);
        const char *msg = alig_error_message();
        ck_assert_msg(strncmp(msg, path, strlen(path)) == 0 && strstr(msg, cases[i][1]), "%s: %s",
                      cases[i][0], msg);
    }
    free(p);
    alig_model_free(&m);
}
END_TEST

/* Issue #6: whatever byte of a checkpoint's metadata is damaged, reading it (resume and
 * [checkpoint] init) returns ALIG_OK or ALIG_E_CKPT and leaves no HDF5 identifier open. */
START_TEST(damaged_metadata_leaves_no_handle_open)
{
    /* libhdf5 1.10 leaks internally on a metadata checksum error and would print
     * "infinite loop closing library" when this process exits (as main() does) */
    H5dont_atexit();
    scratch_();
    make_data_(N_SAMPLES);
    char path[700], good[700], what[256];
    snprintf(good, sizeof good, "%s/good.h5", dir_);
    snprintf(path, sizeof path, "%s/x.h5", dir_);
    small_ckpt_(good);
    static unsigned char img[1 << 18];
    size_t n = test_read_bytes(good, img, sizeof img);
    ck_assert(n > 4096 && n < sizeof img);
    alig_model_t m;
    ck_assert_int_eq(alig_model_build(&m, LAYERS, 1, 6, 6, 5, 1), ALIG_OK);
    float *p = malloc(sizeof(float) * (size_t)m.n_params * 2);
    int failed = 0, tried = 0;
    /* the superblock, the root group's header and its attributes, and the start of every
     * object header ("OHDR") of the file, a byte in every few */
    static unsigned char pick[1 << 18];
    memset(pick, 0, sizeof pick);
    for (size_t h = 0; h + 4 <= n; h++)
        if (h < 1024 || memcmp(img + h, "OHDR", 4) == 0)
            memset(pick + h, 1, h < 1024 ? 1 : (n - h < 640 ? n - h : 640));
    for (size_t off = 0; off < n; off++) {
        if (!pick[off] || off % 7 != 0)
            continue;
        img[off] ^= 0x5a;
        ck_assert_int_eq(test_write_bytes(path, img, n), 0);
        img[off] ^= 0x5a;
        test_h5_mark_t mark;
        test_h5_mark(&mark);
        int rc = alig_ckpt_read_file(path, &m, p, NULL, p + m.n_params, NULL, NULL);
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", alig_error_message());
        int rc2 = alig_ckpt_load_params(&m, path);
        ck_assert_msg(rc == ALIG_OK || rc == ALIG_E_CKPT, "byte %zu: %d %s", off, rc, msg);
        ck_assert_msg(rc == ALIG_OK || strncmp(msg, path, strlen(path)) == 0, "byte %zu: %s", off,
                      msg);
        failed += rc != ALIG_OK;
        ck_assert_msg(rc2 == ALIG_OK || rc2 == ALIG_E_CKPT, "byte %zu: %d", off, rc2);
        ck_assert_msg(test_h5_left_open(&mark, what, sizeof what) == 0,
                      "byte %zu: left open: %s", off, what);
        tried++;
    }
    ck_assert_msg(tried > 200 && failed > tried / 4, "%d of %d damaged files refused", failed,
                  tried);
    free(p);
    alig_model_free(&m);
}
END_TEST

START_TEST(other_architecture_is_refused_naming_the_first_tensor)
{
    scratch_();
    make_data_(N_SAMPLES);
    char path[700];
    snprintf(path, sizeof path, "%s/x.h5", dir_);
    small_ckpt_(path);
    const char *cases[][3] = {
        /* model layers, expected in the message (tensor, shapes) */
        {"dense 17, relu, dense 12, relu, dense 5", "tensor 00_dense/weight",
         "(17, 36), the file has (16, 36)"},
        {"dense 16, relu, dense 12, relu, dense 6", "tensor 04_dense/weight",
         "(6, 12), the file has (5, 12)"},
        {"dense 16, relu, dense 12, relu, dense 5, relu, dense 5", "tensor 06_dense/weight",
         "is not in the file"},
        {"dense 16, relu, dense 12", "/params/04_dense/bias", "does not have"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        alig_model_t m;
        ck_assert_int_eq(alig_model_build(&m, cases[i][0], 1, 6, 6, 0, 1), ALIG_OK);
        float *p = malloc(sizeof(float) * (size_t)m.n_params);
        int mismatch = 0;
        ck_assert_int_eq(alig_ckpt_read_file(path, &m, p, NULL, NULL, NULL, &mismatch),
                         ALIG_E_CKPT);
        ck_assert_int_eq(mismatch, 1);
        const char *msg = alig_error_message();
        ck_assert_msg(strstr(msg, "architecture mismatch") && strstr(msg, cases[i][1]) &&
                          strstr(msg, cases[i][2]),
                      "%s: %s", cases[i][0], msg);
        ck_assert_int_eq(alig_ckpt_load_params(&m, path), ALIG_E_CKPT);
        ck_assert_ptr_nonnull(strstr(alig_error_message(), cases[i][1]));
        free(p);
        alig_model_free(&m);
    }
}
END_TEST

/* A parameters-only file as h5py would write it: float64, contiguous, no attributes. */
/* element nan_at (>= 0) of the parameters is a NaN */
static void write_params_only_(const char *path, double scale, int64_t nan_at)
{
    alig_model_t m;
    ck_assert_int_eq(alig_model_build(&m, LAYERS, 1, 6, 6, 5, 1), ALIG_OK);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    for (int i = 0; i < m.n_tensors; i++) {
        const alig_tensor_t *t = &m.tensors[i];
        hsize_t dims[4];
        double *v = malloc(sizeof(double) * (size_t)t->size);
        for (int d = 0; d < t->ndim; d++)
            dims[d] = (hsize_t)t->shape[d];
        for (int64_t k = 0; k < t->size; k++)
            v[k] = t->offset + k == nan_at ? NAN : scale * (double)((t->offset + k) % 97 - 48);
        char name[128];
        snprintf(name, sizeof name, "/params/%s", t->name);
        hid_t sp = H5Screate_simple(t->ndim, dims, NULL);
        hid_t d = H5Dcreate2(f, name, H5T_IEEE_F64LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        ck_assert_int_ge(d, 0);
        ck_assert_int_ge(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
        H5Dclose(d);
        H5Sclose(sp);
        free(v);
    }
    H5Pclose(lcpl);
    H5Fclose(f);
    alig_model_free(&m);
}

START_TEST(init_loads_parameters_from_a_plain_file_or_a_checkpoint)
{
    scratch_();
    make_data_(N_SAMPLES);
    char plain[700], ck[700], extra[1600];
    snprintf(plain, sizeof plain, "%s/plain.h5", dir_);
    snprintf(ck, sizeof ck, "%s/x.h5", dir_);
    write_params_only_(plain, 0.01, -1);
    alig_comm_t *comm = alig_comm_init_self();

    /* float64 datasets without checksums: converted to float32 exactly as (float)v */
    alig_config_t cfg;
    snprintf(extra, sizeof extra, "init = %s\n", plain);
    parse_config_(&cfg, extra);
    alig_trainer_t t;
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    for (int64_t k = 0; k < t.model.n_params; k++)
        ck_assert_msg(t.model.params[k] == (float)(0.01 * (double)(k % 97 - 48)), "param %lld",
                      (long long)k);
    ck_assert_int_eq(t.step, 0);
    int64_t nan_at = t.model.tensors[1].offset + 2;
    char want[200];
    snprintf(want, sizeof want, "plain.h5: /params/%s holds a non-finite value (nan at element 2)",
             t.model.tensors[1].name);
    alig_trainer_free(&t);
    alig_config_free(&cfg);

    /* then the usual projection onto the max_norm ball */
    parse_config_(&cfg, extra);
    cfg.max_norm = 0.5;
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    ck_assert_double_le(sqrt(alig_norm2(t.model.params, t.model.n_params)), 0.5 + 1e-6);
    double ratio = t.model.params[1] / (0.01 * (double)(1 % 97 - 48));
    ck_assert_double_gt(ratio, 0.0);
    ck_assert_double_lt(ratio, 1.0);
    alig_trainer_free(&t);
    alig_config_free(&cfg);

    /* a checkpoint works too: its parameters, but a fresh position and momentum */
    small_ckpt_(ck);
    snap_t s;
    snap_(ck, &s);
    snprintf(extra, sizeof extra, "init = %s\n", ck);
    parse_config_(&cfg, extra);
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    ck_assert_int_eq(memcmp(t.model.params, s.p, sizeof(float) * (size_t)s.n), 0);
    ck_assert_int_eq(t.step, 0);
    for (int64_t k = 0; k < s.n; k++)
        ck_assert(t.optim.v[k] == 0.0f);
    snap_free_(&s);
    alig_trainer_free(&t);
    alig_config_free(&cfg);

    /* a NaN among them (the second tensor's third value): refused, naming the tensor and
     * the element (it trained on unseen behind a relu, its norm NaN, max_norm unenforced) */
    write_params_only_(plain, 0.01, nan_at);
    snprintf(extra, sizeof extra, "init = %s\n", plain);
    parse_config_(&cfg, extra);
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_E_CKPT);
    ck_assert_msg(strstr(alig_error_message(), want) != NULL, "%s", alig_error_message());
    alig_trainer_free(&t);
    alig_config_free(&cfg);

    /* a missing file: ALIG_E_CKPT naming it, from alig_trainer_init */
    snprintf(extra, sizeof extra, "init = %s/nope.h5\n", dir_);
    parse_config_(&cfg, extra);
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_E_CKPT);
    ck_assert_ptr_nonnull(strstr(alig_error_message(), "nope.h5"));
    alig_trainer_free(&t);
    alig_config_free(&cfg);
    alig_comm_finalize(comm);
}
END_TEST

START_TEST(write_into_a_missing_directory_fails_with_the_path)
{
    scratch_();
    make_data_(N_SAMPLES);
    alig_config_t cfg;
    parse_config_(&cfg, "");
    alig_comm_t *comm = alig_comm_init_self();
    alig_trainer_t t;
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    char path[700];
    snprintf(path, sizeof path, "%s/no/such/dir/x.h5", dir_);
    ck_assert_int_eq(alig_ckpt_write_file(path, &t), ALIG_E_CKPT);
    const char *msg = alig_error_message();
    ck_assert_msg(strncmp(msg, path, strlen(path)) == 0 && strstr(msg, "No such file or directory"),
                  "%s", msg);
    ck_assert(!exists_(path));
    alig_trainer_free(&t);
    alig_config_free(&cfg);
    alig_comm_finalize(comm);
}
END_TEST

/* alig_trainer_run in this process, its log in buf. */
static int run_inproc_(const char *extra, char *buf, size_t size)
{
    alig_config_t cfg;
    parse_config_(&cfg, extra);
    alig_comm_t *comm = alig_comm_init_self();
    alig_trainer_t t;
    int rc = alig_trainer_init(&t, &cfg, comm);
    FILE *log = tmpfile();
    ck_assert_ptr_nonnull(log);
    if (rc == ALIG_OK)
        rc = alig_trainer_run(&t, log);
    rewind(log);
    size_t n = fread(buf, 1, size - 1, log);
    buf[n] = '\0';
    fclose(log);
    alig_trainer_free(&t);
    alig_config_free(&cfg);
    alig_comm_finalize(comm);
    return rc;
}

START_TEST(save_protocol_temp_files_latest_and_keep)
{
    scratch_();
    make_data_(N_SAMPLES);
    char run[600], path[700], text[256], log[1 << 14];
    snprintf(run, sizeof run, "%s/run", dir_);
    ck_assert_int_eq(mkdir(run, 0777), 0);
    /* leftovers of a save killed half-way are removed at start */
    snprintf(path, sizeof path, "%s/ckpt-00000099.h5.tmp", run);
    ck_assert_int_eq(test_write_bytes(path, "partial", 7), 0);
    snprintf(path, sizeof path, "%s/latest.tmp", run);
    ck_assert_int_eq(test_write_bytes(path, "x", 1), 0);

    ck_assert_int_eq(run_inproc_("every_steps = 2\nevery_epochs = 0\nkeep = 2\n"
                                 "[run]\nmax_steps = 7\n",
                                 log, sizeof log),
                     ALIG_OK);
    ck_assert_msg(strstr(log, "checkpoint: step 2 ->") && strstr(log, "checkpoint: step 6 ->") &&
                      strstr(log, "ckpt-00000007.h5 (") && strstr(log, "s; end)"),
                  "%s", log);
    ck_assert_ptr_nonnull(strstr(log, "checkpoints: 4 written in"));
    /* keep = 2: the newest two; no temp files */
    ck_assert(!exists_(ckpt_("run", 2)) && !exists_(ckpt_("run", 4)));
    ck_assert(exists_(ckpt_("run", 6)) && exists_(ckpt_("run", 7)));
    ck_assert(!exists_(path));
    snprintf(path, sizeof path, "%s/ckpt-00000099.h5.tmp", run);
    ck_assert(!exists_(path));
    snprintf(path, sizeof path, "%s/latest", run);
    read_text_(path, text, sizeof text);
    ck_assert_str_eq(text, "ckpt-00000007.h5\n");

    /* a newer checkpoint that `latest` does not name (the abandoned future of
     * a resume from an older one) is neither resumed from nor pruned */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp %s %s", ckpt_("run", 7), ckpt_("run", 50));
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(run_inproc_("every_steps = 2\nevery_epochs = 0\nkeep = 2\n"
                                 "[run]\nmax_steps = 9\n",
                                 log, sizeof log),
                     ALIG_OK);
    ck_assert_msg(strstr(log, "resumed from ") && strstr(log, "ckpt-00000007.h5: step 7,"), "%s",
                  log);
    ck_assert(exists_(ckpt_("run", 9)) && exists_(ckpt_("run", 8)) && exists_(ckpt_("run", 50)));
    ck_assert(!exists_(ckpt_("run", 7)) && !exists_(ckpt_("run", 6)));
    read_text_(path, text, sizeof text);
    ck_assert_str_eq(text, "ckpt-00000009.h5\n");
}
END_TEST

/* Issue #6: checkpoint names are read by the number in them, and a file is opened by
 * the name it has: ckpt-9.h5 (copied or renamed by hand) is step 9, older than
 * ckpt-00000010.h5 although it sorts after it as text. */
START_TEST(unpadded_names_are_ordered_by_step_and_opened_by_their_name)
{
    scratch_();
    make_data_(N_SAMPLES);
    char run[600], a[700], b[700], log[1 << 14], cmd[2048];
    snprintf(run, sizeof run, "%s/run", dir_);
    ck_assert_int_eq(run_inproc_("every_steps = 1\nevery_epochs = 0\nkeep = 0\n"
                                 "[run]\nmax_steps = 10\n",
                                 log, sizeof log),
                     ALIG_OK);
    ck_assert(exists_(ckpt_("run", 9)) && exists_(ckpt_("run", 10)));
    snprintf(a, sizeof a, "%s/ckpt-9.h5", run);
    ck_assert_int_eq(rename(ckpt_("run", 9), a), 0);
    snprintf(b, sizeof b, "%s/latest", run);
    ck_assert_int_eq(unlink(b), 0);
    /* the newest by number, not by text */
    ck_assert_int_eq(run_inproc_("every_steps = 0\nevery_epochs = 0\nat_end = false\n"
                                 "[run]\nmax_steps = 10\n",
                                 log, sizeof log),
                     ALIG_OK);
    ck_assert_msg(strstr(log, "/run/ckpt-00000010.h5: step 10,"), "%s", log);
    /* without padding the file is still found (it used to be looked for as
     * ckpt-00000010.h5, "missing", and training fell back to an older one) */
    snprintf(b, sizeof b, "%s/ckpt-10.h5", run);
    ck_assert_int_eq(rename(ckpt_("run", 10), b), 0);
    ck_assert_int_eq(run_inproc_("every_steps = 1\nevery_epochs = 0\nkeep = 2\n"
                                 "[run]\nmax_steps = 11\n",
                                 log, sizeof log),
                     ALIG_OK);
    ck_assert_msg(strstr(log, "resumed from ") && strstr(log, "/run/ckpt-10.h5: step 10,"), "%s",
                  log);
    /* and pruned by its own name: keep = 2 leaves 11 and ckpt-10.h5 */
    ck_assert(exists_(ckpt_("run", 11)) && exists_(b));
    ck_assert_msg(!exists_(a) && !exists_(ckpt_("run", 8)), "ckpt-9.h5 or ckpt-8 not pruned");

    /* a copy whose name says 12 but which holds step 11: `latest` (11) wins, the
     * warning names the file as it is called; without `latest` it is read, and
     * the mismatch is reported */
    snprintf(cmd, sizeof cmd, "cp %s %s/ckpt-12.h5 && cp %s %s/ckpt-13.h5", ckpt_("run", 11), run,
             ckpt_("run", 11), run);
    ck_assert_int_eq(system(cmd), 0);
    /* the warnings go to stderr: into a file for these two runs */
    char errpath[700];
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", dir_);
    fflush(stderr);
    int fd = dup(2), efd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert(fd >= 0 && efd >= 0);
    dup2(efd, 2);
    close(efd);
    ck_assert_int_eq(run_inproc_("every_steps = 0\nevery_epochs = 0\nat_end = false\n",
                                 log, sizeof log),
                     ALIG_OK);
    ck_assert_msg(strstr(log, "/run/ckpt-00000011.h5: step 11,"), "%s", log);
    snprintf(b, sizeof b, "%s/ckpt-13.h5", run); /* (each file newer than `latest` is named) */
    ck_assert_int_eq(unlink(b), 0);
    snprintf(b, sizeof b, "%s/latest", run);
    ck_assert_int_eq(unlink(b), 0);
    ck_assert_int_eq(run_inproc_("every_steps = 0\nevery_epochs = 0\nat_end = false\n",
                                 log, sizeof log),
                     ALIG_OK);
    ck_assert_msg(strstr(log, "/run/ckpt-12.h5: step 11,"), "%s", log);
    fflush(stderr);
    dup2(fd, 2);
    close(fd);
    char text[4096];
    read_text_(errpath, text, sizeof text);
    ck_assert_msg(strstr(text, "warning: ignoring ") && strstr(text, "/run/ckpt-12.h5: newer than") &&
                      strstr(text, "/run/ckpt-13.h5: newer than"),
                  "%s", text);
    ck_assert_msg(strstr(text, "/run/ckpt-12.h5 holds the state after step 11, not 12 as its "
                               "name says"),
                  "%s", text);
    /* resume = never names the newest file as it is called */
    ck_assert_int_eq(run_inproc_("resume = never\n", log, sizeof log), ALIG_E_CKPT);
    ck_assert_msg(strstr(alig_error_message(), "3 checkpoint(s) (newest ckpt-12.h5)"), "%s",
                  alig_error_message());
}
END_TEST

START_TEST(checkpoint_config_keys_and_signal_lists)
{
    alig_config_t cfg;
    alig_config_defaults(&cfg);
    ck_assert_str_eq(cfg.ckpt_dir, ".");
    ck_assert_int_eq(cfg.ckpt_every_steps, 0);
    ck_assert_int_eq(cfg.ckpt_every_epochs, 1);
    ck_assert_int_eq(cfg.ckpt_keep, 3);
    ck_assert_int_eq(cfg.ckpt_at_end, 1);
    ck_assert_str_eq(cfg.ckpt_resume, "auto");
    ck_assert_str_eq(cfg.ckpt_init, "");
    ck_assert_str_eq(cfg.ckpt_signals, "TERM, USR1, INT");
    const char *text = "[checkpoint]\ndir = ckpt\nevery_steps = 500\nevery_epochs = 0\nkeep = 0\n"
                       "at_end = false\nresume = never\ninit = /p/x.h5\nsignals = usr1, SIGUSR2\n";
    ck_assert_int_eq(alig_config_parse(&cfg, text, "k.ini"), ALIG_OK);
    ck_assert_str_eq(cfg.ckpt_dir, "ckpt");
    ck_assert_int_eq(cfg.ckpt_every_steps, 500);
    ck_assert_int_eq(cfg.ckpt_every_epochs, 0);
    ck_assert_int_eq(cfg.ckpt_keep, 0);
    ck_assert_int_eq(cfg.ckpt_at_end, 0);
    ck_assert_str_eq(cfg.ckpt_resume, "never");
    ck_assert_str_eq(cfg.ckpt_init, "/p/x.h5");
    ck_assert_int_eq(alig_config_validate(&cfg, 1), ALIG_OK);
    ck_assert_int_eq(alig_config_set(&cfg, "checkpoint.resume=runs/a/ckpt-00000010.h5"), ALIG_OK);
    ck_assert_str_eq(cfg.ckpt_resume, "runs/a/ckpt-00000010.h5");

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    alig_config_write(f, &cfg);
    fclose(f);
    ck_assert_msg(strstr(buf, "\n[checkpoint]\ndir = ckpt\nevery_steps = 500\nevery_epochs = 0\n"
                              "keep = 0\nat_end = false\nresume = runs/a/ckpt-00000010.h5\n"
                              "init = /p/x.h5\nsignals = usr1, SIGUSR2\n"),
                  "%s", buf);
    free(buf);
    alig_config_free(&cfg);

    alig_config_defaults(&cfg);
    ck_assert_int_eq(alig_config_parse(&cfg, "[checkpoint]\nkeep = -1\n", "k.ini"), ALIG_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(alig_error_message(), "k.ini:2: [checkpoint] keep = -1"));
    ck_assert_int_eq(alig_config_parse(&cfg, "[checkpoint]\nevery = 1\n", "k.ini"), ALIG_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(alig_error_message(), "every_steps, every_epochs, keep"));
    ck_assert_int_eq(alig_config_parse(&cfg, "[checkpoint]\nsignals = TERM, KILL\n", "k.ini"),
                     ALIG_OK);
    ck_assert_int_eq(alig_config_validate(&cfg, 1), ALIG_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(alig_error_message(), "unknown signal 'KILL'"));
    alig_config_free(&cfg);

    int sigs[ALIG_CONFIG_MAX_SIGNALS];
    alig_config_defaults(&cfg);
    ck_assert_int_eq(alig_config_signals(&cfg, sigs, ALIG_CONFIG_MAX_SIGNALS), 3);
    ck_assert_int_eq(sigs[0], SIGTERM);
    ck_assert_int_eq(sigs[1], SIGUSR1);
    ck_assert_int_eq(sigs[2], SIGINT);
    snprintf(cfg.ckpt_signals, sizeof cfg.ckpt_signals, "none");
    ck_assert_int_eq(alig_config_signals(&cfg, sigs, ALIG_CONFIG_MAX_SIGNALS), 0);
    snprintf(cfg.ckpt_signals, sizeof cfg.ckpt_signals, " SIGTERM,usr1 XCPU ");
    ck_assert_int_eq(alig_config_signals(&cfg, sigs, ALIG_CONFIG_MAX_SIGNALS), 3);
    ck_assert_int_eq(sigs[0], SIGTERM);
    ck_assert_int_eq(sigs[1], SIGUSR1);
    ck_assert_int_eq(sigs[2], SIGXCPU);
    const char *bad[] = {"", " , ", "TERM, none", "SIG", "TERMX", "KILL"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cfg.ckpt_signals, sizeof cfg.ckpt_signals, "%s", bad[i]);
        ck_assert_msg(alig_config_signals(&cfg, sigs, ALIG_CONFIG_MAX_SIGNALS) == -1 &&
                          alig_error_code() == ALIG_E_CONFIG,
                      "'%s' accepted", bad[i]);
    }
    alig_config_free(&cfg);
}
END_TEST

/* ------------------------------------------------------------------ */
/* tcase "mpirun" */

START_TEST(resume_mid_epoch_is_bitwise_identical)
{
    scratch_();
    make_data_(N_SAMPLES);
    write_config_("");
    static char base_log[sizeof out_];
    char args[2048], stats_a[128], stats_b[128];
    snprintf(args, sizeof args, "--set run.out_dir=%s/base", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    snprintf(base_log, sizeof base_log, "%s", out_);
    /* the time of each save is in the log */
    ck_assert_msg(strstr(out_, "checkpoint: step 21 -> ") && strstr(out_, " s; every_epochs)") &&
                      strstr(out_, "checkpoints: 3 written in"),
                  "%s", out_);

    /* stop at step 10 = batch 3 of epoch 2 (max_steps ends with a checkpoint), then resume */
    snprintf(args, sizeof args, "--set run.out_dir=%s/part --set run.max_steps=10", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    ck_assert_msg(strstr(out_, "checkpoint: step 10 -> ") && strstr(out_, "s; end)"), "%s", out_);
    snap_t mid, a, b;
    snap_(ckpt_("part", 10), &mid);
    ck_assert_int_eq(mid.info.epoch, 1);
    ck_assert_int_eq(mid.info.batch, 3);
    ck_assert_int_eq(mid.info.world_size, 2);
    snprintf(args, sizeof args, "--set run.out_dir=%s/part", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    ck_assert_msg(strstr(out_, "/part/ckpt-00000010.h5: step 10, epoch 2 with 3 of 7 batches done"),
                  "%s", out_);
    snap_(ckpt_("base", 21), &a);
    snap_(ckpt_("part", 21), &b);
    assert_bitwise_(&a, &b, "resumed at step 10 vs straight");
    /* the run really moved after step 10, so equal bits mean something */
    ck_assert_double_gt(max_abs_diff_(mid.p, a.p, a.n), 1e-2);
    /* the resumed epoch's line has the whole epoch's statistics */
    epoch_stats_(base_log, 2, stats_a, sizeof stats_a);
    epoch_stats_(out_, 2, stats_b, sizeof stats_b);
    ck_assert_msg(stats_a[0] && !strcmp(stats_a, stats_b), "epoch 2: '%s' vs '%s'", stats_a,
                  stats_b);
    snap_free_(&mid);
    snap_free_(&a);
    snap_free_(&b);
}
END_TEST

/* The 3 epochs (21 steps) straight in DIR/base, and cut by max_steps = 10 then resumed
 * in DIR/part, on np ranks with options opts; the output of the resumed run in out_. */
static void straight_and_resumed_(int np, const char *opts)
{
    char args[2048];
    snprintf(args, sizeof args, "%s --set run.out_dir=%s/base", opts, dir_);
    ck_assert_msg(train_(np, args) == 0, "%s", out_);
    snprintf(args, sizeof args, "%s --set run.out_dir=%s/part --set run.max_steps=10", opts, dir_);
    ck_assert_msg(train_(np, args) == 0, "%s", out_);
    snprintf(args, sizeof args, "%s --set run.out_dir=%s/part", opts, dir_);
    ck_assert_msg(train_(np, args) == 0, "%s", out_);
}

/* Adam's second moment and step count are saved too: a resumed Adam run is exact. */
START_TEST(adam_resume_is_bitwise_identical)
{
    scratch_();
    make_data_(N_SAMPLES);
    write_config_("");
    straight_and_resumed_(2, "--set optimizer.name=adam --set optimizer.lr=0.01");
    snap_t a, b;
    snap_(ckpt_("base", 21), &a);
    snap_(ckpt_("part", 21), &b);
    assert_bitwise_(&a, &b, "Adam resumed at step 10 vs straight"); /* v = first moment */
    alig_model_t m;
    ck_assert_int_eq(alig_model_build(&m, LAYERS, 1, 6, 6, 5, 1), ALIG_OK);
    float *sa = malloc(sizeof(float) * (size_t)m.n_params), *sb = malloc(sizeof(float) * (size_t)m.n_params);
    int64_t ta = 0, tb = 0;
    ck_assert_int_eq(alig_ckpt_read_second_moment(ckpt_("base", 21), &m, sa, &ta), ALIG_OK);
    ck_assert_int_eq(alig_ckpt_read_second_moment(ckpt_("part", 21), &m, sb, &tb), ALIG_OK);
    ck_assert_int_eq(ta, 21);
    ck_assert_int_eq(tb, 21);
    ck_assert_int_eq(memcmp(sa, sb, sizeof(float) * (size_t)m.n_params), 0);
    ck_assert_double_gt(sa[0] + sa[m.n_params - 1], 0.0); /* really an Adam state */
    free(sa);
    free(sb);
    alig_model_free(&m);
    snap_free_(&a);
    snap_free_(&b);
}
END_TEST

/*
 * With [run] reduce = shm each rank updates the momentum of its own blocks only
 * (alig_trainer_gather_state collects the rest for a checkpoint). A model of
 * six 16384-value blocks, so both ranks own some: the checkpointed momentum must
 * be the same bits as with reduce = mpi (every rank updates all of it; at 2
 * ranks the sums are the same bits), and a resume from it is exact.
 */
START_TEST(resume_with_sharded_momentum_is_bitwise_identical)
{
    scratch_();
    make_data_(N_SAMPLES);
    write_config_("");
    const char *big = "'--set=model.layers=dense 2048, relu, dense 5'";
    snap_layers_ = "dense 2048, relu, dense 5";
    char args[2048];
    snprintf(args, sizeof args, "%s --set run.out_dir=%s/mpi --set run.max_steps=10 --set run.reduce=mpi",
             big, dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    snprintf(args, sizeof args, "%s --set run.out_dir=%s/base --set run.reduce=shm", big, dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    snprintf(args, sizeof args, "%s --set run.out_dir=%s/part --set run.max_steps=10 --set run.reduce=shm",
             big, dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    snap_t mpi, mid, a, b;
    snap_(ckpt_("mpi", 10), &mpi);
    snap_(ckpt_("part", 10), &mid);
    ck_assert_int_gt(mid.n, 5 * 16384);
    assert_bitwise_(&mpi, &mid, "step 10, reduce = shm vs mpi");
    snprintf(args, sizeof args, "%s --set run.out_dir=%s/part --set run.reduce=shm", big, dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    snap_(ckpt_("base", 21), &a);
    snap_(ckpt_("part", 21), &b);
    assert_bitwise_(&a, &b, "sharded momentum, resumed at step 10 vs straight");
    ck_assert_double_gt(max_abs_diff_(mid.v, a.v, a.n), 1e-3); /* it moved after step 10 */
    snap_layers_ = LAYERS;
    snap_free_(&mpi);
    snap_free_(&mid);
    snap_free_(&a);
    snap_free_(&b);
}
END_TEST

/*
 * Found by a new-user trial: a resume on other BLAS kernels said nothing, although its
 * GEMMs round differently. The checkpoint records rank 0's kernels; a resume on others
 * warns (and goes on), on the same ones it does not.
 */
START_TEST(resume_on_other_blas_kernels_warns)
{
    scratch_();
    make_data_(N_SAMPLES);
    write_config_("");
    char args[2048];
    snprintf(args, sizeof args, "--set run.out_dir=%s/k --set run.max_steps=5", dir_);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "OPENBLAS_CORETYPE=Prescott %s/alig-train %s %s", env_("ALIG_BIN", "bin"),
             cfg_, args);
    ck_assert_msg(test_run(cmd, 120, out_, sizeof out_, NULL) == 0, "%s", out_);
    snprintf(cmd, sizeof cmd, "OPENBLAS_CORETYPE=Prescott %s/alig-train %s --set run.out_dir=%s/k "
             "--set run.max_steps=8", env_("ALIG_BIN", "bin"), cfg_, dir_);
    ck_assert_msg(test_run(cmd, 120, out_, sizeof out_, NULL) == 0, "%s", out_);
    ck_assert_msg(strstr(out_, "resumed from") && !strstr(out_, "kernels, this run has"), "%s",
                  out_);
    snprintf(cmd, sizeof cmd, "OPENBLAS_CORETYPE=Nehalem %s/alig-train %s --set run.out_dir=%s/k "
             "--set run.max_steps=11", env_("ALIG_BIN", "bin"), cfg_, dir_);
    ck_assert_msg(test_run(cmd, 120, out_, sizeof out_, NULL) == 0, "%s", out_);
    ck_assert_msg(count_(out_, "ckpt-00000008.h5 was written on OpenBLAS's Prescott kernels, this "
                               "run has Nehalem") == 1,
                  "%s", out_);
}
END_TEST

START_TEST(elastic_resume_4_ranks_to_2_and_3)
{
    scratch_();
    make_data_(N_SAMPLES);
    write_config_("");
    char args[2048];
    snprintf(args, sizeof args, "--set run.out_dir=%s/base", dir_);
    ck_assert_msg(train_(4, args) == 0, "%s", out_);
    snprintf(args, sizeof args, "--set run.out_dir=%s/p2 --set run.max_steps=10", dir_);
    ck_assert_msg(train_(4, args) == 0, "%s", out_);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp -r %s/p2 %s/p3", dir_, dir_);
    ck_assert_int_eq(system(cmd), 0);
    snap_t a;
    snap_(ckpt_("base", 21), &a);
    double scale = 0;
    for (int64_t i = 0; i < a.n; i++)
        scale = fmax(scale, fabs(a.p[i]));
    for (int np = 2; np <= 3; np++) {
        char warn[128], run[16];
        snprintf(run, sizeof run, "p%d", np);
        snprintf(args, sizeof args, "--set run.out_dir=%s/%s", dir_, run);
        ck_assert_msg(train_(np, args) == 0, "np=%d: %s", np, out_);
        snprintf(warn, sizeof warn, "was written by 4 rank(s), this run has %d: elastic resume",
                 np);
        ck_assert_msg(strstr(out_, warn) && strstr(out_, "/ckpt-00000010.h5: step 10"), "%s", out_);
        snap_t b;
        snap_(ckpt_(run, 21), &b);
        double d = max_abs_diff_(a.p, b.p, a.n) / scale;
        /* float32 sums in another order: ~1e-7 relative per step, amplified
         * over 11 steps with momentum; a wrong position or state is >= 1e-2 */
        ck_assert_msg(d <= 1e-5, "np=%d: %g relative to max |w| %g", np, d, scale);
        ck_assert_int_eq(b.info.world_size, np);
        snap_free_(&b);
    }
    snap_free_(&a);

    /* with batch norm, each rank's slice, and with it the statistics, changes with the
     * rank count: the warning says the run leaves the uninterrupted trajectory */
    const char *bn = "--set 'model.layers=dense 16, bn, relu, dense 5'";
    snprintf(args, sizeof args, "--set run.out_dir=%s/bn --set run.max_steps=10 %s", dir_, bn);
    ck_assert_msg(train_(4, args) == 0, "%s", out_);
    snprintf(args, sizeof args, "--set run.out_dir=%s/bn %s", dir_, bn);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    ck_assert_msg(count_(out_, "was written by 4 rank(s), this run has 2: elastic resume with the "
                               "same global batch (9) and data order, but layer 01_bn normalises "
                               "over each rank's slice") == 1,
                  "%s", out_);
    ck_assert_ptr_null(strstr(out_, "only to floating-point rounding"));
}
END_TEST

/*
 * Found by a new-user trial: resuming with another thread count said nothing, although
 * bitwise-exact resume needs the same one. The checkpoint now records rank 0's threads
 * and parts; a resume with others warns (and still matches to rounding), the same ones
 * do not.
 */
START_TEST(resume_with_other_threads_warns)
{
    scratch_();
    make_data_(N_SAMPLES);
    write_config_("");
    char args[2048];
    snprintf(args, sizeof args, "--set run.out_dir=%s/th --set run.max_steps=10 --set "
             "run.threads=2 --set run.parallel=batch", dir_);
    ck_assert_msg(train_(1, args) == 0, "%s", out_);
    snprintf(args, sizeof args, "--set run.out_dir=%s/th --set run.max_steps=12 --set "
             "run.threads=2 --set run.parallel=batch", dir_);
    ck_assert_msg(train_(1, args) == 0, "%s", out_);
    ck_assert_msg(strstr(out_, "resumed from") && !strstr(out_, "thread(s) per rank"), "%s", out_);
    snprintf(args, sizeof args, "--set run.out_dir=%s/th --set run.max_steps=14 --set "
             "run.threads=1", dir_);
    ck_assert_msg(train_(1, args) == 0, "%s", out_);
    ck_assert_msg(strstr(out_, "ckpt-00000012.h5 was written with 2 thread(s) per rank (2 "
                               "part(s) per slice), this run has 1 (1)"),
                  "%s", out_);
}
END_TEST

/*
 * Found by a new-user trial: the cosine schedule took max_steps as its horizon, so a run
 * cut short by max_steps and resumed without it followed another schedule than the
 * uninterrupted run (40% apart), silently. max_steps now only stops the run; a resume
 * with other epochs, which does change the horizon, warns.
 */
START_TEST(cosine_schedule_resumes_exactly_after_max_steps)
{
    scratch_();
    make_data_(N_SAMPLES);
    write_config_("");
    const char *sgd = "--set optimizer.name=sgd --set optimizer.max_lr=none --set optimizer.lr=0.2 "
                      "--set optimizer.schedule=cosine";
    straight_and_resumed_(1, sgd);
    ck_assert_msg(strstr(out_, "resumed from") && !strstr(out_, "cosine schedule spans"), "%s",
                  out_);
    assert_runs_bitwise_("base", 21, "part", 21, "cut at step 10 by max_steps and resumed");
    /* more epochs: a longer horizon from here on, said */
    char args[2048];
    snprintf(args, sizeof args, "%s --set run.out_dir=%s/part --set run.epochs=4", sgd, dir_);
    ck_assert_msg(train_(1, args) == 0, "%s", out_);
    ck_assert_msg(strstr(out_, "[run] epochs = 4, but ") &&
                      strstr(out_, "ckpt-00000021.h5 was written with 3: the cosine schedule"),
                  "%s", out_);
}
END_TEST

/* Long run in the background; once it trains, `signal_cmd` (sh, with $mp =
 * mpirun's pid); prints rank-exit=N per rank, mpirun-exit=N and ms=N. Each
 * rank runs in `sh -c` to report its exit status; that sh ignores SIGUSR1
 * (mpirun forwards it to its children), alig-train installs its handler.
 * `mpi_opts` go to mpirun. */
static int signal_run_(const char *run, const char *mpi_opts, const char *signal_cmd)
{
    char script[8192];
    snprintf(script, sizeof script,
             "$MPIRUN %s sh -c \"trap '' USR1; $BIN $CFG --set run.out_dir=$DIR/%s "
             "--set run.epochs=100000 --set checkpoint.every_epochs=0 --set eval.every=0; "
             "rc=\\$?; echo rank-exit=\\$rc; exit \\$rc\" "
             "> $DIR/%s.log 2>&1 & mp=$!; "
             "i=0; until grep -q '^epoch   2 ' $DIR/%s.log; do sleep 0.05; i=$((i+1)); "
             "[ $i -gt 1200 ] && break; done; "
             "%s; t0=$(date +%%s%%N); wait $mp; rc=$?; t1=$(date +%%s%%N); "
             "grep -E 'rank-exit|stopped by|checkpoint' $DIR/%s.log; "
             "echo mpirun-exit=$rc ms=$(( (t1 - t0) / 1000000 ))",
             mpi_opts, run, run, run, signal_cmd, run);
    return shell_(2, script, 120, NULL);
}

static long long parse_after_(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    ck_assert_msg(p != NULL, "no '%s' in:\n%s", key, text);
    return atoll(p + strlen(key));
}

START_TEST(sigterm_to_one_rank_checkpoints_and_exits_75_then_resumes_exactly)
{
    scratch_();
    make_data_(600); /* 67 steps per epoch */
    write_config_("");
    /* SIGTERM to one rank only (as a scheduler may deliver it): the flag
     * rides the gradient reduction, so every rank stops at the same step.
     * mpirun is told not to kill the other ranks when the first one exits
     * non-zero, so each rank's own exit status is seen. */
    ck_assert_int_eq(signal_run_("sig", "--mca orte_abort_on_non_zero_status 0",
                                 "kill -TERM $(pgrep -P $(pgrep -P $mp | tail -1))"),
                     0);
    ck_assert_msg(count_(out_, "rank-exit=75") == 2, "%s", out_);
    long long ms = parse_after_(out_, "ms=");
    ck_assert_msg(ms < 15000, "took %lld ms to stop", ms);
    long long s = parse_after_(out_, "stopped by a signal at step ");
    ck_assert_int_gt(s, 67);
    ck_assert_msg(strstr(out_, "s; signal)"), "%s", out_);
    snap_t mid;
    snap_(ckpt_("sig", s), &mid);
    ck_assert_int_eq(mid.info.step, s);

    /* resume and run 9 more steps; an uninterrupted run to the same step matches bit for bit */
    char args[2048];
    const char *common =
        "--set run.epochs=100000 --set checkpoint.every_epochs=0 --set eval.every=0";
    snprintf(args, sizeof args, "--set run.out_dir=%s/sig --set run.max_steps=%lld %s", dir_, s + 9,
             common);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    ck_assert_msg(strstr(out_, "resumed from "), "%s", out_);
    snprintf(args, sizeof args, "--set run.out_dir=%s/base --set run.max_steps=%lld %s", dir_,
             s + 9, common);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    snap_t a, b;
    snap_(ckpt_("base", s + 9), &a);
    snap_(ckpt_("sig", s + 9), &b);
    assert_bitwise_(&a, &b, "after SIGTERM");
    snap_free_(&a);
    snap_free_(&b);
    snap_free_(&mid);
}
END_TEST

START_TEST(sigusr1_to_mpirun_is_forwarded_and_checkpoints)
{
    scratch_();
    make_data_(600);
    write_config_("");
    /* what a scheduler sees: mpirun's own exit status */
    ck_assert_int_eq(signal_run_("usr", "", "kill -USR1 $mp"), 0);
    ck_assert_msg(count_(out_, "rank-exit=75") >= 1 && strstr(out_, "mpirun-exit=75"), "%s", out_);
    ck_assert_int_lt(parse_after_(out_, "ms="), 15000);
    long long s = parse_after_(out_, "stopped by a signal at step ");
    snap_t mid;
    snap_(ckpt_("usr", s), &mid);
    ck_assert_int_eq(mid.info.step, s);
    snap_free_(&mid);
}
END_TEST

START_TEST(kill_9_during_a_write_keeps_the_previous_checkpoint)
{
    scratch_();
    make_data_(N_SAMPLES);
    write_config_("every_steps = 7\nevery_epochs = 0\n");
    /* the writer of ckpt-14 stops half-way (test hook); then kill -9 every process */
    ck_assert_int_eq(shell_(2,
                            "ALIG_TEST_CKPT_PAUSE=14 $MPIRUN $BIN $CFG --set run.out_dir=$DIR/k9 "
                            "> $DIR/k9.log 2>&1 & mp=$!; i=0; "
                            "until grep -q 'test hook: pausing' $DIR/k9.log; do sleep 0.05; "
                            "i=$((i+1)); [ $i -gt 1200 ] && break; done; "
                            "kill -KILL $(pgrep -P $mp) $mp; wait $mp; cat $DIR/k9.log",
                            120, NULL),
                     0);
    ck_assert_msg(strstr(out_, "checkpoint: step 7 ->") && strstr(out_, "pausing while writing"),
                  "%s", out_);
    char tmp[800], latest[800], text[128];
    snprintf(tmp, sizeof tmp, "%s.tmp", ckpt_("k9", 14));
    snprintf(latest, sizeof latest, "%s/k9/latest", dir_);
    ck_assert_msg(exists_(tmp), "no partial %s", tmp);
    ck_assert(!exists_(ckpt_("k9", 14)));
    read_text_(latest, text, sizeof text);
    ck_assert_str_eq(text, "ckpt-00000007.h5\n");
    snap_t prev, partial;
    ck_assert_int_eq(read_snap_(tmp, &partial), ALIG_E_CKPT); /* the partial file is incomplete */
    snap_free_(&partial);
    snap_(ckpt_("k9", 7), &prev);
    ck_assert_int_eq(prev.info.step, 7);

    char args[2048];
    snprintf(args, sizeof args, "--set run.out_dir=%s/k9", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    ck_assert_msg(strstr(out_, "/k9/ckpt-00000007.h5: step 7"), "%s", out_);
    ck_assert(!exists_(tmp));
    snprintf(args, sizeof args, "--set run.out_dir=%s/base", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    assert_runs_bitwise_("base", 21, "k9", 21, "after kill -9");
    snap_free_(&prev);
}
END_TEST

START_TEST(corrupt_or_truncated_newest_falls_back_to_the_previous)
{
    scratch_();
    make_data_(N_SAMPLES);
    write_config_("every_steps = 5\nevery_epochs = 0\nkeep = 3\n");
    char args[2048], warn[800];
    snprintf(args, sizeof args, "--set run.out_dir=%s/base", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    snprintf(args, sizeof args, "--set run.out_dir=%s/part --set run.max_steps=15", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    ck_assert(exists_(ckpt_("part", 5)) && exists_(ckpt_("part", 10)) &&
              exists_(ckpt_("part", 15)));

    /* a flipped bit in the newest: reported with its path, the previous one used, nothing deleted */
    flip_byte_(ckpt_("part", 15), "/params/02_dense/weight");
    snprintf(args, sizeof args, "--set run.out_dir=%s/part --set run.max_steps=12", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    snprintf(warn, sizeof warn, "warning: %s: cannot read /params/02_dense/weight",
             ckpt_("part", 15));
    ck_assert_msg(strstr(out_, warn) && strstr(out_, "Fletcher32"), "%s", out_);
    ck_assert_msg(strstr(out_, "/part/ckpt-00000010.h5: step 10"), "%s", out_);
    ck_assert(exists_(ckpt_("part", 5)) && exists_(ckpt_("part", 10)) &&
              exists_(ckpt_("part", 15)));
    ck_assert(exists_(ckpt_("part", 12)));

    /* on to the end: `latest` (12) wins over the corrupt, newer 15 */
    snprintf(args, sizeof args, "--set run.out_dir=%s/part", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    ck_assert_msg(strstr(out_, "/part/ckpt-00000012.h5: step 12"), "%s", out_);
    snap_t a, b;
    snap_(ckpt_("base", 21), &a);
    snap_(ckpt_("part", 21), &b);
    assert_bitwise_(&a, &b, "after a corrupt newest checkpoint");
    snap_free_(&b);

    /* a truncated newest (a crash of the file system, not of us): same */
    truncate_half_(ckpt_("part", 21));
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    snprintf(warn, sizeof warn, "warning: %s: cannot open: truncated file", ckpt_("part", 21));
    ck_assert_msg(strstr(out_, warn), "%s", out_);
    ck_assert_msg(strstr(out_, "/part/ckpt-00000020.h5: step 20"), "%s", out_);
    snap_(ckpt_("part", 21), &b);
    assert_bitwise_(&a, &b, "after a truncated newest checkpoint");
    snap_free_(&a);
    snap_free_(&b);
}
END_TEST

START_TEST(other_architecture_or_data_order_is_refused_once)
{
    scratch_();
    make_data_(N_SAMPLES);
    write_config_("");
    char args[2048];
    snprintf(args, sizeof args, "--set run.out_dir=%s/part --set run.max_steps=10", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    snprintf(
        args, sizeof args,
        "--set run.out_dir=%s/part --set 'model.layers=dense 17, relu, dense 12, relu, dense 5'",
        dir_);
    ck_assert_int_eq(train_(2, args), 4);
    ck_assert_msg(count_(out_,
                         "architecture mismatch at tensor 00_dense/weight: the model ([model] "
                         "layers or preset) expects shape (17, 36), the file has (16, 36)") == 1,
                  "%s", out_);
    ck_assert_ptr_null(strstr(out_, "\nepoch "));
    /* a mid-epoch checkpoint with another global batch cannot continue its data order */
    snprintf(args, sizeof args, "--set run.out_dir=%s/part --set data.batch_size=8", dir_);
    ck_assert_int_eq(train_(2, args), 4);
    ck_assert_msg(count_(out_, "the data order cannot continue") == 1, "%s", out_);
    ck_assert(exists_(ckpt_("part", 10)) && exists_(ckpt_("part", 7)));
    /* nor with drop_last changed, the one setting of the order that the message did not
     * name (found by a new-user trial): 60 samples in batches of 9 are 6, not 7 batches */
    snprintf(args, sizeof args, "--set run.out_dir=%s/part --set data.drop_last=true", dir_);
    ck_assert_int_eq(train_(2, args), 4);
    ck_assert_msg(count_(out_, "(after batch 3 of 7) with seed 7, [data] batch_size 9 and 60 "
                               "training samples; this run has seed 7, batch_size 9, 60 samples "
                               "and drop_last = true (6 batches per epoch)") == 1,
                  "%s", out_);
    /* another optimizer cannot take over the state (found by a new-user trial: ALI-G's
     * momentum read as Adam's first moment made the loss jump to 3e9, and that state
     * was checkpointed); refused once, nothing trained or written */
    snap_t before, after;
    snap_(ckpt_("part", 10), &before);
    snprintf(args, sizeof args, "--set run.out_dir=%s/part --set optimizer.name=adam", dir_);
    ck_assert_int_eq(train_(2, args), 4);
    ck_assert_msg(count_(out_, "ckpt-00000010.h5 was written with [optimizer] name = alig, this "
                               "run has adam: the optimizer's state") == 1,
                  "%s", out_);
    ck_assert_ptr_null(strstr(out_, "\nepoch "));
    snap_(ckpt_("part", 10), &after);
    assert_bitwise_(&before, &after, "the refused resume left the checkpoint");
    ck_assert(!exists_(ckpt_("part", 20)));
    snap_free_(&before);
    snap_free_(&after);
}
END_TEST

START_TEST(unwritable_directory_or_full_disk_is_an_error_that_keeps_the_previous)
{
    scratch_();
    make_data_(N_SAMPLES);
    write_config_("");
    char args[2048], file[700];
    /* a checkpoint directory that cannot exist: refused before any training */
    snprintf(file, sizeof file, "%s/file", dir_);
    ck_assert_int_eq(test_write_bytes(file, "x", 1), 0);
    snprintf(args, sizeof args, "--set checkpoint.dir=%s/ckpt", file);
    ck_assert_int_eq(train_(2, args), 4);
    ck_assert_msg(count_(out_, "/file/ckpt: cannot create directory") == 1 &&
                      strstr(out_, "Not a directory"),
                  "%s", out_);
    ck_assert_ptr_null(strstr(out_, "\nepoch "));

    /* a full disk while saving ckpt-14 (test hook: rank 0's file-size limit
     * drops to 20 kB, so writes past it fail with EFBIG): exit 4 naming the
     * file, ckpt-7 and `latest` untouched */
    snprintf(args, sizeof args, "--set run.out_dir=%s/part --set run.max_steps=7", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    ck_assert_int_eq(
        shell_(2, "ALIG_TEST_FSIZE=20000 $MPIRUN $BIN $CFG --set run.out_dir=$DIR/part", 120, NULL),
        4);
    ck_assert_msg(count_(out_, "ckpt-00000014.h5.tmp: ") == 1 && strstr(out_, "File too large"),
                  "%s", out_);
    char tmp[800], latest[800], text[128];
    snprintf(tmp, sizeof tmp, "%s.tmp", ckpt_("part", 14));
    ck_assert(!exists_(tmp) && !exists_(ckpt_("part", 14)));
    snprintf(latest, sizeof latest, "%s/part/latest", dir_);
    read_text_(latest, text, sizeof text);
    ck_assert_str_eq(text, "ckpt-00000007.h5\n");
    snap_t prev;
    snap_(ckpt_("part", 7), &prev);
    ck_assert_int_eq(prev.info.step, 7);
    snap_free_(&prev);
    if (geteuid() != 0) { /* root writes into a read-only directory anyway */
        snprintf(file, sizeof file, "%s/part", dir_);
        ck_assert_int_eq(chmod(file, 0555), 0);
        snprintf(args, sizeof args, "--set run.out_dir=%s/part", dir_);
        ck_assert_int_eq(train_(2, args), 4);
        ck_assert_ptr_nonnull(strstr(out_, "is not writable"));
        ck_assert_int_eq(chmod(file, 0755), 0);
    }

    /* with space again, it resumes from ckpt-7 and ends where a straight run does */
    snprintf(args, sizeof args, "--set run.out_dir=%s/part", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    ck_assert_msg(strstr(out_, "/part/ckpt-00000007.h5: step 7"), "%s", out_);
    snprintf(args, sizeof args, "--set run.out_dir=%s/base", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    assert_runs_bitwise_("base", 21, "part", 21, "after a failed save");
}
END_TEST

/* size of a file in bytes, -1 when it cannot be read */
static long file_size_(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1L;
}

START_TEST(resume_modes_never_path_directory_and_done)
{
    scratch_();
    make_data_(N_SAMPLES);
    write_config_("");
    char args[2048];
    snprintf(args, sizeof args, "--set run.out_dir=%s/base", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    snprintf(args, sizeof args, "--set run.out_dir=%s/part --set run.max_steps=10", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_); /* ckpt-7 (epoch end), ckpt-10 (end) */

    /* never: refuses to overwrite a run's checkpoints */
    snprintf(args, sizeof args, "--set run.out_dir=%s/part --resume never", dir_);
    ck_assert_int_eq(train_(2, args), 4);
    ck_assert_msg(count_(out_, "resume = never, but ") == 1 && strstr(out_, "2 checkpoint(s)"),
                  "%s", out_);

    /* PATH: back to ckpt-7 (rewind), to step 12 */
    snprintf(args, sizeof args, "--set run.out_dir=%s/part --set run.max_steps=12 --resume %s",
             dir_, ckpt_("part", 7));
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    ck_assert_msg(strstr(out_, "/part/ckpt-00000007.h5: step 7"), "%s", out_);
    /* a directory: the checkpoint its `latest` names (12), on to the end */
    snprintf(args, sizeof args, "--set run.out_dir=%s/part --resume=%s/part", dir_, dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    ck_assert_msg(strstr(out_, "/part/ckpt-00000012.h5: step 12"), "%s", out_);
    assert_runs_bitwise_("base", 21, "part", 21, "0 -> 10, back to 7 -> 12 -> 21");

    /* done: nothing to train, nothing written */
    snprintf(args, sizeof args, "--set run.out_dir=%s/part", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    ck_assert_msg(strstr(out_, "training already complete at step 21") &&
                      !strstr(out_, "checkpoint: step"),
                  "%s", out_);
    /* a named file that does not exist */
    snprintf(args, sizeof args, "--set run.out_dir=%s/part --resume %s/nope.h5", dir_, dir_);
    ck_assert_int_eq(train_(2, args), 4);
    ck_assert_msg(count_(out_, "nope.h5: cannot open: No such file or directory") == 1, "%s", out_);
    ck_assert_int_eq(train_(2, "--resume"), 2);

    /* auto with a [checkpoint] dir changed away from the run directory's checkpoints:
     * refused (a fresh start wrote over the earlier run's metrics), metrics untouched */
    char steps[1024];
    snprintf(steps, sizeof steps, "%s/part/steps.csv", dir_);
    long before = file_size_(steps);
    snprintf(args, sizeof args, "--set run.out_dir=%s/part --set checkpoint.dir=sub", dir_);
    ck_assert_int_eq(train_(2, args), 4);
    ck_assert_msg(count_(out_, "--set checkpoint.dir: [checkpoint] dir ") == 1 &&
                      strstr(out_, "/part/sub holds no checkpoint, but the run directory ") &&
                      strstr(out_, "/part holds 3 (newest ckpt-00000021.h5) of an earlier run"),
                  "%s", out_);
    ck_assert_int_gt(before, 0);
    ck_assert_int_eq(file_size_(steps), before);
}
END_TEST

START_TEST(run_until_done_restarts_a_preempted_job)
{
    scratch_();
    make_data_(N_SAMPLES);
    write_config_("");
    char args[2048];
    snprintf(args, sizeof args, "--set run.out_dir=%s/base", dir_);
    ck_assert_msg(train_(2, args) == 0, "%s", out_);
    /* ALIG_TEST_STOP_AT=9: as if a signal arrived during step 9; the job
     * checkpoints step 10 and exits 75, the script runs it again */
    ck_assert_int_eq(
        shell_(
            2,
            "ALIG_TEST_STOP_AT=9 ALIG_TRAIN=$BIN launch/run-until-done.sh -np 2 --max-restarts 1 "
            "$CFG --set run.out_dir=$DIR/rud",
            240, NULL),
        0);
    ck_assert_msg(
        strstr(out_, "stopped by a signal at step 10") && strstr(out_, "exit 75 (preempted;") &&
            strstr(out_, "/rud/ckpt-00000010.h5: step 10") && strstr(out_, "training finished"),
        "%s", out_);
    assert_runs_bitwise_("base", 21, "rud", 21, "run-until-done");
}
END_TEST

Suite *ckpt_suite(void)
{
    Suite *s = suite_create("ckpt");
    TCase *tc = tcase_create("file");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, round_trip_restores_every_byte_and_h5_layout_is_by_name);
    tcase_add_test(tc, flipped_byte_fails_fletcher32_with_the_path);
    tcase_add_test(tc, truncated_empty_or_foreign_files_are_refused_with_the_path);
    tcase_add_test(tc, damaged_metadata_leaves_no_handle_open);
    tcase_add_test(tc, other_architecture_is_refused_naming_the_first_tensor);
    tcase_add_test(tc, init_loads_parameters_from_a_plain_file_or_a_checkpoint);
    tcase_add_test(tc, write_into_a_missing_directory_fails_with_the_path);
    tcase_add_test(tc, save_protocol_temp_files_latest_and_keep);
    tcase_add_test(tc, checkpoint_config_keys_and_signal_lists);
    tcase_add_test(tc, unpadded_names_are_ordered_by_step_and_opened_by_their_name);
    suite_add_tcase(s, tc);

    tc = tcase_create("mpirun");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, resume_mid_epoch_is_bitwise_identical);
    tcase_add_test(tc, adam_resume_is_bitwise_identical);
    tcase_add_test(tc, elastic_resume_4_ranks_to_2_and_3);
    tcase_add_test(tc, resume_with_other_threads_warns);
    tcase_add_test(tc, cosine_schedule_resumes_exactly_after_max_steps);
    tcase_add_test(tc, sigterm_to_one_rank_checkpoints_and_exits_75_then_resumes_exactly);
    tcase_add_test(tc, sigusr1_to_mpirun_is_forwarded_and_checkpoints);
    tcase_add_test(tc, resume_with_sharded_momentum_is_bitwise_identical);
    tcase_add_test(tc, resume_on_other_blas_kernels_warns);
    tcase_add_test(tc, kill_9_during_a_write_keeps_the_previous_checkpoint);
    tcase_add_test(tc, corrupt_or_truncated_newest_falls_back_to_the_previous);
    tcase_add_test(tc, other_architecture_or_data_order_is_refused_once);
    tcase_add_test(tc, unwritable_directory_or_full_disk_is_an_error_that_keeps_the_previous);
    tcase_add_test(tc, resume_modes_never_path_directory_and_done);
    tcase_add_test(tc, run_until_done_restarts_a_preempted_job);
    suite_add_tcase(s, tc);
    return s;
}
