/*
 * alig/model.h -- a feed-forward network over one flat parameter buffer.
 *
 * All parameters live in one contiguous float32 buffer `params` and all
 * gradient sums in another, `grads`, with the same layout; each layer and
 * each named tensor is a view (offset, size) into them. `grads` is longer
 * than `params` by ALIG_REDUCE_TAIL floats, where the training step puts
 * the loss sum, sample count and flags, then n_state floats for a copy of
 * the batch-norm running statistics, so one reduction carries everything
 * (see alig/train.h).
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

/* Layer kinds; the layer-list word of each is in docs/config.md. */
typedef enum {
    ALIG_LAYER_DENSE,   /* dense N */
    ALIG_LAYER_RELU,    /* relu */
    ALIG_LAYER_CONV,    /* conv C kK sS pP [nobias]: 2-D convolution, im2col + sgemm */
    ALIG_LAYER_MAXPOOL, /* maxpool K sS pP */
    ALIG_LAYER_AVGPOOL, /* avgpool K sS pP (padding counts as zeros in the mean) */
    ALIG_LAYER_GAP,     /* gap: global average pool to (C, 1, 1) */
    ALIG_LAYER_BN,      /* bn: batch normalisation over (N, H, W) per channel */
    ALIG_LAYER_DROPOUT, /* dropout P */
    ALIG_LAYER_FLATTEN, /* flatten: (C, H, W) -> (C*H*W, 1, 1), a copy */
    ALIG_LAYER_ADD      /* the sum that closes a res(...) block */
} alig_layer_kind_t;

/* Batch normalisation constants, as torch.nn.BatchNorm2d's defaults. */
#define ALIG_BN_EPS 1e-5
#define ALIG_BN_MOMENTUM 0.1

/* A named parameter tensor: a view into params/grads. */
typedef struct {
    char name[ALIG_NAME_MAX]; /* e.g. "00_dense/weight" */
    int ndim;
    int64_t shape[4];
    int64_t offset;           /* first element in params/grads */
    int64_t size;             /* product of shape */
} alig_tensor_t;

/*
 * One node of the network. Nodes run in index order; node i reads
 * acts[src] (and acts[src2] for add) and writes acts[i + 1]. A plain list
 * has src == i; inside a res(...) block the shortcut branch reads the
 * block's input, and the closing add node reads both branch outputs.
 * Activations are NCHW: a sample is (c, h, w) contiguous, h = w = 1 after
 * dense, gap and flatten.
 */
typedef struct {
    alig_layer_kind_t kind;
    char name[32];            /* "<index>_<kind>", e.g. "02_dense" */
    int64_t in_dim, out_dim;  /* values per sample in and out */
    int units;                /* dense: outputs; conv: output channels */
    int first_tensor, n_tensors; /* into alig_model_t.tensors */
    /* parameter views (NULL when the kind has none):
     *   dense: w (units, in_dim) row-major like PyTorch, b (units)
     *   conv:  w (out_c, in_c, k, k) like PyTorch, b (out_c) or NULL with nobias
     *   bn:    w = gamma (c), b = beta (c) */
    float *w, *b;
    float *gw, *gb;           /* gradient sums, same shapes */
    int src, src2;            /* input activation index (src2: second input of add, else -1) */
    int acc_src, acc_src2;    /* backward adds into dacts[src] (1) or overwrites it (0) */
    int fused;                /* relu: computed by the 2x2 max pool it feeds; that pool: pools
                               * the relu's input and applies the relu to its output (exact:
                               * relu(max) = max(relu)); both 2 when the conv before them
                               * computes them too (pool_node); see alig_model_set_fusion */
    int pool_node;            /* conv: the fused relu + 2x2 max pool node it also computes,
                               * straight from its GEMM's output in the workspace (the conv's
                               * own output and its gradient never reach memory); 0: none */
    int in_c, in_h, in_w;     /* input sample shape (of acts[src]) */
    int out_c, out_h, out_w;  /* output sample shape */
    int k, stride, pad;       /* conv and pooling window */
    int bias;                 /* conv: 1 with a bias (the default), 0 with nobias */
    int64_t chunk;            /* conv: samples lowered into one GEMM (set at build) */
    float p;                  /* dropout probability */
    int first_state, n_state_tensors; /* bn: into alig_model_t.state_tensors */
    float *run_mean, *run_var;/* bn: running statistics (out_c), views into state */
    size_t aux;               /* byte offset of this node's scratch in alig_model_t.aux */
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
    float *params;            /* (n_params); not owned after alig_model_share_params */
    int params_shared;        /* 1: params (and the w, b views) belong to another model */
    float *grads;             /* (n_reduce): gradients, the tail, room for the state */
    int grads_outside;        /* 1: grads is the caller's (alig_model_use_grads) */
    int64_t n_reduce;         /* n_params + ALIG_REDUCE_TAIL + n_state */
    int n_state_tensors;      /* non-trained state, e.g. batch-norm running statistics: */
    alig_tensor_t *state_tensors; /* views into `state`, named like parameter tensors */
    int64_t n_state;
    float *state;             /* (n_state) saved in checkpoints; averaged over ranks, not projected */
    int training;             /* 1 in training mode (batch statistics, dropout), 0 to evaluate */
    int64_t max_batch;        /* most samples one forward/backward call may take */
    float **acts;             /* acts[i]: (max_batch, dim) output of node i-1 (acts[0]: the input);
                               * for a plain list acts[i] is the input of layer i; acts[n_layers] = logits */
    float **dacts;            /* gradient w.r.t. acts[i], same shapes (dacts[0] unused) */
    float *arena;             /* one allocation behind acts and dacts */
    char *spec;               /* the layer list this model was built from (presets expanded) */
    /* workspaces sized at build time from max_batch; no allocation after build */
    float *col;               /* im2col buffer: largest conv's (in_c*k*k, out_h*out_w) */
    unsigned char *aux;       /* per-node scratch: max-pool argmax, bn batch statistics, dropout masks */
    /* dropout: a sample's mask depends only on (noise_seed, noise_step, sample id, node, element),
     * so it does not depend on how a batch is split over ranks. The trainer sets noise_step to
     * the global step and sample_ids to the dataset indices of the next forward call's samples
     * (NULL: ids 0..n-1). */
    /* backward progress: when set, called after each node with parameters with the
     * offset from which every gradient sum in `grads` is final (gradients become final
     * from the end of the buffer towards its start), so the trainer can start reducing
     * them while the rest of the backward pass runs */
    void (*grads_ready)(void *ctx, int64_t from);
    void *grads_ready_ctx;
    /* a part of a team (alig_team_t) that shares the weight gradients of its dense layers,
     * as team->models[team_id]; NULL: the model computes its own */
    struct alig_team *team;
    int team_id;
    uint64_t noise_seed;
    int64_t noise_step;
    const int64_t *sample_ids;
} alig_model_t;

