/*
 * layers.c -- forward and backward of the convolutional layers (issue 4):
 * conv2d (im2col + cblas_sgemm), max/avg/global-average pooling, batch
 * normalisation, dropout, flatten and the residual add.
 *
 * Conventions (see alig/model.h): activations are NCHW float32, a node
 * reads acts[src] and writes acts[i + 1]; backward writes its parameter
 * gradient SUMS (overwriting) and the gradient w.r.t. its input, adding
 * into dacts[src] when another consumer already wrote there (acc_src).
 * Semantics follow PyTorch (conv weight (out_c, in_c, k, k), max-pool
 * padding never wins, avg-pool padding counts as zeros, BatchNorm2d with
 * eps 1e-5, momentum 0.1 and the unbiased variance in the running
 * statistics) so a PyTorch reference can be compared number for number.
 *
 * No allocation: the im2col buffer (m->col) and per-node scratch
 * (m->aux + l->aux) are sized by model.c at build time.
 */
#include "layers-impl.h"

#include "alig/rng.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Sum of x[0..n) in a fixed order, eight partial sums so it vectorises. */
static float sum_(const float *x, int64_t n)
{
    float p[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            p[k] += x[i + k];
    for (; i < n; i++)
        p[0] += x[i];
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

/* ------------------------------------------------------------------------ */
/* im2col */

/* Output columns ow whose input column ow*s - p + kj lies in [0, w): [*lo, *hi). */
static void valid_range_(int w, int s, int p, int kj, int ow, int *lo, int *hi)
{
    int a = p - kj; /* need ow*s >= a */
    *lo = a <= 0 ? 0 : (a + s - 1) / s;
    int b = w - 1 + p - kj; /* need ow*s <= b */
    *hi = b < 0 ? 0 : b / s + 1;
    if (*hi > ow)
        *hi = ow;
    if (*lo > *hi)
        *lo = *hi;
}

/*
 * A "same" convolution (stride 1, k = 2p + 1, so oh = h and ow = w): each
 * im2col row is the input plane shifted by (dy, dx), rows [ylo, yhi) one
 * contiguous copy; the entries a row shift wraps into the next or previous
 * image row (a = -dx leading or b = dx trailing of each row) are padding.
 */
static void same_range_(int h, int w, int ki, int kj, int p, int *dy, int *dx, int *ylo,
                        int *yhi, int *a, int *b)
{
    *dy = ki - p;
    *dx = kj - p;
    *ylo = *dy < 0 ? -*dy : 0;
    *yhi = *dy > 0 ? h - *dy : h;
    *a = *dx < 0 ? -*dx : 0;
    *b = *dx > 0 ? *dx : 0;
    (void)w;
}

/* Zero the a leading and b trailing entries of each of `rows` rows of w. Column by
 * column: a and b are at most the padding, and row by row gcc turns each into a
 * memset call of one or two floats (3-4% of a CNN step). */
static void zero_wrapped_(float *r, int rows, int w, int a, int b)
{
    for (int o = 0; o < a; o++)
        for (int y = 0; y < rows; y++)
            r[(int64_t)y * w + o] = 0.0f;
    for (int o = w - b; o < w; o++)
        for (int y = 0; y < rows; y++)
            r[(int64_t)y * w + o] = 0.0f;
}

static void im2col_same_(const float *x, int c, int h, int w, int k, int p, float *col, int64_t ld)
{
    for (int ci = 0; ci < c; ci++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                float *row = col + ((int64_t)(ci * k + ki) * k + kj) * ld;
                int dy, dx, ylo, yhi, a, b;
                same_range_(h, w, ki, kj, p, &dy, &dx, &ylo, &yhi, &a, &b);
                memset(row, 0, sizeof(float) * (size_t)ylo * w);
                memset(row + (int64_t)yhi * w, 0, sizeof(float) * (size_t)(h - yhi) * w);
                if (ylo >= yhi)
                    continue;
                float *dst = row + (int64_t)ylo * w;
                const float *src = x + ((int64_t)ci * h + ylo + dy) * w + dx;
                int64_t n = (int64_t)(yhi - ylo) * w;
                memcpy(dst + a, src + a, sizeof(float) * (size_t)(n - a - b));
                zero_wrapped_(dst, yhi - ylo, w, a, b);
            }
}

/* col2im of a same convolution; zeroes col's padding entries on the way. */
static void col2im_same_(float *col, int64_t ld, int c, int h, int w, int k, int p, float *dxi)
{
    for (int ci = 0; ci < c; ci++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                float *row = col + ((int64_t)(ci * k + ki) * k + kj) * ld;
                int dy, dx, ylo, yhi, a, b;
                same_range_(h, w, ki, kj, p, &dy, &dx, &ylo, &yhi, &a, &b);
                if (ylo >= yhi)
                    continue;
                float *r = row + (int64_t)ylo * w;
                zero_wrapped_(r, yhi - ylo, w, a, b);
                /* the zeroed entries add 0 to their wrapped targets: exact */
                float *restrict t = dxi + ((int64_t)ci * h + ylo + dy) * w + dx;
                const float *restrict u = r;
                int64_t n = (int64_t)(yhi - ylo) * w;
                for (int64_t q = a; q < n - b; q++)
                    t[q] += u[q];
            }
}

static int same_conv_(int h, int w, int k, int s, int p, int oh, int ow)
{
    return s == 1 && k == 2 * p + 1 && oh == h && ow == w;
}

void alig_im2col(const float *x, int c, int h, int w, int k, int s, int p, int oh, int ow,
                 float *col, int64_t ld)
{
    if (same_conv_(h, w, k, s, p, oh, ow)) {
        im2col_same_(x, c, h, w, k, p, col, ld);
        return;
    }
    for (int ci = 0; ci < c; ci++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                float *row = col + ((int64_t)(ci * k + ki) * k + kj) * ld;
                int lo, hi;
                valid_range_(w, s, p, kj, ow, &lo, &hi);
                for (int y = 0; y < oh; y++) {
                    float *r = row + (int64_t)y * ow;
                    int ih = y * s - p + ki;
                    if (ih < 0 || ih >= h) {
                        memset(r, 0, sizeof(float) * (size_t)ow);
                        continue;
                    }
                    const float *xr = x + ((int64_t)ci * h + ih) * w + kj - p;
                    for (int o = 0; o < lo; o++)
                        r[o] = 0.0f;
                    /* rows are short (7..32): a plain loop beats a memcpy call */
                    if (s == 1)
                        for (int o = lo; o < hi; o++)
                            r[o] = xr[o];
                    else
                        for (int o = lo; o < hi; o++)
                            r[o] = xr[o * s];
                    for (int o = hi; o < ow; o++)
                        r[o] = 0.0f;
                }
            }
}

void alig_col2im(float *col, int64_t ld, int c, int h, int w, int k, int s, int p, int oh, int ow,
                 float *dx)
{
    if (same_conv_(h, w, k, s, p, oh, ow)) {
        col2im_same_(col, ld, c, h, w, k, p, dx);
        return;
    }
    for (int ci = 0; ci < c; ci++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                const float *row = col + ((int64_t)(ci * k + ki) * k + kj) * ld;
                int lo, hi;
                valid_range_(w, s, p, kj, ow, &lo, &hi);
                for (int y = 0; y < oh; y++) {
                    int ih = y * s - p + ki;
                    if (ih < 0 || ih >= h)
                        continue;
                    const float *r = row + (int64_t)y * ow;
                    float *xr = dx + ((int64_t)ci * h + ih) * w + kj - p;
                    if (s == 1) /* contiguous: vectorises */
                        for (int o = lo; o < hi; o++)
                            xr[o] += r[o];
                    else
                        for (int o = lo; o < hi; o++)
                            xr[o * s] += r[o];
                }
            }
}

/* ------------------------------------------------------------------------ */
/*
 * conv2d, a chunk of nb samples at a time (l->chunk, chosen by
 * conv_chunk_): the chunk's im2col columns sit side by side,
 *   col (c*k*k, nb*oh*ow), sample j in columns [j*pp, (j+1)*pp),
 * so one GEMM per chunk, Y (oc, nb*pp) = W (oc, c*k*k) . col, replaces nb
 * small ones; Y lives in the workspace after col and is copied out to NCHW
 * with the bias. Backward gathers dy the same way: gW (+)= dY . col^T and
 * dcol = W^T . dY, scattered back by col2im. A conv with a pool_node (a relu
 * and 2x2 max pool that only it feeds) pools Y where it is and backward builds
 * dY there from the pool's gradient, also for a chunk of one sample.
 */

/* Columns a chunk's GEMM should have, and the most workspace floats a chunk may use. */
#define CONV_COLS 1024
#define CONV_MAX_FLOATS ((int64_t)4 << 20)

static int64_t conv_chunk_(const alig_layer_t *l, int64_t max_batch)
{
    int64_t pp = (int64_t)l->out_h * l->out_w, kk = (int64_t)l->in_c * l->k * l->k;
    /* a sample with half a GEMM's worth of columns goes alone: its GEMM writes the NCHW
     * output directly (and backward reads dy in place), with no copies */
    int64_t nb = 2 * pp >= CONV_COLS ? 1 : (CONV_COLS + pp - 1) / pp;
    if (nb > max_batch)
        nb = max_batch;
    while (nb > 1 && (kk + l->out_c) * nb * pp > CONV_MAX_FLOATS)
        nb--;
    return nb < 1 ? 1 : nb;
}

/* the 2x2 max pool's planes (pooling, below), which a conv with a pool_node calls */
static inline void pool2_plane_(const float *x, int w, int oh, int ow, float *y, int32_t *a,
                                int relu);
static inline void unpool2_plane_(const float *dy, const int32_t *a, const float *y, int w,
                                  int oh, int ow, float *dx, const int relu);

/* A conv with a pool_node: the relu and 2x2 max pool of the chunk's Y (oc, ld) in the
 * workspace, where sample j's channel o is the plane at y + o*ld + j*pp, into the pool's
 * output and winners for samples s0.. (as the two nodes would from the conv's output). */
static void pool_chunk_(const alig_model_t *m, const alig_layer_t *l, const float *y,
                        int64_t ld, int64_t s0, int64_t nb)
{
    const alig_layer_t *pool = &m->layers[l->pool_node];
    float *out = m->acts[l->pool_node + 1];
    int32_t *arg = (int32_t *)(m->aux + pool->aux);
    int64_t pp = (int64_t)l->out_h * l->out_w, oplane = (int64_t)pool->out_h * pool->out_w;
    for (int o = 0; o < l->out_c; o++)
        for (int64_t j = 0; j < nb; j++) {
            int64_t q = (s0 + j) * pool->out_dim + o * oplane;
            pool2_plane_(y + o * ld + j * pp, l->out_w, pool->out_h, pool->out_w, out + q,
                         arg + q, 1);
        }
}

/* Its backward: the chunk's dY (oc, ld), laid out as Y, from the pool's output gradient. */
static void unpool_chunk_(const alig_model_t *m, const alig_layer_t *l, float *dy, int64_t ld,
                          int64_t s0, int64_t nb)
{
    const alig_layer_t *pool = &m->layers[l->pool_node];
    const float *dout = m->dacts[l->pool_node + 1], *out = m->acts[l->pool_node + 1];
    const int32_t *arg = (const int32_t *)(m->aux + pool->aux);
    int64_t pp = (int64_t)l->out_h * l->out_w, oplane = (int64_t)pool->out_h * pool->out_w;
    for (int o = 0; o < l->out_c; o++)
        for (int64_t j = 0; j < nb; j++) {
            int64_t q = (s0 + j) * pool->out_dim + o * oplane;
            unpool2_plane_(dout + q, arg + q, out + q, l->out_w, pool->out_h, pool->out_w,
                           dy + o * ld + j * pp, 1);
        }
}

static void conv_forward_(const alig_model_t *m, const alig_layer_t *l, const float *in,
                          float *out, int64_t n)
{
    int64_t kk = (int64_t)l->in_c * l->k * l->k, pp = (int64_t)l->out_h * l->out_w;
    int oc = l->out_c;
    for (int64_t s0 = 0; s0 < n; s0 += l->chunk) {
        int64_t nb = n - s0 < l->chunk ? n - s0 : l->chunk, ld = nb * pp;
        float *col = m->col, *y = m->col + kk * ld;
        if (l->chunk == 1) { /* Y (oc, pp) is the sample's NCHW output: bias, then += W . col;
                              * with a pool_node it stays in the workspace */
            float *o_s = l->pool_node ? y : out + s0 * l->out_dim;
            alig_im2col(in + s0 * l->in_dim, l->in_c, l->in_h, l->in_w, l->k, l->stride, l->pad,
                        l->out_h, l->out_w, col, pp);
            for (int o = 0; o < oc; o++) {
                float b = l->b ? l->b[o] : 0.0f;
                for (int64_t q = 0; q < pp; q++)
                    o_s[o * pp + q] = b;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, oc, (int)pp, (int)kk, 1.0f,
                        l->w, (int)kk, col, (int)pp, 1.0f, o_s, (int)pp);
            if (l->pool_node)
                pool_chunk_(m, l, y, ld, s0, 1);
            continue;
        }
        for (int64_t j = 0; j < nb; j++)
            alig_im2col(in + (s0 + j) * l->in_dim, l->in_c, l->in_h, l->in_w, l->k, l->stride,
                        l->pad, l->out_h, l->out_w, col + j * pp, ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, oc, (int)ld, (int)kk, 1.0f, l->w,
                    (int)kk, col, (int)ld, 0.0f, y, (int)ld);
        if (l->pool_node) { /* the bias in place (the same sums as the copy's), then pool */
            for (int o = 0; l->b && o < oc; o++) {
                float *r = y + o * ld, b = l->b[o];
                for (int64_t q = 0; q < ld; q++)
                    r[q] = r[q] + b;
            }
            pool_chunk_(m, l, y, ld, s0, nb);
            continue;
        }
        for (int64_t j = 0; j < nb; j++) {
            float *o_s = out + (s0 + j) * l->out_dim;
            for (int o = 0; o < oc; o++) {
                const float *src = y + o * ld + j * pp;
                float *dst = o_s + o * pp, b = l->b ? l->b[o] : 0.0f;
                for (int64_t q = 0; q < pp; q++)
                    dst[q] = src[q] + b;
            }
        }
    }
}

static void conv_backward_(const alig_model_t *m, const alig_layer_t *l, const float *in,
                           const float *dout, float *din, int acc, int64_t n)
{
    int64_t kk = (int64_t)l->in_c * l->k * l->k, pp = (int64_t)l->out_h * l->out_w;
    int oc = l->out_c;
    if (l->gb)
        memset(l->gb, 0, sizeof(float) * (size_t)oc);
    for (int64_t s0 = 0; s0 < n; s0 += l->chunk) {
        int64_t nb = n - s0 < l->chunk ? n - s0 : l->chunk, ld = nb * pp;
        /* dY (oc, ld): gathered after col from the chunk's NCHW gradients, or with one
         * sample per chunk that sample's gradient as it is */
        float *col = m->col, *gather = l->chunk > 1 || l->pool_node ? m->col + kk * ld : NULL;
        const float *dy = gather ? gather : dout + s0 * l->out_dim;
        if (l->pool_node) /* dY from the pool's gradient, straight into the workspace */
            unpool_chunk_(m, l, gather, ld, s0, nb);
        for (int64_t j = 0; j < nb; j++) {
            const float *d_s = dout + (s0 + j) * l->out_dim;
            if (gather && !l->pool_node)
                for (int o = 0; o < oc; o++)
                    memcpy(gather + o * ld + j * pp, d_s + o * pp, sizeof(float) * (size_t)pp);
            alig_im2col(in + (s0 + j) * l->in_dim, l->in_c, l->in_h, l->in_w, l->k, l->stride,
                        l->pad, l->out_h, l->out_w, col + j * pp, ld);
        }
        if (l->gb)
            for (int o = 0; o < oc; o++)
                l->gb[o] += sum_(dy + o * ld, ld);
        /* gW (oc, kk) (+)= dY (oc, ld) . col^T (ld, kk) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, oc, (int)kk, (int)ld, 1.0f, dy,
                    (int)ld, col, (int)ld, s0 == 0 ? 0.0f : 1.0f, l->gw, (int)kk);
        if (!din)
            continue;
        /* dcol (kk, ld) = W^T (kk, oc) . dY (oc, ld), over col (used up) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kk, (int)ld, oc, 1.0f, l->w,
                    (int)kk, dy, (int)ld, 0.0f, col, (int)ld);
        for (int64_t j = 0; j < nb; j++) {
            float *dx = din + (s0 + j) * l->in_dim;
            if (!acc)
                memset(dx, 0, sizeof(float) * (size_t)l->in_dim);
            alig_col2im(col + j * pp, ld, l->in_c, l->in_h, l->in_w, l->k, l->stride, l->pad,
                        l->out_h, l->out_w, dx);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* pooling */

/* Input rows (or columns) [*lo, *hi) of pooling window o: stride st, padding p, size k,
 * clipped to the n real ones (padding is never part of a window's pixels). */
static inline void window_(int o, int st, int p, int k, int n, int *lo, int *hi)
{
    int a = o * st - p, b = a + k;
    *lo = a < 0 ? 0 : a;
    *hi = b > n ? n : b;
}

/* The common 2x2, stride 2, unpadded max pool without the general window bookkeeping:
 * one plane of w columns into oh x ow outputs y and their winners a (indices into the
 * plane); with relu, relu(max) of the relu's input (the same bits as max of relu). */
static inline void pool2_plane_(const float *x, int w, int oh, int ow, float *y, int32_t *a,
                                int relu)
{
    for (int oy = 0; oy < oh; oy++) {
        const float *r0 = x + 2 * oy * w, *r1 = r0 + w;
        for (int ox = 0; ox < ow; ox++) {
            /* first maximum in row order wins, as in the general loop; selects, not
             * branches: the winner is data-dependent and mispredicts */
            int b = 2 * ox, row0 = 2 * oy * w + b;
            float v = r0[b];
            int best = row0;
            float u = r0[b + 1];
            best = u > v ? row0 + 1 : best;
            v = u > v ? u : v;
            u = r1[b];
            best = u > v ? row0 + w : best;
            v = u > v ? u : v;
            u = r1[b + 1];
            best = u > v ? row0 + w + 1 : best;
            v = u > v ? u : v;
            y[oy * ow + ox] = relu && !(v > 0.0f) ? 0.0f : v;
            a[oy * ow + ox] = best;
        }
    }
}

static void maxpool2_forward_(const alig_layer_t *l, const float *in, float *out, int32_t *arg,
                              int64_t n)
{
    int64_t planes = n * l->out_c, iplane = (int64_t)l->in_h * l->in_w;
    int64_t oplane = (int64_t)l->out_h * l->out_w;
    for (int64_t pl = 0; pl < planes; pl++)
        pool2_plane_(in + pl * iplane, l->in_w, l->out_h, l->out_w, out + pl * oplane,
                     arg + pl * oplane, l->fused);
}

static void maxpool_forward_(const alig_layer_t *l, const float *in, float *out, int32_t *arg,
                             int64_t n)
{
    int h = l->in_h, w = l->in_w, k = l->k, st = l->stride, p = l->pad;
    if (k == 2 && st == 2 && p == 0) {
        maxpool2_forward_(l, in, out, arg, n);
        return;
    }
    for (int64_t s = 0; s < n; s++)
        for (int c = 0; c < l->out_c; c++) {
            const float *x = in + s * l->in_dim + (int64_t)c * h * w;
            float *y = out + s * l->out_dim + (int64_t)c * l->out_h * l->out_w;
            int32_t *a = arg + s * l->out_dim + (int64_t)c * l->out_h * l->out_w;
            for (int oy = 0; oy < l->out_h; oy++) {
                int y0, y1;
                window_(oy, st, p, k, h, &y0, &y1);
                for (int ox = 0; ox < l->out_w; ox++) {
                    int x0, x1;
                    window_(ox, st, p, k, w, &x0, &x1);
                    /* pad <= k/2 (checked by the parser) leaves every window a real pixel */
                    int best = y0 * w + x0;
                    float v = x[best];
                    for (int iy = y0; iy < y1; iy++)
                        for (int ix = x0; ix < x1; ix++)
                            if (x[iy * w + ix] > v) { /* first maximum wins, as PyTorch */
                                v = x[iy * w + ix];
                                best = iy * w + ix;
                            }
                    y[oy * l->out_w + ox] = v;
                    a[oy * l->out_w + ox] = best;
                }
            }
        }
}

/* g where c is true, else +0.0f, without a branch (a select on data-dependent
 * conditions, which gcc may compile to jumps that mispredict half the time) */
static inline float keep_(float g, int c)
{
    uint32_t b;
    memcpy(&b, &g, sizeof b);
    b &= 0u - (uint32_t)c;
    memcpy(&g, &b, sizeof g);
    return g;
}

/* 2x2 stride-2 windows tiling an even plane of w columns: each input pixel is in
 * exactly one window, so dx is written once (the window's winner gets dy, the rest 0)
 * without clearing it first. With relu, the relu folded in: its gradient passes where
 * the pool's output y is positive. */
static inline void unpool2_plane_(const float *dy, const int32_t *a, const float *y, int w,
                                  int oh, int ow, float *dx, const int relu)
{
    for (int oy = 0; oy < oh; oy++) {
        float *d0 = dx + 2 * oy * w, *d1 = d0 + w;
        for (int ox = 0; ox < ow; ox++) {
            int q = oy * ow + ox, win = a[q] - 2 * oy * w - 2 * ox; /* 0, 1, w, w+1 */
            float g = dy[q];
            if (relu)
                g = keep_(g, y[q] > 0.0f);
            d0[2 * ox] = keep_(g, win == 0);
            d0[2 * ox + 1] = keep_(g, win == 1);
            d1[2 * ox] = keep_(g, win == w);
            d1[2 * ox + 1] = keep_(g, win == w + 1);
        }
    }
}

static inline void maxpool2_backward_as_(const alig_layer_t *l, const float *dout, float *din,
                                         const int32_t *arg, const float *out, int64_t n,
                                         const int relu)
{
    int64_t planes = n * l->out_c, iplane = (int64_t)l->in_h * l->in_w;
    int64_t oplane = (int64_t)l->out_h * l->out_w;
    for (int64_t pl = 0; pl < planes; pl++)
        unpool2_plane_(dout + pl * oplane, arg + pl * oplane, out + pl * oplane, l->in_w,
                       l->out_h, l->out_w, din + pl * iplane, relu);
}

/* one copy of the loop each, with and without the relu: no test in the loop */
static void maxpool2_backward_(const alig_layer_t *l, const float *dout, float *din,
                               const int32_t *arg, const float *out, int64_t n)
{
    if (l->fused)
        maxpool2_backward_as_(l, dout, din, arg, out, n, 1);
    else
        maxpool2_backward_as_(l, dout, din, arg, out, n, 0);
}

static void maxpool_backward_(const alig_layer_t *l, const float *dout, float *din, int acc,
                              const int32_t *arg, const float *out, int64_t n)
{
    int64_t plane = (int64_t)l->in_h * l->in_w, oplane = (int64_t)l->out_h * l->out_w;
    /* (a pool with a relu folded in always comes here: alig_model_set_fusion) */
    if (!acc && l->k == 2 && l->stride == 2 && l->pad == 0 && l->in_h % 2 == 0 &&
        l->in_w % 2 == 0) {
        maxpool2_backward_(l, dout, din, arg, out, n);
        return;
    }
    if (!acc)
        memset(din, 0, sizeof(float) * (size_t)(n * l->in_dim));
    for (int64_t s = 0; s < n; s++)
        for (int c = 0; c < l->out_c; c++) {
            float *dx = din + s * l->in_dim + c * plane;
            const float *dy = dout + s * l->out_dim + c * oplane;
            const int32_t *a = arg + s * l->out_dim + c * oplane;
            for (int64_t q = 0; q < oplane; q++)
                dx[a[q]] += dy[q];
        }
}

static void avgpool_forward_(const alig_layer_t *l, const float *in, float *out, int64_t n)
{
    int h = l->in_h, w = l->in_w, k = l->k, st = l->stride, p = l->pad;
    float scale = 1.0f / (float)(k * k); /* count_include_pad = True, PyTorch's default */
    for (int64_t s = 0; s < n; s++)
        for (int c = 0; c < l->out_c; c++) {
            const float *x = in + s * l->in_dim + (int64_t)c * h * w;
            float *y = out + s * l->out_dim + (int64_t)c * l->out_h * l->out_w;
            for (int oy = 0; oy < l->out_h; oy++) {
                int y0, y1;
                window_(oy, st, p, k, h, &y0, &y1);
                for (int ox = 0; ox < l->out_w; ox++) {
                    int x0, x1;
                    window_(ox, st, p, k, w, &x0, &x1);
                    float sum = 0.0f;
                    for (int iy = y0; iy < y1; iy++)
                        for (int ix = x0; ix < x1; ix++)
                            sum += x[iy * w + ix];
                    y[oy * l->out_w + ox] = sum * scale;
                }
            }
        }
}

static void avgpool_backward_(const alig_layer_t *l, const float *dout, float *din, int acc,
                              int64_t n)
{
    int h = l->in_h, w = l->in_w, k = l->k, st = l->stride, p = l->pad;
    float scale = 1.0f / (float)(k * k);
    if (!acc)
        memset(din, 0, sizeof(float) * (size_t)(n * l->in_dim));
    for (int64_t s = 0; s < n; s++)
        for (int c = 0; c < l->out_c; c++) {
            float *dx = din + s * l->in_dim + (int64_t)c * h * w;
            const float *dy = dout + s * l->out_dim + (int64_t)c * l->out_h * l->out_w;
            for (int oy = 0; oy < l->out_h; oy++) {
                int y0, y1;
                window_(oy, st, p, k, h, &y0, &y1);
                for (int ox = 0; ox < l->out_w; ox++) {
                    int x0, x1;
                    window_(ox, st, p, k, w, &x0, &x1);
                    float g = dy[oy * l->out_w + ox] * scale;
                    for (int iy = y0; iy < y1; iy++)
                        for (int ix = x0; ix < x1; ix++)
                            dx[iy * w + ix] += g;
                }
            }
        }
}

static void gap_forward_(const alig_layer_t *l, const float *in, float *out, int64_t n)
{
    int64_t plane = (int64_t)l->in_h * l->in_w;
    for (int64_t s = 0; s < n; s++)
        for (int c = 0; c < l->in_c; c++) {
            const float *x = in + s * l->in_dim + c * plane;
            float sum = 0.0f;
            for (int64_t q = 0; q < plane; q++)
                sum += x[q];
            out[s * l->out_dim + c] = sum / (float)plane;
        }
}

static void gap_backward_(const alig_layer_t *l, const float *dout, float *din, int acc,
                          int64_t n)
{
    int64_t plane = (int64_t)l->in_h * l->in_w;
    for (int64_t s = 0; s < n; s++)
        for (int c = 0; c < l->in_c; c++) {
            float g = dout[s * l->out_dim + c] / (float)plane;
            float *dx = din + s * l->in_dim + c * plane;
            if (acc)
                for (int64_t q = 0; q < plane; q++)
                    dx[q] += g;
            else
                for (int64_t q = 0; q < plane; q++)
                    dx[q] = g;
        }
}

/* ------------------------------------------------------------------------ */
/* batch normalisation: per channel over the n samples and the h*w pixels */

/* aux layout of a bn node: mean (c) then inverse standard deviation (c),
 * of the batch in training mode, of the running statistics in evaluation. */

static void bn_forward_(const alig_model_t *m, const alig_layer_t *l, const float *in, float *out,
                        int64_t n)
{
    int C = l->out_c;
    int64_t plane = (int64_t)l->in_h * l->in_w, count = n * plane;
    float *mean = (float *)(m->aux + l->aux), *istd = mean + C;
    for (int c = 0; c < C; c++) {
        double mu, var;
        if (m->training) {
            /* two passes in double: float sums of ~10^5 values lose digits */
            double s1 = 0.0;
            for (int64_t s = 0; s < n; s++) {
                const float *x = in + s * l->in_dim + c * plane;
                for (int64_t q = 0; q < plane; q++)
                    s1 += x[q];
            }
            mu = s1 / (double)count;
            double s2 = 0.0;
            for (int64_t s = 0; s < n; s++) {
                const float *x = in + s * l->in_dim + c * plane;
                for (int64_t q = 0; q < plane; q++) {
                    double d = x[q] - mu;
                    s2 += d * d;
                }
            }
            var = s2 / (double)count; /* biased: what normalises the batch */
            double mo = ALIG_BN_MOMENTUM;
            l->run_mean[c] = (float)((1.0 - mo) * l->run_mean[c] + mo * mu);
            if (count > 1) /* the running variance is unbiased, as PyTorch's */
                l->run_var[c] = (float)((1.0 - mo) * l->run_var[c] +
                                        mo * var * (double)count / (double)(count - 1));
        } else {
            mu = l->run_mean[c];
            var = l->run_var[c];
        }
        mean[c] = (float)mu;
        istd[c] = (float)(1.0 / sqrt(var + ALIG_BN_EPS));
        float a = l->w[c] * istd[c], b = l->b[c] - (float)mu * a; /* y = a x + b */
        for (int64_t s = 0; s < n; s++) {
            const float *x = in + s * l->in_dim + c * plane;
            float *y = out + s * l->out_dim + c * plane;
            for (int64_t q = 0; q < plane; q++)
                y[q] = a * x[q] + b;
        }
    }
}

static void bn_backward_(const alig_model_t *m, const alig_layer_t *l, const float *in,
                         const float *dout, float *din, int acc, int64_t n)
{
    int C = l->out_c;
    int64_t plane = (int64_t)l->in_h * l->in_w, count = n * plane;
    const float *mean = (const float *)(m->aux + l->aux), *istd = mean + C;
    for (int c = 0; c < C; c++) {
        double sdy = 0.0, sdyx = 0.0; /* sum dy, sum dy * xhat */
        for (int64_t s = 0; s < n; s++) {
            const float *x = in + s * l->in_dim + c * plane;
            const float *dy = dout + s * l->out_dim + c * plane;
            for (int64_t q = 0; q < plane; q++) {
                sdy += dy[q];
                sdyx += (double)dy[q] * (double)((x[q] - mean[c]) * istd[c]);
            }
        }
        l->gb[c] = (float)sdy;
        l->gw[c] = (float)sdyx;
        if (!din)
            continue;
        /* training: dx = gamma*istd * (dy - mean(dy) - xhat * mean(dy*xhat));
         * evaluation: the statistics are constants, dx = gamma*istd * dy */
        float g = l->w[c] * istd[c];
        float k1 = m->training ? (float)(sdy / (double)count) : 0.0f;
        float k2 = m->training ? (float)(sdyx / (double)count) : 0.0f;
        for (int64_t s = 0; s < n; s++) {
            const float *x = in + s * l->in_dim + c * plane;
            const float *dy = dout + s * l->out_dim + c * plane;
            float *dx = din + s * l->in_dim + c * plane;
            for (int64_t q = 0; q < plane; q++) {
                float xhat = (x[q] - mean[c]) * istd[c];
                float v = g * (dy[q] - k1 - xhat * k2);
                dx[q] = acc ? dx[q] + v : v;
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* dropout */

static uint64_t mix64_(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Key of one (seed, step, sample, node); element bits come from mix64_(key + e * golden). */
static uint64_t dropout_key_(uint64_t seed, int64_t step, int64_t sample, int node)
{
    uint64_t k = mix64_(seed ^ (ALIG_STREAM_DROPOUT * 0xd1342543de82ef95ULL));
    k = mix64_(k ^ (uint64_t)step);
    k = mix64_(k ^ (uint64_t)sample);
    return mix64_(k ^ (uint64_t)node);
}

/* Keep when the top 24 bits are >= p * 2^24: P(drop) = p to 6e-8. */
static uint32_t dropout_threshold_(float p) { return (uint32_t)((double)p * 16777216.0 + 0.5); }

int alig_dropout_keep(uint64_t seed, int64_t step, int64_t sample, int node, int64_t element,
                      float p)
{
    uint64_t k = dropout_key_(seed, step, sample, node);
    uint64_t u = mix64_(k + (uint64_t)(element + 1) * 0x9e3779b97f4a7c15ULL) >> 40;
    return u >= dropout_threshold_(p);
}

static void dropout_forward_(const alig_model_t *m, int i, const alig_layer_t *l, const float *in,
                             float *out, int64_t n)
{
    if (!m->training) {
        memcpy(out, in, sizeof(float) * (size_t)(n * l->in_dim));
        return;
    }
    unsigned char *mask = m->aux + l->aux;
    uint32_t thr = dropout_threshold_(l->p);
    float scale = 1.0f / (1.0f - l->p);
    for (int64_t s = 0; s < n; s++) {
        int64_t id = m->sample_ids ? m->sample_ids[s] : s;
        uint64_t k = dropout_key_(m->noise_seed, m->noise_step, id, i);
        const float *x = in + s * l->in_dim;
        float *y = out + s * l->out_dim;
        unsigned char *mk = mask + s * l->in_dim;
        for (int64_t e = 0; e < l->in_dim; e++) {
            uint64_t u = mix64_(k + (uint64_t)(e + 1) * 0x9e3779b97f4a7c15ULL) >> 40;
            mk[e] = u >= thr;
            y[e] = mk[e] ? x[e] * scale : 0.0f;
        }
    }
}

static void dropout_backward_(const alig_model_t *m, const alig_layer_t *l, const float *dout,
                              float *din, int acc, int64_t n)
{
    int64_t total = n * l->in_dim;
    if (!m->training) {
        for (int64_t e = 0; e < total; e++)
            din[e] = acc ? din[e] + dout[e] : dout[e];
        return;
    }
    const unsigned char *mk = m->aux + l->aux;
    float scale = 1.0f / (1.0f - l->p);
    for (int64_t e = 0; e < total; e++) {
        float v = mk[e] ? dout[e] * scale : 0.0f;
        din[e] = acc ? din[e] + v : v;
    }
}

/* ------------------------------------------------------------------------ */
/* dispatch */

int64_t alig_layer_col_floats(alig_layer_t *l, int64_t max_batch)
{
    if (l->kind != ALIG_LAYER_CONV)
        return 0;
    l->chunk = conv_chunk_(l, max_batch);
    return ((int64_t)l->in_c * l->k * l->k + l->out_c) * l->chunk * l->out_h * l->out_w;
}

size_t alig_layer_aux_bytes(const alig_layer_t *l, int64_t max_batch)
{
    size_t b = 0;
    switch (l->kind) {
    case ALIG_LAYER_MAXPOOL:
        b = sizeof(int32_t) * (size_t)(max_batch * l->out_dim);
        break;
    case ALIG_LAYER_BN:
        b = 2 * sizeof(float) * (size_t)l->out_c;
        break;
    case ALIG_LAYER_DROPOUT:
        b = (size_t)(max_batch * l->in_dim);
        break;
    default:
        break;
    }
    return (b + 63) & ~(size_t)63; /* keep every scratch area 64-byte aligned */
}

/* The activation a node reads: a max pool with a relu folded in reads the relu's input. */
static int input_of_(const alig_model_t *m, const alig_layer_t *l)
{
    return l->fused && l->kind == ALIG_LAYER_MAXPOOL ? m->layers[l->src - 1].src : l->src;
}

void alig_layer_forward(alig_model_t *m, int i, int64_t n)
{
    const alig_layer_t *l = &m->layers[i];
    const float *in = m->acts[input_of_(m, l)];
    float *out = m->acts[i + 1];
    switch (l->kind) {
    case ALIG_LAYER_CONV:
        conv_forward_(m, l, in, out, n);
        break;
    case ALIG_LAYER_MAXPOOL:
        if (l->fused != 2) /* 2: the conv before it did it (pool_node) */
            maxpool_forward_(l, in, out, (int32_t *)(m->aux + l->aux), n);
        break;
    case ALIG_LAYER_AVGPOOL:
        avgpool_forward_(l, in, out, n);
        break;
    case ALIG_LAYER_GAP:
        gap_forward_(l, in, out, n);
        break;
    case ALIG_LAYER_BN:
        bn_forward_(m, l, in, out, n);
        break;
    case ALIG_LAYER_DROPOUT:
        dropout_forward_(m, i, l, in, out, n);
        break;
    case ALIG_LAYER_FLATTEN:
        memcpy(out, in, sizeof(float) * (size_t)(n * l->in_dim));
        break;
    case ALIG_LAYER_ADD: {
        const float *b = m->acts[l->src2];
        for (int64_t e = 0; e < n * l->out_dim; e++)
            out[e] = in[e] + b[e];
        break;
    }
    case ALIG_LAYER_DENSE:
    case ALIG_LAYER_RELU:
        break; /* model.c */
    }
}

/* dst (=|+=) src over count floats */
static void put_(float *dst, const float *src, int64_t count, int acc)
{
    if (acc)
        for (int64_t e = 0; e < count; e++)
            dst[e] += src[e];
    else
        memcpy(dst, src, sizeof(float) * (size_t)count);
}

void alig_layer_backward(alig_model_t *m, int i, int64_t n)
{
    const alig_layer_t *l = &m->layers[i];
    const float *in = m->acts[l->src];
    const float *dout = m->dacts[i + 1];
    float *din = l->src > 0 ? m->dacts[l->src] : NULL; /* no gradient w.r.t. the data */
    switch (l->kind) {
    case ALIG_LAYER_CONV:
        conv_backward_(m, l, in, dout, din, l->acc_src, n);
        break;
    case ALIG_LAYER_BN:
        bn_backward_(m, l, in, dout, din, l->acc_src, n);
        break;
    case ALIG_LAYER_MAXPOOL: {
        int from = input_of_(m, l);
        if (from > 0 && l->fused != 2)
            maxpool_backward_(l, dout, m->dacts[from], l->fused ? 0 : l->acc_src,
                              (const int32_t *)(m->aux + l->aux), m->acts[i + 1], n);
        break;
    }
    case ALIG_LAYER_AVGPOOL:
        if (din)
            avgpool_backward_(l, dout, din, l->acc_src, n);
        break;
    case ALIG_LAYER_GAP:
        if (din)
            gap_backward_(l, dout, din, l->acc_src, n);
        break;
    case ALIG_LAYER_DROPOUT:
        if (din)
            dropout_backward_(m, l, dout, din, l->acc_src, n);
        break;
    case ALIG_LAYER_FLATTEN:
        if (din)
            put_(din, dout, n * l->in_dim, l->acc_src);
        break;
    case ALIG_LAYER_ADD:
        if (din)
            put_(din, dout, n * l->out_dim, l->acc_src);
        if (l->src2 > 0)
            put_(m->dacts[l->src2], dout, n * l->out_dim, l->acc_src2);
        break;
    case ALIG_LAYER_DENSE:
    case ALIG_LAYER_RELU:
        break; /* model.c */
    }
}
