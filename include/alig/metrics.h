/*
 * alig/metrics.h -- metrics files in the run directory (rank 0 only).
 *
 *   <out_dir>/steps.csv   one row every [run] metrics_every steps
 *   <out_dir>/epochs.csv  one row per epoch
 *
 * CSV with a header line; columns are documented in docs/metrics.md. On
 * resume, alig_metrics_open(..., resume_step) first drops rows written
 * after the checkpoint's step (a run killed after its last checkpoint left
 * them behind), so the files never hold a step twice or skip one.
 */
#ifndef ALIG_METRICS_H
#define ALIG_METRICS_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *steps;   /* NULL when closed (ranks other than 0), or after a write failed (the
                    * file then ends with its last complete row) */
    FILE *epochs;
    char steps_path[4200], epochs_path[4200]; /* for the warning when a write fails */
} alig_metrics_t;

/* One row of steps.csv. */
typedef struct {
    int64_t step;          /* global step, 1-based */
    int64_t epoch;         /* 1-based epoch the step belongs to */
    double loss;           /* mean loss of the global batch */
    double step_size;      /* ALI-G: gamma used; other optimizers: learning rate */
    double step_unclipped; /* ALI-G: loss/(|g|^2+delta); others: same as step_size */
    int clipped;
    double grad_norm;      /* |g| of the mean gradient */
} alig_metrics_step_t;

/* One row of epochs.csv. */
typedef struct {
    int64_t epoch, step;
    double train_loss, train_acc, test_loss, test_acc; /* NAN when not evaluated */
    double step_mean, step_min, step_max, clipped_frac;
    double weight_norm;
    double seconds;        /* wall time since the start of this process's training */
    double samples_per_s;
    int64_t skipped;
    double peak_rss_mb;    /* the largest peak resident set of any rank so far, MiB */
} alig_metrics_epoch_t;

/*
 * Open (create or append to) the files in dir. resume_step < 0: start new
 * files (truncating old ones); >= 0: keep rows with step <= resume_step,
 * except, when mid_epoch, the partial row of the epoch being resumed.
 * Returns ALIG_OK or ALIG_E_CKPT (run-directory I/O) naming the file.
 */
int alig_metrics_open(alig_metrics_t *mt, const char *dir, int64_t resume_step, int mid_epoch);
void alig_metrics_step(alig_metrics_t *mt, const alig_metrics_step_t *row);
void alig_metrics_epoch(alig_metrics_t *mt, const alig_metrics_epoch_t *row);

/*
 * Flush both files and fsync them, so the rows written so far survive a crash
 * of the process or of the machine. alig_ckpt_save calls it before it writes a
 * checkpoint: a resume recomputes only the steps after the checkpoint's, so
 * the rows up to it must be on disk whenever the checkpoint is. A file that
 * fails is warned of and gets no more rows, as after a failed write.
 */
void alig_metrics_sync(alig_metrics_t *mt);

void alig_metrics_close(alig_metrics_t *mt);

/* mkdir -p. Returns ALIG_OK or ALIG_E_CKPT naming the directory. */
int alig_mkdirs(const char *dir);

#endif /* ALIG_METRICS_H */
