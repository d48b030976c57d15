/*
 * allreduce_bench.c -- time MPI_Allreduce(SUM, float) against message size,
 * and fit the ring-allreduce model t(n) = a + b * bytes (per call, p ranks):
 * a ~ 2(p-1) * latency, b ~ 2(p-1)/p / bandwidth. Prints one CSV row per size
 * (median of repeats) and the fit, for docs/scaling.md.
 *
 *   mpirun -np P allreduce_bench [REPEATS]
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp_(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int reps = argc > 1 ? atoi(argv[1]) : 20;
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
    free(buf);
    free(t);
    MPI_Finalize();
    return 0;
}
