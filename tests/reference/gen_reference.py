#!/usr/bin/python3
"""
gen_reference.py -- ALI-G reference trajectories from PyTorch for tests/check_reference.c.

    /usr/bin/python3 tests/reference/gen_reference.py [--out tests/reference/mlp.h5]
    make reference                      (the same, from the top of the tree)

Needs Debian's python3-torch, python3-h5py and python3-numpy (run it with
/usr/bin/python3). CI never runs this script: it reads the committed
fixture. See tests/reference/README.md for the file layout and
docs/testing.md for the method and the tolerance argument.

What it does, for the MLP "dense 8, relu, dense 6, relu, dense 3" on 1x4x4
inputs (our parameter layout: per dense layer weight (out, in) row-major as
torch.nn.Linear, then bias (out); all tensors concatenated in layer order):

  1. draws float32 initial parameters and float32 batches (the last one
     partial) from a seed; every case starts from these exact values;
  2. for each optimizer case, runs ALI-G written here from the formulas in
     include/alig/optim.h and docs/alig.md -- gradients from torch.autograd,
     loss = mean softmax cross-entropy over the batch, gradient = gradient of
     that mean -- three times:
       f64      everything in float64 (the reference the C test compares to)
       f32      everything in float32
       f32rev   float32 with the samples of each batch in reverse order
                (mathematically the same means, different rounding);
     recording per step: loss (mean over the batch), grad_norm2 (the SQUARED
     L2 norm of the mean gradient, all parameters as one vector),
     step_unclipped = loss / (grad_norm2 + delta), step (gamma used),
     clipped (0/1), norm_before_projection (||w|| after the update, before
     projecting) and params (all parameters after the step, projection
     included); plus params_start (after the projection at start);
  3. per step and quantity, takes the worst float32-vs-float64 discrepancy
     of the two float32 runs, d[s], and stores the tolerance
         tol[s] = K * max(d[0..s]) + FLOOR * eps32 * scale
     (K, FLOOR below; scale = largest |value| of that quantity in the case);
  4. checks that the data are well-conditioned: no ReLU input, clipping
     decision or projection decision is close enough to its threshold that
     float32 rounding could flip it (a flip would make the comparison
     discontinuous), and that each case exercises what its description
     says; if not, it tries the next seed. The seed used is in the file.

The same is done, into tests/reference/cnn.h5 (--cnn-out), for the CNN
"conv 3 k3 p1, bn, relu, maxpool 2, dense 3" on 2x6x6 inputs (conv weight
(out_c, in_c, k, k) and bias as torch.nn.Conv2d, bn weight = gamma and bias =
beta, dense as above; NCHW, so the dense layer sees the pooled (3, 3, 3) maps
flattened as torch.flatten does). The bn layer runs in training mode in every
step (the statistics of that step's batch, as F.batch_norm(training=True)) and
updates its running mean and unbiased running variance with momentum 0.1, eps
1e-5; those running statistics (our model->state: per bn layer running_mean then
running_var) are recorded after every step as the quantity "state", with
tolerances like the parameters'. The conditioning check also covers max
pooling: in every 2x2 window whose maximum is positive, the largest and second
largest input must be further apart than float32 rounding could move them.

Regenerating on the same machine gives the same bytes (no timestamps).
"""
import argparse
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

FORMAT_VERSION = 1

# The model, as our [model] layers string and the shapes it implies.
LAYERS = "dense 8, relu, dense 6, relu, dense 3"
IN_SHAPE = (1, 4, 4)
UNITS = (8, 6, 3)
N_CLASSES = UNITS[-1]

# Batches: 7 full batches of 8 and a final partial batch of 5, as at the end of an epoch.
COUNTS = (8,) * 7 + (5,)
SEED = 20240605
MAX_SEED_TRIES = 500

# Tolerance = K x measured float32 discrepancy envelope + FLOOR float32 ulps of the scale.
# Why these numbers: docs/testing.md, "Reference trajectories".
K = 8.0
FLOOR = 4.0
EPS32 = 2.0 ** -23  # float32 machine epsilon (spacing at 1.0)

