/*
 * alig/config.h -- the run configuration: an INI file parsed with inih.
 *
 * Every key is typed and range-checked. An unknown section or key, a value
 * of the wrong type or out of range, a duplicate key or a syntax error is
 * an ALIG_E_CONFIG error whose message names the file, the line, the
 * [section] key and what is allowed, e.g.
 *
 *   launch/x.ini:12: [optimizer] momentum = 1.5: expected a number in [0, 1)
 *
 * Keys may be overridden after the file with alig_config_set() (the
 * program's --set section.key=value option); errors there name
 * "--set" instead of file:line. The config remembers where each key got
 * its value (alig_config_origin), so the cross-key checks of
 * alig_config_validate, which run after every override, name the line of
 * the file or the --set that set the offending key.
 *
 * Every key, its type, default and range is documented in docs/config.md.
 */
#ifndef ALIG_CONFIG_H
#define ALIG_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#define ALIG_PATH_MAX 1024
#define ALIG_SPEC_MAX 2048
#define ALIG_MAX_THREADS 1024   /* largest [run] threads */
enum { ALIG_PARALLEL_AUTO, ALIG_PARALLEL_BLAS, ALIG_PARALLEL_BATCH }; /* [run] parallel */
enum { ALIG_REDUCE_AUTO, ALIG_REDUCE_MPI, ALIG_REDUCE_SHM };          /* [run] reduce */
#define ALIG_CONFIG_MAX_KEYS 96 /* room in alig_config_t.origin; config.c has fewer keys */

