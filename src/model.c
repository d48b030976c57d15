/*
 * model.c -- flat parameter layout, forward and backward.
 *
 * Dense layers go through cblas_sgemm; convolutional layers live in
 * layers.c and the layer-list grammar in model_spec.c (layers-impl.h).
 * No allocation happens after alig_model_build.
 */
#include "alig/model.h"
#include "alig/error.h"
#include "alig/data.h"  // defines: alig_batch_slice
#include "alig/rng.h"
#include "layers-impl.h"  // defines: alig_spec_parse, alig_layer_forward/backward, workspace sizes
#include "pool-impl.h"    // defines: alig_pool_barrier (teams of parts)

#include <cblas.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* building */

static void add_tensor_(alig_model_t *m, alig_layer_t *l, const char *suffix, int ndim,
                        const int64_t *shape)
{
    alig_tensor_t *t = &m->tensors[m->n_tensors];
    if (l->n_tensors == 0)
        l->first_tensor = m->n_tensors;
    snprintf(t->name, sizeof t->name, "%s/%s", l->name, suffix);
    t->ndim = ndim;
    t->size = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->size *= shape[i];
    }
    t->offset = m->n_params;
    m->n_params += t->size;
    m->n_tensors++;
    l->n_tensors++;
}

/* A state tensor (not trained, e.g. bn running statistics): a view into m->state. */
static void add_state_tensor_(alig_model_t *m, alig_layer_t *l, const char *suffix, int64_t size)
{
    alig_tensor_t *t = &m->state_tensors[m->n_state_tensors];
    if (l->n_state_tensors == 0)
        l->first_state = m->n_state_tensors;
    snprintf(t->name, sizeof t->name, "%s/%s", l->name, suffix);
    t->ndim = 1;
    t->shape[0] = t->size = size;
    t->offset = m->n_state;
    m->n_state += size;
    m->n_state_tensors++;
    l->n_state_tensors++;
}

/* bn running statistics start as PyTorch's: mean 0, variance 1. */
static void reset_state_(alig_model_t *m)
{
    for (int i = 0; i < m->n_layers; i++) {
        alig_layer_t *l = &m->layers[i];
        if (l->kind != ALIG_LAYER_BN)
            continue;
        for (int c = 0; c < l->out_c; c++) {
            l->run_mean[c] = 0.0f;
            l->run_var[c] = 1.0f;
        }
    }
}

