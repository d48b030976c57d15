/*
 * main.c -- the alig-train command: parse arguments, load the config on
 * rank 0 and share it, train, exit with the documented status.
 */
#include "alig/blas.h"
#include "alig/comm.h"
#include "alig/config.h"
#include "alig/error.h"
#include "alig/train.h"

#include <hdf5.h>

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_[] =
    "usage: alig-train [options] CONFIG.ini\n"
    "       mpirun -np N alig-train [options] CONFIG.ini\n"
    "\n"
    "Train a neural network data-parallel over MPI ranks with the ALI-G optimizer.\n"
    "\n"
    "options:\n"
    "  --set SECTION.KEY=VALUE  override one config key (repeatable), e.g.\n"
    "                           --set optimizer.max_lr=0.05\n"
    "  --resume auto|never|PATH continue from the newest valid checkpoint in the run\n"
    "                           directory (auto), start fresh (never), or continue from\n"
    "                           the checkpoint file or directory PATH; same as\n"
    "                           --set checkpoint.resume=... (docs/checkpoint-format.md)\n"
    "  --print-config           print the effective config (every key) and exit\n"
    "  --help                   this text\n"
    "  --version                print the version and the BLAS kernels in use\n"
    "\n"
    "The config keys, their defaults and ranges are in docs/config.md;\n"
    "`alig-train --print-config /dev/null` prints every key with its default.\n"
    "\n"
    "exit status: 0 done, 1 internal/MPI error, 2 usage or config error, 3 data error,\n"
    "4 checkpoint error, 5 non-finite loss or gradient, 6 out of memory,\n"
    "75 stopped by a signal (requeue). See docs/errors.md.\n";

static volatile sig_atomic_t stop_signal_; /* the first stop signal's number; 0: none yet */

static void on_signal_(int sig)
{
    /* the first signal asks for a checkpoint at the next step boundary; a second
     * one (an impatient Ctrl-C) takes the signal's default action at once */
    if (stop_signal_) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    stop_signal_ = sig;
}

/* Catch sigs[0..n) with on_signal_. SA_RESTART: no EINTR in file I/O. */
static void catch_signals_(const int *sigs, int n)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal_;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < n; i++)
        sigaction(sigs[i], &sa, NULL);
}

/*
 * A stop signal during start-up (MPI_Init, reading the config and the data can take
 * seconds on a cluster, and a requeued job is often signalled again early) must not
 * kill the rank: the default list [checkpoint] signals = TERM, USR1, INT is caught
 * from the first line of main, and the step loop honours it at its first step. Once
 * the config is read, its own list replaces the default; a signal that came early but
 * is not on it takes its default action then, as it would have on arrival.
 */
static const int default_signals_[] = {SIGTERM, SIGUSR1, SIGINT};
#define N_DEFAULT_SIGNALS ((int)(sizeof default_signals_ / sizeof default_signals_[0]))

static void apply_signal_list_(const int *sigs, int n)
{
    for (int i = 0; i < N_DEFAULT_SIGNALS; i++)
        signal(default_signals_[i], SIG_DFL);
    catch_signals_(sigs, n);
    int early = stop_signal_, listed = 0;
    for (int i = 0; i < n; i++)
        listed |= sigs[i] == early;
    if (early && !listed)
        raise(early); /* its default action: it was not a stop signal after all */
}

typedef struct {
    const char *config;
    const char *sets[64];
    int n_sets;
    int print_config;
    const char *resume; /* --resume: applied after every --set */
} args_t;

/* The SECTION.KEY of a --set assignment without its spaces, which the config ignores
 * around the dot too ("run . seed" is run.seed); "" without '='. */
static void set_key_(const char *set, char *key, size_t n)
{
    const char *eq = strchr(set, '=');
    size_t k = 0;
    for (const char *c = set; eq && c < eq && k + 1 < n; c++)
        if (!isspace((unsigned char)*c))
            key[k++] = *c;
    key[k] = '\0';
}

/* Two --set of one key would leave the last silently winning: refuse it, naming
 * both. (--resume is different: it overrides checkpoint.resume on purpose, so
 * launch/run-until-done.sh can append --resume auto to the user's options.) */