typedef struct {
    /* [run] */
    uint64_t seed;              /* seed = 42; any unsigned 64-bit integer */
    int epochs;                 /* epochs = 10; >= 1 */
    int64_t max_steps;          /* max_steps = 0; >= 0, stop after this many global steps (0: no limit) */
    char out_dir[ALIG_PATH_MAX];/* out_dir = runs/default; run directory (created) */
    int threads;                /* threads = 0; 0 to ALIG_MAX_THREADS, BLAS threads per rank (0: auto from affinity) */
    int log_every;              /* log_every = 0; >= 0, print a step line every N steps (0: never) */
    int check_every;            /* check_every = 100; >= 0, compare a parameter checksum across ranks every N steps (0: never) */
    int parallel;               /* parallel = auto; one of: auto (0), blas (1: BLAS threads share each GEMM), batch (2: each thread takes a part of the rank's slice); see alig/train.h */
    int overlap;                /* overlap = true; boolean: reduce gradient buckets while backward runs */
    int reduce;                 /* reduce = auto; one of: auto (0), mpi (1: MPI_Iallreduce of buckets), shm (2: through node shared memory); see alig/comm.h */
    double bucket_mb;           /* bucket_mb = 4; number in [0, 1024], MiB per gradient bucket (0: one fused reduction) */
    int profile;                /* profile = false; boolean: print the time split of a step (data, forward, backward, allreduce, optimizer) each epoch */
    int metrics_every;          /* metrics_every = 10; >= 0, a steps.csv row every N steps (0: none) */
    int skip_nonfinite;         /* nonfinite = stop; one of: stop (0: exit 5 naming the step), skip (1: skip the step, count it) */

    /* [data] */
    char format[16];            /* format = idx; one of: idx, cifar10, cifar100, hdf5 (alig/data.h, docs/datasets.md) */
    char train_images[ALIG_PATH_MAX]; /* default /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz */
    char train_labels[ALIG_PATH_MAX]; /* default .../train-labels-idx1-ubyte.gz */
    char test_images[ALIG_PATH_MAX];  /* default .../t10k-images-idx3-ubyte.gz; "" or none: no test set */
    char test_labels[ALIG_PATH_MAX];  /* default .../t10k-labels-idx1-ubyte.gz */
    int batch_size;             /* batch_size = 128; >= 1, the GLOBAL batch size, split over ranks */
    int drop_last;              /* drop_last = false; boolean: drop the final partial batch of an epoch */
    int64_t train_limit;        /* train_limit = 0; >= 0, use only the first N training samples (0: all); more than the set has is an error when it is read */
    int64_t test_limit;         /* test_limit = 0; >= 0, same for the test set */
    char normalize[16];         /* normalize = standard; one of: none (x/255), standard (per-channel mean/std of the training set), given (mean, std below) */
    char mean[256];             /* mean = none; "" here; per-channel means for normalize = given, e.g. 0.4914, 0.4822, 0.4465 */
    char std[256];              /* std = none; "" here; per-channel standard deviations for normalize = given */
    char hdf5_images[128];      /* hdf5_images = images; HDF5 dataset holding the images */
    char hdf5_labels[128];      /* hdf5_labels = labels; HDF5 dataset holding the labels */
    char hdf5_test_images[128]; /* hdf5_test_images = none; "" here: same name as hdf5_images */
    char hdf5_test_labels[128]; /* hdf5_test_labels = none; "" here: same name as hdf5_labels */
    char hdf5_layout[8];        /* hdf5_layout = nchw; one of: nchw, nhwc (4-D image datasets) */
    int augment_crop;           /* augment_crop = 0; >= 0, random-crop padding in pixels for training samples (0: off); below the image's sides (checked when the data is read) */
    int augment_flip;           /* augment_flip = false; boolean: random horizontal flips of training samples */

    /* [model] */
    char layers[ALIG_SPEC_MAX]; /* layers = dense 1024, relu, dense 1024, relu, dense 10 (see docs/config.md) */
    char init[16];              /* init = auto; one of: auto (He before ReLU, Glorot otherwise), he, glorot */
    char preset[64];            /* preset = none; "" here; mlp, cnn or wrn-D-K[-P] instead of layers (alig_model_preset) */

    /* [optimizer] */
    char optimizer[16];         /* name = alig; one of: alig */
    double max_lr;              /* max_lr = none; "none" (NAN here: no clipping) or a number > 0 */
    double delta;               /* delta = 1e-5; number > 0 */
    double momentum;            /* momentum = 0.9; number in [0, 1) */
    int adjusted_momentum;      /* momentum_type = standard; one of: standard (0), adjusted (1) */
    double max_norm;            /* max_norm = none; "none" (INFINITY here: no projection) or a number > 0 */
    /* baselines (name = sgd | adam | adamw); ALI-G ignores these */
    double lr;                  /* lr = 0.1; number > 0, base learning rate */
    double weight_decay;        /* weight_decay = 0; number >= 0 (SGD/Adam: L2 in the gradient; AdamW: decoupled) */
    int nesterov;               /* nesterov = false; SGD: Nesterov instead of heavy-ball momentum */
    double beta1, beta2;        /* beta1 = 0.9, beta2 = 0.999; numbers in [0, 1) (Adam/AdamW) */
    double eps;                 /* eps = 1e-8; number > 0 (Adam/AdamW) */
    char schedule[16];          /* schedule = none; one of: none, step (x decay at each milestone epoch), cosine */
    char milestones[256];       /* milestones = none; increasing epochs, e.g. "30, 60, 90" */
    double decay;               /* decay = 0.1; number in (0, 1], factor per milestone */

    /* [eval] */
    int eval_every;             /* every = 1; >= 0, evaluate on the test set every N epochs (0: never) */
    int eval_batch_size;        /* batch_size = 1000; >= 1, global evaluation batch */

    /* [checkpoint] (alig/ckpt.h, docs/checkpoint-format.md) */
    char ckpt_dir[ALIG_PATH_MAX];    /* dir = .; checkpoint directory, relative to out_dir unless absolute */
    int ckpt_every_steps;            /* every_steps = 0; >= 0, save every N global steps (0: never) */
    int ckpt_every_epochs;           /* every_epochs = 1; >= 0, save every N epochs (0: never) */
    int ckpt_keep;                   /* keep = 3; >= 0, newest checkpoints kept (0: all) */
    int ckpt_at_end;                 /* at_end = true; boolean: save when training ends */
    char ckpt_resume[ALIG_PATH_MAX]; /* resume = auto; auto, never, or a checkpoint file or directory */
    char ckpt_init[ALIG_PATH_MAX];   /* init = none; "" here: HDF5 file to take the initial parameters from */
    char ckpt_signals[64];           /* signals = TERM, USR1; signals that checkpoint and stop (exit 75), or none */

    /* provenance */
    char path[ALIG_PATH_MAX];   /* file the config came from ("" if from a string) */
    char source[ALIG_PATH_MAX]; /* name the text was last parsed under (alig_config_parse), for messages */
    char *text;                 /* owned copy of the file text plus one "; --set ..." line per override */
    int origin[ALIG_CONFIG_MAX_KEYS]; /* per key, in the order of docs/config.md: the line of the
                                       * parsed text that set it (> 0), ALIG_ORIGIN_SET for --set,
                                       * 0 for the default (read it with alig_config_origin) */
} alig_config_t;

