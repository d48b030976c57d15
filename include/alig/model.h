/*
 * alig/model.h -- a feed-forward network over one flat parameter buffer.
 *
 * All parameters live in one contiguous float32 buffer `params` and all
 * gradient sums in another, `grads`, with the same layout; each layer and
 * each named tensor is a view (offset, size) into them. `grads` is longer
 * than `params` by ALIG_REDUCE_TAIL floats: the training step puts the
 * loss sum, sample count and flags there so one MPI_Allreduce carries
 * everything (see alig/train.h).
 *
 * Gradients are SUMS over the samples of a call, not means: ranks add
 * their sums and every rank divides by the global count.
 */
#ifndef ALIG_MODEL_H
#define ALIG_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define ALIG_REDUCE_TAIL 4  /* extra floats after the gradients in `grads` */
#define ALIG_NAME_MAX 64

typedef enum { ALIG_LAYER_DENSE, ALIG_LAYER_RELU } alig_layer_kind_t;

/* A named parameter tensor: a view into params/grads. */
typedef struct {
    char name[ALIG_NAME_MAX]; /* e.g. "00_dense/weight" */
    int ndim;
    int64_t shape[4];
    int64_t offset;           /* first element in params/grads */
    int64_t size;             /* product of shape */
} alig_tensor_t;

typedef struct {
    alig_layer_kind_t kind;
    char name[32];            /* "<index>_<kind>", e.g. "02_dense" */
    int64_t in_dim, out_dim;  /* values per sample in and out */
    int units;                /* dense: outputs */
    int first_tensor, n_tensors; /* into alig_model_t.tensors */
    /* dense views (NULL for other kinds) */
    float *w, *b;             /* w: (units, in_dim) row-major like PyTorch; b: (units) */
    float *gw, *gb;           /* gradient sums, same shapes */
} alig_layer_t;

typedef struct {
    int n_layers;
    alig_layer_t *layers;
    int n_tensors;
    alig_tensor_t *tensors;
    int in_c, in_h, in_w;     /* input sample shape */
    int64_t in_dim;
    int n_classes;            /* output width = number of classes */
    int64_t n_params;
    float *params;            /* (n_params) */
    float *grads;             /* (n_params + ALIG_REDUCE_TAIL) */
    int n_state_tensors;      /* non-trained state, e.g. batch-norm running statistics: */
    alig_tensor_t *state_tensors; /* views into `state`, named like parameter tensors */
    int64_t n_state;
    float *state;             /* (n_state) saved in checkpoints; not reduced, not projected */
    int training;             /* 1 in training mode (batch statistics, dropout), 0 to evaluate */
    int64_t max_batch;        /* most samples one forward/backward call may take */
    float **acts;             /* acts[i]: (max_batch, dim) input of layer i; acts[n_layers] = logits */
    float **dacts;            /* gradient w.r.t. acts[i], same shapes (dacts[0] unused) */
    float *arena;             /* one allocation behind acts and dacts */
} alig_model_t;

/*
 * Build a model from a layer list such as "dense 1024, relu, dense 10"
 * (grammar in docs/config.md) for inputs of shape (c, h, w) and
 * n_classes outputs (n_classes <= 0: whatever the last layer gives), with
 * buffers for up to max_batch samples per call.
 * Parameters are zero until alig_model_init_params.
 * Returns ALIG_OK, ALIG_E_CONFIG (bad list, or a model that does not fit
 * the data: message names the layer) or ALIG_E_MEMORY.
 */
int alig_model_build(alig_model_t *m, const char *layers, int c, int h, int w, int n_classes,
                     int64_t max_batch);

/*
 * Seeded initialisation: init = "auto" (He normal for a dense layer
 * followed by ReLU, Glorot uniform otherwise), "he" or "glorot"; biases 0.
 * Draws from the stream (seed, ALIG_STREAM_INIT) in tensor order.
 */
void alig_model_init_params(alig_model_t *m, uint64_t seed, const char *init);

/* The input buffer (max_batch, in_dim) to fill before a forward call. */
static inline float *alig_model_input(alig_model_t *m) { return m->acts[0]; }

/*
 * Forward n <= max_batch samples from alig_model_input(m). If y is not
 * NULL, returns the SUM of softmax cross-entropy losses (computed in
 * double) and adds the number of correct argmax predictions to *correct
 * (when not NULL); with y NULL returns 0 and only the logits are set.
 */
double alig_model_forward(alig_model_t *m, int64_t n, const int32_t *y, int64_t *correct);

/*
 * Backward after a forward with the same n and y: writes the SUM over the
 * n samples of d(loss)/d(params) into grads[0..n_params) (overwriting; all
 * zero when n == 0). The reduction tail is untouched.
 */
void alig_model_backward(alig_model_t *m, int64_t n, const int32_t *y);

/* Index of the tensor called `name`, or -1. */
int alig_model_find_tensor(const alig_model_t *m, const char *name);

/* One line per layer into buf (for logs and checkpoints). */
void alig_model_summary(const alig_model_t *m, char *buf, size_t size);

void alig_model_free(alig_model_t *m);

#endif /* ALIG_MODEL_H */
