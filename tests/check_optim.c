/*
 * check_optim.c -- ALI-G steps against numbers worked out by hand.
 *
 * Two parameters, w = (1, -2); gradients and losses chosen so each option
 * changes the result. The derivations are in the comments; expected values
 * are literals, never recomputed with the code under test.
 */
#include "check_suites.h"

#include "alig/error.h"
#include "alig/optim.h"
#include "pool-impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-6

static alig_optim_opts_t opts_(double max_lr, double momentum, int adjusted, double max_norm)
{
    alig_optim_opts_t o = {.max_lr = max_lr, .delta = 1e-5, .momentum = momentum,
                           .adjusted = adjusted, .max_norm = max_norm};
    return o;
}

START_TEST(step_size_clipped_and_unclipped)
{
    alig_optim_opts_t o = opts_(0.1, 0, 0, INFINITY);
    alig_step_info_t info;
    /* loss 2, |g|^2 1.25: 2 / 1.25001 = 1.599987200102399 > 0.1: clipped */
    ck_assert_double_eq_tol(alig_step_size(&o, 2.0, 1.25, &info), 0.1, 1e-15);
    ck_assert_int_eq(info.clipped, 1);
    ck_assert_double_eq_tol(info.step_unclipped, 1.599987200102399, 1e-12);
    /* loss 0.1, |g|^2 4: 0.1 / 4.00001 = 0.024999937500156 < 0.1: not clipped */
    ck_assert_double_eq_tol(alig_step_size(&o, 0.1, 4.0, &info), 0.024999937500156, 1e-12);
    ck_assert_int_eq(info.clipped, 0);
    /* max_lr unset: never clipped, however large */
    o.max_lr = NAN;
    ck_assert_double_eq_tol(alig_step_size(&o, 2.0, 1.25, &info), 1.599987200102399, 1e-12);
    ck_assert_int_eq(info.clipped, 0);
    /* zero gradient: delta keeps the step finite, 1e-3 / 1e-5 = 100 */
    ck_assert_double_eq_tol(alig_step_size(&o, 1e-3, 0.0, &info), 100.0, 1e-9);
}
END_TEST

START_TEST(plain_step_clipped)
{
    alig_optim_t opt;
    alig_optim_opts_t o = opts_(0.1, 0.0, 0, INFINITY);
    ck_assert_int_eq(alig_optim_init(&opt, &o, 2), 0);
    ck_assert_ptr_null(opt.v);
    float w[2] = {1.0f, -2.0f}, g[2] = {0.5f, 1.0f};
    alig_step_info_t info;
    alig_optim_step(&opt, w, g, 2.0, &info);
    /* gamma = 0.1: w = (1 - 0.05, -2 - 0.1) */
    ck_assert_double_eq_tol(w[0], 0.95, TOL);
    ck_assert_double_eq_tol(w[1], -2.1, TOL);
    ck_assert_double_eq_tol(info.grad_norm2, 1.25, 1e-12);
    ck_assert_int_eq(info.clipped, 1);
    alig_optim_free(&opt);
}
END_TEST

START_TEST(plain_step_unclipped)
{
    alig_optim_t opt;
    alig_optim_opts_t o = opts_(0.1, 0.0, 0, INFINITY);
    alig_optim_init(&opt, &o, 2);
    float w[2] = {1.0f, -2.0f}, g[2] = {2.0f, 0.0f};
    alig_optim_step(&opt, w, g, 0.1, NULL);
    /* gamma = 0.1 / 4.00001 = 0.024999937500156: w0 = 1 - 2 gamma */
    ck_assert_double_eq_tol(w[0], 0.950000124999688, TOL);
    ck_assert_double_eq_tol(w[1], -2.0, TOL);
    alig_optim_free(&opt);
}
END_TEST

