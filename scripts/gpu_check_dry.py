#!/usr/bin/env python3
"""The stand-ins of `scripts/gpu_check.py --dry-run[=pass|fail|timeout|nogpu]`: no GPU, nothing
timed; their canned results only prove that the check reports what its parts say.

prepare() makes, in a temporary folder, a fake build (an ELF "library" with a .nv_fatbin section
and 2 MiB of debug section; a stand-in GoogleTest binary), stages it with the real staging under
a 1 MiB limit that forces the strip (with a stand-in device_check), and returns a stand-in python:
the real one with a stand-in torch first on its path, except `-m pytest`, which prints canned
results. The bench runs for real with its own --dry-run. The stand-ins run this file:
    gpu_check_dry.py gtest|device_check|python ARGS
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import stage_gpu_payload as staging

FAKE_TORCH = '''"""gpu_check --dry-run's stand-in for torch: what the preflight reads."""
import os
__version__ = "2.11.0+cu130"
class cuda:
    is_available = staticmethod(lambda: os.environ.get("GPU_CHECK_DRY_RUN") != "nogpu")
    get_device_name = staticmethod(lambda: "Dry-run GPU (no device)")
    get_device_capability = staticmethod(lambda: (9, 0))
'''


def standin(path, name, python, **env):
    settings = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items())
    path.write_text(f"#!/bin/sh\n{settings} exec {shlex.quote(python)} "
                    f"{shlex.quote(str(Path(__file__).resolve()))} {name} \"$@\"\n")
    path.chmod(0o755)


def prepare(root, scenario, python):
    """(payload, python) for the scenario, made under root."""
    build = root / "build"
    (build / "tests" / "cpp").mkdir(parents=True)
    (root / "fatbin").write_text("fake\n")
    (root / "debug_pad").write_bytes(bytes(2 << 20))
    elf = os.path.realpath(shutil.which("true") or "/bin/true")
    try:
        subprocess.run(["objcopy", "--add-section", f".nv_fatbin={root / 'fatbin'}",
                        "--add-section", f".debug_pad={root / 'debug_pad'}", elf,
                        str(build / "libunit_scaling.so.0.1.0")], check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        raise staging.StageError(f"the dry run needs binutils (objcopy): {error}") from error
    (build / staging.LIBRARY).symlink_to("libunit_scaling.so.0.1.0")
    standin(build / staging.GTEST, "gtest", python)
    standin(root / "device_check", "device_check", python)
    (root / "torchcmake").mkdir()
    (root / "torchcmake" / "TorchConfigVersion.cmake").write_text('set(PACKAGE_VERSION "2.11.0")\n')
    (build / "CMakeCache.txt").write_text("UNIT_SCALING_CUDA_ARCHITECTURES:STRING=80-real;90\n"
                                          f"UNIT_SCALING_TORCH_CMAKE_DIR:PATH={root}/torchcmake\n")
    # The reference library: the real one where this python has it, else two stand-ins.
    stage_python = python
    if subprocess.run([python, "-c", "import importlib.util as u, sys\nsys.exit(not ("
                       "u.find_spec('unit_scaling') and u.find_spec('docstring_parser')))"],
                      capture_output=True).returncode:
        for package in ("unit_scaling", "docstring_parser"):
            (root / "site" / package).mkdir(parents=True)
            (root / "site" / package / "__init__.py").touch()
        stage_python = str(root / "stage_python")
        site = shlex.quote(str(root / "site"))
        (root / "stage_python").write_text(f"#!/bin/sh\nPYTHONPATH={site} exec "
                                           f"{shlex.quote(python)} \"$@\"\n")
        (root / "stage_python").chmod(0o755)
    payload = staging.stage(build, root / "payload", limit_mib=1, python=stage_python,
                            device_check=root / "device_check")
    manifest = payload / "MANIFEST"
    if "stripped: yes" not in manifest.read_text():
        raise staging.StageError("the payload was not stripped")
    if scenario == "fail":  # and a payload built from other sources: a warning
        manifest.write_text(re.sub(r"(?m)^source_state: .*$", "source_state: 0000000000000000",
                                   manifest.read_text()))
    (root / "faketorch" / "torch").mkdir(parents=True)
    (root / "faketorch" / "torch" / "__init__.py").write_text(FAKE_TORCH)
    standin(root / "python", "python", python, GPU_CHECK_REAL_PYTHON=python,
            GPU_CHECK_FAKE_TORCH=root / "faketorch")
    return payload, str(root / "python")


def gtest(args):
    """Three tests, shard i of n running those with index i mod n (unsharded: all): one passes,
    one passes (fails in the fail scenario), one is skipped; in the timeout scenario shard 1
    hangs."""
    scenario = os.environ["GPU_CHECK_DRY_RUN"]
    print(f"Note: Google Test filter = {args[0].split('=', 1)[1]}")
    if not any(a.startswith("--gtest_filter=*/Cuda*") for a in args):
        print(f"expected a Cuda filter: {args}")
        return 3
    total, index = (int(os.environ.get(k, d)) for k, d in (("GTEST_TOTAL_SHARDS", 1),
                                                            ("GTEST_SHARD_INDEX", 0)))
    mine = [t for i, t in enumerate(("Forward.Rows/Cuda", "Backward.Sums/Cuda_BFloat16",
                                     "LargeSizes.Table/Cuda")) if i % total == index]
    if scenario == "timeout" and index == 1:
        print("[ RUN      ] DeviceAssertion.Backward", flush=True)
        time.sleep(60)
    failed = [t for t in mine if scenario == "fail" and t.startswith("Backward")]
    skipped = [t for t in mine if t.startswith("LargeSizes")]
    print(f"[==========] {len(mine)} tests from 2 test suites ran. (12 ms total)")
    for t in failed:
        print(f"[  FAILED  ] {t} (3 ms)")
    print(f"[  PASSED  ] {len(mine) - len(failed) - len(skipped)} tests.")
    if skipped:
        print(f"[  SKIPPED ] {len(skipped)} test.")
    if failed:
        print(f"[  FAILED  ] 1 test, listed below:\n[  FAILED  ] {failed[0]}")
    return 1 if failed else 0


def device_check(args):
    scenario = os.environ["GPU_CHECK_DRY_RUN"]
    if scenario == "nogpu":
        print("CUDA error no CUDA-capable device is detected at device_check.cu:93")
        return 2
    print("device_check on a stand-in (sm_90), mode default\n")
    print("| dtype | N | V | D | indices | pad | variant | graph us | eager us | vs baseline | "
          "bitwise | repeat | nodes/expected | ws MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("| f32 | 1000 | 50 | 16 | zipf | 3 | baseline | - | - | - | yes | yes | 3/3 | 0.01 |")
    for n, dist, us in ((8192, "uniform", 69.0), (8192, "zipf", 121.0), (65536, "uniform", 140.0)):
        for variant, ratio in (("baseline", 1.0), ("hot_rows", 0.8)):
            same = "NO" if scenario == "fail" and dist == "zipf" else "yes"
            print(f"| bf16 | {n} | 50257 | 768 | {dist} | -1 | {variant} | {us * ratio:.1f} | "
                  f"{us * ratio * 1.1:.1f} | {ratio:.2f}x | {same} | yes | 4/4 | 0.84 |")
    print("renorm f32  1000x70 p=2: 0 elements differ from the CPU")
    failures = int(scenario == "fail")
    print(f"{'FAILED' if failures else 'PASSED'}: {failures} failures")
    return failures


def python(args):
    """Canned pytest results per part and scenario; anything else: the real python, with the
    stand-in torch first on its path."""
    if args[:2] != ["-m", "pytest"]:
        real = os.environ["GPU_CHECK_REAL_PYTHON"]
        path = [os.environ["GPU_CHECK_FAKE_TORCH"], os.environ.get("PYTHONPATH", "")]
        os.execve(real, [real, *args], {**os.environ, "PYTHONPATH": ":".join(filter(None, path))})
    part, scenario = os.environ["GPU_CHECK_PART"], os.environ["GPU_CHECK_DRY_RUN"]
    planned = int(os.environ.get("GPU_CHECK_PLANNED", 42))
    print(f"fake pytest ({part}): {shlex.join(args)}")
    print("tests/python/test_oracle.py::test_forward[cuda] PASSED", flush=True)
    if (scenario, part) == ("timeout", "python"):
        time.sleep(60)
    if (scenario, part) == ("fail", "python"):
        print("FAILED tests/python/test_oracle.py::test_forward[cuda] - AssertionError")
        print(f"===== 1 failed, {planned - 1} passed, 350 deselected in 9.10s =====")
        return 1
    print(f"===== {planned} passed, 350 deselected in 8.20s =====")
    return 0


if __name__ == "__main__":
    sys.exit({"gtest": gtest, "device_check": device_check, "python": python}[sys.argv[1]](
        sys.argv[2:]))
