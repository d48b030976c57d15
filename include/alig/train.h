/*
 * alig/train.h -- the data-parallel training loop.
 *
 * One global step:
 *   1. the global batch is the next contiguous run of the epoch's
 *      permutation; this rank takes its slice (alig_batch_slice);
 *   2. forward/backward give this rank's SUM of losses and gradients;
 *   3. one MPI_Allreduce(SUM) over `grads` = [gradient sums..., loss sum,
 *      correct count, sample count, stop flag];
 *   4. every rank divides by the global count and takes the same ALI-G
 *      step from the global mean loss and gradient.
 * So the result does not depend on the number of ranks beyond float
 * rounding, and all ranks hold bitwise-identical parameters.
 */
#ifndef ALIG_TRAIN_H
#define ALIG_TRAIN_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "alig/comm.h"
#include "alig/config.h"
#include "alig/data.h"
#include "alig/metrics.h"
#include "alig/model.h"
#include "alig/optim.h"

/* Slots of the reduction tail that follows the gradient sums in model.grads. */
enum { ALIG_TAIL_LOSS = 0, ALIG_TAIL_CORRECT = 1, ALIG_TAIL_COUNT = 2, ALIG_TAIL_STOP = 3 };

/* Phases of a step, timed on every rank (alig_epoch_stats_t.phase). */
enum {
    ALIG_PHASE_DATA, ALIG_PHASE_FORWARD, ALIG_PHASE_BACKWARD, ALIG_PHASE_ALLREDUCE,
    ALIG_PHASE_OPTIMIZER, ALIG_N_PHASES
};

/* Per-epoch running statistics (reset at each epoch start). */
typedef struct {
    double phase[ALIG_N_PHASES]; /* seconds in each phase of the epoch's steps (this rank) */
    double loss_sum;        /* sum over steps of mean loss x samples */
    int64_t correct, samples, steps, clipped;
    int64_t skipped;        /* steps skipped for a non-finite loss or gradient ([run] nonfinite = skip) */
    double step_sum, step_min, step_max;
    double seconds;         /* wall time spent in steps */
} alig_epoch_stats_t;

