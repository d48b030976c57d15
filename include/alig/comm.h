/*
 * alig/comm.h -- the MPI layer: ranks, the fused reduction, agreement on
 * errors, and the BLAS thread count.
 *
 * An opaque handle. alig_comm_init_mpi() wraps MPI_COMM_WORLD;
 * alig_comm_init_self() is a one-rank communicator that never touches MPI
 * (unit tests use it). Every collective here must be called by all ranks.
 */
#ifndef ALIG_COMM_H
#define ALIG_COMM_H

#include <stddef.h>
#include <stdint.h>

typedef struct alig_comm alig_comm_t;

/* MPI_Init (thread level FUNNELED) and wrap MPI_COMM_WORLD. Returns NULL on failure. */
alig_comm_t *alig_comm_init_mpi(int *argc, char ***argv);

/* A single-rank communicator without MPI. */
alig_comm_t *alig_comm_init_self(void);

/* Free the handle; MPI_Finalize when it wrapped MPI. */
void alig_comm_finalize(alig_comm_t *c);

int alig_comm_rank(const alig_comm_t *c);
int alig_comm_size(const alig_comm_t *c);
int alig_comm_local_rank(const alig_comm_t *c);  /* rank among the ranks of this node */
int alig_comm_local_size(const alig_comm_t *c);  /* ranks on this node */

/* In-place sum over ranks (chunked past INT_MAX elements). */
void alig_comm_allreduce_sum_f(alig_comm_t *c, float *buf, int64_t n);
void alig_comm_allreduce_sum_d(alig_comm_t *c, double *buf, int64_t n);
void alig_comm_allreduce_max_d(alig_comm_t *c, double *buf, int64_t n); /* n small */

/*
 * Non-blocking in-place sum of n <= INT_MAX floats (MPI_Iallreduce). At most
 * ALIG_COMM_MAX_PENDING may be outstanding; alig_comm_progress lets MPI move
 * them along (Open MPI progresses only inside MPI calls); alig_comm_wait_all
 * completes them all. No-ops on one rank.
 */
#define ALIG_COMM_MAX_PENDING 256
void alig_comm_iallreduce_sum_f(alig_comm_t *c, float *buf, int64_t n);
void alig_comm_progress(alig_comm_t *c);
void alig_comm_wait_all(alig_comm_t *c);

/*
 * Node shared memory ([run] reduce = shm). alig_comm_shm_alloc gives every
 * rank a buffer of n floats in a window shared by its node's ranks
 * (collective over all ranks; returns this rank's buffer, zeroed; NULL on one
 * rank or past ALIG_COMM_MAX_SHM windows). The other calls name a window by
 * this rank's buffer.
 *
 * Work is shared by slices: alig_comm_node_slice gives local rank q's slice
 * [lo, hi) of n elements cut into units of `unit` (whole units, as even as
 * alig_batch_slice makes them).
 *
 * alig_comm_shm_fence: every rank's loads and stores of the windows so far
 * are done and visible (MPI_Win_sync and a node barrier).
 * alig_comm_shm_sum: buf[lo, hi) = the sum of the node's buffers there, added
 * in local-rank order; with several nodes, then summed across nodes
 * (MPI_Allreduce among the ranks with the same local rank: needs as many
 * ranks on every node, and each node's ranks must pass the same range).
 * alig_comm_shm_fetch: copy every other local rank's slice (of n_slice, by
 * unit), cut to [lo, hi), from its buffer into buf.
 * alig_comm_shm_allreduce: buf = the sum over all ranks (fence, each rank
 * sums its slice, fence, fetch, fence). Every rank gets the same bits.
 * alig_comm_node_allgather: buf (n elements of elem bytes) gets every local
 * rank's slice (alig_comm_node_slice of n_slice by unit, cut to n) from that
 * rank (MPI_Allgatherv on the node; only after an alig_comm_shm_alloc).
 * The environment variable ALIG_TEST_NODE_SIZE=k (tests) makes every k
 * consecutive ranks a node. All of these are collective over the node's ranks.
 */
