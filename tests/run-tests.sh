#!/usr/bin/env bash
# Run the Check suites. Called by `make check` / `make sanitize`, which set
#   ALIG_BUILD (build dir with tests/), ALIG_BIN (dir with alig-train), ALIG_SANITIZE=1
# Usage: tests/run-tests.sh [suite]
set -euo pipefail
cd "$(dirname "$0")/.."
export ALIG_BUILD=${ALIG_BUILD:-build} ALIG_BIN=${ALIG_BIN:-bin}
ALIG_TEST_TMP=$(mktemp -d /tmp/alig-tests.XXXXXX)
export ALIG_TEST_TMP
trap 'rm -rf "$ALIG_TEST_TMP"' EXIT
if [ "${ALIG_SANITIZE:-0}" = 1 ]; then
    # Open MPI keeps allocations until exit by design; leak checks stay on for
    # the unit suites (no MPI) and are off for the ranks that mpirun starts.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
"$ALIG_BUILD/tests/check_alig" "$@"  # not exec: the EXIT trap must remove the scratch dir
