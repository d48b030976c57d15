/*
 * model.c -- layer list parsing, flat parameter layout, forward and backward.
 *
 * Dense layers go through cblas_sgemm; everything else is a cheap
 * elementwise loop. No allocation happens after alig_model_build.
 */
#include "alig/model.h"
#include "alig/error.h"
#include "alig/rng.h"

#include <cblas.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 256

/* ------------------------------------------------------------------------ */
/* parsing "dense 1024, relu, dense 10" */

static int parse_layer_(const char *item, int index, alig_layer_t *l)
{
    char kind[16];
    long units = 0;
    char extra[8];
    memset(l, 0, sizeof *l);
    int n = sscanf(item, "%15s %ld %7s", kind, &units, extra);
    if (n >= 1 && strcmp(kind, "dense") == 0) {
        if (n != 2 || units < 1 || units > (1L << 24))
            return alig_fail(ALIG_E_CONFIG,
                             "[model] layers: item %d '%s': expected 'dense N' with N in [1, %ld]",
                             index + 1, item, 1L << 24);
        l->kind = ALIG_LAYER_DENSE;
        l->units = (int)units;
    } else if (n == 1 && strcmp(kind, "relu") == 0) {
        l->kind = ALIG_LAYER_RELU;
    } else {
        return alig_fail(ALIG_E_CONFIG,
                         "[model] layers: item %d '%s': expected 'dense N' or 'relu'", index + 1,
                         item);
    }
    snprintf(l->name, sizeof l->name, "%02d_%s", index, kind);
    return ALIG_OK;
}

static int parse_layers_(const char *spec, alig_layer_t *layers, int *count)
{
    char buf[4096];
    if (strlen(spec) >= sizeof buf)
        return alig_fail(ALIG_E_CONFIG, "[model] layers: list longer than %zu characters",
                         sizeof buf - 1);
    strcpy(buf, spec);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (n == MAX_LAYERS)
            return alig_fail(ALIG_E_CONFIG, "[model] layers: more than %d layers", MAX_LAYERS);
        int rc = parse_layer_(tok, n, &layers[n]);
        if (rc)
            return rc;
        n++;
    }
    if (n == 0)
        return alig_fail(ALIG_E_CONFIG, "[model] layers: empty list, expected e.g. 'dense 10'");
    *count = n;
    return ALIG_OK;
}

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

int alig_model_build(alig_model_t *m, const char *spec, int c, int h, int w, int n_classes,
                     int64_t max_batch)
{
    memset(m, 0, sizeof *m);
    alig_layer_t parsed[MAX_LAYERS];
    int n_layers = 0;
    int rc = parse_layers_(spec, parsed, &n_layers);
    if (rc)
        return rc;

    m->layers = alig_calloc((size_t)n_layers, sizeof *m->layers, "layers");
    m->tensors = alig_calloc((size_t)n_layers * 2, sizeof *m->tensors, "tensors");
    if (!m->layers || !m->tensors) {
        alig_model_free(m);
        return ALIG_E_MEMORY;
    }
    m->n_layers = n_layers;
    m->in_c = c;
    m->in_h = h;
    m->in_w = w;
    m->in_dim = (int64_t)c * h * w;
    m->n_classes = n_classes;
    m->max_batch = max_batch;

    /* shapes and the parameter layout */
    int64_t dim = m->in_dim;
    int64_t act_total = dim;
    for (int i = 0; i < n_layers; i++) {
        alig_layer_t *l = &m->layers[i];
        *l = parsed[i];
        l->in_dim = dim;
        if (l->kind == ALIG_LAYER_DENSE) {
            l->out_dim = l->units;
            int64_t ws[2] = {l->units, dim}, bs[1] = {l->units};
            add_tensor_(m, l, "weight", 2, ws);
            add_tensor_(m, l, "bias", 1, bs);
        } else {
            l->out_dim = dim;
        }
        dim = l->out_dim;
        act_total += dim;
    }
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
    m->grads = alig_calloc((size_t)(m->n_params + ALIG_REDUCE_TAIL), sizeof(float), "gradients");
    m->acts = alig_calloc((size_t)n_layers + 1, sizeof(float *), "activation table");
    m->dacts = alig_calloc((size_t)n_layers + 1, sizeof(float *), "activation table");
    m->arena = alig_calloc((size_t)(2 * act_total * max_batch), sizeof(float), "activations");
    if (!m->params || !m->grads || !m->acts || !m->dacts || !m->arena) {
        alig_model_free(m);
        return ALIG_E_MEMORY;
    }
    float *p = m->arena;
    m->acts[0] = p;
    m->dacts[0] = p + act_total * max_batch;
    for (int i = 0; i < n_layers; i++) {
        alig_layer_t *l = &m->layers[i];
        m->acts[i + 1] = m->acts[i] + l->in_dim * max_batch;
        m->dacts[i + 1] = m->dacts[i] + l->in_dim * max_batch;
        if (l->kind == ALIG_LAYER_DENSE) {
            const alig_tensor_t *tw = &m->tensors[l->first_tensor];
            const alig_tensor_t *tb = &m->tensors[l->first_tensor + 1];
            l->w = m->params + tw->offset;
            l->b = m->params + tb->offset;
            l->gw = m->grads + tw->offset;
            l->gb = m->grads + tb->offset;
        }
    }
    return ALIG_OK;
}

