#!/usr/bin/env bash
# Run alig-train under mpirun on this machine.
#   launch/run.sh [-np N] CONFIG.ini [alig-train options...]
# Adds what a local run as root needs (--allow-run-as-root) and --oversubscribe
# when N exceeds the cores. On a cluster, call mpirun (or srun) yourself: see
# docs/cluster.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
usage() { # message
    echo "launch/run.sh: $1" >&2
    echo "usage: launch/run.sh [-np N] CONFIG.ini [alig-train options...]" >&2
    exit 2
}
np=2
if [ "${1:-}" = "-np" ]; then
    [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || usage "-np needs a number of ranks >= 1, got '${2:-}'"
    np=$2
    shift 2
fi
[ $# -ge 1 ] || usage "no config file given"
bin=${ALIG_TRAIN:-$here/bin/alig-train}
extra=()
[ "$(id -u)" -eq 0 ] && extra+=(--allow-run-as-root)
[ "$np" -gt "$(nproc)" ] && extra+=(--oversubscribe)
exec mpirun "${extra[@]}" -np "$np" "$bin" "$@"