static int check_repeated_sets_(const args_t *a, int root)
{
    char ki[256], kj[256];
    for (int i = 0; i < a->n_sets; i++) {
        set_key_(a->sets[i], ki, sizeof ki);
        if (!*ki)
            continue;
        for (int j = i + 1; j < a->n_sets; j++) {
            set_key_(a->sets[j], kj, sizeof kj);
            if (!strcmp(ki, kj)) {
                if (root)
                    fprintf(stderr, "alig-train: config error: --set %s given twice ('%s' and '%s'); give it once\n",
                            ki, a->sets[i], a->sets[j]);
                return ALIG_E_CONFIG;
            }
        }
    }
    return -1;
}

/* Returns -1 to continue, or an exit status. */
static int parse_args_(int argc, char **argv, args_t *a, int root)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            if (root)
                fputs(usage_, stdout);
            return 0;
        } else if (!strcmp(s, "--version")) {
            if (root) {
                char blas[256];
                alig_blas_describe(blas, sizeof blas);
                printf("alig-train %s\nblas: %s\n", ALIG_VERSION, blas);
            }
            return 0;
        } else if (!strcmp(s, "--print-config")) {
            a->print_config = 1;
        } else if (!strcmp(s, "--resume") || !strncmp(s, "--resume=", 9)) {
            const char *v = s[8] == '=' ? s + 9 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v || !*v) {
                if (root)
                    fprintf(stderr, "alig-train: config error: --resume needs auto, never or a checkpoint path\n");
                return ALIG_E_CONFIG;
            }
            a->resume = v;
        } else if (!strcmp(s, "--set") || !strncmp(s, "--set=", 6)) {
            const char *v = s[5] == '=' ? s + 6 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) {
                if (root)
                    fprintf(stderr, "alig-train: config error: --set needs SECTION.KEY=VALUE\n");
                return ALIG_E_CONFIG;
            }
            if (a->n_sets == (int)(sizeof a->sets / sizeof a->sets[0])) {
                if (root)
                    fprintf(stderr, "alig-train: config error: too many --set options (at most 64)\n");
                return ALIG_E_CONFIG;
            }
            a->sets[a->n_sets++] = v;
        } else if (s[0] == '-' && s[1]) {
            if (root)
                fprintf(stderr, "alig-train: config error: unknown option '%s'\n\n%s", s, usage_);
            return ALIG_E_CONFIG;
        } else if (a->config) {
            if (root)
                fprintf(stderr, "alig-train: config error: more than one config file ('%s', '%s'); give one\n", a->config, s);
            return ALIG_E_CONFIG;
        } else {
            a->config = s;
        }
    }
    if (!a->config) {
        if (root)
            fprintf(stderr, "alig-train: no config file given\n\n%s", usage_);
        return ALIG_E_CONFIG;
    }
    return check_repeated_sets_(a, root);
}

/* Rank 0 reads the file; every rank parses the same text. Collective. */
static int load_config_(alig_comm_t *comm, const args_t *a, alig_config_t *cfg)
{
    /* first: main frees cfg->text on every path, also when the file cannot be read
     * (an uninitialised pointer there crashed rank 1+ with a missing config file) */
    alig_config_defaults(cfg);
    char *text = NULL;
    long long len = 0;
    int rc = ALIG_OK;
    if (alig_comm_rank(comm) == 0) {
        rc = alig_config_read_file(a->config, &text);
        len = rc ? 0 : (long long)strlen(text);
    }
    rc = alig_comm_agree(comm, rc);
    if (rc)
        return rc;
    alig_comm_bcast(comm, &len, sizeof len, 0);
    if (alig_comm_rank(comm) != 0) {
        text = alig_malloc((size_t)len + 1, "config text");
        if (!text)
            alig_comm_abort(comm, ALIG_E_MEMORY);
        text[len] = '\0';
    }
    alig_comm_bcast(comm, text, (size_t)len, 0);

    alig_config_defaults(cfg);
    rc = alig_config_parse(cfg, text, a->config);
    free(text);
    snprintf(cfg->path, sizeof cfg->path, "%s", a->config);
    for (int i = 0; !rc && i < a->n_sets; i++)
        rc = alig_config_set(cfg, a->sets[i]);
    if (!rc && a->resume) {
        char set[ALIG_PATH_MAX + 32];
        snprintf(set, sizeof set, "checkpoint.resume=%s", a->resume);
        rc = alig_config_set(cfg, set);
    }
    if (!rc)
        rc = alig_config_validate(cfg, alig_comm_size(comm));
    /* every rank parsed the same text: rank 0 reports for all */
    return alig_comm_agree(comm, rc);
}

