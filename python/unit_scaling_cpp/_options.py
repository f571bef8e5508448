"""The options of one embedding call as one value: the Python mirror of ``src/call_options.h``.

The operators ``embedding``, ``embedding_lookup``, ``embedding_backward``,
``_embedding_double_backward``, ``_check_embedding`` and the vocab-shard lookup and backward end
their schemas with the same block -- torch's embedding arguments and the token count -- and
each validates all of it. Python carries the block as one :class:`Options` from the public
entry points to the operator call (:meth:`Options.call`), and the routes that receive an
operator's arguments (vmap and DTensor rules) rebuild it with ``Options(*args, **kwargs)``
(positional values in schema order, then keywords) and pass it on unchanged: no Python code
reads a rule out of it. What a schema cannot express, the Python type of each value (a
``TypeError`` instead of a ``RuntimeError`` or a silent conversion), is
:meth:`Options.check_types`.
"""
from dataclasses import dataclass
from typing import Any, Optional

from . import _arguments


# Frozen, and a plain class rather than a NamedTuple: torch.utils._pytree would flatten a
# NamedTuple into its fields, which autograd.Function's generated vmap rules then mis-count.
@dataclass(frozen=True)
class Options:
    """The block, in schema order (defaults as ``torch.nn.functional.embedding``'s)."""
    padding_idx: Optional[int] = None
    max_norm: Optional[float] = None
    norm_type: float = 2.0
    scale_grad_by_freq: bool = False
    sparse: bool = False
    token_multiplier: float = 1.0
    num_tokens: Optional[int] = None

    def call(self, op: Any, *leading: Any, **trailing: Any) -> Any:
        """``op(*leading, <the block>, **trailing)``: an operator with the block after its
        leading arguments (and keyword-only ``trailing`` ones after it)."""
        return op(*leading, self.padding_idx, self.max_norm, self.norm_type,
                  self.scale_grad_by_freq, self.sparse, token_multiplier=self.token_multiplier,
                  num_tokens=self.num_tokens, **trailing)

    def check_types(self) -> None:
        """``TypeError`` naming the first value of the wrong Python type (``ValueError`` for
        an int beyond int64); the operators check the values."""
        _arguments.integer("padding_idx", self.padding_idx, optional=True)
        _arguments.real("max_norm", self.max_norm, optional=True)
        _arguments.real("norm_type", self.norm_type)
        _arguments.boolean("scale_grad_by_freq", self.scale_grad_by_freq)
        _arguments.boolean("sparse", self.sparse)
        _arguments.real("token_multiplier", self.token_multiplier)
        _arguments.integer("num_tokens", self.num_tokens, optional=True)
