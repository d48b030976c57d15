/*
 * optim_bench.c -- the floor of the optimizer's passes: alig_optim_apply (the
 * ALI-G update with momentum) and alig_optim_norm2 (the gradient norm) over n
 * parameters, on 1..T threads of the trainer's pool, with nothing else
 * running, the buffers warm in cache (a pass right after the last) or cold
 * (after TRASH MiB of other data went through the caches, as a step's GEMMs
 * and activations do). Prints the median ms of REPEATS passes of each. The
 * default n is the MLP's 1863690 parameters (docs/performance.md).
 *
 *   optim_bench [N_PARAMS] [THREADS] [REPEATS] [TRASH_MIB]
 */
#include "alig/comm.h"
#include "alig/optim.h"
#include "pool-impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median ms of reps passes; cold: trash the caches before each. */
static double time_(int what, alig_optim_t *o, float *w, const float *g, int reps, int cold,
                    unsigned char *trash, size_t trash_bytes, double *t)
{
    volatile double sink = 0.0;
    for (int r = 0; r < reps; r++) {
        if (cold)
            for (size_t i = 0; i < trash_bytes; i += 64)
                trash[i]++;
        double t0 = alig_time();
        if (what == 0)
            alig_optim_apply(o, w, g, 1.0f / 128.0f, 0.05);
        else
            sink += alig_optim_norm2(o, g);
        t[r] = 1e3 * (alig_time() - t0);
    }
    (void)sink;
    qsort(t, (size_t)reps, sizeof *t, cmp_);
    return t[reps / 2];
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 1863690;
    int threads = argc > 2 ? atoi(argv[2]) : 1, reps = argc > 3 ? atoi(argv[3]) : 50;
    long trash_mib = argc > 4 ? atol(argv[4]) : 256;
    if (n < 1 || threads < 1 || threads > 64 || reps < 1 || reps > 100000 || trash_mib < 0) {
        fprintf(stderr, "usage: optim_bench [N_PARAMS >= 1] [THREADS 1..64] [REPEATS >= 1] "
                        "[TRASH_MIB >= 0]\n");
        return 2;
    }
    alig_optim_opts_t opts = {.kind = ALIG_OPT_ALIG, .max_lr = 0.1, .delta = 1e-5,
                              .momentum = 0.9, .max_norm = INFINITY};
    alig_optim_t o;
    size_t trash_bytes = (size_t)trash_mib << 20;
    float *w = calloc((size_t)n, sizeof *w), *g = calloc((size_t)n, sizeof *g);
    unsigned char *trash = calloc(trash_bytes + 1, 1);
    double *t = calloc((size_t)reps, sizeof *t);
    alig_pool_t *pool = threads > 1 ? alig_pool_create(threads) : NULL;
    if (!w || !g || !trash || !t || (threads > 1 && !pool) || alig_optim_init(&o, &opts, n)) {
        fprintf(stderr, "optim_bench: out of memory\n");
        return 6;
    }
    alig_optim_set_pool(&o, pool);
    for (int64_t i = 0; i < n; i++) {
        w[i] = (float)(i % 1000) * 1e-4f;
        g[i] = (float)(i % 7) * 1e-3f;
    }
    printf("optim_bench: %lld parameters, %d thread(s), median of %d, cold = after %ld MiB\n",
           (long long)n, threads, reps, trash_mib);
    printf("pass,warm_ms,cold_ms,bytes_moved_mb\n");
    /* update: reads g, v, w and writes v, w; norm: reads g */
    double mb = 4.0 * (double)n / 1e6;
    for (int what = 0; what < 2; what++) {
        double warm = time_(what, &o, w, g, reps, 0, trash, trash_bytes, t);
        double cold = time_(what, &o, w, g, reps, 1, trash, trash_bytes, t);
        printf("%s,%.3f,%.3f,%.1f\n", what == 0 ? "update" : "norm", warm, cold,
               what == 0 ? 5 * mb : mb);
    }
    alig_optim_free(&o);
    alig_pool_free(pool);
    free(w);
    free(g);
    free(trash);
    free(t);
    return 0;
}