/*
 * [run] parallel = batch on a network whose only parameters are in dense
 * layers: the n parts of a slice run forward and backward on their own
 * samples, one thread each, but compute each dense layer's weight and bias
 * gradients together. The parts' activations are consecutive rows of
 * models[0]'s buffers (alig_model_team_rows), so part k writes rows
 * [k*units/n, (k+1)*units/n) of the gradient sums with one GEMM over the
 * whole slice, straight into models[0]'s grads: no per-part gradient sums to
 * add afterwards, and each gradient element is written once. Each part
 * waits at the team's barrier before a dense layer's weight gradient, until
 * every part has that layer's output gradient. Every part must call
 * alig_model_backward, even with 0 samples.
 */
typedef struct alig_team {
    int n;                  /* parts, one thread of `pool` each */
    alig_model_t **models;  /* (n) part k's model (team = this, team_id = k); models[0]
                             * holds the slice's gradient sums, the others share its params */
    int64_t *rows;          /* (n) samples of each part in the current backward call */
    struct alig_pool *pool; /* the threads; its barrier separates the dense layers */
    /* when set, called by each part once its rows of a dense weight gradient are
     * written: grads[lo, hi) of models[0] is final for this backward call */
    void (*rows_done)(void *ctx, int64_t lo, int64_t hi);
    void *rows_done_ctx;
} alig_team_t;

/* Point part m's activations and their gradients at rows first.. of m0's (a team's
 * models[0], whose buffers hold the whole slice), so the parts' samples sit in
 * consecutive rows. m's own buffers are left unused. */
void alig_model_team_rows(alig_model_t *m, const alig_model_t *m0, int64_t first);

/* 1 when every node with parameters is dense, so the model can be split as a team. */
int alig_model_team_ok(const alig_model_t *m);

/*
 * Build a model from a layer list such as "dense 1024, relu, dense 10"
 * (grammar in docs/config.md) for inputs of shape (c, h, w) and
 * n_classes outputs (n_classes <= 0: whatever the last layer gives), with
 * buffers for up to max_batch samples per call. Lists may hold conv,
 * pooling, bn, dropout, flatten and res(body | shortcut) blocks, e.g.
 * "conv 16 k3 p1, bn, relu, res(conv 16 k3 p1, bn, relu, conv 16 k3 p1), gap, dense 10".
 * Parameters are zero until alig_model_init_params; bn running statistics
 * start at mean 0, variance 1; training = 1.
 * Returns ALIG_OK, ALIG_E_CONFIG (bad list, or a model that does not fit
 * the data: message names the layer) or ALIG_E_MEMORY.
 */
