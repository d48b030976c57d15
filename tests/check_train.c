/*
 * check_train.c -- the training step on one rank (no MPI): exact weighting
 * of a partial batch, drop_last, learning on a small synthetic set, and
 * data errors found at start.
 */
#include "check_suites.h"

#include "alig/comm.h"
#include "alig/config.h"
#include "alig/error.h"
#include "alig/rng.h"
#include "alig/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir_[512];

/* Config over a synthetic set DIR/t-{images,labels}.idx of n samples. */
static void small_config_(alig_config_t *cfg, int n, int batch, int classes)
{
    snprintf(dir_, sizeof dir_, "%s", test_tmpdir());
    char prefix[64];
    snprintf(prefix, sizeof prefix, "alig-train-%d", (int)getpid());
    ck_assert_int_eq(test_make_dataset(dir_, prefix, n, 4, 4, classes, 1), 0);
    alig_config_defaults(cfg);
    snprintf(cfg->train_images, sizeof cfg->train_images, "%s/%s-images.idx", dir_, prefix);
    snprintf(cfg->train_labels, sizeof cfg->train_labels, "%s/%s-labels.idx", dir_, prefix);
    snprintf(cfg->test_images, sizeof cfg->test_images, "%s", cfg->train_images);
    snprintf(cfg->test_labels, sizeof cfg->test_labels, "%s", cfg->train_labels);
    cfg->batch_size = batch;
    cfg->eval_batch_size = 7;
    snprintf(cfg->layers, sizeof cfg->layers, "dense 8, relu, dense %d", classes);
    cfg->momentum = 0.0;
    cfg->max_lr = NAN;
    cfg->max_norm = INFINITY;
    cfg->threads = 1;
}

static void remove_files_(const alig_config_t *cfg)
{
    remove(cfg->train_images);
    remove(cfg->train_labels);
}

START_TEST(partial_last_batch_is_the_mean_over_its_samples)
{
    alig_config_t cfg;
    small_config_(&cfg, 10, 4, 3); /* batches of 4, 4, 2 */
    alig_comm_t *comm = alig_comm_init_self();
    alig_trainer_t t;
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    ck_assert_int_eq(t.batches_per_epoch, 3);
    ck_assert_int_eq(alig_trainer_step(&t, NULL), ALIG_OK);
    ck_assert_int_eq(alig_trainer_step(&t, NULL), ALIG_OK);

    /* expected third step, computed independently: loss and gradient averaged
     * over the 2 samples perm[8], perm[9] of epoch 0 */
    int64_t perm[10];
    alig_epoch_permutation(cfg.seed, 0, 10, perm);
    alig_model_t ref;
    ck_assert_int_eq(alig_model_build(&ref, cfg.layers, 1, 4, 4, 3, 2), ALIG_OK);
    memcpy(ref.params, t.model.params, sizeof(float) * (size_t)ref.n_params);
    int32_t y[2];
    alig_dataset_gather(&t.train, perm + 8, 2, alig_model_input(&ref), y);
    double loss = alig_model_forward(&ref, 2, y, NULL) / 2.0;
    alig_model_backward(&ref, 2, y);
    double g2 = 0;
    for (int64_t i = 0; i < ref.n_params; i++) {
        ref.grads[i] /= 2.0f;
        g2 += (double)ref.grads[i] * ref.grads[i];
    }
    double gamma = loss / (g2 + 1e-5);

    alig_step_info_t info;
    ck_assert_int_eq(alig_trainer_step(&t, &info), ALIG_OK);
    ck_assert_double_eq_tol(info.loss, loss, 1e-6 * loss);
    ck_assert_double_eq_tol(info.grad_norm2, g2, 1e-5 * g2);
    ck_assert_double_eq_tol(info.step, gamma, 1e-5 * gamma);
    for (int64_t i = 0; i < ref.n_params; i++) {
        float want = ref.params[i] - (float)gamma * ref.grads[i];
        ck_assert_msg(fabsf(t.model.params[i] - want) <= 1e-5f * (1.0f + fabsf(want)),
                      "param %lld: %g vs %g", (long long)i, t.model.params[i], want);
    }
    /* the epoch wrapped after its third (partial) batch */
    ck_assert_int_eq(t.epoch, 1);
    ck_assert_int_eq(t.batch, 0);
    ck_assert_int_eq(t.step, 3);
    alig_model_free(&ref);
    alig_trainer_free(&t);
    alig_comm_finalize(comm);
    remove_files_(&cfg);
}
END_TEST

