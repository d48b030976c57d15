/*
 * alig/ckpt.h -- HDF5 checkpoints: exact, atomic, and safe under preemption.
 *
 * A checkpoint holds everything a run needs to continue bit for bit where it
 * stopped: the parameters (one dataset per tensor, /params/<tensor name>),
 * the non-trained state (/state/...), the momentum buffer
 * (/optim/momentum/...), the training position (step, epoch, batch inside
 * the epoch), the seed, the world size and global batch at save time, the
 * running epoch statistics, the config text and a model summary. The layout
 * is documented in docs/checkpoint-format.md; h5dump and h5py read it.
 *
 * Files live in one directory (the run directory [run] out_dir by default):
 *
 *   ckpt-00000120.h5   the checkpoint taken after global step 120
 *   latest             one line naming the newest complete checkpoint
 *
 * Only rank 0 touches the directory; every rank holds identical state
 * (the training step keeps ranks bitwise identical), so rank 0's copy is the
 * run's. A save writes ckpt-<step>.h5.tmp, fsyncs it, renames it into
 * place, fsyncs the directory, then replaces `latest` the same way, and only
 * then deletes checkpoints beyond the newest [checkpoint] keep. So a kill at
 * any moment leaves the previous checkpoint, and `latest`, intact.
 *
 * Every HDF5 failure becomes ALIG_E_CKPT with a message that starts with the
 * file's path; HDF5's own error printing is off inside these functions (the
 * handler set before is restored on return).
 *
 * The file is built in memory and written with write() + fsync(), so a
 * save holds one extra copy of the checkpoint on rank 0 while it runs.
 *
 * The collective functions (alig_ckpt_begin/save/after_step/stop/end) must
 * be called by all ranks; they agree on the outcome with alig_comm_agree, so
 * every rank returns the same status and no rank runs ahead.
 */
#ifndef ALIG_CKPT_H
#define ALIG_CKPT_H

#include <stdint.h>
#include <stdio.h>

#include "alig/model.h"
#include "alig/train.h"

#define ALIG_CKPT_FORMAT "alig-train checkpoint" /* root attribute `format` */
#define ALIG_CKPT_VERSION 1                      /* root attribute `format_version` */

/* Per-run checkpoint state, owned by the trainer (alig_trainer_t.ckpt). */
typedef struct alig_ckpt alig_ckpt_t;

/* What a checkpoint says about the run that wrote it. */
typedef struct {
    int version;   /* format_version */
    int64_t step;  /* global steps done */
    int64_t epoch; /* the next step is batch `batch` of epoch `epoch` (0-based) */
    int64_t batch;
    int64_t batches_per_epoch; /* of the run that wrote it */
    int64_t train_samples;     /* training-set size of the run that wrote it */
    uint64_t seed;
    int world_size;           /* ranks at save time */
    int threads, parts;       /* rank 0's threads and parts at save time (0: not stored) */
    char *blas_kernels;       /* rank 0's OpenBLAS kernels at save time (owned; NULL: not stored) */
    int batch_size;           /* global batch at save time */
    int has_momentum;         /* 1: /optim/momentum was present and read */
    alig_epoch_stats_t stats; /* running statistics of the current epoch */
    char *config;             /* config text as given (owned, NUL-terminated) */
    char *config_effective;   /* every key, as alig_config_write prints it (owned) */
} alig_ckpt_info_t;

/* Free the strings of an info. Safe on a zeroed info. */
void alig_ckpt_info_free(alig_ckpt_info_t *info);

/*
 * Write the trainer's state to `path` (created or truncated). Not atomic by
 * itself and not collective: alig_ckpt_save adds the temp-file, fsync and
 * rename protocol. Returns ALIG_OK or ALIG_E_CKPT ("<path>: ...").
 */
int alig_ckpt_write_file(const char *path, const alig_trainer_t *t);