int alig_model_build(alig_model_t *m, const char *spec, int c, int h, int w, int n_classes,
                     int64_t max_batch)
{
    memset(m, 0, sizeof *m);
    m->training = 1;
    alig_layer_t *parsed = NULL;
    int n_layers = 0;
    int rc = alig_spec_parse(spec, c, h, w, &parsed, &n_layers);
    if (rc)
        return rc;

    int n_tensors = 0, n_state_tensors = 0;
    for (int i = 0; i < n_layers; i++) {
        n_tensors += parsed[i].n_tensors;
        n_state_tensors += parsed[i].kind == ALIG_LAYER_BN ? 2 : 0;
    }
    m->layers = parsed;
    m->n_layers = n_layers;
    m->tensors = alig_calloc((size_t)n_tensors + 1, sizeof *m->tensors, "tensors");
    m->state_tensors = alig_calloc((size_t)n_state_tensors + 1, sizeof *m->state_tensors, "tensors");
    m->spec = strdup(spec);
    if (!m->tensors || !m->state_tensors || !m->spec) {
        if (!m->spec)
            alig_fail(ALIG_E_MEMORY, "out of memory copying the layer list");
        alig_model_free(m);
        return ALIG_E_MEMORY;
    }
    m->in_c = c;
    m->in_h = h;
    m->in_w = w;
    m->in_dim = (int64_t)c * h * w;
    m->n_classes = n_classes;
    m->max_batch = max_batch;

    /* the parameter and state layout, workspace sizes */
    int64_t act_total = m->in_dim, col_floats = 0;
    size_t aux_bytes = 0;
    for (int i = 0; i < n_layers; i++) {
        alig_layer_t *l = &m->layers[i];
        l->n_tensors = 0;
        if (l->kind == ALIG_LAYER_DENSE) {
            int64_t ws[2] = {l->units, l->in_dim}, bs[1] = {l->units};
            add_tensor_(m, l, "weight", 2, ws);
            add_tensor_(m, l, "bias", 1, bs);
        } else if (l->kind == ALIG_LAYER_CONV) {
            int64_t ws[4] = {l->out_c, l->in_c, l->k, l->k}, bs[1] = {l->out_c};
            add_tensor_(m, l, "weight", 4, ws);
            if (l->bias)
                add_tensor_(m, l, "bias", 1, bs);
        } else if (l->kind == ALIG_LAYER_BN) {
            int64_t cs[1] = {l->out_c};
            add_tensor_(m, l, "weight", 1, cs); /* gamma, named as in PyTorch */
            add_tensor_(m, l, "bias", 1, cs);   /* beta */
            add_state_tensor_(m, l, "running_mean", l->out_c);
            add_state_tensor_(m, l, "running_var", l->out_c);
        }
        int64_t cf = alig_layer_col_floats(l, max_batch);
        if (cf > col_floats)
            col_floats = cf;
        l->aux = aux_bytes;
        aux_bytes += alig_layer_aux_bytes(l, max_batch);
        act_total += l->out_dim;
    }
    int64_t dim = m->layers[n_layers - 1].out_dim;
    if (n_classes <= 0)
        m->n_classes = n_classes = (int)dim;
    if (dim != n_classes) {
        rc = alig_fail(ALIG_E_CONFIG,
                       "[model] layers: the last layer (%s) has %lld outputs but the data has %d "
                       "classes; end the list with 'dense %d'",
                       m->layers[n_layers - 1].name, (long long)dim, n_classes, n_classes);
        alig_model_free(m);
        return rc;
    }

    m->params = alig_calloc((size_t)m->n_params, sizeof(float), "parameters");
    m->n_reduce = m->n_params + ALIG_REDUCE_TAIL + m->n_state;
    m->grads = alig_calloc((size_t)m->n_reduce, sizeof(float), "gradients");
    m->state = alig_calloc((size_t)m->n_state + 1, sizeof(float), "model state");
    m->acts = alig_calloc((size_t)n_layers + 1, sizeof(float *), "activation table");
    m->dacts = alig_calloc((size_t)n_layers + 1, sizeof(float *), "activation table");
    m->arena = alig_calloc((size_t)(2 * act_total * max_batch), sizeof(float), "activations");
    m->col = alig_calloc((size_t)col_floats + 1, sizeof(float), "im2col workspace");
    m->aux = alig_calloc(aux_bytes + 1, 1, "layer workspace");
    if (!m->params || !m->grads || !m->state || !m->acts || !m->dacts || !m->arena || !m->col ||
        !m->aux) {
        alig_model_free(m);
        return ALIG_E_MEMORY;
    }
    float *p = m->arena;
    m->acts[0] = p;
    m->dacts[0] = p + act_total * max_batch;
    for (int i = 0; i < n_layers; i++) {
        alig_layer_t *l = &m->layers[i];
        int64_t prev = i == 0 ? m->in_dim : m->layers[i - 1].out_dim;
        m->acts[i + 1] = m->acts[i] + prev * max_batch;
        m->dacts[i + 1] = m->dacts[i] + prev * max_batch;
        if (l->n_tensors > 0) {
            const alig_tensor_t *tw = &m->tensors[l->first_tensor];
            l->w = m->params + tw->offset;
            l->gw = m->grads + tw->offset;
        }
        if (l->n_tensors > 1) {
            const alig_tensor_t *tb = &m->tensors[l->first_tensor + 1];
            l->b = m->params + tb->offset;
            l->gb = m->grads + tb->offset;
        }
        if (l->n_state_tensors == 2) {
            l->run_mean = m->state + m->state_tensors[l->first_state].offset;
            l->run_var = m->state + m->state_tensors[l->first_state + 1].offset;
        }
    }
    reset_state_(m);
    alig_model_set_fusion(m, 1);
    return ALIG_OK;
}

