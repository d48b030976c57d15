/*
 * check_model.c -- forward values worked out by hand, finite-difference
 * gradient checks of every layer and the loss, layout and sum semantics.
 */
#include "check_suites.h"

#include "alig/error.h"
#include "alig/model.h"
#include "alig/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

START_TEST(dense_softmax_by_hand)
{
    alig_model_t m;
    ck_assert_int_eq(alig_model_build(&m, "dense 3", 1, 1, 2, 3, 1), ALIG_OK);
    ck_assert_int_eq(m.n_params, 9);
    ck_assert_int_eq(m.n_tensors, 2);
    ck_assert_str_eq(m.tensors[0].name, "00_dense/weight");
    ck_assert_int_eq(m.tensors[0].shape[0], 3);
    ck_assert_int_eq(m.tensors[0].shape[1], 2);
    ck_assert_str_eq(m.tensors[1].name, "00_dense/bias");
    ck_assert_int_eq(m.tensors[1].offset, 6);
    float w[9] = {1, 0, 0, 1, 1, 1, /* bias */ 0.5f, 0, -1};
    memcpy(m.params, w, sizeof w);
    float *x = alig_model_input(&m);
    x[0] = 1;
    x[1] = 2;
    int32_t y = 0;
    int64_t correct = 0;
    /* logits = W x + b = (1.5, 2, 2); loss = log(e^1.5 + 2 e^2) - 1.5 */
    double loss = alig_model_forward(&m, 1, &y, &correct);
    ck_assert_double_eq_tol(loss, 1.458020087947034, 1e-6);
    ck_assert_int_eq(correct, 0);
    ck_assert_double_eq_tol(m.acts[1][0], 1.5, 1e-6);
    alig_model_backward(&m, 1, &y);
    /* dlogits = softmax - onehot = (0.2327 - 1, 0.3837, 0.3837); gW = dlogits x^T */
    double d0 = 0.23269653761889855 - 1, d1 = 0.38365173119055057;
    ck_assert_double_eq_tol(m.grads[0], d0 * 1, 1e-6);
    ck_assert_double_eq_tol(m.grads[1], d0 * 2, 1e-6);
    ck_assert_double_eq_tol(m.grads[3], d1 * 2, 1e-6);
    ck_assert_double_eq_tol(m.grads[6], d0, 1e-6);
    ck_assert_double_eq_tol(m.grads[8], d1, 1e-6);
    alig_model_free(&m);
}
END_TEST

/* Sign pattern of every ReLU input, to skip finite differences across a kink. */
static uint64_t relu_pattern_(const alig_model_t *m, int64_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == ALIG_LAYER_RELU)
            for (int64_t k = 0; k < n * m->layers[i].in_dim; k++)
                h = (h ^ (uint64_t)(m->acts[i][k] > 0)) * 1099511628211ULL;
    return h;
}

/* central-difference check of every parameter of a model on a random batch */
static void gradcheck_(const char *layers, int c, int h, int w, int classes, int n)
{
    alig_model_t m;
    ck_assert_int_eq(alig_model_build(&m, layers, c, h, w, classes, n), ALIG_OK);
    alig_model_init_params(&m, 3, "auto");
    alig_rng_t r;
    alig_rng_seed(&r, 11, 99);
    for (int64_t i = 0; i < m.n_params; i++) /* nonzero biases too */
        m.params[i] += (float)(0.1 * alig_rng_normal(&r));
    int64_t dim = m.in_dim;
    float *x = malloc(sizeof(float) * (size_t)(n * dim));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n * dim; i++)
        x[i] = (float)alig_rng_normal(&r);
    for (int i = 0; i < n; i++)
        y[i] = (int32_t)alig_rng_below(&r, (uint64_t)classes);

    memcpy(alig_model_input(&m), x, sizeof(float) * (size_t)(n * dim));
    alig_model_forward(&m, n, y, NULL);
    uint64_t base = relu_pattern_(&m, n);
    alig_model_backward(&m, n, y);
    float *an = malloc(sizeof(float) * (size_t)m.n_params);
    memcpy(an, m.grads, sizeof(float) * (size_t)m.n_params);

    const float eps = 1e-3f;
    int64_t checked = 0, skipped = 0;
    double worst = 0;
    for (int64_t i = 0; i < m.n_params; i++) {
        float keep = m.params[i];
        double lp, lm;
        m.params[i] = keep + eps;
        memcpy(alig_model_input(&m), x, sizeof(float) * (size_t)(n * dim));
        lp = alig_model_forward(&m, n, y, NULL);
        uint64_t pp = relu_pattern_(&m, n);
        m.params[i] = keep - eps;
        memcpy(alig_model_input(&m), x, sizeof(float) * (size_t)(n * dim));
        lm = alig_model_forward(&m, n, y, NULL);
        uint64_t pm = relu_pattern_(&m, n);
        m.params[i] = keep;
        if (pp != base || pm != base) {
            skipped++;
            continue;
        }
        double fd = (lp - lm) / (2.0 * (double)eps);
        double err = fabs(fd - an[i]) / (1e-2 + fabs(fd));
        if (err > worst)
            worst = err;
        ck_assert_msg(fabs(fd - an[i]) <= 2e-3 + 1e-2 * fabs(fd),
                      "%s: param %lld: backprop %.6g vs finite difference %.6g", layers,
                      (long long)i, an[i], fd);
        checked++;
    }
    ck_assert_int_le(skipped * 20, m.n_params); /* at most 5% skipped at kinks */
    ck_assert_int_gt(checked, 0);
    free(x);
    free(y);
    free(an);
    alig_model_free(&m);
}