# Conditioning margins (relative): how far every decision must be from its threshold.
MIN_CLIP_MARGIN = 1e-3   # |unclipped - max_lr| / max_lr
MIN_PROJ_MARGIN = 1e-3   # (norm before projection - max_norm) / max_norm when binding
MIN_RELU_MARGIN = 2.0    # min |ReLU input| over all steps, in units of K x its float32 discrepancy

# The cases. max_lr: None (unset; NAN in the fixture) or (statistic, factor): factor times
# the min, median or max step size of the same case run with max_lr unset, rounded to two
# significant digits -- so "binds sometimes" holds for whatever data the seed gives.
# max_norm None: no projection (INFINITY in the fixture); else that multiple of ||w0||
# (rounded the same way), so the projection binds from the start.
# expect_clipped: "all", "none" or "mixed" over the steps; expect_projection: the
# projection binds at start and after every step.
CASES = [
    dict(name="plain_max_lr_mixed", momentum=0.0, adjusted=0, max_lr=("median", 1.0),
         max_norm=None, expect_clipped="mixed", expect_projection=0,
         description="momentum 0; max_lr binds on some steps and not on others"),
    dict(name="plain_max_lr_binding", momentum=0.0, adjusted=0, max_lr=("min", 0.5),
         max_norm=None, expect_clipped="all", expect_projection=0,
         description="momentum 0; max_lr binds on every step"),
    dict(name="plain_max_lr_unset", momentum=0.0, adjusted=0, max_lr=None, max_norm=None,
         expect_clipped="none", expect_projection=0,
         description="momentum 0; max_lr unset (never clipped)"),
    dict(name="standard_max_lr_not_binding", momentum=0.9, adjusted=0, max_lr=("max", 2.0),
         max_norm=None, expect_clipped="none", expect_projection=0,
         description="standard Nesterov momentum 0.9; max_lr set but never binding"),
    dict(name="standard_max_lr_mixed", momentum=0.9, adjusted=0, max_lr=("median", 1.0),
         max_norm=None, expect_clipped="mixed", expect_projection=0,
         description="standard Nesterov momentum 0.9; max_lr binds on some steps"),
    dict(name="adjusted_max_lr_mixed", momentum=0.9, adjusted=1, max_lr=("median", 1.0),
         max_norm=None, expect_clipped="mixed", expect_projection=0,
         description="adjusted Nesterov momentum 0.9; max_lr binds on some steps"),
    dict(name="adjusted_max_lr_unset", momentum=0.8, adjusted=1, max_lr=None, max_norm=None,
         expect_clipped="none", expect_projection=0,
         description="adjusted Nesterov momentum 0.8; max_lr unset"),
    dict(name="standard_projection", momentum=0.9, adjusted=0, max_lr=None, max_norm=0.5,
         expect_clipped="none", expect_projection=1,
         description="standard Nesterov momentum 0.9; max_lr unset; projection onto "
                     "||w|| <= max_norm binding at start and after every step"),
    dict(name="plain_projection_max_lr_mixed", momentum=0.0, adjusted=0, max_lr=("median", 1.0),
         max_norm=0.5, expect_clipped="mixed", expect_projection=1,
         description="momentum 0; max_lr binds on some steps; projection binding"),
]
DELTA = 1e-5

QUANTITIES = ("loss", "grad_norm2", "step_unclipped", "step", "norm_before_projection")

