"""u-μP metadata on plain ``torch.nn.Parameter`` objects.

The reference library's u-μP optimizers (``unit_scaling.optim``) accept a parameter only when
``unit_scaling.parameter.has_parameter_data`` says yes: ``mup_type`` is one of
``"weight" | "bias" | "norm" | "output"`` and ``mup_scaling_depth`` is ``None`` or an int.
This module writes those two attributes onto an ordinary ``nn.Parameter`` without importing the
reference library. ``nn.Parameter`` forgets instance attributes when deep-copied, so each tagged
parameter also carries its own ``__deepcopy__`` and ``__reduce_ex__`` that keep them (through
``copy.deepcopy``, ``pickle`` and ``torch.save`` / ``torch.load(weights_only=False)``).
"""
from typing import Any, Dict, Optional

import torch
from torch import nn

__all__ = ["MUP_TYPES", "tag_parameter"]

MUP_TYPES = ("weight", "bias", "norm", "output")
_HOOKS = ("__deepcopy__", "__reduce_ex__")


def tag_parameter(
    parameter: nn.Parameter, mup_type: str, mup_scaling_depth: Optional[int] = None
) -> nn.Parameter:
    """Writes u-μP metadata onto ``parameter`` (in place) and returns it."""
    if not isinstance(parameter, nn.Parameter):
        raise TypeError(f"tag_parameter: expected an nn.Parameter, got {type(parameter).__name__}")
    if mup_type not in MUP_TYPES:
        raise ValueError(f"tag_parameter: mup_type must be one of {MUP_TYPES}, got {mup_type!r}")
    if mup_scaling_depth is not None and (
        isinstance(mup_scaling_depth, bool) or not isinstance(mup_scaling_depth, int)
    ):
        raise TypeError(
            f"tag_parameter: mup_scaling_depth must be None or an int, got {mup_scaling_depth!r}"
        )
    parameter.mup_type = mup_type
    parameter.mup_scaling_depth = mup_scaling_depth
    parameter.__deepcopy__ = _deepcopy.__get__(parameter)
    parameter.__reduce_ex__ = _reduce_ex.__get__(parameter)
    return parameter


def _metadata(parameter: nn.Parameter) -> Dict[str, Any]:
    return {k: v for k, v in torch._utils._get_obj_state(parameter).items() if k not in _HOOKS}


def _deepcopy(self: nn.Parameter, memo: Dict[int, Any]) -> nn.Parameter:
    if id(self) in memo:
        return memo[id(self)]
    result = nn.Parameter.__deepcopy__(self, memo)
    for key, value in _metadata(self).items():
        setattr(result, key, value)
    return tag_parameter(result, self.mup_type, self.mup_scaling_depth)


def _reduce_ex(self: nn.Parameter, protocol: int) -> Any:
    # nn.Parameter's own reduction, minus the bound hooks (which do not pickle); _rebuild puts
    # them back.
    return (_rebuild, (self.data, self.requires_grad, _metadata(self)))


def _rebuild(data: torch.Tensor, requires_grad: bool, state: Dict[str, Any]) -> nn.Parameter:
    parameter = nn.Parameter(data, requires_grad)
    for key, value in state.items():
        setattr(parameter, key, value)
    return tag_parameter(parameter, state["mup_type"], state.get("mup_scaling_depth"))
