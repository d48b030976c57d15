/*
 * data_gz.c -- a data file read as gzip or as plain bytes, for the IDX and CIFAR
 * readers (data-impl.h).
 *
 * A file that starts with the gzip magic (1f 8b) is inflated member after member,
 * as `gzip -d` does; any other file is read as it is. zlib's gzread is not used: it
 * cannot tell a stream that ended with its trailer from one that was cut. When the
 * trailer (CRC-32 and length) was cut off and the last inflate call filled the
 * caller's buffer exactly, its next call found the input used up and reported a
 * clean end of file, so the CRC was never checked (found by a new-user trial: `head
 * -c -8` of an IDX file over about 32 KiB was accepted), and it skipped whatever
 * followed the last member. Here a gzip file must end with a member's trailer, which
 * inflate checks, and nothing but another member may follow a trailer.
 */
#include "alig/error.h"
#include "data-impl.h" /* defines: alig_gz_open, alig_gz_read, alig_gz_reason, alig_gz_close */

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define GZ_IN_BYTES (1 << 17)
#define GZ_MAX_CALL (1 << 30) /* inflate and read take an unsigned or size_t count; stay well inside */

enum gz_state_ {
    GZ_PLAIN,  /* not gzip: the bytes as they are */
    GZ_MEMBER, /* inside a gzip member, before its trailer */
    GZ_AFTER,  /* after a member's trailer: another member, or the end of the file */
    GZ_END,    /* the data ended properly */
    GZ_FAILED  /* reason[] says why */
};

struct alig_gz {
    int fd;
    enum gz_state_ state;
    int eof;            /* read() returned 0 */
    int64_t read_bytes; /* from the file so far; minus strm.avail_in: where inflate is */
    int inflating;      /* strm was set up by inflateInit2 */
    z_stream strm;
    char reason[256];
    uint8_t in[GZ_IN_BYTES];
};

static int64_t fail_(alig_gz_t *g, const char *why)
{
    g->state = GZ_FAILED;
    snprintf(g->reason, sizeof g->reason, "%s", why);
    return -1;
}

/* Read more input after what strm still holds (moved to the front). 0, or -1 with the
 * reason set; at the end of the file g->eof is set and nothing is added. */
static int fill_(alig_gz_t *g)
{
    if (g->strm.avail_in && g->strm.next_in != g->in)
        memmove(g->in, g->strm.next_in, g->strm.avail_in);
    g->strm.next_in = g->in;
    while (!g->eof && g->strm.avail_in < GZ_IN_BYTES) {
        ssize_t r = read(g->fd, g->in + g->strm.avail_in, GZ_IN_BYTES - g->strm.avail_in);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return (int)fail_(g, strerror(errno));
        if (r == 0)
            g->eof = 1;
        g->strm.avail_in += (uInt)r;
        g->read_bytes += r;
        break;
    }
    return 0;
}

int alig_gz_open(const char *path, alig_gz_t **out)
{
    *out = NULL;
    if (alig_data_regular(path))
        return ALIG_E_DATA;
    alig_gz_t *g = alig_malloc(sizeof *g, path);
    if (!g)
        return ALIG_E_MEMORY;
    memset(g, 0, offsetof(alig_gz_t, in));
    g->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (g->fd < 0) {
        int e = errno;
        free(g);
        return alig_fail(ALIG_E_DATA, "%s: cannot open: %s", path, strerror(e));
    }
    /* the magic: gzip needs both bytes (a 1-byte file is plain, as zlib reads it) */
    while (g->strm.avail_in < 2 && !g->eof)
        if (fill_(g)) {
            int rc = alig_fail(ALIG_E_DATA, "%s: %s", path, g->reason);
            alig_gz_close(g);
            return rc;
        }
    g->state = GZ_PLAIN;
    if (g->strm.avail_in >= 2 && g->in[0] == 0x1f && g->in[1] == 0x8b) {
        /* 15 + 16: a 32 KiB window, gzip header and trailer only (no zlib or raw deflate) */
        int z = inflateInit2(&g->strm, 15 + 16);
        if (z != Z_OK) {
            alig_gz_close(g);
            return z == Z_MEM_ERROR ? alig_fail(ALIG_E_MEMORY, "%s: out of memory for zlib", path)
                                    : alig_fail(ALIG_E_INTERNAL, "%s: inflateInit2: zlib error %d",
                                                path, z);
        }
        g->inflating = 1;
        g->state = GZ_MEMBER;
    }
    *out = g;
    return ALIG_OK;
}