void alig_model_init_params(alig_model_t *m, uint64_t seed, const char *init)
{
    alig_rng_t r;
    alig_rng_seed(&r, seed, ALIG_STREAM_INIT);
    for (int i = 0; i < m->n_layers; i++) {
        alig_layer_t *l = &m->layers[i];
        if (l->kind == ALIG_LAYER_BN) {
            for (int c = 0; c < l->out_c; c++) {
                l->w[c] = 1.0f;
                l->b[c] = 0.0f;
            }
            continue;
        }
        if (l->kind != ALIG_LAYER_DENSE && l->kind != ALIG_LAYER_CONV)
            continue;
        /* "followed by ReLU": the next node reads this output and is relu, possibly
         * after bn and dropout nodes that read it in a chain */
        int j = i + 1, act = i + 1;
        while (j < m->n_layers && m->layers[j].src == act &&
               (m->layers[j].kind == ALIG_LAYER_BN || m->layers[j].kind == ALIG_LAYER_DROPOUT))
            act = ++j;
        int before_relu = j < m->n_layers && m->layers[j].src == act &&
                          m->layers[j].kind == ALIG_LAYER_RELU;
        int he = strcmp(init, "he") == 0 || (strcmp(init, "auto") == 0 && before_relu);
        int64_t fan_in = l->in_dim, fan_out = l->units, nw = fan_in * fan_out;
        if (l->kind == ALIG_LAYER_CONV) {
            /* conv: He normal under auto, whatever follows (a residual branch
             * usually ends in a conv whose sum goes through bn-relu next) */
            int64_t kk = (int64_t)l->k * l->k;
            fan_in = (int64_t)l->in_c * kk;
            fan_out = (int64_t)l->out_c * kk;
            nw = fan_in * l->out_c;
            he = strcmp(init, "glorot") != 0;
        }
        if (he) {
            double std = sqrt(2.0 / (double)fan_in);
            for (int64_t k = 0; k < nw; k++)
                l->w[k] = (float)(std * alig_rng_normal(&r));
        } else {
            double limit = sqrt(6.0 / (double)(fan_in + fan_out));
            for (int64_t k = 0; k < nw; k++)
                l->w[k] = (float)(limit * (2.0 * alig_rng_uniform(&r) - 1.0));
        }
        if (l->b)
            memset(l->b, 0, sizeof(float) * (size_t)l->units);
    }
    reset_state_(m);
}

/* ------------------------------------------------------------------------ */
/* forward and backward */