START_TEST(standard_nesterov_two_steps)
{
    alig_optim_t opt;
    alig_optim_opts_t o = opts_(0.1, 0.9, 0, INFINITY);
    alig_optim_init(&opt, &o, 2);
    float w[2] = {1.0f, -2.0f};
    float g1[2] = {0.5f, 1.0f}, g2[2] = {-1.0f, 0.5f};
    alig_optim_step(&opt, w, g1, 2.0, NULL);
    /* gamma 0.1; w' = (0.95, -2.1); v = -0.1 g1 = (-0.05, -0.1); w = w' + 0.9 v */
    ck_assert_double_eq_tol(opt.v[0], -0.05, TOL);
    ck_assert_double_eq_tol(opt.v[1], -0.1, TOL);
    ck_assert_double_eq_tol(w[0], 0.905, TOL);
    ck_assert_double_eq_tol(w[1], -2.19, TOL);
    alig_optim_step(&opt, w, g2, 0.5, NULL);
    /* 0.5/1.25001 > 0.1: gamma 0.1; w' = (1.005, -2.24);
     * v = 0.9 (-0.05, -0.1) - 0.1 (-1, 0.5) = (0.055, -0.14); w = w' + 0.9 v */
    ck_assert_double_eq_tol(opt.v[0], 0.055, TOL);
    ck_assert_double_eq_tol(opt.v[1], -0.14, TOL);
    ck_assert_double_eq_tol(w[0], 1.0545, TOL);
    ck_assert_double_eq_tol(w[1], -2.366, TOL);
    alig_optim_free(&opt);
}
END_TEST

START_TEST(adjusted_nesterov_two_steps_no_max_lr)
{
    alig_optim_t opt;
    alig_optim_opts_t o = opts_(0.1, 0.9, 1, INFINITY);
    alig_optim_init(&opt, &o, 2);
    float w[2] = {1.0f, -2.0f};
    float g1[2] = {0.5f, 1.0f}, g2[2] = {-1.0f, 0.5f};
    alig_optim_step(&opt, w, g1, 2.0, NULL);
    /* gamma 0.1; w' = (0.95, -2.1); v = -g1 = (-0.5, -1); w = w' + 0.1*0.9 v */
    ck_assert_double_eq_tol(opt.v[0], -0.5, TOL);
    ck_assert_double_eq_tol(opt.v[1], -1.0, TOL);
    ck_assert_double_eq_tol(w[0], 0.905, TOL);
    ck_assert_double_eq_tol(w[1], -2.19, TOL);
    /* now without max_lr: gamma = 0.5/1.25001 = 0.3999968000255998
     * w' = (0.905 + gamma, -2.19 - 0.5 gamma); v = 0.9 (-0.5, -1) - g2 = (0.55, -1.4)
     * w = w' + 0.9 gamma v = (1.5029952160382718, -2.893994368045056) */
    opt.opts.max_lr = NAN;
    alig_step_info_t info;
    alig_optim_step(&opt, w, g2, 0.5, &info);
    ck_assert_int_eq(info.clipped, 0);
    ck_assert_double_eq_tol(info.step, 0.3999968000255998, 1e-12);
    ck_assert_double_eq_tol(opt.v[0], 0.55, TOL);
    ck_assert_double_eq_tol(opt.v[1], -1.4, TOL);
    ck_assert_double_eq_tol(w[0], 1.5029952160382718, TOL);
    ck_assert_double_eq_tol(w[1], -2.893994368045056, TOL);
    alig_optim_free(&opt);
}
END_TEST

START_TEST(projection_active_and_inactive)
{
    float w[2] = {3.0f, 4.0f};
    ck_assert_double_eq_tol(alig_project(w, 2, 10.0), 5.0, 1e-12);
    ck_assert_float_eq(w[0], 3.0f); /* inside the ball: untouched */
    ck_assert_float_eq(w[1], 4.0f);
    ck_assert_double_eq_tol(alig_project(w, 2, 2.5), 5.0, 1e-12);
    ck_assert_double_eq_tol(w[0], 1.5, TOL);
    ck_assert_double_eq_tol(w[1], 2.0, TOL);

    /* inside a step: w = (3, 4), g = (1, 0), loss 1, no max_lr:
     * gamma = 1/1.00001 = 0.9999900000999989, w' = (2.00000999990, 4),
     * |w'| = 4.472140..., projected onto radius 1:
     * (0.4472153843337683, 0.8944262965807747) */
    alig_optim_t opt;
    alig_optim_opts_t o = opts_(NAN, 0.0, 0, 1.0);
    alig_optim_init(&opt, &o, 2);
    float w2[2] = {3.0f, 4.0f}, g[2] = {1.0f, 0.0f};
    alig_optim_step(&opt, w2, g, 1.0, NULL);
    ck_assert_double_eq_tol(w2[0], 0.4472153843337683, TOL);
    ck_assert_double_eq_tol(w2[1], 0.8944262965807747, TOL);
    alig_optim_free(&opt);

    /* same step, radius 10: projection inactive, w = (2.0000099999, 4) */
    o.max_norm = 10.0;
    alig_optim_init(&opt, &o, 2);
    float w3[2] = {3.0f, 4.0f};
    alig_optim_step(&opt, w3, g, 1.0, NULL);
    ck_assert_double_eq_tol(w3[0], 2.0000099999000011, TOL);
    ck_assert_double_eq_tol(w3[1], 4.0, TOL);
    alig_optim_free(&opt);
}
END_TEST

