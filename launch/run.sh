#!/usr/bin/env bash
# Run alig-train under mpirun on this machine.
#   launch/run.sh [-np N] CONFIG.ini [alig-train options...]
# Adds what a local run as root needs (--allow-run-as-root) and --oversubscribe
# when N exceeds the cores. On a cluster, call mpirun (or srun) yourself: see
# docs/cluster.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
np=2
if [ "${1:-}" = "-np" ]; then np=$2; shift 2; fi
bin=${ALIG_TRAIN:-$here/bin/alig-train}
extra=()
[ "$(id -u)" -eq 0 ] && extra+=(--allow-run-as-root)
[ "$np" -gt "$(nproc)" ] && extra+=(--oversubscribe)
exec mpirun "${extra[@]}" -np "$np" "$bin" "$@"
