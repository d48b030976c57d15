/*
 * train.c -- data-parallel ALI-G training loop (alig/train.h).
 */
#include "alig/train.h"
#include "alig/error.h"
#include "alig/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int load_data_(alig_trainer_t *t)
{
    const alig_config_t *cfg = t->cfg;
    int rc = alig_dataset_load_idx(&t->train, cfg->train_images, cfg->train_labels,
                                   cfg->train_limit);
    if (rc)
        return rc;
    if (strcmp(cfg->normalize, "standard") == 0)
        alig_dataset_compute_stats(&t->train);
    if (cfg->test_images[0]) {
        rc = alig_dataset_load_idx(&t->test, cfg->test_images, cfg->test_labels, cfg->test_limit);
        if (rc)
            return rc;
        if (t->test.c != t->train.c || t->test.h != t->train.h || t->test.w != t->train.w)
            return alig_fail(ALIG_E_DATA, "%s: test images are %dx%dx%d but training images (%s) are %dx%dx%d",
                             cfg->test_images, t->test.c, t->test.h, t->test.w, cfg->train_images,
                             t->train.c, t->train.h, t->train.w);
        alig_dataset_copy_stats(&t->test, &t->train);
    }
    return ALIG_OK;
}

static int build_model_(alig_trainer_t *t)
{
    const alig_config_t *cfg = t->cfg;
    int world = alig_comm_size(t->comm);
    /* the largest local slice of a training or evaluation batch */
    int64_t max_batch = (cfg->batch_size + world - 1) / world;
    int64_t eval_local = (cfg->eval_batch_size + world - 1) / world;
    if (eval_local > max_batch)
        max_batch = eval_local;
    int rc = alig_model_build(&t->model, cfg->layers, t->train.c, t->train.h, t->train.w, 0,
                              max_batch);
    if (rc)
        return rc;
    const alig_dataset_t *sets[2] = {&t->train, &t->test};
    const char *files[2] = {cfg->train_labels, cfg->test_labels};
    for (int i = 0; i < 2; i++)
        if (sets[i]->n > 0 && sets[i]->n_classes > t->model.n_classes)
            return alig_fail(ALIG_E_DATA,
                             "%s: label %d is out of range: the model has %d outputs "
                             "([model] layers ends with dense %d)",
                             files[i], sets[i]->n_classes - 1, t->model.n_classes,
                             t->model.n_classes);
    alig_model_init_params(&t->model, cfg->seed, cfg->init);
    if (isfinite(cfg->max_norm))
        alig_project(t->model.params, t->model.n_params, cfg->max_norm);

    alig_optim_opts_t o = {.max_lr = cfg->max_lr,
                           .delta = cfg->delta,
                           .momentum = cfg->momentum,
                           .adjusted = cfg->adjusted_momentum,
                           .max_norm = cfg->max_norm};
    rc = alig_optim_init(&t->optim, &o, t->model.n_params);
    if (rc)
        return rc;
    t->perm = alig_malloc(sizeof(int64_t) * (size_t)t->train.n, "epoch permutation");
    t->labels = alig_malloc(sizeof(int32_t) * (size_t)max_batch, "batch labels");
    t->eval_index = alig_malloc(sizeof(int64_t) * (size_t)max_batch, "evaluation index");
    if (!t->perm || !t->labels || !t->eval_index)
        return ALIG_E_MEMORY;
    return ALIG_OK;
}

static void reset_stats_(alig_epoch_stats_t *s)
{
    memset(s, 0, sizeof *s);
    s->step_min = INFINITY;
    s->step_max = -INFINITY;
}

int alig_trainer_init(alig_trainer_t *t, const alig_config_t *cfg, alig_comm_t *comm)
{
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->comm = comm;
    t->perm_epoch = -1;
    reset_stats_(&t->stats);
    t->threads = alig_comm_setup_threads(comm, cfg->threads, t->threads_why, sizeof t->threads_why);

    int rc = alig_comm_agree(comm, load_data_(t));
    if (rc)
        return rc;
    rc = alig_comm_agree(comm, build_model_(t));
    if (rc)
        return rc;
    t->batches_per_epoch = alig_batches_per_epoch(t->train.n, cfg->batch_size, cfg->drop_last);
    if (t->batches_per_epoch == 0) {
        alig_fail(ALIG_E_CONFIG,
                  "[data] batch_size = %d with drop_last = true leaves no batch: the training set "
                  "has only %lld samples",
                  cfg->batch_size, (long long)t->train.n);
        return alig_comm_agree(comm, ALIG_E_CONFIG);
    }
    return ALIG_OK;
}

