#!/usr/bin/python3
"""Training throughput of PyTorch on the models alig-train benchmarks.

Run with Debian's interpreter (/usr/bin/python3, python3-torch): the python3 first on
PATH may be another one without torch.

    /usr/bin/python3 tests/bench/torch_bench.py --model mlp --threads 1 --blas-threads 1
    /usr/bin/python3 tests/bench/torch_bench.py --model cnn --ranks 2 --threads 1

Data: Fashion-MNIST from /usr/share/datasets/fashion-mnist, preloaded in memory as
normalised float32. The step is the same work as alig-train's: forward, mean
cross-entropy, backward, gradient norm, ALI-G step with Nesterov momentum. With
--ranks 2 it uses DistributedDataParallel over gloo with the global batch split in two.
Prints one line: `torch <model> samples/s <value> ...`.
"""
import argparse
import gzip
import os
import struct
import sys
import time


def load_idx(path):
    import numpy as np
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def build(model, torch):
    nn = torch.nn
    if model == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(),
                             nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def run(rank, args):
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)
    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.ranks > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo", rank=rank, world_size=args.ranks)
    x = load_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
    y = load_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    x = torch.from_numpy((x - x.mean()) / x.std()).unsqueeze(1)
    y = torch.from_numpy(y)
    net = build(args.model, torch)
    if args.ranks > 1:
        net = torch.nn.parallel.DistributedDataParallel(net)
    params = [p for p in net.parameters()]
    vel = [torch.zeros_like(p) for p in params]
    local = args.batch // args.ranks
    lossf = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(1)
    n = x.shape[0]
    times = []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        idx = torch.randint(0, n, (args.batch,), generator=gen)[rank * local:(rank + 1) * local]
        xb, yb = x[idx], y[idx]
        out = net(xb)
        loss = lossf(out, yb)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            lv = loss.detach()
            if args.ranks > 1:  # DDP averages gradients; the loss needs the same
                torch.distributed.all_reduce(lv)
                lv /= args.ranks
            g2 = sum((p.grad * p.grad).sum() for p in params)
            gamma = min(float(lv) / (float(g2) + 1e-5), 0.1)
            for p, v in zip(params, vel):
                p.add_(p.grad, alpha=-gamma)
                v.mul_(0.9).add_(p.grad, alpha=-gamma)
                p.add_(v, alpha=0.9)
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    if rank == 0:
        total = sum(times)
        print(f"torch {args.model} samples/s {args.batch * len(times) / total:.1f} "
              f"ranks {args.ranks} threads {args.threads} blas_threads {args.blas_threads} "
              f"batch {args.batch} torch {torch.__version__}", flush=True)
    if args.ranks > 1:
        torch.distributed.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    ap.add_argument("--batch", type=int, default=128, help="global batch")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads per rank")
    ap.add_argument("--blas-threads", type=int, default=1, help="OpenBLAS threads per rank")
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()
    if args.ranks == 1:
        run(0, args)
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    import torch.multiprocessing as mp
    mp.spawn(run, args=(args,), nprocs=args.ranks, join=True)


if __name__ == "__main__":
    sys.exit(main())
