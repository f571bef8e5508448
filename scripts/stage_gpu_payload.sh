#!/usr/bin/env bash
# Stages what scripts/gpu_check.sh needs from a finished build into ONE folder that travels to a
# GPU machine next to the git working tree (which already carries the scripts, the tests, the
# Python package's sources and the bench). It builds nothing: it copies
#   PAYLOAD/libunit_scaling.so.0            the operator library (a plain file, no symlinks)
#   PAYLOAD/tests/cpp/unit_scaling_tests    the GoogleTest suite (gtest is linked statically)
#   PAYLOAD/pydeps/{unit_scaling,docstring_parser}  the reference library and its one dependency
#                                           that GPU images lack (pure Python, no __pycache__)
#   PAYLOAD/MANIFEST                        what was staged: sizes, sha256, the torch release and
#                                           CUDA architectures of the build, the source state
# then checks the size: the payload must stay under LIMIT MiB (default 64), and the payload plus
# the working tree that travels with it under 64 MiB (the device's limit for one call). Over the
# limit it strips debug sections from the ELF files and measures again; still over, it fails.
# Last it prints the exact device `run` invocation.
#
# Usage: scripts/stage_gpu_payload.sh [options] [BUILD_DIR [PAYLOAD_DIR]]
#   BUILD_DIR    a CMake build with the CUDA backend on (default: build), holding
#                libunit_scaling.so.0 and tests/cpp/unit_scaling_tests; build only those with
#                TARGETS='unit_scaling unit_scaling_tests' scripts/build.sh -DUNIT_SCALING_CUDA=ON
#   PAYLOAD_DIR  default build-gpu-payload at the repository root (ignored by git's /build*/, so
#                it travels only when `run` names it in carry)
#   --limit-mib N   the payload's own limit (default 64)
#   --strip         strip debug sections even when the payload fits
#   --allow-no-cuda stage a library without CUDA kernels (gpu_check then needs
#                   UNIT_SCALING_CPP_EXPECT_CUDA_KERNELS=0)
#   --python P      the Python whose site-packages hold unit_scaling and docstring_parser
#                   (default: the project's venv, ~/.cache/unit-scaling-cpp/venv/bin/python)
# Exit status: 0 staged; 1 over the size limit; 2 bad arguments or an incomplete build.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
limit_mib=64
device_limit_mib=64  # the device's limit on everything one call carries (tree + carry)
force_strip=0
allow_no_cuda=0
python=${UNIT_SCALING_VENV:-$HOME/.cache/unit-scaling-cpp/venv}/bin/python
positional=()

die() { echo "stage_gpu_payload: $1" >&2; exit "${2:-2}"; }

