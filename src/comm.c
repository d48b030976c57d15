/*
 * comm.c -- MPI wrapper (alig/comm.h): reductions, agreement, thread setup.
 */
#include "alig/comm.h"
#include "alig/config.h"
#include "alig/data.h"
#include "alig/error.h"

#include <cblas.h>
#include <ctype.h>
#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <sys/statvfs.h>
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
    /* alig_comm_shm_alloc: windows with one buffer per rank of the node */
    struct shm_ {
        MPI_Win win;
        float **peer;  /* (local_size) every local rank's buffer, mapped here */
        int64_t n;     /* floats per buffer */
    } shm[ALIG_COMM_MAX_SHM];
    int n_shm;
    int *gather_counts; /* (2 local_size) alig_comm_node_allgather's counts and displacements */
    MPI_Comm cross; /* the ranks with this local rank, one per node (several nodes) */
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
    /* tests: pretend that each run of ALIG_TEST_NODE_SIZE consecutive ranks is a node */
    const char *fake = getenv("ALIG_TEST_NODE_SIZE");
    if (fake && atoi(fake) > 0) {
        MPI_Comm whole = c->node;
        MPI_Comm_split(whole, c->rank / atoi(fake), c->rank, &c->node);
        MPI_Comm_free(&whole);
    }
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
        for (int i = 0; i < c->n_shm; i++) {
            MPI_Win_unlock_all(c->shm[i].win);
            MPI_Win_free(&c->shm[i].win);
        }
        if (c->n_shm > 0 && c->cross != MPI_COMM_NULL)
            MPI_Comm_free(&c->cross);
        MPI_Comm_free(&c->node);
        MPI_Finalize();
    }
    for (int i = 0; i < c->n_shm; i++)
        free(c->shm[i].peer);
    free(c->gather_counts);
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

int alig_comm_nodes_even(alig_comm_t *c, int *min_ranks, int *max_ranks)
{
    int v[2] = {-c->local_size, c->local_size};
    if (c->use_mpi && c->size > 1)
        MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    *min_ranks = -v[0];
    *max_ranks = v[1];
    return *min_ranks == *max_ranks;
}

int alig_shm_fits(const char *dir, int64_t bytes)
{
    struct statvfs st;
    if (statvfs(dir, &st) != 0)
        return 1;
    return (double)st.f_bavail * (double)st.f_frsize >= (double)bytes;
}

int alig_comm_shm_room(alig_comm_t *c, int64_t n)
{
    /* the node's buffers, with a quarter to spare for Open MPI's own segments */
    int ok = alig_shm_fits("/dev/shm", n * (int64_t)sizeof(float) * c->local_size / 4 * 5);
    if (c->use_mpi && c->size > 1)
        MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return ok;
}

float *alig_comm_shm_alloc(alig_comm_t *c, int64_t n)
{
    if (!c->use_mpi || c->size == 1 || c->n_shm == ALIG_COMM_MAX_SHM || n <= 0)
        return NULL;
    struct shm_ *w = &c->shm[c->n_shm];
    float *mine = NULL;
    /* MPI_Win_allocate_shared fails through the default error handler (the job aborts) */
    MPI_Win_allocate_shared((MPI_Aint)n * (MPI_Aint)sizeof(float), (int)sizeof(float),
                            MPI_INFO_NULL, c->node, &mine, &w->win);
    w->peer = malloc(sizeof *w->peer * (size_t)c->local_size);
    if (!c->gather_counts) /* made here, so the step loop allocates nothing */
        c->gather_counts = malloc(sizeof(int) * 2 * (size_t)c->local_size);
    if (!w->peer || !c->gather_counts)
        alig_comm_abort(c, ALIG_E_MEMORY);
    for (int q = 0; q < c->local_size; q++) {
        MPI_Aint size;
        int unit;
        MPI_Win_shared_query(w->win, q, &size, &unit, &w->peer[q]);
    }
    /* passive target for the whole run: loads and stores, ordered by MPI_Win_sync + barriers */
    MPI_Win_lock_all(MPI_MODE_NOCHECK, w->win);
    if (c->n_shm == 0) {
        c->cross = MPI_COMM_NULL;
        if (c->local_size < c->size)
            MPI_Comm_split(MPI_COMM_WORLD, c->local_rank, c->rank, &c->cross);
    }
    memset(mine, 0, sizeof(float) * (size_t)n);
    w->n = n;
    c->n_shm++;
    return mine;
}

