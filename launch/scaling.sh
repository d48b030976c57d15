#!/usr/bin/env bash
# Scaling-study kit: strong scaling (fixed global batch) and weak scaling (fixed
# per-rank batch) of alig-train over a list of rank counts, into one CSV and a PNG
# of speedup and efficiency against ideal.
#
#   launch/scaling.sh [-r "1 2 4"] [-b 128] [-s 100] [-n 1] [-c CONFIG] [-o OUT_DIR] [-P]
#                     [-a "ALIG-TRAIN ARGS"]
#
#   -r  rank counts (default "1 2")          -b  global batch at 1 rank (default 128)
#   -s  steps per run (default 100)          -c  config (default launch/fashion-mnist-mlp.ini)
#   -n  runs of each point (default 1): the sweep is repeated n times, interleaved, and
#       each point reports the median samples/s and the step split of that median run
#   -o  output directory (default runs/scaling)
#   -P  no PNG: write the CSV only (no gnuplot needed)
#   -a  more alig-train arguments for every run, e.g. -a "--set run.reduce=mpi" (split at
#       spaces: a value with spaces in it, such as a layer list, needs a config file)
# Set MPIRUN to your launcher (default: launch/run.sh's mpirun, -np N appended);
# on a cluster e.g. MPIRUN="srun --mpi=pmix -n".
# Columns: mode,ranks,global_batch,samples_per_s,speedup,efficiency (both against the first
#          rank count of -r, usually 1),ms_per_step,
#          data,forward,backward,allreduce,optimizer (percent of step time, rank 0),
#          reduce (the gradient reduction the run used: shm, mpi or none).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ranks="1 2" batch=128 steps=100 reps=1 cfg=$here/fashion-mnist-mlp.ini out=runs/scaling plot=1
extra=()
die() { # message
    echo "scaling.sh: $*" >&2
    echo "usage: launch/scaling.sh [-r \"1 2 4\"] [-b 128] [-s 100] [-n 1] [-c CONFIG] [-o OUT_DIR] [-P]" \
        "[-a \"ALIG-TRAIN ARGS\"]" >&2
    exit 2
}
while getopts "r:b:s:n:c:o:Pa:" o; do
    case $o in r) ranks=$OPTARG ;; b) batch=$OPTARG ;; s) steps=$OPTARG ;; c) cfg=$OPTARG ;;
               n) reps=$OPTARG ;; o) out=$OPTARG ;; P) plot=0 ;;
               a) read -r -a extra <<< "$OPTARG" ;; *) die "unknown option" ;; esac
