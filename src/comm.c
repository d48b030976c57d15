/*
 * comm.c -- MPI wrapper (alig/comm.h): reductions, agreement, thread setup.
 */
#include "alig/comm.h"
#include "alig/config.h"
#include "alig/error.h"

#include <cblas.h>
#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct alig_comm {
    int use_mpi;
    int rank, size;
    int local_rank, local_size;
    MPI_Comm node; /* ranks sharing this node's memory */
    MPI_Request pending[ALIG_COMM_MAX_PENDING];
    int n_pending;
};

alig_comm_t *alig_comm_init_mpi(int *argc, char ***argv)
{
    alig_comm_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        free(c);
        return NULL;
    }
    c->use_mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &c->node);
    MPI_Comm_rank(c->node, &c->local_rank);
    MPI_Comm_size(c->node, &c->local_size);
    return c;
}

alig_comm_t *alig_comm_init_self(void)
{
    alig_comm_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->size = c->local_size = 1;
    return c;
}

void alig_comm_finalize(alig_comm_t *c)
{
    if (!c)
        return;
    if (c->use_mpi) {
        MPI_Comm_free(&c->node);
        MPI_Finalize();
    }
    free(c);
}

int alig_comm_rank(const alig_comm_t *c) { return c->rank; }
int alig_comm_size(const alig_comm_t *c) { return c->size; }
int alig_comm_local_rank(const alig_comm_t *c) { return c->local_rank; }
int alig_comm_local_size(const alig_comm_t *c) { return c->local_size; }

static void allreduce_chunked_(alig_comm_t *c, void *buf, int64_t n, MPI_Datatype t, size_t esize)
{
    if (!c->use_mpi || c->size == 1)
        return;
    char *p = buf;
    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        MPI_Allreduce(MPI_IN_PLACE, p, chunk, t, MPI_SUM, MPI_COMM_WORLD);
        p += (size_t)chunk * esize;
        n -= chunk;
    }
}

void alig_comm_allreduce_sum_f(alig_comm_t *c, float *buf, int64_t n)
{
    allreduce_chunked_(c, buf, n, MPI_FLOAT, sizeof(float));
}

void alig_comm_allreduce_sum_d(alig_comm_t *c, double *buf, int64_t n)
{
    allreduce_chunked_(c, buf, n, MPI_DOUBLE, sizeof(double));
}

void alig_comm_allreduce_max_d(alig_comm_t *c, double *buf, int64_t n)
{
    if (c->use_mpi && c->size > 1)
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
}

void alig_comm_iallreduce_sum_f(alig_comm_t *c, float *buf, int64_t n)
{
    if (!c->use_mpi || c->size == 1)
        return;
    if (c->n_pending == ALIG_COMM_MAX_PENDING || n > INT_MAX) {
        alig_fail(ALIG_E_INTERNAL, "alig_comm_iallreduce_sum_f: %d requests pending, n = %lld",
                  c->n_pending, (long long)n);
        fprintf(stderr, "alig-train: rank %d: %s\n", c->rank, alig_error_message());
        alig_comm_abort(c, ALIG_E_INTERNAL);
    }
    MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                   &c->pending[c->n_pending++]);
}

void alig_comm_progress(alig_comm_t *c)
{
    if (c->n_pending > 0) {
        int done;
        MPI_Testall(c->n_pending, c->pending, &done, MPI_STATUSES_IGNORE);
    }
}

void alig_comm_wait_all(alig_comm_t *c)
{
    if (c->n_pending > 0)
        MPI_Waitall(c->n_pending, c->pending, MPI_STATUSES_IGNORE);
    c->n_pending = 0;
}

void alig_comm_bcast(alig_comm_t *c, void *buf, size_t bytes, int root)
{
    if (!c->use_mpi || c->size == 1)
        return;
    char *p = buf;
    while (bytes > 0) {
        int chunk = bytes > INT_MAX ? INT_MAX : (int)bytes;
        MPI_Bcast(p, chunk, MPI_BYTE, root, MPI_COMM_WORLD);
        p += chunk;
        bytes -= (size_t)chunk;
    }
}

