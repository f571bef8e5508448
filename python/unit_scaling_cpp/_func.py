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
  scaled lookup ``s * ggW[input]`` with padding positions zeroed
  (``unit_scaling::_embedding_double_backward``, the C++ double backward's own operator, built
  from ATen operators that functorch transforms); tangent the scatter of the tangent (linear
  too).

Every call carries the options as one :class:`~._options.Options`, passed unchanged to each
operator, which checks them all: no rule is restated here.

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
import functools
from typing import Any, Optional, Protocol, Sequence, Tuple

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

from ._import_hooks import after_import
from ._options import Options

ops = torch.ops.unit_scaling

__all__ = ["embedding", "register", "transforms_active"]


def transforms_active() -> bool:
    """Whether a torch.func transform (vmap, grad, jvp, ...) is running (torch.compile traces
    this check).

    The one private torch API of this module: torch offers no public "is a functorch transform
    active" query, and functorch's own code asks the same question this way
    (``torch._C._functorch.peek_interpreter_stack``, present since torch 2.0)."""
    return torch._C._functorch.peek_interpreter_stack() is not None


class _Context(FunctionCtx):
    """torch's FunctionCtx as the Functions below use it (for type checkers only: torch gives
    each call its own context object, which holds these attributes)."""
    saved_tensors: Tuple[Tensor, ...]
    needs_input_grad: Tuple[bool, ...]
    rows: Any
    options: Options


class _Lookup(torch.autograd.Function):
    """``weight[input]`` whose weight gradient is the unit-scaled :class:`_Scatter`."""

    generate_vmap_rule = True

    @staticmethod
    def forward(weight: Tensor, input: Tensor, options: Options) -> Tensor:
        return options.call(ops.embedding_lookup, input, weight)

    @staticmethod
    def setup_context(ctx: _Context, inputs: Tuple[Any, ...], output: Tensor) -> None:
        weight, input, options = inputs
        ctx.save_for_backward(input)
        ctx.save_for_forward(input)
        ctx.rows, ctx.options = weight.shape[0], options

    @staticmethod
    def backward(ctx: _Context, grad_output: Tensor) -> Tuple[Optional[Tensor], ...]:
        (input,) = ctx.saved_tensors
        grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_weight = _Scatter.apply(grad_output, input, ctx.rows, ctx.options)
        return grad_weight, None, None

    @staticmethod
    def jvp(ctx: _Context, weight_tangent: Tensor, *unused: Any) -> Tensor:
        (input,) = ctx.saved_tensors
        return _Lookup.apply(weight_tangent, input, ctx.options)


class _Scatter(torch.autograd.Function):
    """The unit-scaled weight gradient, ``s * scatter_sum(grad_output)`` over non-padding
    positions; linear in ``grad_output``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(grad_output: Tensor, input: Tensor, rows: Any, options: Options) -> Tensor:
        return options.call(ops.embedding_backward, grad_output, input, rows)

    @staticmethod
    def setup_context(ctx: _Context, inputs: Tuple[Any, ...], output: Tensor) -> None:
        _, input, rows, options = inputs
        ctx.save_for_backward(input)
        ctx.save_for_forward(input)
        ctx.rows, ctx.options = rows, options

    @staticmethod
    def backward(ctx: _Context, grad_grad_weight: Tensor) -> Tuple[Optional[Tensor], ...]:
        (input,) = ctx.saved_tensors
        # s * ggW[input], padding positions zeroed: the C++ double backward's operator.
        grad = ctx.options.call(ops._embedding_double_backward, grad_grad_weight, input)
        return grad, None, None, None

    @staticmethod
    def jvp(ctx: _Context, grad_output_tangent: Tensor, *unused: Any) -> Tensor:
        (input,) = ctx.saved_tensors
        return _Scatter.apply(grad_output_tangent, input, ctx.rows, ctx.options)


def embedding(input: Tensor, weight: Tensor, options: Options) -> Tensor:
    """``unit_scaling::embedding`` for use under torch.func transforms (same arguments, same
    results, same errors): its checks (``_check_embedding``, before anything is written), the
    renorm, the lookup."""
    options.call(ops._check_embedding, input, weight)
    if options.max_norm is not None:
        # As torch.nn.functional.embedding does: in place on the caller's rows, not recorded.
        with torch.no_grad():
            ops.embedding_renorm_(weight.detach(), input, options.max_norm, options.norm_type)
    return _Lookup.apply(weight, input, options)


# --- vmap rules of the device operators -----------------------------------------------------


class VmapInfo(Protocol):
    """What torch.library.register_vmap's rules read of their ``info`` argument."""
    batch_size: int



def _batch_first(tensor: Tensor, dim: Optional[int], size: int) -> Tensor:
    """``tensor`` with its vmapped dim first, or expanded to ``size`` slices when unbatched."""
    if dim is None:
        return tensor.expand(size, *tensor.shape)
    return tensor.movedim(dim, 0)


def _lookup_vmap(info: VmapInfo, in_dims: Sequence[Optional[int]], input: Tensor, weight: Tensor,
                 *args: Any, **kwargs: Any) -> Tuple[Tensor, int]:
    options = Options(*args, **kwargs)
    input_dim, weight_dim = in_dims[0], in_dims[1]
    if weight_dim is None:
        # One table: a lookup of all the slices' indices at once is each slice's lookup (vmap
        # calls a rule only with a batched argument: here the indices).
        assert input_dim is not None
        return options.call(ops.embedding_lookup, input.movedim(input_dim, 0), weight), 0
    tables = weight.movedim(weight_dim, 0)
    indices = _batch_first(input, input_dim, info.batch_size)
    out = [options.call(ops.embedding_lookup, indices[b], tables[b])
           for b in range(info.batch_size)]
    return torch.stack(out), 0


def _backward_vmap(info: VmapInfo, in_dims: Sequence[Optional[int]], grad_output: Tensor,
                   input: Tensor, num_weights: Any, *args: Any,
                   **kwargs: Any) -> Tuple[Tensor, int]:
    options = Options(*args, **kwargs)
    grads = _batch_first(grad_output, in_dims[0], info.batch_size)
    indices = _batch_first(input, in_dims[1], info.batch_size)
    # One call per slice: each has its own N, so its own unit scale sqrt(V / N_slice).
    out = [options.call(ops.embedding_backward, grads[b], indices[b], num_weights)
           for b in range(info.batch_size)]
    return torch.stack(out), 0


def _renorm_vmap(info: VmapInfo, in_dims: Sequence[Optional[int]], weight: Tensor, input: Tensor,
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


@functools.cache
def register() -> None:
    """Registers the vmap rules and the torch.compile marking (the first call; later ones
    return at once)."""
    torch.library.register_vmap("unit_scaling::embedding_lookup", _lookup_vmap)
    torch.library.register_vmap("unit_scaling::embedding_backward", _backward_vmap)
    torch.library.register_vmap("unit_scaling::embedding_renorm_", _renorm_vmap)
    after_import(_DYNAMO, _keep_whole_in_compiled_graphs)
