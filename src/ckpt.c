/*
 * ckpt.c -- checkpoints for a run (alig/ckpt.h): the atomic save protocol,
 * `latest`, pruning, choosing and validating the checkpoint to resume from,
 * the trainer hooks (periodic saves, stop signal, end).
 * The file format itself is src/ckpt_h5.c; both are documented in
 * docs/checkpoint-format.md.
 *
 * Sections (greppable): @@DIR the atomic save protocol, `latest`, pruning
 * and listing, @@RUN the trainer hooks (resume, periodic saves, stop, end).
 *
 * Only rank 0 does file I/O in the collective functions; every rank holds
 * the same state, so rank 0 writes the run's checkpoint and, on resume,
 * reads it and broadcasts it. Each collective ends in alig_comm_agree so a
 * failure on rank 0 stops every rank at the same point with the same status.
 */
#include "alig/ckpt.h"
#include "alig/metrics.h"
#include "ckpt-impl.h" /* defines: alig_ckpt_config_text_ */

#include "alig/comm.h"
#include "alig/error.h"

#include <cblas.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Longest "<dir>/ckpt-<step>.h5.tmp" */
#define CK_PATH_MAX (ALIG_PATH_MAX + 64)

struct alig_ckpt {
    char dir[ALIG_PATH_MAX]; /* resolved checkpoint directory */
    int lock_fd;             /* rank 0: its lock when it is not the run directory (0: none) */
    int64_t saved_step;      /* step whose state is on disk (saved or resumed from); -1: none */
    int n_saved;             /* checkpoints written by this process */
    double save_seconds;     /* wall time of those saves, as every rank waited for them */
    double t_begin;          /* alig_time() at alig_ckpt_begin */
};

/* ------------------------------------------------------------------------ */
/* @@DIR the atomic save protocol, `latest`, pruning, listing */

/* fsync a file or directory by path. */
static int fsync_path_(const char *path, int is_dir)
{
    int fd = open(path, O_RDONLY | (is_dir ? O_DIRECTORY : 0));
    if (fd < 0)
        return alig_fail(ALIG_E_CKPT, "%s: cannot open to fsync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0)
        return alig_fail(ALIG_E_CKPT, "%s: fsync failed: %s", path, strerror(e));
    return ALIG_OK;
}

static void ckpt_path_(char *buf, size_t size, const char *dir, int64_t step)
{
    snprintf(buf, size, "%s/ckpt-%08lld.h5", dir, (long long)step);
}

/* "ckpt-<digits>.h5" exactly (suffix = "") or with a suffix such as ".tmp". */
static int parse_name_(const char *name, const char *suffix, int64_t *step)
{
    if (strncmp(name, "ckpt-", 5) != 0 || !isdigit((unsigned char)name[5]))
        return 0;
    char *end;
    errno = 0;
    long long s = strtoll(name + 5, &end, 10);
    if (errno || s < 0 || strncmp(end, ".h5", 3) != 0 || strcmp(end + 3, suffix) != 0)
        return 0;
    *step = s;
    return 1;
}

/*
 * One ckpt-<step>.h5 file of a directory: the step read numerically from the
 * name, and the name as found. We write ckpt-00000008.h5, but a file copied or
 * renamed by hand to ckpt-8.h5 is the same step 8 and is opened by its own name
 * (issue #6: the name used to be rebuilt from the step, so such a file was
 * "missing", never pruned, and skipped by resume = auto).
 */
typedef struct {
    int64_t step;
    char name[256];
} ck_file_t;

/* The name we write for `step`? (Of two files of one step, that one is tried first.) */
static int canonical_(const ck_file_t *f)
{
    char want[64];
    snprintf(want, sizeof want, "ckpt-%08lld.h5", (long long)f->step);
    return strcmp(f->name, want) == 0;
}

/* Ascending by step; within a step the canonical name last, so newest-first loops try it first. */
static int cmp_file_(const void *a, const void *b)
{
    const ck_file_t *x = a, *y = b;
    if (x->step != y->step)
        return (x->step > y->step) - (x->step < y->step);
    int cx = canonical_(x), cy = canonical_(y);
    if (cx != cy)
        return cx - cy;
    return strcmp(y->name, x->name);
}

/* The ckpt-<step>.h5 files in dir, in cmp_file_ order (malloc'd; *n may be 0). */
static int list_ckpts_(const char *dir, ck_file_t **files, int *n)
{
    *files = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT
                   ? ALIG_OK
                   : alig_fail(ALIG_E_CKPT, "%s: cannot list: %s", dir, strerror(errno));
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s;
        if (!parse_name_(e->d_name, "", &s) || strlen(e->d_name) >= sizeof(*files)->name)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            ck_file_t *p = realloc(*files, sizeof(ck_file_t) * (size_t)cap);
            if (!p) {
                closedir(d);
                free(*files);
                *files = NULL;
                *n = 0;
                return alig_fail(ALIG_E_MEMORY, "cannot list %s", dir);
            }
            *files = p;
        }
        (*files)[*n].step = s;
        snprintf((*files)[*n].name, sizeof(*files)->name, "%s", e->d_name);
        (*n)++;
    }
    closedir(d);
    if (*n)
        qsort(*files, (size_t)*n, sizeof(ck_file_t), cmp_file_);
    return ALIG_OK;
}