int alig_comm_agree(alig_comm_t *c, int status)
{
    /* MINLOC over (rank if failed else INT_MAX, status): one collective gives
     * every rank the lowest failing rank and its status. */
    struct {
        int value, index;
    } in = {status ? c->rank : INT_MAX, status}, out = in;
    if (c->use_mpi && c->size > 1)
        MPI_Allreduce(&in, &out, 1, MPI_2INT, MPI_MINLOC, MPI_COMM_WORLD);
    if (out.value == INT_MAX)
        return ALIG_OK;
    if (out.value == c->rank) {
        if (c->size > 1)
            fprintf(stderr, "alig-train: rank %d: %s: %s\n", c->rank, alig_status_name(status),
                    alig_error_message());
        else
            fprintf(stderr, "alig-train: %s: %s\n", alig_status_name(status), alig_error_message());
        fflush(stderr);
    }
    return out.index;
}

uint64_t alig_hash64(const void *buf, size_t bytes)
{
    const unsigned char *p = buf;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < bytes; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int alig_comm_check_identical(alig_comm_t *c, const void *buf, size_t bytes, const char *what)
{
    if (!c->use_mpi || c->size == 1)
        return ALIG_OK;
    unsigned long long h = alig_hash64(buf, bytes), h0 = h;
    MPI_Bcast(&h0, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
    int differs = h != h0;
    int *all = malloc(sizeof(int) * (size_t)c->size);
    if (!all)
        alig_comm_abort(c, ALIG_E_MEMORY);
    MPI_Allgather(&differs, 1, MPI_INT, all, 1, MPI_INT, MPI_COMM_WORLD);
    char list[256] = "";
    size_t used = 0;
    int n_diff = 0;
    for (int r = 0; r < c->size; r++) {
        if (!all[r])
            continue;
        if (used < sizeof list - 16)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%d", n_diff ? ", " : "", r);
        n_diff++;
    }
    free(all);
    if (!n_diff)
        return ALIG_OK;
    return alig_fail(ALIG_E_INTERNAL, "%s differ between ranks: rank(s) %s disagree with rank 0",
                     what, list);
}

int alig_comm_setup_threads(alig_comm_t *c, int requested, char *why, size_t why_size)
{
    /* the CPUs of this rank's affinity mask, shared with the ranks on this node whose masks
     * overlap it; collective on the node, so every rank takes part whatever it then uses */
    cpu_set_t mine;
    CPU_ZERO(&mine);
    int ncpu = 1;
    if (sched_getaffinity(0, sizeof mine, &mine) == 0)
        ncpu = CPU_COUNT(&mine);
    int sharing = 1;
    if (c->use_mpi && c->local_size > 1) {
        cpu_set_t *masks = malloc(sizeof(cpu_set_t) * (size_t)c->local_size);
        if (!masks)
            alig_comm_abort(c, ALIG_E_MEMORY);
        MPI_Allgather(&mine, sizeof mine, MPI_BYTE, masks, sizeof mine, MPI_BYTE, c->node);
        sharing = 0;
        for (int r = 0; r < c->local_size; r++) {
            cpu_set_t both;
            CPU_AND(&both, &mine, &masks[r]);
            sharing += CPU_COUNT(&both) > 0;
        }
        free(masks);
    }
    const char *name = "OPENBLAS_NUM_THREADS", *env = getenv(name);
    if (!env || !*env)
        name = "OMP_NUM_THREADS", env = getenv(name);
    int threads;
    if (requested > 0) {
        threads = requested;
        snprintf(why, why_size, "set by [run] threads");
    } else if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end || v < 1 || v > ALIG_MAX_THREADS) {
            alig_fail(ALIG_E_CONFIG,
                      "environment %s=%s: expected an integer in [1, %d], the threads per rank "
                      "(or unset it: [run] threads sets them too)",
                      name, env, ALIG_MAX_THREADS);
            return -1;
        }
        threads = (int)v;
        snprintf(why, why_size, "set by %s in the environment", name);
    } else {
        threads = ncpu / (sharing > 0 ? sharing : 1);
        if (threads < 1)
            threads = 1;
        snprintf(why, why_size, "%d CPU(s) in the affinity mask shared by %d rank(s) on this node",
                 ncpu, sharing);
        openblas_set_num_threads(threads);
        return threads;
    }
    if (threads > ncpu) { /* explicit settings win, but say what they cost */
        size_t used = strlen(why);
        snprintf(why + used, why_size - used, "; more than the %d CPU(s) this rank may use, so "
                 "threads share cores", ncpu);
    }
    openblas_set_num_threads(threads);
    return threads;
}

void alig_comm_set_blas_threads(int n) { openblas_set_num_threads(n); }

double alig_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void alig_comm_abort(alig_comm_t *c, int code)
{
    fflush(stdout);
    fflush(stderr);
    if (c && c->use_mpi && c->size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}