START_TEST(gradcheck_dense_only)
{
    gradcheck_("dense 4", 1, 2, 3, 4, 5);
}
END_TEST

START_TEST(gradcheck_mlp_with_relu)
{
    gradcheck_("dense 7, relu, dense 6, relu, dense 3", 1, 3, 3, 3, 6);
}
END_TEST

START_TEST(gradient_is_a_sum_over_samples)
{
    /* grad(batch of 6) == grad(first 3) + grad(last 3): ranks can add sums.
     * 4 -> 5 -> 3: 5*4 + 5 + 3*5 + 3 = 43 parameters */
    alig_model_t m;
    ck_assert_int_eq(alig_model_build(&m, "dense 5, relu, dense 3", 1, 1, 4, 3, 6), ALIG_OK);
    alig_model_init_params(&m, 5, "auto");
    alig_rng_t r;
    alig_rng_seed(&r, 2, 2);
    float x[24];
    int32_t y[6] = {0, 1, 2, 2, 1, 0};
    for (int i = 0; i < 24; i++)
        x[i] = (float)alig_rng_normal(&r);
    float full[43], half[43];
    memcpy(alig_model_input(&m), x, sizeof x);
    double lfull = alig_model_forward(&m, 6, y, NULL);
    alig_model_backward(&m, 6, y);
    ck_assert_int_eq(m.n_params, 43);
    memcpy(full, m.grads, sizeof full);
    memcpy(alig_model_input(&m), x, sizeof(float) * 12);
    double l1 = alig_model_forward(&m, 3, y, NULL);
    alig_model_backward(&m, 3, y);
    memcpy(half, m.grads, sizeof half);
    memcpy(alig_model_input(&m), x + 12, sizeof(float) * 12);
    double l2 = alig_model_forward(&m, 3, y + 3, NULL);
    alig_model_backward(&m, 3, y + 3);
    ck_assert_double_eq_tol(lfull, l1 + l2, 1e-9);
    for (int i = 0; i < 43; i++)
        ck_assert_double_eq_tol(full[i], half[i] + m.grads[i], 1e-5);
    /* an empty slice contributes zeros */
    alig_model_backward(&m, 0, y);
    for (int i = 0; i < 43; i++)
        ck_assert_float_eq(m.grads[i], 0.0f);
    alig_model_free(&m);
}
END_TEST

START_TEST(init_is_seeded_and_scaled)
{
    alig_model_t a, b;
    alig_model_build(&a, "dense 200, relu, dense 10", 1, 10, 50, 10, 1);
    alig_model_build(&b, "dense 200, relu, dense 10", 1, 10, 50, 10, 1);
    alig_model_init_params(&a, 9, "auto");
    alig_model_init_params(&b, 9, "auto");
    ck_assert_int_eq(memcmp(a.params, b.params, sizeof(float) * (size_t)a.n_params), 0);
    /* He normal before ReLU: var 2/500; Glorot uniform last: var 2/(200+10) */
    double s2 = 0;
    for (int64_t i = 0; i < 200 * 500; i++)
        s2 += (double)a.layers[0].w[i] * a.layers[0].w[i];
    ck_assert_double_eq_tol(s2 / (200 * 500), 2.0 / 500, 0.05 * 2.0 / 500);
    double g2 = 0, gmax = 0;
    for (int64_t i = 0; i < 10 * 200; i++) {
        g2 += (double)a.layers[2].w[i] * a.layers[2].w[i];
        gmax = fmax(gmax, fabs(a.layers[2].w[i]));
    }
    ck_assert_double_eq_tol(g2 / 2000, 2.0 / 210, 0.1 * 2.0 / 210);
    ck_assert_double_le(gmax, sqrt(6.0 / 210));
    for (int i = 0; i < 200; i++)
        ck_assert_float_eq(a.layers[0].b[i], 0.0f);
    alig_model_init_params(&b, 10, "auto");
    ck_assert_int_ne(memcmp(a.params, b.params, sizeof(float) * (size_t)a.n_params), 0);
    alig_model_free(&a);
    alig_model_free(&b);
}
END_TEST

START_TEST(bad_layer_lists)
{
    alig_model_t m;
    ck_assert_int_eq(alig_model_build(&m, "dense 10, tanh", 1, 2, 2, 10, 1), ALIG_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(alig_error_message(), "item 2 'tanh'"));
    ck_assert_int_eq(alig_model_build(&m, "dense 0", 1, 2, 2, 0, 1), ALIG_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(alig_error_message(), "item 1 'dense 0'"));
    ck_assert_int_eq(alig_model_build(&m, "dense 5 7", 1, 2, 2, 0, 1), ALIG_E_CONFIG);
    ck_assert_int_eq(alig_model_build(&m, " , ", 1, 2, 2, 0, 1), ALIG_E_CONFIG);
    ck_assert_int_eq(alig_model_build(&m, "dense 5, relu", 1, 2, 2, 10, 1), ALIG_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(alig_error_message(), "10 classes"));
}
END_TEST

Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_add_test(tc, dense_softmax_by_hand);
    tcase_add_test(tc, gradcheck_dense_only);
    tcase_add_test(tc, gradcheck_mlp_with_relu);
    tcase_add_test(tc, gradient_is_a_sum_over_samples);
    tcase_add_test(tc, init_is_seeded_and_scaled);
    tcase_add_test(tc, bad_layer_lists);
    suite_add_tcase(s, tc);
    return s;
}
