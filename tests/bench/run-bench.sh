#!/usr/bin/env bash
# Benchmark harness (make bench): alig-train against PyTorch on the same model,
# batch, data (Fashion-MNIST in memory) and cores, alternating runs, medians
# (of the speeds, and of each repeat's own ratios).
#
#   tests/bench/run-bench.sh [REPEATS] [STEPS]
#   (BENCH_MODELS="mlp cnn" and BENCH_SETTINGS="1core 2cores 2ranks" pick a subset)
#
# Settings: 1 core (one rank bound to one core), 2 cores in one process (one
# rank, 2 threads, [run] parallel = auto), 2 ranks x 1 core. PyTorch gets each setting's best
# thread configuration among those tried (printed). Models: the MLP
# 784-1024-1024-10 and the small CNN, global batch 128. Also prints the
# GEMM-only limit (tests/bench/gemm_limit.c) and, for alig-train, the step's
# time split (data, forward, backward, allreduce, optimizer).
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=${1:-5}
steps=${2:-60}
py=/usr/bin/python3
bin=${ALIG_BIN:-bin}/alig-train
build=${ALIG_BUILD:-build}
out=${BENCH_OUT:-build/bench}
mkdir -p "$out"
root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)

declare -A spec=(
    [mlp]="dense 1024, relu, dense 1024, relu, dense 10"
    [cnn]="conv 32 k3 p1, relu, maxpool 2, conv 64 k3 p1, relu, maxpool 2, dense 128, relu, dense 10"
)

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# alig-train samples/s for one setting: from the run's last line (all its steps)
alig_run() { # model setting
    local model=$1 setting=$2 launch
    case $setting in
        1core)  launch=(mpirun "${root[@]}" -np 1 --bind-to core) ;;
        2cores) launch=(mpirun "${root[@]}" -np 1 --bind-to none) ;;
        2ranks) launch=(mpirun "${root[@]}" -np 2 --bind-to core) ;;
    esac
    "${launch[@]}" "$bin" launch/fashion-mnist-mlp.ini --set "model.layers=${spec[$model]}" \
        --set run.max_steps="$steps" --set eval.every=0 --set run.out_dir="$out/run-$model-$setting" \
        --set checkpoint.every_epochs=0 --set checkpoint.at_end=false --set run.profile=true 2>&1 |
        tee "$out/alig-$model-$setting.log" |
        awk '/^run: / {for (i=1;i<=NF;i++) if ($i ~ /^samples\/s;?$/) print $(i-1)}'
}

# GEMM-only limit for one setting (samples/s), measured between the trainers' runs, on
# the model's own operands (gemm_limit.c); with GEMM_LIMIT_OPERANDS=shared in the
# environment, on one warm set of buffers (the limit of the first three sessions):
#   1core: one BLAS thread at batch 128;
#   2cores: the better of 2 BLAS threads on each GEMM and 2 threads at once on 64 samples
#           each with one BLAS thread (what [run] parallel = batch does);
#   2ranks: 2 threads at once on 64 samples each, each with weights of its own (the two
#           ranks' GEMMs; GEMM_LIMIT_OPERANDS=private)
gemm_limit() { # model setting
    local s=${spec[$1]} lim=("$build/tests/gemm_limit")
    case $2 in
        1core)  "${lim[@]}" "$s" 1 28 28 128 1 3 | awk '{print $3}' ;;
        2cores) { "${lim[@]}" "$s" 1 28 28 128 2 3; "${lim[@]}" "$s" 1 28 28 128 1 3 2; } |
                    awk '$3 > best {best = $3} END {print best}' ;;
        2ranks) GEMM_LIMIT_OPERANDS=${GEMM_LIMIT_OPERANDS:-private} "${lim[@]}" "$s" 1 28 28 128 1 3 2 |
                    awk '{print $3}' ;;
    esac
}

torch_run() { # model setting threads blas
    local model=$1 setting=$2 th=$3 blas=$4 ranks=1
    [ "$setting" = 2ranks ] && ranks=2
    local pin=(taskset -c 0)
    [ "$setting" != 1core ] && pin=()
    OPENBLAS_CORETYPE=$torch_core "${pin[@]}" "$py" tests/bench/torch_bench.py --model "$model" --ranks $ranks --threads "$th" \
        --blas-threads "$blas" --steps "$steps" --warmup 10 | awk '{print $4}'
}

# PyTorch's OpenBLAS (Debian's libblas.so.3) gets the kernels alig-train runs on: OpenBLAS
# 0.3.21 may take its Prescott kernels on a CPU it does not know (alig/blas.h), and alig-train
# then restarts on better ones; an OPENBLAS_CORETYPE set by the caller applies to both
blas=$("$bin" --version | sed -n 's/^blas: //p')
torch_core=${blas#*, } torch_core=${OPENBLAS_CORETYPE:-${torch_core%% kernels*}}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); date: $(date -u +%F)"
echo "alig-train blas: $blas; PyTorch: OPENBLAS_CORETYPE=$torch_core"
echo "repeats $reps, $steps steps each, global batch 128"
printf '%-4s %-7s %12s %12s %8s %12s %10s %11s %10s %s\n' model setting alig torch ratio gemm-limit \
    alig/limit warm-limit alig/warm torch-threads
for model in ${BENCH_MODELS:-mlp cnn}; do
    for setting in ${BENCH_SETTINGS:-1core 2cores 2ranks}; do
        # PyTorch thread candidates per setting: (intra-op threads, OpenBLAS threads)
        case $setting in
            1core) cands=("1 1") ;;
            2cores) cands=("2 1" "1 2" "2 2") ;;
            2ranks) cands=("1 1") ;;
        esac
        best_c="" best_v=0
        for c in "${cands[@]}"; do # pick PyTorch's best setting with one short run each
            read -r th bl <<< "$c"
            v=$(torch_run "$model" "$setting" "$th" "$bl")
            if awk -v a="$v" -v b="$best_v" 'BEGIN {exit !(a > b)}'; then best_v=$v best_c=$c; fi
        done
        a=() t=() g=() wl=()
        for ((r = 0; r < reps; r++)); do # alternate the two trainers and the GEMM loop
            read -r th bl <<< "$best_c"
            a+=("$(alig_run "$model" "$setting")")
            t+=("$(torch_run "$model" "$setting" "$th" "$bl")")
            g+=("$(gemm_limit "$model" "$setting")")
            wl+=("$(GEMM_LIMIT_OPERANDS=shared gemm_limit "$model" "$setting")")
        done
        am=$(printf '%s\n' "${a[@]}" | median)
        tm=$(printf '%s\n' "${t[@]}" | median)
        gl=$(printf '%s\n' "${g[@]}" | median)
        wm=$(printf '%s\n' "${wl[@]}" | median)
        # the ratios: medians of each repeat's own ratio, its runs taken side by side, so
        # that the machine's speed, which drifts over minutes here, cancels out
        paired() { for ((r = 0; r < reps; r++)); do
                       awk -v a="${a[r]}" -v b="$1" 'BEGIN {print a/b}'; shift; done | median; }
        printf '%-4s %-7s %12.0f %12.0f %8.2f %12.0f %10.2f %11.0f %10.2f %s\n' "$model" "$setting" \
            "$am" "$tm" "$(paired "${t[@]}")" "$gl" "$(paired "${g[@]}")" "$wm" \
            "$(paired "${wl[@]}")" "intra=${best_c% *},blas=${best_c#* }"
        grep -h "^run: \|^parallel" "$out/alig-$model-$setting.log" | sed 's/^/    /' || true
    done
done
