/*
 * check_mpi.c -- tests that launch real ranks with mpirun: rank-count
 * invariance, bitwise agreement between ranks, and the alig-train command
 * (usage, config errors reported once, prompt exit, a short training run).
 *
 * Binaries come from ALIG_BIN (alig-train) and ALIG_BUILD (tests/mpi_steps),
 * set by `make check`.
 */
#include "check_suites.h"

#include "alig/blas.h"
#include "alig/comm.h"

#include <cblas.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static char out_[65536];

static const char *env_(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* mpirun prefix: as root it needs --allow-run-as-root; above the core count, --oversubscribe. */
static void mpirun_(char *buf, size_t size, int np) { test_mpirun(buf, size, np); }

static char dir_[512];
static int runs_; /* a fresh out_dir per config: [checkpoint] resume = auto must find nothing */

/* A synthetic data set and a config for it in a fresh scratch dir. */
static const char *setup_(int n, int batch, const char *extra)
{
    snprintf(dir_, sizeof dir_, "%s/alig-mpi-%d", test_tmpdir(), (int)getpid());
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir_);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(test_make_dataset(dir_, "s", n, 6, 6, 5, 3), 0);
    static char cfg[600];
    snprintf(cfg, sizeof cfg, "%s/c.ini", dir_);
    FILE *f = fopen(cfg, "w");
    fprintf(f,
            "[run]\nseed = 7\nepochs = 3\nout_dir = %s/run-%d\n\n"
            "[data]\ntrain_images = %s/s-images.idx\ntrain_labels = %s/s-labels.idx\n"
            "test_images = %s/s-images.idx\ntest_labels = %s/s-labels.idx\nbatch_size = %d\n\n"
            "[model]\nlayers = dense 16, relu, dense 12, relu, dense 5\n\n"
            "[optimizer]\nmax_lr = 0.2\nmomentum = 0.9\n\n[eval]\nbatch_size = 17\n%s",
            dir_, ++runs_, dir_, dir_, dir_, dir_, batch, extra);
    fclose(f);
    return cfg;
}

static float *read_floats_(const char *path, long *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *p = malloc((size_t)bytes);
    ck_assert_int_eq(fread(p, 1, (size_t)bytes, f), (size_t)bytes);
    fclose(f);
    *n = bytes / (long)sizeof(float);
    return p;
}

/*
 * Same seed, data and global batch at 1, 2, 3 and 4 ranks: the same
 * parameters after 12 steps (crossing an epoch boundary with a partial batch
 * of 2, and batches that do not divide by 3 or 4) to 1e-5 relative to the
 * parameter scale. Why 1e-5: the ranks' partial sums are added in another
 * order, a float32 rounding of ~6e-8 relative per step; twelve steps with
 * momentum amplify it to ~1e-6, so 1e-5 leaves margin while any real
 * difference in data or weighting shows up at 1e-2 or more.
 * mpi_steps also checks bitwise agreement across ranks after every step.
 * Both reductions ([run] reduce = shm, the default on one node, and mpi), and
 * at 4 ranks the shared-memory one as on two nodes of 2 ranks
 * (ALIG_TEST_NODE_SIZE=2: node sums, then MPI_Allreduce across the nodes).
 */
