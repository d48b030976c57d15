/*
 * check_layers.c -- the convolutional layers (issue 4): conv against a
 * naive convolution, pooling and batch norm by hand, dropout masks that do
 * not depend on the batch split, finite-difference gradient checks of every
 * layer (strides, padding, bn in training and evaluation mode, res blocks),
 * the layer-list grammar, its errors and the presets.
 */
#include "check_suites.h"

#include "alig/blas.h"
#include "alig/error.h"
#include "alig/model.h"
#include "alig/rng.h"
#include "layers-impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* helpers */

static void fill_normal_(float *x, int64_t n, uint64_t seed)
{
    alig_rng_t r;
    alig_rng_seed(&r, seed, 77);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)alig_rng_normal(&r);
}

/* Build spec for (c, h, w) with n_classes = whatever the list gives, random params. */
/* When > 0, convs lower at most this many samples per GEMM (several chunks per batch). */
static int64_t force_chunk_;

static void build_(alig_model_t *m, const char *spec, int c, int h, int w, int64_t max_batch)
{
    int rc = alig_model_build(m, spec, c, h, w, 0, max_batch);
    ck_assert_msg(rc == ALIG_OK, "%s: %s", spec, alig_error_message());
    for (int i = 0; i < m->n_layers; i++)
        if (force_chunk_ > 0 && m->layers[i].chunk > force_chunk_)
            m->layers[i].chunk = force_chunk_;
    alig_model_init_params(m, 3, "auto");
    alig_rng_t r;
    alig_rng_seed(&r, 11, 99);
    for (int64_t i = 0; i < m->n_params; i++) /* nonzero biases, gamma != 1 */
        m->params[i] += (float)(0.1 * alig_rng_normal(&r));
}

/* Naive convolution of one sample: x (c, h, w), wt (oc, c, k, k) -> y (oc, oh, ow). */
static void naive_conv_(const float *x, int c, int h, int w, const float *wt, const float *b,
                        int oc, int k, int s, int p, float *y)
{
    int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
    for (int o = 0; o < oc; o++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                double acc = b ? b[o] : 0.0;
                for (int ci = 0; ci < c; ci++)
                    for (int a = 0; a < k; a++)
                        for (int bb = 0; bb < k; bb++) {
                            int ih = i * s - p + a, iw = j * s - p + bb;
                            if (ih < 0 || ih >= h || iw < 0 || iw >= w)
                                continue;
                            acc += (double)x[(ci * h + ih) * w + iw] *
                                   wt[((o * c + ci) * k + a) * k + bb];
                        }
                y[(o * oh + i) * ow + j] = (float)acc;
            }
}

/* ------------------------------------------------------------------------ */
/* forward values */

START_TEST(conv_matches_naive_convolution)
{
    struct conv_case {
        const char *spec;
        int c, h, w, oc, k, s, p, bias;
    } cases[] = {
        {"conv 4 k3 p1", 2, 5, 6, 4, 3, 1, 1, 1},
        {"conv 3 k3 s2 p1", 3, 7, 7, 3, 3, 2, 1, 1},
        {"conv 5 k2 s2 nobias", 2, 6, 5, 5, 2, 2, 0, 0},
        {"conv 2 k1", 3, 4, 4, 2, 1, 1, 0, 1},
        {"conv 2 k1 s2 nobias", 3, 5, 5, 2, 1, 2, 0, 0},
        {"conv 3 k5 s3 p2", 2, 9, 8, 3, 5, 3, 2, 1},
        {"conv 2 k3 p2", 1, 3, 3, 2, 3, 1, 2, 1},
        {"conv 3 k5 p2", 2, 6, 7, 3, 5, 1, 2, 1},
    };
    /* one chunk of 3 samples; chunks of 2 and 1; one sample at a time (the GEMM writes
     * the NCHW output in place) */
    for (size_t t = 0; t < 3 * sizeof cases / sizeof cases[0]; t++) {
        const struct conv_case *cs = &cases[t / 3];
        force_chunk_ = (int64_t[]){0, 2, 1}[t % 3];
        alig_model_t m;
        build_(&m, cs->spec, cs->c, cs->h, cs->w, 3);
        ck_assert_int_eq(m.layers[0].chunk, force_chunk_ ? force_chunk_ : 3);
        const alig_layer_t *l = &m.layers[0];
        ck_assert_int_eq(l->kind, ALIG_LAYER_CONV);
        ck_assert_int_eq(m.tensors[0].ndim, 4);
        ck_assert_int_eq(m.tensors[0].shape[0], cs->oc);
        ck_assert_int_eq(m.tensors[0].shape[1], cs->c);
        ck_assert_int_eq(m.tensors[0].shape[2], cs->k);
        ck_assert_int_eq(m.n_tensors, cs->bias ? 2 : 1);
        ck_assert_msg((l->b != NULL) == cs->bias, "%s", cs->spec);
        fill_normal_(alig_model_input(&m), 3 * m.in_dim, t);
        alig_model_forward(&m, 3, NULL, NULL);
        float *want = malloc(sizeof(float) * (size_t)l->out_dim);
        for (int s = 0; s < 3; s++) {
            naive_conv_(alig_model_input(&m) + s * m.in_dim, cs->c, cs->h, cs->w, l->w, l->b,
                        cs->oc, cs->k, cs->s, cs->p, want);
            for (int64_t e = 0; e < l->out_dim; e++)
                ck_assert_msg(fabsf(want[e] - m.acts[1][s * l->out_dim + e]) < 1e-4f,
                              "%s sample %d element %lld: %g vs naive %g", cs->spec, s,
                              (long long)e, m.acts[1][s * l->out_dim + e], want[e]);
        }
        free(want);
        alig_model_free(&m);
    }
    force_chunk_ = 0;
}
END_TEST

