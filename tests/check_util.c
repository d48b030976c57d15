/*
 * check_util.c -- helpers shared by the Check suites: IDX fixture writer,
 * running a command with a time limit, HDF5 identifiers left open.
 */
#include "check_suites.h"

#include <hdf5.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

int test_write_idx(const char *path, int ndim, const uint32_t *dims, const uint8_t *data, int gz)
{
    uint8_t head[4 + 16] = {0, 0, 0x08, (uint8_t)ndim};
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        head[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        head[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        head[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        head[7 + 4 * i] = (uint8_t)dims[i];
        count *= dims[i];
    }
    size_t hlen = 4 + 4 * (size_t)ndim;
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (!f)
            return -1;
        int ok = gzwrite(f, head, (unsigned)hlen) == (int)hlen &&
                 (count == 0 || gzwrite(f, data, (unsigned)count) == (int)count);
        return gzclose(f) == Z_OK && ok ? 0 : -1;
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(head, 1, hlen, f) == hlen && fwrite(data, 1, count, f) == count;
    return fclose(f) == 0 && ok ? 0 : -1;
}

int test_write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

size_t test_read_bytes(const char *path, void *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

int test_make_dataset(const char *dir, const char *prefix, int n, int h, int w, int classes,
                      unsigned seed)
{
    /* images whose mean brightness in a class-specific region encodes the label,
     * so a small model can learn them */
    uint8_t *x = malloc((size_t)n * h * w), *y = malloc((size_t)n);
    if (!x || !y)
        return -1;
    uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    for (int i = 0; i < n; i++) {
        y[i] = (uint8_t)(i % classes);
        for (int k = 0; k < h * w; k++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            int noise = (int)((s >> 33) % 64);
            int band = (k * classes) / (h * w) == y[i] ? 160 : 0;
            x[(size_t)i * h * w + k] = (uint8_t)(noise + band);
        }
    }
    char pi[512], pl[512];
    snprintf(pi, sizeof pi, "%s/%s-images.idx", dir, prefix);
    snprintf(pl, sizeof pl, "%s/%s-labels.idx", dir, prefix);
    uint32_t di[3] = {(uint32_t)n, (uint32_t)h, (uint32_t)w}, dl[1] = {(uint32_t)n};
    int rc = test_write_idx(pi, 3, di, x, 0) || test_write_idx(pl, 1, dl, y, 0) ? -1 : 0;
    free(x);
    free(y);
    return rc;
}

int test_run(const char *cmd, double timeout_s, char *out, size_t out_size, double *elapsed)
{
    char tmpl[] = "/tmp/alig-test-out-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0)
        return -1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        setpgid(0, 0);
        /* Under the sanitizers, the programs a test starts get leak checks off: Open MPI
         * keeps allocations until exit by design. The suites' own code keeps them on. */
        const char *san = getenv("ALIG_SANITIZE");
        if (san && *san == '1')
            setenv("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1", 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fd);
    int status = 0, done = 0;
    while (!done) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            done = 1;
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (dt > timeout_s) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            status = -1;
            break;
        }
        usleep(20000);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (elapsed)
        *elapsed = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (out && out_size) {
        FILE *f = fopen(tmpl, "rb");
        size_t n = f ? fread(out, 1, out_size - 1, f) : 0;
        out[n] = '\0';
        if (f)
            fclose(f);
    }
    unlink(tmpl);
    if (status == -1)
        return -2; /* timed out */
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void test_mpirun(char *buf, size_t size, int np)
{
    /* as root Open MPI wants --allow-run-as-root; above the core count, --oversubscribe.
     * (Sanitizer options for the ranks are set by test_run.) */
    snprintf(buf, size, "mpirun %s --oversubscribe -np %d",
             geteuid() == 0 ? "--allow-run-as-root" : "", np);
}

/* Create and close an identifier of kind k (0 dataspace, 1 datatype, 2 property list):
 * the number the next one of that kind will follow. */
static hid_t h5_probe_(int k)
{
    hid_t id = k == 0 ? H5Screate(H5S_SCALAR) : k == 1 ? H5Tcopy(H5T_NATIVE_INT)
                                                       : H5Pcreate(H5P_FILE_ACCESS);
    if (k == 0)
        H5Sclose(id);
    else if (k == 1)
        H5Tclose(id);
    else
        H5Pclose(id);
    return id;
}

void test_h5_mark(test_h5_mark_t *m)
{
    for (int k = 0; k < 3; k++)
        m->first[k] = h5_probe_(k);
}

int test_h5_left_open(const test_h5_mark_t *m, char *what, size_t size)
{
    static const char *const kinds[3] = {"dataspace", "datatype", "property list"};
    int n = 0;
    size_t used = 0;
    what[0] = '\0';
    for (int k = 0; k < 3; k++) {
        hid_t end = h5_probe_(k);
        if (end - m->first[k] > 1000000) /* not numbered in sequence after all: no verdict */
            continue;
        for (hid_t id = m->first[k] + 1; id < end; id++)
            if (H5Iis_valid(id) > 0) {
                n++;
                if (used < size)
                    used += (size_t)snprintf(what + used, size - used, "%s%s", used ? ", " : "",
                                             kinds[k]);
            }
    }
    ssize_t objs = H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (objs > 0) {
        n += (int)objs;
        if (used < size)
            snprintf(what + used, size - used, "%s%zd file object(s)", used ? ", " : "", objs);
    }
    return n;
}

/* Under LeakSanitizer (make sanitize): libhdf5 1.10 leaks internally when it meets
 * damaged metadata (a checksum error while loading an object header), which the tests
 * of damaged files provoke on purpose; that is not ours to fix. Leaks of our own
 * allocations are still reported, and our HDF5 handles are checked by test_h5_left_open. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libhdf5\n"; }