static void dense_forward_(const alig_layer_t *l, const float *in, float *out, int64_t n)
{
    int64_t no = l->units, ni = l->in_dim;
    for (int64_t i = 0; i < n; i++)
        memcpy(out + i * no, l->b, sizeof(float) * (size_t)no);
    /* out (n, no) += in (n, ni) . W^T (ni, no) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)no, (int)ni, 1.0f, in, (int)ni,
                l->w, (int)ni, 1.0f, out, (int)no);
}

/*
 * A team computes a dense layer's output (and its input gradient) by columns, each
 * thread its share of the units (or inputs) for every row of the slice, when that
 * share has at least this many columns; a narrower layer is computed by rows, each part
 * its own samples, without the two barriers. OpenBLAS runs 512 columns of 128 samples
 * faster than 64 samples of 1024 columns, and each thread then reads half of W instead
 * of all of it: the forward and input-gradient GEMMs of a 1024x1024 layer, two threads
 * at once, took 2000-2110 us by columns against 2310-2560 us by rows (seventh session).
 */
#define ALIG_TEAM_MIN_COLS 64

/* Whether a team splits a product with `cols` output columns by columns. */
static int team_by_cols_(const alig_team_t *tm, int64_t cols)
{
    return cols >= (int64_t)ALIG_TEAM_MIN_COLS * tm->n;
}

/* The team's samples in the current call (every part has set its rows). */
static int64_t team_rows_(const alig_team_t *tm)
{
    int64_t rows = 0;
    for (int p = 0; p < tm->n; p++)
        rows += tm->rows[p];
    return rows;
}

/*
 * Dense forward in a team, by columns: once every part's input rows are final, part k
 * computes units [c0, c1) of the output for the whole slice in models[0]'s buffers
 * (the parts' rows are consecutive there), then waits until every part has, since the
 * next node reads whole rows.
 */
static void dense_forward_team_(const alig_model_t *m, int i, int64_t n)
{
    const alig_team_t *tm = m->team;
    const alig_layer_t *l = &m->layers[i];
    int64_t no = l->units, ni = l->in_dim, c0, c1;
    if (!team_by_cols_(tm, no)) {
        dense_forward_(l, m->acts[l->src], m->acts[i + 1], n);
        return;
    }
    const alig_model_t *m0 = tm->models[0];
    alig_pool_barrier(tm->pool); /* every part's input rows are final */
    int64_t rows = team_rows_(tm);
    alig_batch_slice(no, m->team_id, tm->n, &c0, &c1);
    if (c1 > c0 && rows > 0) {
        const float *in = m0->acts[l->src];
        float *out = m0->acts[i + 1];
        for (int64_t r = 0; r < rows; r++)
            memcpy(out + r * no + c0, l->b + c0, sizeof(float) * (size_t)(c1 - c0));
        /* out[:, c0:c1] (rows, c1 - c0) += in (rows, ni) . W[c0:c1]^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)(c1 - c0), (int)ni,
                    1.0f, in, (int)ni, l->w + c0 * ni, (int)ni, 1.0f, out + c0, (int)no);
    }
    alig_pool_barrier(tm->pool); /* every column of every part's rows is final */
}

static void dense_backward_(const alig_layer_t *l, const float *in, const float *dout, float *din,
                            int acc, int64_t n)
{
    int64_t no = l->units, ni = l->in_dim;
    /* gW (no, ni) = dout^T (no, n) . in (n, ni) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)no, (int)ni, (int)n, 1.0f, dout,
                (int)no, in, (int)ni, 0.0f, l->gw, (int)ni);
    for (int64_t o = 0; o < no; o++)
        l->gb[o] = 0.0f;
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < no; o++)
            l->gb[o] += dout[i * no + o];
    /* din (n, ni) (+)= dout (n, no) . W (no, ni) */
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ni, (int)no, 1.0f, dout,
                    (int)no, l->w, (int)ni, acc ? 1.0f : 0.0f, din, (int)ni);
}

/*
 * Dense backward in a team (alig_team_t): once every part has its dout, part
 * k computes rows [r0, r1) of gW and gb over all parts' samples into
 * models[0]'s buffers. The parts' activations are consecutive rows of
 * models[0]'s (alig_model_team_rows), so that is one GEMM over the whole
 * slice, and gb sums the slice's samples in order: the same sums as one
 * model over the whole slice. Then din: by columns for the whole slice when
 * the layer's inputs are wide enough (team_by_cols_), else for its own
 * samples, as alone.
 */
static void dense_backward_team_(const alig_model_t *m, int i, float *din, int64_t n)
{
    const alig_team_t *tm = m->team;
    const alig_model_t *m0 = tm->models[0];
    const alig_layer_t *l = &m->layers[i], *l0 = &m0->layers[i];
    int64_t no = l->units, ni = l->in_dim, r0, r1;
    alig_pool_barrier(tm->pool); /* every part's dacts[i + 1] is final */
    alig_batch_slice(no, m->team_id, tm->n, &r0, &r1);
    int64_t rows = team_rows_(tm);
    if (r1 > r0 && rows > 0) {
        const float *dout = m0->dacts[i + 1], *in = m0->acts[l->src];
        /* gW[r0:r1] = dout[:, r0:r1]^T . in */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(r1 - r0), (int)ni, (int)rows,
                    1.0f, dout + r0, (int)no, in, (int)ni, 0.0f, l0->gw + r0 * ni, (int)ni);
        for (int64_t o = r0; o < r1; o++)
            l0->gb[o] = 0.0f;
        for (int64_t s = 0; s < rows; s++)
            for (int64_t o = r0; o < r1; o++)
                l0->gb[o] += dout[s * no + o];
    } else if (r1 > r0) { /* no part has samples */
        memset(l0->gw + r0 * ni, 0, sizeof(float) * (size_t)((r1 - r0) * ni));
        memset(l0->gb + r0, 0, sizeof(float) * (size_t)(r1 - r0));
    }
    if (tm->rows_done && r1 > r0) {
        int64_t off = m->tensors[l->first_tensor].offset;
        tm->rows_done(tm->rows_done_ctx, off + r0 * ni, off + r1 * ni);
    }
    if (!din)
        return;
    if (!team_by_cols_(tm, ni)) { /* din for the part's own samples, as alone */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ni, (int)no, 1.0f,
                    m->dacts[i + 1], (int)no, l->w, (int)ni, l->acc_src ? 1.0f : 0.0f, din,
                    (int)ni);
        return;
    }
    /* din[:, c0:c1] (+)= dout (rows, no) . W[:, c0:c1] for the whole slice, then wait until
     * every part has written its columns: the node before reads whole rows */
    int64_t c0, c1;
    alig_batch_slice(ni, m->team_id, tm->n, &c0, &c1);
    if (c1 > c0 && rows > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)(c1 - c0), (int)no,
                    1.0f, m0->dacts[i + 1], (int)no, l->w + c0, (int)ni,
                    l->acc_src ? 1.0f : 0.0f, m0->dacts[l->src] + c0, (int)ni);
    alig_pool_barrier(tm->pool);
}

