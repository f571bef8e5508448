"""Module form, matching ``unit_scaling.Embedding``."""
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from . import _arguments
from . import functional as F
from ._options import Options
from ._parameter import KeepsMupTags

__all__ = ["Embedding"]


class Embedding(KeepsMupTags, nn.Embedding):
    """A unit-scaled ``nn.Embedding``: weight ~ N(0, 1), the padding row zeroed at
    construction, forward through :func:`unit_scaling_cpp.functional.embedding`.

    The constructor and ``from_pretrained`` are those of ``torch.nn.Embedding`` (and the
    reference library's ``unit_scaling.Embedding``), checked at construction.

    Args:
        num_embeddings: ``V``, the number of rows, >= 0.
        embedding_dim: ``D``, the width of a row, >= 0.
        padding_idx: a row whose lookups get no gradient, in ``[-V, V)``; zeroed at
            construction. Default: none.
        max_norm: rows referenced by a forward are renormed in place to at most this
            ``norm_type``-norm. Default: none.
        norm_type: ``p`` of that p-norm, > 0. Default: 2.
        scale_grad_by_freq: not supported by unit scaling: ``ValueError`` when true.
        sparse: not supported by unit scaling: ``ValueError`` when true.
        _weight: a ``(V, D)`` table to use as is (``from_pretrained``'s). Default: a fresh
            N(0, 1) table.
        _freeze: whether that table is frozen (``requires_grad=False``). Default: False.
        device: where the fresh table lives.
        dtype: the fresh table's float dtype.
        token_multiplier: keyword-only, the token count of the gradient's scale
            (docs/SCALING.md): ``N_eff = input.numel() * token_multiplier``. Default: 1.
        num_tokens: keyword-only: ``N_eff = num_tokens`` instead.

    Raises:
        TypeError: a wrongly typed argument.
        ValueError: a bad size or option value (``scale_grad_by_freq`` and ``sparse`` here, at
            construction, rather than at the first forward), or a ``_weight`` of another shape.

    The weight is a plain ``nn.Parameter`` tagged with the reference library's u-μP metadata
    (``mup_type="weight"``, ``mup_scaling_depth=None``), so ``unit_scaling.optim`` accepts it.
    The module keeps the tags on whatever parameter torch puts in its place (``deepcopy``,
    pickling, ``torch.save`` / ``torch.load``, ``fully_shard``, ``parallelize_module``,
    ``load_state_dict(assign=True)``, ``.to()`` with or without swapping; see ``_parameter.py``).
    ``token_multiplier`` and ``num_tokens`` are plain attributes: change them between steps as
    the token count changes.

    Under DTensor (``parallelize_module``, e.g. torchtitan's ``RowwiseParallel`` plan) the
    operators follow the rules of ``_dtensor.py``: a vocabulary-sharded, column-sharded or
    replicated table, with the unit scale of the global table and token count.
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
        device: Optional[Union[torch.device, str, int]] = None,
        dtype: Optional[torch.dtype] = None,
        *,
        token_multiplier: float = 1.0,
        num_tokens: Optional[int] = None,
    ) -> None:
        _check_settings(num_embeddings, embedding_dim, _weight,
                        Options(padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                                token_multiplier, num_tokens))
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
        self._keep_mup_tags({"weight": ("weight", None)})
        # The token count of the gradient's scale (docs/SCALING.md); plain attributes, so they
        # may be changed between steps (a constant multiplier causes no recompilation).
        self.token_multiplier = token_multiplier
        self.num_tokens = num_tokens

    @classmethod
    def from_pretrained(
        cls,
        embeddings: Tensor,
        freeze: bool = True,
        padding_idx: Optional[int] = None,
        max_norm: Optional[float] = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        *,
        token_multiplier: float = 1.0,
        num_tokens: Optional[int] = None,
    ) -> "Embedding":
        """A module around a given table, used as is (the padding row is not zeroed).

        Args:
            embeddings: the ``(V, D)`` table; the module's weight is this tensor (a
                parameter sharing its storage).
            freeze: whether the weight is frozen (``requires_grad=False``), as in torch.
                Default: True.
            padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse, token_multiplier,
                num_tokens: as in the constructor.

        Returns:
            The module.

        Raises:
            TypeError: ``embeddings`` is not a Tensor or ``freeze`` not a bool.
            ValueError: ``embeddings`` is not 2-D, or an option is bad.
        """
        _arguments.tensor("from_pretrained's embeddings", embeddings)
        _arguments.boolean("from_pretrained's freeze", freeze)
        torch.ops.unit_scaling._check_pretrained(embeddings)
        num_embeddings, embedding_dim = embeddings.shape
        return cls(num_embeddings, embedding_dim, padding_idx, max_norm, norm_type,
                   scale_grad_by_freq, sparse, _weight=embeddings, _freeze=freeze,
                   token_multiplier=token_multiplier, num_tokens=num_tokens)

    # Hugging Face transformers' post_init / init_weights re-initialise every module that does
    # not say it is initialised (nn.Embedding to N(0, 0.02)); this one initialises itself, to
    # unit scale, at construction and in reset_parameters, so it always says so, and ignores
    # the flag transformers sets after initialising a module.
    @property
    def _is_hf_initialized(self) -> bool:
        return True

    @_is_hf_initialized.setter
    def _is_hf_initialized(self, value: bool) -> None:
        pass

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


def _check_settings(num_embeddings: Any, embedding_dim: Any, weight: Any,
                    options: Options) -> None:
    """A module's settings: their Python types, then the C++ modules' own checks (sizes >= 0,
    the options against a table of num_embeddings rows, ``_weight``'s shape)."""
    _arguments.integer("num_embeddings", num_embeddings)
    _arguments.integer("embedding_dim", embedding_dim)
    if weight is not None:
        _arguments.tensor("_weight", weight)
    options.check_types()
    options.call(torch.ops.unit_scaling._check_module_options, num_embeddings, embedding_dim,
                 weight)
