"""torch.func support: the unit-scaled embedding under vmap, grad, vjp, jvp, jacrev, jacfwd,
hessian and their compositions (per-sample gradients, model ensembles).

Why a second route. The operators' C++ autograd (src/embedding_autograd.cpp) is a C++
``torch::autograd::Function``, which functorch refuses inside ``grad`` / ``vjp`` / ``jvp``; and
the public ``unit_scaling::embedding`` mutates ``weight`` (``max_norm``), which vmap's generic
fallback cannot batch. So while a torch.func transform is active (and only then: eager,
torch.compile, export, DTensor and C++ keep the operator path unchanged),
:func:`unit_scaling_cpp.functional.embedding` calls :func:`embedding` below, which builds the
same computation from the same device operators:

- :class:`_Lookup`: forward ``weight[input]`` (``unit_scaling::embedding_lookup``); backward
  :class:`_Scatter`; forward-mode tangent the lookup of the weight's tangent (the op is linear
  in ``weight``).
- :class:`_Scatter`: the unit-scaled gradient ``s * scatter_sum(grad_output)``, padding
  positions left out (``unit_scaling::embedding_backward``, which computes ``s = sqrt(V / N)``
  from its own input, so the token count stays symbolic under torch.compile); backward the
  scaled lookup ``s * ggW[input]`` with padding positions zeroed (plain ATen ops, the same
  formula as the C++ double backward); tangent the scatter of the tangent (linear too).

Both are ``autograd.Function`` classes with ``setup_context``, ``jvp`` and
``generate_vmap_rule = True``, so every transform composes with every other.

vmap rules (``torch.library.register_vmap``) for the device operators, registered by
:func:`register` when the package is imported. Each mapped call is one call of the operator on
its own slice, with its own ``N`` and so its own unit scale ``sqrt(V / N_slice)``:

- ``embedding_lookup``: a shared table and batched indices is one call over all the indices
  (the forward does not depend on ``N``); a batched table is one call per table.
- ``embedding_backward``: one call per slice (each writes its own ``(V, D)`` gradient).
- ``embedding_renorm_`` (``max_norm``): in place, one call per table slice; a batch of index
  tensors over one shared table is refused with a ``RuntimeError``, as torch refuses
  ``F.embedding(..., max_norm=...)`` there (each slice would rewrite the same table).

torch.compile of a transformed function: Dynamo would inline these classes' forward and call
the operator's C++ autograd under the transform, so :func:`embedding` is kept
whole in the graph (``torch.compiler.allow_in_graph``) and AOTAutograd traces it with the
transforms in place. It is marked when ``torch._dynamo`` is imported, not before (importing it
costs a second and loads DTensor, which this package leaves to the user, ``_dtensor_import.py``).

``max_norm`` under ``grad`` / ``jvp`` works like ``torch.nn.functional.embedding``: the
referenced rows of the caller's weight are renormed in place, under no-grad, before the lookup,
and the renorm is not differentiated.
"""
import math
from typing import Any, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ._import_hooks import after_import

ops = torch.ops.unit_scaling

__all__ = ["check_options", "embedding", "register", "transforms_active"]


def transforms_active() -> bool:
    """Whether a torch.func transform (vmap, grad, jvp, ...) is running (torch.compile traces
    this check)."""
    return torch._C._functorch.peek_interpreter_stack() is not None


def _unit_scale(rows: Any, count: Any, token_multiplier: float, num_tokens: Any) -> Any:
    """src/unit_scale.cpp in Python: ``sqrt(V / N_eff)``, ``N_eff = num_tokens`` or
    ``max(N, 1) * token_multiplier``; symbolic sizes (torch.compile) stay symbolic."""
    tokens = num_tokens if num_tokens is not None else torch.sym_max(count, 1) * token_multiplier
    ratio = rows / tokens
    if isinstance(ratio, torch.SymFloat):
        return torch.sym_sqrt(ratio)
    return math.sqrt(ratio)


def _padding_mask(input: Tensor, rows: Any, padding_idx: Any) -> Optional[Tensor]:
    """``input == padding_row`` (padding_idx wrapped like the operators do), or None."""
    if padding_idx is None:
        return None
    return input.eq(padding_idx + rows if padding_idx < 0 else padding_idx)