static struct shm_ *shm_of_(alig_comm_t *c, const float *buf)
{
    for (int i = 0; i < c->n_shm; i++)
        if (c->shm[i].peer[c->local_rank] == buf)
            return &c->shm[i];
    return NULL;
}

void alig_comm_node_slice(const alig_comm_t *c, int q, int64_t n, int64_t unit, int64_t *lo,
                          int64_t *hi)
{
    int64_t ulo, uhi;
    alig_batch_slice((n + unit - 1) / unit, q, c->local_size, &ulo, &uhi);
    *lo = ulo * unit < n ? ulo * unit : n;
    *hi = uhi * unit < n ? uhi * unit : n;
}

void alig_comm_shm_fence(alig_comm_t *c)
{
    for (int i = 0; i < c->n_shm; i++)
        MPI_Win_sync(c->shm[i].win);
    MPI_Barrier(c->node);
    for (int i = 0; i < c->n_shm; i++)
        MPI_Win_sync(c->shm[i].win);
}

void alig_comm_shm_sum(alig_comm_t *c, float *buf, int64_t lo, int64_t hi)
{
    struct shm_ *w = shm_of_(c, buf);
    if (!w)
        return;
    int p = c->local_size;
    /* summed over the node's ranks in local-rank order, in chunks that stay in L1:
     * ((b0 + b1) + b2) + ... (one rank: its own sums) */
    enum { CHUNK = 2048 };
    float acc[CHUNK];
    for (int64_t s = lo; p > 1 && s < hi; s += CHUNK) {
        int64_t m = hi - s < CHUNK ? hi - s : CHUNK;
        const float *b0 = w->peer[0] + s, *b1 = w->peer[1] + s;
        for (int64_t i = 0; i < m; i++)
            acc[i] = b0[i] + b1[i];
        for (int q = 2; q < p; q++) {
            const float *bq = w->peer[q] + s;
            for (int64_t i = 0; i < m; i++)
                acc[i] += bq[i];
        }
        memcpy(buf + s, acc, sizeof(float) * (size_t)m);
    }
    /* several nodes: the range's node sums added across nodes */
    if (c->cross != MPI_COMM_NULL)
        for (int64_t s = lo; s < hi;) {
            int chunk = hi - s > INT_MAX ? INT_MAX : (int)(hi - s);
            MPI_Allreduce(MPI_IN_PLACE, buf + s, chunk, MPI_FLOAT, MPI_SUM, c->cross);
            s += chunk;
        }
}

void alig_comm_shm_fetch(alig_comm_t *c, float *buf, int64_t lo, int64_t hi, int64_t unit,
                         int64_t n_slice)
{
    struct shm_ *w = shm_of_(c, buf);
    if (!w)
        return;
    for (int q = 0; q < c->local_size; q++) {
        if (q == c->local_rank)
            continue;
        int64_t qlo, qhi;
        alig_comm_node_slice(c, q, n_slice, unit, &qlo, &qhi);
        qlo = qlo > lo ? qlo : lo;
        qhi = qhi < hi ? qhi : hi;
        if (qhi > qlo)
            memcpy(buf + qlo, w->peer[q] + qlo, sizeof(float) * (size_t)(qhi - qlo));
    }
}

void alig_comm_shm_allreduce(alig_comm_t *c, float *buf)
{
    struct shm_ *w = shm_of_(c, buf);
    if (!w)
        return;
    int64_t lo, hi;
    alig_comm_node_slice(c, c->local_rank, w->n, 16, &lo, &hi);
    alig_comm_shm_fence(c); /* every rank's sums are written */
    alig_comm_shm_sum(c, buf, lo, hi);
    alig_comm_shm_fence(c); /* every slice is final */
    alig_comm_shm_fetch(c, buf, 0, w->n, 16, w->n);
    alig_comm_shm_fence(c); /* no rank writes its buffer again before the others have read it */
}