START_TEST(pooling_by_hand)
{
    /* one 4x4 channel: 0..15 in row order, with a negative corner */
    float x[16];
    for (int i = 0; i < 16; i++)
        x[i] = (float)i;
    x[0] = -5.0f;
    alig_model_t m;
    ck_assert_int_eq(alig_model_build(&m, "maxpool 2", 1, 4, 4, 0, 1), ALIG_OK);
    memcpy(alig_model_input(&m), x, sizeof x);
    alig_model_forward(&m, 1, NULL, NULL);
    float want_max[4] = {5, 7, 13, 15};
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(m.acts[1][i], want_max[i]);
    alig_model_free(&m);

    /* max pool 3, stride 2, pad 1: padding never wins even over negatives */
    ck_assert_int_eq(alig_model_build(&m, "maxpool 3 s2 p1", 1, 4, 4, 0, 1), ALIG_OK);
    ck_assert_int_eq(m.layers[0].out_h, 2);
    memcpy(alig_model_input(&m), x, sizeof x);
    alig_model_input(&m)[1] = -7.0f;
    alig_model_input(&m)[4] = -6.0f;
    alig_model_input(&m)[5] = -8.0f;
    alig_model_forward(&m, 1, NULL, NULL);
    ck_assert_float_eq(m.acts[1][0], -5.0f); /* window rows -1..1, cols -1..1 */
    ck_assert_float_eq(m.acts[1][3], 15.0f);
    alig_model_free(&m);

    /* avg pool 2 and avg pool 3 s2 p1 (padding counts as zeros: divisor 9) */
    ck_assert_int_eq(alig_model_build(&m, "avgpool 2", 1, 4, 4, 0, 1), ALIG_OK);
    memcpy(alig_model_input(&m), x, sizeof x);
    alig_model_forward(&m, 1, NULL, NULL);
    ck_assert_float_eq_tol(m.acts[1][0], (-5 + 1 + 4 + 5) / 4.0f, 1e-6f);
    ck_assert_float_eq_tol(m.acts[1][3], (10 + 11 + 14 + 15) / 4.0f, 1e-6f);
    alig_model_free(&m);
    ck_assert_int_eq(alig_model_build(&m, "avgpool 3 s2 p1", 1, 4, 4, 0, 1), ALIG_OK);
    memcpy(alig_model_input(&m), x, sizeof x);
    alig_model_forward(&m, 1, NULL, NULL);
    ck_assert_float_eq_tol(m.acts[1][0], (-5 + 1 + 4 + 5) / 9.0f, 1e-6f);
    ck_assert_float_eq_tol(m.acts[1][3], (5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15) / 9.0f, 1e-6f);
    alig_model_free(&m);

    /* global average pool over 2 channels, then flatten keeps the values */
    ck_assert_int_eq(alig_model_build(&m, "gap, flatten", 2, 2, 2, 0, 1), ALIG_OK);
    float y[8] = {1, 2, 3, 4, -1, -1, -1, 3};
    memcpy(alig_model_input(&m), y, sizeof y);
    alig_model_forward(&m, 1, NULL, NULL);
    ck_assert_int_eq(m.n_classes, 2);
    ck_assert_float_eq(m.acts[2][0], 2.5f);
    ck_assert_float_eq(m.acts[2][1], 0.0f);
    alig_model_free(&m);
}
END_TEST