void alig_model_init_params(alig_model_t *m, uint64_t seed, const char *init)
{
    alig_rng_t r;
    alig_rng_seed(&r, seed, ALIG_STREAM_INIT);
    for (int i = 0; i < m->n_layers; i++) {
        alig_layer_t *l = &m->layers[i];
        if (l->kind != ALIG_LAYER_DENSE)
            continue;
        int before_relu = i + 1 < m->n_layers && m->layers[i + 1].kind == ALIG_LAYER_RELU;
        int he = strcmp(init, "he") == 0 || (strcmp(init, "auto") == 0 && before_relu);
        int64_t fan_in = l->in_dim, fan_out = l->units, nw = fan_in * fan_out;
        if (he) {
            double std = sqrt(2.0 / (double)fan_in);
            for (int64_t k = 0; k < nw; k++)
                l->w[k] = (float)(std * alig_rng_normal(&r));
        } else {
            double limit = sqrt(6.0 / (double)(fan_in + fan_out));
            for (int64_t k = 0; k < nw; k++)
                l->w[k] = (float)(limit * (2.0 * alig_rng_uniform(&r) - 1.0));
        }
        memset(l->b, 0, sizeof(float) * (size_t)l->units);
    }
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

static void dense_backward_(const alig_layer_t *l, const float *in, const float *dout, float *din,
                            int64_t n)
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
    /* din (n, ni) = dout (n, no) . W (no, ni) */
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)ni, (int)no, 1.0f, dout,
                    (int)no, l->w, (int)ni, 0.0f, din, (int)ni);
}

double alig_model_forward(alig_model_t *m, int64_t n, const int32_t *y, int64_t *correct)
{
    for (int i = 0; i < m->n_layers; i++) {
        const alig_layer_t *l = &m->layers[i];
        const float *in = m->acts[i];
        float *out = m->acts[i + 1];
        switch (l->kind) {
        case ALIG_LAYER_DENSE:
            dense_forward_(l, in, out, n);
            break;
        case ALIG_LAYER_RELU:
            for (int64_t k = 0; k < n * l->in_dim; k++)
                out[k] = in[k] > 0.0f ? in[k] : 0.0f;
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
    if (n == 0) {
        memset(m->grads, 0, sizeof(float) * (size_t)m->n_params);
        return;
    }
    for (int i = m->n_layers - 1; i >= 0; i--) {
        const alig_layer_t *l = &m->layers[i];
        const float *dout = m->dacts[i + 1];
        float *din = i > 0 ? m->dacts[i] : NULL; /* no gradient w.r.t. the data */
        switch (l->kind) {
        case ALIG_LAYER_DENSE:
            dense_backward_(l, m->acts[i], dout, din, n);
            break;
        case ALIG_LAYER_RELU:
            if (din) {
                const float *out = m->acts[i + 1];
                for (int64_t k = 0; k < n * l->in_dim; k++)
                    din[k] = out[k] > 0.0f ? dout[k] : 0.0f;
            }
            break;
        }
    }
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
        if (l->kind == ALIG_LAYER_DENSE)
            used += (size_t)snprintf(buf + used, size - used, "%s %lld -> %d\n", l->name,
                                     (long long)l->in_dim, l->units);
        else
            used += (size_t)snprintf(buf + used, size - used, "%s %lld\n", l->name,
                                     (long long)l->in_dim);
    }
}

void alig_model_free(alig_model_t *m)
{
    free(m->layers);
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->acts);
    free(m->dacts);
    free(m->arena);
    free(m->state_tensors);
    free(m->state);
    memset(m, 0, sizeof *m);
}