START_TEST(same_parameters_at_1_2_3_4_ranks)
{
    const char *cfg = setup_(47, 9, ""); /* 6 batches/epoch: 5 x 9 + 1 x 2 */
    static const struct {
        int np;
        const char *how;
        int node_size; /* > 0: ALIG_TEST_NODE_SIZE */
    } runs[] = {{1, "", 0},
                {2, "run.reduce=shm", 0}, {3, "run.reduce=shm", 0}, {4, "run.reduce=shm", 0},
                {2, "run.reduce=mpi", 0}, {3, "run.reduce=mpi", 0}, {4, "run.reduce=mpi", 0},
                {4, "run.reduce=shm", 2}};
    enum { RUNS = sizeof runs / sizeof runs[0] };
    char cmd[8192], pre[128], file[RUNS][600];
    for (int r = 0; r < RUNS; r++) {
        mpirun_(pre, sizeof pre, runs[r].np);
        char node[64] = "";
        if (runs[r].node_size)
            snprintf(node, sizeof node, "-x ALIG_TEST_NODE_SIZE=%d", runs[r].node_size);
        snprintf(file[r], sizeof file[0], "%s/params-%d.bin", dir_, r);
        snprintf(cmd, sizeof cmd, "%s %s %s/tests/mpi_steps %s %s run.max_steps=12 run.threads=1 %s",
                 pre, node, env_("ALIG_BUILD", "build"), cfg, file[r], runs[r].how);
        int rc = test_run(cmd, 120, out_, sizeof out_, NULL);
        ck_assert_msg(rc == 0, "np=%d %s %s failed (%d):\n%s", runs[r].np, runs[r].how, node, rc,
                      out_);
    }
    long n1, n;
    float *p1 = read_floats_(file[0], &n1);
    double scale = 0;
    for (long i = 0; i < n1; i++)
        scale = fmax(scale, fabs(p1[i]));
    for (int r = 1; r < RUNS; r++) {
        float *p = read_floats_(file[r], &n);
        ck_assert_int_eq(n, n1);
        double worst = 0;
        for (long i = 0; i < n; i++)
            worst = fmax(worst, fabs((double)p[i] - p1[i]) / scale);
        ck_assert_msg(worst <= 1e-5,
                      "np=%d %s (nodes of %d) differs from np=1 by %g (relative to max |w| %g)",
                      runs[r].np, runs[r].how, runs[r].node_size, worst, scale);
        free(p);
    }
    /* two ranks: a + b either way, so the two reductions give the same bits */
    float *shm = read_floats_(file[1], &n), *mpi = read_floats_(file[4], &n1);
    ck_assert_msg(n == n1 && memcmp(shm, mpi, sizeof(float) * (size_t)n) == 0,
                  "np=2: reduce = shm and reduce = mpi differ");
    free(shm);
    free(mpi);
    free(p1);
}
END_TEST


/*
 * Ranks with different thread counts hold the same bits after every step
 * (mpi_steps compares them): rank 0 splits its slice over 3 threads
 * ([run] parallel = batch), rank 1 runs on one, so the optimizer's norms
 * over the model's ~230k parameters (14 blocks) are shared differently.
 * (The step size is rounded to float, which hides most last-bit
 * differences of a double norm: check_optim's
 * threaded_passes_give_the_same_bits checks the norms' own bits.)
 */
START_TEST(ranks_with_different_thread_counts_agree)
{
    const char *cfg = setup_(47, 18, "");
    char cmd[4096], a[600], b[600];
    const char *build = env_("ALIG_BUILD", "build");
    const char *model = "'model.layers=dense 2048, relu, dense 5' run.max_steps=8";
    snprintf(a, sizeof a, "%s/mixed.bin", dir_);
    snprintf(b, sizeof b, "%s/single.bin", dir_);
    snprintf(cmd, sizeof cmd,
             "mpirun %s --oversubscribe -np 1 %s/tests/mpi_steps %s %s %s run.threads=3 "
             "run.parallel=batch : -np 1 %s/tests/mpi_steps %s %s %s run.threads=1",
             geteuid() == 0 ? "--allow-run-as-root" : "", build, cfg, a, model, build, cfg, a,
             model);
    int rc = test_run(cmd, 180, out_, sizeof out_, NULL);
    ck_assert_msg(rc == 0, "ranks with 3 and 1 threads disagree or failed (%d):\n%s", rc, out_);
    /* and to rounding the same as both ranks on one thread */
    char pre[128];
    mpirun_(pre, sizeof pre, 2);
    snprintf(cmd, sizeof cmd, "%s %s/tests/mpi_steps %s %s %s run.threads=1", pre, build, cfg, b,
             model);
    ck_assert_msg(test_run(cmd, 180, out_, sizeof out_, NULL) == 0, "%s", out_);
    long na, nb;
    float *pa = read_floats_(a, &na), *pb = read_floats_(b, &nb);
    ck_assert_int_eq(na, nb);
    double scale = 0, worst = 0;
    for (long i = 0; i < na; i++) {
        scale = fmax(scale, fabs(pb[i]));
        worst = fmax(worst, fabs((double)pa[i] - pb[i]));
    }
    ck_assert_msg(worst <= 1e-5 * scale, "differs by %g (max |w| %g)", worst, scale);
    free(pa);
    free(pb);
}
END_TEST