void alig_comm_node_allgather(alig_comm_t *c, void *buf, size_t elem, int64_t n, int64_t unit,
                              int64_t n_slice)
{
    if (!c->use_mpi || c->local_size == 1 || !c->gather_counts)
        return;
    int p = c->local_size, *counts = c->gather_counts;
    for (int q = 0; q < p; q++) {
        int64_t lo, hi;
        alig_comm_node_slice(c, q, n_slice, unit, &lo, &hi);
        lo = lo < n ? lo : n;
        hi = hi < n ? hi : n;
        if ((hi - lo) * (int64_t)elem > INT_MAX || lo * (int64_t)elem > INT_MAX) {
            alig_fail(ALIG_E_INTERNAL, "alig_comm_node_allgather: %lld bytes", (long long)(n * elem));
            fprintf(stderr, "alig-train: rank %d: %s\n", c->rank, alig_error_message());
            alig_comm_abort(c, ALIG_E_INTERNAL);
        }
        counts[q] = (int)((hi - lo) * (int64_t)elem);
        counts[p + q] = (int)(lo * (int64_t)elem);
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, counts + p, MPI_BYTE, c->node);
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

/*
 * Eight FNV-style chains over 64-bit words (word i into chain i % 8), the tail's bytes
 * into chain 0, folded with the length. Each multiply is by an odd constant, so a
 * difference in one word always changes the result. The MLP's 7.45 MB of parameters
 * take 0.33 ms here against 7.4 ms for alig_hash64's chain of bytes (1 core, seventh
 * session), a cost every rank pays every check_every steps on the step's path.
 */
uint64_t alig_checksum64(const void *buf, size_t bytes)
{
    enum { LANES = 8 };
    const uint64_t prime = 0x100000001b3ULL;
    const unsigned char *p = buf;
    uint64_t h[LANES];
    for (int k = 0; k < LANES; k++)
        h[k] = 0xcbf29ce484222325ULL + (uint64_t)k;
    size_t i = 0;
    for (; i + 8 * LANES <= bytes; i += 8 * LANES)
        for (int k = 0; k < LANES; k++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * (size_t)k, sizeof w);
            h[k] = (h[k] ^ w) * prime;
        }
    for (; i < bytes; i++)
        h[0] = (h[0] ^ p[i]) * prime;
    uint64_t s = (uint64_t)bytes;
    for (int k = 0; k < LANES; k++)
        s = (s ^ h[k]) * prime;
    return s;
}

int alig_comm_check_identical(alig_comm_t *c, const void *buf, size_t bytes, const char *what)
{
    if (!c->use_mpi || c->size == 1)
        return ALIG_OK;
    unsigned long long h = alig_checksum64(buf, bytes), h0 = h;
    MPI_Bcast(&h0, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
    int differs = h != h0, n_diff = differs;
    /* the usual answer, all equal, takes one small reduction and no allocation */
    MPI_Allreduce(MPI_IN_PLACE, &n_diff, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (!n_diff)
        return ALIG_OK;
    int *all = malloc(sizeof(int) * (size_t)c->size);
    if (!all)
        alig_comm_abort(c, ALIG_E_MEMORY);
    MPI_Allgather(&differs, 1, MPI_INT, all, 1, MPI_INT, MPI_COMM_WORLD);
    char list[256] = "";
    size_t used = 0;
    for (int r = 0, listed = 0; r < c->size; r++) {
        if (!all[r])
            continue;
        if (used < sizeof list - 16)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%d", listed ? ", " : "", r);
        listed++;
    }
    free(all);
    return alig_fail(ALIG_E_INTERNAL, "%s differ between ranks: rank(s) %s disagree with rank 0",
                     what, list);
}

static const char *skip_blanks_(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Past OpenMP's nested levels after the first (",2" in "4,2"), as far as they are
 * well formed: a stray character or an empty level is left for the caller to refuse. */
static const char *skip_omp_levels_(const char *p)
{
    while (*p == ',') {
        const char *q = skip_blanks_(p + 1);
        if (!isdigit((unsigned char)*q))
            break;
        while (isdigit((unsigned char)*q))
            q++;
        p = skip_blanks_(q);
    }
    return p;
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
        end = (char *)skip_blanks_(end);
        if (!strcmp(name, "OMP_NUM_THREADS") && end > env) /* its first level is ours */
            end = (char *)skip_omp_levels_(end);
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
    }
    /* explicit settings win, and one thread is the least a rank runs: say what it costs */
    size_t used = strlen(why);
    if (threads > ncpu)
        snprintf(why + used, why_size - used, "; more than the %d CPU(s) this rank may use, so "
                 "threads share cores", ncpu);
    else if ((int64_t)threads * sharing > ncpu)
        snprintf(why + used, why_size - used, "; %d rank(s) x %d thread(s) on these %d CPU(s), "
                 "so they share cores", sharing, threads, ncpu);
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
