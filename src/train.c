/*
 * train.c -- data-parallel ALI-G training loop (alig/train.h).
 */
#include "alig/train.h"
#include "alig/blas.h"
#include "alig/ckpt.h"
#include "alig/error.h"
#include "alig/metrics.h"
#include "alig/rng.h"
#include "pool-impl.h"

#include <cblas.h>
#include <math.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int load_data_(alig_trainer_t *t)
{
    /* format dispatch (idx, cifar10, cifar100, hdf5) and normalisation: data_load.c */
    const alig_config_t *cfg = t->cfg;
    t->aug.crop = cfg->augment_crop;
    t->aug.flip = cfg->augment_flip;
    t->aug.seed = cfg->seed;
    return alig_datasets_load(&t->train, &t->test, cfg);
}

/*
 * Gradient buckets for the reduction: contiguous ranges of `grads` cut at
 * tensor boundaries, from the end of the buffer (the last layers, whose
 * gradients are final first) towards its start, each at least [run]
 * bucket_mb. Bucket 0 ends with the reduction tail and the bn running
 * statistics. bucket_mb = 0 gives one bucket: a single fused reduction of
 * everything.
 */
static void plan_buckets_(alig_trainer_t *t)
{
    const alig_model_t *m = &t->model;
    int64_t want = (int64_t)(t->cfg->bucket_mb * 1048576.0 / sizeof(float));
    int64_t end = m->n_reduce;
    t->n_buckets = 0;
    for (int i = m->n_tensors - 1; i > 0 && want > 0; i--) {
        int64_t start = m->tensors[i].offset;
        if (end - start >= want && t->n_buckets < ALIG_MAX_BUCKETS - 1) {
            t->bucket_start[t->n_buckets++] = start;
            end = start;
        }
    }
    t->bucket_start[t->n_buckets++] = 0;
}

/* model->grads_ready hook: start reducing every bucket whose gradients are final. */
static void grads_ready_(void *ctx, int64_t from)
{
    alig_trainer_t *t = ctx;
    alig_model_t *m = &t->model;
    while (t->next_bucket < t->n_buckets && from <= t->bucket_start[t->next_bucket]) {
        int b = t->next_bucket++;
        int64_t end = b == 0 ? m->n_reduce : t->bucket_start[b - 1];
        alig_comm_iallreduce_sum_f(t->comm, m->grads + t->bucket_start[b],
                                   end - t->bucket_start[b]);
    }
    alig_comm_progress(t->comm);
}

/*
 * On one rank the gradient sums are final as backward writes them: record the
 * norms of their blocks while they are in cache (alig_optim_norm2_range), so the
 * optimizer's norm pass reads only what is left. Hooks for one part
 * (model.grads_ready) and for a team's rows (team.rows_done).
 */
static void norm_ready_(void *ctx, int64_t from)
{
    alig_trainer_t *t = ctx;
    alig_optim_norm2_range(&t->optim, t->model.grads, from, t->model.n_params);
}

static void norm_rows_(void *ctx, int64_t lo, int64_t hi)
{
    alig_trainer_t *t = ctx;
    alig_optim_norm2_range(&t->optim, t->model.grads, lo, hi);
}

/* [run] parallel = batch: a part k >= 1 publishes how far its backward pass has got. */
static void part_ready_(void *ctx, int64_t from)
{
    __atomic_store_n((int64_t *)ctx, from, __ATOMIC_RELEASE);
}

/* Add the other parts' gradient sums in [lo, hi) into model.grads, in part order
 * (a team wrote them there already). */
static void add_parts_(alig_trainer_t *t, int64_t lo, int64_t hi)
{
    if (t->team.n > 0)
        return;
    float *g = t->model.grads;
    for (int k = 1; k < t->n_parts; k++) {
        const float *gk = t->parts[k - 1].grads;
        for (int64_t i = lo; i < hi; i++)
            g[i] += gk[i];
    }
}

/*
 * model->grads_ready hook with [run] overlap, on the thread of part 0: a
 * bucket whose gradients are final in every part gets the other parts' sums
 * added (by this thread; none with one part) and its reduction started.
 * Buckets are final from the end of the buffer towards its start, in every
 * part.
 */
static void parts_ready_(void *ctx, int64_t from)
{
    alig_trainer_t *t = ctx;
    alig_model_t *m = &t->model;
    int64_t ready = from;
    for (int k = 1; k < t->n_parts; k++) {
        int64_t f = __atomic_load_n(&t->part_from[k], __ATOMIC_ACQUIRE);
        ready = f > ready ? f : ready;
    }
    while (t->next_bucket < t->n_buckets && ready <= t->bucket_start[t->next_bucket]) {
        int b = t->next_bucket;
        int64_t lo = t->bucket_start[b], hi = b == 0 ? m->n_reduce : t->bucket_start[b - 1];
        add_parts_(t, lo, hi < m->n_params ? hi : m->n_params);
        t->sum_end = lo;
        grads_ready_(t, lo); /* starts bucket b */
    }
    alig_comm_progress(t->comm);
}

/* A model that does not fit the data is a config error: name where the key was set. */
static int model_error_(const alig_config_t *cfg, int rc)
{
    if (rc != ALIG_E_CONFIG)
        return rc;
    char origin[ALIG_PATH_MAX + 64], msg[2048];
    alig_config_origin(cfg, cfg->preset[0] ? "model.preset" : "model.layers", origin,
                       sizeof origin);
    snprintf(msg, sizeof msg, "%s", alig_error_message());
    return origin[0] ? alig_fail(rc, "%s: %s", origin, msg) : rc;
}

/* [run] parallel = auto splits the slice only when each thread gets at least this many */
#define ALIG_MIN_PART 16

/*
 * [run] parallel: with `batch`, cut each step's local slice over the rank's
 * threads, each running its own copy of the activations on one BLAS thread;
 * with `blas`, one forward/backward whose GEMMs use all the BLAS threads.
 * `auto` takes batch when there are several threads, no batch-norm layer
 * (its batch statistics would depend on the split) and at least
 * ALIG_MIN_PART samples per thread. Otherwise the step runs as one part,
 * the model itself, through the same part jobs (and no pool).
 */
