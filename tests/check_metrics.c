/*
 * check_metrics.c -- metrics files: header, rows, and the trim on resume
 * that keeps every step exactly once; a full disk; and, with alig-train
 * itself (tcase "run"), the rows that a checkpoint must keep through a kill -9.
 */
#include "check_suites.h"

#include "alig/error.h"
#include "alig/metrics.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static char dir_[512];

static char *slurp_(const char *name)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir_, name);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int lines_(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int count_(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void write_steps_(alig_metrics_t *mt, int from, int to)
{
    for (int s = from; s <= to; s += 10) {
        alig_metrics_step_t r = {.step = s, .epoch = 1 + (s - 1) / 30, .loss = 1.0 / s,
                                 .step_size = 0.1, .step_unclipped = 0.2, .clipped = 1,
                                 .grad_norm = 3.0};
        alig_metrics_step(mt, &r);
        if (s % 30 == 0) {
            alig_metrics_epoch_t e = {.epoch = s / 30, .step = s, .train_loss = 0.5,
                                      .test_acc = NAN};
            alig_metrics_epoch(mt, &e);
        }
    }
}

START_TEST(rows_and_resume_trim)
{
    snprintf(dir_, sizeof dir_, "%s/alig-metrics-%d/run", test_tmpdir(), (int)getpid());
    alig_metrics_t mt;
    ck_assert_int_eq(alig_metrics_open(&mt, dir_, -1, 0), ALIG_OK); /* creates the directories */
    write_steps_(&mt, 10, 70); /* steps 10..70, epochs ending at 30 and 60 */
    alig_metrics_close(&mt);
    char *s = slurp_("steps.csv");
    ck_assert_int_eq(lines_(s), 1 + 7);
    ck_assert(strncmp(s, "step,epoch,loss,step_size,step_unclipped,clipped,grad_norm\n", 59) == 0);
    ck_assert_ptr_nonnull(strstr(s, "\n20,1,0.05,0.1,0.2,1,3\n"));
    ck_assert_int_eq(lines_(slurp_("epochs.csv")), 1 + 2);

    /* the job died after step 70; its last checkpoint was at step 40: rows after 40
     * go, and the resumed job writes 50.. again, each once */
    ck_assert_int_eq(alig_metrics_open(&mt, dir_, 40, 1), ALIG_OK);
    write_steps_(&mt, 50, 90);
    alig_metrics_close(&mt);
    s = slurp_("steps.csv");
    ck_assert_int_eq(lines_(s), 1 + 9);
    for (int step = 10; step <= 90; step += 10) {
        char row[32];
        snprintf(row, sizeof row, "\n%d,", step);
        ck_assert_msg(strstr(s, row) && !strstr(strstr(s, row) + 1, row), "step %d not once", step);
    }
    s = slurp_("epochs.csv");
    ck_assert_int_eq(lines_(s), 1 + 3); /* epochs ending at 30, 60, 90 */
    ck_assert_ptr_nonnull(strstr(s, "\n1,30,"));
    ck_assert_ptr_nonnull(strstr(s, "\n2,60,"));
    ck_assert_ptr_nonnull(strstr(s, "\n3,90,"));

    /* max_steps ended a run mid-epoch at step 100 with a partial row for epoch 4; the
     * resume at 100 drops that row and writes the whole epoch's row at step 120 */
    alig_metrics_epoch_t partial = {.epoch = 4, .step = 100, .test_acc = NAN};
    ck_assert_int_eq(alig_metrics_open(&mt, dir_, 100, 0), ALIG_OK);
    alig_metrics_epoch(&mt, &partial);
    alig_metrics_close(&mt);
    ck_assert_int_eq(alig_metrics_open(&mt, dir_, 100, 1), ALIG_OK);
    alig_metrics_epoch_t whole = {.epoch = 4, .step = 120, .test_acc = NAN};
    alig_metrics_epoch(&mt, &whole);
    alig_metrics_close(&mt);
    s = slurp_("epochs.csv");
    ck_assert_ptr_null(strstr(s, "\n4,100,"));
    ck_assert_ptr_nonnull(strstr(s, "\n4,120,"));
    ck_assert_int_eq(lines_(s), 1 + 4);

    /* a fresh start (-1) truncates */
    ck_assert_int_eq(alig_metrics_open(&mt, dir_, -1, 0), ALIG_OK);
    alig_metrics_close(&mt);
    ck_assert_int_eq(lines_(slurp_("steps.csv")), 1);
}
END_TEST

START_TEST(unwritable_directory_is_an_error)
{
    alig_metrics_t mt;
    ck_assert_int_eq(alig_metrics_open(&mt, "/proc/alig-no/such", -1, 0), ALIG_E_CKPT);
    ck_assert_ptr_nonnull(strstr(alig_error_message(), "/proc/alig-no"));
}
END_TEST

/*
 * Found by a new-user trial: with the disk full, steps.csv stopped at step 153 of 300 and
 * the run said nothing (no write was checked). Now a failed write warns once, naming the
 * file, and no more rows go to it, so no torn row follows; training goes on. /dev/full
 * stands in for the full disk: every write to it fails with ENOSPC.
 */
START_TEST(a_failed_write_warns_once_and_stops_the_file)
{
    snprintf(dir_, sizeof dir_, "%s/alig-metrics-full-%d", test_tmpdir(), (int)getpid());
    char log[700];
    snprintf(log, sizeof log, "%s.stderr", dir_);
    alig_metrics_t mt;
    ck_assert_int_eq(alig_metrics_open(&mt, dir_, -1, 0), ALIG_OK);
    fclose(mt.steps);
    fclose(mt.epochs);
    ck_assert_ptr_nonnull(mt.steps = fopen("/dev/full", "w"));
    ck_assert_ptr_nonnull(mt.epochs = fopen("/dev/full", "w"));
    fflush(stderr);
    int saved = dup(2);
    FILE *err = fopen(log, "w");
    ck_assert_ptr_nonnull(err);
    dup2(fileno(err), 2);
    /* enough rows to fill stdio's buffer, so steps.csv fails before an epoch's flush */
    for (int i = 0; i < 400 && mt.steps; i++) {
        alig_metrics_step_t r = {.step = i + 1, .epoch = 1, .loss = 1.0, .step_size = 0.1};
        alig_metrics_step(&mt, &r);
    }
    int steps_stopped = mt.steps == NULL;
    alig_metrics_epoch_t e = {.epoch = 1, .step = 400, .test_acc = NAN};
    alig_metrics_epoch(&mt, &e);
    int epochs_stopped = mt.epochs == NULL;
    alig_metrics_step_t more = {.step = 401, .epoch = 2};
    alig_metrics_step(&mt, &more); /* nothing to write to: no crash, no second warning */
    alig_metrics_epoch(&mt, &e);
    alig_metrics_close(&mt);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(err);
    ck_assert_msg(steps_stopped, "steps.csv still open after failed writes");
    ck_assert_msg(epochs_stopped, "epochs.csv still open after a failed flush");
    FILE *f = fopen(log, "r");
    ck_assert_ptr_nonnull(f);
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    char want[1200];
    snprintf(want, sizeof want, "alig-train: warning: %s/steps.csv: cannot write: No space left "
             "on device; no more rows go to this file (training and checkpoints go on)\n", dir_);
    ck_assert_msg(strstr(text, want) && !strstr(strstr(text, want) + strlen(want), "steps.csv"),
                  "%s", text);
    snprintf(want, sizeof want, "%s/epochs.csv: cannot write: No space left on device", dir_);
    ck_assert_msg(strstr(text, want) && !strstr(strstr(text, want) + strlen(want), "epochs.csv"),
                  "%s", text);
}
END_TEST

/*
 * Found by a new-user trial: at disk full the last row of steps.csv was torn (the file
 * ended "88,9,0.335470886,0.1,0.413500206,1,"): the write of stdio's buffer stored what
 * fitted. Now the file is cut back to its last complete row. A file-size limit stands in
 * for the disk that fills part-way through a write (setrlimit, SIGXFSZ ignored as
 * alig-train does): a write past it stores the bytes below the limit and fails with EFBIG.
 * 2990 bytes falls in the middle of row 99 (bytes 2970 to 3000 of the file).
 */
START_TEST(a_write_cut_short_leaves_no_torn_row)
{
    snprintf(dir_, sizeof dir_, "%s/alig-metrics-fsize-%d", test_tmpdir(), (int)getpid());
    char log[700];
    snprintf(log, sizeof log, "%s.stderr", dir_);
    alig_metrics_t mt;
    ck_assert_int_eq(alig_metrics_open(&mt, dir_, -1, 0), ALIG_OK);
    struct rlimit old, low;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    low = old;
    low.rlim_cur = 2990;
    fflush(stderr);
    int saved = dup(2);
    FILE *err = fopen(log, "w");
    ck_assert_ptr_nonnull(err);
    dup2(fileno(err), 2);
    void (*xfsz)(int) = signal(SIGXFSZ, SIG_IGN);
    /* no ck_assert until the limit is lifted: Check records each in its message file */
    setrlimit(RLIMIT_FSIZE, &low);
    for (int i = 0; i < 400 && mt.steps; i++) {
        alig_metrics_step_t r = {.step = i + 1, .epoch = 1, .loss = 1.0 / (i + 1),
                                 .step_size = 0.1, .step_unclipped = 0.25, .clipped = 1,
                                 .grad_norm = 3.0};
        alig_metrics_step(&mt, &r);
    }
    int stopped = mt.steps == NULL;
    alig_metrics_close(&mt);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, xfsz);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(err);
    ck_assert_msg(stopped, "steps.csv still open after a failed write");
    const char *s = slurp_("steps.csv");
    size_t n = strlen(s);
    ck_assert_msg(n == 2970 && s[n - 1] == '\n',
                  "steps.csv (%zu bytes) does not end with a complete row: ...%s", n,
                  s + (n > 60 ? n - 60 : 0));
    int rows = 0;
    for (const char *p = strchr(s, '\n'); p[1]; p = strchr(p + 1, '\n')) {
        rows++;
        char want[64];
        int len = snprintf(want, sizeof want, "%d,1,%.9g,0.1,0.25,1,3\n", rows, 1.0 / rows);
        ck_assert_msg(strncmp(p + 1, want, (size_t)len) == 0, "row %d: %.40s", rows, p + 1);
    }
    char text[4096];
    FILE *f = fopen(log, "r");
    ck_assert_ptr_nonnull(f);
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    ck_assert_msg(count_(text, "steps.csv: cannot write: File too large; no more rows go to this "
                               "file") == 1 && !strstr(text, "incomplete row"), "%s", text);
}
END_TEST

/* The steps of steps.csv's rows, in file order, into steps[]; their count. */
static int row_steps_(const char *csv, int *steps, int cap)
{
    int n = 0;
    for (const char *p = strchr(csv, '\n'); p && p[1] && n < cap; p = strchr(p + 1, '\n'))
        steps[n++] = atoi(p + 1);
    return n;
}

/*
 * Found by a new-user trial: a run killed (kill -9) after its every_steps checkpoints at
 * 100, 200 and 300 left steps.csv with its header only: the rows were still in stdio's
 * buffer. The resumed run went on from step 300, so rows 10..300 were gone for good. Now
 * the files are flushed (and fsync'ed) before every checkpoint. Here: a row every step,
 * a checkpoint every 4 steps and none at epoch ends (whose row flushes the files anyway),
 * rank 0 killed during step 11 (test hook ALIG_TEST_FAULT), after the checkpoint of step 8
 * and before any epoch ended (12 steps each); then a resume to the end.
 */
START_TEST(rows_up_to_a_checkpoint_survive_a_kill_and_the_resume_adds_the_rest)
{
    snprintf(dir_, sizeof dir_, "%s/alig-metrics-kill-%d", test_tmpdir(), (int)getpid());
    char cmd[8192], out[16384];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir_);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(test_make_dataset(dir_, "m", 120, 5, 5, 4, 9), 0); /* 12 steps of 10 */
    const char *bin = getenv("ALIG_BIN") && *getenv("ALIG_BIN") ? getenv("ALIG_BIN") : "bin";
    char run[4096];
    snprintf(run, sizeof run,
             "%s/alig-train /dev/null --set run.epochs=2 --set run.out_dir=%s/run "
             "--set run.metrics_every=1 --set run.threads=1 --set data.train_images=%s/m-images.idx "
             "--set data.train_labels=%s/m-labels.idx --set data.test_images=none "
             "--set data.test_labels=none --set data.batch_size=10 "
             "--set 'model.layers=dense 8, relu, dense 4' --set checkpoint.every_steps=4 "
             "--set checkpoint.every_epochs=0",
             bin, dir_, dir_, dir_);
    snprintf(cmd, sizeof cmd, "ALIG_TEST_FAULT=kill:11:0 %s", run);
    int rc = test_run(cmd, 60, out, sizeof out, NULL);
    ck_assert_msg(rc == 128 + 9 && strstr(out, "checkpoint: step 8 ->"), "exit %d:\n%s", rc, out);
    snprintf(dir_ + strlen(dir_), sizeof dir_ - strlen(dir_), "/run");
    int steps[64];
    int n = row_steps_(slurp_("steps.csv"), steps, 64);
    ck_assert_msg(n >= 8, "steps.csv holds %d rows after the kill, not those of steps 1..8:\n%s",
                  n, slurp_("steps.csv"));
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(steps[i], i + 1);

    /* the resume starts from the checkpoint of step 8: every step once, in order */
    rc = test_run(run, 60, out, sizeof out, NULL);
    ck_assert_msg(rc == 0 && strstr(out, "ckpt-00000008.h5: step 8"), "exit %d:\n%s", rc, out);
    n = row_steps_(slurp_("steps.csv"), steps, 64);
    ck_assert_msg(n == 24, "%d rows:\n%s", n, slurp_("steps.csv"));
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(steps[i], i + 1);
}
END_TEST

Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, rows_and_resume_trim);
    tcase_add_test(tc, unwritable_directory_is_an_error);
    tcase_add_test(tc, a_failed_write_warns_once_and_stops_the_file);
    tcase_add_test(tc, a_write_cut_short_leaves_no_torn_row);
    suite_add_tcase(s, tc);

    tc = tcase_create("run"); /* alig-train itself, one process */
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, rows_up_to_a_checkpoint_survive_a_kill_and_the_resume_adds_the_rest);
    suite_add_tcase(s, tc);
    return s;
}
