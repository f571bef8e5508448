#!/usr/bin/env python3
"""Stages what scripts/gpu_check.py needs from a finished build into ONE folder that travels to a
GPU machine beside the git working tree (which carries the scripts, the tests, the Python
package's sources and the bench):

  PAYLOAD/device_check                    the LibTorch-free kernel check, built here with nvcc
                                          (sm_90) by the command in the header of
                                          tests/cuda_build/device_check.cu (kept, and rebuilt
                                          only when its sources change, in build-kernels/); the
                                          GPU check runs it first, before anything that needs
                                          the library; skipped with a warning without nvcc
  PAYLOAD/libunit_scaling.so.0            the operator library (a plain file, no symlinks)
  PAYLOAD/tests/cpp/unit_scaling_tests    the GoogleTest suite (gtest linked statically)
  PAYLOAD/pydeps/{unit_scaling,docstring_parser}  the reference library and its dependency
                                          (pure Python: GPU images lack them)
  PAYLOAD/MANIFEST                        sizes, sha256, the torch release and CUDA
                                          architectures of the build, a fingerprint of the sources

then checks the size: the payload under LIMIT MiB (default 64), and the payload plus the working
tree under 64 MiB (the device's limit for one call); over it, it strips the ELF files' debug
sections and measures again; still over, it fails. Last it prints the device `run` call.

Usage: scripts/stage_gpu_payload.py [options] [BUILD_DIR [PAYLOAD_DIR]]
  BUILD_DIR    a CMake build with the CUDA backend on (default: build) holding
               libunit_scaling.so.0 and tests/cpp/unit_scaling_tests; build only those with
               TARGETS='unit_scaling unit_scaling_tests' scripts/build.sh -DUNIT_SCALING_CUDA=ON
  PAYLOAD_DIR  default build-gpu-payload at the repository root (ignored by git's /build*/, so it
               travels only when `run` names it in carry)
  --limit-mib N          the payload's own limit (default 64)
  --strip                strip debug sections even when the payload fits
  --allow-no-cuda        stage a library without CUDA kernels (the check then needs
                         UNIT_SCALING_CPP_EXPECT_CUDA_KERNELS=0)
  --python P             the Python whose site-packages hold unit_scaling and docstring_parser
                         (default: the project's venv, ~/.cache/unit-scaling-cpp/venv/bin/python)
  --device-check FILE    stage this device_check instead of building one
  --no-device-check      stage none (the check then has no fallback)
Environment: NVCC (default: nvcc on PATH).
Exit status: 0 staged; 1 over the size limit; 2 bad arguments, an incomplete build or a failed
device_check build.
"""
import argparse
import glob
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEVICE_LIMIT_MIB = 64  # everything one device call carries: working tree + carry
HEADER = "unit-scaling-cpp gpu payload"
DEVICE_CHECK_SOURCE = "tests/cuda_build/device_check.cu"
DEVICE_CHECK_BUILD = REPO / "build-kernels" / "device_check"
LIBRARY, GTEST = "libunit_scaling.so.0", "tests/cpp/unit_scaling_tests"
DEVICE_CHECK = "device_check"
# What the binaries are built from: its fingerprint tells a stale payload (the device's copy of
# the tree has no git history, so contents, not commits).
SOURCES = ("src", "include", "tests/cpp", "tests/cuda_build", "cmake", "CMakeLists.txt")


class StageError(Exception):
    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


