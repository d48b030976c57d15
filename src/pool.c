/*
 * pool.c -- a fixed team of threads (pool-impl.h).
 */
#include "pool-impl.h"
#include "alig/error.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct alig_pool {
    int n;                   /* threads in the team, the caller included */
    pthread_t *workers;      /* n - 1 */
    int started;             /* workers actually running */
    pthread_mutex_t lock;
    pthread_cond_t wake, done, bar;
    unsigned long generation; /* bumped by every run */
    int bar_count;           /* threads waiting in the current round of alig_pool_barrier */
    unsigned long bar_round; /* bumped when a round of alig_pool_barrier completes */
    int pending;             /* workers still running the current generation */
    int quit;
    alig_pool_fn fn;
    void *ctx;
};

struct worker_arg {
    alig_pool_t *p;
    int tid;
};

static void *worker_(void *arg)
{
    struct worker_arg a = *(struct worker_arg *)arg;
    free(arg);
    alig_pool_t *p = a.p;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->quit && p->generation == seen)
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->quit)
            break;
        seen = p->generation;
        alig_pool_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->lock);
        fn(ctx, a.tid, p->n);
        pthread_mutex_lock(&p->lock);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

alig_pool_t *alig_pool_create(int n)
{
    alig_pool_t *p = alig_calloc(1, sizeof *p, "thread pool");
    if (!p)
        return NULL;
    p->n = n < 1 ? 1 : n;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    pthread_cond_init(&p->bar, NULL);
    if (p->n > 1) {
        p->workers = alig_calloc((size_t)p->n - 1, sizeof *p->workers, "thread pool");
        if (!p->workers) {
            alig_pool_free(p);
            return NULL;
        }
    }
    for (int i = 1; i < p->n; i++) {
        struct worker_arg *a = malloc(sizeof *a);
        if (a)
            *a = (struct worker_arg){p, i};
        int rc = a ? pthread_create(&p->workers[i - 1], NULL, worker_, a) : -1;
        if (rc != 0) {
            free(a);
            alig_fail(ALIG_E_MEMORY, "cannot start worker thread %d of %d: %s", i, p->n - 1,
                      rc > 0 ? strerror(rc) : "out of memory");
            alig_pool_free(p);
            return NULL;
        }
        p->started++;
    }
    return p;
}

int alig_pool_size(const alig_pool_t *p) { return p ? p->n : 1; }

void alig_pool_run(alig_pool_t *p, alig_pool_fn fn, void *ctx)
{
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->ctx = ctx;
    p->pending = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    fn(ctx, 0, p->n);
    pthread_mutex_lock(&p->lock);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

/* How long a thread spins in alig_pool_barrier before it sleeps: the team has
 * one thread per core, so a short spin costs nobody, and a wake-up from a
 * condition variable takes tens of microseconds on a virtual machine. */
#define ALIG_BARRIER_SPINS 20000

static inline void cpu_relax_(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void alig_pool_barrier(alig_pool_t *p)
{
    if (!p || p->n == 1)
        return;
    pthread_mutex_lock(&p->lock);
    unsigned long round = __atomic_load_n(&p->bar_round, __ATOMIC_RELAXED);
    if (++p->bar_count == p->n) { /* the last one in releases the round */
        p->bar_count = 0;
        __atomic_store_n(&p->bar_round, round + 1, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&p->bar);
        pthread_mutex_unlock(&p->lock);
        return;
    }
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < ALIG_BARRIER_SPINS; i++) {
        if (__atomic_load_n(&p->bar_round, __ATOMIC_ACQUIRE) != round)
            return;
        cpu_relax_();
    }
    pthread_mutex_lock(&p->lock);
    while (__atomic_load_n(&p->bar_round, __ATOMIC_ACQUIRE) == round)
        pthread_cond_wait(&p->bar, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

void alig_pool_free(alig_pool_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->workers[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->bar);
    free(p->workers);
    free(p);
}
