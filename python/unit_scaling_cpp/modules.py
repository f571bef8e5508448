"""Module form, matching ``unit_scaling.Embedding``."""
import math
from typing import Any, Optional

from torch import Tensor, nn

from . import functional as F
from ._parameter import tag_parameter

__all__ = ["Embedding"]


def _check_token_count(token_multiplier: float, num_tokens: Optional[int]) -> None:
    """The operator's own check, early (at construction), with its messages."""
    if not (math.isfinite(token_multiplier) and token_multiplier > 0):
        raise ValueError(
            f"token_multiplier must be finite and > 0, got token_multiplier={token_multiplier}")
    if num_tokens is not None:
        if num_tokens <= 0:
            raise ValueError(f"num_tokens must be > 0, got num_tokens={num_tokens}")
        if token_multiplier != 1.0:
            raise ValueError("give num_tokens or token_multiplier, not both")


class Embedding(nn.Embedding):
    """A unit-scaled ``nn.Embedding``: weight ~ N(0, 1), ``padding_idx`` row zeroed at
    construction, forward through :func:`unit_scaling_cpp.functional.embedding`.

    Constructor arguments and ``from_pretrained`` are those of ``unit_scaling.Embedding`` (and
    ``torch.nn.Embedding``). ``scale_grad_by_freq`` and ``sparse`` raise ``ValueError`` here,
    at construction, rather than at the first forward.

    The weight is a plain ``nn.Parameter`` tagged with the reference library's u-μP metadata
    (``mup_type="weight"``, ``mup_scaling_depth=None``), so ``unit_scaling.optim`` accepts it;
    the tags survive ``deepcopy``, pickling and ``torch.save`` / ``torch.load``.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: Optional[int] = None,
        max_norm: Optional[float] = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Optional[Tensor] = None,
        _freeze: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        token_multiplier: float = 1.0,
        num_tokens: Optional[int] = None,
    ) -> None:
        for name, value in (("scale_grad_by_freq", scale_grad_by_freq), ("sparse", sparse)):
            if value:
                raise ValueError(f"{name}=True is not supported by unit scaling")
        super().__init__(
            num_embeddings,
            embedding_dim,
            padding_idx=padding_idx,
            max_norm=max_norm,
            norm_type=norm_type,
            scale_grad_by_freq=scale_grad_by_freq,
            sparse=sparse,
            _weight=_weight,
            _freeze=_freeze,
            device=device,
            dtype=dtype,
        )
        tag_parameter(self.weight, "weight")
        _check_token_count(token_multiplier, num_tokens)
        # The token count of the gradient's scale (docs/SCALING.md); plain attributes, so they
        # may be changed between steps (a constant multiplier causes no recompilation).
        self.token_multiplier = token_multiplier
        self.num_tokens = num_tokens

    def forward(self, input: Tensor) -> Tensor:
        return F.embedding(
            input,
            self.weight,
            self.padding_idx,
            self.max_norm,
            self.norm_type,
            self.scale_grad_by_freq,
            self.sparse,
            token_multiplier=self.token_multiplier,
            num_tokens=self.num_tokens,
        )

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.token_multiplier != 1.0:
            text += f", token_multiplier={self.token_multiplier}"
        if self.num_tokens is not None:
            text += f", num_tokens={self.num_tokens}"
        return text
