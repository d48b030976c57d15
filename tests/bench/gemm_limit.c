/*
 * gemm_limit.c -- the GEMM-only speed limit of a model: a plain
 * cblas_sgemm loop over exactly the GEMM calls (shapes, transposes, the
 * convolutions' chunks) that one training step of alig-train makes for that model,
 * converted to samples/s. Nothing else (im2col, activations, loss, the
 * optimizer, communication) is timed, so no trainer can beat it.
 *
 *   gemm_limit "LAYERS" C H W BATCH THREADS REPEATS [PARTS]
 *
 * PARTS > 1 mirrors [run] parallel = batch: PARTS threads at once, each
 * looping over the GEMMs of BATCH/PARTS samples with one BLAS thread and
 * buffers of its own (THREADS is then ignored); a round ends when the last
 * thread is done; thread k runs on the k-th CPU of the process's mask (when it
 * has PARTS), as mpirun binds ranks. A model of dense layers only is computed as the trainer's
 * team does: each thread its rows of gW over all BATCH samples, and, for a
 * layer with at least 64 units (inputs) per thread, its columns of the output
 * (of the input gradient) for all BATCH samples (not with
 * GEMM_LIMIT_OPERANDS=private, which mirrors ranks).
 *
 * Operands: each call reads and writes the buffers the step's own call
 * does, in a model built as the trainer builds it: its weights, weight
 * gradients, activations and im2col workspace (with PARTS > 1 the parts
 * share the weights and have gradients and activations of their own, as the
 * trainer's parts do). GEMM_LIMIT_OPERANDS=private gives each part weights of
 * its own too, as ranks have: two ranks of one node are two such parts.
 * GEMM_LIMIT_OPERANDS=shared runs every call on one set
 * of buffers of the largest sizes instead, the limit of the first three
 * sessions: those buffers stay warm in cache from call to call, as no
 * training step's operands can, so that limit is higher.
 *
 * prints: gemm-limit samples/s <median> (min <min>, max <max>) gemm-calls <n> gflop/step <x>
 */
#include "alig/blas.h"
#include "alig/error.h"
#include "alig/comm.h"
#include "alig/data.h"
#include "alig/model.h"
#include "layers-impl.h"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int ta, tb, m, n, k;
    int repeat; /* calls per step: conv chunks repeat */
    int layer;  /* the node that makes the call */
    int kind;   /* GEMM_FWD, GEMM_WGRAD or GEMM_IGRAD */
    int row0;   /* a team's dense GEMM_WGRAD: its first row of gW (m rows of units, k the
                 * whole slice), read from the team's first model; -1: a whole call */
    int col0;   /* a team's dense GEMM_FWD or GEMM_IGRAD by columns: its first column of
                 * the output (n columns, m the whole slice), in the team's first model's
                 * buffers; -1: a whole call */
} gemm_t;

enum { GEMM_FWD, GEMM_WGRAD, GEMM_IGRAD };

/* The A, B, C that the step passes for call g, in model m (model.c, layers.c); m0 is
 * the team's first model, whose buffers hold the slice (alig_model_team_rows). */
