/*
 * optim-impl.h -- internal header of the optimizer module: the baseline
 * update kernels (baselines.c) that alig_optim_apply dispatches to.
 */
#ifndef ALIG_OPTIM_IMPL_H
#define ALIG_OPTIM_IMPL_H

#include "alig/optim.h"

#include <stdint.h>

/* PyTorch SGD (dampening 0): v may be NULL when mu == 0. */
void alig_sgd_apply_(float *w, const float *g, float g_scale, float *v, int64_t n, float lr,
                     float mu, int nesterov, float wd);

/* PyTorch Adam (decoupled 0: L2 added to the gradient) or AdamW (decoupled 1). t >= 1. */
void alig_adam_apply_(float *w, const float *g, float g_scale, float *m, float *s, int64_t n,
                      int64_t t, float lr, float b1, float b2, float eps, float wd, int decoupled);

/* Learning rate of a schedule at (0-based epoch, 0-based step). */
double alig_schedule_lr_(int schedule, double base, int64_t epoch, int64_t step,
                         int64_t total_steps, const int *milestones, int n_milestones,
                         double decay);

#endif