START_TEST(drop_last_skips_the_partial_batch)
{
    alig_config_t cfg;
    small_config_(&cfg, 10, 4, 3);
    cfg.drop_last = 1;
    alig_comm_t *comm = alig_comm_init_self();
    alig_trainer_t t;
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    ck_assert_int_eq(t.batches_per_epoch, 2);
    alig_trainer_step(&t, NULL);
    alig_trainer_step(&t, NULL);
    ck_assert_int_eq(t.epoch, 1);
    ck_assert_int_eq(t.stats.samples, 8);
    alig_trainer_free(&t);
    alig_comm_finalize(comm);
    remove_files_(&cfg);
}
END_TEST

START_TEST(learns_a_separable_set)
{
    alig_config_t cfg;
    small_config_(&cfg, 300, 30, 4);
    cfg.max_lr = 0.5;
    cfg.momentum = 0.9;
    alig_comm_t *comm = alig_comm_init_self();
    alig_trainer_t t;
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    double loss0, acc0, loss1, acc1;
    alig_trainer_evaluate(&t, &t.test, &loss0, &acc0);
    for (int i = 0; i < 60; i++)
        ck_assert_int_eq(alig_trainer_step(&t, NULL), ALIG_OK);
    alig_trainer_evaluate(&t, &t.test, &loss1, &acc1);
    ck_assert_double_lt(loss1, 0.25 * loss0);
    ck_assert_double_gt(acc1, 0.95);
    alig_trainer_free(&t);
    alig_comm_finalize(comm);
    remove_files_(&cfg);
}
END_TEST

START_TEST(projection_holds_from_the_start)
{
    alig_config_t cfg;
    small_config_(&cfg, 40, 8, 3);
    cfg.max_norm = 0.5;
    cfg.max_lr = 1.0;
    alig_comm_t *comm = alig_comm_init_self();
    alig_trainer_t t;
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    ck_assert_double_le(sqrt(alig_norm2(t.model.params, t.model.n_params)), 0.5 + 1e-6);
    for (int i = 0; i < 5; i++) {
        alig_trainer_step(&t, NULL);
        ck_assert_double_le(sqrt(alig_norm2(t.model.params, t.model.n_params)), 0.5 + 1e-6);
    }
    alig_trainer_free(&t);
    alig_comm_finalize(comm);
    remove_files_(&cfg);
}
END_TEST

START_TEST(labels_beyond_the_model_outputs_are_refused)
{
    alig_config_t cfg;
    small_config_(&cfg, 20, 4, 5); /* labels 0..4 */
    snprintf(cfg.layers, sizeof cfg.layers, "dense 8, relu, dense 3");
    alig_comm_t *comm = alig_comm_init_self();
    alig_trainer_t t;
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_E_DATA);
    ck_assert_ptr_nonnull(strstr(alig_error_message(), "label 4 is out of range"));
    ck_assert_ptr_nonnull(strstr(alig_error_message(), cfg.train_labels));
    alig_trainer_free(&t);
    alig_comm_finalize(comm);
    remove_files_(&cfg);
}
END_TEST

/* Parse text (as file) into cfg, then expect alig_trainer_init to refuse it with a config
 * error whose message starts with want; the communicator, for more attempts */
static alig_comm_t *init_refused_(alig_config_t *cfg, const char *text, const char *file,
                                  const char *want, alig_trainer_t *t)
{
    ck_assert_int_eq(alig_config_parse(cfg, text, file), ALIG_OK);
    alig_comm_t *comm = alig_comm_init_self();
    ck_assert_int_eq(alig_trainer_init(t, cfg, comm), ALIG_E_CONFIG);
    ck_assert_msg(strncmp(alig_error_message(), want, strlen(want)) == 0, "%s",
                  alig_error_message());
    return comm;
}

