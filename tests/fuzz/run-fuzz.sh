#!/usr/bin/env bash
# Run every libFuzzer target for a bounded time (make fuzz).
#   tests/fuzz/run-fuzz.sh SECONDS_PER_TARGET [target...]
# The targets are $ALIG_FUZZ_BUILD/fuzz_* (default build-fuzz/). Seeds come from
# tests/fuzz/corpus/<name>/ (copied, so the repository is not touched); a crash
# leaves its input in $ALIG_FUZZ_BUILD/artifacts/ and fails the run.
# Turn every crash into a regression test in tests/check_*.c.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}; shift || true
build=${ALIG_FUZZ_BUILD:-build-fuzz}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in "$build"/fuzz_*; do
        if [ -f "$f" ] && [ -x "$f" ]; then targets+=("${f##*/fuzz_}"); fi
    done
fi
mkdir -p "$build/artifacts"
status=0
for t in "${targets[@]}"; do
    work=$build/corpus-$t
    mkdir -p "$work"
    if [ -d "tests/fuzz/corpus/$t" ]; then
        cp -n "tests/fuzz/corpus/$t"/* "$work"/ 2>/dev/null || true
    fi
    echo "fuzz: $t for ${secs}s"
    if ! ASAN_OPTIONS=detect_leaks=1 "$build/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 \
            -malloc_limit_mb=1024 -max_len=4096 -print_final_stats=1 \
            -artifact_prefix="$build/artifacts/$t-" "$work" > "$build/$t.log" 2>&1; then
        echo "fuzz: $t FAILED: see $build/$t.log and $build/artifacts/"; tail -30 "$build/$t.log"
        status=1
    else
        grep -E "stat::number_of_executed_units|cov:" "$build/$t.log" | tail -2
    fi
done
exit $status