START_TEST(batch_norm_statistics)
{
    /* 3 samples of (2 channels, 2x2): training uses the batch statistics and
     * moves the running ones by momentum 0.1 with the unbiased variance */
    alig_model_t m;
    ck_assert_int_eq(alig_model_build(&m, "bn", 2, 2, 2, 0, 3), ALIG_OK);
    alig_model_init_params(&m, 1, "auto");
    ck_assert_int_eq(m.n_params, 4);
    ck_assert_int_eq(m.n_state, 4);
    ck_assert_int_eq(m.n_state_tensors, 2);
    ck_assert_str_eq(m.tensors[0].name, "00_bn/weight");
    ck_assert_str_eq(m.tensors[1].name, "00_bn/bias");
    ck_assert_str_eq(m.state_tensors[0].name, "00_bn/running_mean");
    ck_assert_str_eq(m.state_tensors[1].name, "00_bn/running_var");
    ck_assert_float_eq(m.layers[0].w[0], 1.0f);
    ck_assert_float_eq(m.layers[0].run_var[1], 1.0f);
    m.layers[0].w[1] = 2.0f; /* gamma of channel 1 */
    m.layers[0].b[1] = 0.5f; /* beta */
    float *x = alig_model_input(&m);
    fill_normal_(x, 24, 5);
    double mean[2] = {0, 0}, var[2] = {0, 0};
    for (int c = 0; c < 2; c++) {
        for (int s = 0; s < 3; s++)
            for (int q = 0; q < 4; q++)
                mean[c] += x[s * 8 + c * 4 + q] / 12.0;
        for (int s = 0; s < 3; s++)
            for (int q = 0; q < 4; q++)
                var[c] += pow(x[s * 8 + c * 4 + q] - mean[c], 2) / 12.0;
    }
    ck_assert_int_eq(m.training, 1);
    alig_model_forward(&m, 3, NULL, NULL);
    for (int c = 0; c < 2; c++) {
        ck_assert_double_eq_tol(m.layers[0].run_mean[c], 0.1 * mean[c], 1e-6);
        ck_assert_double_eq_tol(m.layers[0].run_var[c], 0.9 + 0.1 * var[c] * 12.0 / 11.0, 1e-6);
        for (int s = 0; s < 3; s++) {
            double g = c ? 2.0 : 1.0, b = c ? 0.5 : 0.0;
            double want = g * (x[s * 8 + c * 4 + 1] - mean[c]) / sqrt(var[c] + 1e-5) + b;
            ck_assert_double_eq_tol(m.acts[1][s * 8 + c * 4 + 1], want, 1e-5);
        }
    }
    /* evaluation: the running statistics, which the forward pass leaves alone */
    float rm = m.layers[0].run_mean[1], rv = m.layers[0].run_var[1];
    m.training = 0;
    alig_model_forward(&m, 3, NULL, NULL);
    ck_assert_float_eq(m.layers[0].run_mean[1], rm);
    ck_assert_float_eq(m.layers[0].run_var[1], rv);
    double want = 2.0 * (x[8 + 4 + 2] - rm) / sqrt(rv + 1e-5) + 0.5;
    ck_assert_double_eq_tol(m.acts[1][8 + 4 + 2], want, 1e-5);
    /* init_params resets the running statistics */
    alig_model_init_params(&m, 1, "auto");
    ck_assert_float_eq(m.layers[0].run_mean[1], 0.0f);
    ck_assert_float_eq(m.layers[0].run_var[1], 1.0f);
    alig_model_free(&m);
}
END_TEST

START_TEST(dropout_masks_do_not_depend_on_the_split)
{
    alig_model_t m;
    ck_assert_int_eq(alig_model_build(&m, "dropout 0.25", 4, 8, 8, 0, 4), ALIG_OK);
    m.noise_seed = 9;
    m.noise_step = 17;
    int64_t ids[4] = {100, 7, 31, 5};
    float *x = alig_model_input(&m);
    for (int i = 0; i < 4 * 256; i++)
        x[i] = 1.0f + (float)i;
    float whole[4 * 256];
    m.sample_ids = ids;
    alig_model_forward(&m, 4, NULL, NULL);
    memcpy(whole, m.acts[1], sizeof whole);
    int64_t dropped = 0;
    for (int i = 0; i < 4 * 256; i++) {
        ck_assert(whole[i] == 0.0f || fabsf(whole[i] - x[i] / 0.75f) < 1e-3f);
        dropped += whole[i] == 0.0f;
        int keep = alig_dropout_keep(9, 17, ids[i / 256], 0, i % 256, 0.25f);
        ck_assert_int_eq(keep, whole[i] != 0.0f);
    }
    ck_assert_int_gt(dropped, 200); /* ~256 of 1024 */
    ck_assert_int_lt(dropped, 320);
    /* the same samples in two calls of two (two ranks) give the same masks */
    float part[2 * 256];
    memcpy(part, x + 2 * 256, sizeof part);
    m.sample_ids = ids + 2;
    memcpy(alig_model_input(&m), part, sizeof part);
    alig_model_forward(&m, 2, NULL, NULL);
    ck_assert_int_eq(memcmp(m.acts[1], whole + 2 * 256, sizeof part), 0);
    /* another step draws other masks; evaluation mode is the identity */
    m.noise_step = 18;
    alig_model_forward(&m, 2, NULL, NULL);
    ck_assert_int_ne(memcmp(m.acts[1], whole + 2 * 256, sizeof part), 0);
    m.training = 0;
    alig_model_forward(&m, 2, NULL, NULL);
    ck_assert_int_eq(memcmp(m.acts[1], part, sizeof part), 0);
    alig_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* finite-difference gradient checks */

/* Which side of every kink the forward pass took: ReLU signs and max-pool argmaxes. */
static uint64_t kinks_(const alig_model_t *m, int64_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < m->n_layers; i++) {
        const alig_layer_t *l = &m->layers[i];
        if (l->kind == ALIG_LAYER_RELU && !l->fused) /* folded: the pool's picks and signs */
            for (int64_t k = 0; k < n * l->in_dim; k++)
                h = (h ^ (uint64_t)(m->acts[l->src][k] > 0)) * 1099511628211ULL;
        if (l->kind == ALIG_LAYER_MAXPOOL) {
            /* with a relu folded in, the pick in a window without a positive value
             * passes no gradient: not a kink */
            const int32_t *a = (const int32_t *)(m->aux + l->aux);
            const float *out = m->acts[i + 1];
            for (int64_t k = 0; k < n * l->out_dim; k++)
                h = (h ^ (uint64_t)(l->fused && !(out[k] > 0) ? -1 : a[k])) * 1099511628211ULL;
        }
    }
    return h;
}