START_TEST(a_model_that_does_not_fit_names_where_it_was_set)
{
    /* the layer list passes validation (grammar) but not the 4x4 data: the error
     * names the line of the config, or the --set, that gave [model] layers */
    alig_config_t cfg;
    small_config_(&cfg, 20, 4, 3);
    alig_trainer_t t;
    alig_comm_t *comm = init_refused_(&cfg, "[run]\nseed = 1\n\n[model]\nlayers = maxpool 8, "
                                            "dense 3\n", "net.ini", "net.ini:5: ", &t);
    ck_assert_ptr_nonnull(strstr(alig_error_message(), "maxpool 8"));
    alig_trainer_free(&t);
    ck_assert_int_eq(alig_config_set(&cfg, "model.layers=conv 2 k5, dense 3"), ALIG_OK);
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_E_CONFIG);
    ck_assert_msg(strncmp(alig_error_message(), "--set model.layers: ", 20) == 0, "%s",
                  alig_error_message());
    alig_trainer_free(&t);
    /* more outputs than the 3 classes: found after the labels are read, named the same way */
    ck_assert_int_eq(alig_config_set(&cfg, "model.layers=dense 8, relu, dense 5"), ALIG_OK);
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_E_CONFIG);
    ck_assert_msg(strncmp(alig_error_message(),
                          "--set model.layers: [model] layers: the network ends with 5 outputs",
                          67) == 0,
                  "%s", alig_error_message());
    alig_trainer_free(&t);
    alig_comm_finalize(comm);
    remove_files_(&cfg);
    alig_config_free(&cfg);
}
END_TEST

/*
 * [run] parallel = batch cuts each step's slice over the threads, each
 * part on its own copy of the activations, and adds their gradient sums in
 * part order. Against one thread: the same samples with the same weights
 * (dropout masks follow the dataset index, not the part), so the parameters
 * after 8 steps agree to float rounding (1e-5 of the parameter scale, as
 * across rank counts in the mpi suite; a lost or double-counted part is off
 * by far more). The same thread count twice gives the same bits, and
 * evaluation split the same way gives the same loss and accuracy.
 */
START_TEST(batch_parallel_matches_one_thread)
{
    alig_config_t cfg;
    /* _i = 0: batches 12, 12, 12, 4: the last splits 2, 1, 1; _i = 1: batches 13, 13, 13, 1:
     * the last leaves two parts without a sample, which still take their share of the
     * team's dense gradients (alig_team_t). _i = 2, 3: the same with layers wide enough
     * (200 >= 3 x 64) for the team to compute their outputs and input gradients by
     * columns for the whole slice, the parts without samples taking their columns too */
    small_config_(&cfg, 40, _i % 2 == 0 ? 12 : 13, 3);
    snprintf(cfg.layers, sizeof cfg.layers, "%s",
             _i < 2 ? "dense 64, relu, dropout 0.25, dense 3"
                    : "dense 200, relu, dense 200, relu, dropout 0.25, dense 3");
    cfg.momentum = 0.9;
    cfg.max_lr = 0.5;
    cfg.max_norm = 3.0;
    cfg.eval_batch_size = 11;
    alig_comm_t *comm = alig_comm_init_self();
    alig_trainer_t t[3];
    for (int k = 0; k < 3; k++) {
        cfg.threads = k == 0 ? 1 : 3;
        cfg.parallel = k == 0 ? ALIG_PARALLEL_AUTO : ALIG_PARALLEL_BATCH;
        ck_assert_int_eq(alig_trainer_init(&t[k], &cfg, comm), ALIG_OK);
        ck_assert_int_eq(t[k].n_parts, k == 0 ? 1 : 3);
        ck_assert_int_eq(t[k].team.n, k == 0 ? 0 : 3); /* only dense layers hold parameters */
        for (int i = 0; i < 8; i++)
            ck_assert_int_eq(alig_trainer_step(&t[k], NULL), ALIG_OK);
    }
    double scale = 0, worst = 0;
    for (int64_t i = 0; i < t[0].model.n_params; i++) {
        scale = fmax(scale, fabs(t[0].model.params[i]));
        worst = fmax(worst, fabs(t[0].model.params[i] - t[1].model.params[i]));
    }
    ck_assert_msg(worst <= 1e-5 * scale, "3 parts differ from 1 thread by %g (max |w| %g)", worst,
                  scale);
    ck_assert_msg(worst > 0 || t[0].model.n_params == 0, "no rounding difference at all: was the "
                  "batch really split?");
    ck_assert_int_eq(memcmp(t[1].model.params, t[2].model.params,
                            sizeof(float) * (size_t)t[1].model.n_params), 0);
    double loss[2], acc[2];
    for (int k = 0; k < 2; k++)
        alig_trainer_evaluate(&t[k], &t[k].test, &loss[k], &acc[k]);
    ck_assert_double_eq_tol(loss[1], loss[0], 1e-5 * loss[0]);
    ck_assert_double_eq_tol(acc[1], acc[0], 1e-12);
    for (int k = 0; k < 3; k++)
        alig_trainer_free(&t[k]);
    alig_comm_finalize(comm);
    remove_files_(&cfg);
}
END_TEST

