#!/usr/bin/env bash
# Plot one or more run directories, overlaid: training loss (log scale),
# test accuracy and step size over steps. Uses gnuplot (Debian gnuplot-nox).
#
#   launch/plot.sh [-o OUTDIR] RUN_DIR [RUN_DIR...]
#
# Reads RUN_DIR/steps.csv and RUN_DIR/epochs.csv (docs/metrics.md); the legend
# is each directory's name. Writes OUTDIR/loss.png, test_accuracy.png and
# step_size.png (OUTDIR defaults to the first run directory).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=
if [ "${1:-}" = "-o" ]; then out=$2; shift 2; fi
[ $# -ge 1 ] || { echo "usage: launch/plot.sh [-o OUTDIR] RUN_DIR [RUN_DIR...]" >&2; exit 2; }
out=${out:-$1}
mkdir -p "$out"
command -v gnuplot >/dev/null || "$here/install-deps.sh" --plot
for d in "$@"; do
    for f in steps.csv epochs.csv; do
        [ -s "$d/$f" ] || { echo "plot.sh: $d/$f: missing or empty (is $d a run directory?)" >&2; exit 3; }
    done
done

# gnuplot plot clauses, one per run
plots() { # file xcol ycol
    local sep=
    for d in "${RUNS[@]}"; do
        printf '%s"%s/%s" using "%s":"%s" with lines lw 2 title "%s"' "$sep" "$d" "$1" "$2" "$3" "$(basename "$d")"
        sep=", "
    done
}
RUNS=("$@")

gnuplot <<GP
set datafile separator ","
set terminal pngcairo size 900,560 font ",11" noenhanced
set key outside bottom center horizontal
set grid

set output "$out/loss.png"
set title "training loss (mean over the global batch)"
set xlabel "step"; set ylabel "loss"; set logscale y
plot $(plots steps.csv step loss)

unset logscale y
set output "$out/test_accuracy.png"
set title "test accuracy"
set xlabel "epoch"; set ylabel "accuracy"; set yrange [*:*]
plot $(plots epochs.csv epoch test_acc)

set output "$out/step_size.png"
set title "step size (ALI-G: gamma; SGD/Adam: learning rate)"
set xlabel "step"; set ylabel "step size"; set logscale y
plot $(plots steps.csv step step_size)
GP
echo "plot.sh: wrote $out/loss.png $out/test_accuracy.png $out/step_size.png"
