/*
 * baselines.c -- the optimizers users compare ALI-G with: SGD with momentum
 * (heavy-ball or Nesterov) and weight decay, Adam, AdamW, and the learning-
 * rate schedules SGD needs (step decay at given epochs, cosine).
 *
 * Semantics follow PyTorch's torch.optim.SGD (dampening 0), Adam and AdamW,
 * so results can be compared with runs users already have. Each update
 * takes the gradient SUMS g and a scale (1/count): the mean gradient is
 * g_scale * g, folded into the one pass over the buffers.
 */
#include "optim-impl.h"

#include <math.h>

void alig_sgd_apply_(float *w, const float *g, float g_scale, float *v, int64_t n, float lr,
                     float mu, int nesterov, float wd)
{
    /* d = g + wd*w;  v = mu*v + d;  w -= lr * (nesterov ? d + mu*v : v) */
    if (!v) {
        for (int64_t i = 0; i < n; i++)
            w[i] -= lr * (g_scale * g[i] + wd * w[i]);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float d = g_scale * g[i] + wd * w[i];
        v[i] = mu * v[i] + d;
        w[i] -= lr * (nesterov ? d + mu * v[i] : v[i]);
    }
}

void alig_adam_apply_(float *w, const float *g, float g_scale, float *m, float *s, int64_t n,
                      int64_t t, float lr, float b1, float b2, float eps, float wd, int decoupled)
{
    /* t is the 1-based step count; bias corrections in double, once per step */
    float c1 = (float)(1.0 - pow(b1, (double)t));
    float c2 = (float)sqrt(1.0 - pow(b2, (double)t));
    float step = lr / c1;
    float decay = decoupled ? 1.0f - lr * wd : 1.0f;
    float l2 = decoupled ? 0.0f : wd;
    for (int64_t i = 0; i < n; i++) {
        float d = g_scale * g[i] + l2 * w[i];
        m[i] = b1 * m[i] + (1.0f - b1) * d;
        s[i] = b2 * s[i] + (1.0f - b2) * d * d;
        w[i] = w[i] * decay - step * m[i] / (sqrtf(s[i]) / c2 + eps);
    }
}

double alig_schedule_lr_(int schedule, double base, int64_t epoch, int64_t step,
                         int64_t total_steps, const int *milestones, int n_milestones,
                         double decay)
{
    switch (schedule) {
    case ALIG_SCHED_STEP: {
        /* multiply by `decay` once for every milestone epoch already reached
         * (epoch is 0-based: milestone 30 applies from the 31st epoch on, as in
         * PyTorch's MultiStepLR stepped once per epoch) */
        double lr = base;
        for (int i = 0; i < n_milestones; i++)
            if (epoch >= milestones[i])
                lr *= decay;
        return lr;
    }
    case ALIG_SCHED_COSINE:
        if (total_steps <= 0)
            return base;
        return 0.5 * base * (1.0 + cos(M_PI * (double)step / (double)total_steps));
    default:
        return base;
    }
}
