#!/usr/bin/env python3
"""Write small synthetic datasets in the exact CIFAR-10 / CIFAR-100 binary formats.

The real CIFAR files are not on this machine (docs/datasets.md says where to put them);
this generator produces files that alig-train reads through the same code path, for
tests and for the end-to-end WRN run. Python standard library only.

    data/gen_cifar.py --classes 10 --train 2000 --test 500 --out /tmp/cifar10-synth
    data/gen_cifar.py --classes 100 --train 2000 --test 500 --out /tmp/cifar100-synth

CIFAR-10 layout (what the real tarball extracts to, cifar-10-batches-bin/):
    data_batch_1.bin ... data_batch_5.bin   the training set, split evenly
    test_batch.bin                          the test set
    each record: <1 byte label 0..9><1024 red><1024 green><1024 blue>, 32x32 row order
CIFAR-100 layout (cifar-100-binary/):
    train.bin, test.bin
    each record: <1 byte coarse label 0..19><1 byte fine label 0..99><3072 pixel bytes>

Images are learnable but not trivial: noise, plus a 12x12 patch at a random place whose
colour encodes label % 10 and whose stripe period encodes label // 10 (CIFAR-100), so a
small CNN's training loss falls within an epoch or two and random crops keep the signal.
"""
import argparse
import os
import random

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 190)]


def image(label, rng):
    """3072 bytes: R plane, G plane, B plane."""
    planes = [bytearray(rng.randrange(40, 110) for _ in range(1024)) for _ in range(3)]
    colour = PALETTE[label % 10]
    period = 2 + label // 10
    y0, x0 = rng.randrange(0, 21), rng.randrange(0, 21)
    for y in range(y0, y0 + 12):
        if (y - y0) % period == period - 1 and label >= 10:
            continue  # stripes: the row pattern tells CIFAR-100 classes with one colour apart
        for x in range(x0, x0 + 12):
            for c in range(3):
                planes[c][y * 32 + x] = min(255, max(0, colour[c] + rng.randrange(-20, 21)))
    return bytes(planes[0] + planes[1] + planes[2])


def record(label, classes, rng):
    head = bytes([label]) if classes == 10 else bytes([label // 5, label])
    return head + image(label, rng)


def write(path, labels, classes, rng):
    with open(path, "wb") as f:
        for y in labels:
            f.write(record(y, classes, rng))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--classes", type=int, choices=(10, 100), default=10)
    ap.add_argument("--train", type=int, default=1000, help="training samples (CIFAR-10: split over 5 files)")
    ap.add_argument("--test", type=int, default=200, help="test samples")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True, help="output directory (created)")
    a = ap.parse_args()
    if a.train < (5 if a.classes == 10 else 1) or a.test < 1:
        ap.error("need at least one sample per file")
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    train = [rng.randrange(a.classes) for _ in range(a.train)]
    test = [rng.randrange(a.classes) for _ in range(a.test)]
    if a.classes == 10:
        per = [a.train // 5 + (1 if i < a.train % 5 else 0) for i in range(5)]
        start = 0
        for i, k in enumerate(per):
            write(os.path.join(a.out, "data_batch_%d.bin" % (i + 1)), train[start:start + k], 10, rng)
            start += k
        write(os.path.join(a.out, "test_batch.bin"), test, 10, rng)
    else:
        write(os.path.join(a.out, "train.bin"), train, 100, rng)
        write(os.path.join(a.out, "test.bin"), test, 100, rng)
    print("wrote CIFAR-%d format: %d training, %d test samples in %s" % (a.classes, a.train, a.test, a.out))


if __name__ == "__main__":
    main()