class _Lookup(torch.autograd.Function):
    """``weight[input]`` whose weight gradient is the unit-scaled :class:`_Scatter`."""

    generate_vmap_rule = True

    @staticmethod
    def forward(weight: Tensor, input: Tensor, padding_idx: Any, token_multiplier: float,
                num_tokens: Any) -> Tensor:
        return ops.embedding_lookup(input, weight, padding_idx, token_multiplier=token_multiplier,
                                    num_tokens=num_tokens)

    @staticmethod
    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tensor) -> None:
        weight, input, padding_idx, token_multiplier, num_tokens = inputs
        ctx.save_for_backward(input)
        ctx.save_for_forward(input)
        ctx.call = (weight.shape[0], padding_idx, token_multiplier, num_tokens)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tuple[Optional[Tensor], ...]:
        (input,) = ctx.saved_tensors
        grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_weight = _Scatter.apply(grad_output, input, *ctx.call)
        return grad_weight, None, None, None, None

    @staticmethod
    def jvp(ctx: Any, weight_tangent: Tensor, *unused: Any) -> Tensor:
        (input,) = ctx.saved_tensors
        _, padding_idx, token_multiplier, num_tokens = ctx.call
        return _Lookup.apply(weight_tangent, input, padding_idx, token_multiplier, num_tokens)