static int setup_parallel_(alig_trainer_t *t)
{
    const alig_config_t *cfg = t->cfg;
    alig_model_t *m = &t->model;
    const char *bn = alig_model_first_bn(m);
    int64_t per_part = m->max_batch / t->threads;
    int batch = 0;
    if (cfg->parallel == ALIG_PARALLEL_BATCH && bn) {
        char origin[ALIG_PATH_MAX + 64];
        alig_config_origin(cfg, "run.parallel", origin, sizeof origin);
        return alig_fail(ALIG_E_CONFIG,
                         "%s%s[run] parallel = batch: layer %s is batch normalisation, whose "
                         "batch statistics would depend on how the slice is split; use "
                         "parallel = blas or auto",
                         origin, origin[0] ? ": " : "", bn);
    }
    if (t->threads < 2)
        snprintf(t->parallel_why, sizeof t->parallel_why, "one thread");
    else if (cfg->parallel == ALIG_PARALLEL_BLAS)
        snprintf(t->parallel_why, sizeof t->parallel_why, "[run] parallel = blas");
    else if (cfg->parallel == ALIG_PARALLEL_BATCH)
        batch = 1, snprintf(t->parallel_why, sizeof t->parallel_why, "[run] parallel = batch");
    else if (bn)
        snprintf(t->parallel_why, sizeof t->parallel_why, "auto: the model has batch norm (%s)",
                 bn);
    else if (per_part < ALIG_MIN_PART)
        snprintf(t->parallel_why, sizeof t->parallel_why,
                 "auto: fewer than %d samples per thread", ALIG_MIN_PART);
    else
        batch = 1, snprintf(t->parallel_why, sizeof t->parallel_why, "auto");

    /* one part (the model itself) unless batch; no more parts than the slice has samples:
     * another part would only hold memory */
    int n = !batch ? 1 : t->threads < m->max_batch ? t->threads : (int)m->max_batch;
    if (batch && n < 2)
        snprintf(t->parallel_why, sizeof t->parallel_why, "a slice of one sample");
    else if (batch && n < t->threads) {
        size_t used = strlen(t->parallel_why);
        snprintf(t->parallel_why + used, sizeof t->parallel_why - used,
                 "; %d parts, as many as the slice has samples", n);
    }
    t->n_parts = 1;
    t->part_from = alig_calloc((size_t)n, sizeof *t->part_from, "per-thread progress");
    t->part_loss = alig_calloc((size_t)n, sizeof *t->part_loss, "per-thread sums");
    t->part_correct = alig_calloc((size_t)n, sizeof *t->part_correct, "per-thread sums");
    t->parts = n > 1 ? alig_calloc((size_t)n - 1, sizeof *t->parts, "model copies") : NULL;
    if (!t->part_from || !t->part_loss || !t->part_correct || (n > 1 && !t->parts))
        return ALIG_E_MEMORY;
    if (n == 1) /* no pool: alig_pool_run calls the job on this thread */
        return ALIG_OK;
    int64_t part_batch = (m->max_batch + n - 1) / n;
    for (int k = 0; k < n - 1; k++) {
        int rc = alig_model_build(&t->parts[k], m->spec, m->in_c, m->in_h, m->in_w, 0, part_batch);
        if (rc)
            return rc;
        t->n_parts = k + 2; /* so alig_trainer_free frees what was built */
        alig_model_share_params(&t->parts[k], m);
        t->parts[k].noise_seed = m->noise_seed;
        t->parts[k].grads_ready = part_ready_;
        t->parts[k].grads_ready_ctx = &t->part_from[k + 1];
    }
    t->pool = alig_pool_create(n);
    if (!t->pool)
        return alig_error_code();
    if (alig_model_team_ok(m)) { /* dense gradients computed together: nothing to add */
        t->team.models = alig_calloc((size_t)n, sizeof *t->team.models, "team");
        t->team.rows = alig_calloc((size_t)n, sizeof *t->team.rows, "team");
        if (!t->team.models || !t->team.rows)
            return ALIG_E_MEMORY;
        t->team.n = n;
        t->team.pool = t->pool;
        if (alig_comm_size(t->comm) == 1) /* nothing to reduce: the sums are final */
            t->team.rows_done = norm_rows_, t->team.rows_done_ctx = t;
        for (int k = 0; k < n; k++) {
            alig_model_t *pk = k == 0 ? m : &t->parts[k - 1];
            t->team.models[k] = pk;
            pk->team = &t->team;
            pk->team_id = k;
        }
    }
    alig_optim_set_pool(&t->optim, t->pool); /* the optimizer's passes too */
    alig_comm_set_blas_threads(1);
    return ALIG_OK;
}

/*
 * [run] reduce: through node shared memory (alig_comm_shm_allreduce) or MPI's
 * bucketed Iallreduce. auto takes shared memory when every rank is on one node:
 * there the reduction is work for the ranks' own cores (Open MPI moves and adds
 * the data inside its calls), and shared memory needs the fewest passes over it.
 * Across nodes auto keeps MPI, whose buckets can overlap backward. Collective.
 */
static int setup_reduce_(alig_trainer_t *t)
{
    int world = alig_comm_size(t->comm), mode = t->cfg->reduce;
    if (world == 1) {
        snprintf(t->reduce_why, sizeof t->reduce_why, "none (one rank)");
        return ALIG_OK;
    }
    int lo, hi;
    int even = alig_comm_nodes_even(t->comm, &lo, &hi);
    int nodes = world / hi;
    if (mode == ALIG_REDUCE_SHM && !even)
        return alig_fail(ALIG_E_CONFIG,
                         "[run] reduce = shm needs the same number of ranks on every node, but "
                         "the nodes run %d to %d; use reduce = mpi (or auto), or launch as many "
                         "ranks per node", lo, hi);
    /* two windows: the gradients (with the tail) and the parameters */
    int64_t floats = t->model.n_reduce + t->model.n_params;
    int room = alig_comm_shm_room(t->comm, floats);
    double mb = (double)floats * sizeof(float) * hi / 1048576.0;
    if (mode == ALIG_REDUCE_SHM && !room)
        return alig_fail(ALIG_E_CONFIG,
                         "[run] reduce = shm: /dev/shm has no room for this node's %.0f MiB of "
                         "gradient and parameter buffers (df /dev/shm); free it, or use reduce = mpi", mb);
    if (mode == ALIG_REDUCE_SHM || (mode == ALIG_REDUCE_AUTO && hi == world && room)) {
        alig_model_t *m = &t->model;
        alig_model_use_grads(m, alig_comm_shm_alloc(t->comm, m->n_reduce));
        alig_model_use_params(m, alig_comm_shm_alloc(t->comm, m->n_params));
        t->shm = 1;
        /* this rank's share: whole blocks, so that its blocks' norms are the plain ones */
        int64_t nb = alig_n_blocks(m->n_params);
        alig_comm_node_slice(t->comm, alig_comm_local_rank(t->comm), m->n_reduce, ALIG_BLOCK,
                             &t->shard_lo, &t->shard_hi);
        t->shard_b0 = t->shard_lo / ALIG_BLOCK < nb ? t->shard_lo / ALIG_BLOCK : nb;
        t->shard_b1 = (t->shard_hi + ALIG_BLOCK - 1) / ALIG_BLOCK;
        t->shard_b1 = t->shard_b1 < nb ? t->shard_b1 : nb;
        if (nodes > 1)
            snprintf(t->reduce_why, sizeof t->reduce_why,
                     "shared memory on each node, then MPI_Allreduce across %d nodes; each "
                     "rank updates 1/%d of the parameters ([run] reduce = shm)", nodes, hi);
        else
            snprintf(t->reduce_why, sizeof t->reduce_why,
                     "shared memory; each rank sums and updates 1/%d of the parameters (%s: all "
                     "ranks on one node)", world, mode == ALIG_REDUCE_SHM ? "[run] reduce = shm" : "auto");
        return ALIG_OK;
    }
    char why[96];
    if (mode == ALIG_REDUCE_MPI)
        snprintf(why, sizeof why, "[run] reduce = mpi");
    else if (hi < world)
        snprintf(why, sizeof why, "auto: ranks on several nodes");
    else
        snprintf(why, sizeof why, "auto: /dev/shm has no room for %.0f MiB of buffers", mb);
    if (t->n_buckets == 1) /* it starts when backward is done, overlap or not */
        snprintf(t->reduce_why, sizeof t->reduce_why, "MPI_Iallreduce, one fused reduction after "
                 "backward (%s)", why);
    else
        snprintf(t->reduce_why, sizeof t->reduce_why, "MPI_Iallreduce in %d buckets%s (%s)",
                 t->n_buckets, t->cfg->overlap ? ", overlapped with backward" : " after backward",
                 why);
    return ALIG_OK;
}