/*
 * Overlapping the gradient reduction with backward ([run] overlap) starts the same
 * bucketed reductions earlier, so the parameters must be the same bits with it on or
 * off, at 2 and 3 ranks, and at 2 ranks whose slices are split over 2 threads each
 * ([run] parallel = batch: a bucket is reduced once every part has finished it).
 * Tiny buckets (1 KiB) make every layer its own bucket.
 */
START_TEST(overlap_on_and_off_give_the_same_bits)
{
    const char *cfg = setup_(47, 9, "");
    char cmd[4096], pre[128], a[600], b[600];
    static const struct {
        int np;
        const char *threads;
    } runs[] = {{2, "run.threads=1"}, {3, "run.threads=1"},
                {2, "run.threads=2 run.parallel=batch"}};
    for (int r = 0; r < 3; r++) {
        int np = runs[r].np;
        mpirun_(pre, sizeof pre, np);
        snprintf(a, sizeof a, "%s/ov-on-%d.bin", dir_, r);
        snprintf(b, sizeof b, "%s/ov-off-%d.bin", dir_, r);
        snprintf(cmd, sizeof cmd,
                 "%s %s/tests/mpi_steps %s %s run.max_steps=8 %s run.overlap=true "
                 "run.bucket_mb=0.001 run.reduce=mpi", pre, env_("ALIG_BUILD", "build"), cfg, a, runs[r].threads);
        ck_assert_msg(test_run(cmd, 120, out_, sizeof out_, NULL) == 0, "%s", out_);
        snprintf(cmd, sizeof cmd,
                 "%s %s/tests/mpi_steps %s %s run.max_steps=8 %s run.overlap=false "
                 "run.bucket_mb=0.001 run.reduce=mpi", pre, env_("ALIG_BUILD", "build"), cfg, b, runs[r].threads);
        ck_assert_msg(test_run(cmd, 120, out_, sizeof out_, NULL) == 0, "%s", out_);
        long na, nb;
        float *pa = read_floats_(a, &na), *pb = read_floats_(b, &nb);
        ck_assert_int_eq(na, nb);
        ck_assert_msg(memcmp(pa, pb, sizeof(float) * (size_t)na) == 0,
                      "np=%d %s: overlap on and off differ", np, runs[r].threads);
        free(pa);
        free(pb);
    }
}
END_TEST

/* Sanity of the invariance test itself: a different global batch must differ. */
START_TEST(different_batch_gives_different_parameters)
{
    const char *cfg = setup_(47, 9, "");
    char cmd[4096], pre[128], a[600], b[600];
    mpirun_(pre, sizeof pre, 2);
    snprintf(a, sizeof a, "%s/pa.bin", dir_);
    snprintf(b, sizeof b, "%s/pb.bin", dir_);
    snprintf(cmd, sizeof cmd, "%s %s/tests/mpi_steps %s %s run.max_steps=6 run.threads=1", pre,
             env_("ALIG_BUILD", "build"), cfg, a);
    ck_assert_int_eq(test_run(cmd, 120, out_, sizeof out_, NULL), 0);
    snprintf(cmd, sizeof cmd,
             "%s %s/tests/mpi_steps %s %s run.max_steps=6 run.threads=1 data.batch_size=8", pre,
             env_("ALIG_BUILD", "build"), cfg, b);
    ck_assert_int_eq(test_run(cmd, 120, out_, sizeof out_, NULL), 0);
    long na, nb;
    float *pa = read_floats_(a, &na), *pb = read_floats_(b, &nb);
    double worst = 0;
    for (long i = 0; i < na; i++)
        worst = fmax(worst, fabs((double)pa[i] - pb[i]));
    ck_assert_double_gt(worst, 1e-3);
    free(pa);
    free(pb);
}
END_TEST

START_TEST(cli_version_help_and_usage)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/alig-train --version", env_("ALIG_BIN", "bin"));
    ck_assert_int_eq(test_run(cmd, 30, out_, sizeof out_, NULL), 0);
    ck_assert_ptr_nonnull(strstr(out_, "alig-train 0."));
    snprintf(cmd, sizeof cmd, "%s/alig-train --help", env_("ALIG_BIN", "bin"));
    ck_assert_int_eq(test_run(cmd, 30, out_, sizeof out_, NULL), 0);
    ck_assert_ptr_nonnull(strstr(out_, "--set SECTION.KEY=VALUE"));
    snprintf(cmd, sizeof cmd, "%s/alig-train", env_("ALIG_BIN", "bin"));
    ck_assert_int_eq(test_run(cmd, 30, out_, sizeof out_, NULL), 2);
    ck_assert_ptr_nonnull(strstr(out_, "no config file given"));
    snprintf(cmd, sizeof cmd, "%s/alig-train --bogus x.ini", env_("ALIG_BIN", "bin"));
    ck_assert_int_eq(test_run(cmd, 30, out_, sizeof out_, NULL), 2);
    ck_assert_ptr_nonnull(strstr(out_, "unknown option '--bogus'"));
}
END_TEST