static void operands_(const alig_model_t *m, const alig_model_t *m0, const gemm_t *g, float **A,
                      float **B, float **C)
{
    const alig_layer_t *l = &m->layers[g->layer];
    if (l->kind == ALIG_LAYER_DENSE && g->row0 >= 0) { /* gW[r0:] = dout[:, r0:]^T . in */
        *A = m0->dacts[g->layer + 1] + g->row0;
        *B = m0->acts[l->src];
        *C = m0->layers[g->layer].gw + (size_t)g->row0 * l->in_dim;
        return;
    }
    if (l->kind == ALIG_LAYER_DENSE && g->col0 >= 0) {
        if (g->kind == GEMM_FWD) { /* out[:, c0:] = in . W[c0:]^T */
            *A = m0->acts[l->src];
            *B = l->w + (size_t)g->col0 * l->in_dim;
            *C = m0->acts[g->layer + 1] + g->col0;
        } else { /* din[:, c0:] = dout . W[:, c0:] */
            *A = m0->dacts[g->layer + 1];
            *B = l->w + g->col0;
            *C = m0->dacts[l->src] + g->col0;
        }
        return;
    }
    if (l->kind == ALIG_LAYER_DENSE) {
        float *in = m->acts[l->src], *out = m->acts[g->layer + 1];
        float *din = m->dacts[l->src], *dout = m->dacts[g->layer + 1];
        switch (g->kind) {
        case GEMM_FWD: *A = in, *B = l->w, *C = out; break;      /* out = in . W^T */
        case GEMM_WGRAD: *A = dout, *B = in, *C = l->gw; break;  /* gW = dout^T . in */
        default: *A = dout, *B = l->w, *C = din; break;          /* din = dout . W */
        }
    } else { /* conv: the chunk's Y (or dY) sits in the workspace after its columns */
        float *col = m->col;
        switch (g->kind) {
        case GEMM_FWD: *A = l->w, *B = col, *C = col + (size_t)g->k * g->n; break;
        case GEMM_WGRAD: *A = col + (size_t)g->n * g->k, *B = col, *C = l->gw; break;
        default: *A = l->w, *B = col + (size_t)g->m * g->n, *C = col; break;
        }
    }
}

/* What each thread of a round loops over. */
typedef struct {
    const gemm_t *g;
    int n, repeats;
    size_t amax, bmax, cmax;
    const alig_model_t *model; /* this thread's operands; NULL: one shared set of max size */
    const alig_model_t *model0; /* the first part's model */
    pthread_barrier_t *barrier;
    double *dt; /* (repeats) seconds per round, written by thread 0 */
    int tid, n_threads;
} loop_t;

/*
 * Thread tid of n on the tid-th CPU of the process's mask, when it has n or more (as
 * mpirun binds ranks to cores). Left to the scheduler, two streams of this loop ran at
 * one core's speed for whole rounds on this project's machine: 11100-21700 samples/s
 * for the MLP's 2-part loop unpinned against 22100-24500 pinned, in four alternating
 * pairs of 5 rounds (seventh session); earlier sessions called that limit bimodal.
 */
static void pin_(int tid, int n)
{
    cpu_set_t all, one;
    if (n < 2 || sched_getaffinity(0, sizeof all, &all) != 0 || CPU_COUNT(&all) < n)
        return;
    for (int c = 0, k = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &all) && k++ == tid) {
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            pthread_setaffinity_np(pthread_self(), sizeof one, &one);
            return;
        }
}

static void *loop_(void *arg)
{
    loop_t *a = arg;
    const gemm_t *g = a->g;
    pin_(a->tid, a->n_threads);
    float *A = calloc(a->amax, sizeof(float)), *B = calloc(a->bmax, sizeof(float)),
          *C = calloc(a->cmax, sizeof(float));
    for (size_t i = 0; i < a->amax; i++)
        A[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < a->bmax; i++)
        B[i] = (float)(i % 5) * 0.1f;
    for (int r = -2; r < a->repeats; r++) { /* two warm-up rounds */
        pthread_barrier_wait(a->barrier);
        double t0 = alig_time();
        for (int i = 0; i < a->n; i++) {
            float *pa = A, *pb = B, *pc = C;
            if (a->model)
                operands_(a->model, a->model0, &g[i], &pa, &pb, &pc);
            for (int s = 0; s < g[i].repeat; s++) {
                int lda = g[i].ta ? g[i].m : g[i].k, ldb = g[i].tb ? g[i].k : g[i].n,
                    ldc = g[i].n;
                if (g[i].row0 >= 0) /* a team's rows of dout (slice, units) */
                    lda = a->model->layers[g[i].layer].units;
                if (g[i].col0 >= 0) { /* a team's columns of out (units) or din (inputs) */
                    const alig_layer_t *l = &a->model->layers[g[i].layer];
                    ldb = (int)l->in_dim;
                    ldc = g[i].kind == GEMM_FWD ? l->units : (int)l->in_dim;
                }
                cblas_sgemm(CblasRowMajor, g[i].ta ? CblasTrans : CblasNoTrans,
                            g[i].tb ? CblasTrans : CblasNoTrans, g[i].m, g[i].n, g[i].k, 1.0f, pa,
                            lda, pb, ldb, 0.0f, pc, ldc);
            }
        }
        pthread_barrier_wait(a->barrier); /* the round ends with its slowest thread */
        if (r >= 0 && a->tid == 0)
            a->dt[r] = alig_time() - t0;
    }
    free(A);
    free(B);
    free(C);
    return NULL;
}

