"""Loads the operator library into torch.ops.unit_scaling (torch is imported first, so the
library's LibTorch dependencies are already loaded)."""
import os
from pathlib import Path

import torch


def _find() -> str:
    override = os.environ.get("UNIT_SCALING_CPP_LIBRARY")
    if override:
        return override
    candidates = sorted((Path(__file__).parent / "lib").glob("libunit_scaling*.so*"))
    if not candidates:
        raise ImportError("unit_scaling_cpp: libunit_scaling.so is missing from the package; "
                          "reinstall with `pip install .`")
    return str(candidates[0])


path = _find()
torch.ops.load_library(path)
