#!/usr/bin/env bash
# Run alig-train under mpirun until training is done, restarting it from the
# newest checkpoint after a preemption (exit 75) or a crash.
#
#   launch/run-until-done.sh [-np N] [--max-restarts R] CONFIG.ini [alig-train options...]
#
# What each exit status of alig-train (docs/checkpoint-format.md) leads to:
#   0            training finished: exit 0
#   75           stopped by a signal after writing a checkpoint: restart at once
#   2 3 4 5 6    config, data, checkpoint, numerical or memory error: a restart
#                would fail the same way, so exit with that status
#   anything else (1, a rank killed, mpirun failing): restart after a pause, at
#                most R times (default 10) in a row without reaching exit 75 or 0
# The first attempt passes the options as given (e.g. --resume PATH to start
# from another run's checkpoint); every restart adds --resume auto, so it
# continues from the newest valid checkpoint of this run.
#
# Stop gracefully with `kill -TERM <pid of this script>` (or -INT, -USR1): the
# script sends SIGUSR1 to mpirun, which forwards it to every rank; the ranks
# agree at the next step, write a checkpoint and exit 75, and so does this
# script, without restarting. (SIGTERM to mpirun itself would kill the ranks
# before they checkpoint; so would Ctrl-C in a terminal, which reaches mpirun
# directly.) A stop request during the pause before a restart ends the script at
# once with the failed attempt's status.
#
# Environment: ALIG_TRAIN (default bin/alig-train), MPIRUN (default mpirun).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
np=2
max_restarts=10
usage() { # message
    echo "launch/run-until-done.sh: $1" >&2
    echo "usage: launch/run-until-done.sh [-np N] [--max-restarts R] CONFIG.ini [alig-train options...]" >&2
    sed -n '7,13p' "$0" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    -np)
        [[ "${2:-}" =~ ^[1-9][0-9]{0,8}$ ]] || usage "-np needs a number of ranks in [1, 999999999], got '${2:-}'"
        np=$2; shift 2 ;;
    --max-restarts)
        [[ "${2:-}" =~ ^[0-9]+$ ]] || usage "--max-restarts needs a number >= 0, got '${2:-}'"
        max_restarts=$2; shift 2 ;;
    *) break ;;
    esac
done
[ $# -ge 1 ] || usage "no config file given"
bin=${ALIG_TRAIN:-$here/bin/alig-train}
extra=()
[ "$(id -u)" -eq 0 ] && extra+=(--allow-run-as-root)
[ "$np" -gt "$(nproc)" ] && extra+=(--oversubscribe)

pid=
stopping=0
forward() {
    stopping=1
    [ -n "$pid" ] && kill -USR1 "$pid" 2>/dev/null
}
trap forward TERM INT USR1

attempt=0
failures=0
resume=()
while :; do
    attempt=$((attempt + 1))
    echo "run-until-done: attempt $attempt: ${MPIRUN:-mpirun} -np $np $bin $* ${resume[*]}" >&2
    ${MPIRUN:-mpirun} "${extra[@]}" -np "$np" "$bin" "$@" "${resume[@]}" </dev/null &
    pid=$!
    # `wait` returns early when a trapped signal arrives: wait until mpirun is gone
    while :; do
        wait "$pid"
        rc=$?
        kill -0 "$pid" 2>/dev/null || break
    done
    pid=
    case $rc in
    0)
        echo "run-until-done: training finished after $attempt attempt(s)" >&2
        exit 0
        ;;
    75)
        echo "run-until-done: attempt $attempt: exit 75 (preempted; checkpoint written)" >&2
        [ "$stopping" = 1 ] && exit 75
        failures=0
        ;;
    2 | 3 | 4 | 5 | 6)
        echo "run-until-done: attempt $attempt: exit $rc; not restarting (see the error above)" >&2
        exit "$rc"
        ;;
    *)
        [ "$stopping" = 1 ] && exit "$rc"
        failures=$((failures + 1))
        if [ "$failures" -gt "$max_restarts" ]; then
            echo "run-until-done: $failures failures in a row (exit $rc); giving up" >&2
            exit "$rc"
        fi
        pause=$((failures < 6 ? 1 << failures : 60))
        echo "run-until-done: attempt $attempt: exit $rc (crash?); restarting in $pause s" >&2
        # in the background: a stop request must end the pause, not wait it out
        sleep "$pause" &
        wait $! 2>/dev/null
        kill $! 2>/dev/null
        ;;
    esac
    if [ "$stopping" = 1 ]; then
        echo "run-until-done: stop requested while waiting to restart; not restarting (exit $rc" \
            "of attempt $attempt)" >&2
        exit "$rc"
    fi
    resume=(--resume auto)
done
