#!/usr/bin/env bash
# Idempotent set-up: Debian build tools and the pinned Python environment (torch wheel = LibTorch).
# Safe to run again; it only installs what is missing. Prints the venv path on the last line.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${UNIT_SCALING_VENV:-$HOME/.cache/unit-scaling-cpp/venv}

apt_packages=(cmake ninja-build g++ ccache clang-format gnuplot-nox clang libclang-rt-14-dev python3-dev
  libomp-14-dev libgloo-dev libgtest-dev libgmock-dev libbenchmark-dev)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  sudo_cmd=(); [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >&2
fi

# The venv is shared by every clone; a stamp holding the requirements' hash makes reuse cheap.
stamp="$venv/.unit-scaling-requirements.sha256"
want=$(cat "$repo/requirements.txt" "$repo/requirements-test.txt" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: preparing virtualenv $venv" >&2
  python=${PYTHON:-python3}
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q -r "$repo/requirements.txt" -r "$repo/requirements-test.txt" >&2
  echo "$want" >"$stamp"
fi
echo "$venv"