/*
 * Central differences of the summed loss for (up to max_checked, spread
 * evenly) parameters of `spec` on n random samples of (c, h, w), against
 * backprop. training selects bn/dropout mode. Perturbations that cross a
 * kink are skipped (at most 5%).
 */
static void gradcheck_(const char *spec, int c, int h, int w, int n, int training,
                       int64_t max_checked)
{
    alig_model_t m;
    build_(&m, spec, c, h, w, n);
    m.training = training;
    m.noise_seed = 5;
    m.noise_step = 3;
    int classes = m.n_classes;
    int64_t dim = m.in_dim;
    float *x = malloc(sizeof(float) * (size_t)(n * dim));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)n);
    fill_normal_(x, n * dim, 21);
    alig_rng_t r;
    alig_rng_seed(&r, 4, 4);
    for (int i = 0; i < n; i++)
        y[i] = (int32_t)alig_rng_below(&r, (uint64_t)classes);

    memcpy(alig_model_input(&m), x, sizeof(float) * (size_t)(n * dim));
    alig_model_forward(&m, n, y, NULL);
    uint64_t base = kinks_(&m, n);
    alig_model_backward(&m, n, y);
    float *an = malloc(sizeof(float) * (size_t)m.n_params);
    memcpy(an, m.grads, sizeof(float) * (size_t)m.n_params);
    double gmax = 0;
    for (int64_t i = 0; i < m.n_params; i++) {
        ck_assert_msg(isfinite(an[i]), "%s: gradient %lld not finite", spec, (long long)i);
        gmax = fmax(gmax, fabs(an[i]));
    }
    ck_assert_msg(gmax > 1e-3, "%s: all gradients ~0", spec);

    const float eps = 1e-3f;
    int64_t step = m.n_params > max_checked ? m.n_params / max_checked : 1;
    int64_t checked = 0, skipped = 0;
    for (int64_t i = 0; i < m.n_params; i += step) {
        float keep = m.params[i];
        m.params[i] = keep + eps;
        memcpy(alig_model_input(&m), x, sizeof(float) * (size_t)(n * dim));
        double lp = alig_model_forward(&m, n, y, NULL);
        uint64_t pp = kinks_(&m, n);
        m.params[i] = keep - eps;
        memcpy(alig_model_input(&m), x, sizeof(float) * (size_t)(n * dim));
        double lm = alig_model_forward(&m, n, y, NULL);
        uint64_t pm = kinks_(&m, n);
        m.params[i] = keep;
        if (pp != base || pm != base) {
            skipped++;
            continue;
        }
        double fd = (lp - lm) / (2.0 * (double)eps);
        ck_assert_msg(fabs(fd - an[i]) <= 3e-3 + 1e-2 * fabs(fd),
                      "%s (%s mode): param %lld: backprop %.6g vs finite difference %.6g", spec,
                      training ? "training" : "evaluation", (long long)i, an[i], fd);
        checked++;
    }
    ck_assert_msg(skipped * 20 <= checked + skipped, "%s: %lld of %lld skipped at kinks", spec,
                  (long long)skipped, (long long)(checked + skipped));
    ck_assert_int_gt(checked, 0);
    free(x);
    free(y);
    free(an);
    alig_model_free(&m);
}

START_TEST(gradcheck_conv_padding_stride_bias)
{
    gradcheck_("conv 3 k3 p1, dense 4", 2, 5, 5, 3, 1, 1 << 20);
    gradcheck_("conv 4 k3 s2 p1, relu, conv 3 k2 nobias, dense 3", 2, 7, 6, 3, 1, 1 << 20);
    gradcheck_("conv 3 k5 s3 p2, conv 2 k3 p2, dense 3", 2, 9, 8, 2, 1, 1 << 20);
}
END_TEST

START_TEST(gradcheck_conv_chunks)
{
    /* 5 samples lowered 2 at a time: gW and gb accumulate over chunks, the last one
     * partial; then 3 samples one at a time */
    force_chunk_ = 2;
    gradcheck_("conv 3 k3 p1, relu, conv 2 k3 s2 nobias, dense 3", 2, 6, 5, 5, 1, 1 << 20);
    gradcheck_("conv 2 k1, conv 2 k1 s2, dense 3", 3, 4, 4, 5, 1, 1 << 20);
    /* one sample per GEMM: dY read in place from the NCHW gradient */
    force_chunk_ = 1;
    gradcheck_("conv 3 k3 p1, relu, conv 2 k3 s2 nobias, dense 3", 2, 6, 5, 3, 1, 1 << 20);
    force_chunk_ = 0;
}
END_TEST

START_TEST(gradcheck_conv_1x1)
{
    /* 1x1 convolutions, stride 1 and 2 */
    gradcheck_("conv 3 k1 s2, conv 2 k1, conv 2 k1 nobias, dense 3", 3, 5, 5, 3, 1, 1 << 20);
}
END_TEST

