"""unit_scaling_cpp: unit-scaled embedding from the unit-scaling-cpp C++ library.

A drop-in for the reference library's ``unit_scaling.functional.embedding`` and
``unit_scaling.Embedding``: the weight gradient is multiplied by ``sqrt(V / N)``, summed in
float32 and rounded once; ``max_norm`` renorms the caller's weight in place; errors are atomic.
The operators are also reachable as ``torch.ops.unit_scaling.*`` (TorchScript, torch.compile),
and accept DTensors (tensor and sequence parallelism, ``_dtensor.py``); the module's u-μP tags
survive FSDP2, parallelize_module and every parameter swap (``_parameter.py``). A bad index is
an ``IndexError``, except on CUDA in a build with the CUDA backend (``-DUNIT_SCALING_CUDA=ON``;
the default build runs CUDA tensors on the ATen fallback, which raises ``IndexError`` under
either policy), where it is a device-side assertion unless the ``"raise"`` index-check policy is
chosen (``_index_checks.py``).
"""
from . import _library  # noqa: F401  (registers torch.ops.unit_scaling)
from . import _dtensor_import
from . import functional
from ._index_checks import (cuda_backend_compiled, get_index_check_policy, index_check_policy,
                            set_index_check_policy)
from .functional import scale_bwd, scale_fwd
from ._replace import replace_embeddings
from .modules import Embedding

__all__ = [
    "Embedding", "functional", "scale_bwd", "scale_fwd", "library_path", "get_index_check_policy",
    "set_index_check_policy", "index_check_policy", "cuda_backend_compiled", "replace_embeddings",
]
library_path = _library.path
_dtensor_import.enable()  # DTensor rules: tensor / sequence parallelism (see _dtensor.py)
