/*
 * alig/error.h -- error classes, exit codes and the last-error message.
 *
 * Library functions return ALIG_OK (0) or one of the error classes below
 * and leave a human-readable message in a per-process buffer
 * (alig_error_message). The program maps the class straight to its exit
 * code, so a scheduler or a wrapper script can tell a bad config from a
 * preempted job. The table lives in docs/errors.md; keep the two in step.
 */
#ifndef ALIG_ERROR_H
#define ALIG_ERROR_H

#include <stddef.h>

/* Error classes double as process exit codes. */
enum alig_status {
    ALIG_OK = 0,
    ALIG_E_INTERNAL = 1,   /* a broken invariant or an MPI failure */
    ALIG_E_CONFIG = 2,     /* command line or config file */
    ALIG_E_DATA = 3,       /* dataset files */
    ALIG_E_CKPT = 4,       /* checkpoint read or write */
    ALIG_E_NUMERIC = 5,    /* non-finite loss or gradient */
    ALIG_E_MEMORY = 6,     /* an allocation failed */
    ALIG_E_PREEMPTED = 75  /* stopped by a signal after checkpointing (EX_TEMPFAIL): requeue */
};

/*
 * Record an error message (printf-style) and return `code`, so callers can
 * write `return alig_fail(ALIG_E_DATA, "%s: bad magic", path);`.
 * A later call replaces the message.
 */
int alig_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The message of the last alig_fail, "" if none. Never NULL. */
const char *alig_error_message(void);

/* The code of the last alig_fail, ALIG_OK if none. */
int alig_error_code(void);

/* Forget the last error. */
void alig_error_clear(void);

/* Short name of an error class, e.g. "config error". */
const char *alig_status_name(int code);

/*
 * malloc/calloc that record ALIG_E_MEMORY with `what` and the size on
 * failure and return NULL. Zero sizes allocate one byte so NULL always
 * means failure.
 */
void *alig_malloc(size_t n, const char *what);
void *alig_calloc(size_t count, size_t size, const char *what);

#endif /* ALIG_ERROR_H */