void alig_model_team_rows(alig_model_t *m, const alig_model_t *m0, int64_t first)
{
    for (int i = 0; i <= m->n_layers; i++) {
        int64_t dim = i == 0 ? m->in_dim : m->layers[i - 1].out_dim;
        m->acts[i] = m0->acts[i] + first * dim;
        m->dacts[i] = m0->dacts[i] + first * dim;
    }
}

int alig_model_team_ok(const alig_model_t *m)
{
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].n_tensors > 0 && m->layers[i].kind != ALIG_LAYER_DENSE)
            return 0;
    return 1;
}

/* din (+)= dout where the relu's output is positive; written so it vectorises */
static void relu_backward_(const float *restrict out, const float *restrict dout,
                           float *restrict din, int acc, int64_t total)
{
    if (acc)
        for (int64_t k = 0; k < total; k++) {
            float d = dout[k];
            din[k] += out[k] > 0.0f ? d : 0.0f;
        }
    else
        for (int64_t k = 0; k < total; k++) {
            float d = dout[k];
            din[k] = out[k] > 0.0f ? d : 0.0f;
        }
}

double alig_model_forward(alig_model_t *m, int64_t n, const int32_t *y, int64_t *correct)
{
    for (int i = 0; i < m->n_layers; i++) {
        const alig_layer_t *l = &m->layers[i];
        const float *in = m->acts[l->src];
        float *out = m->acts[i + 1];
        switch (l->kind) {
        case ALIG_LAYER_DENSE:
            if (m->team)
                dense_forward_team_(m, i, n);
            else
                dense_forward_(l, in, out, n);
            break;
        case ALIG_LAYER_RELU:
            if (l->fused) /* the max pool after it does it */
                break;
            for (int64_t k = 0; k < n * l->in_dim; k++)
                out[k] = in[k] > 0.0f ? in[k] : 0.0f;
            break;
        default:
            alig_layer_forward(m, i, n);
            break;
        }
    }
    if (!y)
        return 0.0;

    /* softmax cross-entropy, summed; dlogits = softmax - onehot kept for backward */
    const float *logits = m->acts[m->n_layers];
    float *dlogits = m->dacts[m->n_layers];
    int K = m->n_classes;
    double loss = 0.0;
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + i * K;
        float *dz = dlogits + i * K;
        int arg = 0;
        for (int k = 1; k < K; k++)
            if (z[k] > z[arg])
                arg = k;
        double zmax = z[arg], sum = 0.0;
        for (int k = 0; k < K; k++)
            sum += exp((double)z[k] - zmax);
        double lse = zmax + log(sum);
        loss += lse - (double)z[y[i]];
        for (int k = 0; k < K; k++)
            dz[k] = (float)exp((double)z[k] - lse);
        dz[y[i]] -= 1.0f;
        right += arg == y[i];
    }
    if (correct)
        *correct += right;
    return loss;
}