/*
 * reduce = shm on one node: this rank's share of the sums, block by block, each block's
 * norm taken while it is still in cache (alig_optim_norm2_range marks it done, so the
 * norm pass skips it): the shard is not read from memory a second time. With several
 * nodes the sums are final only after the MPI reduction across them.
 */
static void shm_sum_and_norms_(alig_trainer_t *t)
{
    alig_model_t *m = &t->model;
    if (alig_comm_local_size(t->comm) < alig_comm_size(t->comm)) { /* several nodes */
        alig_comm_shm_sum(t->comm, m->grads, t->shard_lo, t->shard_hi);
        return;
    }
    for (int64_t s = t->shard_lo; s < t->shard_hi; s += ALIG_BLOCK) {
        int64_t e = s + ALIG_BLOCK < t->shard_hi ? s + ALIG_BLOCK : t->shard_hi;
        alig_comm_shm_sum(t->comm, m->grads, s, e);
        alig_optim_norm2_range(&t->optim, m->grads, s, e);
    }
}

/* reduce = shm: every rank's block sums in optim.partials, from the blocks' owners */
static void gather_partials_(alig_trainer_t *t)
{
    alig_comm_node_allgather(t->comm, t->optim.partials, sizeof(double),
                             alig_n_blocks(t->model.n_params), 1, alig_n_blocks(t->model.n_reduce));
}

static int build_model_(alig_trainer_t *t)
{
    const alig_config_t *cfg = t->cfg;
    int world = alig_comm_size(t->comm);
    /* the largest local slice of a training batch */
    int64_t max_batch = (cfg->batch_size + world - 1) / world;
    /* evaluation runs its local slice in chunks of max_batch (alig_trainer_evaluate), so a
     * large [eval] batch_size costs no activation memory: a WRN-40-4 holds ~40 MB of
     * activations and gradients per sample */
    const char *spec = cfg->layers;
    char preset[8192];
    if (cfg->preset[0]) { /* [model] preset: a layer list for the data's class count */
        int classes = t->train.n_classes > t->test.n_classes ? t->train.n_classes
                                                             : t->test.n_classes;
        int rc = alig_model_preset(cfg->preset, classes, preset, sizeof preset);
        if (rc)
            return model_error_(cfg, rc);
        spec = preset;
    }
    int rc = alig_model_build(&t->model, spec, t->train.c, t->train.h, t->train.w, 0, max_batch);
    if (rc)
        return model_error_(cfg, rc);
    t->model.noise_seed = cfg->seed; /* dropout masks */
    const alig_dataset_t *sets[2] = {&t->train, &t->test};
    int labels_in_images = strncmp(cfg->format, "cifar", 5) == 0;
    const char *files[2] = {labels_in_images ? cfg->train_images : cfg->train_labels,
                            labels_in_images ? cfg->test_images : cfg->test_labels};
    for (int i = 0; i < 2; i++)
        if (sets[i]->n > 0 && sets[i]->n_classes > t->model.n_classes)
            return alig_fail(ALIG_E_DATA,
                             "%s: label %d is out of range: the model has %d outputs "
                             "([model] layers ends with dense %d)",
                             files[i], sets[i]->n_classes - 1, t->model.n_classes,
                             t->model.n_classes);
    /* more outputs than classes: a layer list that does not end where the data needs */
    int classes = t->train.n_classes > t->test.n_classes ? t->train.n_classes : t->test.n_classes;
    if (t->model.n_classes != classes)
        return model_error_(
            cfg, alig_fail(ALIG_E_CONFIG,
                           "[model] layers: the network ends with %d outputs (last layer %s) but "
                           "the data has %d classes (largest label %d in %s); end the list with "
                           "'dense %d'",
                           t->model.n_classes, t->model.layers[t->model.n_layers - 1].name,
                           classes, classes - 1, files[0], classes));
    alig_model_init_params(&t->model, cfg->seed, cfg->init);
    if (cfg->ckpt_init[0]) { /* [checkpoint] init = PATH replaces the seeded values */
        rc = alig_ckpt_load_params(&t->model, cfg->ckpt_init);
        if (rc)
            return rc;
    }
    if (isfinite(cfg->max_norm))
        alig_project(t->model.params, t->model.n_params, cfg->max_norm);

    static const char *const kinds[] = {"alig", "sgd", "adam", "adamw"};
    int kind = ALIG_OPT_ALIG;
    for (int k = 0; k < 4; k++)
        if (strcmp(cfg->optimizer, kinds[k]) == 0)
            kind = k;
    alig_optim_opts_t o = {.kind = kind,
                           .max_lr = cfg->max_lr,
                           .delta = cfg->delta,
                           .momentum = cfg->momentum,
                           .adjusted = cfg->adjusted_momentum,
                           .max_norm = cfg->max_norm,
                           .lr = cfg->lr,
                           .weight_decay = cfg->weight_decay,
                           .nesterov = cfg->nesterov,
                           .beta1 = cfg->beta1,
                           .beta2 = cfg->beta2,
                           .eps = cfg->eps,
                           .schedule = !strcmp(cfg->schedule, "step")     ? ALIG_SCHED_STEP
                                       : !strcmp(cfg->schedule, "cosine") ? ALIG_SCHED_COSINE
                                                                          : ALIG_SCHED_NONE,
                           .decay = cfg->decay};
    o.n_milestones = alig_config_milestones(cfg, o.milestones);
    if (o.n_milestones < 0)
        return ALIG_E_CONFIG;
    rc = alig_optim_init(&t->optim, &o, t->model.n_params);
    if (rc)
        return rc;
    plan_buckets_(t);
    rc = setup_reduce_(t);
    if (rc)
        return rc;
    rc = setup_parallel_(t);
    if (rc)
        return rc;
    t->perm = alig_malloc(sizeof(int64_t) * (size_t)t->train.n, "epoch permutation");
    t->labels = alig_malloc(sizeof(int32_t) * (size_t)max_batch, "batch labels");
    t->eval_index = alig_malloc(sizeof(int64_t) * (size_t)max_batch, "evaluation index");
    t->state_before = alig_malloc(sizeof(float) * (size_t)t->model.n_state, "bn statistics copy");
    if (!t->perm || !t->labels || !t->eval_index || !t->state_before)
        return ALIG_E_MEMORY;
    return ALIG_OK;
}