#define ALIG_COMM_MAX_SHM 4
float *alig_comm_shm_alloc(alig_comm_t *c, int64_t n);
void alig_comm_node_slice(const alig_comm_t *c, int q, int64_t n, int64_t unit, int64_t *lo,
                          int64_t *hi);
void alig_comm_shm_fence(alig_comm_t *c);
void alig_comm_shm_sum(alig_comm_t *c, float *buf, int64_t lo, int64_t hi);
void alig_comm_shm_fetch(alig_comm_t *c, float *buf, int64_t lo, int64_t hi, int64_t unit,
                         int64_t n_slice);
void alig_comm_shm_allreduce(alig_comm_t *c, float *buf);
void alig_comm_node_allgather(alig_comm_t *c, void *buf, size_t elem, int64_t n, int64_t unit,
                              int64_t n_slice);

/*
 * Whether `bytes` more fit in the file system of `dir` (Open MPI backs the
 * shared window with a file in /dev/shm): 1 when they do or when statvfs
 * cannot tell, 0 when they do not. alig_comm_shm_room asks it on every rank
 * for the node's buffers of n floats per rank, with a quarter to spare
 * (collective; 1 only if all fit).
 */
int alig_shm_fits(const char *dir, int64_t bytes);
int alig_comm_shm_room(alig_comm_t *c, int64_t n);

/* Whether every node runs the same number of ranks; *min_ranks, *max_ranks get the
 * range. Collective. */
int alig_comm_nodes_even(alig_comm_t *c, int *min_ranks, int *max_ranks);

/* Broadcast bytes from root. */
void alig_comm_bcast(alig_comm_t *c, void *buf, size_t bytes, int root);

/*
 * Agree on an outcome: every rank passes its local status (ALIG_OK or an
 * error class). Returns the status of the lowest-numbered failing rank (so
 * all ranks return the same value), or ALIG_OK. That rank prints its
 * message (alig_error_message) to stderr once, prefixed with its rank when
 * there is more than one; the other ranks print nothing. Use it after any
 * step that may fail on some ranks only.
 */
int alig_comm_agree(alig_comm_t *c, int status);

/*
 * Verify that every rank holds the same bytes (alig_checksum64 is
 * compared). Returns ALIG_OK, or ALIG_E_INTERNAL on every rank with a
 * message naming `what` and the ranks whose hash differs from rank 0's.
 */
int alig_comm_check_identical(alig_comm_t *c, const void *buf, size_t bytes, const char *what);

/* 64-bit FNV-1a hash of bytes (used for checksums in logs too). */
uint64_t alig_hash64(const void *buf, size_t bytes);

/* A fast 64-bit checksum of bytes, to compare buffers within a run (not FNV-1a:
 * 8 chains over 64-bit words); a difference within one 8-byte word always shows. */
uint64_t alig_checksum64(const void *buf, size_t bytes);

/*
 * Choose BLAS threads for this rank: `requested` > 0 wins; otherwise the
 * CPUs in this process's affinity mask divided among the ranks on this
 * node that share the same mask (so ranks x threads never exceeds the
 * cores). OPENBLAS_NUM_THREADS (else OMP_NUM_THREADS) set in the
 * environment counts as requested. Sets OpenBLAS's thread count and
 * returns it; *why gets a short explanation for the start-up log (which
 * notes an explicit count above the CPUs this rank may use). Returns -1
 * (message set, ALIG_E_CONFIG) for an environment value that is not an
 * integer in [1, ALIG_MAX_THREADS]. Collective over the node's ranks.
 */
int alig_comm_setup_threads(alig_comm_t *c, int requested, char *why, size_t why_size);

/* Set OpenBLAS's thread count (the trainer sets 1 when it runs its own threads). */
void alig_comm_set_blas_threads(int n);

/* Seconds since an arbitrary point (MPI_Wtime or clock_gettime). */
double alig_time(void);

/* Abort all ranks with an exit code (MPI_Abort when under MPI, else exit). */
void alig_comm_abort(alig_comm_t *c, int code) __attribute__((noreturn));

#endif /* ALIG_COMM_H */