def source_state(repo=REPO):
    digest = hashlib.sha256()
    files = []
    for top in SOURCES:
        path = repo / top
        files += [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    for f in sorted(files, key=lambda f: f.relative_to(repo).as_posix()):
        if f.suffix != ".pyc":
            digest.update(f"{f.relative_to(repo).as_posix()}\0".encode() + f.read_bytes())
    return digest.hexdigest()[:16]


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def has_cuda_kernels(library):
    """Our kernels live in the library's fat binary section (.nv_fatbin)."""
    sections = subprocess.run(["readelf", "-S", "-W", str(library)], capture_output=True,
                              text=True).stdout
    return is_elf(library) and ".nv_fatbin" in sections


def device_check_command(out, repo=REPO):
    """The nvcc command of device_check.cu's header comment (a line starting `nvcc`, continued
    on the lines indented deeper), its globs expanded and its output set to `out`."""
    header = []
    for line in (repo / DEVICE_CHECK_SOURCE).read_text().splitlines():
        if not line.startswith("//"):
            break
        header.append(line[2:])
    first = next((i for i, line in enumerate(header) if line.lstrip().startswith("nvcc ")), None)
    if first is None:
        raise StageError(f"{DEVICE_CHECK_SOURCE}: no `nvcc ...` build command in its header")
    indent = len(header[first]) - len(header[first].lstrip())
    words = header[first].split()
    for line in header[first + 1:]:
        if len(line) - len(line.lstrip()) <= indent:
            break
        words += line.split()
    command = []
    for word in words:
        matches = sorted(glob.glob(word, root_dir=repo)) if "*" in word else [word]
        command += matches
    if "-o" in command:
        command[command.index("-o") + 1] = str(out)
    else:
        command += ["-o", str(out)]
    command[0] = os.environ.get("NVCC", "nvcc")
    return command


def build_device_check(repo=REPO):
    """build-kernels/device_check, rebuilt when a source is newer; None (with the reason) when
    there is no nvcc here."""
    command = device_check_command(DEVICE_CHECK_BUILD, repo)
    if shutil.which(command[0]) is None:
        return None, f"no {command[0]} here"
    inputs = [repo / w for w in command[1:] if (repo / w).is_file()]
    inputs += [f for f in (repo / "src" / "kernels").rglob("*") if f.is_file()]
    newest = max(f.stat().st_mtime for f in inputs)
    if DEVICE_CHECK_BUILD.is_file() and DEVICE_CHECK_BUILD.stat().st_mtime >= newest:
        return DEVICE_CHECK_BUILD, "built earlier, up to date"
    DEVICE_CHECK_BUILD.parent.mkdir(parents=True, exist_ok=True)
    print(f"stage_gpu_payload: building device_check (about a minute on 2 cores):\n  "
          f"{shlex.join(command)}", flush=True)
    started = time.monotonic()
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        raise StageError(f"building device_check failed:\n{result.stdout}{result.stderr}")
    return DEVICE_CHECK_BUILD, f"built in {time.monotonic() - started:.0f} s"


def reference_packages(python):
    code = ("import importlib.util, os\nfor n in ('unit_scaling', 'docstring_parser'):\n"
            "    s = importlib.util.find_spec(n)\n"
            "    print(os.path.dirname(s.origin) if s and s.origin else 'MISSING:' + n)\n")
    try:
        lines = subprocess.run([python, "-c", code], capture_output=True, text=True,
                               check=True, timeout=120).stdout.split()
    except (OSError, subprocess.SubprocessError) as error:
        raise StageError(f"cannot run {python} ({error}): pass --python") from error
    missing = [line.split(":", 1)[1] for line in lines if line.startswith("MISSING:")]
    if missing:
        raise StageError(f"{python} cannot import {' '.join(missing)}: install "
                         "requirements-test.txt (scripts/setup.sh) or pass --python")
    return [Path(line) for line in lines]


def tree_bytes(repo=REPO):
    """The working tree that travels with every call: tracked and untracked-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=repo,
                            capture_output=True).stdout.decode().split("\0")
    return sum(os.lstat(repo / f).st_size for f in listed if f and os.path.lexists(repo / f))


def payload_bytes(payload):
    return sum(f.stat().st_size for f in payload.rglob("*") if f.is_file())


def mib(size):
    return f"{size / 1048576:.1f} MiB"


def build_value(build, pattern):
    """A value from the build's CMakeCache.txt."""
    cache = build / "CMakeCache.txt"
    for line in cache.read_text().splitlines() if cache.is_file() else []:
        for prefix in pattern:
            if line.startswith(prefix):
                return line.split("=", 1)[1]
    return None


def stage(build, payload, limit_mib=64, force_strip=False, allow_no_cuda=False,
          python=None, device_check=None):
    """Stages the payload; device_check: a file to copy, False for none, None to build one."""
    build = Path(build).resolve()
    if not build.is_dir():
        raise StageError(f"no build folder {build}")
    library, gtest = build / LIBRARY, build / GTEST
    for f in (library, gtest):
        if not f.is_file():
            raise StageError(f"{f} is missing: build it first (TARGETS='unit_scaling "
                             f"unit_scaling_tests' BUILD_DIR={build} scripts/build.sh "
                             "-DUNIT_SCALING_CUDA=ON)")
    cuda = has_cuda_kernels(library)
    if not cuda and not allow_no_cuda:
        raise StageError(f"{library} holds no CUDA kernels (no .nv_fatbin section): configure "
                         "with -DUNIT_SCALING_CUDA=ON, or pass --allow-no-cuda")
    pydeps = reference_packages(python or sys.executable)
    if device_check is None:
        device_check, how = build_device_check()
        if device_check is None:
            print(f"stage_gpu_payload: WARNING: device_check not staged ({how}): the GPU check "
                  "will have no fallback if the library fails to load", file=sys.stderr)
    else:
        how = "given" if device_check else "--no-device-check"

    # Only a folder this script made (it has our MANIFEST) or an empty one is ever replaced.
    payload = Path(payload).absolute()
    if payload.exists():
        manifest = payload / "MANIFEST"
        if manifest.is_file() and manifest.read_text().startswith(HEADER):
            shutil.rmtree(payload)
        elif payload.is_dir() and not any(payload.iterdir()):
            payload.rmdir()
        else:
            raise StageError(f"{payload} exists and is not a payload staged by this script: "
                             "not replacing it")
    (payload / "tests" / "cpp").mkdir(parents=True)
    shutil.copy2(library, payload / LIBRARY)  # follows the symlink
    shutil.copy2(gtest, payload / GTEST)
    if device_check:
        shutil.copy2(device_check, payload / DEVICE_CHECK)
    for package in pydeps:
        shutil.copytree(package, payload / "pydeps" / package.name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    tree = tree_bytes()
    limit = limit_mib * 1048576

    def fits():
        size = payload_bytes(payload)
        return size <= limit and size + tree <= DEVICE_LIMIT_MIB * 1048576

    stripped = force_strip or not fits()
    if stripped:
        print(f"stage_gpu_payload: {mib(payload_bytes(payload))} staged; stripping debug sections")
        for name in (LIBRARY, GTEST, DEVICE_CHECK):
            if (payload / name).is_file() and is_elf(payload / name):
                if subprocess.run(["strip", "--strip-debug", str(payload / name)]).returncode:
                    raise StageError(f"strip failed on {payload / name}", 1)

    torch_release = "unknown"
    torch_cmake = build_value(build, ["UNIT_SCALING_TORCH_CMAKE_DIR:PATH="])
    version_file = Path(torch_cmake or "/nonexistent") / "TorchConfigVersion.cmake"
    if version_file.is_file():
        for line in version_file.read_text().splitlines():
            if line.strip().startswith('set(PACKAGE_VERSION "'):
                torch_release = line.split('"')[1]
                break
    archs = build_value(build, ["UNIT_SCALING_CUDA_ARCHITECTURES:", "CMAKE_CUDA_ARCHITECTURES:"])
    files = sorted(f for f in payload.rglob("*") if f.is_file())
    lines = [HEADER, f"staged: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} from {build}",
             f"torch_release: {torch_release}", f"cuda_kernels: {'yes' if cuda else 'no'}",
             f"cuda_architectures: {archs or 'unknown'}",
             f"device_check: {'yes' if device_check else 'no'} ({how})",
             f"source_state: {source_state()}", f"stripped: {'yes' if stripped else 'no'}",
             f"bytes: {payload_bytes(payload)}", "files:"]
    lines += [f"  {f.stat().st_size} {hashlib.sha256(f.read_bytes()).hexdigest()[:16]} "
              f"{f.relative_to(payload).as_posix()}" for f in files]
    (payload / "MANIFEST").write_text("\n".join(lines) + "\n")

    size = payload_bytes(payload)
    print(f"stage_gpu_payload: {payload}: {mib(size)} (limit {limit_mib} MiB; stripped: "
          f"{'yes' if stripped else 'no'}; CUDA kernels: {'yes' if cuda else 'no'}; "
          f"device_check: {'yes' if device_check else 'no'}, {how}; torch {torch_release}); "
          f"working tree {mib(tree)}")
    for name in (DEVICE_CHECK, LIBRARY, GTEST, "pydeps"):
        path = payload / name
        if path.exists():
            print(f"  {mib(payload_bytes(path) if path.is_dir() else path.stat().st_size)}  {name}")
    if not fits():
        raise StageError(f"FAILED: {mib(size)} staged + {mib(tree)} of working tree is over the "
                         f"limit ({limit_mib} MiB for the payload, {DEVICE_LIMIT_MIB} MiB per "
                         "device call)", 1)
    return payload


def main(argv=None):
    parser = argparse.ArgumentParser(usage=__doc__.split("Usage: ")[1].split("\n")[0])
    parser.format_help = lambda: __doc__
    parser.add_argument("folders", nargs="*")
    parser.add_argument("--limit-mib", type=int, default=64)
    parser.add_argument("--strip", action="store_true")
    parser.add_argument("--allow-no-cuda", action="store_true")
    parser.add_argument("--python", default=os.path.join(os.environ.get(
        "UNIT_SCALING_VENV", os.path.expanduser("~/.cache/unit-scaling-cpp/venv")), "bin",
        "python"))
    parser.add_argument("--device-check", type=Path)
    parser.add_argument("--no-device-check", action="store_true")
    args = parser.parse_args(argv)
    if len(args.folders) > 2:
        parser.error("at most two folders: BUILD_DIR [PAYLOAD_DIR]")
    build = args.folders[0] if args.folders else REPO / "build"
    payload = args.folders[1] if len(args.folders) > 1 else REPO / "build-gpu-payload"
    device_check = False if args.no_device_check else args.device_check
    try:
        payload = stage(build, payload, args.limit_mib, args.strip, args.allow_no_cuda,
                        args.python, device_check)
    except StageError as error:
        print(f"stage_gpu_payload: {error}", file=sys.stderr)
        return error.status
    if not payload.is_relative_to(REPO):
        print(f"stage_gpu_payload: note: {payload} is outside the repository: the device carries "
              "only paths inside it (stage into the repository to run it there)")
        return 0
    relative = payload.relative_to(REPO).as_posix()
    if subprocess.run(["git", "check-ignore", "-q", f"{relative}/MANIFEST"], cwd=REPO).returncode:
        print(f"stage_gpu_payload: note: {relative} is not ignored by git: it would travel as "
              "part of the working tree, not as carry", file=sys.stderr)
    print(f"stage_gpu_payload: on the device, the first call (ends inside 8 minutes; it "
          f"prints the optional second call last):\n  run(command=\"python3 scripts/gpu_check.py "
          f"--logs $OUT {relative}\", carry=[\"{relative}\"], timeout_s=480)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