static int count_(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* The room check before the shared window: a size no file system has does not fit,
 * a byte does, and a directory statvfs cannot see lets the allocation try. */
START_TEST(shm_room_check)
{
    ck_assert_int_eq(alig_shm_fits(test_tmpdir(), 1), 1);
    ck_assert_int_eq(alig_shm_fits(test_tmpdir(), INT64_MAX / 2), 0);
    ck_assert_int_eq(alig_shm_fits("/nonexistent/alig", INT64_MAX / 2), 1);
}
END_TEST

/*
 * The ranks' parameter checksum: one flipped bit in any byte (each of the 8 chains'
 * words, and the tail after the last whole group of 64 bytes) changes it, the same
 * bytes give the same value, and so does a copy elsewhere in memory (no address in it);
 * a buffer one byte longer differs even when that byte is zero.
 */
START_TEST(checksum_sees_every_flipped_bit)
{
    enum { N = 64 * 3 + 13 };
    unsigned char a[N + 1] = {0}, b[N + 1];
    for (int i = 0; i < N; i++)
        a[i] = (unsigned char)(i * 37 + 11);
    memcpy(b, a, sizeof a);
    uint64_t h = alig_checksum64(a, N);
    ck_assert_uint_eq(alig_checksum64(b, N), h);
    for (int i = 0; i < N; i++)
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (unsigned char)(1u << bit);
            ck_assert_msg(alig_checksum64(b, N) != h, "byte %d bit %d not seen", i, bit);
            b[i] ^= (unsigned char)(1u << bit);
        }
    ck_assert_uint_ne(alig_checksum64(a, N + 1), h);
    /* two words swapped between chains */
    memcpy(b, a + 8, 8);
    memcpy(b + 8, a, 8);
    ck_assert_uint_ne(alig_checksum64(b, N), h);
}
END_TEST

/*
 * The hierarchical shared-memory reduction needs as many ranks on every node:
 * asked for on nodes of 2 and 1 ranks it is a config error that names the key,
 * and auto then takes MPI's.
 */
START_TEST(shm_reduce_on_uneven_nodes)
{
    const char *cfg = setup_(47, 9, "");
    char cmd[4096], pre[128];
    mpirun_(pre, sizeof pre, 3);
    snprintf(cmd, sizeof cmd, "%s -x ALIG_TEST_NODE_SIZE=2 %s/alig-train %s --set run.reduce=shm",
             pre, env_("ALIG_BIN", "bin"), cfg);
    int rc = test_run(cmd, 60, out_, sizeof out_, NULL);
    ck_assert_msg(rc == 2, "exit %d:\n%s", rc, out_);
    ck_assert_int_eq(count_(out_, "[run] reduce = shm needs the same number of ranks on every "
                                  "node, but the nodes run 1 to 2"), 1);
    snprintf(cmd, sizeof cmd, "%s -x ALIG_TEST_NODE_SIZE=2 %s/alig-train %s --set run.epochs=1",
             pre, env_("ALIG_BIN", "bin"), cfg);
    rc = test_run(cmd, 60, out_, sizeof out_, NULL);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out_);
    ck_assert_ptr_nonnull(strstr(out_, "reduce: MPI_Iallreduce"));
}
END_TEST

/* The kernel name in a "blas: OpenBLAS 0.3.21, NAME kernels" line of out_, or "". */
static const char *kernels_(void)
{
    static char name[64];
    name[0] = '\0';
    const char *p = strstr(out_, "blas: OpenBLAS ");
    const char *comma = p ? strchr(p, ',') : NULL;
    if (comma)
        sscanf(comma + 1, " %63s kernels", name);
    return name;
}

/*
 * The BLAS kernels: --version names them; an OPENBLAS_CORETYPE set by the user
 * wins; without one, where OpenBLAS's own choice is weaker than this CPU
 * allows, alig-train restarts itself on the kernels of the CPU's level and
 * says what OpenBLAS had taken.
 */
