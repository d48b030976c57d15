/*
 * mpi_layers.c -- test driver run under mpirun by the datasets suite (issue 4).
 *
 *   mpi_layers CONFIG OUT [SECTION.KEY=VALUE ...]
 *
 * Trains [run] max_steps global steps of a convolutional config and, after
 * EVERY step, checks that all ranks hold bitwise-identical parameters AND
 * bitwise-identical model state (the averaged bn running statistics); exit 1
 * naming the step if not. Rank 0 then writes the parameters followed by the
 * state as raw float32 to OUT and prints "loss <last mean loss> params <n>
 * state <n>".
 */
#include "alig/blas.h"
#include "alig/comm.h"
#include "alig/config.h"
#include "alig/error.h"
#include "alig/train.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    alig_blas_choose_kernels(argv); /* alig-train's kernels */
    alig_comm_t *comm = alig_comm_init_mpi(&argc, &argv);
    if (argc < 3) {
        fprintf(stderr, "usage: mpi_layers CONFIG OUT [SECTION.KEY=VALUE ...]\n");
        alig_comm_abort(comm, 2);
    }
    alig_config_t cfg;
    int rc = alig_config_load(&cfg, argv[1]);
    for (int i = 3; !rc && i < argc; i++)
        rc = alig_config_set(&cfg, argv[i]);
    if (!rc)
        rc = alig_config_validate(&cfg, alig_comm_size(comm));
    if (alig_comm_agree(comm, rc))
        alig_comm_abort(comm, rc);
    alig_trainer_t t;
    if (alig_trainer_init(&t, &cfg, comm))
        alig_comm_abort(comm, 3);
    alig_model_t *m = &t.model;
    alig_step_info_t info = {0};
    for (int64_t s = 0; s < cfg.max_steps; s++) {
        rc = alig_trainer_step(&t, &info);
        if (!rc)
            rc = alig_comm_check_identical(comm, m->params, sizeof(float) * (size_t)m->n_params,
                                           "parameters");
        if (!rc)
            rc = alig_comm_check_identical(comm, m->state, sizeof(float) * (size_t)m->n_state,
                                           "model state");
        if (alig_comm_agree(comm, rc)) {
            fprintf(stderr, "mpi_layers: failed at step %lld: %s\n", (long long)s + 1,
                    alig_error_message());
            alig_comm_abort(comm, 1);
        }
    }
    if (alig_comm_rank(comm) == 0) {
        FILE *f = fopen(argv[2], "wb");
        if (!f ||
            fwrite(m->params, sizeof(float), (size_t)m->n_params, f) != (size_t)m->n_params ||
            fwrite(m->state, sizeof(float), (size_t)m->n_state, f) != (size_t)m->n_state ||
            fclose(f) != 0) {
            perror(argv[2]);
            alig_comm_abort(comm, 1);
        }
        printf("loss %.9g params %lld state %lld\n", info.loss, (long long)m->n_params,
               (long long)m->n_state);
    }
    alig_trainer_free(&t);
    alig_config_free(&cfg);
    alig_comm_finalize(comm);
    return 0;
}