/*
 * A bn node whose channels hold one value each (a 1x1 input: after dense or gap) has,
 * on a rank given one sample of a batch, one value per channel to normalise: its output
 * is its bias and no gradient passes through it. PyTorch refuses that step ("Expected
 * more than 1 value per channel"); a new-user trial found it trained on silently. The
 * first such node, or NULL.
 */
static const char *one_pixel_bn_(const alig_model_t *m)
{
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == ALIG_LAYER_BN && m->layers[i].in_h * m->layers[i].in_w == 1)
            return m->layers[i].name;
    return NULL;
}

/* A batch of n samples over the ranks gives some rank exactly one (alig_batch_slice). */
static int gives_a_rank_one_(int64_t n, int world) { return n > 0 && n < 2 * (int64_t)world; }

/* The samples of an epoch's last, partial batch (0: none, or dropped). */
static int64_t last_batch_(const alig_trainer_t *t)
{
    int64_t n = t->train.n, b = t->cfg->batch_size;
    return n > b && !t->cfg->drop_last ? n % b : 0;
}

static int check_bn_slices_(const alig_trainer_t *t)
{
    const char *bn = one_pixel_bn_(&t->model);
    int world = alig_comm_size(t->comm);
    int64_t full = t->train.n < t->cfg->batch_size ? t->train.n : t->cfg->batch_size;
    if (!bn || !gives_a_rank_one_(full, world))
        return ALIG_OK;
    char origin[ALIG_PATH_MAX + 64];
    alig_config_origin(t->cfg, "data.batch_size", origin, sizeof origin);
    char small[96] = ""; /* a training set smaller than the batch is one batch */
    if (full < t->cfg->batch_size)
        snprintf(small, sizeof small, " (the training set's %lld samples)", (long long)full);
    return alig_fail(ALIG_E_CONFIG,
                     "%s%s[data] batch_size = %d%s over %d rank%s gives a rank one sample per "
                     "step, and layer %s normalises each channel over its rank's samples alone: "
                     "one value, so it would output its bias and pass no gradient; give every "
                     "rank at least 2 samples (batch_size >= %lld)",
                     origin, origin[0] ? ": " : "", t->cfg->batch_size, small, world,
                     world == 1 ? "" : "s", bn, 2 * (long long)world);
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
    int rc = alig_comm_agree(comm, t->threads < 1 ? ALIG_E_CONFIG : ALIG_OK);
    if (rc)
        return rc;
    const char *fault = getenv("ALIG_TEST_FAULT"); /* test hook, see alig/train.h */
    if (fault) {
        char kind[8];
        long long step;
        int rank;
        if (sscanf(fault, "%7[a-z]:%lld:%d", kind, &step, &rank) == 3) {
            t->fault_kind = !strcmp(kind, "nan") ? 1 : !strcmp(kind, "kill") ? 2
                            : !strcmp(kind, "flip") ? 3 : 0;
            t->fault_step = step;
            t->fault_rank = rank;
        }
    }

    rc = alig_comm_agree(comm, load_data_(t));
    if (rc)
        return rc;
    rc = alig_comm_agree(comm, build_model_(t));
    if (rc)
        return rc;
    rc = alig_comm_agree(comm, check_bn_slices_(t));
    if (rc)
        return rc;
    t->batches_per_epoch = alig_batches_per_epoch(t->train.n, cfg->batch_size, cfg->drop_last);
    /* the cosine schedule spans the whole run, its epochs: max_steps only stops it, as a
     * preemption would, so a run cut short and resumed follows the uninterrupted one's
     * schedule (a new-user trial found the horizon taken from max_steps, and changed by
     * a resume without it) */
    t->optim.opts.total_steps = (int64_t)cfg->epochs * t->batches_per_epoch;
    if (t->batches_per_epoch == 0) {
        alig_fail(ALIG_E_CONFIG,
                  "[data] batch_size = %d with drop_last = true leaves no batch: the training set "
                  "has only %lld samples",
                  cfg->batch_size, (long long)t->train.n);
        return alig_comm_agree(comm, ALIG_E_CONFIG);
    }
    return ALIG_OK;
}

/* One step's (or one evaluation chunk's) work, split over the parts by the pool */
struct part_job_ {
    alig_trainer_t *t;
    const alig_dataset_t *ds; /* evaluation: the dataset; NULL for a training step */
    const int64_t *ids;       /* training: dataset indices of the local slice */
    int64_t first;            /* evaluation: index of the chunk's first sample */
    int64_t n;                /* samples in the slice or chunk */
    double t_data;            /* when part 0 finished gathering its samples */
};

static alig_model_t *part_model_(alig_trainer_t *t, int k)
{
    return k == 0 ? &t->model : &t->parts[k - 1];
}

/* Part k's model for samples [a, ..) of a slice: in a team, its activations are those
 * rows of the first model's (alig_model_team_rows). */
static alig_model_t *part_at_(alig_trainer_t *t, int k, int64_t a)
{
    alig_model_t *m = part_model_(t, k);
    if (k > 0 && t->team.n > 0)
        alig_model_team_rows(m, &t->model, a);
    return m;
}

/* Forward of samples [a, b) of the job, already gathered into part k's input. */
static void part_forward_(alig_trainer_t *t, int k, int64_t a, int64_t b)
{
    t->part_correct[k] = 0;
    /* a team's part without samples still computes its columns of the dense layers */
    if (t->team.n > 0)
        t->team.rows[k] = b - a;
    t->part_loss[k] = b > a || t->team.n > 0
                          ? alig_model_forward(part_model_(t, k), b - a, t->labels + a,
                                               &t->part_correct[k])
                          : 0.0;
}

/* Part k of a training step, first half: gather its samples and run forward. */
static void forward_part_(void *ctx, int k, int n_parts)
{
    struct part_job_ *j = ctx;
    alig_trainer_t *t = j->t;
    int64_t a, b;
    alig_batch_slice(j->n, k, n_parts, &a, &b);
    alig_model_t *m = part_at_(t, k, a);
    alig_dataset_gather_augmented(&t->train, j->ids + a, b - a, alig_model_input(m),
                                  t->labels + a, &t->aug, t->epoch);
    if (k == 0)
        j->t_data = alig_time();
    m->training = 1;
    m->noise_step = t->step;
    m->sample_ids = j->ids + a; /* dropout masks follow the dataset index, not the part */
    part_forward_(t, k, a, b);
}

/* Second half: backward into the part's own grads (part 0's hook is set by the step). */
static void backward_part_(void *ctx, int k, int n_parts)
{
    struct part_job_ *j = ctx;
    int64_t a, b;
    alig_batch_slice(j->n, k, n_parts, &a, &b); /* (a team's rows: set by the forward pass) */
    alig_model_backward(part_model_(j->t, k), b - a, j->t->labels + a);
}

/* The parts' sums in grads[0, sum_end), those parts_ready_ has not added; each thread
 * takes a range. */