class _Scatter(torch.autograd.Function):
    """The unit-scaled weight gradient, ``s * scatter_sum(grad_output)`` over non-padding
    positions; linear in ``grad_output``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(grad_output: Tensor, input: Tensor, rows: Any, padding_idx: Any,
                token_multiplier: float, num_tokens: Any) -> Tensor:
        return ops.embedding_backward(grad_output, input, rows, padding_idx,
                                      token_multiplier=token_multiplier, num_tokens=num_tokens)

    @staticmethod
    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Tensor) -> None:
        _, input, rows, padding_idx, token_multiplier, num_tokens = inputs
        ctx.save_for_backward(input)
        ctx.save_for_forward(input)
        ctx.call = (rows, padding_idx, token_multiplier, num_tokens)

    @staticmethod
    def backward(ctx: Any, grad_grad_weight: Tensor) -> Tuple[Optional[Tensor], ...]:
        (input,) = ctx.saved_tensors
        rows, padding_idx, token_multiplier, num_tokens = ctx.call
        scale = _unit_scale(rows, input.numel(), token_multiplier, num_tokens)
        # s * ggW[input], padding positions zeroed (masked, so that an inf or NaN in the padding
        # row cannot leak into them as inf * 0).
        looked_up = grad_grad_weight.index_select(0, input.reshape(-1)) * scale
        looked_up = looked_up.view(*input.shape, grad_grad_weight.shape[-1])
        mask = _padding_mask(input, rows, padding_idx)
        if mask is not None:
            looked_up = looked_up.masked_fill(mask.unsqueeze(-1), 0)
        return looked_up, None, None, None, None, None

    @staticmethod
    def jvp(ctx: Any, grad_output_tangent: Tensor, *unused: Any) -> Tensor:
        (input,) = ctx.saved_tensors
        return _Scatter.apply(grad_output_tangent, input, *ctx.call)


def check_options(input: Tensor, weight: Tensor, padding_idx: Any, max_norm: Any,
                  norm_type: float, scale_grad_by_freq: bool, sparse: bool,
                  token_multiplier: float, num_tokens: Any) -> None:
    """The value checks of ``unit_scaling::embedding``'s settings, for the routes that do not
    call it. A setting it would reject is passed to the operator itself, on data-free meta
    stand-ins, so that the error and its words are the operator's; valid settings cost no
    operator call (so nothing lands in a traced graph)."""
    rows = weight.shape[0]
    invalid = (
        scale_grad_by_freq or sparse or not norm_type > 0
        or (max_norm is not None and not max_norm > 0)
        or (padding_idx is not None and not -rows <= padding_idx < rows)
        or not (math.isfinite(token_multiplier) and token_multiplier > 0)
        or (num_tokens is not None and (num_tokens <= 0 or token_multiplier != 1.0)))
    if invalid:
        proxy_input = torch.empty(0, dtype=input.dtype, device="meta")
        proxy_weight = torch.empty(rows, 0, dtype=weight.dtype, device="meta")
        ops.embedding(proxy_input, proxy_weight, padding_idx, max_norm, norm_type,
                      scale_grad_by_freq, sparse, token_multiplier=token_multiplier,
                      num_tokens=num_tokens)


def embedding(input: Tensor, weight: Tensor, padding_idx: Any, max_norm: Any, norm_type: float,
              scale_grad_by_freq: bool, sparse: bool, token_multiplier: float,
              num_tokens: Any) -> Tensor:
    """``unit_scaling::embedding`` for use under torch.func transforms (same arguments, same
    results, same errors)."""
    check_options(input, weight, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                  token_multiplier, num_tokens)
    if max_norm is not None:
        # As torch.nn.functional.embedding does: in place on the caller's rows, not recorded.
        with torch.no_grad():
            ops.embedding_renorm_(weight.detach(), input, max_norm, norm_type)
    return _Lookup.apply(weight, input, padding_idx, token_multiplier, num_tokens)


# --- vmap rules of the device operators -----------------------------------------------------


def _batch_first(tensor: Tensor, dim: Optional[int], size: int) -> Tensor:
    """``tensor`` with its vmapped dim first, or expanded to ``size`` slices when unbatched."""
    if dim is None:
        return tensor.expand(size, *tensor.shape)
    return tensor.movedim(dim, 0)


def _lookup_vmap(info: Any, in_dims: Sequence[Optional[int]], input: Tensor, weight: Tensor,
                 padding_idx: Any = None, *, token_multiplier: float = 1.0,
                 num_tokens: Any = None) -> Tuple[Tensor, int]:
    input_dim, weight_dim = in_dims[0], in_dims[1]
    call = dict(token_multiplier=token_multiplier, num_tokens=num_tokens)
    if weight_dim is None:
        # One table: a lookup of all the slices' indices at once is each slice's lookup.
        return ops.embedding_lookup(input.movedim(input_dim, 0), weight, padding_idx, **call), 0
    tables = weight.movedim(weight_dim, 0)
    indices = _batch_first(input, input_dim, info.batch_size)
    out = [ops.embedding_lookup(indices[b], tables[b], padding_idx, **call)
           for b in range(info.batch_size)]
    return torch.stack(out), 0


def _backward_vmap(info: Any, in_dims: Sequence[Optional[int]], grad_output: Tensor,
                   input: Tensor, num_weights: Any, padding_idx: Any = None, *,
                   token_multiplier: float = 1.0, num_tokens: Any = None) -> Tuple[Tensor, int]:
    grads = _batch_first(grad_output, in_dims[0], info.batch_size)
    indices = _batch_first(input, in_dims[1], info.batch_size)
    # One call per slice: each has its own N, so its own unit scale sqrt(V / N_slice).
    out = [ops.embedding_backward(grads[b], indices[b], num_weights, padding_idx,
                                  token_multiplier=token_multiplier, num_tokens=num_tokens)
           for b in range(info.batch_size)]
    return torch.stack(out), 0


def _renorm_vmap(info: Any, in_dims: Sequence[Optional[int]], weight: Tensor, input: Tensor,
                 max_norm: float, norm_type: float) -> Tuple[None, None]:
    weight_dim, input_dim = in_dims[0], in_dims[1]
    if weight_dim is None:
        raise RuntimeError(
            "vmap: unit_scaling::embedding_renorm_ (max_norm) is not possible because input is "
            "vmapped over but weight is not: every slice would renormalise rows of the one "
            "shared weight in place (torch.nn.functional.embedding with max_norm refuses this "
            "too). Renormalise before vmap, or vmap over weight as well.")
    tables = weight.movedim(weight_dim, 0)
    indices = _batch_first(input, input_dim, info.batch_size)
    for b in range(info.batch_size):  # tables[b] is a view: renormed in place
        ops.embedding_renorm_(tables[b], indices[b], max_norm, norm_type)
    return None, None  # the operator returns nothing


_DYNAMO = "torch._dynamo"


def _keep_whole_in_compiled_graphs() -> None:
    torch.compiler.allow_in_graph(embedding)


_registered = False


def register() -> None:
    """Registers the vmap rules and the torch.compile marking (once per process)."""
    global _registered
    if _registered:
        return
    torch.library.register_vmap("unit_scaling::embedding_lookup", _lookup_vmap)
    torch.library.register_vmap("unit_scaling::embedding_backward", _backward_vmap)
    torch.library.register_vmap("unit_scaling::embedding_renorm_", _renorm_vmap)
    after_import(_DYNAMO, _keep_whole_in_compiled_graphs)
    _registered = True