START_TEST(norm2_sums_squares)
{
    float x[7] = {1, 2, 3, 4, 5, 6, 7}; /* 1+4+9+16+25+36+49 = 140 */
    ck_assert_double_eq(alig_norm2(x, 7), 140.0);
    ck_assert_double_eq(alig_norm2(x, 0), 0.0);
}
END_TEST

/*
 * The summation order of alig_norm2, written out one addition at a time (the
 * compiler cannot vectorise a loop through a volatile): per block, element i
 * into partial sum i % ALIG_NORM_LANES (the tail into sum 0), the sums folded
 * pairwise, the blocks added in order. alig_norm2 runs a vectorised clone for
 * this CPU (AVX-512, AVX2 or SSE2): any reassociation or contraction there
 * would change the bits, and ranks on different CPUs would then disagree.
 */
static double norm2_by_hand_(const float *x, int64_t n)
{
    double total = 0.0;
    for (int64_t lo = 0; lo < n; lo += ALIG_BLOCK) {
        int64_t m = n - lo < ALIG_BLOCK ? n - lo : ALIG_BLOCK, i = 0;
        volatile double s[ALIG_NORM_LANES] = {0};
        for (; i + ALIG_NORM_LANES <= m; i += ALIG_NORM_LANES)
            for (int k = 0; k < ALIG_NORM_LANES; k++)
                s[k] += (double)x[lo + i + k] * (double)x[lo + i + k];
        for (; i < m; i++)
            s[0] += (double)x[lo + i] * (double)x[lo + i];
        for (int w = ALIG_NORM_LANES / 2; w > 0; w /= 2)
            for (int k = 0; k < w; k++)
                s[k] += s[k + w];
        total += s[0];
    }
    return total;
}

START_TEST(norm2_bits_do_not_depend_on_the_instruction_set)
{
    const int64_t n = 3 * ALIG_BLOCK + 21; /* whole blocks, a short one, a tail of 5 */
    float *x = malloc(sizeof(float) * n);
    uint32_t r = 99;
    for (int64_t i = 0; i < n; i++) { /* each partial sum in a binade of its own, so that */
        r = r * 1664525u + 1013904223u; /* another order of additions rounds otherwise */
        x[i] = ldexpf((float)(r >> 8) / 16777216.0f - 0.5f, (int)(i % ALIG_NORM_LANES) * 2 - 12);
    }
    double want = norm2_by_hand_(x, n), got = alig_norm2(x, n);
    ck_assert_msg(memcmp(&want, &got, sizeof want) == 0, "%.17g vs %.17g by hand", got, want);
    free(x);
}
END_TEST

/* ---- baselines: w = (1, -2), g1 = (0.5, 1), g2 = (-1, 0.5), as above ---- */

static alig_optim_opts_t base_(int kind, double lr, double momentum, double wd)
{
    alig_optim_opts_t o = {.kind = kind, .lr = lr, .momentum = momentum, .weight_decay = wd,
                           .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .max_lr = NAN,
                           .delta = 1e-5, .max_norm = INFINITY};
    return o;
}

static void two_steps_(alig_optim_t *opt, float *w)
{
    float g1[2] = {0.5f, 1.0f}, g2[2] = {-1.0f, 0.5f};
    alig_optim_apply(opt, w, g1, 1.0f, alig_optim_lr(opt, 0, 0));
    alig_optim_apply(opt, w, g2, 1.0f, alig_optim_lr(opt, 0, 1));
}

START_TEST(sgd_heavy_ball_with_weight_decay)
{
    alig_optim_t opt;
    alig_optim_opts_t o = base_(ALIG_OPT_SGD, 0.1, 0.9, 0.01);
    alig_optim_init(&opt, &o, 2);
    float w[2] = {1.0f, -2.0f}, g1[2] = {0.5f, 1.0f}, g2[2] = {-1.0f, 0.5f};
    alig_optim_apply(&opt, w, g1, 1.0f, 0.1);
    /* d = g + 0.01 w = (0.51, 0.98); v = d; w -= 0.1 v */
    ck_assert_double_eq_tol(w[0], 0.949, TOL);
    ck_assert_double_eq_tol(w[1], -2.098, TOL);
    alig_optim_apply(&opt, w, g2, 1.0f, 0.1);
    /* d = (-1 + 0.00949, 0.5 - 0.02098); v = 0.9 (0.51, 0.98) + d = (-0.53151, 1.36102) */
    ck_assert_double_eq_tol(opt.v[0], -0.53151, TOL);
    ck_assert_double_eq_tol(opt.v[1], 1.36102, TOL);
    ck_assert_double_eq_tol(w[0], 1.002151, TOL);
    ck_assert_double_eq_tol(w[1], -2.234102, TOL);
    alig_optim_free(&opt);
}
END_TEST