static void sum_parts_(void *ctx, int tid, int n_threads)
{
    alig_trainer_t *t = ctx;
    int64_t a, b;
    alig_batch_slice(t->sum_end, tid, n_threads, &a, &b);
    add_parts_(t, a, b);
}

/* Part k of an evaluation chunk: forward in evaluation mode, loss and correct count. */
static void eval_part_(void *ctx, int k, int n_parts)
{
    struct part_job_ *j = ctx;
    alig_trainer_t *t = j->t;
    int64_t a, b;
    alig_batch_slice(j->n, k, n_parts, &a, &b);
    alig_model_t *m = part_at_(t, k, a);
    for (int64_t i = a; i < b; i++) /* evaluation reads in file order */
        t->eval_index[i] = j->first + i;
    alig_dataset_gather(j->ds, t->eval_index + a, b - a, alig_model_input(m), t->labels + a);
    m->training = 0; /* bn running statistics, no dropout */
    m->sample_ids = NULL;
    part_forward_(t, k, a, b);
    m->training = 1;
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
    int world = alig_comm_size(t->comm), reduce = world > 1;
    /* bn running statistics before this step, restored if the step is skipped */
    if (m->n_state > 0)
        memcpy(t->state_before, m->state, sizeof(float) * (size_t)m->n_state);
    /* every part's gather and forward (one part, on this thread, unless [run] parallel = batch) */
    struct part_job_ j = {.t = t, .ids = t->perm + start + lo, .n = local};
    alig_pool_run(t->pool, forward_part_, &j);
    int64_t correct = 0;
    double loss_sum = 0.0;
    for (int k = 0; k < t->n_parts; k++) {
        loss_sum += t->part_loss[k];
        correct += t->part_correct[k];
    }
    double t1 = j.t_data, t2 = alig_time();

    if (t->fault_kind && t->step + 1 == t->fault_step &&
        alig_comm_rank(t->comm) == t->fault_rank) {
        if (t->fault_kind == 1)
            loss_sum = NAN;
        else if (t->fault_kind == 2)
            raise(SIGKILL);
    }

    /* the tail is known after the forward pass: it travels in the first bucket */
    float *tail = m->grads + m->n_params;
    tail[ALIG_TAIL_LOSS] = (float)loss_sum;
    tail[ALIG_TAIL_CORRECT] = (float)correct;
    tail[ALIG_TAIL_COUNT] = (float)local;
    tail[ALIG_TAIL_STOP] = t->stop_signal && *t->stop_signal ? 1.0f : 0.0f;
    /* bn running statistics: each rank updated them from its own slice (as PyTorch
     * DDP without SyncBatchNorm); they ride after the tail and are averaged over the
     * ranks that had samples (ranks >= n when n < world had none), so every rank, and
     * every checkpoint, holds the same values */
    float *state_sum = tail + ALIG_REDUCE_TAIL;
    if (m->n_state > 0 && reduce) {
        if (local > 0)
            memcpy(state_sum, m->state, sizeof(float) * (size_t)m->n_state);
        else
            memset(state_sum, 0, sizeof(float) * (size_t)m->n_state);
    }

    /* backward; with [run] overlap the buckets' reductions start as their layers finish,
     * otherwise the same reductions start after it: the same sums either way */
    t->next_bucket = 0;
    for (int k = 0; k < t->n_parts; k++)
        t->part_from[k] = m->n_reduce; /* nothing final yet */
    t->sum_end = m->n_params;
    /* with [run] overlap, buckets final in every part are reduced while backward runs */
    m->grads_ready = reduce && cfg->overlap && !t->shm ? parts_ready_
                     : !reduce && t->n_parts == 1  ? norm_ready_
                                                   : NULL;
    m->grads_ready_ctx = t;
    alig_pool_run(t->pool, backward_part_, &j);
    if (t->n_parts > 1 && t->team.n == 0)
        alig_pool_run(t->pool, sum_parts_, t); /* the sums parts_ready_ has not added */
    double t3 = alig_time();
    if (reduce && t->shm) { /* this rank's share of the sums, then the tail from its owner */
        alig_comm_shm_fence(t->comm);
        shm_sum_and_norms_(t);
        alig_comm_shm_fence(t->comm);
        alig_comm_shm_fetch(t->comm, m->grads, m->n_params, m->n_reduce, ALIG_BLOCK, m->n_reduce);
    } else if (reduce) {
        grads_ready_(t, 0);
        alig_comm_wait_all(t->comm);
    }
    if (m->n_state > 0 && reduce) {
        float inv = 1.0f / (float)(n < world ? n : world);
        for (int64_t i = 0; i < m->n_state; i++)
            m->state[i] = state_sum[i] * inv;
    }

    double t4 = alig_time();
    float count = tail[ALIG_TAIL_COUNT];
    t->stop_requested = tail[ALIG_TAIL_STOP] > 0.0f;
    /* mean gradient = sums / count; the division is folded into the norm and the update */
    float inv_count = 1.0f / count;
    double loss = (double)tail[ALIG_TAIL_LOSS] / (double)count;
    double gn2;
    if (t->shm) { /* this rank's blocks; the others' block sums from their owners */
        alig_optim_norm2_blocks(&t->optim, m->grads, t->shard_b0, t->shard_b1);
        gather_partials_(t);
        gn2 = alig_optim_sum_partials(&t->optim);
    } else {
        gn2 = alig_optim_norm2(&t->optim, m->grads);
    }
    gn2 *= (double)inv_count * (double)inv_count;
    alig_epoch_stats_t *s = &t->stats;
    alig_step_info_t si;
    /* every rank sees the same reduced values, so all take the same branch */
    int finite = isfinite(loss) && isfinite(gn2);
    if (!finite && !cfg->skip_nonfinite)
        return alig_fail(ALIG_E_NUMERIC,
                         "step %lld (epoch %lld, batch %lld): the loss (%g) or the gradient norm "
                         "(%g) is not finite; parameters left as they were after step %lld "
                         "([run] nonfinite = skip would skip such steps)",
                         (long long)t->step + 1, (long long)t->epoch + 1, (long long)t->batch + 1,
                         loss, sqrt(gn2), (long long)t->step);
    if (!finite) {
        if (m->n_state > 0) /* the forward pass already folded this batch into bn's statistics */
            memcpy(m->state, t->state_before, sizeof(float) * (size_t)m->n_state);
        memset(&si, 0, sizeof si);
        si.loss = loss;
        si.grad_norm2 = gn2;
        s->skipped++;
        goto advance;
    }

    double gamma;
    if (t->optim.opts.kind == ALIG_OPT_ALIG) {
        gamma = alig_step_size(&t->optim.opts, loss, gn2, &si);
    } else { /* a baseline: the scheduled learning rate is the step size */
        gamma = alig_optim_lr(&t->optim, t->epoch, t->step);
        si = (alig_step_info_t){.loss = loss, .grad_norm2 = gn2, .step_unclipped = gamma,
                                .step = gamma, .clipped = 0};
    }
    if (t->shm) { /* this rank's blocks, then the others' from their owners */
        if (alig_optim_apply_blocks(&t->optim, m->params, m->grads, inv_count, gamma,
                                    t->shard_b0, t->shard_b1)) {
            gather_partials_(t);
            alig_optim_project_blocks(&t->optim, m->params, t->shard_b0, t->shard_b1);
        }
        alig_comm_shm_fence(t->comm);
        /* no fence after: a rank writes its share again only after the next step's fences */
        alig_comm_shm_fetch(t->comm, m->params, 0, m->n_params, ALIG_BLOCK, m->n_reduce);
    } else {
        alig_optim_apply(&t->optim, m->params, m->grads, inv_count, gamma);
    }

    s->phase[ALIG_PHASE_DATA] += t1 - t0;
    s->phase[ALIG_PHASE_FORWARD] += t2 - t1;
    s->phase[ALIG_PHASE_BACKWARD] += t3 - t2;
    s->phase[ALIG_PHASE_ALLREDUCE] += t4 - t3;
    s->phase[ALIG_PHASE_OPTIMIZER] += alig_time() - t4;
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

advance:
    if (info)
        *info = si;
    t->last = si;
    t->step++;
    if (++t->batch == t->batches_per_epoch) {
        t->batch = 0;
        t->epoch++;
    }
    if (t->fault_kind == 3 && t->step == t->fault_step &&
        alig_comm_rank(t->comm) == t->fault_rank) { /* test hook: flip a bit after the step */
        uint32_t bits;
        memcpy(&bits, m->params, sizeof bits);
        bits ^= 1u;
        memcpy(m->params, &bits, sizeof bits);
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

void alig_trainer_gather_state(alig_trainer_t *t)
{
    if (!t->shm)
        return;
    float *bufs[2] = {t->optim.v, t->optim.s};
    for (int i = 0; i < 2; i++)
        if (bufs[i])
            alig_comm_node_allgather(t->comm, bufs[i], sizeof(float), t->model.n_params,
                                     ALIG_BLOCK, t->model.n_reduce);
}

void alig_trainer_evaluate(alig_trainer_t *t, const alig_dataset_t *ds, double *loss,
                           double *accuracy)
{
    const alig_model_t *m = &t->model;
    int64_t eb = t->cfg->eval_batch_size;
    double sums[3] = {0.0, 0.0, 0.0}; /* loss, correct, count */
    for (int64_t start = 0; start < ds->n; start += eb) {
        int64_t n = ds->n - start < eb ? ds->n - start : eb;
        int64_t lo, hi;
        alig_batch_slice(n, alig_comm_rank(t->comm), alig_comm_size(t->comm), &lo, &hi);
        int64_t local = hi - lo;
        for (int64_t c0 = 0; c0 < local; c0 += m->max_batch) { /* chunks the model holds */
            int64_t k = local - c0 < m->max_batch ? local - c0 : m->max_batch;
            /* the chunk split over the parts as a step's slice is */
            struct part_job_ j = {.t = t, .ds = ds, .first = start + lo + c0, .n = k};
            alig_pool_run(t->pool, eval_part_, &j);
            for (int p = 0; p < t->n_parts; p++) {
                sums[0] += t->part_loss[p];
                sums[1] += (double)t->part_correct[p];
            }
            sums[2] += (double)k;
        }
    }
    alig_comm_allreduce_sum_d(t->comm, sums, 3);
    *loss = sums[2] > 0 ? sums[0] / sums[2] : NAN;
    *accuracy = sums[2] > 0 ? sums[1] / sums[2] : NAN;
}

/* MemAvailable of /proc/meminfo in MiB; 0 when unknown. (Test hook: the environment's
 * ALIG_TEST_MEM_AVAILABLE_MIB instead.) */
static double mem_available_mib_(void)
{
    const char *fake = getenv("ALIG_TEST_MEM_AVAILABLE_MIB");
    if (fake && *fake)
        return strtod(fake, NULL);
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0.0;
    char line[256];
    double kib = 0.0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kib) == 1)
            break;
    fclose(f);
    return kib / 1024.0;
}