void alig_model_backward(alig_model_t *m, int64_t n, const int32_t *y)
{
    (void)y; /* the loss gradient was stored by the forward pass */
    if (n == 0 && !m->team) { /* (a team's part with no samples still does its share) */
        memset(m->grads, 0, sizeof(float) * (size_t)m->n_params);
        if (m->grads_ready)
            m->grads_ready(m->grads_ready_ctx, 0);
        return;
    }
    for (int i = m->n_layers - 1; i >= 0; i--) {
        const alig_layer_t *l = &m->layers[i];
        const float *dout = m->dacts[i + 1];
        float *din = l->src > 0 ? m->dacts[l->src] : NULL; /* no gradient w.r.t. the data */
        switch (l->kind) {
        case ALIG_LAYER_DENSE:
            if (m->team)
                dense_backward_team_(m, i, din, n);
            else
                dense_backward_(l, m->acts[l->src], dout, din, l->acc_src, n);
            break;
        case ALIG_LAYER_RELU:
            if (din && !l->fused)
                relu_backward_(m->acts[i + 1], dout, din, l->acc_src, n * l->in_dim);
            break;
        default:
            alig_layer_backward(m, i, n);
            break;
        }
        if (m->grads_ready && l->n_tensors > 0)
            m->grads_ready(m->grads_ready_ctx, m->tensors[l->first_tensor].offset);
    }
}

const char *alig_model_first_bn(const alig_model_t *m)
{
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == ALIG_LAYER_BN)
            return m->layers[i].name;
    return NULL;
}

int alig_model_find_tensor(const alig_model_t *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return i;
    return -1;
}

void alig_model_summary(const alig_model_t *m, char *buf, size_t size)
{
    size_t used = 0;
    used += (size_t)snprintf(buf, size, "input %dx%dx%d\n", m->in_c, m->in_h, m->in_w);
    for (int i = 0; i < m->n_layers && used < size; i++) {
        const alig_layer_t *l = &m->layers[i];
        int w;
        if (l->kind == ALIG_LAYER_DENSE)
            w = snprintf(buf + used, size - used, "%s %lld -> %d\n", l->name,
                         (long long)l->in_dim, l->units);
        else if (l->kind == ALIG_LAYER_RELU && l->src == i)
            w = snprintf(buf + used, size - used, "%s %lld\n", l->name, (long long)l->in_dim);
        else if (l->kind == ALIG_LAYER_ADD)
            w = snprintf(buf + used, size - used, "%s %s + %s -> %dx%dx%d\n", l->name,
                         l->src ? m->layers[l->src - 1].name : "input",
                         l->src2 ? m->layers[l->src2 - 1].name : "input", l->out_c, l->out_h,
                         l->out_w);
        else
            w = snprintf(buf + used, size - used, "%s %dx%dx%d -> %dx%dx%d%s%s%s\n", l->name,
                         l->in_c, l->in_h, l->in_w, l->out_c, l->out_h, l->out_w,
                         l->src == i ? "" : " (input: ",
                         l->src == i ? "" : l->src ? m->layers[l->src - 1].name : "input",
                         l->src == i ? "" : ")");
        used += w > 0 ? (size_t)w : 0;
    }
}