int alig_trainer_step(alig_trainer_t *t, alig_step_info_t *info)
{
    const alig_config_t *cfg = t->cfg;
    alig_model_t *m = &t->model;
    double t0 = alig_time();
    if (t->perm_epoch != t->epoch) {
        alig_epoch_permutation(cfg->seed, t->epoch, t->train.n, t->perm);
        t->perm_epoch = t->epoch;
    }
    int64_t start = t->batch * cfg->batch_size;
    int64_t n = t->train.n - start < cfg->batch_size ? t->train.n - start : cfg->batch_size;
    int64_t lo, hi;
    alig_batch_slice(n, alig_comm_rank(t->comm), alig_comm_size(t->comm), &lo, &hi);
    int64_t local = hi - lo;
    alig_dataset_gather(&t->train, t->perm + start + lo, local, alig_model_input(m), t->labels);

    int64_t correct = 0;
    double loss_sum = local ? alig_model_forward(m, local, t->labels, &correct) : 0.0;
    alig_model_backward(m, local, t->labels);

    float *tail = m->grads + m->n_params;
    tail[ALIG_TAIL_LOSS] = (float)loss_sum;
    tail[ALIG_TAIL_CORRECT] = (float)correct;
    tail[ALIG_TAIL_COUNT] = (float)local;
    tail[ALIG_TAIL_STOP] = t->stop_signal && *t->stop_signal ? 1.0f : 0.0f;
    alig_comm_allreduce_sum_f(t->comm, m->grads, m->n_params + ALIG_REDUCE_TAIL);

    float count = tail[ALIG_TAIL_COUNT];
    t->stop_requested = tail[ALIG_TAIL_STOP] > 0.0f;
    /* mean gradient = sums / count; the division is folded into the norm and the update */
    float inv_count = 1.0f / count;
    double loss = (double)tail[ALIG_TAIL_LOSS] / (double)count;
    double gn2 = alig_norm2(m->grads, m->n_params) * (double)inv_count * (double)inv_count;
    if (!isfinite(loss) || !isfinite(gn2))
        return alig_fail(ALIG_E_NUMERIC,
                         "step %lld (epoch %lld, batch %lld): the loss (%g) or the gradient norm "
                         "(%g) is not finite; parameters left as they were after step %lld",
                         (long long)t->step + 1, (long long)t->epoch + 1, (long long)t->batch + 1,
                         loss, sqrt(gn2), (long long)t->step);

    alig_step_info_t si;
    double gamma = alig_step_size(&t->optim.opts, loss, gn2, &si);
    alig_optim_apply(&t->optim, m->params, m->grads, inv_count, gamma);
    if (info)
        *info = si;
    t->last = si;

    alig_epoch_stats_t *s = &t->stats;
    s->loss_sum += (double)tail[ALIG_TAIL_LOSS];
    s->correct += (int64_t)tail[ALIG_TAIL_CORRECT];
    s->samples += (int64_t)count;
    s->steps++;
    s->clipped += si.clipped;
    s->step_sum += si.step;
    if (si.step < s->step_min)
        s->step_min = si.step;
    if (si.step > s->step_max)
        s->step_max = si.step;

    t->step++;
    if (++t->batch == t->batches_per_epoch) {
        t->batch = 0;
        t->epoch++;
    }
    if (cfg->check_every > 0 && t->step % cfg->check_every == 0) {
        char what[64];
        snprintf(what, sizeof what, "parameters after step %lld", (long long)t->step);
        int rc = alig_comm_check_identical(t->comm, m->params, sizeof(float) * (size_t)m->n_params,
                                           what);
        if (rc)
            return rc;
    }
    s->seconds += alig_time() - t0;
    return ALIG_OK;
}

void alig_trainer_evaluate(alig_trainer_t *t, const alig_dataset_t *ds, double *loss,
                           double *accuracy)
{
    alig_model_t *m = &t->model;
    int64_t eb = t->cfg->eval_batch_size;
    double sums[3] = {0.0, 0.0, 0.0}; /* loss, correct, count */
    for (int64_t start = 0; start < ds->n; start += eb) {
        int64_t n = ds->n - start < eb ? ds->n - start : eb;
        int64_t lo, hi;
        alig_batch_slice(n, alig_comm_rank(t->comm), alig_comm_size(t->comm), &lo, &hi);
        int64_t local = hi - lo;
        if (local == 0)
            continue;
        for (int64_t i = 0; i < local; i++) /* evaluation reads in file order */
            t->eval_index[i] = start + lo + i;
        alig_dataset_gather(ds, t->eval_index, local, alig_model_input(m), t->labels);
        int64_t correct = 0;
        sums[0] += alig_model_forward(m, local, t->labels, &correct);
        sums[1] += (double)correct;
        sums[2] += (double)local;
    }
    alig_comm_allreduce_sum_d(t->comm, sums, 3);
    *loss = sums[2] > 0 ? sums[0] / sums[2] : NAN;
    *accuracy = sums[2] > 0 ? sums[1] / sums[2] : NAN;
}