static void print_start_(const alig_trainer_t *t, FILE *log)
{
    const alig_config_t *cfg = t->cfg;
    int world = alig_comm_size(t->comm);
    fprintf(log, "alig-train %s: %s\n", ALIG_VERSION, cfg->path[0] ? cfg->path : "(string config)");
    fprintf(log, "ranks: %d (%d on this node), threads per rank: %d (%s)\n", world,
            alig_comm_local_size(t->comm), t->threads, t->threads_why);
    char blas[256];
    alig_blas_describe(blas, sizeof blas);
    fprintf(log, "blas: %s\n", blas);
    fprintf(log, "reduce: %s\n", t->reduce_why);
    if (t->threads > 1)
        fprintf(log, "parallel: %s (%s)\n",
                t->n_parts > 1 ? "batch, each thread takes a part of the slice"
                               : "blas, the BLAS threads share each GEMM",
                t->parallel_why);
    fprintf(log, "data: %lld training samples (%dx%dx%d), %lld test samples, %d classes\n",
            (long long)t->train.n, t->train.c, t->train.h, t->train.w, (long long)t->test.n,
            t->model.n_classes);
    /* a test set read from the training set's file and dataset (the HDF5 test names
     * fall back to the training ones): its figures are training figures (a new-user
     * trial left out hdf5_test_images of a Keras-style file without noticing) */
    int hdf5 = strcmp(cfg->format, "hdf5") == 0;
    if (cfg->test_images[0] && strncmp(cfg->format, "cifar", 5) != 0 &&
        strcmp(cfg->test_images, cfg->train_images) == 0 &&
        (!hdf5 || !cfg->hdf5_test_images[0] ||
         strcmp(cfg->hdf5_test_images, cfg->hdf5_images) == 0))
        fprintf(stderr,
                "alig-train: warning: the test set is the training set (%s%s%s): test loss "
                "and accuracy are those of samples it trains on%s\n",
                cfg->train_images, hdf5 ? ", dataset " : "", hdf5 ? cfg->hdf5_images : "",
                hdf5 ? "; [data] hdf5_test_images and hdf5_test_labels name the test datasets"
                     : "");
    fprintf(log, "batch: %d global, %d per rank (at most), %lld steps per epoch%s\n",
            cfg->batch_size, (cfg->batch_size + world - 1) / world,
            (long long)t->batches_per_epoch, cfg->drop_last ? " (last partial batch dropped)" : "");
    const char *bn = one_pixel_bn_(&t->model);
    if (bn && gives_a_rank_one_(last_batch_(t), world))
        fprintf(stderr,
                "alig-train: warning: the last batch of each epoch (%lld of the %lld training "
                "samples) gives a rank one sample: layer %s normalises one value per channel "
                "there (its output is its bias, no gradient passes through it); [data] "
                "drop_last = true drops that batch\n",
                (long long)last_batch_(t), (long long)t->train.n, bn);
    fprintf(log, "model: %s%s%s (%lld parameters)\n", cfg->preset[0] ? cfg->preset : "",
            cfg->preset[0] ? " = " : "", t->model.spec, (long long)t->model.n_params);
    if (t->aug.crop || t->aug.flip)
        fprintf(log, "augmentation: random crop with padding %d, horizontal flip %s\n",
                t->aug.crop, t->aug.flip ? "on" : "off");
    char lr[32] = "none", mn[32] = "none";
    if (!isnan(cfg->max_lr))
        snprintf(lr, sizeof lr, "%g", cfg->max_lr);
    if (isfinite(cfg->max_norm))
        snprintf(mn, sizeof mn, "%g", cfg->max_norm);
    const alig_optim_opts_t *o = &t->optim.opts;
    if (o->kind == ALIG_OPT_ALIG)
        fprintf(log, "optimizer: ALI-G max_lr %s, momentum %g (%s), delta %g, max_norm %s\n", lr,
                cfg->momentum, cfg->adjusted_momentum ? "adjusted" : "standard", cfg->delta, mn);
    else if (o->kind == ALIG_OPT_SGD)
        fprintf(log, "optimizer: SGD lr %g (schedule %s), momentum %g (%s), weight decay %g, "
                "max_norm %s\n", cfg->lr, cfg->schedule, cfg->momentum,
                cfg->nesterov ? "Nesterov" : "heavy-ball", cfg->weight_decay, mn);
    else
        fprintf(log, "optimizer: %s lr %g (schedule %s), betas %g %g, eps %g, weight decay %g, "
                "max_norm %s\n", alig_optim_name(o->kind), cfg->lr, cfg->schedule, cfg->beta1,
                cfg->beta2, cfg->eps, cfg->weight_decay, mn);
    /* a save holds the checkpoint in memory twice on rank 0 (ckpt_h5.c): say so before a
     * week of training, not when the first save runs out of memory */
    double need = 2.0 * (double)alig_ckpt_data_bytes(t) / 1048576.0, avail = mem_available_mib_();
    if (avail > 0 && need > avail)
        fprintf(stderr, "alig-train: warning: saving a checkpoint takes about %.0f MiB more "
                "memory on rank 0 (it is built in memory, then written), more than the %.0f MiB "
                "available now: a save may run out of memory\n", need, avail);
    fflush(log);
}

