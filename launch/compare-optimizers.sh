#!/usr/bin/env bash
# ALI-G against its baselines on the main job (Fashion-MNIST MLP), then one
# overlaid set of figures: the run behind docs/optimizers.md.
#
#   launch/compare-optimizers.sh [-np N] [OUT_DIR]     (default: 2 ranks, runs/compare)
#
# The three runs share launch/fashion-mnist-mlp.ini (model, data, batch 128, 10
# epochs, seed) and differ only in [optimizer]:
#   alig : ALI-G, max_lr 0.1, Nesterov momentum 0.9, no schedule
#   sgd  : SGD, lr 0.1, Nesterov momentum 0.9, weight decay 5e-4, lr x0.1 after epochs 5 and 8
#   adam : Adam, lr 1e-3
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
np=2
if [ "${1:-}" = "-np" ]; then
    if ! [[ "${2:-}" =~ ^[1-9][0-9]{0,8}$ ]]; then
        echo "launch/compare-optimizers.sh: -np needs a number of ranks in [1, 999999999], got '${2:-}'" >&2
        echo "usage: launch/compare-optimizers.sh [-np N] [OUT_DIR]" >&2
        exit 2
    fi
    np=$2
    shift 2
fi
if [ $# -gt 1 ]; then
    echo "launch/compare-optimizers.sh: one output directory expected, got $#: $*" >&2
    echo "usage: launch/compare-optimizers.sh [-np N] [OUT_DIR]" >&2
    exit 2
fi
out=${1:-runs/compare}
cfg=$here/fashion-mnist-mlp.ini
run() { # name --set...
    local name=$1 rc=0; shift
    rm -rf "${out:?}/$name"
    "$here/run.sh" -np "$np" "$cfg" --set "run.out_dir=$out/$name" --set checkpoint.resume=never "$@" \
        > "$out/$name.log" 2>&1 || rc=$?
    grep -E '^epoch' "$out/$name.log" || true
    if [ $rc -ne 0 ]; then # a failed run stops the comparison, with its reason
        echo "launch/compare-optimizers.sh: the $name run failed (exit $rc); from $out/$name.log:" >&2
        grep -m 3 -E '^(alig-train|launch/run.sh):' "$out/$name.log" >&2 || tail -n 5 "$out/$name.log" >&2
        exit $rc
    fi
}
mkdir -p "$out"
run alig
run sgd --set optimizer.name=sgd --set optimizer.lr=0.1 --set optimizer.nesterov=true \
    --set optimizer.weight_decay=5e-4 --set optimizer.schedule=step --set "optimizer.milestones=5, 8"
run adam --set optimizer.name=adam --set optimizer.lr=1e-3 --set optimizer.momentum=0
"$here/plot.sh" -o "$out" "$out/alig" "$out/sgd" "$out/adam"
for r in alig sgd adam; do
    printf '%-5s final test accuracy %s\n' $r "$(tail -1 "$out/$r/epochs.csv" | cut -d, -f6)"
done
