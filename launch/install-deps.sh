#!/usr/bin/env bash
# Install the Debian packages alig-train needs to build, run and test.
# Idempotent and fast: when every package is present it only runs dpkg-query.
# Usage: launch/install-deps.sh [--test|--fuzz|--plot]
#   --test adds what `make check` needs, --fuzz what `make fuzz` needs,
#   --plot what launch/plot.sh needs
set -euo pipefail

pkgs=(make gcc pkg-config openmpi-bin libopenmpi-dev libopenblas-dev libhdf5-dev hdf5-tools
      libinih-dev zlib1g-dev dataset-fashion-mnist)
case "${1:-}" in
    --test) pkgs+=(check libsubunit-dev) ;;
    --fuzz) pkgs+=(clang libclang-rt-14-dev) ;;
    --plot) pkgs+=(gnuplot-nox) ;;
esac

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
    fi
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
