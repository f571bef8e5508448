"""The Python types of the arguments: what an operator's schema cannot express.

torch's schema parser turns a wrongly typed value into a ``RuntimeError`` or, worse, converts it
silently (``sparse=None`` reads as ``False``, ``padding_idx=True`` as ``1``); here it is a
``TypeError`` naming the argument (an integer beyond int64, which the schema cannot hold, a
``ValueError``). The values themselves are left to the library's C++ checks -- the operators,
and for the modules ``_check_module_options`` / ``_check_pretrained`` -- so that Python and C++
raise the same errors with the same words. Every message starts with the library's own prefix
(``_message_prefix``).
"""
from typing import Any

import torch

from . import _library  # noqa: F401  (registers torch.ops.unit_scaling)

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ops = torch.ops.unit_scaling
PREFIX = _ops._message_prefix("embedding")


def prefix(subject: str) -> str:
    """The library's message prefix for ``subject`` ("embedding", "scale_fwd", ...)."""
    return _ops._message_prefix(subject)


def _type_name(value: Any) -> str:
    return type(value).__name__


def tensor(name: str, value: Any, prefix: str = PREFIX) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{prefix}{name} must be a Tensor, got {_type_name(value)} {value!r}")


def integer(name: str, value: Any, optional: bool = False, prefix: str = PREFIX) -> None:
    """An int (or a symbolic one under torch.compile) that fits int64; None if optional."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, torch.SymInt)):
        raise TypeError(f"{prefix}{name} must be an int{' or None' if optional else ''}, got "
                        f"{_type_name(value)} {value!r}")
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{prefix}{name}={value} does not fit in int64")


def real(name: str, value: Any, optional: bool = False, prefix: str = PREFIX) -> None:
    """A float or an int (or a symbolic float); None if optional."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.SymFloat,
                                                         torch.SymInt)):
        raise TypeError(f"{prefix}{name} must be a float{' or None' if optional else ''}, got "
                        f"{_type_name(value)} {value!r}")
    if isinstance(value, int):  # the schema's float: an int must convert exactly
        integer(name, value, prefix=prefix)


def boolean(name: str, value: Any, prefix: str = PREFIX) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{prefix}{name} must be a bool, got {_type_name(value)} {value!r}")


def string(name: str, value: Any, prefix: str = PREFIX) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{prefix}{name} must be a str, got {_type_name(value)} {value!r}")


def check_scale(op: str, x: Any, scale: Any) -> None:
    """The types of a scale_fwd / scale_bwd call (the operator checks that scale is finite:
    ValueError)."""
    subject = prefix(op)
    tensor("x", x, subject)
    real("scale", scale, prefix=subject)