START_TEST(blas_kernels_reported_and_explicit_setting_wins)
{
    char cmd[1024];
    const char *bin = env_("ALIG_BIN", "bin");
    snprintf(cmd, sizeof cmd, "env OPENBLAS_CORETYPE=Prescott %s/alig-train --version", bin);
    ck_assert_int_eq(test_run(cmd, 30, out_, sizeof out_, NULL), 0);
    ck_assert_str_eq(kernels_(), "Prescott");
    ck_assert_ptr_nonnull(strstr(out_, "(OPENBLAS_CORETYPE=Prescott in the environment)"));

    /* OpenBLAS's own choice: the one this test binary started with */
    const char *user = getenv("OPENBLAS_CORETYPE"), *ours = alig_blas_replaced();
    if (user && *user && !ours)
        return; /* set for `make check` by hand: OpenBLAS's own choice is unknown here */
    const char *own = ours ? ours : openblas_get_corename();
    const char *better = alig_blas_better_core(own, alig_cpu_isa());
    snprintf(cmd, sizeof cmd, "env -u OPENBLAS_CORETYPE %s/alig-train --version", bin);
    ck_assert_int_eq(test_run(cmd, 30, out_, sizeof out_, NULL), 0);
    if (better) {
        ck_assert_msg(!strcasecmp(kernels_(), better), "expected %s kernels:\n%s", better, out_);
        char took[128];
        snprintf(took, sizeof took, "chosen by alig-train: OpenBLAS took %s for this CPU", own);
        ck_assert_msg(strstr(out_, took) != NULL, "%s", out_);
    } else {
        ck_assert_msg(!strcasecmp(kernels_(), own), "expected OpenBLAS's %s:\n%s", own, out_);
        ck_assert_ptr_null(strstr(out_, "chosen by alig-train"));
    }
}
END_TEST

/*
 * Ranks on different kernels (a cluster of mixed nodes): their gradient sums
 * differ in rounding, but the update is computed from the reduced sums, so
 * the parameters stay bitwise identical at every step ([run] check_every = 1
 * fails the run otherwise).
 */
START_TEST(ranks_on_different_kernels_hold_the_same_parameters)
{
    const char *cfg = setup_(120, 20, "");
    char cmd[4096], pre[128];
    mpirun_(pre, sizeof pre, 1);
    const char *bin = env_("ALIG_BIN", "bin");
    const char *opts = "--set run.check_every=1 --set run.epochs=2";
    snprintf(cmd, sizeof cmd, "%s env OPENBLAS_CORETYPE=Prescott %s/alig-train %s %s : -np 1 "
             "env -u OPENBLAS_CORETYPE %s/alig-train %s %s", pre, bin, cfg, opts, bin, cfg, opts);
    int rc = test_run(cmd, 120, out_, sizeof out_, NULL);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out_);
    ck_assert_int_eq(count_(out_, "epoch "), 2);
    ck_assert_str_eq(kernels_(), "Prescott"); /* rank 0's */
    /* a later trial: the log named rank 0's kernels only; now rank 1's difference is told.
     * Rank 1 picks its kernels as this test process did (without OPENBLAS_CORETYPE): when
     * those are not Prescott, as on any x86-64 CPU with AVX, they differ */
    if ((!getenv("OPENBLAS_CORETYPE") || alig_blas_replaced()) &&
        strcasecmp(openblas_get_corename(), "Prescott") != 0)
        ck_assert_msg(count_(out_, "alig-train: warning: the OpenBLAS kernels differ between "
                                   "ranks: rank(s) 1 disagree with rank 0 (Prescott kernels)") == 1,
                      "%s", out_);
}
END_TEST

