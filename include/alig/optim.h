/*
 * alig/optim.h -- the ALI-G optimizer on flat parameter buffers.
 *
 * ALI-G (Berrada, Zisserman, Kumar, ICML 2020) takes the step
 *     gamma = min( loss / (||g||^2 + delta), max_lr )
 * (no min when max_lr is unset), then, with momentum mu:
 *     mu == 0:   w -= gamma*g
 *     standard:  w -= gamma*g;  v = mu*v - gamma*g;  w += mu*v
 *     adjusted:  w -= gamma*g;  v = mu*v - g;        w += gamma*mu*v
 * and projects w onto the L2 ball of radius max_norm (all parameters as
 * one vector). docs/alig.md explains the method and how to pick options.
 */
#ifndef ALIG_OPTIM_H
#define ALIG_OPTIM_H

#include <stdint.h>

/* Optimizers. ALI-G is the method; the others are the baselines users compare
 * it with (PyTorch semantics: torch.optim.SGD with dampening 0, Adam, AdamW). */
enum { ALIG_OPT_ALIG = 0, ALIG_OPT_SGD = 1, ALIG_OPT_ADAM = 2, ALIG_OPT_ADAMW = 3 };

/* Learning-rate schedules for the baselines (ALI-G needs none). */
enum { ALIG_SCHED_NONE = 0, ALIG_SCHED_STEP = 1, ALIG_SCHED_COSINE = 2 };
#define ALIG_MAX_MILESTONES 16

typedef struct {
    int kind;          /* ALIG_OPT_* */
    /* ALI-G */
    double max_lr;     /* NAN: no clipping */
    double delta;      /* > 0 */
    double momentum;   /* in [0, 1); SGD momentum too */
    int adjusted;      /* 1: adjusted Nesterov form, 0: standard */
    double max_norm;   /* INFINITY: no projection (applies to every optimizer) */
    /* baselines */
    double lr;             /* base learning rate */
    double weight_decay;   /* SGD/Adam: L2 added to the gradient; AdamW: decoupled */
    int nesterov;          /* SGD: Nesterov momentum instead of heavy-ball */
    double beta1, beta2, eps; /* Adam/AdamW */
    int schedule;          /* ALIG_SCHED_* */
    int milestones[ALIG_MAX_MILESTONES]; /* step schedule: epochs (0-based counts) */
    int n_milestones;
    double decay;          /* step schedule: factor per milestone */
    int64_t total_steps;   /* cosine schedule: steps of the whole run */
} alig_optim_opts_t;

typedef struct {
    alig_optim_opts_t opts;
    int64_t n;         /* parameters */
    float *v;          /* (n) momentum buffer (ALI-G, SGD) or Adam's first moment; zero at
                        * start; NULL when not needed */
    float *s;          /* (n) Adam's second moment; NULL otherwise */
    int64_t t;         /* Adam: steps taken (bias correction) */
    double *partials;  /* (alig_n_blocks(n)) per-block sums of the blocked passes */
    unsigned char *norm_done; /* (alig_n_blocks(n)) 1: partials[b] already holds block b's
                               * ||g||^2 for the next alig_optim_norm2 (alig_optim_norm2_range) */
    struct alig_pool *pool; /* NULL: one thread; else the passes are shared by its threads */
} alig_optim_t;

/* What one step did (identical on every rank). */
typedef struct {
    double loss;            /* mean loss the step used */
    double grad_norm2;      /* ||g||^2 of the mean gradient */
    double step_unclipped;  /* loss / (||g||^2 + delta) */
    double step;            /* gamma actually used */
    int clipped;            /* 1 when max_lr bound */
} alig_step_info_t;

/* Returns ALIG_OK or ALIG_E_MEMORY. */
int alig_optim_init(alig_optim_t *o, const alig_optim_opts_t *opts, int64_t n);
void alig_optim_free(alig_optim_t *o);

/* gamma for a given mean loss and squared gradient norm; fills info. */
double alig_step_size(const alig_optim_opts_t *opts, double loss, double grad_norm2,
                      alig_step_info_t *info);