START_TEST(gradcheck_pooling)
{
    gradcheck_("conv 3 k3 s2, maxpool 2, dense 3", 2, 9, 9, 3, 1, 1 << 20);
    gradcheck_("conv 3 k3 p1, maxpool 2, dense 3", 2, 6, 8, 3, 1, 1 << 20);  /* tiles the plane */
    gradcheck_("conv 3 k3 p1, maxpool 2, dense 3", 2, 5, 7, 3, 1, 1 << 20);  /* odd: a row left */
    gradcheck_("conv 4 k3 p1, maxpool 3 s2 p1, dense 3", 2, 6, 6, 2, 1, 1 << 20);
    gradcheck_("conv 3 k3 p1, avgpool 2, dense 3", 2, 6, 6, 3, 1, 1 << 20);
    gradcheck_("conv 3 k3 p1, avgpool 3 s2 p1, dense 3", 2, 5, 5, 2, 1, 1 << 20);
    gradcheck_("conv 4 k3 p1, gap, dense 3", 2, 5, 5, 3, 1, 1 << 20);
    gradcheck_("conv 2 k3, flatten, dense 3", 2, 5, 5, 3, 1, 1 << 20);
    /* a relu folded into the max pool after it (alig_model_set_fusion) */
    gradcheck_("conv 3 k3 p1, relu, maxpool 2, dense 3", 2, 6, 8, 3, 1, 1 << 20);
    gradcheck_("conv 3 k3 p1, relu, maxpool 2, conv 4 k3 p1, relu, maxpool 2, dense 3", 1, 8, 8,
               3, 1, 1 << 20);
}
END_TEST

/*
 * Folding a relu into the 2x2 max pool after it gives the same bits as running
 * them apart: relu(max) = max(relu), and the first maximum in row order wins
 * either way among positive values; where the window has none, the gradient is
 * 0 whichever pixel the pool picked. A conv whose output only that relu reads
 * also computes them from its workspace (pool_node), in chunks of several
 * samples (8x8 planes) or one (24x24), with and without a bias: the same bits
 * again. Inputs on a coarse grid, so windows have ties and all-negative ones. A
 * relu with another consumer is not folded; a conv with another consumer keeps
 * its output.
 */
START_TEST(relu_folded_into_max_pool_gives_the_same_bits)
{
    static const struct {
        const char *spec;
        int h, w;
        int folded; /* relu and pool nodes marked */
        int convs;  /* convs that compute them */
    } cases[] = {
        {"conv 4 k3 p1, relu, maxpool 2, conv 6 k3 p1, relu, maxpool 2, dense 5", 8, 8, 4, 2},
        {"conv 4 k3 p1 nobias, relu, maxpool 2, conv 6 k3 p1 nobias, relu, maxpool 2, dense 5", 8,
         8, 4, 2},
        {"conv 3 k3 p1, relu, maxpool 2, dense 5", 24, 24, 2, 1},            /* one per chunk */
        {"conv 3 k3 p1 nobias, relu, maxpool 2, dense 5", 24, 24, 2, 1},
        /* the relu's input shared: nothing folded */
        {"conv 4 k3 p1, res(relu, maxpool 2 | maxpool 2), dense 5", 8, 8, 0, 0},
        /* the relu writes the conv's output gradient first: folded, but the conv keeps its output */
        {"conv 4 k3 p1, res(maxpool 2 | relu, maxpool 2), dense 5", 8, 8, 2, 0},
        {"conv 4 k3 p1, relu, maxpool 3 s2 p1, dense 5", 8, 8, 0, 0},             /* not 2x2 */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        alig_model_t m;
        int n = 6;
        build_(&m, cases[c].spec, 2, cases[c].h, cases[c].w, n);
        int folded = 0, convs = 0;
        for (int i = 0; i < m.n_layers; i++) {
            folded += m.layers[i].fused != 0;
            convs += m.layers[i].pool_node != 0;
        }
        ck_assert_msg(folded == cases[c].folded && convs == cases[c].convs,
                      "%s: %d nodes folded, %d convs computing them", cases[c].spec, folded, convs);
        for (int i = 0; i < m.n_layers; i++)
            if (m.layers[i].pool_node)
                ck_assert_msg((m.layers[i].chunk == 1) == (cases[c].h == 24), "%s: chunk %lld",
                              cases[c].spec, (long long)m.layers[i].chunk);
        int64_t dim = m.in_dim;
        float *x = malloc(sizeof(float) * (size_t)(n * dim));
        fill_normal_(x, n * dim, 8);
        for (int64_t k = 0; k < n * dim; k++)
            x[k] = roundf(x[k] * 2.0f) / 2.0f; /* ties in the windows */
        int32_t y[6] = {0, 1, 2, 3, 4, 0};
        float *g[2];
        double loss[2];
        for (int on = 1; on >= 0; on--) {
            alig_model_set_fusion(&m, on);
            memcpy(alig_model_input(&m), x, sizeof(float) * (size_t)(n * dim));
            loss[on] = alig_model_forward(&m, n, y, NULL);
            alig_model_backward(&m, n, y);
            g[on] = malloc(sizeof(float) * (size_t)m.n_params);
            memcpy(g[on], m.grads, sizeof(float) * (size_t)m.n_params);
        }
        ck_assert_msg(loss[0] == loss[1], "%s: loss %.17g vs %.17g", cases[c].spec, loss[1],
                      loss[0]);
        ck_assert_msg(memcmp(g[0], g[1], sizeof(float) * (size_t)m.n_params) == 0,
                      "%s: gradients differ", cases[c].spec);
        free(g[0]);
        free(g[1]);
        free(x);
        alig_model_free(&m);
    }
}
END_TEST