# The CNN fixture (cnn.h5): conv with bias, batch norm in training mode, ReLU, max pooling.
# Two input channels, so (out_c, in_c, k, k) cannot be confused with (in_c, out_c, k, k).
CNN_LAYERS = "conv 3 k3 p1, bn, relu, maxpool 2, dense 3"
CNN_IN_SHAPE = (2, 6, 6)
CNN_CONV_C, CNN_K, CNN_PAD = 3, 3, 1
CNN_SEED = 20240611
CNN_CASES = [
    dict(name="standard_max_lr_mixed", momentum=0.9, adjusted=0, max_lr=("median", 1.0),
         max_norm=None, expect_clipped="mixed", expect_projection=0,
         description="standard Nesterov momentum 0.9; max_lr binds on some steps"),
    dict(name="adjusted_projection", momentum=0.9, adjusted=1, max_lr=None, max_norm=0.5,
         expect_clipped="none", expect_projection=1,
         description="adjusted Nesterov momentum 0.9; max_lr unset; projection onto "
                     "||w|| <= max_norm binding at start and after every step"),
    dict(name="plain_max_lr_unset", momentum=0.0, adjusted=0, max_lr=None, max_norm=None,
         expect_clipped="none", expect_projection=0,
         description="momentum 0; max_lr unset (never clipped)"),
]


def layout():
    """[(name, shape, offset)] of every parameter tensor, in our order."""
    tensors, offset, fan_in = [], 0, int(np.prod(IN_SHAPE))
    for i, units in enumerate(UNITS):
        layer = 2 * i  # dense layers are items 0, 2, 4 of the list (relu in between)
        for suffix, shape in (("weight", (units, fan_in)), ("bias", (units,))):
            tensors.append(("%02d_dense/%s" % (layer, suffix), shape, offset))
            offset += int(np.prod(shape))
        fan_in = units
    return tensors, offset


def make_inputs(rng, n_params):
    """float32 initial parameters (He normal, small nonzero biases) and batches."""
    tensors, _ = layout()
    w0 = np.zeros(n_params, np.float32)
    for name, shape, off in tensors:
        size = int(np.prod(shape))
        if name.endswith("weight"):
            w0[off:off + size] = rng.normal(0.0, math.sqrt(2.0 / shape[1]), size)
        else:
            w0[off:off + size] = rng.uniform(-0.1, 0.1, size)
    in_dim = int(np.prod(IN_SHAPE))
    steps, bmax = len(COUNTS), max(COUNTS)
    x = np.zeros((steps, bmax, in_dim), np.float32)
    y = np.zeros((steps, bmax), np.int32)
    # a learnable rule (the label is the argmax of three fixed projections) plus noise,
    # so the loss falls and the step size moves around as in real training
    proj = rng.normal(size=(in_dim, N_CLASSES))
    for s, n in enumerate(COUNTS):
        xs = rng.normal(size=(n, in_dim))
        x[s, :n] = xs
        y[s, :n] = np.argmax(xs @ proj + 0.5 * rng.normal(size=(n, N_CLASSES)), axis=1)
    return w0, x, y


def forward(w, x, dtype):
    """Logits and the ReLU inputs of the MLP with flat parameters w."""
    tensors, _ = layout()
    h = x
    pre = []
    for i in range(len(UNITS)):
        _, wshape, woff = tensors[2 * i]
        _, bshape, boff = tensors[2 * i + 1]
        W = w[woff:woff + wshape[0] * wshape[1]].view(wshape)
        b = w[boff:boff + bshape[0]]
        h = F.linear(h, W, b)
        if i + 1 < len(UNITS):
            pre.append(h.detach())
            h = torch.relu(h)
    return h, pre


