/*
 * error.c -- the last-error message and checked allocation (alig/error.h).
 */
#include "alig/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static char error_message_[2048];
static int error_code_;

int alig_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message_, sizeof error_message_, fmt, ap);
    va_end(ap);
    error_code_ = code;
    return code;
}

const char *alig_error_message(void) { return error_message_; }

int alig_error_code(void) { return error_code_; }

void alig_error_clear(void)
{
    error_message_[0] = '\0';
    error_code_ = ALIG_OK;
}

const char *alig_status_name(int code)
{
    switch (code) {
    case ALIG_OK: return "ok";
    case ALIG_E_INTERNAL: return "internal error";
    case ALIG_E_CONFIG: return "config error";
    case ALIG_E_DATA: return "data error";
    case ALIG_E_CKPT: return "checkpoint error";
    case ALIG_E_NUMERIC: return "numerical error";
    case ALIG_E_MEMORY: return "out of memory";
    case ALIG_E_PREEMPTED: return "preempted";
    default: return "error";
    }
}

void *alig_malloc(size_t n, const char *what)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        alig_fail(ALIG_E_MEMORY, "cannot allocate %zu bytes for %s", n, what);
    return p;
}

void *alig_calloc(size_t count, size_t size, const char *what)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        alig_fail(ALIG_E_MEMORY, "cannot allocate %zu x %zu bytes for %s", count, size, what);
    return p;
}
