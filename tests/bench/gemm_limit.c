/*
 * gemm_limit.c -- the GEMM-only speed limit of a model: a plain
 * cblas_sgemm loop over exactly the GEMM calls (shapes, transposes, the
 * convolutions' chunks) that one training step of alig-train makes for that model,
 * converted to samples/s. Nothing else (im2col, activations, loss, the
 * optimizer, communication) is timed, so no trainer can beat it.
 *
 *   gemm_limit "LAYERS" C H W BATCH THREADS REPEATS
 *
 * prints: gemm-limit samples/s <median> (min <min>, max <max>) gemm-calls <n> gflop/step <x>
 */
#include "alig/comm.h"
#include "alig/model.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int ta, tb, m, n, k;
    int repeat; /* calls per step: conv chunks repeat */
} gemm_t;

static int cmp_(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: gemm_limit LAYERS C H W BATCH THREADS REPEATS\n");
        return 2;
    }
    int c = atoi(argv[2]), h = atoi(argv[3]), w = atoi(argv[4]), batch = atoi(argv[5]);
    int threads = atoi(argv[6]), repeats = atoi(argv[7]);
    openblas_set_num_threads(threads);
    alig_model_t m;
    if (alig_model_build(&m, argv[1], c, h, w, 0, batch)) {
        fprintf(stderr, "gemm_limit: bad model\n");
        return 2;
    }
    gemm_t g[4096];
    int n = 0;
    double flop = 0;
    for (int i = 0; i < m.n_layers; i++) {
        const alig_layer_t *l = &m.layers[i];
        int first = l->src == 0;
        if (l->kind == ALIG_LAYER_DENSE) {
            int o = l->units, in = (int)l->in_dim;
            g[n++] = (gemm_t){0, 1, batch, o, in, 1};          /* forward */
            g[n++] = (gemm_t){1, 0, o, in, batch, 1};          /* weight gradient */
            if (!first)
                g[n++] = (gemm_t){0, 0, batch, in, o, 1};      /* input gradient */
        } else if (l->kind == ALIG_LAYER_CONV) {
            /* per chunk of l->chunk samples lowered side by side, the last one partial */
            int kk = l->in_c * l->k * l->k, pp = l->out_h * l->out_w, oc = l->out_c;
            int nb = (int)l->chunk, full = batch / nb, rest = batch % nb;
            for (int part = 0; part < 2; part++) {
                int cols = (part ? rest : nb) * pp, times = part ? 1 : full;
                if (cols == 0 || times == 0)
                    continue;
                g[n++] = (gemm_t){0, 0, oc, cols, kk, times};
                g[n++] = (gemm_t){0, 1, oc, kk, cols, times};
                if (!first)
                    g[n++] = (gemm_t){1, 0, kk, cols, oc, times};
            }
        }
    }
    size_t amax = 0, bmax = 0, cmax = 0;
    for (int i = 0; i < n; i++) {
        flop += 2.0 * g[i].m * g[i].n * g[i].k * g[i].repeat;
        size_t a = (size_t)g[i].m * g[i].k, b = (size_t)g[i].k * g[i].n, cc = (size_t)g[i].m * g[i].n;
        amax = a > amax ? a : amax;
        bmax = b > bmax ? b : bmax;
        cmax = cc > cmax ? cc : cmax;
    }
    float *A = calloc(amax, sizeof(float)), *B = calloc(bmax, sizeof(float)),
          *C = calloc(cmax, sizeof(float));
    for (size_t i = 0; i < amax; i++)
        A[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < bmax; i++)
        B[i] = (float)(i % 5) * 0.1f;
    double *rate = malloc(sizeof(double) * (size_t)repeats);
    for (int r = -2; r < repeats; r++) { /* two warm-up rounds */
        double t0 = alig_time();
        for (int i = 0; i < n; i++)
            for (int s = 0; s < g[i].repeat; s++) {
                int lda = g[i].ta ? g[i].m : g[i].k, ldb = g[i].tb ? g[i].k : g[i].n;
                cblas_sgemm(CblasRowMajor, g[i].ta ? CblasTrans : CblasNoTrans,
                            g[i].tb ? CblasTrans : CblasNoTrans, g[i].m, g[i].n, g[i].k, 1.0f, A,
                            lda, B, ldb, 0.0f, C, g[i].n);
            }
        double dt = alig_time() - t0;
        if (r >= 0)
            rate[r] = batch / dt;
    }
    if (getenv("GEMM_LIMIT_VERBOSE")) /* each call's share, to see which shapes run slow */
        for (int i = 0; i < n; i++) {
            int lda = g[i].ta ? g[i].m : g[i].k, ldb = g[i].tb ? g[i].k : g[i].n;
            double t0 = alig_time();
            for (int r = 0; r < 5; r++)
                for (int s = 0; s < g[i].repeat; s++)
                    cblas_sgemm(CblasRowMajor, g[i].ta ? CblasTrans : CblasNoTrans,
                                g[i].tb ? CblasTrans : CblasNoTrans, g[i].m, g[i].n, g[i].k, 1.0f,
                                A, lda, B, ldb, 0.0f, C, g[i].n);
            double dt = (alig_time() - t0) / 5;
            fprintf(stderr, "gemm %c%c m %d n %d k %d x%d: %.3f ms/step, %.1f gflop/s\n",
                    g[i].ta ? 'T' : 'N', g[i].tb ? 'T' : 'N', g[i].m, g[i].n, g[i].k, g[i].repeat,
                    dt * 1e3, 2.0 * g[i].m * g[i].n * g[i].k * g[i].repeat / dt * 1e-9);
        }
    qsort(rate, (size_t)repeats, sizeof *rate, cmp_);
    printf("gemm-limit samples/s %.1f (min %.1f, max %.1f) gemm-calls %d gflop/step %.3f\n",
           rate[repeats / 2], rate[0], rate[repeats - 1], n, flop * 1e-9);
    free(A);
    free(B);
    free(C);
    free(rate);
    alig_model_free(&m);
    return 0;
}