START_TEST(gradcheck_batch_norm)
{
    gradcheck_("conv 3 k3 p1, bn, relu, conv 2 k3, bn, dense 3", 2, 5, 5, 4, 1, 1 << 20);
    gradcheck_("conv 3 k3 p1, bn, relu, conv 2 k3, bn, dense 3", 2, 5, 5, 4, 0, 1 << 20);
    gradcheck_("dense 6, bn, relu, dense 3", 1, 3, 3, 5, 1, 1 << 20); /* BatchNorm1d */
}
END_TEST

START_TEST(gradcheck_dropout)
{
    gradcheck_("conv 3 k3 p1, dropout 0.3, relu, dense 3", 2, 5, 5, 3, 1, 1 << 20);
    gradcheck_("dense 8, dropout 0.5, dense 3", 1, 3, 3, 3, 1, 1 << 20);
    gradcheck_("dense 8, dropout 0.5, dense 3", 1, 3, 3, 3, 0, 1 << 20);
}
END_TEST

START_TEST(gradcheck_residual_blocks)
{
    /* identity shortcut; the block input also feeds two consumers */
    gradcheck_("conv 4 k3 p1, res(bn, relu, conv 4 k3 p1, bn, relu, conv 4 k3 p1), gap, dense 3",
               2, 5, 5, 3, 1, 1 << 20);
    /* projection shortcut after a shared bn-relu, stride 2; nested and repeated */
    gradcheck_("conv 3 k3 p1, bn, relu, res(conv 4 k3 s2 p1, bn, relu, conv 4 k3 p1 | conv 4 k1 "
               "s2 nobias), 2*res(relu, res(conv 4 k3 p1)), gap, dense 3",
               2, 5, 5, 2, 1, 1 << 20);
    /* a res block reading the data directly; nested identity blocks sharing one input
     * (the inner add then adds into a gradient the outer add wrote) */
    gradcheck_("res(conv 2 k3 p1 | conv 2 k1), relu, res(res(conv 2 k3 p1)), dense 3", 2, 4, 4, 3,
               1, 1 << 20);
}
END_TEST