/*
 * Two jobs writing one run directory would interleave their checkpoints and
 * metrics (and a second one could resume from the first one's files): rank 0
 * holds an exclusive flock on <out_dir>/.alig-train.lock for the whole run.
 */
static int lock_run_dir_(alig_trainer_t *t)
{
    int rc = alig_mkdirs(t->cfg->out_dir);
    return rc ? rc : alig_lock_dir(t->cfg->out_dir, "run directory", "[run] out_dir", &t->lock_fd);
}

/* The live progress line: on a terminal, one line rewritten in place twice a
 * second; in a batch log, a plain line every 30 seconds (never a carriage return). */
typedef struct {
    int tty;
    int shown;   /* characters of the live line on screen (0: none) */
    double last; /* when the last line was printed */
} progress_t;

/*
 * Whether the log is a terminal a person watches. Under mpirun the ranks' stdout
 * is a pseudo-terminal of Open MPI's even when mpirun's own output goes to a file,
 * so a launched rank counts as a batch log (plain lines, no carriage returns)
 * unless ALIG_PROGRESS=tty asks for the live line; ALIG_PROGRESS=plain forces plain.
 */
static int log_is_terminal_(FILE *log)
{
    const char *force = getenv("ALIG_PROGRESS");
    if (force && !strcmp(force, "tty"))
        return 1;
    if (force && !strcmp(force, "plain"))
        return 0;
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK"))
        return 0;
    return isatty(fileno(log));
}

static void progress_(const alig_trainer_t *t, progress_t *p, FILE *log)
{
    double now = alig_time();
    if (now - p->last < (p->tty ? 0.5 : 30.0) || t->stats.seconds <= 0)
        return;
    p->last = now;
    const alig_epoch_stats_t *s = &t->stats;
    double rate = (double)s->samples / s->seconds;
    int64_t steps_left = (t->cfg->epochs - t->epoch) * t->batches_per_epoch - t->batch;
    if (t->cfg->max_steps > 0 && t->cfg->max_steps - t->step < steps_left)
        steps_left = t->cfg->max_steps - t->step;
    double eta = (double)steps_left * s->seconds / (double)(s->steps ? s->steps : 1);
    char line[160];
    int n = snprintf(line, sizeof line,
                     "epoch %lld: step %lld/%lld  loss %.4f  %.0f samples/s  ETA %.0f s",
                     (long long)t->epoch + 1, (long long)t->batch, (long long)t->batches_per_epoch,
                     s->loss_sum / (double)(s->samples ? s->samples : 1), rate, eta);
    if (p->tty) {
        fprintf(log, "\r%s%*s", line, p->shown > n ? p->shown - n : 0, "");
        p->shown = n;
    } else {
        fprintf(log, "%s\n", line);
    }
    fflush(log);
}

/* " 12.34 ms/step: data 1.0% forward ... (rank 0)\n": the step's split into its phases */
static void print_profile_(FILE *log, const alig_epoch_stats_t *s)
{
    static const char *const names[ALIG_N_PHASES] = {"data", "forward", "backward", "allreduce",
                                                     "optimizer"};
    fprintf(log, " %.2f ms/step:", 1e3 * s->seconds / (double)s->steps);
    for (int k = 0; k < ALIG_N_PHASES; k++)
        fprintf(log, " %s %.1f%%", names[k], 100.0 * s->phase[k] / s->seconds);
    fprintf(log, " (rank 0)\n");
}