/*
 * Give every buffer of m that a GEMM reads data: its weights, activations, their gradients
 * and the im2col workspace. A buffer left as allocated is never written by the loop when a
 * node other than a GEMM fills it in a step (a relu's output, its input's gradient, the
 * data, the weights): Linux maps all its pages to the one shared zero page, so a GEMM
 * reading it reads 4 KiB from L1 instead of its whole operand from memory, as no step
 * does. Until the seventh session the limit read those, and came out faster than any
 * step can be. Values in [-0.5, 0.5), none zero or subnormal.
 */
static void fill_(alig_model_t *m, int own_params)
{
    uint32_t x = 12345u;
#define FILL_(p, n)                                                                           \
    for (int64_t i_ = 0; i_ < (int64_t)(n); i_++) {                                          \
        x = x * 1664525u + 1013904223u;                                                       \
        (p)[i_] = ((float)(x >> 8) + 0.5f) / 16777216.0f - 0.5f;                            \
    }
    int64_t acts = m->in_dim, col = 0;
    for (int i = 0; i < m->n_layers; i++) {
        int64_t cf = alig_layer_col_floats(&m->layers[i], m->max_batch);
        acts += m->layers[i].out_dim;
        col = cf > col ? cf : col;
    }
    if (own_params)
        FILL_(m->params, m->n_params);
    FILL_(m->grads, m->n_params);
    FILL_(m->arena, 2 * acts * m->max_batch);
    FILL_(m->col, col);
#undef FILL_
}

static int cmp_(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define MAX_CALLS 4096

/* The GEMM calls of one step of part `part` of `team` (1: no team) on `batch` samples, in
 * model m, into g; returns their number. */
static int list_(const alig_model_t *m, int batch, int team, int part, gemm_t *g)
{
    int n = 0;
    for (int i = 0; i < m->n_layers && n + 6 <= MAX_CALLS; i++) {
        const alig_layer_t *l = &m->layers[i];
        int first = l->src == 0;
        if (l->kind == ALIG_LAYER_DENSE) {
            int o = l->units, in = (int)l->in_dim;
            int64_t r0 = 0, r1 = o, c0, c1;
            if (team > 1)
                alig_batch_slice(o, part, team, &r0, &r1);
            /* a team computes the output and the input gradient of a wide layer by columns
             * for the whole slice (model.c, ALIG_TEAM_MIN_COLS = 64 per thread) */
            if (team > 1 && o >= 64 * team) {
                alig_batch_slice(o, part, team, &c0, &c1);
                g[n++] = (gemm_t){0, 1, batch * team, (int)(c1 - c0), in, 1, i, GEMM_FWD, -1,
                                  (int)c0};
            } else {
                g[n++] = (gemm_t){0, 1, batch, o, in, 1, i, GEMM_FWD, -1, -1};
            }
            if (r1 > r0)
                g[n++] = team > 1
                             ? (gemm_t){1, 0, (int)(r1 - r0), in, batch * team, 1, i, GEMM_WGRAD,
                                        (int)r0, -1}
                             : (gemm_t){1, 0, o, in, batch, 1, i, GEMM_WGRAD, -1, -1};
            if (!first && team > 1 && in >= 64 * team) {
                alig_batch_slice(in, part, team, &c0, &c1);
                g[n++] = (gemm_t){0, 0, batch * team, (int)(c1 - c0), o, 1, i, GEMM_IGRAD, -1,
                                  (int)c0};
            } else if (!first) {
                g[n++] = (gemm_t){0, 0, batch, in, o, 1, i, GEMM_IGRAD, -1, -1};
            }
        } else if (l->kind == ALIG_LAYER_CONV) {
            /* per chunk of l->chunk samples lowered side by side, the last one partial */
            int kk = l->in_c * l->k * l->k, pp = l->out_h * l->out_w, oc = l->out_c;
            int nb = (int)l->chunk, full = batch / nb, rest = batch % nb;
            for (int pass = 0; pass < 2; pass++) {
                int cols = (pass ? rest : nb) * pp, times = pass ? 1 : full;
                if (cols == 0 || times == 0)
                    continue;
                g[n++] = (gemm_t){0, 0, oc, cols, kk, times, i, GEMM_FWD, -1, -1};
                g[n++] = (gemm_t){0, 1, oc, kk, cols, times, i, GEMM_WGRAD, -1, -1};
                if (!first)
                    g[n++] = (gemm_t){1, 0, kk, cols, oc, times, i, GEMM_IGRAD, -1, -1};
            }
        }
    }
    return n;
}

/* argument `name` as an integer in [lo, hi] into *v; else a message and 1 */
static int int_arg_(const char *s, const char *name, long lo, long hi, int *v)
{
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end == s || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "gemm_limit: %s = '%s': expected an integer in [%ld, %ld]\n", name, s, lo,
                hi);
        return 1;
    }
    *v = (int)x;
    return 0;
}