START_TEST(gradcheck_wrn_sampled)
{
    /* the real preset, on a few parameters of each tensor region */
    char spec[2048];
    ck_assert_int_eq(alig_model_preset("wrn-10-1", 3, spec, sizeof spec), ALIG_OK);
    gradcheck_(spec, 3, 8, 8, 3, 1, 300);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* grammar, errors, presets */

static void expect_bad_(const char *spec, int c, int h, int w, const char *needle)
{
    alig_model_t m;
    int rc = alig_model_build(&m, spec, c, h, w, 0, 1);
    ck_assert_msg(rc == ALIG_E_CONFIG, "'%s' was accepted", spec);
    ck_assert_msg(strstr(alig_error_message(), needle) != NULL, "'%s': message '%s' lacks '%s'",
                  spec, alig_error_message(), needle);
}

START_TEST(bad_layer_lists)
{
    expect_bad_("conv 0", 1, 4, 4, "item 1 'conv 0'");
    expect_bad_("conv 8 k3 x2", 1, 4, 4, "unexpected 'x2'");
    expect_bad_("conv 8 k3 k3", 1, 4, 4, "kernel size");
    expect_bad_("conv 8 k5", 1, 3, 3, "does not fit the 1x3x3 input");
    expect_bad_("maxpool 2 p2", 1, 4, 4, "at most half");
    expect_bad_("dropout 1", 1, 4, 4, "[0, 1)");
    expect_bad_("dropout x", 1, 4, 4, "dropout P");
    expect_bad_("bn 3", 1, 4, 4, "expected one of");
    /* the hint's projection gives the body's shape (found by a new-user trial: it said
     * s2 whatever the sizes) */
    expect_bad_("res(conv 4 k3 p1)", 3, 4, 4, "res(... | conv 4 k1 nobias)");
    expect_bad_("res(conv 5 k3 s2 p1)", 2, 7, 7, "res(... | conv 5 k1 s2 nobias)");
    expect_bad_("res(conv 5 k3 s3 p1)", 2, 9, 9, "res(... | conv 5 k1 s3 nobias)");
    expect_bad_("res(conv 2 k3 | conv 2 k3 p1)", 2, 7, 7,
                "no 1x1 projection of the block's input (2x7x7) gives 5x5");
    expect_bad_("res(conv 4 k3 p1 | conv 4 k1 | conv 4 k1)", 3, 4, 4, "one '|'");
    expect_bad_("res()", 3, 4, 4, "empty res body");
    expect_bad_("res(relu |)", 3, 4, 4, "empty shortcut");
    expect_bad_("res(relu", 3, 4, 4, "unbalanced");
    expect_bad_("relu)", 3, 4, 4, "unbalanced");
    expect_bad_("res(relu) relu", 3, 4, 4, "after the closing");
    expect_bad_("relu, , relu", 3, 4, 4, "empty item");
    expect_bad_("0*relu", 3, 4, 4, "[1, 1000]");
    expect_bad_("3*", 3, 4, 4, "nothing to repeat");
    expect_bad_("(relu | relu)", 3, 4, 4, "inside res");
}
END_TEST

START_TEST(grammar_and_layout)
{
    alig_model_t m;
    ck_assert_int_eq(alig_model_build(&m, "conv 4 k3 p1, bn, relu, 2*res(conv 4 k3 p1, bn | "
                                          "relu), (maxpool 2, relu), dense 3",
                                      2, 6, 6, 3, 2),
                     ALIG_OK);
    /* conv bn relu [conv bn relu add] x2 maxpool relu dense */
    ck_assert_int_eq(m.n_layers, 14);
    ck_assert_int_eq(m.layers[6].kind, ALIG_LAYER_ADD);
    ck_assert_int_eq(m.layers[6].src, 5);  /* body: the bn */
    ck_assert_int_eq(m.layers[6].src2, 6); /* shortcut: the relu */
    ck_assert_int_eq(m.layers[5].src, 3);  /* the shortcut relu reads the block input */
    ck_assert_int_eq(m.layers[3].src, 3);
    /* backward order: the shortcut relu (node 5) reaches act 3 first, the body conv adds */
    ck_assert_int_eq(m.layers[5].acc_src, 0);
    ck_assert_int_eq(m.layers[3].acc_src, 1);
    ck_assert_str_eq(m.layers[11].name, "11_maxpool");
    ck_assert_int_eq(m.layers[13].in_dim, 4 * 3 * 3);
    ck_assert_str_eq(m.tensors[0].name, "00_conv/weight");
    ck_assert_str_eq(m.tensors[2].name, "01_bn/weight");
    ck_assert_int_eq(m.n_state, 3 * 2 * 4);
    ck_assert_str_eq(m.state_tensors[2].name, "04_bn/running_mean");
    ck_assert_ptr_nonnull(m.spec);
    char buf[4096];
    alig_model_summary(&m, buf, sizeof buf);
    ck_assert_ptr_nonnull(strstr(buf, "06_add 04_bn + 05_relu -> 4x6x6"));
    /* a node that reads another than the node before names it, in parentheses closed
     * (a new-user trial found "(input: 04_add" in checkpoints' /model/summary) */
    int named = 0;
    for (const char *p = strstr(buf, " (input: "); p; p = strstr(p + 1, " (input: ")) {
        const char *eol = strchr(p, '\n');
        ck_assert_msg(eol && eol[-1] == ')', "unclosed: %.*s", (int)(eol ? eol - p : 40), p);
        named++;
    }
    ck_assert_int_gt(named, 0);
    alig_model_free(&m);
}
END_TEST

START_TEST(presets)
{
    char spec[4096];
    alig_model_t m;
    ck_assert_int_eq(alig_model_preset("mlp", 10, spec, sizeof spec), ALIG_OK);
    ck_assert_str_eq(spec, "dense 1024, relu, dense 1024, relu, dense 10");
    ck_assert_int_eq(alig_model_preset("cnn", 10, spec, sizeof spec), ALIG_OK);
    ck_assert_int_eq(alig_model_build(&m, spec, 1, 28, 28, 10, 1), ALIG_OK);
    /* 32*9+32 + 64*32*9+64 + 3136*128+128 + 128*10+10 */
    ck_assert_int_eq(m.n_params, 320 + 18496 + 401536 + 1290);
    alig_model_free(&m);

    ck_assert_int_eq(alig_model_preset("wrn-16-4", 10, spec, sizeof spec), ALIG_OK);
    ck_assert_int_eq(alig_model_build(&m, spec, 3, 32, 32, 10, 1), ALIG_OK);
    /* WRN-16-4: 2.7M parameters in Zagoruyko & Komodakis' table; exactly
     * convs 2,742,704 (1x1 shortcuts included) + bn 3,616 + dense 2,570 */
    ck_assert_int_eq(m.n_params, 2748890);
    int convs = 0, adds = 0, bns = 0;
    for (int i = 0; i < m.n_layers; i++) {
        convs += m.layers[i].kind == ALIG_LAYER_CONV;
        adds += m.layers[i].kind == ALIG_LAYER_ADD;
        bns += m.layers[i].kind == ALIG_LAYER_BN;
    }
    ck_assert_int_eq(convs, 1 + 3 * 2 * 2 + 3); /* stem, two per block, 3 projections */
    ck_assert_int_eq(adds, 6);
    ck_assert_int_eq(bns, 13);
    ck_assert_int_eq(m.layers[m.n_layers - 1].in_dim, 256);
    alig_model_free(&m);

    ck_assert_int_eq(alig_model_preset("wrn-28-10-0.3", 100, spec, sizeof spec), ALIG_OK);
    ck_assert_ptr_nonnull(strstr(spec, "dropout 0.3, conv 640 k3 p1 nobias"));
    ck_assert_ptr_nonnull(strstr(spec, "dense 100"));
    ck_assert_int_eq(alig_model_preset("wrn-15-4", 10, spec, sizeof spec), ALIG_E_CONFIG);
    ck_assert_int_eq(alig_model_preset("wrn-16-4-x", 10, spec, sizeof spec), ALIG_E_CONFIG);
    ck_assert_int_eq(alig_model_preset("wrn-16", 10, spec, sizeof spec), ALIG_E_CONFIG);
    ck_assert_int_eq(alig_model_preset("resnet", 10, spec, sizeof spec), ALIG_E_CONFIG);
    ck_assert_ptr_nonnull(strstr(alig_error_message(), "unknown preset"));
}
END_TEST

START_TEST(im2col_col2im_adjoint)
{
    /* <im2col(x), c> == <x, col2im(c)>: col2im is the transpose the backward pass needs;
     * strided and "same" windows (the shifted-copy path), rows ld > oh*ow apart whose
     * gaps (another sample's columns) im2col must leave alone */
    struct {
        int k, s, p;
    } cases[] = {{3, 2, 1}, {3, 1, 1}, {5, 1, 2}, {1, 1, 0}, {3, 1, 2}, {2, 2, 0}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int c = 2, h = 7, w = 6, k = cases[t].k, s = cases[t].s, p = cases[t].p;
        int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
        int64_t pp = (int64_t)oh * ow, ld = pp + 3, rows = (int64_t)c * k * k, nc = rows * ld;
        float x[84], dx[84], *col = malloc(sizeof(float) * (size_t)nc),
                             *cc = malloc(sizeof(float) * (size_t)nc);
        fill_normal_(x, 84, 1 + t);
        fill_normal_(cc, nc, 2 + t);
        for (int64_t i = 0; i < nc; i++)
            col[i] = 1234.0f;
        alig_im2col(x, c, h, w, k, s, p, oh, ow, col, ld);
        double a = 0, b = 0;
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t q = 0; q < pp; q++)
                a += (double)col[r * ld + q] * cc[r * ld + q];
            for (int64_t q = pp; q < ld; q++)
                ck_assert_float_eq(col[r * ld + q], 1234.0f);
        }
        memset(dx, 0, sizeof dx);
        alig_col2im(cc, ld, c, h, w, k, s, p, oh, ow, dx);
        for (int i = 0; i < 84; i++)
            b += (double)x[i] * dx[i];
        ck_assert_msg(fabs(a - b) <= 1e-4 * fabs(a) + 1e-4, "k%d s%d p%d: %g vs %g", k, s, p, a, b);
        free(col);
        free(cc);
    }
}
END_TEST