/* Plain bytes: what is left in the input buffer, then straight from the file. */
static int64_t read_plain_(alig_gz_t *g, uint8_t *buf, int64_t n)
{
    int64_t got = 0;
    if (g->strm.avail_in) {
        got = n < g->strm.avail_in ? n : g->strm.avail_in;
        memcpy(buf, g->strm.next_in, (size_t)got);
        g->strm.next_in += got;
        g->strm.avail_in -= (uInt)got;
    }
    while (got < n && !g->eof) {
        int64_t want = n - got < GZ_MAX_CALL ? n - got : GZ_MAX_CALL;
        ssize_t r = read(g->fd, buf + got, (size_t)want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return fail_(g, strerror(errno));
        if (r == 0)
            g->eof = 1;
        got += r;
    }
    return got;
}

int64_t alig_gz_read(alig_gz_t *g, void *buf, int64_t n)
{
    if (g->state == GZ_FAILED)
        return -1;
    if (g->state == GZ_PLAIN)
        return read_plain_(g, buf, n);
    uint8_t *out = buf;
    int64_t got = 0;
    /* Returning n bytes leaves the rest of the stream (its trailer too) for the next
     * call; fewer than n only once the last member's trailer has been checked. */
    while (got < n && g->state != GZ_END) {
        if (g->strm.avail_in < 2 && !g->eof && fill_(g))
            return -1;
        if (g->state == GZ_AFTER) {
            if (g->strm.avail_in < 2 && !g->eof)
                continue; /* the next two bytes decide; fill_ reads some or sets eof */
            if (g->strm.avail_in == 0) {
                g->state = GZ_END;
            } else if (g->strm.avail_in >= 2 && g->strm.next_in[0] == 0x1f &&
                       g->strm.next_in[1] == 0x8b) {
                /* another member: its data follows the first one's, as with gzip -d */
                inflateReset(&g->strm);
                g->state = GZ_MEMBER;
            } else {
                /* zlib's gzread skipped this and `gzip -t` only warns ("trailing garbage
                 * ignored"); a plain IDX file with bytes after its data is refused, so is
                 * this (something appended, or two files run together?) */
                struct stat st;
                int64_t at = g->read_bytes - g->strm.avail_in;
                int64_t size = fstat(g->fd, &st) == 0 && st.st_size > at ? (int64_t)st.st_size
                                                                        : at + g->strm.avail_in;
                snprintf(g->reason, sizeof g->reason,
                         "%lld byte%s after the end of the gzip stream (at byte %lld of %lld); "
                         "expected the file to end there, or another gzip member",
                         (long long)(size - at), size - at == 1 ? "" : "s", (long long)at,
                         (long long)size);
                g->state = GZ_FAILED;
                return -1;
            }
            continue;
        }
        if (g->strm.avail_in == 0) /* eof inside a member */
            return fail_(g, "the gzip stream ends early (no end-of-stream trailer): the file is "
                            "truncated");
        int64_t want = n - got < GZ_MAX_CALL ? n - got : GZ_MAX_CALL;
        g->strm.next_out = out + got;
        g->strm.avail_out = (uInt)want;
        int z = inflate(&g->strm, Z_NO_FLUSH);
        got += want - g->strm.avail_out;
        if (z == Z_STREAM_END) /* the trailer's CRC-32 and length matched */
            g->state = GZ_AFTER;
        else if (z == Z_MEM_ERROR)
            return fail_(g, "out of memory for zlib");
        /* with input and room for output inflate always moves, so Z_BUF_ERROR cannot
         * repeat without progress */
        else if (z != Z_OK && z != Z_BUF_ERROR) /* Z_DATA_ERROR: "incorrect data check", ... */
            return fail_(g, g->strm.msg ? g->strm.msg : "corrupt gzip data");
    }
    return got;
}

const char *alig_gz_reason(const alig_gz_t *g)
{
    return g->state == GZ_FAILED && g->reason[0] ? g->reason : "read error";
}

void alig_gz_close(alig_gz_t *g)
{
    if (!g)
        return;
    if (g->inflating)
        inflateEnd(&g->strm);
    if (g->fd >= 0)
        close(g->fd);
    free(g);
}
