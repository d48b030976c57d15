/*
 * check_faults.c -- faults during a run: a non-finite loss on one rank, a
 * rank killed mid-run, an allocation that fails. Every case checks the exit
 * code, the message (printed once) and that all ranks ended within a bound.
 *
 * Faults are injected with the trainer's test hook ALIG_TEST_FAULT
 * (KIND:STEP:RANK, see alig/train.h).
 */
#include "check_suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char out_[65536];
static char dir_[512], cfg_[600];
static int runs_; /* a fresh out_dir per config: [checkpoint] resume = auto must find nothing */

static const char *bin_(void)
{
    const char *v = getenv("ALIG_BIN");
    return v && *v ? v : "bin";
}

static int sanitizing_(void)
{
    const char *san = getenv("ALIG_SANITIZE");
    return san && *san == '1';
}

static void mpirun_(char *buf, size_t size, int np, const char *env)
{
    char pre[160];
    test_mpirun(pre, sizeof pre, np);
    snprintf(buf, size, "%s %s", env, pre);
}

static void setup_(void)
{
    snprintf(dir_, sizeof dir_, "%s/alig-faults-%d", test_tmpdir(), (int)getpid());
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir_);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(test_make_dataset(dir_, "f", 120, 5, 5, 4, 9), 0);
    snprintf(cfg_, sizeof cfg_, "%s/f.ini", dir_);
    FILE *f = fopen(cfg_, "w");
    fprintf(f,
            "[run]\nepochs = 2\nout_dir = %s/run-%d\n[data]\ntrain_images = %s/f-images.idx\n"
            "train_labels = %s/f-labels.idx\ntest_images = none\ntest_labels = none\n"
            "batch_size = 12\n[model]\nlayers = dense 8, relu, dense 4\n"
            "[optimizer]\nmax_lr = 0.1\n",
            dir_, ++runs_, dir_, dir_);
    fclose(f);
}

static int count_(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

START_TEST(nan_on_one_rank_stops_every_rank_with_exit_5)
{
    setup_();
    char cmd[4096], pre[256];
    mpirun_(pre, sizeof pre, 3, "ALIG_TEST_FAULT=nan:5:1");
    snprintf(cmd, sizeof cmd, "%s %s/alig-train %s", pre, bin_(), cfg_);
    double elapsed;
    int rc = test_run(cmd, 60, out_, sizeof out_, &elapsed);
    ck_assert_msg(rc == 5, "exit %d:\n%s", rc, out_);
    ck_assert_msg(count_(out_, "numerical error: step 5 (epoch 1, batch 5)") == 1, "%s", out_);
    ck_assert_msg(strstr(out_, "left as they were after step 4") != NULL, "%s", out_);
    ck_assert_msg(elapsed < 30, "took %.1f s", elapsed);
}
END_TEST

START_TEST(nan_with_skip_policy_is_skipped_and_counted)
{
    setup_();
    char cmd[4096], pre[256];
    mpirun_(pre, sizeof pre, 2, "ALIG_TEST_FAULT=nan:3:0");
    snprintf(cmd, sizeof cmd, "%s %s/alig-train %s --set run.nonfinite=skip", pre, bin_(), cfg_);
    int rc = test_run(cmd, 60, out_, sizeof out_, NULL);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out_);
    /* epoch 1 has 10 steps, one skipped; epoch 2 none */
    ck_assert_int_eq(count_(out_, "skipped 1 non-finite step(s)"), 1);
    ck_assert_int_eq(count_(out_, "epoch "), 2);
}
END_TEST

START_TEST(killed_rank_ends_the_job_promptly)
{
    setup_();
    char cmd[4096], pre[256];
    mpirun_(pre, sizeof pre, 3, "ALIG_TEST_FAULT=kill:4:2");
    snprintf(cmd, sizeof cmd, "%s %s/alig-train %s --set run.epochs=50", pre, bin_(), cfg_);
    double elapsed;
    int rc = test_run(cmd, 90, out_, sizeof out_, &elapsed);
    ck_assert_msg(rc != 0 && rc != -2, "exit %d:\n%s", rc, out_);
    ck_assert_msg(elapsed < 30, "the surviving ranks took %.1f s to end:\n%s", elapsed, out_);
}
END_TEST

START_TEST(failed_allocation_is_an_error_not_a_crash)
{
    if (sanitizing_())
        return; /* ASan reserves terabytes of address space: ulimit -v cannot apply */
    setup_();
    char cmd[4096];
    /* ~12.5 GB of parameters under a 2.5 GB address-space limit */
    snprintf(cmd, sizeof cmd,
             "ulimit -v 2500000; %s/alig-train %s --set 'model.layers=dense 4000000, relu, dense 4'",
             bin_(), cfg_);
    int rc = test_run(cmd, 60, out_, sizeof out_, NULL);
    ck_assert_msg(rc == 6, "exit %d:\n%s", rc, out_);
    ck_assert_msg(strstr(out_, "out of memory: cannot allocate") != NULL, "%s", out_);
}
END_TEST