int alig_trainer_run(alig_trainer_t *t, FILE *log)
{
    const alig_config_t *cfg = t->cfg;
    int root = alig_comm_rank(t->comm) == 0;
    /* (collective) ranks on other OpenBLAS kernels (another CPU model, or their own
     * OPENBLAS_CORETYPE) compute their gradients to other rounding; the sums and the
     * update are shared, so parameters stay identical, but say so: the log shows rank 0's */
    const char *core = openblas_get_corename();
    int kernels_differ =
        alig_comm_check_identical(t->comm, core, strlen(core) + 1, "the OpenBLAS kernels") != ALIG_OK;
    if (root) {
        print_start_(t, log);
        if (kernels_differ)
            fprintf(stderr, "alig-train: warning: %s (%s kernels); results agree with a "
                    "single-kernel run to rounding only\n", alig_error_message(), core);
    }
    int rc = root ? lock_run_dir_(t) : ALIG_OK; /* one job per run directory */
    if ((rc = alig_comm_agree(t->comm, rc)))
        return rc;
    rc = alig_ckpt_begin(t, log); /* checkpoint directory; resume */
    if (rc)
        return rc;
    if (root) /* after a resume, drop metrics rows written past the checkpoint's step */
        rc = alig_metrics_open(&t->metrics, cfg->out_dir, t->step > 0 ? t->step : -1,
                               t->batch > 0);
    if ((rc = alig_comm_agree(t->comm, rc)))
        return rc;
    double t_start = alig_time();
    progress_t progress = {.tty = root && log_is_terminal_(log), .last = t_start};
    while (t->epoch < cfg->epochs && (cfg->max_steps == 0 || t->step < cfg->max_steps)) {
        int64_t epoch = t->epoch;
        rc = alig_trainer_step(t, NULL);
        if (rc) {
            if (root)
                fprintf(stderr, "alig-train: %s: %s\n", alig_status_name(rc), alig_error_message());
            return rc;
        }
        if (root && cfg->metrics_every > 0 && t->step % cfg->metrics_every == 0) {
            alig_metrics_step_t row = {.step = t->step, .epoch = epoch + 1, .loss = t->last.loss,
                                       .step_size = t->last.step,
                                       .step_unclipped = t->last.step_unclipped,
                                       .clipped = t->last.clipped,
                                       .grad_norm = sqrt(t->last.grad_norm2)};
            alig_metrics_step(&t->metrics, &row);
        }
        if (root)
            progress_(t, &progress, log);
        if (root && cfg->log_every > 0 && t->step % cfg->log_every == 0)
            fprintf(log, "  step %lld  loss %.5f  step size %.5g%s  |g| %.4g\n", (long long)t->step,
                    t->last.loss, t->last.step, t->last.clipped ? " (clipped)" : "",
                    sqrt(t->last.grad_norm2));
        int epoch_done = t->epoch != epoch;
        int last = t->epoch >= cfg->epochs || (cfg->max_steps && t->step >= cfg->max_steps);
        /* a stop signal: checkpoint and return ALIG_E_PREEMPTED (after the
         * epoch line when this step ended an epoch, so its stats are not lost) */
        if (t->stop_requested && !epoch_done && !last)
            return alig_ckpt_stop(t, log);
        if (!epoch_done && !last) {
            if ((rc = alig_ckpt_after_step(t, 0, log)))
                return rc;
            continue;
        }

        alig_epoch_stats_t *s = &t->stats;
        double test_loss = NAN, test_acc = NAN;
        int eval = t->test.n > 0 && cfg->eval_every > 0 &&
                   (last || (epoch + 1) % cfg->eval_every == 0);
        if (eval)
            alig_trainer_evaluate(t, &t->test, &test_loss, &test_acc);
        if (s->steps == 0 && s->skipped > 0) { /* nonfinite = skip, and nothing was left */
            rc = alig_fail(ALIG_E_NUMERIC,
                           "epoch %lld: all %lld steps had a non-finite loss or gradient and were "
                           "skipped ([run] nonfinite = skip); the run cannot make progress",
                           (long long)epoch + 1, (long long)s->skipped);
            if (root)
                fprintf(stderr, "alig-train: %s: %s\n", alig_status_name(rc), alig_error_message());
            return rc;
        }
        /* memory: the peak resident set, largest over the ranks; flat over epochs when
         * nothing allocates in the step loop */
        struct rusage ru;
        double rss_mb = getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
        alig_comm_allreduce_max_d(t->comm, &rss_mb, 1);
        char skipped[64] = "";
        if (s->skipped)
            snprintf(skipped, sizeof skipped, "  skipped %lld non-finite step(s)",
                     (long long)s->skipped);
        if (root) {
            if (progress.shown) /* clear the live line */
                fprintf(log, "\r%*s\r", progress.shown, "");
            progress.shown = 0;
            alig_metrics_epoch_t row = {
                .epoch = epoch + 1, .step = t->step,
                .train_loss = s->loss_sum / (double)s->samples,
                .train_acc = (double)s->correct / (double)s->samples,
                .test_loss = test_loss, .test_acc = test_acc,
                .step_mean = s->step_sum / (double)s->steps, .step_min = s->step_min,
                .step_max = s->step_max, .clipped_frac = (double)s->clipped / (double)s->steps,
                .weight_norm = sqrt(alig_norm2(t->model.params, t->model.n_params)),
                .seconds = alig_time() - t_start,
                .samples_per_s = (double)s->samples / s->seconds, .skipped = s->skipped,
                .peak_rss_mb = rss_mb};
            alig_metrics_epoch(&t->metrics, &row);
            char test[64] = "test not evaluated"; /* no test set, or not this epoch */
            if (!isnan(test_loss) || !isnan(test_acc))
                snprintf(test, sizeof test, "test loss %.4f acc %6.2f%%", test_loss,
                         100.0 * test_acc);
            fprintf(log,
                    "epoch %3lld%s  train loss %.4f acc %6.2f%%  %s  "
                    "step mean %.4g [%.3g, %.3g] clipped %5.1f%%  %.0f samples/s  %.1f s  "
                    "peak RSS %.0f MiB%s\n",
                    (long long)epoch + 1, epoch_done ? "" : "*", s->loss_sum / (double)s->samples,
                    100.0 * (double)s->correct / (double)s->samples, test,
                    s->step_sum / (double)s->steps, s->step_min, s->step_max,
                    100.0 * (double)s->clipped / (double)s->steps,
                    (double)s->samples / s->seconds, alig_time() - t_start, rss_mb, skipped);
            if (cfg->profile) {
                fprintf(log, "profile:");
                print_profile_(log, s);
            }
            fflush(log);
        }
        alig_epoch_stats_t *r = &t->run_stats; /* the whole run's figures, for the last line */
        r->samples += s->samples;
        r->steps += s->steps;
        r->seconds += s->seconds;
        for (int k = 0; k < ALIG_N_PHASES; k++)
            r->phase[k] += s->phase[k];
        if (epoch_done) /* a partial epoch (max_steps) keeps its stats for the final checkpoint */
            reset_stats_(s);
        if (t->stop_requested && !last)
            return alig_ckpt_stop(t, log);
        if ((rc = alig_ckpt_after_step(t, epoch_done, log)))
            return rc;
    }
    const alig_epoch_stats_t *r = &t->run_stats;
    if (root && r->steps > 0 && r->seconds > 0) { /* one line for the run, whatever its epochs */
        fprintf(log, "run: %lld steps, %.0f samples/s", (long long)r->steps,
                (double)r->samples / r->seconds);
        if (cfg->profile) {
            fprintf(log, "; profile:");
            print_profile_(log, r);
        } else {
            fprintf(log, "\n");
        }
        fflush(log);
    }
    return alig_ckpt_end(t, log); /* the final checkpoint */
}

void alig_trainer_free(alig_trainer_t *t)
{
    if (t->lock_fd > 0)
        close(t->lock_fd); /* releases the run directory */
    alig_metrics_close(&t->metrics);
    alig_dataset_free(&t->train);
    alig_dataset_free(&t->test);
    alig_pool_free(t->pool);
    for (int k = 0; k + 1 < t->n_parts; k++)
        alig_model_free(&t->parts[k]);
    free(t->parts);
    free(t->part_from);
    free(t->part_loss);
    free(t->part_correct);
    free(t->team.models);
    free(t->team.rows);
    alig_model_free(&t->model);
    alig_optim_free(&t->optim);
    free(t->perm);
    free(t->labels);
    free(t->eval_index);
    free(t->state_before);
    alig_ckpt_free(t->ckpt);
    memset(t, 0, sizeof *t);
}
