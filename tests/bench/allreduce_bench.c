/*
 * allreduce_bench.c -- time MPI_Allreduce(SUM, float) against message size,
 * and fit the ring-allreduce model t(n) = a + b * bytes (per call, p ranks):
 * a ~ 2(p-1) * latency, b ~ 2(p-1)/p / bandwidth. Prints one CSV row per size
 * (median of repeats) and the fit, for docs/scaling.md. Then, for the gradient
 * buffers of the MLP and the CNN of docs/performance.md, the three ways the
 * trainer can reduce them ([run] reduce): MPI_Allreduce, MPI_Iallreduce + wait
 * (reduce = mpi), and the shared-memory sum of alig_comm_shm_allreduce
 * (reduce = shm, its ranks on one node).
 *
 *   mpirun -np P allreduce_bench [REPEATS]
 */
#include "alig/comm.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp_(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median over the ranks' slowest of `reps` runs of one reduction of n floats. */
static double time_(int how, float *buf, int n, int reps, double *t, alig_comm_t *c)
{
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i < n; i++)
            buf[i] = (float)(i % 97);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        if (how == 0) {
            MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        } else if (how == 1) {
            MPI_Request q;
            MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &q);
            MPI_Wait(&q, MPI_STATUS_IGNORE);
        } else {
            alig_comm_shm_allreduce(c, buf);
        }
        double dt = MPI_Wtime() - t0, worst;
        MPI_Allreduce(&dt, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        t[r] = worst;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_);
    return t[reps / 2];
}

int main(int argc, char **argv)
{
    alig_comm_t *comm = alig_comm_init_mpi(&argc, &argv); /* MPI_Init, and the node */
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    char *end = NULL;
    long reps_arg = argc > 1 ? strtol(argv[1], &end, 10) : 20;
    if (argc > 2 || (argc > 1 && (end == argv[1] || *end)) || reps_arg < 1 || reps_arg > 100000) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -np P allreduce_bench [REPEATS in 1..100000]\n");
        alig_comm_finalize(comm);
        return 2;
    }
    int reps = (int)reps_arg;
    int max_n = 1 << 24; /* 64 MiB of floats */
    float *buf = calloc((size_t)max_n, sizeof(float));
    double *t = malloc(sizeof(double) * (size_t)reps);
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int m = 0;
    if (rank == 0)
        printf("ranks,bytes,seconds\n");
    for (int n = 1; n <= max_n; n *= 4) {
        for (int r = 0; r < reps; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double dt = MPI_Wtime() - t0, worst;
            MPI_Allreduce(&dt, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            t[r] = worst;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_);
        double med = t[reps / 2], bytes = 4.0 * n;
        if (rank == 0)
            printf("%d,%.0f,%.9f\n", size, bytes, med);
        sx += bytes;
        sy += med;
        sxx += bytes * bytes;
        sxy += bytes * med;
        m++;
    }
    double b = (m * sxy - sx * sy) / (m * sxx - sx * sx), a = (sy - b * sx) / m;
    if (rank == 0)
        printf("# fit t = a + b*bytes: a = %.3g s, b = %.3g s/byte (%.2f GB/s effective)\n", a, b,
               1e-9 / b);
    /* the trainer's reductions: buffers of n_reduce floats (parameters and the tail) */
    static const struct {
        const char *model;
        int n;
    } bufs[] = {{"mlp", 1863690 + 4}, {"cnn", 421642 + 4}};
    if (rank == 0)
        printf("model,ranks,bytes,allreduce_s,iallreduce_wait_s,shm_s\n");
    for (int k = 0; k < 2; k++) {
        float *shm = alig_comm_shm_alloc(comm, bufs[k].n);
        double s[3];
        for (int how = 0; how < 3; how++)
            s[how] = size == 1 ? 0.0 : time_(how, how == 2 ? shm : buf, bufs[k].n, reps, t, comm);
        if (rank == 0)
            printf("%s,%d,%d,%.6f,%.6f,%.6f\n", bufs[k].model, size, 4 * bufs[k].n, s[0], s[1],
                   s[2]);
    }
    free(buf);
    free(t);
    alig_comm_finalize(comm);
    return 0;
}