#define ALIG_ORIGIN_SET (-1)

/* Fill every field with its documented default. text = NULL. */
void alig_config_defaults(alig_config_t *cfg);

/*
 * Parse INI text (the contents of `name`, used in error messages) into
 * cfg, which must hold defaults or an earlier parse. Keeps a copy of the
 * text in cfg->text. Returns ALIG_OK or ALIG_E_CONFIG.
 */
int alig_config_parse(alig_config_t *cfg, const char *text, const char *name);

/*
 * Read a whole file into a NUL-terminated malloc'd string (*out, caller
 * frees). Returns ALIG_OK, or ALIG_E_CONFIG naming the path and the OS
 * error when it cannot be read.
 */
int alig_config_read_file(const char *path, char **out);

/* defaults + read + parse. */
int alig_config_load(alig_config_t *cfg, const char *path);

/*
 * Apply one override "section.key=value" with the same checks as the
 * file. Appends "; --set section.key=value" to cfg->text.
 */
int alig_config_set(alig_config_t *cfg, const char *assignment);

/*
 * Cross-key checks that need the world size (e.g. batch_size >= world
 * size), the [checkpoint] signals and [optimizer] milestones lists, the
 * [model] preset name and the grammar of [model] layers (the checks of the
 * layer list against the data's shape need the data and run when the model
 * is built). Call after all parsing. Returns ALIG_OK or ALIG_E_CONFIG; the
 * message starts with the origin of the offending key(s), e.g.
 * "x.ini:12: " or "--set data.batch_size: ".
 */
int alig_config_validate(const alig_config_t *cfg, int world_size);

/*
 * Where "section.key" got its value, for messages: "x.ini:12" (line 12 of
 * the config file; "line 12" when parsed from a string), "--set
 * section.key" (an override), or for a key left at its default the config
 * file's path ("" when there is none). Writes into buf (size >= 1) and
 * returns it; an unknown key gives the path too.
 */
const char *alig_config_origin(const alig_config_t *cfg, const char *key, char *buf, size_t size);

#define ALIG_CONFIG_MAX_MILESTONES 16

/*
 * Parse [optimizer] milestones into out (ALIG_CONFIG_MAX_MILESTONES ints).
 * Returns their number (0 when unset) or -1 with an ALIG_E_CONFIG message.
 */
int alig_config_milestones(const alig_config_t *cfg, int *out);

#define ALIG_CONFIG_MAX_SIGNALS 8

/*
 * Parse [checkpoint] signals, e.g. "TERM, USR1" (names with or without SIG,
 * any case, separated by commas or spaces; "none" alone for none) into
 * sigs[0..max). Accepted: TERM, USR1, USR2, INT, HUP, XCPU. Returns their
 * number (0 for none) or -1 with an ALIG_E_CONFIG message naming the entry.
 */
int alig_config_signals(const alig_config_t *cfg, int *sigs, int max);

/* Print every key with its current value as a valid INI file. */
void alig_config_write(FILE *f, const alig_config_t *cfg);

/* Free cfg->text. */
void alig_config_free(alig_config_t *cfg);

#endif /* ALIG_CONFIG_H */