typedef struct {
    const alig_config_t *cfg;
    alig_comm_t *comm;
    alig_dataset_t train, test;   /* test.n == 0: no test set */
    alig_model_t model;
    alig_optim_t optim;
    int64_t *perm;                /* (train.n) order of epoch `perm_epoch` */
    int64_t perm_epoch;           /* -1: not computed yet */
    int32_t *labels;              /* (model.max_batch) labels of the local slice */
    float *state_before;          /* (model.n_state) bn statistics before the current step */
    int64_t *eval_index;          /* (model.max_batch) sample indices of an evaluation slice */
    alig_augment_t aug;           /* training-sample augmentation ([data] augment_*) */
    int64_t batches_per_epoch;
    /* gradient buckets reduced as backward produces them (see train.c plan_buckets_) */
#define ALIG_MAX_BUCKETS 64
    int n_buckets, next_bucket;
    int shm;                      /* 1: gradients reduced through node shared memory ([run] reduce) */
    /* with shm, this rank's share of the buffer: grads[shard_lo, shard_hi) (whole
     * ALIG_BLOCKs; the last rank of a node has the tail) and the optimizer's blocks
     * [shard_b0, shard_b1), which it alone updates; the others' come from their
     * model.params, which are in a shared window too */
    int64_t shard_lo, shard_hi, shard_b0, shard_b1;
    char reduce_why[160];         /* for the start-up log */
    int64_t bucket_start[ALIG_MAX_BUCKETS]; /* descending; bucket b is [start[b], start[b-1]) */
    /* training position: the next step is batch `batch` of epoch `epoch` */
    int64_t epoch, batch, step;
    alig_epoch_stats_t stats;
    alig_epoch_stats_t run_stats; /* samples, steps, seconds, phase of this process's epoch lines */
    int lock_fd;                  /* rank 0: flock on <out_dir>/.alig-train.lock (0: none) */
    alig_metrics_t metrics;       /* steps.csv, epochs.csv (rank 0; closed elsewhere) */
    alig_step_info_t last;        /* the most recent step */
    int threads;                  /* cores of this rank: BLAS threads, or parts with parallel = batch */
    /* [run] parallel = batch: each step's local slice is cut into n_parts parts
     * (alig_batch_slice), part 0 run by model on this thread and part k by
     * parts[k - 1] on a worker of `pool`, all with one BLAS thread; their gradient
     * sums are added in part order. n_parts = 1 (otherwise): the same jobs run once,
     * on this thread, whose GEMMs use `threads` BLAS threads. When every parameter
     * is in a dense layer, the parts form a team (alig_team_t) that writes the
     * dense gradients of the whole slice straight into model.grads: nothing to add. */
    int n_parts;                  /* >= 1 after alig_trainer_init */
    alig_model_t *parts;          /* (n_parts - 1) models sharing model.params */
    struct alig_pool *pool;       /* NULL when n_parts = 1 */
    int64_t *part_from;           /* (n_parts) each part's grads are final from here on */
    int64_t sum_end;              /* the parts' sums in grads[0, sum_end) are still to add */
    double *part_loss;            /* (n_parts) loss sum of each part's forward */
    int64_t *part_correct;        /* (n_parts) */
    alig_team_t team;             /* team.n = n_parts when the parts form a team, else 0 */
    char parallel_why[160];       /* how the mode was chosen, for the log */
    char threads_why[256];        /* how that number was chosen, for the log */
    volatile sig_atomic_t *stop_signal; /* set asynchronously (e.g. SIGTERM); may be NULL */
    int stop_requested;           /* some rank saw stop_signal at the last step */
    struct alig_ckpt *ckpt;       /* checkpoint state (alig/ckpt.h); NULL until alig_trainer_run */
    /* Test hook (tests/check_faults.c, tests/check_reference.c):
     * ALIG_TEST_FAULT=KIND:STEP:RANK makes rank RANK, at global step STEP
     * (1-based), produce a NaN loss (KIND nan), die by SIGKILL (kill), or
     * flip the lowest bit of parameter 0 after the step (flip). Read once at
     * init; never set in production. */
    int fault_kind, fault_rank;   /* kind 0: none, 1: nan, 2: kill, 3: flip */
    int64_t fault_step;
} alig_trainer_t;

/*
 * Load the data, build and initialise the model (seeded, then projected
 * onto the max_norm ball), set up the optimizer. Collective: all ranks
 * agree on success; on failure the lowest failing rank has printed its
 * error and every rank returns the same status.
 */
int alig_trainer_init(alig_trainer_t *t, const alig_config_t *cfg, alig_comm_t *comm);

/*
 * One global step (collective). Fills *info (may be NULL). When the global
 * loss or gradient is not finite, the parameters are left unchanged and,
 * with [run] nonfinite = stop, every rank returns ALIG_E_NUMERIC; with
 * skip, the step is counted in stats.skipped and training moves on.
 */
int alig_trainer_step(alig_trainer_t *t, alig_step_info_t *info);

/* Mean loss and accuracy on a dataset (collective), in evaluation mode (bn running
 * statistics, no dropout; training mode is restored after), each rank's slice of an
 * [eval] batch run in chunks of at most model.max_batch samples. */
void alig_trainer_evaluate(alig_trainer_t *t, const alig_dataset_t *ds, double *loss,
                           double *accuracy);

/*
 * With [run] reduce = shm each rank of a node updates only its share of the
 * optimizer's state (momentum, Adam's second moment): gather the others'
 * shares, so that every rank holds all of it (for a checkpoint). Collective;
 * nothing to do otherwise.
 */
void alig_trainer_gather_state(alig_trainer_t *t);

/*
 * Train until the configured epochs or max_steps are done, printing a
 * line per epoch on rank 0 to `log`. Returns ALIG_OK, ALIG_E_NUMERIC, or
 * ALIG_E_PREEMPTED when a stop signal ended it early.
 */
int alig_trainer_run(alig_trainer_t *t, FILE *log);

void alig_trainer_free(alig_trainer_t *t);

#endif /* ALIG_TRAIN_H */