/*
 * OpenBLAS's kernels (alig/blas.h): a choice weaker than the CPU allows is
 * replaced by the kernels of the CPU's level; a choice as good or better, or a
 * name we do not know, is kept.
 */
START_TEST(blas_kernel_choice)
{
    ck_assert_int_eq(alig_blas_core_isa("Prescott"), ALIG_ISA_SSE);
    ck_assert_int_eq(alig_blas_core_isa("prescott"), ALIG_ISA_SSE);
    ck_assert_int_eq(alig_blas_core_isa("Opteron(SSE3)"), ALIG_ISA_SSE);
    ck_assert_int_eq(alig_blas_core_isa("Sandybridge"), ALIG_ISA_AVX);
    ck_assert_int_eq(alig_blas_core_isa("Zen"), ALIG_ISA_AVX2);
    ck_assert_int_eq(alig_blas_core_isa("Cooperlake"), ALIG_ISA_AVX512);
    ck_assert_int_eq(alig_blas_core_isa("NeoverseN1"), -1);
    ck_assert_int_eq(alig_blas_core_isa(NULL), -1);
    ck_assert_str_eq(alig_blas_better_core("Prescott", ALIG_ISA_AVX512), "SkylakeX");
    ck_assert_str_eq(alig_blas_better_core("Prescott", ALIG_ISA_AVX2), "Haswell");
    ck_assert_str_eq(alig_blas_better_core("Core2", ALIG_ISA_AVX), "Sandybridge");
    ck_assert_str_eq(alig_blas_better_core("Zen", ALIG_ISA_AVX512), "SkylakeX");
    ck_assert_ptr_null(alig_blas_better_core("Haswell", ALIG_ISA_AVX2));
    ck_assert_ptr_null(alig_blas_better_core("Cooperlake", ALIG_ISA_AVX512));
    ck_assert_ptr_null(alig_blas_better_core("SkylakeX", ALIG_ISA_AVX2));
    ck_assert_ptr_null(alig_blas_better_core("Prescott", ALIG_ISA_SSE));
    ck_assert_ptr_null(alig_blas_better_core("NeoverseN1", ALIG_ISA_AVX512));
    ck_assert_ptr_null(alig_blas_better_core(NULL, ALIG_ISA_AVX512));
}
END_TEST

Suite *layers_suite(void)
{
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("layers");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, conv_matches_naive_convolution);
    tcase_add_test(tc, im2col_col2im_adjoint);
    tcase_add_test(tc, pooling_by_hand);
    tcase_add_test(tc, batch_norm_statistics);
    tcase_add_test(tc, dropout_masks_do_not_depend_on_the_split);
    tcase_add_test(tc, gradcheck_conv_padding_stride_bias);
    tcase_add_test(tc, gradcheck_conv_chunks);
    tcase_add_test(tc, gradcheck_conv_1x1);
    tcase_add_test(tc, gradcheck_pooling);
    tcase_add_test(tc, relu_folded_into_max_pool_gives_the_same_bits);
    tcase_add_test(tc, gradcheck_batch_norm);
    tcase_add_test(tc, gradcheck_dropout);
    tcase_add_test(tc, gradcheck_residual_blocks);
    tcase_add_test(tc, gradcheck_wrn_sampled);
    tcase_add_test(tc, bad_layer_lists);
    tcase_add_test(tc, grammar_and_layout);
    tcase_add_test(tc, presets);
    tcase_add_test(tc, blas_kernel_choice);
    suite_add_tcase(s, tc);
    return s;
}
