#!/usr/bin/env bash
# Run alig-train under mpirun on this machine.
#   launch/run.sh [-np N] CONFIG.ini [alig-train options...]
# Adds what a local run as root needs (--allow-run-as-root) and --oversubscribe
# when N exceeds the cores. On a cluster, call mpirun (or srun) yourself: see
# docs/cluster.md.
#
# Stopping: Ctrl-C, or SIGTERM/SIGINT/SIGUSR1 to this script, is passed to mpirun
# as SIGUSR1, which mpirun forwards to every rank: they write a checkpoint and exit
# 75, and so does this script. (mpirun runs in its own session so a Ctrl-C reaches
# only this script: SIGINT or SIGTERM to mpirun itself ends the job with mpirun's
# exit code 1 even though the ranks checkpoint.) A second signal stops at once.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
usage() { # message
    echo "launch/run.sh: $1" >&2
    echo "usage: launch/run.sh [-np N] CONFIG.ini [alig-train options...]" >&2
    exit 2
}
np=2
if [ "${1:-}" = "-np" ]; then
    [[ "${2:-}" =~ ^[1-9][0-9]{0,8}$ ]] || usage "-np needs a number of ranks in [1, 999999999], got '${2:-}'"
    np=$2
    shift 2
fi
[ $# -ge 1 ] || usage "no config file given"
bin=${ALIG_TRAIN:-$here/bin/alig-train}
extra=()
[ "$(id -u)" -eq 0 ] && extra+=(--allow-run-as-root)
[ "$np" -gt "$(nproc)" ] && extra+=(--oversubscribe)
pid=
# shellcheck disable=SC2317 # called by the trap
forward() { if [ -n "$pid" ]; then kill -USR1 "$pid" 2>/dev/null || true; fi; }
trap forward TERM INT USR1
setsid mpirun "${extra[@]}" -np "$np" "$bin" "$@" </dev/null &
pid=$!
# `wait` returns early when a trapped signal arrives: wait until mpirun is gone
# (a finished but unreaped mpirun still answers kill -0, so its status is not lost)
while :; do
    rc=0
    wait "$pid" || rc=$?
    kill -0 "$pid" 2>/dev/null || break
done
exit "$rc"
