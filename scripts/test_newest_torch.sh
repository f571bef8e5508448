#!/usr/bin/env bash
# Builds the Python package against the newest supported torch (requirements-torch-newest.txt)
# in a virtualenv of its own and runs the Python test suite there. Not part of .ci/run (it
# downloads and builds a second torch environment: ~5 minutes); run it when torch moves.
#   scripts/test_newest_torch.sh [pytest args]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/setup.sh" >/dev/null  # Debian build tools (cmake, ninja, g++)
venv=${UNIT_SCALING_NEWEST_VENV:-$HOME/.cache/unit-scaling-cpp/venv-torch-newest}
stamp="$venv/.unit-scaling-requirements.sha256"
want=$(cat "$repo/requirements-torch-newest.txt" "$repo/requirements-test.txt" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  [ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$repo/requirements-torch-newest.txt" \
    -r "$repo/requirements-test.txt"
  echo "$want" >"$stamp"
fi
"$venv/bin/python" -c 'import torch; print("torch", torch.__version__)'
# A build folder of its own (pyproject's build-dir is per wheel tag, not per torch).
"$venv/bin/python" -m pip install -q --no-build-isolation --force-reinstall --no-deps \
  -Cbuild-dir="$repo/build/python-torch-newest" "$repo"
cd "$repo"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
