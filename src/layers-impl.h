/*
 * layers-impl.h -- alig-train internal header: the layer-list parser and
 * the convolutional layers (issue 4). Not part of the public API.
 *
 * model.c owns the model (layout, allocation, dense, relu, the loss) and
 * calls into here for
 *   - model_spec.c: parsing a layer list (with res(...) blocks and
 *     repetitions) into nodes with shapes, input indices and backward
 *     accumulation flags; presets;
 *   - layers.c: forward and backward of conv, pooling, gap, bn, dropout,
 *     flatten and add, and the workspace each needs.
 */
#ifndef ALIG_LAYERS_IMPL_H
#define ALIG_LAYERS_IMPL_H

#include "alig/model.h"

#include <stddef.h>
#include <stdint.h>

/* Most nodes a layer list may expand to (WRN-100-K needs about 340). */
#define ALIG_MAX_NODES 2048

/*
 * Parse `spec` for inputs (c, h, w) into *nodes (malloc'd, caller frees)
 * and *count. Fills kind, name, src/src2, acc_src/acc_src2, shapes,
 * in_dim/out_dim, units, k/stride/pad, p and n_tensors (how many
 * parameter tensors the node will own: the caller lays them out).
 * Returns ALIG_OK or ALIG_E_CONFIG with a message that quotes the item.
 */
int alig_spec_parse(const char *spec, int c, int h, int w, alig_layer_t **nodes, int *count);

/*
 * Check the grammar of a layer list (docs/config.md) without an input
 * shape, for config validation before any data is read: every item a known
 * layer with valid numbers, balanced res(...) blocks and groups, repeat
 * counts in range, at most ALIG_MAX_NODES nodes. What depends on the input
 * shape (a window that does not fit, a shortcut of another shape, the size
 * of a sample) is left to alig_spec_parse. Returns ALIG_OK, ALIG_E_CONFIG
 * with alig_spec_parse's message quoting the item, or ALIG_E_MEMORY.
 */
int alig_spec_check(const char *spec);

/* Floats of im2col workspace node l needs (0 if none) for batches of up to
 * max_batch samples; sets l->chunk, the samples a conv lowers per GEMM. */
int64_t alig_layer_col_floats(alig_layer_t *l, int64_t max_batch);

/* Bytes of per-node scratch node l needs for max_batch samples (0 if none). */
size_t alig_layer_aux_bytes(const alig_layer_t *l, int64_t max_batch);

/*
 * Forward node i of m over n samples: reads acts[l->src] (and acts[l->src2]),
 * writes acts[i + 1]. Kinds other than dense and relu.
 */
void alig_layer_forward(alig_model_t *m, int i, int64_t n);

/*
 * Backward node i: from dacts[i + 1] writes its parameter gradient sums
 * (overwriting) and, unless src is 0 (the data), dacts[src] (adding when
 * acc_src, else overwriting), likewise dacts[src2].
 */
void alig_layer_backward(alig_model_t *m, int i, int64_t n);

/* im2col/col2im for one sample, exposed for the tests. x (c, h, w) -> col,
 * c*k*k rows of oh*ow values, ld floats apart (ld >= oh*ow: a chunk's
 * samples sit side by side); col2im adds col back into dx (c, h, w) and
 * may zero col's entries that fall on padding (they are unused). */
void alig_im2col(const float *x, int c, int h, int w, int k, int s, int p, int oh, int ow,
                 float *col, int64_t ld);
void alig_col2im(float *col, int64_t ld, int c, int h, int w, int k, int s, int p, int oh, int ow,
                 float *dx);

/* The dropout mask bit of one element: 1 = keep. Exposed for the tests. */
int alig_dropout_keep(uint64_t seed, int64_t step, int64_t sample, int node, int64_t element,
                      float p);

#endif /* ALIG_LAYERS_IMPL_H */