START_TEST(sgd_nesterov_and_gradient_scale)
{
    alig_optim_t opt;
    alig_optim_opts_t o = base_(ALIG_OPT_SGD, 0.1, 0.9, 0.0);
    o.nesterov = 1;
    alig_optim_init(&opt, &o, 2);
    float w[2] = {1.0f, -2.0f};
    /* gradient SUMS over 4 samples with scale 1/4 must equal the mean gradient */
    float g1[2] = {2.0f, 4.0f}, g2[2] = {-4.0f, 2.0f};
    alig_optim_apply(&opt, w, g1, 0.25f, 0.1);
    /* v = (0.5, 1); w -= 0.1 (g + 0.9 v) = 0.1 (0.95, 1.9) */
    ck_assert_double_eq_tol(w[0], 0.905, TOL);
    ck_assert_double_eq_tol(w[1], -2.19, TOL);
    alig_optim_apply(&opt, w, g2, 0.25f, 0.1);
    /* v = 0.9 (0.5, 1) + (-1, 0.5) = (-0.55, 1.4); w -= 0.1 ((-1, 0.5) + 0.9 v) */
    ck_assert_double_eq_tol(w[0], 1.0545, TOL);
    ck_assert_double_eq_tol(w[1], -2.366, TOL);
    alig_optim_free(&opt);
}
END_TEST

START_TEST(adam_and_adamw_two_steps)
{
    /* step 1: m = 0.1 g, s = 0.001 g^2, bias-corrected to g and g^2: w -= 0.1 g/|g| */
    /* step 2 (component 0): m = 0.045 - 0.1 = -0.055, s = 0.00024975 + 0.001,
     * w = 0.9 - 0.1 (m / 0.19) / (sqrt(s) / sqrt(1 - 0.999^2)) = 0.9366103542405654 */
    alig_optim_t opt;
    alig_optim_opts_t o = base_(ALIG_OPT_ADAM, 0.1, 0, 0);
    alig_optim_init(&opt, &o, 2);
    float w[2] = {1.0f, -2.0f};
    two_steps_(&opt, w);
    ck_assert_int_eq(opt.t, 2);
    ck_assert_double_eq_tol(w[0], 0.9366103542405654, TOL);
    ck_assert_double_eq_tol(w[1], -2.193217961701839, TOL);
    alig_optim_free(&opt);

    /* Adam with L2 0.1: the decay goes through the moments */
    o = base_(ALIG_OPT_ADAM, 0.1, 0, 0.1);
    alig_optim_init(&opt, &o, 2);
    float w2[2] = {1.0f, -2.0f};
    two_steps_(&opt, w2);
    ck_assert_double_eq_tol(w2[0], 0.9252635194456061, TOL);
    ck_assert_double_eq_tol(w2[1], -2.1883622761652832, TOL);
    alig_optim_free(&opt);

    /* AdamW 0.1: w *= 1 - 0.1*0.1 before each Adam step */
    o = base_(ALIG_OPT_ADAMW, 0.1, 0, 0.1);
    alig_optim_init(&opt, &o, 2);
    float w3[2] = {1.0f, -2.0f};
    two_steps_(&opt, w3);
    ck_assert_double_eq_tol(w3[0], 0.9177103542205653, TOL);
    ck_assert_double_eq_tol(w3[1], -2.152417961711839, TOL);
    alig_optim_free(&opt);
}
END_TEST