while [ $# -gt 0 ]; do
  case $1 in
    --limit-mib) [ $# -ge 2 ] || die "--limit-mib needs a number"; limit_mib=$2; shift 2 ;;
    --limit-mib=*) limit_mib=${1#*=}; shift ;;
    --strip) force_strip=1; shift ;;
    --allow-no-cuda) allow_no_cuda=1; shift ;;
    --python) [ $# -ge 2 ] || die "--python needs a path"; python=$2; shift 2 ;;
    --python=*) python=${1#*=}; shift ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) positional+=("$1"); shift ;;
  esac
done
[ ${#positional[@]} -le 2 ] || die "at most two folders: BUILD_DIR [PAYLOAD_DIR]"
case $limit_mib in '' | *[!0-9]*) die "--limit-mib: not a whole number: '$limit_mib'" ;; esac

build=${positional[0]:-$repo/build}
payload=${positional[1]:-$repo/build-gpu-payload}
build=$(cd "$build" 2>/dev/null && pwd) || die "no build folder ${positional[0]:-$repo/build}"

# --- 1. The build must be complete: this script builds nothing. --------------------------------
library="$build/libunit_scaling.so.0"
gtest="$build/tests/cpp/unit_scaling_tests"
for f in "$library" "$gtest"; do
  [ -f "$f" ] || die "$f is missing: build it first (TARGETS='unit_scaling unit_scaling_tests' \
BUILD_DIR=$build scripts/build.sh -DUNIT_SCALING_CUDA=ON)"
done
is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }
# Our CUDA kernels live in the library's fat binary section (.nv_fatbin).
has_cuda=no
if is_elf "$library" && readelf -S -W "$library" 2>/dev/null | grep -q '\.nv_fatbin'; then
  has_cuda=yes
fi
if [ "$has_cuda" = no ] && [ "$allow_no_cuda" = 0 ]; then
  die "$library holds no CUDA kernels (no .nv_fatbin section): configure with \
-DUNIT_SCALING_CUDA=ON, or pass --allow-no-cuda"
fi

# --- 2. The reference library's pure-Python packages, found through the given Python. ----------
pydeps=$("$python" - <<'EOF' 2>/dev/null
import importlib.util, os
for name in ("unit_scaling", "docstring_parser"):
    spec = importlib.util.find_spec(name)
    print(os.path.dirname(spec.origin) if spec and spec.origin else "MISSING:" + name)
EOF
) || die "cannot run $python (pass --python, or set UNIT_SCALING_VENV)"
if grep -q '^MISSING:' <<<"$pydeps"; then
  die "$python cannot import $(grep '^MISSING:' <<<"$pydeps" | cut -d: -f2 | paste -sd' '): \
install requirements-test.txt (scripts/setup.sh) or pass --python"
fi

# --- 3. Copy into a fresh folder. Only a folder this script made (it has our MANIFEST) or an
# empty one is ever replaced.
if [ -e "$payload" ]; then
  if head -n 1 "$payload/MANIFEST" 2>/dev/null | grep -q '^unit-scaling-cpp gpu payload'; then
    rm -rf "$payload"
  elif [ -d "$payload" ] && [ -z "$(ls -A "$payload")" ]; then
    rmdir "$payload"
  else
    die "$payload exists and is not a payload staged by this script: not replacing it"
  fi
fi
mkdir -p "$payload/tests/cpp" "$payload/pydeps" || die "cannot create $payload"
payload=$(cd "$payload" && pwd)
cp -L "$library" "$payload/libunit_scaling.so.0" || die "copy failed: $library"
cp -L "$gtest" "$payload/tests/cpp/unit_scaling_tests" || die "copy failed: $gtest"
chmod +x "$payload/tests/cpp/unit_scaling_tests"
while read -r dir; do
  cp -r "$dir" "$payload/pydeps/" || die "copy failed: $dir"
done <<<"$pydeps"
find "$payload/pydeps" -name __pycache__ -prune -exec rm -rf {} +

# --- 4. The size check (apparent bytes: what the transfer moves). ------------------------------
bytes_of() { du -sb "$1" | cut -f1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
# The working tree that travels with every call: tracked and untracked-not-ignored files.
tree_bytes=$(cd "$repo" && git ls-files -z -co --exclude-standard 2>/dev/null |
  xargs -0 -r stat -c %s 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
stripped=no
fits() {
  local size
  size=$(bytes_of "$payload")
  [ "$size" -le $((limit_mib * 1048576)) ] &&
    [ $((size + tree_bytes)) -le $((device_limit_mib * 1048576)) ]
}
if [ "$force_strip" = 1 ] || ! fits; then
  echo "stage_gpu_payload: $(mib "$(bytes_of "$payload")") MiB staged; stripping debug sections"
  for f in "$payload/libunit_scaling.so.0" "$payload/tests/cpp/unit_scaling_tests"; do
    if is_elf "$f"; then strip --strip-debug "$f" || die "strip failed on $f" 1; fi
  done
  stripped=yes
fi
size=$(bytes_of "$payload")

# --- 5. The manifest: what was staged, from what. ----------------------------------------------
torch_release=unknown
torch_cmake=$(sed -n 's/^UNIT_SCALING_TORCH_CMAKE_DIR:PATH=//p' "$build/CMakeCache.txt" 2>/dev/null)
if [ -n "$torch_cmake" ] && [ -f "$torch_cmake/TorchConfigVersion.cmake" ]; then
  torch_release=$(sed -n 's/.*set(PACKAGE_VERSION "\([^"]*\)").*/\1/p' \
    "$torch_cmake/TorchConfigVersion.cmake" | head -n 1)
fi
cuda_archs=$(sed -n 's/^\(UNIT_SCALING\|CMAKE\)_CUDA_ARCHITECTURES:[A-Z]*=//p' \
  "$build/CMakeCache.txt" 2>/dev/null | head -n 1)
# A fingerprint of the sources the binaries were built from (their content: the device's copy of
# the tree has no git history), so that gpu_check can warn when the tree it runs in has moved on
# since (a stale payload). gpu_check.sh computes it the same way.
source_state=$(cd "$repo" && find src include tests/cpp cmake CMakeLists.txt -type f \
  ! -name '*.pyc' -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum |
  cut -c1-16)
{
  echo "unit-scaling-cpp gpu payload"
  echo "staged: $(date -u +%Y-%m-%dT%H:%M:%SZ) from $build"
  echo "torch_release: $torch_release"
  echo "cuda_kernels: $has_cuda"
  echo "cuda_architectures: ${cuda_archs:-unknown}"
  echo "source_state: $source_state"
  echo "stripped: $stripped"
  echo "bytes: $size"
  echo "files:"
  (cd "$payload" && find . -type f ! -name MANIFEST -printf '%P\n' | LC_ALL=C sort |
    while read -r f; do echo "  $(stat -c %s "$f") $(sha256sum "$f" | cut -c1-16) $f"; done)
} >"$payload/MANIFEST"
size=$(bytes_of "$payload")

echo "stage_gpu_payload: $payload: $(mib "$size") MiB (limit $limit_mib MiB; stripped: $stripped;" \
  "CUDA kernels: $has_cuda; torch $torch_release); working tree $(mib "$tree_bytes") MiB"
for f in libunit_scaling.so.0 tests/cpp/unit_scaling_tests pydeps; do
  echo "  $(mib "$(bytes_of "$payload/$f")") MiB  $f"
done
if ! fits; then
  echo "stage_gpu_payload: FAILED: $(mib "$size") MiB staged + $(mib "$tree_bytes") MiB of" \
    "working tree is over the limit ($limit_mib MiB for the payload, $device_limit_mib MiB per" \
    "device call)" >&2
  exit 1
fi

# --- 6. How to run it. ----------------------------------------------------------------------------
case $payload in
  "$repo"/*)
    relative=${payload#"$repo"/}
    if ! (cd "$repo" && git check-ignore -q "$relative/MANIFEST"); then
      echo "stage_gpu_payload: note: $relative is not ignored by git: it would travel as part" \
        "of the working tree, not as carry" >&2
    fi
    echo "stage_gpu_payload: on the device (one call, about 6 minutes):"
    echo "  run(command=\"GPU_CHECK_LOGS=\$OUT scripts/gpu_check.sh $relative\"," \
      "carry=[\"$relative\"], timeout_s=420)"
    ;;
  *)
    echo "stage_gpu_payload: note: $payload is outside the repository: the device carries only" \
      "paths inside it (stage into the repository to run it there)"
    ;;
esac
exit 0
