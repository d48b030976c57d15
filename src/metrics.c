/*
 * metrics.c -- steps.csv and epochs.csv in the run directory (alig/metrics.h).
 */
#include "alig/metrics.h"
#include "alig/error.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio_ext.h> /* __fpurge */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char steps_header_[] =
    "step,epoch,loss,step_size,step_unclipped,clipped,grad_norm\n";
static const char epochs_header_[] =
    "epoch,step,train_loss,train_acc,test_loss,test_acc,step_mean,step_min,step_max,"
    "clipped_frac,weight_norm,seconds,samples_per_s,skipped,peak_rss_mb\n";

int alig_mkdirs(const char *dir)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return alig_fail(ALIG_E_CKPT, "%s: directory name too long", dir);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return alig_fail(ALIG_E_CKPT, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = c;
        if (!c)
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return alig_fail(ALIG_E_CKPT, "%s: not a directory", dir);
    return ALIG_OK;
}

/*
 * Keep the header and the rows whose column `col` (0-based) is <= limit,
 * rewriting the file through a temporary name; then open it for appending.
 * A missing or empty file gets the header.
 */
static FILE *open_trimmed_(const char *path, const char *header, int col, int64_t limit)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *in = limit >= 0 ? fopen(path, "r") : NULL;
    FILE *out = fopen(tmp, "w");
    if (!out) {
        if (in)
            fclose(in);
        return NULL;
    }
    fputs(header, out);
    if (in) {
        char line[1024];
        int first = 1;
        while (fgets(line, sizeof line, in)) {
            if (first) { /* the old header */
                first = 0;
                continue;
            }
            const char *p = line;
            for (int i = 0; i < col && p; i++) {
                p = strchr(p, ',');
                p = p ? p + 1 : NULL;
            }
            if (p && strtoll(p, NULL, 10) <= limit && strchr(line, '\n'))
                fputs(line, out);
        }
        fclose(in);
    }
    if (fclose(out) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp); /* no stray .tmp next to the file */
        errno = e;
        return NULL;
    }
    return fopen(path, "a+"); /* a+: readable too, for cut_torn_row_ */
}

int alig_metrics_open(alig_metrics_t *mt, const char *dir, int64_t resume_step, int mid_epoch)
{
    memset(mt, 0, sizeof *mt);
    int rc = alig_mkdirs(dir);
    if (rc)
        return rc;
    snprintf(mt->steps_path, sizeof mt->steps_path, "%s/steps.csv", dir);
    mt->steps = open_trimmed_(mt->steps_path, steps_header_, 0, resume_step);
    if (!mt->steps)
        return alig_fail(ALIG_E_CKPT, "%s: cannot write: %s", mt->steps_path, strerror(errno));
    snprintf(mt->epochs_path, sizeof mt->epochs_path, "%s/epochs.csv", dir);
    /* an epoch row belongs to the step that ended it (column 1); resuming in the middle
     * of an epoch drops that epoch's partial row (written when max_steps ended a run
     * there): the resumed run writes the whole epoch's row */
    mt->epochs = open_trimmed_(mt->epochs_path, epochs_header_, 1,
                               mid_epoch && resume_step > 0 ? resume_step - 1 : resume_step);
    if (!mt->epochs) {
        rc = alig_fail(ALIG_E_CKPT, "%s: cannot write: %s", mt->epochs_path, strerror(errno));
        alig_metrics_close(mt);
        return rc;
    }
    return ALIG_OK;
}

/*
 * Cut the file back to just after its last '\n'. It held whole rows only before
 * this process appended (open_trimmed_ keeps complete lines), and a failed write
 * stores a prefix of what was given, so whatever follows the last '\n' is the
 * start of a row. Returns 0 or an errno.
 */