int alig_model_build(alig_model_t *m, const char *layers, int c, int h, int w, int n_classes,
                     int64_t max_batch);

/*
 * Expand a preset into a layer list for n_classes outputs:
 *   "mlp"           dense 1024, relu, dense 1024, relu, dense K
 *   "cnn"           conv 32 k3 p1, relu, maxpool 2, conv 64 k3 p1, relu, maxpool 2,
 *                   dense 128, relu, dense K   (the small CNN for 28x28 inputs)
 *   "wrn-D-K[-P]"   Wide ResNet depth D = 6N+4, width K, optional dropout P
 *                   inside each block (pre-activation blocks as in Zagoruyko &
 *                   Komodakis 2016, the network of the ALI-G paper)
 * Writes the list into buf. Returns ALIG_OK, or ALIG_E_CONFIG for an
 * unknown or malformed name or a buf too small.
 */
int alig_model_preset(const char *name, int n_classes, char *buf, size_t size);

/*
 * Seeded initialisation: init = "auto" (He normal for a dense layer
 * followed by ReLU, possibly through bn/dropout, Glorot uniform otherwise),
 * "he" or "glorot"; conv weights are always He normal with fan_in =
 * in_c*k*k; biases 0; bn gamma 1, beta 0; running mean 0 and variance 1.
 * Draws from the stream (seed, ALIG_STREAM_INIT) in tensor order.
 */
void alig_model_init_params(alig_model_t *m, uint64_t seed, const char *init);

/* The input buffer (max_batch, in_dim) to fill before a forward call. */
static inline float *alig_model_input(alig_model_t *m) { return m->acts[0]; }

/*
 * Forward n <= max_batch samples from alig_model_input(m). In training
 * mode (m->training = 1) bn uses the statistics of these n samples and
 * updates its running statistics (momentum 0.1, unbiased variance, as
 * PyTorch), and dropout is on; with training = 0, bn uses the running
 * statistics and dropout is the identity. If y is not
 * NULL, returns the SUM of softmax cross-entropy losses (computed in
 * double) and adds the number of correct argmax predictions to *correct
 * (when not NULL); with y NULL returns 0 and only the logits are set.
 */
double alig_model_forward(alig_model_t *m, int64_t n, const int32_t *y, int64_t *correct);

/*
 * Backward after a forward with the same n and y: writes the SUM over the
 * n samples of d(loss)/d(params) into grads[0..n_params) (overwriting; all
 * zero when n == 0). The reduction tail is untouched. In a team (m->team),
 * the dense layers' gradients go to the team's models[0] instead, summed
 * over every part's samples (see alig_team_t).
 */
void alig_model_backward(alig_model_t *m, int64_t n, const int32_t *y);

/*
 * Make m use the parameters of `from`, a model built from the same layer
 * list and input shape (its max_batch may differ): m's own parameter
 * buffer is freed and its weight and bias views point into from->params.
 * m keeps its own gradients, activations and workspaces, so the two can
 * run forward and backward on different samples at the same time. m's
 * batch-norm running statistics stay its own. Free m before `from`.
 */
void alig_model_share_params(alig_model_t *m, const alig_model_t *from);

/*
 * Fold each relu into the 2x2, stride-2 max pool that is its only consumer
 * (on = 1, what alig_model_build does), or run them as separate nodes (0).
 * Folded, neither the relu's output nor its gradient is written: the pool
 * reads the relu's input, and its backward writes the relu's input gradient
 * (zero where the pooled value is not positive). When that relu is the only
 * reader of a conv's output, the conv pools each chunk of its output while it
 * is still in the workspace, and its backward rebuilds the chunk's output
 * gradient there from the pool's: the conv's output and gradient buffers are
 * never written, which saves the CNN's largest memory traffic. The results are
 * the same bits either way. The relu's (and such a conv's) own activation
 * buffer is then left stale.
 */
void alig_model_set_fusion(alig_model_t *m, int on);

/* Keep the gradients (n_reduce floats, the tail included), or the parameters
 * (n_params floats, copied there), in buf, owned by the caller (a window of the
 * shared-memory reduction), from now on. */
void alig_model_use_grads(alig_model_t *m, float *buf);
void alig_model_use_params(alig_model_t *m, float *buf);

/* Index of the tensor called `name`, or -1. */
int alig_model_find_tensor(const alig_model_t *m, const char *name);

/* Name of the first batch-norm node, or NULL: its statistics are each rank's (and each
 * part's) slice's. */
const char *alig_model_first_bn(const alig_model_t *m);

/* One line per layer into buf (for logs and checkpoints). */
void alig_model_summary(const alig_model_t *m, char *buf, size_t size);

void alig_model_free(alig_model_t *m);

#endif /* ALIG_MODEL_H */