START_TEST(learning_rate_schedules)
{
    alig_optim_t opt;
    alig_optim_opts_t o = base_(ALIG_OPT_SGD, 0.1, 0.9, 0);
    o.schedule = ALIG_SCHED_STEP;
    o.milestones[0] = 3;
    o.milestones[1] = 6;
    o.n_milestones = 2;
    o.decay = 0.1;
    alig_optim_init(&opt, &o, 2);
    /* epochs 0..2: 0.1; 3..5: 0.01; 6..: 0.001 (PyTorch MultiStepLR) */
    ck_assert_double_eq_tol(alig_optim_lr(&opt, 0, 0), 0.1, 1e-15);
    ck_assert_double_eq_tol(alig_optim_lr(&opt, 2, 999), 0.1, 1e-15);
    ck_assert_double_eq_tol(alig_optim_lr(&opt, 3, 0), 0.01, 1e-15);
    ck_assert_double_eq_tol(alig_optim_lr(&opt, 6, 0), 0.001, 1e-15);
    alig_optim_free(&opt);

    o.schedule = ALIG_SCHED_COSINE;
    o.total_steps = 100;
    alig_optim_init(&opt, &o, 2);
    /* 0.05 (1 + cos(pi t / T)): 0.1 at 0, 0.05 at T/2, 0 at T */
    ck_assert_double_eq_tol(alig_optim_lr(&opt, 0, 0), 0.1, 1e-15);
    ck_assert_double_eq_tol(alig_optim_lr(&opt, 0, 25), 0.08535533905932738, 1e-12);
    ck_assert_double_eq_tol(alig_optim_lr(&opt, 0, 50), 0.05, 1e-12);
    ck_assert_double_eq_tol(alig_optim_lr(&opt, 0, 100), 0.0, 1e-12);
    alig_optim_free(&opt);
}
END_TEST

/* Every thread of a team runs the function once per run, with its own tid. */
static void count_tid_(void *ctx, int tid, int n)
{
    int *hits = ctx;
    __atomic_fetch_add(&hits[tid * n], 1, __ATOMIC_RELAXED); /* n: spreads the counters */
}

START_TEST(pool_runs_every_thread_once)
{
    int n = 4, hits[16] = {0};
    alig_pool_t *pool = alig_pool_create(n);
    ck_assert_ptr_nonnull(pool);
    ck_assert_int_eq(alig_pool_size(pool), n);
    for (int r = 0; r < 200; r++)
        alig_pool_run(pool, count_tid_, hits);
    for (int tid = 0; tid < n; tid++)
        ck_assert_int_eq(hits[tid * n], 200);
    alig_pool_free(pool);
}
END_TEST

/*
 * The optimizer's passes shared among 3 threads give the same bits as one
 * thread, for every optimizer, with the projection active: updates are per
 * element and the two norms (gradient, projected weights) are summed block
 * by block in block order. n spans 7 full blocks and a partial one, split
 * 3, 3, 2 over the threads: norms summed per thread and then added
 * ((B0+B1+B2) + (B3+B4+B5) + (B6+B7)) would differ in the last bits from
 * the one-thread sum, and ranks with different thread counts could drift
 * apart.
 */
START_TEST(threaded_passes_give_the_same_bits)
{
    const int64_t n = 7 * ALIG_BLOCK + 123;
    float *w1 = malloc(sizeof(float) * n), *w3 = malloc(sizeof(float) * n);
    float *g = malloc(sizeof(float) * n);
    uint32_t x = 12345;
    for (int64_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        w1[i] = w3[i] = (float)((x >> 8) & 0xffff) / 65536.0f - 0.5f;
        g[i] = (float)((x >> 4) & 0xfff) / 4096.0f - 0.4f;
    }
    alig_pool_t *pool = alig_pool_create(3);
    int kinds[] = {ALIG_OPT_ALIG, ALIG_OPT_ALIG, ALIG_OPT_SGD, ALIG_OPT_ADAM, ALIG_OPT_ADAMW};
    for (int c = 0; c < 5; c++) {
        alig_optim_opts_t o = opts_(0.5, 0.9, c == 1, 20.0); /* ||w|| ~ 98 before: projected */
        o.kind = kinds[c];
        o.lr = 0.01;
        o.weight_decay = 1e-3;
        o.nesterov = 1;
        o.beta1 = 0.9;
        o.beta2 = 0.999;
        o.eps = 1e-8;
        alig_optim_t a, b;
        ck_assert_int_eq(alig_optim_init(&a, &o, n), ALIG_OK);
        ck_assert_int_eq(alig_optim_init(&b, &o, n), ALIG_OK);
        alig_optim_set_pool(&b, pool);
        double na = alig_norm2(g, n), nb = alig_optim_norm2(&b, g);
        ck_assert_msg(memcmp(&na, &nb, sizeof na) == 0, "norm2 %.17g vs %.17g", na, nb);
        for (int step = 0; step < 3; step++) {
            alig_optim_apply(&a, w1, g, 0.5f, 0.1);
            alig_optim_apply(&b, w3, g, 0.5f, 0.1);
        }
        ck_assert_msg(memcmp(w1, w3, sizeof(float) * n) == 0, "kind %d: weights differ", c);
        ck_assert_msg(memcmp(a.v, b.v, sizeof(float) * n) == 0, "kind %d: momentum differs", c);
        /* and the projection held: ||w|| <= 20 up to float rounding */
        ck_assert_double_le(sqrt(alig_norm2(w3, n)), 20.0 * (1 + 1e-6));
        alig_optim_free(&a);
        alig_optim_free(&b);
    }
    alig_pool_free(pool);
    free(w1);
    free(w3);
    free(g);
}
END_TEST