/* Point every layer's weight and bias views into base: the parameters' (w, b) or
 * the gradients' (gw, gb). */
static void point_views_(alig_model_t *m, float *base, int grads)
{
    for (int i = 0; i < m->n_layers; i++) {
        alig_layer_t *l = &m->layers[i];
        float **w = grads ? &l->gw : &l->w, **b = grads ? &l->gb : &l->b;
        if (l->n_tensors > 0)
            *w = base + m->tensors[l->first_tensor].offset;
        if (l->n_tensors > 1)
            *b = base + m->tensors[l->first_tensor + 1].offset;
    }
}

/* Move the buffer *cur (n floats; freed unless *outside) into buf, owned elsewhere. */
static void adopt_(alig_model_t *m, float **cur, int *outside, float *buf, int64_t n, int grads)
{
    memcpy(buf, *cur, sizeof(float) * (size_t)n);
    if (!*outside)
        free(*cur);
    *cur = buf;
    *outside = 1;
    point_views_(m, buf, grads);
}

void alig_model_use_grads(alig_model_t *m, float *buf)
{
    adopt_(m, &m->grads, &m->grads_outside, buf, m->n_reduce, 1);
}

void alig_model_set_fusion(alig_model_t *m, int on)
{
    for (int i = 0; i < m->n_layers; i++)
        m->layers[i].fused = m->layers[i].pool_node = 0;
    for (int p = 0; on && p < m->n_layers; p++) {
        alig_layer_t *pool = &m->layers[p];
        if (pool->kind != ALIG_LAYER_MAXPOOL || pool->k != 2 || pool->stride != 2 ||
            pool->pad != 0 || pool->in_h % 2 || pool->in_w % 2 || pool->src < 1)
            continue;
        alig_layer_t *relu = &m->layers[pool->src - 1];
        /* the relu's output feeds only this pool, and nothing else writes its input's
         * gradient before it does (so the pool may overwrite it) */
        int only = relu->kind == ALIG_LAYER_RELU && !relu->acc_src && !relu->fused;
        for (int j = 0; only && j < m->n_layers; j++)
            if (j != p && (m->layers[j].src == pool->src || m->layers[j].src2 == pool->src))
                only = 0;
        if (!only)
            continue;
        relu->fused = pool->fused = 1;
        /* a conv whose output only this relu reads hands it over in its workspace */
        int c = relu->src - 1;
        if (c < 0 || m->layers[c].kind != ALIG_LAYER_CONV)
            continue;
        for (int j = 0; only && j < m->n_layers; j++) {
            const alig_layer_t *o = &m->layers[j];
            if (j != pool->src - 1 && (o->src == relu->src || o->src2 == relu->src))
                only = 0;
        }
        if (only) {
            m->layers[c].pool_node = p;
            relu->fused = pool->fused = 2;
        }
    }
}

void alig_model_use_params(alig_model_t *m, float *buf)
{
    adopt_(m, &m->params, &m->params_shared, buf, m->n_params, 0);
}

void alig_model_share_params(alig_model_t *m, const alig_model_t *from)
{
    if (!m->params_shared)
        free(m->params);
    m->params = from->params;
    m->params_shared = 1;
    point_views_(m, m->params, 0);
}

void alig_model_free(alig_model_t *m)
{
    free(m->layers);
    free(m->tensors);
    if (!m->params_shared)
        free(m->params);
    if (!m->grads_outside)
        free(m->grads);
    free(m->acts);
    free(m->dacts);
    free(m->arena);
    free(m->state_tensors);
    free(m->state);
    free(m->spec);
    free(m->col);
    free(m->aux);
    memset(m, 0, sizeof *m);
}
