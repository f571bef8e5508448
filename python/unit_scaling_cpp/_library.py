"""Loads the operator library into torch.ops.unit_scaling, and the extension ``_C`` (the
functional's fast path, src/python_module.cpp) next to it.

torch is imported first, so the library's LibTorch dependencies are already loaded. LibTorch
has no stable C++ ABI between releases: a library compiled against one torch may crash or miss
symbols under another. So before loading, the torch release recorded at build time
(``_build_info.TORCH_VERSION``) is compared with the running one, and a mismatch is an
``ImportError`` that names both.
"""
import importlib.machinery
import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Optional

import torch


def release(version: str) -> str:
    """'2.11.0+cu130' -> '2.11.0': the release, without the local build tag."""
    return version.split("+", 1)[0]


def check_torch_version(built: str, running: str) -> None:
    if release(built) != release(running):
        raise ImportError(
            f"unit_scaling_cpp was compiled against torch {release(built)}, but torch "
            f"{running} is installed (LibTorch has no stable C++ ABI across releases); rebuild "
            "it against this torch from its source folder with "
            "`pip install --no-build-isolation --force-reinstall .`"
        )


def _find() -> str:
    override = os.environ.get("UNIT_SCALING_CPP_LIBRARY")
    if override:
        return override  # a library built by hand (CMake): the caller vouches for its torch
    from . import _build_info  # type: ignore[attr-defined]  # written by the build

    check_torch_version(_build_info.TORCH_VERSION, torch.__version__)
    candidates = sorted((Path(__file__).parent / "lib").glob("libunit_scaling*.so*"))
    if not candidates:
        raise ImportError(
            "unit_scaling_cpp: libunit_scaling.so is missing from the package; "
            "reinstall with `pip install --no-build-isolation .`"
        )
    return str(candidates[0])


path = _find()
try:
    torch.ops.load_library(path)
except OSError as error:  # e.g. an undefined symbol from a torch built differently
    raise ImportError(f"unit_scaling_cpp: cannot load {path}: {error}") from error


def _load_extension() -> Optional[ModuleType]:
    """``unit_scaling_cpp._C``: in the package (built with it); beside a library given by
    UNIT_SCALING_CPP_LIBRARY (a CMake build puts it there), or None when that build has none."""
    if not os.environ.get("UNIT_SCALING_CPP_LIBRARY"):
        from . import _C  # type: ignore[attr-defined]  # the extension, built with the package
        return _C
    for candidate in sorted(Path(path).parent.glob("_C.*.so")):
        loader = importlib.machinery.ExtensionFileLoader("unit_scaling_cpp._C", str(candidate))
        spec = importlib.util.spec_from_file_location("unit_scaling_cpp._C", candidate,
                                                      loader=loader)
        if spec is not None:
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
            return module
    return None


extension = _load_extension()