/*
 * The training step records block norms of gradients as backward writes them
 * (alig_optim_norm2_range): any ranges, in any order, overlapping or cutting
 * blocks, must leave alig_optim_norm2 with the bits of the plain norm. The
 * records are used once: a second call, on a changed vector, must see the change
 * (a stale record would return the old block's sum).
 */
START_TEST(norms_recorded_early_give_the_same_bits)
{
    const int64_t n = 9 * ALIG_BLOCK + 77;
    float *g = malloc(sizeof(float) * n);
    uint32_t x = 777;
    for (int64_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        g[i] = (float)((x >> 4) & 0xfff) / 4096.0f - 0.45f;
    }
    alig_optim_opts_t o = opts_(0.5, 0.9, 0, INFINITY);
    alig_optim_t a;
    ck_assert_int_eq(alig_optim_init(&a, &o, n), ALIG_OK);
    alig_pool_t *pool = alig_pool_create(2);
    const int64_t ranges[][2] = {{5 * ALIG_BLOCK + 100, n},         /* the last blocks, the tail */
                                 {ALIG_BLOCK / 2, 3 * ALIG_BLOCK},  /* cuts block 0 */
                                 {2 * ALIG_BLOCK, 4 * ALIG_BLOCK},  /* overlaps the previous */
                                 {4 * ALIG_BLOCK + 1, 5 * ALIG_BLOCK + 100}}; /* no whole block */
    for (int round = 0; round < 3; round++) {
        alig_optim_set_pool(&a, round == 2 ? pool : NULL);
        for (int r = 0; r < 4; r++)
            alig_optim_norm2_range(&a, g, ranges[r][0], ranges[r][1]);
        /* outside every range, so still free to change: blocks 0 and 4 were not whole in one */
        g[0] += 3.0f;
        g[4 * ALIG_BLOCK] -= 2.0f;
        double want = alig_norm2(g, n), got = alig_optim_norm2(&a, g);
        ck_assert_msg(memcmp(&want, &got, sizeof want) == 0, "round %d: %.17g vs %.17g", round,
                      got, want);
        for (int64_t i = 0; i < n; i += 97) /* a new gradient for the next round */
            g[i] *= -1.5f;
        /* without records: the new vector's norm, not the recorded blocks' old sums */
        double plain = alig_norm2(g, n), again = alig_optim_norm2(&a, g);
        ck_assert_msg(memcmp(&plain, &again, sizeof plain) == 0,
                      "round %d: stale records: %.17g vs %.17g", round, again, plain);
    }
    alig_pool_free(pool);
    alig_optim_free(&a);
    free(g);
}
END_TEST

Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("alig");
    tcase_add_test(tc, step_size_clipped_and_unclipped);
    tcase_add_test(tc, plain_step_clipped);
    tcase_add_test(tc, plain_step_unclipped);
    tcase_add_test(tc, standard_nesterov_two_steps);
    tcase_add_test(tc, adjusted_nesterov_two_steps_no_max_lr);
    tcase_add_test(tc, projection_active_and_inactive);
    tcase_add_test(tc, norm2_sums_squares);
    tcase_add_test(tc, sgd_heavy_ball_with_weight_decay);
    tcase_add_test(tc, sgd_nesterov_and_gradient_scale);
    tcase_add_test(tc, adam_and_adamw_two_steps);
    tcase_add_test(tc, learning_rate_schedules);
    tcase_add_test(tc, pool_runs_every_thread_once);
    tcase_add_test(tc, threaded_passes_give_the_same_bits);
    tcase_add_test(tc, norms_recorded_early_give_the_same_bits);
    tcase_add_test(tc, norm2_bits_do_not_depend_on_the_instruction_set);
    suite_add_tcase(s, tc);
    return s;
}
