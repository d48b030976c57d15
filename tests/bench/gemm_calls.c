/*
 * gemm_calls.c -- time every cblas_sgemm call of a program, by shape: an
 * LD_PRELOAD library for comparing the GEMMs inside a training step with the
 * same calls in gemm_limit's loop (docs/performance.md, seventh session).
 *
 *   LD_PRELOAD=build/tests/gemm_calls.so bin/alig-train my.ini --set run.max_steps=300
 *   LD_PRELOAD=build/tests/gemm_calls.so build/tests/gemm_limit "dense 1024, ..." 1 28 28 128 1 100
 *
 * At exit it prints to stderr, for every shape called more than 50 times, the
 * calls, the mean microseconds per call and GFLOP/s, then the sum of those
 * means: the GEMM time of one step when each shape is called once per step.
 * Calls from several threads are counted together (each call timed on its own
 * thread). It adds two clock reads and a lock per call.
 */
#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

typedef void (*sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE,
                         const enum CBLAS_TRANSPOSE, const blasint, const blasint, const blasint,
                         const float, const float *, const blasint, const float *, const blasint,
                         const float, float *, const blasint);

enum { MAX_SHAPES = 256, MIN_CALLS = 50 };

static struct shape {
    int ta, tb, m, n, k;
    float beta;
    long calls;
    double seconds;
} shapes_[MAX_SHAPES];
static int n_shapes_;
static pthread_mutex_t lock_ = PTHREAD_MUTEX_INITIALIZER;

static double now_(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
                 const enum CBLAS_TRANSPOSE tb, const blasint m, const blasint n, const blasint k,
                 const float alpha, const float *a, const blasint lda, const float *b,
                 const blasint ldb, const float beta, float *c, const blasint ldc)
{
    static sgemm_fn real;
    if (!real)
        real = (sgemm_fn)dlsym(RTLD_NEXT, "cblas_sgemm");
    double t0 = now_();
    real(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    double dt = now_() - t0;
    pthread_mutex_lock(&lock_);
    int i = 0;
    while (i < n_shapes_ && !(shapes_[i].ta == (int)ta && shapes_[i].tb == (int)tb &&
                              shapes_[i].m == m && shapes_[i].n == n && shapes_[i].k == k &&
                              shapes_[i].beta == beta))
        i++;
    if (i == n_shapes_ && n_shapes_ < MAX_SHAPES)
        shapes_[n_shapes_++] = (struct shape){(int)ta, (int)tb, m, n, k, beta, 0, 0.0};
    if (i < n_shapes_) {
        shapes_[i].calls++;
        shapes_[i].seconds += dt;
    }
    pthread_mutex_unlock(&lock_);
}

__attribute__((destructor)) static void report_(void)
{
    double step = 0.0;
    for (int i = 0; i < n_shapes_; i++) {
        const struct shape *s = &shapes_[i];
        if (s->calls <= MIN_CALLS)
            continue;
        double mean = s->seconds / (double)s->calls;
        step += mean;
        fprintf(stderr,
                "gemm_calls: %c%c m %5d n %5d k %5d beta %g: %7ld calls, %8.1f us/call, "
                "%6.1f gflop/s\n",
                s->ta == CblasTrans ? 'T' : 'N', s->tb == CblasTrans ? 'T' : 'N', s->m, s->n, s->k,
                (double)s->beta, s->calls, mean * 1e6, 2.0 * s->m * s->n * s->k / mean * 1e-9);
    }
    if (step > 0.0)
        fprintf(stderr, "gemm_calls: sum of the means %.1f us\n", step * 1e6);
}
