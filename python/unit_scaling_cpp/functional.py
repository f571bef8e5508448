"""Functional forms, with the signatures of ``unit_scaling.functional``."""
from typing import Optional

import torch
from torch import Tensor

from torch.compiler import is_dynamo_compiling

from . import _arguments, _func, _library, _onnx
from ._arguments import check_scale
from ._options import Options

__all__ = ["embedding", "scale_fwd", "scale_bwd"]

# The fast path (src/python_module.cpp): plain arguments straight to the operator, without
# torch.ops' parsing; NotImplemented sends the call down the route below.
_fast = _library.extension.embedding if _library.extension is not None else None


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
    """A unit-scaled lookup: ``weight[input]``, whose weight gradient is scaled by
    ``sqrt(V / N)``.

    A drop-in for ``torch.nn.functional.embedding`` (and the reference library's
    ``unit_scaling.functional.embedding``): the forward is the plain lookup; the gradient of
    ``weight`` is the scatter-sum of the output's gradient over the non-padding positions,
    accumulated in float32 (float64 for double), multiplied by ``sqrt(V / N)`` once and rounded
    once, so that it has about unit scale whatever ``V = weight.shape[0]`` and
    ``N = input.numel()``.

    Args:
        input: int64 or int32 indices, any shape; each in ``[0, V)``.
        weight: the table, a 2-D float32, float64, float16 or bfloat16 tensor of shape
            ``(V, D)``, any strides.
        padding_idx: a row whose lookups get no gradient, in ``[-V, V)`` (a negative one counts
            from the end). Default: none.
        max_norm: before the lookup, each distinct referenced row whose ``norm_type``-norm
            exceeds it is rescaled to it, in place in ``weight`` (as documented by torch; the
            reference library renorms a copy). Default: none.
        norm_type: ``p`` of that p-norm, > 0 (``inf`` allowed). Default: 2.
        scale_grad_by_freq: not supported by unit scaling: ``ValueError`` when true.
        sparse: not supported by unit scaling: ``ValueError`` when true.
        token_multiplier: keyword-only, an extension (docs/SCALING.md): the scale counts
            ``N_eff = input.numel() * token_multiplier`` tokens, for data parallelism and
            gradient accumulation. Default: 1.
        num_tokens: keyword-only: the scale counts ``N_eff = num_tokens`` tokens instead.

    Returns:
        ``weight[input]``, of shape ``input.shape + (D,)``, ``weight``'s dtype and device.

    Raises:
        IndexError: an index outside ``[0, V)``, on the CPU and, in the default build, on CUDA;
            a build with the CUDA backend (``-DUNIT_SCALING_CUDA=ON``) gives CUDA tensors a
            device-side assertion instead by default (docs/DEVICES.md).
        ValueError: a bad option value or shape; nothing is written.
        TypeError: a wrongly typed argument, dtype or layout.

    An empty ``input`` gives a zero gradient. Under torch.func transforms the same operators
    run through ``autograd.Function`` classes that functorch transforms (``_func.py``); under
    ``torch.onnx.export`` the lookup is exported as a ``Gather`` (``_onnx.py``).
    """
    if not is_dynamo_compiling() and _fast is not None:
        out = _fast(input, weight, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                    token_multiplier, num_tokens)
        if out is not NotImplemented:
            return out
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

    Args:
        input: any tensor.
        scale: a finite number.

    Returns:
        ``input * scale``, whose gradient is the incoming one.

    Raises:
        TypeError: ``input`` is not a Tensor or ``scale`` not a number.
        ValueError: ``scale`` is not finite.
    """
    check_scale("scale_fwd", input, scale)
    return torch.ops.unit_scaling.scale_fwd(input, scale)


def scale_bwd(input: Tensor, scale: float) -> Tensor:
    """Identity in the forward pass; multiplies the gradient by ``scale``.

    Args:
        input: any tensor.
        scale: a finite number.

    Returns:
        A copy of ``input``, whose gradient is the incoming one times ``scale``.

    Raises:
        TypeError: ``input`` is not a Tensor or ``scale`` not a number.
        ValueError: ``scale`` is not finite.
    """
    check_scale("scale_bwd", input, scale)
    return torch.ops.unit_scaling.scale_bwd(input, scale)