/*
 * Long passes work in blocks of ALIG_BLOCK elements: a block's sum is
 * accumulated in double in a fixed order, and block sums are added in
 * block order. So a sum does not depend on how the blocks are shared among
 * threads, and every rank gets the same bits whatever its thread count.
 */
#define ALIG_BLOCK 16384
#define ALIG_NORM_LANES 16 /* partial sums within a block (optim.c norm2_flat_) */
static inline int64_t alig_n_blocks(int64_t n) { return (n + ALIG_BLOCK - 1) / ALIG_BLOCK; }

/* ||x||^2 of n floats, block by block as above. */
double alig_norm2(const float *x, int64_t n);

/*
 * The same value as alig_norm2(g, o->n), its blocks shared by o->pool's
 * threads. Blocks that alig_optim_norm2_range recorded since the last call
 * are not read again.
 */
double alig_optim_norm2(alig_optim_t *o, const float *g);

/*
 * Record ||g||^2 of every block that lies entirely in g[lo, hi), for the next
 * alig_optim_norm2 (whose result does not change: a block's sum is the same
 * whenever it is taken). For the training step, while a layer's gradients are
 * still in cache; g[lo, hi) must not change before that call. Threads may
 * record disjoint ranges at once.
 */
void alig_optim_norm2_range(alig_optim_t *o, const float *g, int64_t lo, int64_t hi);

/*
 * One ALI-G step on w (n) with the mean gradient g (n) and mean loss;
 * computes ||g||^2 itself, updates w and v, then projects w.
 */
void alig_optim_step(alig_optim_t *o, float *w, const float *g, double loss,
                     alig_step_info_t *info);

/*
 * The update alone, for a known step size gamma (ALI-G: from
 * alig_step_size; baselines: the learning rate from alig_optim_lr), with
 * the mean gradient given as g_scale * g (the trainer passes the gradient
 * SUMS and 1/count, saving a pass over the buffer); then the projection.
 */
void alig_optim_apply(alig_optim_t *o, float *w, const float *g, float g_scale, double gamma);

/*
 * The same passes on blocks [b0, b1) only, for ranks that share the
 * optimizer's work (each updates its own blocks; the trainer gathers the
 * rest). alig_optim_norm2_blocks fills o->partials[b0..b1) with the blocks'
 * ||g||^2; alig_optim_sum_partials adds all of o->partials in block order
 * (the other ranks' blocks must be in place by then). alig_optim_apply_blocks
 * updates the blocks and, when there is a projection (it returns 1), leaves
 * the updated blocks' ||w||^2 in o->partials; once every block's is there,
 * alig_optim_project_blocks projects blocks [b0, b1) by the norm of them all.
 * alig_optim_apply is apply_blocks + project_blocks over every block.
 */
void alig_optim_norm2_blocks(alig_optim_t *o, const float *g, int64_t b0, int64_t b1);
double alig_optim_sum_partials(const alig_optim_t *o);
int alig_optim_apply_blocks(alig_optim_t *o, float *w, const float *g, float g_scale,
                            double gamma, int64_t b0, int64_t b1);
void alig_optim_project_blocks(alig_optim_t *o, float *w, int64_t b0, int64_t b1);

/*
 * Share the passes of alig_optim_apply and alig_optim_norm2 among the
 * threads of `pool` (NULL: the caller's thread only). The results are the
 * same bits either way: updates are per element and sums are blocked.
 */
void alig_optim_set_pool(alig_optim_t *o, struct alig_pool *pool);

/* A baseline's learning rate at (0-based epoch, 0-based global step). */
double alig_optim_lr(const alig_optim_t *o, int64_t epoch, int64_t step);

/* Short name: "ALI-G", "SGD", "Adam", "AdamW". */
const char *alig_optim_name(int kind);

/*
 * Project w onto the ball of radius max_norm: scale by max_norm/||w||
 * when ||w|| > max_norm. Returns ||w|| before projecting.
 */
double alig_project(float *w, int64_t n, double max_norm);

#endif /* ALIG_OPTIM_H */
