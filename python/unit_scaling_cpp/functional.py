"""Functional forms, with the signatures of ``unit_scaling.functional``."""
from typing import Optional

import torch
from torch import Tensor

from . import _arguments, _func, _onnx
from ._arguments import check_scale
from ._options import Options

__all__ = ["embedding", "scale_fwd", "scale_bwd"]


def embedding(
    input: Tensor,
    weight: Tensor,
    padding_idx: Optional[int] = None,
    max_norm: Optional[float] = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
    *,
    token_multiplier: float = 1.0,
    num_tokens: Optional[int] = None,
) -> Tensor:
    """A unit-scaled lookup: ``weight[input]``, with a weight gradient scaled by ``sqrt(V/N)``.

    Same arguments as ``torch.nn.functional.embedding`` (``scale_grad_by_freq`` and ``sparse``
    are not supported by unit scaling and raise ``ValueError``). Differences from the reference
    library: ``max_norm`` renormalises ``weight`` in place (as documented), an empty ``input``
    gives a zero gradient, the gradient is accumulated in float32, and every argument and index
    is checked before anything is written (``IndexError`` / ``ValueError`` / ``TypeError``, a
    wrongly typed option included).

    ``token_multiplier`` / ``num_tokens`` (keyword-only, an extension beyond the reference
    library, see docs/SCALING.md): the token count of the scale, ``sqrt(V / N_eff)`` with
    ``N_eff = num_tokens`` or ``input.numel() * token_multiplier``, for data parallelism and
    gradient accumulation. The default is the specification's ``N = input.numel()``.

    Under torch.func transforms (``vmap``, ``grad``, ``vjp``, ``jvp``, ``jacrev``, ``jacfwd``,
    ``hessian``, ``functional_call`` ensembles) the same computation runs through
    ``autograd.Function`` classes that functorch can transform (``_func.py``; docs/API.md,
    "torch.func and ONNX"). Under ``torch.onnx.export`` the lookup is exported as a standard
    ``Gather`` (the gradient scale has no place in an inference graph, ``_onnx.py``).
    """
    options = Options(padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                      token_multiplier, num_tokens)
    _arguments.tensor("input", input)
    _arguments.tensor("weight", weight)
    options.check_types()
    if _func.transforms_active():
        return _func.embedding(input, weight, options)
    if _onnx.exporting():
        return _onnx.embedding(input, weight, options)
    return options.call(torch.ops.unit_scaling.embedding, input, weight)


_func.register()


def scale_fwd(input: Tensor, scale: float) -> Tensor:
    """Multiplies by ``scale`` in the forward pass only; the gradient passes unchanged.
    ``TypeError`` unless ``input`` is a Tensor and ``scale`` a number; ``ValueError`` unless
    ``scale`` is finite."""
    check_scale("scale_fwd", input, scale)
    return torch.ops.unit_scaling.scale_fwd(input, scale)


def scale_bwd(input: Tensor, scale: float) -> Tensor:
    """Identity in the forward pass; multiplies the gradient by ``scale``. ``TypeError`` unless
    ``input`` is a Tensor and ``scale`` a number; ``ValueError`` unless ``scale`` is finite."""
    check_scale("scale_bwd", input, scale)
    return torch.ops.unit_scaling.scale_bwd(input, scale)