done
posint() { [[ $1 =~ ^[0-9]{1,15}$ ]] && ((10#$1 > 0)); } # base 10: "08" is 8; at most 15 digits
posint "$reps" || die "-n needs a positive integer, got '$reps'"
posint "$steps" || die "-s needs a positive number of steps, got '$steps'"
posint "$batch" || die "-b needs a positive batch size, got '$batch'"
reps=$((10#$reps)) steps=$((10#$steps)) batch=$((10#$batch))
[ -n "${ranks// /}" ] || die "-r needs a list of rank counts, e.g. -r \"1 2 4\""
list=
for p in $ranks; do
    posint "$p" || die "-r: '$p' is not a positive number of ranks"
    [[ " $list " == *" $((10#$p)) "* ]] && die "-r: $((10#$p)) ranks listed twice"
    list+=" $((10#$p))"
done
ranks=$list
base_p=${list# } base_p=${base_p%% *} # the first count: speedups are against it
[ -r "$cfg" ] || die "-c: cannot read config '$cfg'"
mkdir -p "$out" 2>/dev/null || die "-o: cannot create the output directory '$out'"
csv=$out/scaling.csv
echo "mode,ranks,global_batch,samples_per_s,speedup,efficiency,ms_per_step,data,forward,backward,allreduce,optimizer,reduce" > "$csv"
bin=${ALIG_TRAIN:-$here/../bin/alig-train}
launch() { # np config args...
    local np=$1; shift
    if [ -n "${MPIRUN:-}" ]; then $MPIRUN "$np" "$bin" "$@"; else ALIG_TRAIN=$bin "$here/run.sh" -np "$np" "$@"; fi
}
# from alig-train's last line, "run: N steps, R samples/s; profile: M ms/step: data P% ...",
# which covers all the run's steps whatever the epochs they fall in
rate() { awk '/^run: / {for (i=1;i<=NF;i++) if ($i ~ /^samples\/s;?$/) v=$(i-1)} END {print v}' "$1"; }
for ((r = 1; r <= reps; r++)); do # the whole sweep, reps times: drifts hit every point alike
    for mode in strong weak; do
        for p in $ranks; do
            gb=$batch; [ $mode = weak ] && gb=$((batch * p))
            log=$out/$mode-$p-$r.log
            rm -rf "${out:?}/$mode-$p" # a stopped sweep may have left a checkpoint there
            rc=0
            launch "$p" "$cfg" --set run.max_steps="$steps" \
                --set data.batch_size="$gb" --set eval.every=0 --set run.profile=true \
                --set run.out_dir="$out/$mode-$p" --set checkpoint.resume=never \
                --set checkpoint.every_epochs=0 --set checkpoint.at_end=false "${extra[@]}" > "$log" 2>&1 || rc=$?
            rm -rf "${out:?}/$mode-$p"
            if [ $rc -ne 0 ]; then
                echo "scaling.sh: the $mode run at $p rank(s) failed (exit $rc); from $log:" >&2
                grep -m 3 -E '^(alig-train|launch/run.sh):' "$log" >&2 || tail -n 5 "$log" >&2
                exit $rc
            fi
        done
    done
done
for mode in strong weak; do
    base=
    for p in $ranks; do
        gb=$batch; [ $mode = weak ] && gb=$((batch * p))
        # the median run of this point (the lower middle one for an even count)
        r=$(for ((r = 1; r <= reps; r++)); do echo "$(rate "$out/$mode-$p-$r.log") $r"; done |
            sort -g | awk -v k=$(((reps + 1) / 2)) 'NR == k {print $2}')
        log=$out/$mode-$p-$r.log
        cp "$log" "$out/$mode-$p.log"
        sps=$(rate "$log")
        prof=$(awk '/^run: / {for (i=1;i<=NF;i++) {if ($i=="ms/step:") ms=$(i-1)
                                                if ($i ~ /%$/) {sub(/%/,"",$i); p=p","$i}}} END {print ms p}' "$log")
        red=$(awk '/^reduce: / {print ($2 == "shared" ? "shm" : $2 ~ /^MPI/ ? "mpi" : "none")}' "$log")
        [ -n "$base" ] || base=$sps
        # against the first rank count p0 (1 in the usual sweep): speedup = rate / rate(p0),
        # efficiency = speedup / (p / p0); weak: the same, with the per-rank work fixed
        awk -v m="$mode" -v p="$p" -v gb="$gb" -v s="$sps" -v b="$base" -v pr="$prof" -v r="${red:-none}" \
            -v p0="$base_p" \
            'BEGIN {printf "%s,%d,%d,%.1f,%.3f,%.3f,%s,%s\n", m, p, gb, s, s/b, s/b/(p/p0), pr, r}' >> "$csv"
    done
done
cat "$csv"
if [ $plot = 0 ]; then echo "scaling.sh: wrote $csv"; exit 0; fi
command -v gnuplot >/dev/null || "$here/install-deps.sh" --plot
gnuplot <<GP
set datafile separator ","
set terminal pngcairo size 1000,420 font ",11" noenhanced
set output "$out/scaling.png"
set multiplot layout 1,2
set grid; set key top left
set xlabel "ranks"; set ylabel "speedup"; set title "speedup"
plot x / $base_p with lines dt 2 lc rgb "gray" title "ideal", \
     "< grep '^strong' '$csv'" using 2:5 with linespoints lw 2 title "strong (global batch $batch)", \
     "< grep '^weak' '$csv'" using 2:5 with linespoints lw 2 title "weak ($batch per rank)"
set ylabel "efficiency"; set title "parallel efficiency"; set yrange [0:1.2]
plot 1 with lines dt 2 lc rgb "gray" title "ideal", \
     "< grep '^strong' '$csv'" using 2:6 with linespoints lw 2 title "strong", \
     "< grep '^weak' '$csv'" using 2:6 with linespoints lw 2 title "weak"
unset multiplot
GP
echo "scaling.sh: wrote $csv and $out/scaling.png"
