/*
 * optim.c -- ALI-G step, momentum forms and the L2-ball projection.
 *
 * Everything here is a pure function of (w, v, g, loss, options), computed
 * in a fixed order, so ranks holding identical inputs stay bitwise identical.
 */
#include "alig/optim.h"
#include "alig/error.h"
#include "optim-impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void alig_apply_(alig_optim_t *o, float *w, const float *g, float g_scale, double gamma);

int alig_optim_init(alig_optim_t *o, const alig_optim_opts_t *opts, int64_t n)
{
    memset(o, 0, sizeof *o);
    o->opts = *opts;
    o->n = n;
    int adam = opts->kind == ALIG_OPT_ADAM || opts->kind == ALIG_OPT_ADAMW;
    if (opts->momentum > 0.0 || adam) {
        o->v = alig_calloc((size_t)n, sizeof(float), "momentum buffer");
        if (!o->v)
            return ALIG_E_MEMORY;
    }
    if (adam) {
        o->s = alig_calloc((size_t)n, sizeof(float), "Adam second-moment buffer");
        if (!o->s)
            return ALIG_E_MEMORY;
    }
    return ALIG_OK;
}

void alig_optim_free(alig_optim_t *o)
{
    free(o->v);
    free(o->s);
    memset(o, 0, sizeof *o);
}

double alig_norm2(const float *x, int64_t n)
{
    /* four partial sums let the compiler vectorise without reassociating */
    double s[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++)
            s[k] += (double)x[i + k] * (double)x[i + k];
    for (; i < n; i++)
        s[0] += (double)x[i] * (double)x[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

double alig_step_size(const alig_optim_opts_t *opts, double loss, double grad_norm2,
                      alig_step_info_t *info)
{
    double unclipped = loss / (grad_norm2 + opts->delta);
    double step = unclipped;
    int clipped = 0;
    if (!isnan(opts->max_lr) && unclipped > opts->max_lr) {
        step = opts->max_lr;
        clipped = 1;
    }
    if (info) {
        info->loss = loss;
        info->grad_norm2 = grad_norm2;
        info->step_unclipped = unclipped;
        info->step = step;
        info->clipped = clipped;
    }
    return step;
}

double alig_project(float *w, int64_t n, double max_norm)
{
    double norm = sqrt(alig_norm2(w, n));
    if (norm > max_norm) {
        float s = (float)(max_norm / norm);
        for (int64_t i = 0; i < n; i++)
            w[i] *= s;
    }
    return norm;
}

void alig_optim_apply(alig_optim_t *o, float *w, const float *g, float g_scale, double gamma_d)
{
    const alig_optim_opts_t *p = &o->opts;
    if (p->kind == ALIG_OPT_SGD) {
        alig_sgd_apply_(w, g, g_scale, o->v, o->n, (float)gamma_d, (float)p->momentum,
                        p->nesterov, (float)p->weight_decay);
    } else if (p->kind == ALIG_OPT_ADAM || p->kind == ALIG_OPT_ADAMW) {
        o->t++;
        alig_adam_apply_(w, g, g_scale, o->v, o->s, o->n, o->t, (float)gamma_d, (float)p->beta1,
                         (float)p->beta2, (float)p->eps, (float)p->weight_decay,
                         p->kind == ALIG_OPT_ADAMW);
    } else {
        alig_apply_(o, w, g, g_scale, gamma_d);
    }
    if (isfinite(p->max_norm))
        alig_project(w, o->n, p->max_norm);
}

double alig_optim_lr(const alig_optim_t *o, int64_t epoch, int64_t step)
{
    const alig_optim_opts_t *p = &o->opts;
    return alig_schedule_lr_(p->schedule, p->lr, epoch, step, p->total_steps, p->milestones,
                             p->n_milestones, p->decay);
}

const char *alig_optim_name(int kind)
{
    switch (kind) {
    case ALIG_OPT_SGD: return "SGD";
    case ALIG_OPT_ADAM: return "Adam";
    case ALIG_OPT_ADAMW: return "AdamW";
    default: return "ALI-G";
    }
}

/* The ALI-G update for step size gamma. */
static void alig_apply_(alig_optim_t *o, float *w, const float *g, float g_scale, double gamma_d)
{
    /* g_scale folds the division by the sample count into this pass */
    float gamma = (float)gamma_d;
    float mu = (float)o->opts.momentum;
    int64_t n = o->n;
    float *v = o->v;
    if (!v) {
        float gs = gamma * g_scale;
        for (int64_t i = 0; i < n; i++)
            w[i] -= gs * g[i];
    } else if (!o->opts.adjusted) {
        float gs = gamma * g_scale;
        for (int64_t i = 0; i < n; i++) {
            float gi = gs * g[i];
            v[i] = mu * v[i] - gi;
            w[i] = (w[i] - gi) + mu * v[i];
        }
    } else {
        float gm = gamma * mu, gs = gamma * g_scale;
        for (int64_t i = 0; i < n; i++) {
            v[i] = mu * v[i] - g_scale * g[i];
            w[i] = (w[i] - gs * g[i]) + gm * v[i];
        }
    }
}

void alig_optim_step(alig_optim_t *o, float *w, const float *g, double loss,
                     alig_step_info_t *info)
{
    alig_step_info_t local;
    if (!info)
        info = &local;
    double gamma = alig_step_size(&o->opts, loss, alig_norm2(g, o->n), info);
    alig_optim_apply(o, w, g, 1.0f, gamma);
}
