"""The CUDA index-check policy (C++: include/unit_scaling/index_check_policy.h).

CPU tensors always raise ``IndexError`` for a bad index. On CUDA the default,
``"device_assert"``, never synchronises the host: a bad index is a device-side assertion that
names the value, its position and the row count (the CUDA context is unusable afterwards, as
after ATen's own assertions), and ``max_norm`` writes nothing. ``"raise"`` is the debugging
mode: each operator reads one status word back and raises ``IndexError`` naming the value and
its position, with the weight and its version untouched. The setting is process-wide; the
environment variable ``UNIT_SCALING_INDEX_CHECKS`` sets the initial value.
"""
import contextlib
from typing import Iterator

import torch

from . import _arguments

__all__ = ["get_index_check_policy", "set_index_check_policy", "index_check_policy"]

def _checked(policy: object) -> str:
    """A str (the library names the valid ones: ValueError for any other)."""
    _arguments.string("policy", policy, _arguments.prefix("index_check_policy"))
    return policy  # type: ignore[return-value]


def get_index_check_policy() -> str:
    """The policy in force: ``"device_assert"`` (default) or ``"raise"``."""
    return torch.ops.unit_scaling._index_check_policy()


def set_index_check_policy(policy: str) -> str:
    """Sets the policy for the whole process; returns the previous one."""
    return torch.ops.unit_scaling._set_index_check_policy(_checked(policy))


@contextlib.contextmanager
def index_check_policy(policy: str) -> Iterator[None]:
    """``with index_check_policy("raise"): ...`` sets the policy for the block, then restores
    the previous one (process-wide, like the setting)."""
    previous = set_index_check_policy(policy)
    try:
        yield
    finally:
        set_index_check_policy(previous)