static int cut_torn_row_(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return errno;
    if (!S_ISREG(st.st_mode)) /* a device (/dev/full in the tests): nothing to cut */
        return 0;
    char buf[4096];
    off_t end = st.st_size;
    while (end > 0) {
        off_t from = end > (off_t)sizeof buf ? end - (off_t)sizeof buf : 0;
        ssize_t n = pread(fd, buf, (size_t)(end - from), from);
        if (n != end - from)
            return n < 0 ? errno : EIO;
        while (n > 0 && buf[n - 1] != '\n')
            n--;
        if (n > 0) {
            end = from + n;
            break;
        }
        end = from;
    }
    return end == st.st_size || ftruncate(fd, end) == 0 ? 0 : errno;
}

/*
 * A metrics file that cannot be written (disk full, quota, I/O error) must not
 * end a training run: warn once, naming the file, and write no more rows to it
 * (a row after a lost one would leave a torn line). Checkpoints go on. A write
 * that failed part-way left the start of a row at the end of the file (a
 * new-user trial's full disk: "88,9,0.335470886,0.1,0.413500206,1,"): the
 * unwritten rest of stdio's buffer is dropped, not written by fclose when space
 * is back, and the file is cut back to its last complete row.
 */
static void check_(FILE **f, const char *path, int flush, int sync)
{
    if (flush)
        fflush(*f);
    /* fsync's EINVAL: not a file that can be synced (a device); nothing is lost */
    if (!ferror(*f) && (!sync || fsync(fileno(*f)) == 0 || errno == EINVAL))
        return;
    int e = errno;
    __fpurge(*f);
    int cut = cut_torn_row_(fileno(*f));
    fprintf(stderr, "alig-train: warning: %s: cannot write: %s; no more rows go to this file "
            "(training and checkpoints go on)\n", path, e ? strerror(e) : "I/O error");
    if (cut)
        fprintf(stderr, "alig-train: warning: %s: cannot remove its last, incomplete row: %s "
                "(a resume drops it)\n", path, strerror(cut));
    fclose(*f);
    *f = NULL;
}

void alig_metrics_step(alig_metrics_t *mt, const alig_metrics_step_t *r)
{
    if (!mt->steps)
        return;
    errno = 0;
    fprintf(mt->steps, "%" PRId64 ",%" PRId64 ",%.9g,%.9g,%.9g,%d,%.9g\n", r->step, r->epoch,
            r->loss, r->step_size, r->step_unclipped, r->clipped, r->grad_norm);
    check_(&mt->steps, mt->steps_path, 0, 0);
}

void alig_metrics_epoch(alig_metrics_t *mt, const alig_metrics_epoch_t *r)
{
    if (!mt->epochs)
        return;
    errno = 0;
    fprintf(mt->epochs,
            "%" PRId64 ",%" PRId64 ",%.9g,%.6g,%.9g,%.6g,%.9g,%.9g,%.9g,%.6g,%.9g,%.3f,%.1f,%" PRId64
            ",%.1f\n",
            r->epoch, r->step, r->train_loss, r->train_acc, r->test_loss, r->test_acc, r->step_mean,
            r->step_min, r->step_max, r->clipped_frac, r->weight_norm, r->seconds,
            r->samples_per_s, r->skipped, r->peak_rss_mb);
    /* an epoch row is rare and precious: flush both files so a crash loses nothing before it */
    check_(&mt->epochs, mt->epochs_path, 1, 0);
    if (mt->steps)
        check_(&mt->steps, mt->steps_path, 1, 0);
}

void alig_metrics_sync(alig_metrics_t *mt)
{
    errno = 0;
    if (mt->steps)
        check_(&mt->steps, mt->steps_path, 1, 1);
    if (mt->epochs)
        check_(&mt->epochs, mt->epochs_path, 1, 1);
}

void alig_metrics_close(alig_metrics_t *mt)
{
    if (mt->steps)
        check_(&mt->steps, mt->steps_path, 1, 0);
    if (mt->epochs)
        check_(&mt->epochs, mt->epochs_path, 1, 0);
    if (mt->steps)
        fclose(mt->steps);
    if (mt->epochs)
        fclose(mt->epochs);
    memset(mt, 0, sizeof *mt);
}
