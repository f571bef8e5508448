"""ONNX export: ``torch.onnx.export(model, args, dynamo=True)`` of a model that uses the
unit-scaled embedding gives a standard ONNX graph, the lookup as a ``Gather``.

An exported ONNX graph is an inference graph: it keeps the op's forward, the lookup
``weight[input]`` (and ``max_norm``'s renormalisation, exported as torch exports it for
``torch.nn.functional.embedding``), and drops what only the backward does, the gradient scale
``sqrt(V / N)`` (``token_multiplier`` / ``num_tokens`` with it). So while an ONNX export is
tracing the model, :func:`unit_scaling_cpp.functional.embedding` emits
``torch.nn.functional.embedding`` with the same ``padding_idx`` / ``max_norm`` / ``norm_type``
(``aten.embedding``, which the exporter translates to ``Gather``), after the operator's own
checks of the settings (``_check_embedding``). The index range cannot be checked in a graph
that has no data; ONNX runtimes check ``Gather``'s indices themselves.

Detected with ``torch.onnx.is_in_onnx_export()``, asked only once ``torch.onnx`` is loaded
(``import torch`` does not load it, and nothing can be exporting before it is): plain eager calls
pay one dictionary look-up. Under Dynamo tracing (torch.compile, strict export) the check is
off: the ONNX exporter captures models with non-strict ``torch.export`` first, and a strict
capture keeps the ``unit_scaling`` operators, as torch.compile and ``torch.export`` do.
"""
import sys

import torch
from torch import Tensor

from ._options import Options

__all__ = ["embedding", "exporting"]


def exporting() -> bool:
    """Whether ``torch.onnx.export`` is tracing (``torch.onnx.is_in_onnx_export()``)."""
    if torch.compiler.is_dynamo_compiling():
        return False
    onnx = sys.modules.get("torch.onnx")
    return onnx is not None and onnx.is_in_onnx_export()


def embedding(input: Tensor, weight: Tensor, options: Options) -> Tensor:
    """The forward of ``unit_scaling::embedding`` in standard ATen, for an ONNX graph, after the
    operator's own checks (``_check_embedding``: metadata only, nothing lands in the graph)."""
    options.call(torch.ops.unit_scaling._check_embedding, input, weight)
    return torch.nn.functional.embedding(input, weight, options.padding_idx, options.max_norm,
                                         options.norm_type)