START_TEST(bad_config_reported_once_and_all_ranks_exit)
{
    const char *cfg = setup_(20, 4, "\n[optimizer]\nbogus_key = 1\n");
    char cmd[4096], pre[128];
    mpirun_(pre, sizeof pre, 3);
    snprintf(cmd, sizeof cmd, "%s %s/alig-train %s", pre, env_("ALIG_BIN", "bin"), cfg);
    double elapsed;
    int rc = test_run(cmd, 60, out_, sizeof out_, &elapsed);
    ck_assert_msg(rc == 2, "exit %d:\n%s", rc, out_);
    ck_assert_int_eq(count_(out_, "bogus_key"), 1);
    ck_assert_msg(elapsed < 30, "took %.1f s", elapsed);

    /* a missing config file: named, exit 2 */
    snprintf(cmd, sizeof cmd, "%s %s/alig-train %s/nope.ini", pre, env_("ALIG_BIN", "bin"), dir_);
    rc = test_run(cmd, 60, out_, sizeof out_, NULL);
    ck_assert_int_eq(rc, 2);
    ck_assert_int_eq(count_(out_, "nope.ini"), 1);

    /* global batch smaller than the world */
    snprintf(cmd, sizeof cmd, "%s %s/alig-train %s --set data.batch_size=2 --set optimizer.momentum=0",
             pre, env_("ALIG_BIN", "bin"), setup_(20, 4, ""));
    rc = test_run(cmd, 60, out_, sizeof out_, NULL);
    ck_assert_msg(rc == 2, "exit %d:\n%s", rc, out_);
    /* once, naming the --set it came from (issue #6) */
    ck_assert_msg(count_(out_, "config error: --set data.batch_size: [data] batch_size = 2 is "
                               "less than the number of ranks (3)") == 1,
                  "%s", out_);
    ck_assert_int_eq(count_(out_, "config error"), 1);
}
END_TEST

START_TEST(missing_data_file_exits_3_on_every_rank)
{
    const char *cfg = setup_(20, 4, "");
    char cmd[4096], pre[128];
    mpirun_(pre, sizeof pre, 2);
    snprintf(cmd, sizeof cmd, "%s %s/alig-train %s --set data.train_images=%s/missing.idx", pre,
             env_("ALIG_BIN", "bin"), cfg, dir_);
    double elapsed;
    int rc = test_run(cmd, 60, out_, sizeof out_, &elapsed);
    ck_assert_msg(rc == 3, "exit %d:\n%s", rc, out_);
    ck_assert_int_eq(count_(out_, "missing.idx: cannot open"), 1);
    ck_assert_msg(elapsed < 30, "took %.1f s", elapsed);
}
END_TEST

START_TEST(trains_end_to_end_on_two_ranks)
{
    const char *cfg = setup_(200, 20, "");
    char cmd[4096], pre[128];
    mpirun_(pre, sizeof pre, 2);
    snprintf(cmd, sizeof cmd, "%s %s/alig-train %s", pre, env_("ALIG_BIN", "bin"), cfg);
    int rc = test_run(cmd, 120, out_, sizeof out_, NULL);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out_);
    ck_assert_int_eq(count_(out_, "epoch "), 3);
    ck_assert_ptr_nonnull(strstr(out_, "ranks: 2"));
    /* a batch log: plain lines, never a carriage return (ranks see an Open MPI pty) */
    ck_assert_ptr_null(strchr(out_, '\r'));
    /* the last epoch's test accuracy on this learnable set */
    const char *last = strstr(out_, "epoch   3");
    ck_assert_ptr_nonnull(last);
    const char *acc = strstr(strstr(last, "test loss"), "acc");
    double a = atof(acc + 3);
    ck_assert_msg(a > 90.0, "test accuracy %.2f%%:\n%s", a, out_);
}
END_TEST

Suite *mpi_suite(void)
{
    Suite *s = suite_create("mpi");
    TCase *tc = tcase_create("mpirun");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, same_parameters_at_1_2_3_4_ranks);
    tcase_add_test(tc, different_batch_gives_different_parameters);
    tcase_add_test(tc, overlap_on_and_off_give_the_same_bits);
    tcase_add_test(tc, ranks_with_different_thread_counts_agree);
    tcase_add_test(tc, shm_reduce_on_uneven_nodes);
    tcase_add_test(tc, shm_room_check);
    tcase_add_test(tc, checksum_sees_every_flipped_bit);
    tcase_add_test(tc, cli_version_help_and_usage);
    tcase_add_test(tc, blas_kernels_reported_and_explicit_setting_wins);
    tcase_add_test(tc, ranks_on_different_kernels_hold_the_same_parameters);
    tcase_add_test(tc, bad_config_reported_once_and_all_ranks_exit);
    tcase_add_test(tc, missing_data_file_exits_3_on_every_rank);
    tcase_add_test(tc, trains_end_to_end_on_two_ranks);
    suite_add_tcase(s, tc);
    return s;
}