int main(int argc, char **argv)
{
    alig_blas_choose_kernels(argv); /* the kernels alig-train runs on */
    if (argc != 8 && argc != 9) {
        fprintf(stderr, "usage: gemm_limit LAYERS C H W BATCH THREADS REPEATS [PARTS]\n");
        return 2;
    }
    int c, h, w, total, threads, repeats, parts = 1;
    if (int_arg_(argv[2], "C", 1, 4096, &c) || int_arg_(argv[3], "H", 1, 4096, &h) ||
        int_arg_(argv[4], "W", 1, 4096, &w) || int_arg_(argv[5], "BATCH", 1, 1 << 20, &total) ||
        int_arg_(argv[6], "THREADS", 1, 1024, &threads) ||
        int_arg_(argv[7], "REPEATS", 1, 1000000, &repeats) ||
        (argc == 9 && int_arg_(argv[8], "PARTS", 1, total, &parts)))
        return 2;
    int batch = total / parts; /* samples per part, as alig-train's equal split */
    openblas_set_num_threads(parts > 1 ? 1 : threads);
    alig_model_t m;
    if (alig_model_build(&m, argv[1], c, h, w, 0, batch)) {
        fprintf(stderr, "gemm_limit: bad model: %s\n", alig_error_message());
        return 2;
    }
    const char *ops = getenv("GEMM_LIMIT_OPERANDS");
    int own = !ops || strcmp(ops, "shared") != 0;
    int private = ops && strcmp(ops, "private") == 0;
    /* with PARTS > 1, a model of dense layers only computes its weight gradients as the
     * trainer's team does: part p its rows of gW over the whole slice, from the first
     * model's buffers, which hold the slice (alig_model_team_rows) */
    int team = parts > 1 && !private && own && alig_model_team_ok(&m);
    if (team) {
        alig_model_free(&m);
        if (alig_model_build(&m, argv[1], c, h, w, 0, (int64_t)batch * parts)) {
            fprintf(stderr, "gemm_limit: bad model: %s\n", alig_error_message());
            return 2;
        }
    }
    gemm_t *g = calloc((size_t)parts * MAX_CALLS, sizeof *g);
    int *ns = calloc((size_t)parts, sizeof *ns);
    for (int p = 0; p < parts; p++)
        ns[p] = list_(&m, batch, team ? parts : 1, p, g + (size_t)p * MAX_CALLS);
    int n = ns[0];
    double flop = 0;
    size_t amax = 0, bmax = 0, cmax = 0;
    for (int i = 0; i < n; i++) {
        flop += 2.0 * g[i].m * g[i].n * g[i].k * g[i].repeat;
        size_t a = (size_t)g[i].m * g[i].k, b = (size_t)g[i].k * g[i].n, cc = (size_t)g[i].m * g[i].n;
        amax = a > amax ? a : amax;
        bmax = b > bmax ? b : bmax;
        cmax = cc > cmax ? cc : cmax;
    }
    double *rate = malloc(sizeof(double) * (size_t)repeats);
    double *dt = malloc(sizeof(double) * (size_t)repeats);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, (unsigned)parts);
    loop_t *args = calloc((size_t)parts, sizeof *args);
    pthread_t *tids = calloc((size_t)parts, sizeof *tids);
    /* the parts' models: part 0 is m; the others share its weights, as the trainer's do */
    alig_model_t *pm = calloc((size_t)parts, sizeof *pm);
    for (int p = 1; p < parts && own; p++) {
        if (alig_model_build(&pm[p], argv[1], c, h, w, 0, batch)) {
            fprintf(stderr, "gemm_limit: bad model\n");
            return 2;
        }
        if (!private)
            alig_model_share_params(&pm[p], &m);
        if (team)
            alig_model_team_rows(&pm[p], &m, (int64_t)p * batch);
        fill_(&pm[p], private);
    }
    if (own)
        fill_(&m, 1);
    for (int p = 0; p < parts; p++) {
        const alig_model_t *mp = !own ? NULL : p == 0 ? &m : &pm[p];
        args[p] = (loop_t){g + (size_t)p * MAX_CALLS, ns[p], repeats, own ? 0 : amax, own ? 0 : bmax,
                           own ? 0 : cmax, mp, &m, &barrier, dt, p, parts};
        if (p > 0)
            pthread_create(&tids[p], NULL, loop_, &args[p]);
    }
    loop_(&args[0]);
    for (int p = 1; p < parts; p++)
        pthread_join(tids[p], NULL);
    for (int r = 0; r < repeats; r++)
        rate[r] = (double)batch * parts / dt[r];
    float *A = calloc(amax, sizeof(float)), *B = calloc(bmax, sizeof(float)),
          *C = calloc(cmax, sizeof(float));
    if (getenv("GEMM_LIMIT_VERBOSE")) /* each call's share, to see which shapes run slow */
        for (int i = 0; i < n; i++) {
            int lda = g[i].ta ? g[i].m : g[i].k, ldb = g[i].tb ? g[i].k : g[i].n;
            double t0 = alig_time();
            for (int r = 0; r < 5; r++)
                for (int s = 0; s < g[i].repeat; s++)
                    cblas_sgemm(CblasRowMajor, g[i].ta ? CblasTrans : CblasNoTrans,
                                g[i].tb ? CblasTrans : CblasNoTrans, g[i].m, g[i].n, g[i].k, 1.0f,
                                A, lda, B, ldb, 0.0f, C, g[i].n);
            double sec = (alig_time() - t0) / 5;
            fprintf(stderr, "gemm %c%c m %d n %d k %d x%d: %.3f ms/step, %.1f gflop/s\n",
                    g[i].ta ? 'T' : 'N', g[i].tb ? 'T' : 'N', g[i].m, g[i].n, g[i].k, g[i].repeat,
                    sec * 1e3, 2.0 * g[i].m * g[i].n * g[i].k * g[i].repeat / sec * 1e-9);
        }
    qsort(rate, (size_t)repeats, sizeof *rate, cmp_);
    if (getenv("GEMM_LIMIT_VERBOSE")) {
        char blas[256];
        alig_blas_describe(blas, sizeof blas);
        fprintf(stderr, "gemm_limit: %s\n", blas);
    }
    printf("gemm-limit samples/s %.1f (min %.1f, max %.1f) gemm-calls %d gflop/step %.3f "
           "operands %s\n",
           rate[repeats / 2], rate[0], rate[repeats - 1], n, flop * 1e-9, private ? "private" : own ? "model" : "shared");
    for (int p = 1; p < parts && own; p++)
        alig_model_free(&pm[p]);
    free(pm);
    free(A);
    free(B);
    free(C);
    free(rate);
    free(dt);
    free(args);
    free(tids);
    free(g);
    free(ns);
    pthread_barrier_destroy(&barrier);
    alig_model_free(&m);
    return 0;
}