/* Create the directory, prove it takes a new file, and delete leftovers of
 * interrupted saves (a *.tmp is never complete: completion is the rename). */
static int prepare_dir_(const char *dir)
{
    int rc = alig_mkdirs(dir); /* alig/metrics.h: mkdir -p, ALIG_E_CKPT naming the directory */
    if (rc)
        return rc;
    char probe[CK_PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/.alig-write-test-%d", dir, (int)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return alig_fail(ALIG_E_CKPT, "checkpoint directory %s is not writable: %s", dir,
                         strerror(errno));
    close(fd);
    unlink(probe);
    DIR *d = opendir(dir);
    if (!d)
        return alig_fail(ALIG_E_CKPT, "%s: cannot list: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s;
        if (parse_name_(e->d_name, ".tmp", &s) || strcmp(e->d_name, "latest.tmp") == 0) {
            char path[CK_PATH_MAX + 300];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
    return ALIG_OK;
}

/* Point `latest` at ckpt-<step>.h5: write latest.tmp, fsync, rename, fsync the directory. */
static int write_latest_(const char *dir, int64_t step)
{
    char tmp[CK_PATH_MAX], dst[CK_PATH_MAX], line[64];
    snprintf(tmp, sizeof tmp, "%s/latest.tmp", dir);
    snprintf(dst, sizeof dst, "%s/latest", dir);
    int len = snprintf(line, sizeof line, "ckpt-%08lld.h5\n", (long long)step);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return alig_fail(ALIG_E_CKPT, "%s: cannot create: %s", tmp, strerror(errno));
    int ok = write(fd, line, (size_t)len) == len;
    int e = errno;
    if (ok && fsync(fd) != 0) {
        ok = 0;
        e = errno;
    }
    if (close(fd) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (!ok) {
        unlink(tmp);
        return alig_fail(ALIG_E_CKPT, "%s: cannot write: %s", tmp, strerror(e ? e : EIO));
    }
    if (rename(tmp, dst) != 0) {
        e = errno;
        unlink(tmp);
        return alig_fail(ALIG_E_CKPT, "cannot rename %s to %s: %s", tmp, dst, strerror(e));
    }
    return fsync_path_(dir, 1);
}

/* The step `latest` names: 1 found, 0 no `latest`, -1 unreadable or not a checkpoint name. */
static int read_latest_(const char *dir, int64_t *step)
{
    char path[CK_PATH_MAX], line[128] = "";
    snprintf(path, sizeof path, "%s/latest", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    return ok && parse_name_(line, "", step) ? 1 : -1;
}

/* Delete checkpoints older than `step` beyond the newest `keep` (counting
 * ckpt-<step> itself). Newer files (an abandoned continuation after a
 * resume from an older checkpoint) are never touched. Failures only warn. */
static void prune_(const char *dir, int64_t step, int keep)
{
    if (keep <= 0)
        return;
    ck_file_t *files;
    int n;
    if (list_ckpts_(dir, &files, &n)) {
        fprintf(stderr, "alig-train: warning: not pruning old checkpoints: %s\n",
                alig_error_message());
        return;
    }
    int kept = 1; /* ckpt-<step> */
    for (int i = n - 1; i >= 0; i--) {
        if (files[i].step >= step)
            continue;
        if (kept < keep) {
            kept++;
            continue;
        }
        char path[CK_PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        if (unlink(path) != 0 && errno != ENOENT)
            fprintf(stderr, "alig-train: warning: cannot delete old checkpoint %s: %s\n", path,
                    strerror(errno));
    }
    free(files);
}

/* Rank 0: the whole protocol. On failure the temp file is removed and the
 * previous checkpoints and `latest` are untouched. */
static int save_atomic_(const alig_ckpt_t *c, const alig_trainer_t *t, int64_t *bytes, char *final,
                        size_t final_size)
{
    char tmp[CK_PATH_MAX + 8];
    ckpt_path_(final, final_size, c->dir, t->step);
    snprintf(tmp, sizeof tmp, "%.*s.tmp", (int)CK_PATH_MAX, final);
    int rc = alig_ckpt_write_file(tmp, t);
    if (rc) {
        unlink(tmp);
        return rc;
    }
    struct stat st;
    *bytes = stat(tmp, &st) == 0 ? (int64_t)st.st_size : 0;
    if (rename(tmp, final) != 0) {
        int e = errno;
        unlink(tmp);
        return alig_fail(ALIG_E_CKPT, "cannot rename %s to %s: %s", tmp, final, strerror(e));
    }
    rc = fsync_path_(c->dir, 1);
    if (!rc)
        rc = write_latest_(c->dir, t->step);
    if (!rc)
        prune_(c->dir, t->step, t->cfg->ckpt_keep);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* @@RUN the trainer hooks */

void alig_ckpt_free(alig_ckpt_t *c)
{
    if (c && c->lock_fd > 0)
        close(c->lock_fd);
    free(c);
}

int alig_lock_dir(const char *dir, const char *role, const char *key, int *fd)
{
    char path[ALIG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/.alig-train.lock", dir);
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0)
        return alig_fail(ALIG_E_CKPT, "%s: cannot create the %s lock: %s", path, role,
                         strerror(errno));
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(f);
        if (e == EWOULDBLOCK)
            return alig_fail(ALIG_E_CKPT,
                             "%s: another alig-train job is using this %s (it holds %s); give "
                             "this job its own %s",
                             dir, role, path, key);
        return alig_fail(ALIG_E_CKPT, "%s: cannot lock: %s", path, strerror(e));
    }
    *fd = f;
    return ALIG_OK;
}

/* Do paths a and b name one directory? */
static int same_dir_(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static void warn_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn_(const char *fmt, ...)
{
    /* one fprintf, so one write: mpirun does not interleave other output */
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "alig-train: warning: %s\n", msg);
    fflush(stderr);
}

/* Rank 0: checks a readable checkpoint against this run beyond the tensor
 * shapes. Refuses (mismatch) a mid-epoch checkpoint whose data order this
 * run cannot continue; the rest are warnings, printed once accepted. */
static int check_data_order_(const alig_trainer_t *t, const char *path,
                             const alig_ckpt_info_t *info, int *mismatch)
{
    const alig_config_t *cfg = t->cfg;
    int same = info->seed == cfg->seed && info->batch_size == cfg->batch_size &&
               info->train_samples == t->train.n && info->batches_per_epoch == t->batches_per_epoch;
    if (same || info->batch == 0)
        return ALIG_OK;
    *mismatch = 1;
    return alig_fail(ALIG_E_CKPT,
                     "%s: saved in the middle of an epoch (after batch %lld of %lld) with seed "
                     "%" PRIu64 ", [data] batch_size %d and %lld training samples; this run has "
                     "seed %" PRIu64 ", batch_size %d, %lld samples and drop_last = %s (%lld "
                     "batches per epoch): the data order cannot continue. Restore those "
                     "settings, or resume from a checkpoint taken at the end of an epoch",
                     path, (long long)info->batch, (long long)info->batches_per_epoch, info->seed,
                     info->batch_size, (long long)info->train_samples, cfg->seed, cfg->batch_size,
                     (long long)t->train.n, cfg->drop_last ? "true" : "false",
                     (long long)t->batches_per_epoch);
}

/* Keys whose change on resume is expected and not worth a warning. */
static int diff_ignored_(const char *section, const char *key)
{
    static const char *const run_keys[] = {"epochs",    "max_steps",   "out_dir",  "threads",
                                           "parallel",  "log_every",   "check_every", NULL};
    if (!strcmp(section, "checkpoint") || !strcmp(section, "eval"))
        return 1;
    if (!strcmp(section, "run"))
        for (int i = 0; run_keys[i]; i++)
            if (!strcmp(key, run_keys[i]))
                return 1;
    return 0;
}

/* Find "key = value" of [section] in an alig_config_write text. */
static const char *find_value_(const char *text, const char *section, const char *key, size_t *len)
{
    char head[80];
    snprintf(head, sizeof head, "\n[%s]\n", section);
    const char *p = strstr(text, head);
    if (!p)
        return NULL;
    p += strlen(head);
    size_t klen = strlen(key);
    while (*p && *p != '[') {
        size_t line = strcspn(p, "\n");
        if (line > klen && !strncmp(p, key, klen) && (p[klen] == ' ' || p[klen] == '=')) {
            const char *v = p + klen;
            while (*v == ' ' || *v == '=')
                v++;
            *len = (size_t)(p + line - v);
            return v;
        }
        p += line + (p[line] == '\n');
    }
    return NULL;
}

/* Warn, key by key, where the config in effect differs from the checkpoint's. */
static void diff_config_(const char *now, const char *then, const char *path)
{
    char section[64] = "";
    size_t slen = 0;
    const char *sched = find_value_(now, "optimizer", "schedule", &slen);
    int cosine = sched && slen == 6 && !memcmp(sched, "cosine", 6);
    for (const char *p = now; *p;) {
        size_t line = strcspn(p, "\n");
        if (*p == '[' && line < sizeof section) {
            snprintf(section, sizeof section, "%.*s", (int)(line - 2), p + 1);
        } else if (*p != ';' && line > 0 && *section) {
            size_t klen = strcspn(p, " =");
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)(klen < 63 ? klen : 63), p);
            size_t nlen = 0, tlen = 0;
            const char *nv = find_value_(now, section, key, &nlen);
            const char *tv = find_value_(then, section, key, &tlen);
            int differs = nv && tv && (nlen != tlen || memcmp(nv, tv, nlen));
            if (differs && cosine && !strcmp(section, "run") && !strcmp(key, "epochs"))
                warn_("[run] epochs = %.*s, but %s was written with %.*s: the cosine schedule "
                      "spans the run's epochs, so from here on the learning rate follows the "
                      "new length, not that of the run the checkpoint came from",
                      (int)nlen, nv, path, (int)tlen, tv);
            else if (differs && !strcmp(section, "run") && !strcmp(key, "reduce"))
                warn_("[run] reduce = %.*s, but %s was written with %.*s: if the reduction "
                      "differs (auto takes shm on one node), gradient sums over more than 2 "
                      "ranks are added in another order, so the run matches an uninterrupted "
                      "one only to floating-point rounding",
                      (int)nlen, nv, path, (int)tlen, tv);
            else if (differs && !diff_ignored_(section, key))
                warn_("[%s] %s = %.*s, but %s was written with %.*s", section, key, (int)nlen, nv,
                      path, (int)tlen, tv);
        }
        p += line + (p[line] == '\n');
    }
}

/* Rank 0: read one candidate into the scratch buffers and check it fits. */
static int try_read_(const alig_trainer_t *t, const char *path, float *p, float *s, float *v,
                     alig_ckpt_info_t *info, int *mismatch)
{
    const alig_model_t *m = &t->model;
    int rc = alig_ckpt_read_file(path, m, p, s, v, info, mismatch);
    if (!rc)
        rc = check_data_order_(t, path, info, mismatch);
    if (rc)
        alig_ckpt_info_free(info);
    return rc;
}

/* Rank 0, resume = auto in `dir`: the checkpoint `latest` names, else older
 * ones newest first. chosen[0] == '\0' on return: nothing to resume. */
static int search_dir_(const alig_trainer_t *t, const char *dir, int explicit_dir, float *p,
                       float *s, float *v, alig_ckpt_info_t *info, char *chosen, size_t size)
{
    chosen[0] = '\0';
    ck_file_t *files;
    int n;
    int rc = list_ckpts_(dir, &files, &n);
    if (rc)
        return rc;
    int64_t latest = -1;
    int lr = read_latest_(dir, &latest);
    int64_t limit = INT64_MAX; /* consider steps <= limit */
    if (lr == 1) {
        int present = 0;
        for (int i = 0; i < n; i++)
            present |= files[i].step == latest;
        if (!present)
            warn_("%s/latest names ckpt-%08lld.h5, which does not exist; looking for an older "
                  "checkpoint",
                  dir, (long long)latest);
        limit = latest;
        for (int i = 0; i < n; i++) /* each of them (the first only was named) */
            if (files[i].step > latest)
                warn_("ignoring %s/%s: newer than what %s/latest names (an interrupted save, or "
                      "the abandoned continuation of a resume from an older checkpoint)",
                      dir, files[i].name, dir);
    } else if (lr < 0) {
        warn_("%s/latest is unreadable or does not name a checkpoint; taking the newest valid "
              "ckpt-<step>.h5",
              dir);
    }
    int tried = 0;
    for (int i = n - 1; i >= 0 && !chosen[0]; i--) {
        if (files[i].step > limit)
            continue;
        char path[CK_PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        int mismatch = 0;
        tried++;
        rc = try_read_(t, path, p, s, v, info, &mismatch);
        if (rc == ALIG_OK) {
            snprintf(chosen, size, "%s", path);
            if (info->step != files[i].step)
                warn_("%s holds the state after step %lld, not %lld as its name says (renamed "
                      "by hand?); resuming from step %lld",
                      path, (long long)info->step, (long long)files[i].step,
                      (long long)info->step);
        } else if (mismatch || rc == ALIG_E_MEMORY) {
            free(files);
            return rc; /* another architecture or data order: older ones would be too */
        } else {
            warn_("%s; falling back to an older checkpoint (nothing is deleted)",
                  alig_error_message());
        }
    }
    free(files);
    if (chosen[0])
        return ALIG_OK;
    if (tried)
        return alig_fail(ALIG_E_CKPT,
                         "no valid checkpoint in %s: all %d are unreadable (see the warnings "
                         "above); move them away to start over, or name one with --resume PATH",
                         dir, tried);
    if (n > 0) /* only checkpoints newer than what `latest` names */
        return alig_fail(ALIG_E_CKPT,
                         "%s/latest names ckpt-%08lld.h5, but the only checkpoints in %s are newer "
                         "than that; name one with --resume PATH, or remove %s/latest",
                         dir, (long long)latest, dir, dir);
    if (explicit_dir)
        return alig_fail(ALIG_E_CKPT, "[checkpoint] resume = %s: no checkpoint in that directory",
                         dir);
    return ALIG_OK;
}

/*
 * resume = auto found nothing in a [checkpoint] dir other than the run directory: if
 * the run directory holds checkpoints, they are an earlier run's, most likely written
 * before the key was changed, and a fresh start would write its metrics over that
 * run's (found by a new-user trial: steps.csv shrank from 21 rows to 11, with no word).
 * Refused, naming both directories.
 */
static int check_out_dir_(const alig_trainer_t *t, const alig_ckpt_t *c)
{
    const char *out = t->cfg->out_dir;
    if (same_dir_(c->dir, out))
        return ALIG_OK;
    ck_file_t *files;
    int n;
    if (list_ckpts_(out, &files, &n)) /* an unreadable run directory fails later, by name */
        return ALIG_OK;
    char newest[256] = "";
    if (n)
        snprintf(newest, sizeof newest, "%s", files[n - 1].name);
    free(files);
    if (!n)
        return ALIG_OK;
    char origin[ALIG_PATH_MAX + 64];
    alig_config_origin(t->cfg, "checkpoint.dir", origin, sizeof origin);
    return alig_fail(ALIG_E_CKPT,
                     "%s%s[checkpoint] dir %s holds no checkpoint, but the run directory %s holds "
                     "%d (newest %s) of an earlier run, whose metrics a fresh start would "
                     "overwrite: to continue that run, give [checkpoint] dir its earlier value "
                     "(or --resume %s/%s); to start another, use another [run] out_dir",
                     origin, origin[0] ? ": " : "", c->dir, out, n, newest, out, newest);
}

/* Rank 0: pick and read the checkpoint to resume from (chosen "" = fresh start). */
static int choose_(const alig_trainer_t *t, const alig_ckpt_t *c, float *p, float *s, float *v,
                   alig_ckpt_info_t *info, char *chosen, size_t size)
{
    const char *mode = t->cfg->ckpt_resume;
    chosen[0] = '\0';
    if (!strcmp(mode, "never")) {
        ck_file_t *files;
        int n;
        int rc = list_ckpts_(c->dir, &files, &n);
        if (rc)
            return rc;
        char newest[256] = "";
        if (n)
            snprintf(newest, sizeof newest, "%s", files[n - 1].name);
        free(files);
        if (n)
            return alig_fail(ALIG_E_CKPT,
                             "[checkpoint] resume = never, but %s already holds %d checkpoint(s) "
                             "(newest %s) that a fresh run would overwrite: resume "
                             "with --resume auto, write elsewhere ([run] out_dir or "
                             "[checkpoint] dir), or move them away",
                             c->dir, n, newest);
        return ALIG_OK;
    }
    if (!strcmp(mode, "auto")) {
        int rc = search_dir_(t, c->dir, 0, p, s, v, info, chosen, size);
        return rc || chosen[0] ? rc : check_out_dir_(t, c);
    }
    struct stat st;
    if (stat(mode, &st) == 0 && S_ISDIR(st.st_mode))
        return search_dir_(t, mode, 1, p, s, v, info, chosen, size);
    int mismatch = 0;
    int rc = try_read_(t, mode, p, s, v, info, &mismatch);
    if (!rc)
        snprintf(chosen, size, "%s", mode);
    return rc;
}

/* What every rank needs to know about the resume, broadcast from rank 0. */
typedef struct {
    int32_t found, has_momentum;
    int64_t step, epoch, batch;
    int64_t adam_steps;
    alig_epoch_stats_t stats;
} resume_wire_t;

/*
 * Another optimizer cannot take over the checkpoint's state: ALI-G's momentum
 * read as Adam's first moment, with a zero second moment, made a resumed run's
 * loss jump from 0.55 to 3e9 in ten steps (found by a new-user trial). Refused,
 * before anything is written.
 */
static int check_optimizer_(const alig_config_t *cfg, const alig_ckpt_info_t *info,
                            const char *path)
{
    size_t len = 0;
    const char *then = info->config_effective
                           ? find_value_(info->config_effective, "optimizer", "name", &len)
                           : NULL;
    if (!then || (len == strlen(cfg->optimizer) && !memcmp(then, cfg->optimizer, len)))
        return ALIG_OK;
    return alig_fail(ALIG_E_CKPT,
                     "%s was written with [optimizer] name = %.*s, this run has %s: the "
                     "optimizer's state (momentum, Adam's moments) does not carry over to "
                     "another optimizer. Resume with name = %.*s, or start a new run (another "
                     "[run] out_dir) from its parameters with [checkpoint] init = %s",
                     path, (int)len, then, cfg->optimizer, (int)len, then, path);
}

static int resume_(alig_trainer_t *t, FILE *log)
{
    alig_ckpt_t *c = t->ckpt;
    alig_model_t *m = &t->model;
    int root = alig_comm_rank(t->comm) == 0;
    float *p = NULL, *s = NULL, *v = NULL;
    alig_ckpt_info_t info;
    memset(&info, 0, sizeof info);
    char chosen[CK_PATH_MAX + 256] = "";
    int rc = ALIG_OK;
    if (root) {
        p = alig_malloc(sizeof(float) * (size_t)m->n_params, "checkpoint parameters");
        s = alig_malloc(sizeof(float) * (size_t)m->n_state, "checkpoint state");
        v = t->optim.v ? alig_malloc(sizeof(float) * (size_t)m->n_params, "checkpoint momentum")
                       : NULL;
        if (!p || !s || (t->optim.v && !v))
            rc = ALIG_E_MEMORY;
        else
            rc = choose_(t, c, p, s, v, &info, chosen, sizeof chosen);
        if (!rc && chosen[0])
            rc = check_optimizer_(t->cfg, &info, chosen);
    }
    rc = alig_comm_agree(t->comm, rc);
    resume_wire_t w;
    memset(&w, 0, sizeof w);
    if (!rc && root && chosen[0]) {
        w.found = 1;
        w.has_momentum = info.has_momentum;
        w.step = info.step;
        w.epoch = info.epoch;
        w.batch = info.batch;
        w.stats = info.stats;
    }
    if (!rc) { /* Adam: second moment and step count (agreed separately: rc is global here) */
        int rc_adam = ALIG_OK;
        if (root && w.found && t->optim.s)
            rc_adam = alig_ckpt_read_second_moment(chosen, m, t->optim.s, &w.adam_steps);
        rc = alig_comm_agree(t->comm, rc_adam);
    }
    if (!rc)
        alig_comm_bcast(t->comm, &w, sizeof w, 0);
    if (!rc && w.found && t->optim.s) {
        alig_comm_bcast(t->comm, t->optim.s, sizeof(float) * (size_t)m->n_params, 0);
        t->optim.t = w.adam_steps;
    }
    if (!rc && w.found) {
        /* rank 0 sends from its scratch buffers, the others receive in place */
        alig_comm_bcast(t->comm, root ? p : m->params, sizeof(float) * (size_t)m->n_params, 0);
        alig_comm_bcast(t->comm, root ? s : m->state, sizeof(float) * (size_t)m->n_state, 0);
        if (t->optim.v && w.has_momentum)
            alig_comm_bcast(t->comm, root ? v : t->optim.v, sizeof(float) * (size_t)m->n_params, 0);
        if (root) {
            memcpy(m->params, p, sizeof(float) * (size_t)m->n_params);
            if (m->n_state > 0)
                memcpy(m->state, s, sizeof(float) * (size_t)m->n_state);
            if (t->optim.v)
                memcpy(t->optim.v, v, sizeof(float) * (size_t)m->n_params);
        }
        t->step = w.step;
        t->epoch = w.epoch;
        t->batch = w.batch;
        t->stats = w.stats;
        t->perm_epoch = -1;
        c->saved_step = t->step;
    }
    if (!rc && root && w.found) {
        const alig_config_t *cfg = t->cfg;
        int world = alig_comm_size(t->comm);
        fprintf(log,
                "resumed from %s: step %lld, epoch %lld with %lld of %lld batches done "
                "(written by %d rank(s))\n",
                chosen, (long long)t->step, (long long)t->epoch + 1, (long long)t->batch,
                (long long)t->batches_per_epoch, info.world_size);
        fflush(log);
        const char *bn = alig_model_first_bn(&t->model);
        if (info.world_size != world && bn)
            warn_("%s was written by %d rank(s), this run has %d: elastic resume with the same "
                  "global batch (%d) and data order, but layer %s normalises over each rank's "
                  "slice, which is another size now, so the run continues on another trajectory "
                  "than an uninterrupted one (config.md, \"Batch norm and dropout across ranks\")",
                  chosen, info.world_size, world, cfg->batch_size, bn);
        else if (info.world_size != world)
            warn_("%s was written by %d rank(s), this run has %d: elastic resume with the same "
                  "global batch (%d) and data order; results match an uninterrupted run only to "
                  "floating-point rounding",
                  chosen, info.world_size, world, cfg->batch_size);
        if (info.threads > 0 && (info.threads != t->threads || info.parts != t->n_parts))
            warn_("%s was written with %d thread(s) per rank (%d part(s) per slice), this run "
                  "has %d (%d): the trajectory continues, but its sums are added in another "
                  "order, so it matches an uninterrupted run only to floating-point rounding",
                  chosen, info.threads, info.parts, t->threads, t->n_parts);
        const char *core = openblas_get_corename();
        if (info.blas_kernels && strcasecmp(info.blas_kernels, core))
            warn_("%s was written on OpenBLAS's %s kernels, this run has %s (cluster.md, \"BLAS "
                  "kernels\"): the GEMMs round differently, so the run matches an uninterrupted "
                  "one only to floating-point rounding",
                  chosen, info.blas_kernels, core);
        if (info.seed != cfg->seed || info.batch_size != cfg->batch_size ||
            info.train_samples != t->train.n || info.batches_per_epoch != t->batches_per_epoch)
            warn_("%s was written with seed %" PRIu64 ", batch_size %d and %lld training samples; "
                  "the data order differs from here on",
                  chosen, info.seed, info.batch_size, (long long)info.train_samples);
        if (info.has_momentum && !t->optim.v)
            warn_("%s holds a momentum buffer, but [optimizer] momentum = 0: it is dropped",
                  chosen);
        if (!info.has_momentum && t->optim.v)
            warn_("%s holds no momentum buffer: momentum restarts from zero", chosen);
        char *now = alig_ckpt_config_text_(cfg);
        if (now && info.config_effective)
            diff_config_(now, info.config_effective, chosen);
        free(now);
    }
    alig_ckpt_info_free(&info);
    free(p);
    free(s);
    free(v);
    return rc;
}

int alig_ckpt_begin(alig_trainer_t *t, FILE *log)
{
    const alig_config_t *cfg = t->cfg;
    alig_ckpt_free(t->ckpt);
    t->ckpt = calloc(1, sizeof *t->ckpt);
    int rc = t->ckpt ? ALIG_OK : alig_fail(ALIG_E_MEMORY, "cannot allocate the checkpoint state");
    alig_ckpt_t *c = t->ckpt;
    if (c) {
        c->saved_step = -1;
        c->t_begin = alig_time();
        const char *d = cfg->ckpt_dir;
        int n;
        if (d[0] == '/')
            n = snprintf(c->dir, sizeof c->dir, "%s", d);
        else if (!strcmp(d, "."))
            n = snprintf(c->dir, sizeof c->dir, "%s", cfg->out_dir);
        else
            n = snprintf(c->dir, sizeof c->dir, "%s/%s", cfg->out_dir, d);
        if (n < 0 || n >= (int)sizeof c->dir)
            rc = alig_fail(ALIG_E_CKPT, "checkpoint directory %s/%s: path too long", cfg->out_dir,
                           d);
        else /* "runs/x/" -> "runs/x" */
            while (n > 1 && c->dir[n - 1] == '/')
                c->dir[--n] = '\0';
    }
    if (!rc && alig_comm_rank(t->comm) == 0) {
        rc = prepare_dir_(c->dir);
        /* a checkpoint directory of its own is locked too: two jobs sharing one would
         * take each other's checkpoints for their own (the run directory is locked) */
        if (!rc && !same_dir_(c->dir, cfg->out_dir))
            rc = alig_lock_dir(c->dir, "checkpoint directory", "[checkpoint] dir", &c->lock_fd);
        /* Test hook (docs/checkpoint-format.md): ALIG_TEST_FSIZE=BYTES lowers
         * rank 0's file-size limit (as `ulimit -f` would, but after MPI has
         * made its shared-memory files), so a checkpoint larger than that
         * fails half-way with EFBIG, like on a full disk. */
        const char *fsize = getenv("ALIG_TEST_FSIZE");
        struct rlimit rl;
        if (!rc && fsize && *fsize && getrlimit(RLIMIT_FSIZE, &rl) == 0) {
            rl.rlim_cur = (rlim_t)strtoll(fsize, NULL, 10);
            setrlimit(RLIMIT_FSIZE, &rl);
        }
    }
    rc = alig_comm_agree(t->comm, rc);
    if (rc)
        return rc;
    rc = resume_(t, log);
    if (rc)
        return rc;
    if (alig_comm_rank(t->comm) == 0 && c->saved_step >= 0 &&
        !(t->epoch < cfg->epochs && (cfg->max_steps == 0 || t->step < cfg->max_steps))) {
        fprintf(log,
                "training already complete at step %lld ([run] epochs = %d, max_steps = %lld): "
                "nothing to do\n",
                (long long)t->step, cfg->epochs, (long long)cfg->max_steps);
        fflush(log);
    }
    return ALIG_OK;
}

static void human_bytes_(int64_t b, char *buf, size_t size)
{
    if (b >= 1000000)
        snprintf(buf, size, "%.1f MB", (double)b / 1e6);
    else
        snprintf(buf, size, "%.1f kB", (double)b / 1e3);
}

int alig_ckpt_save(alig_trainer_t *t, const char *why, FILE *log)
{
    alig_ckpt_t *c = t->ckpt;
    if (!c)
        return alig_comm_agree(t->comm,
                               alig_fail(ALIG_E_INTERNAL, "alig_ckpt_save before alig_ckpt_begin"));
    int root = alig_comm_rank(t->comm) == 0;
    double t0 = alig_time();
    alig_trainer_gather_state(t); /* each rank's share of the momentum, for rank 0 to write */
    /* the metrics rows up to this step go to disk before the checkpoint does: a resume
     * from it recomputes only the later steps (a new-user trial killed a run after the
     * every_steps checkpoints 100, 200 and 300 and lost rows 10..300 for good: stdio
     * still held them) */
    if (root)
        alig_metrics_sync(&t->metrics);
    int64_t bytes = 0;
    char final[CK_PATH_MAX] = "";
    int rc = root ? save_atomic_(c, t, &bytes, final, sizeof final) : ALIG_OK;
    rc = alig_comm_agree(t->comm, rc);
    double dt = alig_time() - t0;
    if (rc)
        return rc;
    c->saved_step = t->step;
    c->n_saved++;
    c->save_seconds += dt;
    if (root) {
        char size[32];
        human_bytes_(bytes, size, sizeof size);
        fprintf(log, "checkpoint: step %lld -> %s (%s in %.3f s; %s)\n", (long long)t->step, final,
                size, dt, why);
        fflush(log);
    }
    return ALIG_OK;
}

int alig_ckpt_after_step(alig_trainer_t *t, int epoch_done, FILE *log)
{
    const alig_config_t *cfg = t->cfg;
    if (!t->ckpt)
        return ALIG_OK;
    /* Test hook (docs/checkpoint-format.md): ALIG_TEST_STOP_AT=STEP acts as
     * a stop signal arriving on every rank during step STEP, so tests of the
     * preemption path and of launch/run-until-done.sh need no timing. */
    const char *stop_at = getenv("ALIG_TEST_STOP_AT");
    if (stop_at && *stop_at && t->stop_signal && strtoll(stop_at, NULL, 10) == t->step)
        *t->stop_signal = 1;
    if (cfg->ckpt_every_steps > 0 && t->step % cfg->ckpt_every_steps == 0)
        return alig_ckpt_save(t, "every_steps", log);
    if (epoch_done && cfg->ckpt_every_epochs > 0 && t->epoch % cfg->ckpt_every_epochs == 0)
        return alig_ckpt_save(t, "every_epochs", log);
    return ALIG_OK;
}

/* "checkpoints: 3 written in 0.12 s (0.8% of 15.2 s)" */
static void summary_(const alig_trainer_t *t, FILE *log)
{
    const alig_ckpt_t *c = t->ckpt;
    if (!c || alig_comm_rank(t->comm) != 0 || c->n_saved == 0)
        return;
    double total = alig_time() - c->t_begin;
    fprintf(log, "checkpoints: %d written in %.3f s (%.1f%% of %.3g s)\n", c->n_saved,
            c->save_seconds, total > 0 ? 100.0 * c->save_seconds / total : 0.0, total);
    fflush(log);
}

int alig_ckpt_stop(alig_trainer_t *t, FILE *log)
{
    int rc = ALIG_OK;
    if (t->ckpt && t->step != t->ckpt->saved_step)
        rc = alig_ckpt_save(t, "signal", log);
    summary_(t, log);
    return rc ? rc : ALIG_E_PREEMPTED;
}

int alig_ckpt_end(alig_trainer_t *t, FILE *log)
{
    int rc = ALIG_OK;
    if (t->ckpt && t->cfg->ckpt_at_end && t->step != t->ckpt->saved_step)
        rc = alig_ckpt_save(t, "end", log);
    if (!rc)
        summary_(t, log);
    return rc;
}