/*
 * One job per directory: an exclusive flock on <dir>/.alig-train.lock, held on *fd
 * until it is closed (dir must exist). Another job holding it is an ALIG_E_CKPT
 * error naming the directory, as `role`, and the key that gives this job its own.
 */
int alig_lock_dir(const char *dir, const char *role, const char *key, int *fd);

/* The bytes of t's checkpoint data (parameters, state, optimizer buffers), plus 1 MiB
 * of headroom: what alig_ckpt_write_file holds in memory, twice (the in-memory file,
 * then its image to write out) while it saves. */
size_t alig_ckpt_data_bytes(const alig_trainer_t *t);

/*
 * Read the checkpoint `path` for model m (which fixes the tensor names and
 * shapes) into params (m->n_params), state (m->n_state; may be NULL when
 * n_state is 0) and momentum (m->n_params, or NULL to skip; zero-filled when
 * the checkpoint has none), and the metadata into *info (may be NULL).
 * Verifies the format, the Fletcher-32 checksum of every chunk and the
 * FNV-1a hash of each buffer. Returns ALIG_OK or ALIG_E_CKPT; on error the
 * output buffers may be partly written. When the file is readable but
 * belongs to another architecture (a tensor missing, extra or of another
 * shape), *mismatch (may be NULL) is set to 1 and the message names the
 * first such tensor with both shapes.
 */
int alig_ckpt_read_file(const char *path, const alig_model_t *m, float *params, float *state,
                        float *momentum, alig_ckpt_info_t *info, int *mismatch);

/*
 * [checkpoint] init = PATH: load only the parameters from a checkpoint or
 * from any HDF5 file with the same /params/<tensor> layout (float32 or
 * float64, e.g. written by h5py). Every model tensor must be present with
 * its shape and no other dataset may be under /params. m->params is left
 * unchanged on error. Not collective (each rank reads the file).
 */
int alig_ckpt_load_params(alig_model_t *m, const char *path);

/*
 * Start of alig_trainer_run (collective): create the checkpoint directory
 * and check it is writable, remove leftovers of interrupted saves (*.tmp),
 * then resume per [checkpoint] resume:
 *   auto   the checkpoint `latest` names; if it is unreadable or corrupt, a
 *          warning names it and the next older one is tried (nothing is
 *          deleted); no checkpoint at all: a fresh start;
 *   never  a fresh start; refused when the directory already holds
 *          checkpoints (they would be overwritten);
 *   PATH   that file, or `auto` inside that directory.
 * A checkpoint of another architecture, or one saved mid-epoch with another
 * data order (seed, global batch, training-set size), is refused. A
 * different number of ranks is accepted with a warning (elastic resume).
 * Rank 0 reads the file and broadcasts it. Logs on rank 0 to `log`.
 */
int alig_ckpt_begin(alig_trainer_t *t, FILE *log);

/*
 * Write a checkpoint of the current step atomically (collective; rank 0
 * writes), point `latest` at it and prune to [checkpoint] keep. `why` goes
 * into the log line ("every_steps", "end", "signal", ...), which also gives
 * the size and the time taken. A failure is ALIG_E_CKPT on every rank and
 * leaves the previous checkpoints and `latest` as they were.
 */
int alig_ckpt_save(alig_trainer_t *t, const char *why, FILE *log);

/* After each step: save when [checkpoint] every_steps or every_epochs says so. */
int alig_ckpt_after_step(alig_trainer_t *t, int epoch_done, FILE *log);

/* A stop signal was agreed: save (unless this step is saved) and return
 * ALIG_E_PREEMPTED, or ALIG_E_CKPT when the save failed. */
int alig_ckpt_stop(alig_trainer_t *t, FILE *log);

/* Training finished: the final checkpoint ([checkpoint] at_end) and a summary line. */
int alig_ckpt_end(alig_trainer_t *t, FILE *log);

/* Free the state from alig_ckpt_begin. NULL is fine. */
void alig_ckpt_free(alig_ckpt_t *c);

#endif /* ALIG_CKPT_H */