/* Found by a new-user trial: every step skipped used to end "successfully". */
START_TEST(skip_policy_with_nothing_left_is_a_numerical_error)
{
    setup_();
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s/alig-train %s --set optimizer.name=sgd --set optimizer.lr=1e30 "
             "--set optimizer.momentum=0 --set run.nonfinite=skip", bin_(), cfg_);
    int rc = test_run(cmd, 60, out_, sizeof out_, NULL);
    ck_assert_msg(rc == 5, "exit %d:\n%s", rc, out_);
    ck_assert_msg(strstr(out_, "were skipped ([run] nonfinite = skip)") != NULL, "%s", out_);
}
END_TEST

/* Found by a new-user trial: a network with more outputs than classes trained silently. */
START_TEST(outputs_must_match_the_classes)
{
    setup_();
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s/alig-train %s --set 'model.layers=dense 8, relu, dense 6'",
             bin_(), cfg_);
    int rc = test_run(cmd, 60, out_, sizeof out_, NULL);
    ck_assert_msg(rc == 2, "exit %d:\n%s", rc, out_);
    ck_assert_msg(strstr(out_, "ends with 6 outputs (last layer 02_dense) but the data has 4 "
                               "classes") != NULL, "%s", out_);
    snprintf(cmd, sizeof cmd, "%s/alig-train %s --set model.layers=relu", bin_(), cfg_);
    ck_assert_int_eq(test_run(cmd, 60, out_, sizeof out_, NULL), 2);
}
END_TEST

/* Found by a new-user trial: two jobs in one run directory mixed their checkpoints. */
START_TEST(second_job_in_the_same_run_directory_is_refused)
{
    setup_();
    char cmd[4096];
    /* the first job holds the directory for a while (many epochs), the second is refused */
    snprintf(cmd, sizeof cmd,
             "%s/alig-train %s --set run.epochs=100000 > %s/first.log 2>&1 & first=$!; "
             "sleep 2; %s/alig-train %s; rc=$?; kill $first; wait $first; exit $rc",
             bin_(), cfg_, dir_, bin_(), cfg_);
    double elapsed;
    int rc = test_run(cmd, 60, out_, sizeof out_, &elapsed);
    ck_assert_msg(rc == 4, "exit %d:\n%s", rc, out_);
    ck_assert_msg(strstr(out_, "another alig-train job is using this run directory") != NULL,
                  "%s", out_);
    /* once the first job is gone, the directory is free again (and resumes) */
    snprintf(cmd, sizeof cmd, "%s/alig-train %s --set run.epochs=1", bin_(), cfg_);
    rc = test_run(cmd, 60, out_, sizeof out_, NULL);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out_);
}
END_TEST

/* Found by a new-user trial: Ctrl-C during a checkpoint write was lost. SIGINT is now a
 * checkpointing stop like SIGTERM (exit 75), and a second one ends the process at once,
 * also in the middle of a write (held open by the ALIG_TEST_CKPT_PAUSE hook). */
START_TEST(ctrl_c_checkpoints_and_a_second_one_kills)
{
    setup_();
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s/alig-train %s --set run.epochs=100000 > %s/int.log 2>&1 & p=$!; sleep 2; "
             "kill -INT $p; wait $p; rc=$?; tail -3 %s/int.log; exit $rc",
             bin_(), cfg_, dir_, dir_);
    int rc = test_run(cmd, 60, out_, sizeof out_, NULL);
    ck_assert_msg(rc == 75, "exit %d:\n%.2000s", rc, out_);
    ck_assert_msg(strstr(out_, "stopped by a signal at step") != NULL, "%.2000s", out_);
    /* the checkpoint of step 10 (end of epoch 1) pauses mid-write: two Ctrl-C then */
    snprintf(cmd, sizeof cmd,
             "ALIG_TEST_CKPT_PAUSE=10 %s/alig-train %s --set run.out_dir=%s/int2 > %s/int2.log "
             "2>&1 & p=$!; for i in $(seq 100); do grep -q 'test hook' %s/int2.log && break; "
             "sleep 0.1; done; kill -INT $p; sleep 0.3; kill -INT $p; wait $p",
             bin_(), cfg_, dir_, dir_, dir_);
    double elapsed;
    rc = test_run(cmd, 60, out_, sizeof out_, &elapsed);
    ck_assert_msg(rc == 130, "exit %d", rc); /* 128 + SIGINT */
    ck_assert_msg(elapsed < 20, "took %.1f s", elapsed);
}
END_TEST

Suite *faults_suite(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, nan_on_one_rank_stops_every_rank_with_exit_5);
    tcase_add_test(tc, nan_with_skip_policy_is_skipped_and_counted);
    tcase_add_test(tc, killed_rank_ends_the_job_promptly);
    tcase_add_test(tc, failed_allocation_is_an_error_not_a_crash);
    tcase_add_test(tc, skip_policy_with_nothing_left_is_a_numerical_error);
    tcase_add_test(tc, outputs_must_match_the_classes);
    tcase_add_test(tc, second_job_in_the_same_run_directory_is_refused);
    tcase_add_test(tc, ctrl_c_checkpoints_and_a_second_one_kills);
    suite_add_tcase(s, tc);
    return s;
}