def run(case, w0, x, y, dtype, reverse=False, net=None):
    """One ALI-G trajectory; returns a dict of per-step arrays (float64 copies)."""
    net = net or MLP
    mu = case["momentum"]
    max_lr = case["max_lr"]
    max_norm = case["max_norm"]
    w = torch.tensor(w0, dtype=dtype)

    def project(w):
        norm = torch.linalg.vector_norm(w)  # all parameters as one vector
        if max_norm is not None and norm > max_norm:
            w = w * (max_norm / norm)
        return w, norm

    w, _ = project(w)  # once at start, as the trainer does
    start = w.clone()
    v = torch.zeros_like(w)
    state = net["state_init"](dtype)  # bn running statistics (None for the MLP)
    rec = {q: [] for q in QUANTITIES}
    rec["clipped"], rec["params"], rec["relu_in"] = [], [], []
    rec["state"], rec["pool_gap"] = [], []
    for s, n in enumerate(net["counts"]):
        xs = torch.tensor(x[s, :n], dtype=dtype)
        ys = torch.tensor(y[s, :n], dtype=torch.int64)
        if reverse:
            xs, ys = xs.flip(0), ys.flip(0)
        wg = w.detach().clone().requires_grad_(True)
        logits, pre, gaps = net["forward"](wg, xs, dtype, state)
        if reverse:
            pre = [p.flip(0) for p in pre]  # back to the stored sample order
            gaps = [g.flip(0) for g in gaps]
        loss = F.cross_entropy(logits, ys, reduction="mean")  # mean over the batch
        (g,) = torch.autograd.grad(loss, wg)
        loss = loss.detach()

        # include/alig/optim.h: gamma = min(loss / (||g||^2 + delta), max_lr)
        gn2 = torch.sum(g * g)
        unclipped = loss / (gn2 + DELTA)
        clipped = max_lr is not None and bool(unclipped > max_lr)
        gamma = torch.full_like(unclipped, max_lr) if clipped else unclipped
        if mu == 0.0:
            w = w - gamma * g
        elif not case["adjusted"]:  # standard: w -= gamma g; v = mu v - gamma g; w += mu v
            w = w - gamma * g
            v = mu * v - gamma * g
            w = w + mu * v
        else:                       # adjusted: w -= gamma g; v = mu v - g; w += gamma mu v
            w = w - gamma * g
            v = mu * v - g
            w = w + gamma * mu * v
        w, norm_before = project(w)

        rec["loss"].append(float(loss))
        rec["grad_norm2"].append(float(gn2))
        rec["step_unclipped"].append(float(unclipped))
        rec["step"].append(float(gamma))
        rec["clipped"].append(int(clipped))
        rec["norm_before_projection"].append(float(norm_before))
        rec["params"].append(w.double().numpy().copy())
        rec["relu_in"].append(torch.cat([p.flatten() for p in pre]).double().numpy())
        if state is not None:
            rec["state"].append(torch.cat(state).double().numpy().copy())
            rec["pool_gap"].append(torch.cat([g.flatten() for g in gaps]).double().numpy())
    out = {q: np.array(rec[q], np.float64) for q in QUANTITIES}
    out["clipped"] = np.array(rec["clipped"], np.int8)
    out["params"] = np.array(rec["params"], np.float64)
    out["params_start"] = start.double().numpy()
    out["relu_in"] = rec["relu_in"]  # per step, every ReLU input of the batch
    if state is not None:
        out["state"] = np.array(rec["state"], np.float64)  # (steps, n_state) after each step
        out["pool_gap"] = rec["pool_gap"]  # per step, top-two gap of every max-pool window
    return out


def cnn_pooled_shape():
    c, h, w = CNN_IN_SHAPE
    return CNN_CONV_C, h // 2, w // 2  # conv keeps h, w (k3 p1); maxpool 2 halves them


def cnn_layout():
    """[(name, shape, offset)] of every CNN parameter tensor, in our order (docs/config.md:
    NN_kind/weight, NN_kind/bias with NN the item of the layer list)."""
    c = CNN_IN_SHAPE[0]
    pooled = int(np.prod(cnn_pooled_shape()))
    shapes = [("00_conv/weight", (CNN_CONV_C, c, CNN_K, CNN_K)), ("00_conv/bias", (CNN_CONV_C,)),
              ("01_bn/weight", (CNN_CONV_C,)), ("01_bn/bias", (CNN_CONV_C,)),
              ("04_dense/weight", (N_CLASSES, pooled)), ("04_dense/bias", (N_CLASSES,))]
    tensors, offset = [], 0
    for name, shape in shapes:
        tensors.append((name, shape, offset))
        offset += int(np.prod(shape))
    return tensors, offset


def cnn_state_layout():
    """Our model->state of the CNN: running mean, then running variance of the bn layer."""
    return [("01_bn/running_mean", (CNN_CONV_C,), 0),
            ("01_bn/running_var", (CNN_CONV_C,), CNN_CONV_C)], 2 * CNN_CONV_C


