#!/usr/bin/env bash
# Run every libFuzzer target for a bounded time (make fuzz).
#   tests/fuzz/run-fuzz.sh SECONDS_PER_TARGET [target...]
# Seeds come from tests/fuzz/corpus/<name>/ (copied, so the repository is not
# touched); a crash leaves its input in build-fuzz/artifacts/ and fails the run.
# Turn every crash into a regression test in tests/check_*.c.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(ls build-fuzz/ | sed -n 's/^fuzz_\(.*\)$/\1/p'))
mkdir -p build-fuzz/artifacts
status=0
for t in "${targets[@]}"; do
    work=build-fuzz/corpus-$t
    mkdir -p "$work"
    [ -d tests/fuzz/corpus/$t ] && cp -n tests/fuzz/corpus/$t/* "$work"/ 2>/dev/null || true
    echo "fuzz: $t for ${secs}s"
    if ! ASAN_OPTIONS=detect_leaks=1 build-fuzz/fuzz_$t -max_total_time="$secs" -rss_limit_mb=2048 \
            -malloc_limit_mb=1024 -max_len=4096 -print_final_stats=1 \
            -artifact_prefix=build-fuzz/artifacts/$t- "$work" > build-fuzz/$t.log 2>&1; then
        echo "fuzz: $t FAILED: see build-fuzz/$t.log and build-fuzz/artifacts/"; tail -30 build-fuzz/$t.log
        status=1
    else
        grep -E "stat::number_of_executed_units|cov:" build-fuzz/$t.log | tail -2
    fi
done
exit $status
