"""The CUDA index-check policy (C++: include/unit_scaling/index_check_policy.h).

It applies to builds with the CUDA backend (``-DUNIT_SCALING_CUDA=ON``;
:func:`cuda_backend_compiled` says whether this one is). The default build -- the pip package
too -- runs CUDA tensors on the ATen fallback, which reads one status word back and raises
``IndexError`` under either policy. CPU tensors always raise ``IndexError`` for a bad index. In
the CUDA backend the default, ``"device_assert"``, never synchronises the host: a bad index is a
device-side assertion that names the value, its position and the row count (the CUDA context is
unusable afterwards, as after ATen's own assertions), and ``max_norm`` writes nothing.
``"raise"`` is the debugging mode: each operator reads one status word back and raises
``IndexError`` naming the value and its position, with the weight and its version untouched.
The setting is process-wide; the environment variable ``UNIT_SCALING_INDEX_CHECKS`` sets the
initial value.
"""
import contextlib
from typing import Iterator

import torch

from . import _arguments

__all__ = ["cuda_backend_compiled", "get_index_check_policy", "set_index_check_policy",
           "index_check_policy"]

def _checked(policy: object) -> str:
    """A str (the library names the valid ones: ValueError for any other)."""
    _arguments.string("policy", policy, _arguments.prefix("index_check_policy"))
    return policy  # type: ignore[return-value]


def cuda_backend_compiled() -> bool:
    """Whether this build has the CUDA backend (``-DUNIT_SCALING_CUDA=ON``), the only one the
    policy changes.

    Returns:
        True when CUDA tensors run this library's CUDA kernels; False when they run the ATen
        fallback (the default build), which raises ``IndexError`` under either policy.
    """
    return torch.ops.unit_scaling._cuda_backend_compiled()


def get_index_check_policy() -> str:
    """The policy in force.

    Returns:
        ``"device_assert"`` (the default, or ``UNIT_SCALING_INDEX_CHECKS``'s) or ``"raise"``.
    """
    return torch.ops.unit_scaling._index_check_policy()


def set_index_check_policy(policy: str) -> str:
    """Sets the policy for the whole process (every thread), from the next call on.

    Args:
        policy: ``"device_assert"`` or ``"raise"``.

    Returns:
        The previous policy.

    Raises:
        TypeError: ``policy`` is not a str.
        ValueError: ``policy`` is another string.
    """
    return torch.ops.unit_scaling._set_index_check_policy(_checked(policy))


@contextlib.contextmanager
def index_check_policy(policy: str) -> Iterator[None]:
    """A context manager: ``with index_check_policy("raise"): ...`` sets the policy for the
    block, then restores the previous one (process-wide, like the setting).

    Args:
        policy: ``"device_assert"`` or ``"raise"``.

    Raises:
        TypeError, ValueError: as :func:`set_index_check_policy`.
    """
    previous = set_index_check_policy(policy)
    try:
        yield
    finally:
        set_index_check_policy(previous)
