/*
 * pool-impl.h -- a fixed team of threads that run one function together.
 *
 * alig_pool_run(p, fn, ctx) calls fn(ctx, tid, n) on every thread of the
 * team (the caller is tid 0) and returns when all have returned. Idle
 * workers sleep on a condition variable rather than spin, so they leave
 * the cores to whoever needs them between runs. Used by the training step
 * to split a rank's slice of the batch over its cores ([run] parallel).
 */
#ifndef ALIG_POOL_IMPL_H
#define ALIG_POOL_IMPL_H

typedef void (*alig_pool_fn)(void *ctx, int tid, int n);
typedef struct alig_pool alig_pool_t;

/* A team of n >= 1 threads (n - 1 workers are started). NULL on failure (message set). */
alig_pool_t *alig_pool_create(int n);

int alig_pool_size(const alig_pool_t *p);

/* Run fn on all threads of the team and wait for them; not reentrant. With p NULL,
 * fn(ctx, 0, 1) runs on the caller. */
void alig_pool_run(alig_pool_t *p, alig_pool_fn fn, void *ctx);

/*
 * Inside a function that alig_pool_run runs: wait until every thread of the
 * team has called this (the n-th call of a round releases the others).
 * Memory written before the call is visible to every thread after it.
 * Waits spin briefly, then sleep. With p NULL or one thread, returns at once.
 */
void alig_pool_barrier(alig_pool_t *p);

/* Stop and join the workers. NULL is a no-op. */
void alig_pool_free(alig_pool_t *p);

#endif
