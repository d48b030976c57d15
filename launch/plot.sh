#!/usr/bin/env bash
# Plot one or more run directories, overlaid: training loss (log scale),
# test accuracy and step size over steps. Uses gnuplot (Debian gnuplot-nox),
# and installs it (launch/install-deps.sh --plot) when it is missing.
#
#   launch/plot.sh [-o OUTDIR] RUN_DIR [RUN_DIR...]
#
# Reads RUN_DIR/steps.csv and RUN_DIR/epochs.csv (docs/metrics.md); the legend
# is each directory's name. Writes OUTDIR/loss.png, test_accuracy.png and
# step_size.png (OUTDIR defaults to the first run directory). A run whose file
# has no rows to plot (steps.csv of a run with [run] metrics_every = 0, or of a
# run with no step yet; epochs.csv without a test accuracy) is left out of that
# file's figures, with a message; a figure no run has rows for is not written.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage() { echo "usage: launch/plot.sh [-o OUTDIR] RUN_DIR [RUN_DIR...]" >&2; exit 2; }
out=
if [ "${1:-}" = "-o" ]; then
    [ $# -ge 2 ] || usage
    out=$2
    shift 2
fi
[ $# -ge 1 ] || usage
out=${out:-$1}

# has_values FILE COLUMN: some row after the header has a value (not nan) in COLUMN.
# gnuplot stops with "x range is invalid" or "all points y value undefined" otherwise.
has_values() {
    awk -F, -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        c && $c != "" && $c != "nan" && $c != "-nan" { found = 1; exit }
        END { exit !found }' "$1"
}

# Everything is checked before anything is created or installed: a bad argument
# must leave no directory behind (launch/plot.sh /nonexistent created it).
STEP_RUNS=() ACC_RUNS=()
for d in "$@"; do
    for f in steps.csv epochs.csv; do
        [ -s "$d/$f" ] || { echo "plot.sh: $d/$f: missing or empty (is $d a run directory?)" >&2; exit 3; }
    done
    if has_values "$d/steps.csv" loss; then
        STEP_RUNS+=("$d")
    else
        echo "plot.sh: $d/steps.csv has no rows ([run] metrics_every = 0, or no step yet):" \
            "$d is left out of loss.png and step_size.png" >&2
    fi
    if has_values "$d/epochs.csv" test_acc; then
        ACC_RUNS+=("$d")
    else
        echo "plot.sh: $d/epochs.csv has no test accuracy (no epoch yet, or no test set" \
            "evaluated): $d is left out of test_accuracy.png" >&2
    fi
done
if [ ${#STEP_RUNS[@]} -eq 0 ] && [ ${#ACC_RUNS[@]} -eq 0 ]; then
    echo "plot.sh: nothing to plot: no run has a row in steps.csv or a test accuracy in epochs.csv" >&2
    exit 3
fi
mkdir -p "$out" 2>/dev/null || { echo "plot.sh: -o: cannot create the output directory '$out'" >&2; exit 2; }
if ! command -v gnuplot >/dev/null; then
    echo "plot.sh: gnuplot is not installed; installing it (launch/install-deps.sh --plot)" >&2
    "$here/install-deps.sh" --plot
fi

# gnuplot plot clauses, one per run: file xcol ycol run...
plots() {
    local file=$1 x=$2 y=$3 sep= d
    shift 3
    for d in "$@"; do
        printf '%s"%s/%s" using "%s":"%s" with lines lw 2 title "%s"' "$sep" "$d" "$file" "$x" "$y" "$(basename "$d")"
        sep=", "
    done
}
wrote=()
script='set datafile separator ","
set terminal pngcairo size 900,560 font ",11" noenhanced
set key outside bottom center horizontal
set grid
'
if [ ${#STEP_RUNS[@]} -gt 0 ]; then
    script+="
set output \"$out/loss.png\"
set title \"training loss (mean over the global batch)\"
set xlabel \"step\"; set ylabel \"loss\"; set logscale y
plot $(plots steps.csv step loss "${STEP_RUNS[@]}")
unset logscale y
"
    wrote+=("$out/loss.png")
fi
if [ ${#ACC_RUNS[@]} -gt 0 ]; then
    script+="
set output \"$out/test_accuracy.png\"
set title \"test accuracy\"
set xlabel \"epoch\"; set ylabel \"accuracy\"; set yrange [*:*]
plot $(plots epochs.csv epoch test_acc "${ACC_RUNS[@]}")
"
    wrote+=("$out/test_accuracy.png")
fi
if [ ${#STEP_RUNS[@]} -gt 0 ]; then
    script+="
set output \"$out/step_size.png\"
set title \"step size (ALI-G: gamma; SGD/Adam: learning rate)\"
set xlabel \"step\"; set ylabel \"step size\"; set logscale y
plot $(plots steps.csv step step_size "${STEP_RUNS[@]}")
"
    wrote+=("$out/step_size.png")
fi
gnuplot <<< "$script"
echo "plot.sh: wrote ${wrote[*]}"
