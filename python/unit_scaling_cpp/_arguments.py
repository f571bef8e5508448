"""The Python entry points' argument checks.

Python types first: a wrongly typed option would otherwise reach torch's schema parser and
surface as a ``RuntimeError``; here it is a ``TypeError`` (an integer beyond int64, which the
schema cannot hold, a ``ValueError``), naming the argument. Values are then left to the
operator's own checks, so that Python and C++ raise the same errors with the same words: the
modules run them at construction by calling the operator on meta tensors (no data, no work).
"""
from typing import Any

import torch

_PREFIX = "unit_scaling embedding: "
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _type_name(value: Any) -> str:
    return type(value).__name__


def tensor(name: str, value: Any, prefix: str = _PREFIX) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{prefix}{name} must be a Tensor, got {_type_name(value)} {value!r}")


def integer(name: str, value: Any, optional: bool = False, prefix: str = _PREFIX) -> None:
    """An int (or a symbolic one under torch.compile) that fits int64; None if optional."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, torch.SymInt)):
        raise TypeError(f"{prefix}{name} must be an int{' or None' if optional else ''}, got "
                        f"{_type_name(value)} {value!r}")
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{prefix}{name}={value} does not fit in int64")


def real(name: str, value: Any, optional: bool = False, prefix: str = _PREFIX) -> None:
    """A float or an int (or a symbolic float); None if optional."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.SymFloat,
                                                         torch.SymInt)):
        raise TypeError(f"{prefix}{name} must be a float{' or None' if optional else ''}, got "
                        f"{_type_name(value)} {value!r}")
    if isinstance(value, int):  # the schema's float: an int must convert exactly
        integer(name, value, prefix=prefix)


def boolean(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{_PREFIX}{name} must be a bool, got {_type_name(value)} {value!r}")


def check_scale(op: str, x: Any, scale: Any) -> None:
    """The types of a scale_fwd / scale_bwd call (the operator checks that scale is finite:
    ValueError)."""
    prefix = f"unit_scaling {op}: "
    tensor("x", x, prefix)
    real("scale", scale, prefix=prefix)


def check_call(input: Any, weight: Any, padding_idx: Any, max_norm: Any, norm_type: Any,
               scale_grad_by_freq: Any, sparse: Any, token_multiplier: Any,
               num_tokens: Any) -> None:
    """The types of a functional.embedding call."""
    tensor("input", input)
    tensor("weight", weight)
    integer("padding_idx", padding_idx, optional=True)
    real("max_norm", max_norm, optional=True)
    real("norm_type", norm_type)
    boolean("scale_grad_by_freq", scale_grad_by_freq)
    boolean("sparse", sparse)
    real("token_multiplier", token_multiplier)
    integer("num_tokens", num_tokens, optional=True)


def check_module(num_embeddings: Any, embedding_dim: Any, padding_idx: Any, max_norm: Any,
                 norm_type: Any, scale_grad_by_freq: Any, sparse: Any, token_multiplier: Any,
                 num_tokens: Any) -> None:
    """A module's settings: their types, then the operator's value checks (padding_idx in
    [-V, V), max_norm and norm_type > 0, no scale_grad_by_freq or sparse, the token count)."""
    integer("num_embeddings", num_embeddings)
    integer("embedding_dim", embedding_dim)
    if num_embeddings < 0 or embedding_dim < 0:
        raise ValueError("unit_scaling Embedding: num_embeddings and embedding_dim must be >= 0, "
                         f"got num_embeddings={num_embeddings}, embedding_dim={embedding_dim}")
    table = torch.empty(num_embeddings, 0, device="meta")
    no_lookups = torch.empty(0, dtype=torch.long, device="meta")
    check_call(no_lookups, table, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
               token_multiplier, num_tokens)
    torch.ops.unit_scaling.embedding(no_lookups, table, padding_idx, max_norm, norm_type,
                                     scale_grad_by_freq, sparse,
                                     token_multiplier=token_multiplier, num_tokens=num_tokens)