static void print_start_(const alig_trainer_t *t, FILE *log)
{
    const alig_config_t *cfg = t->cfg;
    int world = alig_comm_size(t->comm);
    fprintf(log, "alig-train %s: %s\n", ALIG_VERSION, cfg->path[0] ? cfg->path : "(string config)");
    fprintf(log, "ranks: %d (%d on this node), BLAS threads per rank: %d (%s)\n", world,
            alig_comm_local_size(t->comm), t->threads, t->threads_why);
    fprintf(log, "data: %lld training samples (%dx%dx%d), %lld test samples, %d classes\n",
            (long long)t->train.n, t->train.c, t->train.h, t->train.w, (long long)t->test.n,
            t->model.n_classes);
    fprintf(log, "batch: %d global, %d per rank (at most), %lld steps per epoch%s\n",
            cfg->batch_size, (cfg->batch_size + world - 1) / world,
            (long long)t->batches_per_epoch, cfg->drop_last ? " (last partial batch dropped)" : "");
    fprintf(log, "model: %s (%lld parameters)\n", cfg->layers, (long long)t->model.n_params);
    char lr[32] = "none", mn[32] = "none";
    if (!isnan(cfg->max_lr))
        snprintf(lr, sizeof lr, "%g", cfg->max_lr);
    if (isfinite(cfg->max_norm))
        snprintf(mn, sizeof mn, "%g", cfg->max_norm);
    fprintf(log, "optimizer: ALI-G max_lr %s, momentum %g (%s), delta %g, max_norm %s\n", lr,
            cfg->momentum, cfg->adjusted_momentum ? "adjusted" : "standard", cfg->delta, mn);
    fflush(log);
}

int alig_trainer_run(alig_trainer_t *t, FILE *log)
{
    const alig_config_t *cfg = t->cfg;
    int root = alig_comm_rank(t->comm) == 0;
    if (root)
        print_start_(t, log);
    double t_start = alig_time();
    while (t->epoch < cfg->epochs && (cfg->max_steps == 0 || t->step < cfg->max_steps)) {
        int64_t epoch = t->epoch;
        int rc = alig_trainer_step(t, NULL);
        if (rc) {
            if (root)
                fprintf(stderr, "alig-train: %s: %s\n", alig_status_name(rc), alig_error_message());
            return rc;
        }
        if (root && cfg->log_every > 0 && t->step % cfg->log_every == 0)
            fprintf(log, "  step %lld  loss %.5f  step size %.5g%s  |g| %.4g\n", (long long)t->step,
                    t->last.loss, t->last.step, t->last.clipped ? " (clipped)" : "",
                    sqrt(t->last.grad_norm2));
        if (t->stop_requested)
            return ALIG_E_PREEMPTED;
        int epoch_done = t->epoch != epoch;
        int last = t->epoch >= cfg->epochs || (cfg->max_steps && t->step >= cfg->max_steps);
        if (!epoch_done && !last)
            continue;

        alig_epoch_stats_t *s = &t->stats;
        double test_loss = NAN, test_acc = NAN;
        int eval = t->test.n > 0 && cfg->eval_every > 0 &&
                   (last || (epoch + 1) % cfg->eval_every == 0);
        if (eval)
            alig_trainer_evaluate(t, &t->test, &test_loss, &test_acc);
        if (root) {
            fprintf(log,
                    "epoch %3lld%s  train loss %.4f acc %6.2f%%  test loss %.4f acc %6.2f%%  "
                    "step mean %.4g [%.3g, %.3g] clipped %5.1f%%  %.0f samples/s  %.1f s\n",
                    (long long)epoch + 1, epoch_done ? "" : "*", s->loss_sum / (double)s->samples,
                    100.0 * (double)s->correct / (double)s->samples, test_loss, 100.0 * test_acc,
                    s->step_sum / (double)s->steps, s->step_min, s->step_max,
                    100.0 * (double)s->clipped / (double)s->steps,
                    (double)s->samples / s->seconds, alig_time() - t_start);
            fflush(log);
        }
        reset_stats_(s);
    }
    return ALIG_OK;
}

void alig_trainer_free(alig_trainer_t *t)
{
    alig_dataset_free(&t->train);
    alig_dataset_free(&t->test);
    alig_model_free(&t->model);
    alig_optim_free(&t->optim);
    free(t->perm);
    free(t->labels);
    free(t->eval_index);
    memset(t, 0, sizeof *t);
}