def cnn_state_init(dtype):
    """bn running statistics as torch.nn.BatchNorm2d (and alig_model_build) start them."""
    return [torch.zeros(CNN_CONV_C, dtype=dtype), torch.ones(CNN_CONV_C, dtype=dtype)]


def cnn_make_inputs(rng, n_params):
    """float32 initial parameters and batches of the CNN."""
    tensors, _ = cnn_layout()
    w0 = np.zeros(n_params, np.float32)
    for name, shape, off in tensors:
        size = int(np.prod(shape))
        if name == "01_bn/weight":
            w0[off:off + size] = rng.uniform(0.7, 1.3, size)  # gamma away from its default 1
        elif name.endswith("weight"):
            fan_in = int(np.prod(shape[1:]))
            w0[off:off + size] = rng.normal(0.0, math.sqrt(2.0 / fan_in), size)
        else:
            w0[off:off + size] = rng.uniform(-0.1, 0.1, size)
    in_dim = int(np.prod(CNN_IN_SHAPE))
    steps, bmax = len(COUNTS), max(COUNTS)
    x = np.zeros((steps, bmax, in_dim), np.float32)
    y = np.zeros((steps, bmax), np.int32)
    proj = rng.normal(size=(in_dim, N_CLASSES))
    for s, n in enumerate(COUNTS):
        xs = rng.normal(size=(n, in_dim))
        x[s, :n] = xs
        y[s, :n] = np.argmax(xs @ proj + 0.5 * rng.normal(size=(n, N_CLASSES)), axis=1)
    return w0, x, y