/*
 * A bn node over one value per channel (after dense) with one sample per step is
 * refused, naming the layer, the key's line and the batch size that works (a new-user
 * trial found it trained on silently, its output its bias); a conv's bn, with 16 pixels
 * per channel, and two samples are fine.
 */
START_TEST(batch_norm_over_one_value_is_refused)
{
    alig_config_t cfg;
    small_config_(&cfg, 40, 64, 3);
    alig_trainer_t t;
    alig_comm_t *comm =
        init_refused_(&cfg, "[data]\nbatch_size = 1\n\n[model]\nlayers = dense 8, bn, relu, dense 3\n",
                      "p.ini", "p.ini:2: [data] batch_size = 1 over 1 rank gives a rank one sample ",
                      &t);
    const char *msg = alig_error_message();
    ck_assert_ptr_nonnull(strstr(msg, "layer 01_bn normalises"));
    ck_assert_ptr_nonnull(strstr(msg, "(batch_size >= 2)"));
    alig_trainer_free(&t);
    cfg.batch_size = 2;
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    alig_trainer_free(&t);
    cfg.batch_size = 1;
    snprintf(cfg.layers, sizeof cfg.layers, "conv 2 k3 p1, bn, relu, dense 3");
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    ck_assert_int_eq(alig_trainer_step(&t, NULL), ALIG_OK);
    alig_trainer_free(&t);
    alig_comm_finalize(comm);
    remove_files_(&cfg);
    alig_config_free(&cfg);
}
END_TEST

/*
 * Batch norm's batch statistics would depend on the split: parallel = batch
 * refuses it, naming the layer and where the key was set; auto falls back
 * to BLAS threads, as it does with too few samples per thread.
 */
START_TEST(batch_parallel_and_batch_norm)
{
    alig_config_t cfg;
    small_config_(&cfg, 40, 64, 3);
    cfg.threads = 2;
    ck_assert_int_eq(alig_config_parse(&cfg, "[run]\nparallel = batch\n\n[model]\n"
                                             "layers = dense 8, bn, relu, dense 3\n", "p.ini"),
                     ALIG_OK);
    alig_comm_t *comm = alig_comm_init_self();
    alig_trainer_t t;
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_E_CONFIG);
    ck_assert_msg(strncmp(alig_error_message(), "p.ini:2: ", 9) == 0, "%s", alig_error_message());
    ck_assert_ptr_nonnull(strstr(alig_error_message(), "01_bn"));
    alig_trainer_free(&t);
    cfg.parallel = ALIG_PARALLEL_AUTO;
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    ck_assert_int_eq(t.n_parts, 1);
    alig_trainer_free(&t);
    snprintf(cfg.layers, sizeof cfg.layers, "dense 8, relu, dense 3");
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    ck_assert_int_eq(t.n_parts, 2); /* 64 samples, 32 per thread */
    alig_trainer_free(&t);
    cfg.batch_size = 16; /* 8 per thread: too few for auto */
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    ck_assert_int_eq(t.n_parts, 1);
    alig_trainer_free(&t);
    /* no more parts than samples: 8 threads asked for, 4 samples */
    cfg.batch_size = 4;
    cfg.threads = 8;
    cfg.parallel = ALIG_PARALLEL_BATCH;
    ck_assert_int_eq(alig_trainer_init(&t, &cfg, comm), ALIG_OK);
    ck_assert_int_eq(t.n_parts, 4);
    ck_assert_ptr_nonnull(strstr(t.parallel_why, "4 parts"));
    ck_assert_int_eq(alig_trainer_step(&t, NULL), ALIG_OK);
    alig_trainer_free(&t);
    alig_comm_finalize(comm);
    remove_files_(&cfg);
    alig_config_free(&cfg);
}
END_TEST

Suite *train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, partial_last_batch_is_the_mean_over_its_samples);
    tcase_add_test(tc, a_model_that_does_not_fit_names_where_it_was_set);
    tcase_add_test(tc, drop_last_skips_the_partial_batch);
    tcase_add_test(tc, learns_a_separable_set);
    tcase_add_test(tc, projection_holds_from_the_start);
    tcase_add_test(tc, labels_beyond_the_model_outputs_are_refused);
    tcase_add_loop_test(tc, batch_parallel_matches_one_thread, 0, 4);
    tcase_add_test(tc, batch_parallel_and_batch_norm);
    tcase_add_test(tc, batch_norm_over_one_value_is_refused);
    suite_add_tcase(s, tc);
    return s;
}