int main(int argc, char **argv)
{
    catch_signals_(default_signals_, N_DEFAULT_SIGNALS);
    /* OpenBLAS's kernels for this CPU: may execute this program again. The stop signals
     * stay blocked across that exec (a blocked signal waits; a caught one would take
     * its default action until the new image catches it), and are let in here. */
    sigset_t stops;
    sigemptyset(&stops);
    for (int i = 0; i < N_DEFAULT_SIGNALS; i++)
        sigaddset(&stops, default_signals_[i]);
    sigprocmask(SIG_BLOCK, &stops, NULL);
    alig_blas_choose_kernels(argv);
    sigprocmask(SIG_UNBLOCK, &stops, NULL);
    /* Issue #6: libhdf5 1.10 leaks internal free-list blocks when it meets corrupt
     * metadata (a checksum error while loading an object header), although every
     * handle we opened is closed (H5Fget_obj_count is 0 afterwards). Its atexit
     * handler then cannot shut the library down and prints "HDF5: infinite loop
     * closing library" after our own error line. Nothing is open at exit -- the
     * checkpoint writer works on an in-memory image, the readers close every file --
     * so skip that handler; the OS frees the memory. Must precede any HDF5 call. */
    H5dont_atexit();
    alig_comm_t *comm = alig_comm_init_mpi(&argc, &argv);
    if (!comm) {
        fprintf(stderr, "alig-train: MPI initialisation failed\n");
        return ALIG_E_INTERNAL;
    }
    /* again: in case MPI_Init installed handlers of its own */
    catch_signals_(default_signals_, N_DEFAULT_SIGNALS);
    if (getenv("ALIG_TEST_SIGNAL_AT_START")) /* test hook: a SIGTERM before the config is read */
        raise(SIGTERM);
    int root = alig_comm_rank(comm) == 0;
    args_t args;
    int rc = parse_args_(argc, argv, &args, root);
    if (rc >= 0) {
        alig_comm_finalize(comm);
        return rc;
    }

    alig_config_t cfg;
    rc = load_config_(comm, &args, &cfg);
    if (rc == ALIG_OK && args.print_config) {
        if (root)
            alig_config_write(stdout, &cfg);
    } else if (rc == ALIG_OK) {
        /* [checkpoint] signals (validated with the config): checkpoint at the
         * next step boundary and exit 75 */
        int sigs[ALIG_CONFIG_MAX_SIGNALS];
        int n_sigs = alig_config_signals(&cfg, sigs, ALIG_CONFIG_MAX_SIGNALS);
        apply_signal_list_(sigs, n_sigs < 0 ? 0 : n_sigs);
        /* a file-size limit (ulimit -f) then fails a checkpoint write with
         * EFBIG, an ALIG_E_CKPT error, instead of killing the rank */
        signal(SIGXFSZ, SIG_IGN);

        alig_trainer_t trainer;
        rc = alig_trainer_init(&trainer, &cfg, comm);
        if (rc == ALIG_OK) {
            trainer.stop_signal = &stop_signal_;
            rc = alig_trainer_run(&trainer, stdout);
            if (rc == ALIG_E_PREEMPTED && root)
                fprintf(stderr, "alig-train: stopped by a signal at step %lld; exit %d\n",
                        (long long)trainer.step, ALIG_E_PREEMPTED);
        }
        alig_trainer_free(&trainer);
    }
    alig_config_free(&cfg);
    alig_comm_finalize(comm);
    return rc;
}