def cnn_forward(w, x, dtype, state):
    """Logits, ReLU inputs and max-pool top-two gaps of the CNN; updates the bn running
    statistics in `state` in place (training mode: the batch's own statistics)."""
    t = {name: w[off:off + int(np.prod(shape))].view(shape) for name, shape, off in cnn_layout()[0]}
    h = x.view((x.shape[0],) + CNN_IN_SHAPE)
    h = F.conv2d(h, t["00_conv/weight"], t["00_conv/bias"], padding=CNN_PAD)
    h = F.batch_norm(h, state[0], state[1], t["01_bn/weight"], t["01_bn/bias"], training=True,
                     momentum=0.1, eps=1e-5)
    pre = [h.detach()]
    h = torch.relu(h)
    # every 2x2 window's largest minus second largest input; 1 where the maximum is 0
    # (all inputs <= 0 after the ReLU: a tie, but the gradient through it is 0 either way)
    n, c, hh, ww = h.shape
    win = h.detach().view(n, c, hh // 2, 2, ww // 2, 2).permute(0, 1, 2, 4, 3, 5)
    top = torch.topk(win.reshape(n, c, hh // 2, ww // 2, 4), 2, dim=-1).values
    gap = torch.where(top[..., 0] > 0, top[..., 0] - top[..., 1], torch.ones_like(top[..., 0]))
    h = F.max_pool2d(h, 2)
    h = F.linear(h.flatten(1), t["04_dense/weight"], t["04_dense/bias"])
    return h, pre, [gap]


MLP = dict(name="mlp", layers=LAYERS, in_shape=IN_SHAPE, n_classes=N_CLASSES, counts=COUNTS,
           seed=SEED, cases=CASES, layout=layout, make_inputs=make_inputs,
           forward=lambda w, x, dtype, state: forward(w, x, dtype) + ([],),
           state_init=lambda dtype: None, vectors=("params",))
CNN = dict(name="cnn", layers=CNN_LAYERS, in_shape=CNN_IN_SHAPE, n_classes=N_CLASSES,
           counts=COUNTS, seed=CNN_SEED, cases=CNN_CASES, layout=cnn_layout,
           state_layout=cnn_state_layout, make_inputs=cnn_make_inputs, forward=cnn_forward,
           state_init=cnn_state_init, vectors=("params", "state"))


# No timestamps in the file, so regenerating on the same machine gives the same bytes.
def open_file(path):
    """A new HDF5 file (1.10 format) whose root group records no times."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    return h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl))


def group(parent, path):
    """parent/path, creating each missing level without times."""
    for name in path.split("/"):
        if name not in parent:
            gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
            gcpl.set_obj_track_times(False)
            h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl)
        parent = parent[name]
    return parent


def dataset(parent, path, data):
    """parent/path = data, without times."""
    where, _, name = path.rpartition("/")
    loc = group(parent, where) if where else parent
    loc.create_dataset(name, data=data, track_times=False)


def sattr(obj, name, text):
    """A fixed-length ASCII string attribute (simple to read from C)."""
    obj.attrs[name] = np.bytes_(text.encode("ascii"))


def envelope(d):
    """Running maximum over the steps."""
    return np.maximum.accumulate(np.asarray(d, np.float64))


def tolerances(ref, runs, vectors=("params",)):
    """Per-step tolerances from the worst discrepancy of the float32 runs to float64."""
    tol, meas = {}, {}
    for q in QUANTITIES + vectors:
        if q in vectors:
            d = np.max([np.max(np.abs(r[q] - ref[q]), axis=1) for r in runs], axis=0)
        else:
            d = np.max([np.abs(r[q] - ref[q]) for r in runs], axis=0)
        scale = float(np.max(np.abs(ref[q])))
        meas[q] = d
        tol[q] = K * envelope(d) + FLOOR * EPS32 * scale
    d0 = max(float(np.max(np.abs(r["params_start"] - ref["params_start"]))) for r in runs)
    meas["params_start"] = np.array([d0])
    tol["params_start"] = np.array(
        [K * d0 + FLOOR * EPS32 * float(np.max(np.abs(ref["params_start"])))])
    return tol, meas


def spread(results, vectors=("params",)):
    """How much two float32 runs' discrepancies differ: ratios of their final envelopes."""
    ratios = []
    for _, ref, runs, _, _ in results:
        for q in QUANTITIES + vectors:
            env = []
            for r in runs:
                d = np.abs(r[q] - ref[q])
                env.append(envelope(np.max(d, axis=1) if q in vectors else d)[-1])
            if min(env) > 0:
                ratios.append(max(env) / min(env))
    return np.median(ratios), np.percentile(ratios, 90), np.max(ratios)


def check_case(case, ref, runs, tol):
    """Raise if the case does not exercise what it claims or is ill-conditioned."""
    name = case["name"]
    problems = []
    for r in runs:
        if not np.array_equal(r["clipped"], ref["clipped"]):
            problems.append("float32 and float64 disagree on clipping")
    clipped = ref["clipped"]
    want = case["expect_clipped"]
    if want == "all" and not clipped.all():
        problems.append("expected clipping on every step, got %s" % clipped)
    if want == "none" and clipped.any():
        problems.append("expected no clipping, got %s" % clipped)
    if want == "mixed" and (clipped.all() or not clipped.any()):
        problems.append("expected mixed clipping, got %s" % clipped)
    if case["max_lr"] is not None:
        margin = np.min(np.abs(ref["step_unclipped"] - case["max_lr"])) / case["max_lr"]
        if margin < MIN_CLIP_MARGIN:
            problems.append("an unclipped step is within %.2g of max_lr" % margin)
    if case["max_norm"] is not None:
        margin = np.min(ref["norm_before_projection"] - case["max_norm"]) / case["max_norm"]
        if case["expect_projection"] and margin < MIN_PROJ_MARGIN:
            problems.append("projection not clearly binding (margin %.2g)" % margin)
    if case["momentum"] > 0 and np.ptp(ref["step"]) <= 1e-3 * np.max(ref["step"]):
        problems.append("constant step size: standard and adjusted momentum would coincide")
    relu, relu_d = relu_margin(ref, runs)
    if relu < MIN_RELU_MARGIN * K * relu_d:
        problems.append("a ReLU input (%.3g) is within %g x %g x the float32 discrepancy "
                        "of ReLU inputs (%.3g) of 0" % (relu, MIN_RELU_MARGIN, K, relu_d))
    if "pool_gap" in ref:
        gap, gap_d = pool_margin(ref, runs)
        if gap < MIN_RELU_MARGIN * K * gap_d:
            problems.append("a max-pool window's two largest inputs are %.3g apart, within "
                            "%g x %g x their float32 discrepancy (%.3g)"
                            % (gap, MIN_RELU_MARGIN, K, gap_d))
    return ["case %s: %s" % (name, p) for p in problems]


def relu_margin(ref, runs):
    """Smallest |ReLU input| of the float64 run, and the largest float32 discrepancy of one."""
    margin = min(float(np.min(np.abs(z))) for z in ref["relu_in"])
    d = max(float(np.max(np.abs(a - b))) for r in runs for a, b in zip(r["relu_in"], ref["relu_in"]))
    return margin, d


def pool_margin(ref, runs):
    """Smallest top-two gap of a max-pool window (with a positive maximum) of the float64
    run, and the largest float32 discrepancy of one."""
    margin = min(float(np.min(g)) for g in ref["pool_gap"])
    d = max(float(np.max(np.abs(a - b))) for r in runs
            for a, b in zip(r["pool_gap"], ref["pool_gap"]))
    return margin, d


def resolve(case, w0, x, y, net=None):
    """The case with numeric max_lr and max_norm (None where unset)."""
    case = dict(case)
    if case["max_norm"] is not None:
        case["max_norm"] = round2(case["max_norm"] * float(np.linalg.norm(w0.astype(np.float64))))
    if case["max_lr"] is not None:
        stat, factor = case["max_lr"]
        free = run(dict(case, max_lr=None), w0, x, y, torch.float64, net=net)["step"]
        case["max_lr"] = round2(factor * {"min": np.min, "median": np.median, "max": np.max}[stat](free))
    return case


def round2(v):
    """v rounded to two significant digits."""
    return float("%.2g" % v)


def simulate(seed, net=None):
    """All cases from the inputs of `seed`: (inputs, [(case, ref, runs, tol, meas)], problems)."""
    net = net or MLP
    rng = np.random.default_rng(seed)
    _, n_params = net["layout"]()
    w0, x, y = net["make_inputs"](rng, n_params)
    results, problems = [], []
    for case in net["cases"]:
        case = resolve(case, w0, x, y, net)
        ref = run(case, w0, x, y, torch.float64, net=net)
        runs = [run(case, w0, x, y, torch.float32, net=net),
                run(case, w0, x, y, torch.float32, reverse=True, net=net)]
        tol, meas = tolerances(ref, runs, net["vectors"])
        problems += check_case(case, ref, runs, tol)
        results.append((case, ref, runs, tol, meas))
    return (w0, x, y), results, problems


def write(path, seed, inputs, results, net=None):
    net = net or MLP
    vectors = net["vectors"]
    w0, x, y = inputs
    tensors, n_params = net["layout"]()
    tmp = path + ".tmp"
    with open_file(tmp) as f:
        sattr(f, "format", "alig-reference")
        f.attrs["format_version"] = FORMAT_VERSION
        sattr(f, "generator", "tests/reference/gen_reference.py")
        sattr(f, "torch_version", str(torch.__version__))
        f.attrs["seed"] = seed
        sattr(f, "layers", net["layers"])
        f.attrs["input_shape"] = np.array(net["in_shape"], np.int32)
        f.attrs["n_classes"] = net["n_classes"]
        f.attrs["n_params"] = n_params
        f.attrs["delta"] = DELTA
        f.attrs["tol_k"] = K
        f.attrs["tol_floor_ulps"] = FLOOR
        med, p90, worst = spread(results, vectors)
        f.attrs["f32_spread_median"] = med
        f.attrs["f32_spread_p90"] = p90
        f.attrs["f32_spread_max"] = worst
        print("float32 runs (natural vs reversed sample order): ratio of their final "
              "discrepancy envelopes median %.2f, 90%% %.2f, max %.2f" % (med, p90, worst))
        f.attrs["tensor_names"] = np.array([t[0].encode("ascii") for t in tensors])
        f.attrs["tensor_offsets"] = np.array([t[2] for t in tensors], np.int64)
        if "state" in vectors:
            states, n_state = net["state_layout"]()
            f.attrs["n_state"] = n_state
            f.attrs["state_names"] = np.array([t[0].encode("ascii") for t in states])
            f.attrs["state_offsets"] = np.array([t[2] for t in states], np.int64)
        dataset(f, "params_init", w0)
        dataset(f, "batches/x", x)
        dataset(f, "batches/y", y)
        dataset(f, "batches/count", np.array(net["counts"], np.int32))
        if "state" in vectors:
            dataset(f, "state_init", torch.cat(net["state_init"](torch.float64)).numpy())
        print("%-30s %-22s %10s %10s %10s %8s"
              % ("case", "quantity", "max d32", "max tol", "min tol", "tol/d32"))
        for case, ref, runs, tol, meas in results:
            g = group(f, "cases/" + case["name"])
            sattr(g, "description", case["description"])
            g.attrs["momentum"] = case["momentum"]
            g.attrs["adjusted"] = case["adjusted"]
            g.attrs["max_lr"] = math.nan if case["max_lr"] is None else case["max_lr"]
            g.attrs["max_norm"] = math.inf if case["max_norm"] is None else case["max_norm"]
            sattr(g, "expect_clipped", case["expect_clipped"])
            g.attrs["expect_projection"] = case["expect_projection"]
            relu, relu_d = relu_margin(ref, runs)
            g.attrs["min_relu_input"] = relu
            g.attrs["relu_input_discrepancy"] = relu_d
            if "pool_gap" in ref:
                gap, gap_d = pool_margin(ref, runs)
                g.attrs["min_pool_gap"] = gap
                g.attrs["pool_gap_discrepancy"] = gap_d
            for q in QUANTITIES + vectors + ("params_start", "clipped"):
                dataset(g, "f64/" + q, ref[q])
                dataset(g, "f32/" + q,
                        runs[0][q].astype(np.float32) if q != "clipped" else runs[0][q])
                if q == "clipped":
                    continue
                dataset(g, "measured/" + q, meas[q])
                dataset(g, "tol/" + q, tol[q])
                dmax = float(np.max(meas[q]))
                print("%-30s %-22s %10.3g %10.3g %10.3g %8s"
                      % (case["name"], q, dmax, np.max(tol[q]), np.min(tol[q]),
                         "%.1f" % (np.max(tol[q]) / dmax) if dmax > 0 else "-"))
            print("%-30s clipped %s  min |ReLU input| %.3g (f32 discrepancy %.3g)  "
                  "step %.4g..%.4g  |w| before projection %.4g..%.4g"
                  % (case["name"], "".join(str(c) for c in ref["clipped"]), relu, relu_d,
                     np.min(ref["step"]), np.max(ref["step"]),
                     np.min(ref["norm_before_projection"]), np.max(ref["norm_before_projection"])))
            if "pool_gap" in ref:
                print("%-30s min max-pool top-two gap %.3g (f32 discrepancy %.3g)  bn running "
                      "var after the last step %s"
                      % (case["name"], gap, gap_d, np.round(ref["state"][-1][CNN_CONV_C:], 4)))
    os.replace(tmp, path)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", default=os.path.join(here, "mlp.h5"))
    ap.add_argument("--cnn-out", default=os.path.join(here, "cnn.h5"))
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for net, out in ((MLP, args.out), (CNN, args.cnn_out)):
        print("== %s: %s" % (net["name"], net["layers"]))
        # The first seed from the net's seed whose data make every case well-conditioned.
        first = net["seed"]
        for seed in range(first, first + MAX_SEED_TRIES):
            inputs, results, problems = simulate(seed, net)
            if not problems:
                break
            print("seed %d rejected: %s" % (seed, problems[0]))
        else:
            sys.exit("gen_reference.py: no seed in [%d, %d) gives well-conditioned %s cases"
                     % (first, first + MAX_SEED_TRIES, net["name"]))
        write(out, seed, inputs, results, net)
        print("wrote %s (%d bytes), seed %d" % (out, os.path.getsize(out), seed))


if __name__ == "__main__":
    main()
