"""DTensor support for the unit_scaling operators: tensor and sequence parallelism.

With these rules ``parallelize_module(emb, mesh, RowwiseParallel(input_layouts=Replicate()))``
(torchtitan's plan for the token embedding, also with ``output_layouts=Shard(1)``) and the other
layouts below work on :class:`unit_scaling_cpp.Embedding` and on ``torch.ops.unit_scaling.*``,
forward and backward, eager and under ``torch.compile`` (``fullgraph=True`` too).

How the rules are registered
    ``scale_fwd`` / ``scale_bwd`` are elementwise: ``register_sharding`` (torch's sharding API)
    lets every placement pass through. The embedding operators cannot be described that way:
    ``register_sharding`` runs the same operator with the same arguments on the local shards,
    but on a shard the global row count V (the unit scale's numerator, ``padding_idx``'s range),
    the global token count N and the rows to renormalise are not what the local tensors say. So
    each gets a ``torch.library.register_torch_dispatch`` rule for ``DTensor`` (public API): it
    picks the layout, redistributes what must move, calls the operators on the local tensors
    with local arguments, and wraps the result. No ``__torch_dispatch__`` of our own.

Forward layouts, per mesh dimension (several mesh dimensions compose):

=====================  ==================  ==============================================
table (weight)         indices (input)     output
=====================  ==================  ==============================================
``Shard(0)`` (rows)    ``Replicate``       ``Partial``: the rows this rank owns, 0 elsewhere
``Shard(1)`` (cols)    ``Replicate``       ``Shard(-1)``
``Replicate``          ``Replicate``       ``Replicate``
``Replicate``          ``Shard(d)``        ``Shard(d)``
=====================  ==================  ==============================================

Sharded indices meeting a sharded table are all-gathered first; a ``Partial`` table, a second
mesh dimension sharding the rows, or any other placement is replicated first. The caller turns a
``Partial`` output into ``Replicate`` or ``Shard(1)`` (sequence parallel), as ``RowwiseParallel``'s
``output_layouts`` asks.

The gradient (``embedding_backward``) has the unit scale of the whole problem,
``sqrt(V / N_eff)`` with the global V, the global ``N = input.numel()`` (tensor parallelism does
not change the token count) and the caller's ``token_multiplier`` / ``num_tokens``, computed as
the C++ ``unit_scale`` computes it and passed to ``_scaled_embedding_backward``. Its layout
follows the gradient and indices (the backward does not see the table): replicated ones (what
``RowwiseParallel`` produces) give ``Shard(0)``, each rank computing only its block of rows, as
``VocabParallelEmbedding`` does, the positions it does not own and ``padding_idx`` sent to an
extra row that is dropped; token-sharded ones give ``Partial``; a feature-sharded gradient
(column-sharded table) gives ``Shard(1)``. Where that differs from the table's placement the
optimizer or FSDP redistributes, as for ATen's embedding (whose gradient is always replicated).

``embedding_renorm_`` (``max_norm``) renorms, in place, the referenced rows each rank holds; with
sharded columns the referenced rows are gathered first, so the norm is the whole row's. Errors are
the single-device operators', raised before anything is written: the global metadata by the
operators' Meta kernels; ``padding_idx``, the token count and the index range by the operators
themselves against the global V. With replicated indices every rank raises the same error; with
sharded indices, the ranks that hold the bad index. Under torch.compile the exact index check is
not part of the graph; a bad index still raises ``IndexError``, but its message counts the rows
of the local shard. Double backward runs DTensor's own rules for the ATen operators of the
gradient's backward (some uneven splits are refused there).
"""
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch.distributed.tensor import DTensor, Partial, Replicate, Shard

try:
    from torch.distributed.tensor.experimental import register_sharding
except ImportError:  # experimental: scale_fwd / scale_bwd then get rules of their own
    register_sharding = None

ops = torch.ops.unit_scaling
_OP = "unit_scaling embedding"


def _bind(func: Any, args: Sequence[Any], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The call's arguments by name, defaults filled in from the operator schema."""
    values = {}
    for i, argument in enumerate(func._schema.arguments):
        if i < len(args) and not argument.kwarg_only:
            values[argument.name] = args[i]
        elif argument.name in kwargs:
            values[argument.name] = kwargs[argument.name]
        else:
            values[argument.name] = argument.default_value
    return values


def _common_mesh(func: Any, named: Dict[str, Any]) -> Any:
    """The device mesh shared by the tensor arguments, which must all be DTensors."""
    tensors = {k: v for k, v in named.items() if isinstance(v, torch.Tensor)}
    plain = [k for k, v in tensors.items() if not isinstance(v, DTensor)]
    if plain:
        raise TypeError(
            f"{_OP}: {func}: {', '.join(plain)} is a torch.Tensor but other arguments are "
            "DTensors; convert it with DTensor.from_local(..., placements=[Replicate()])")
    meshes = {k: v.device_mesh for k, v in tensors.items()}
    first = next(iter(meshes.values()))
    for name, mesh in meshes.items():
        if mesh != first:
            raise ValueError(f"{_OP}: {func}: {name} is on device mesh {mesh}, but the other "
                             f"arguments are on {first}")
    return first


def _meta(t: torch.Tensor) -> torch.Tensor:
    """An empty tensor with ``t``'s global shape and dtype, for the operators' Meta checks."""
    return torch.empty(t.shape, dtype=t.dtype, device="meta")


def _check_indices(indices: torch.Tensor, rows: int, padding_idx: Optional[int] = None,
                   token_multiplier: float = 1.0, num_tokens: Optional[int] = None) -> None:
    """The operator's own checks of the index range, ``padding_idx`` and the token count
    against the global row count: a lookup into a zero-width table of ``rows`` rows (no work)."""
    table = torch.empty(rows, 0, device=indices.device)
    ops.embedding_lookup(indices, table, padding_idx, token_multiplier=token_multiplier,
                         num_tokens=num_tokens)


def _unit_scale(rows: int, count: int, token_multiplier: float, num_tokens: Optional[int]) -> float:
    """sqrt(V / N_eff), computed exactly as the C++ unit_scale (the same double operations)."""
    if count == 0:
        return 0.0
    tokens = float(num_tokens) if num_tokens is not None else float(count) * token_multiplier
    return math.sqrt(float(rows) / tokens)


def _chunk(size: int, parts: int, index: int) -> Tuple[int, int]:
    """[begin, end) of piece ``index`` of ``size`` split like torch.chunk (as Shard splits)."""
    piece = -(-size // parts)
    begin = min(size, index * piece)
    return begin, min(size, begin + piece)


def _shard_dim(placement: Any, ndim: int) -> Optional[int]:
    """The tensor dimension of a plain ``Shard`` placement, else None."""
    return placement.dim % ndim if type(placement) is Shard and ndim else None


def _redistribute(t: DTensor, placements: List[Any]) -> torch.Tensor:
    """``t``'s local tensor after moving it to ``placements`` (no-op when already there)."""
    if tuple(t.placements) != tuple(placements):
        t = t.redistribute(t.device_mesh, placements)
    return t.to_local()


def _wrap(local: torch.Tensor, mesh: Any, placements: List[Any], shape: Sequence[int]) -> DTensor:
    """A DTensor of global ``shape`` (contiguous) from this rank's ``local`` part."""
    stride, step = [], 1
    for size in reversed(shape):
        stride.insert(0, step)
        step *= max(size, 1)
    return DTensor.from_local(local, mesh, placements, run_check=False, shape=torch.Size(shape),
                              stride=tuple(stride))


def _owned_rows(mesh: Any, mesh_dim: Optional[int], rows: int) -> Tuple[int, int]:
    """[begin, end) of the rows this rank holds when ``mesh_dim`` shards them (else all)."""
    if mesh_dim is None:
        return 0, rows
    return _chunk(rows, mesh.size(mesh_dim), mesh.get_local_rank(mesh_dim))


def _to_local_rows(indices: torch.Tensor, begin: int, end: int, rows: int, keep: torch.Tensor,
                   elsewhere: int) -> torch.Tensor:
    """Indices into the block [begin, end): ``index - begin`` where ``keep``, ``elsewhere`` for
    the other valid indices, and invalid ones (outside [0, rows)) unchanged, so that the local
    operator still raises for them (under torch.compile, where the exact check above is not
    part of the graph, the message then counts the local rows)."""
    valid = (indices >= 0) & (indices < rows)
    return torch.where(keep, indices - begin, torch.where(valid, elsewhere, indices))


# ---- embedding_lookup ------------------------------------------------------------------------

def _lookup(cls: Any, func: Any, types: Any, args: Any, kwargs: Any) -> DTensor:
    a = _bind(func, args, kwargs)
    input, weight = a["input"], a["weight"]
    mesh = _common_mesh(func, {"input": input, "weight": weight})
    func(_meta(input), _meta(weight), token_multiplier=a["token_multiplier"],
         num_tokens=a["num_tokens"])
    rows, out_ndim = weight.shape[0], input.ndim + 1
    weight_to, input_to, out = [], [], []
    row_dim = None  # the mesh dimension that shards the table's rows
    for m, (wp, ip) in enumerate(zip(weight.placements, input.placements)):
        w_dim, i_dim = _shard_dim(wp, 2), _shard_dim(ip, input.ndim)
        if w_dim == 0 and row_dim is None:
            row_dim = m
            weight_to.append(wp), input_to.append(Replicate()), out.append(Partial())
        elif w_dim == 1:
            weight_to.append(wp), input_to.append(Replicate()), out.append(Shard(out_ndim - 1))
        else:  # a replicated table (anything else is replicated first)
            i_place = Replicate() if i_dim is None else Shard(i_dim)
            weight_to.append(Replicate()), input_to.append(i_place), out.append(i_place)
    with torch.no_grad():
        indices, table = _redistribute(input, input_to), _redistribute(weight, weight_to)
        begin, end = _owned_rows(mesh, row_dim, rows)
        if row_dim is None:  # all rows here: the operator checks everything itself
            local = ops.embedding_lookup(indices, table, a["padding_idx"],
                                         token_multiplier=a["token_multiplier"],
                                         num_tokens=a["num_tokens"])
            return _wrap(local, mesh, out, tuple(input.shape) + (weight.shape[1],))
        _check_indices(indices, rows, a["padding_idx"], a["token_multiplier"], a["num_tokens"])
        if end > begin:
            owned = (indices >= begin) & (indices < end)
            local = ops.embedding_lookup(
                _to_local_rows(indices, begin, end, rows, owned, elsewhere=0), table)
            local.masked_fill_(owned.logical_not().unsqueeze(-1), 0)
        else:  # an empty shard (more ranks than rows)
            local = table.new_zeros(tuple(indices.shape) + (table.shape[1],))
        return _wrap(local, mesh, out, tuple(input.shape) + (weight.shape[1],))


# ---- embedding_backward, _scaled_embedding_backward -----------------------------------------

def _gradient(mesh: Any, grad: DTensor, input: DTensor, rows: int, padding_row: int,
              scale: float) -> DTensor:
    """The (rows, D) weight gradient: scale * (scatter-sum of grad by input), padding skipped."""
    grad_ndim = grad.ndim
    grad_to, input_to, out = [], [], []
    row_dim = None
    for m, (gp, ip) in enumerate(zip(grad.placements, input.placements)):
        g_dim, i_dim = _shard_dim(gp, grad_ndim), _shard_dim(ip, input.ndim)
        if type(gp) is Partial and i_dim is None:  # linear in grad: stays partial
            grad_to.append(gp), input_to.append(Replicate()), out.append(gp)
        elif g_dim == grad_ndim - 1:  # feature-sharded (column-sharded table)
            grad_to.append(gp), input_to.append(Replicate()), out.append(Shard(1))
        elif g_dim is not None or i_dim is not None:  # token-sharded: each rank scatters its part
            dim = i_dim if i_dim is not None else g_dim
            grad_to.append(Shard(dim)), input_to.append(Shard(dim)), out.append(Partial())
        elif row_dim is None:  # replicated: each rank computes its block of rows
            row_dim = m
            grad_to.append(Replicate()), input_to.append(Replicate()), out.append(Shard(0))
        else:
            grad_to.append(Replicate()), input_to.append(Replicate()), out.append(Replicate())
    with torch.no_grad():
        g, indices = _redistribute(grad, grad_to), _redistribute(input, input_to)
        begin, end = _owned_rows(mesh, row_dim, rows)
        if row_dim is None:
            local = ops._scaled_embedding_backward(g, indices, rows, padding_row, scale)
        else:
            _check_indices(indices, rows)  # the single-device message (the V of the table)
            size = end - begin
            keep = (indices >= begin) & (indices < end)
            if padding_row >= 0:
                keep &= indices != padding_row
            local = ops._scaled_embedding_backward(
                g, _to_local_rows(indices, begin, end, rows, keep, elsewhere=size), size + 1,
                size, scale)[:size]
        return _wrap(local, mesh, out, (rows, grad.shape[-1]))


def _backward(cls: Any, func: Any, types: Any, args: Any, kwargs: Any) -> DTensor:
    a = _bind(func, args, kwargs)
    grad, input, rows = a["grad_output"], a["input"], a["num_weights"]
    mesh = _common_mesh(func, {"grad_output": grad, "input": input})
    func(_meta(grad), _meta(input), rows, token_multiplier=a["token_multiplier"],
         num_tokens=a["num_tokens"])
    _check_indices(input.to_local().reshape(-1)[:0], rows, a["padding_idx"],
                   a["token_multiplier"], a["num_tokens"])
    padding_idx = a["padding_idx"]
    padding_row = -1 if padding_idx is None else padding_idx % rows
    scale = _unit_scale(rows, input.numel(), a["token_multiplier"], a["num_tokens"])
    return _gradient(mesh, grad, input, rows, padding_row, scale)


def _scaled_backward(cls: Any, func: Any, types: Any, args: Any, kwargs: Any) -> DTensor:
    a = _bind(func, args, kwargs)
    grad, input, rows = a["grad_output"], a["input"], a["num_weights"]
    mesh = _common_mesh(func, {"grad_output": grad, "input": input})
    # The operator's own checks of the scalar arguments, on an empty call.
    empty = input.to_local().reshape(-1)[:0]
    func(grad.to_local().new_empty((0, 0)), empty, rows, a["padding_row"], a["scale"])
    func(_meta(grad), _meta(input), rows, a["padding_row"], a["scale"])
    return _gradient(mesh, grad, input, rows, a["padding_row"], a["scale"])


# ---- embedding_renorm_ ------------------------------------------------------------------------

def _renorm_owned(table: torch.Tensor, indices: torch.Tensor, rows: int, begin: int, end: int,
                  max_norm: float, norm_type: float, mesh: Any, col_dim: Optional[int],
                  cols: int) -> None:
    """Renorms, in place, the rows of ``table`` (the block [begin, end) of the table's rows)
    that ``indices`` reference, with the operator itself and without data-dependent shapes
    (so torch.compile traces it): every position's row is copied out (row 0 for the positions
    this rank does not own), gathered over the columns if they are sharded, renormed -- the
    unowned positions only when row 0 is referenced too, else they point to an appended zero
    row, which no renorm touches -- and copied back. All copies of a row carry the same values,
    so the order of the writes does not matter."""
    owned = (indices >= begin) & (indices < end)
    at = _to_local_rows(indices, begin, end, rows, owned, elsewhere=0)
    block = table.index_select(0, at)  # raises, before any write, for an invalid index
    if col_dim is not None:
        placements = [Shard(1) if m == col_dim else Replicate() for m in range(mesh.ndim)]
        block = _wrap(block, mesh, placements, (block.shape[0], cols)).full_tensor()
    count = at.numel()
    row_zero_referenced = (owned & (at == 0)).any()
    which = torch.where(owned | row_zero_referenced,
                        torch.arange(count, device=at.device), count)
    extended = torch.cat([block, block.new_zeros(1, block.shape[1])])
    ops.embedding_renorm_(extended, which, max_norm, norm_type)
    col_begin, col_end = _owned_rows(mesh, col_dim, cols)
    table.index_copy_(0, at, extended[:count, col_begin:col_end])


def _renorm(cls: Any, func: Any, types: Any, args: Any, kwargs: Any) -> None:
    a = _bind(func, args, kwargs)
    weight, input, max_norm, norm_type = a["weight"], a["input"], a["max_norm"], a["norm_type"]
    mesh = _common_mesh(func, {"weight": weight, "input": input})
    func(_meta(weight), _meta(input), max_norm, norm_type)
    rows, cols = weight.shape
    row_dim = col_dim = None  # the mesh dimensions that shard the table's rows / columns
    for m, p in enumerate(weight.placements):
        dim = _shard_dim(p, 2)
        if dim == 0 and row_dim is None:
            row_dim = m
        elif dim == 1 and col_dim is None:
            col_dim = m
        elif not p.is_replicate():
            raise NotImplementedError(
                f"{_OP}: max_norm renormalises the table in place, which needs placements "
                f"Replicate, Shard(0) or Shard(1) (each table dimension on at most one mesh "
                f"dimension); got weight placements {tuple(weight.placements)}")
    with torch.no_grad():
        indices = _redistribute(input, [Replicate()] * mesh.ndim)
        table = weight.to_local()
        if row_dim is None and col_dim is None:  # the whole table here
            ops.embedding_renorm_(table, indices, max_norm, norm_type)
        else:
            _check_indices(indices, rows)
            begin, end = _owned_rows(mesh, row_dim, rows)
            if end > begin and indices.numel() and not math.isinf(max_norm):
                _renorm_owned(table, indices.reshape(-1), rows, begin, end, max_norm,
                              norm_type, mesh, col_dim, cols)
        if not weight.is_inference():
            torch.autograd.graph.increment_version(weight)
    return None


# ---- embedding (the composite) -------------------------------------------------------------

def _composite(cls: Any, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
    # Reached only where autograd is skipped (inference mode): run the composite itself, which
    # calls embedding_renorm_ and embedding_lookup, whose rules are above.
    return func.decompose(*args, **kwargs)


# ---- scale_fwd, scale_bwd ----------------------------------------------------------------------

def _elementwise_sharding(x: Any, scale: float) -> List[Any]:
    """Every placement passes through (a partial sum or mean stays one: both ops are linear;
    DTensor reduces any other partial first)."""
    same = [Replicate(), Partial("sum"), Partial("avg")] + [Shard(d) for d in range(x.ndim)]
    return [([p], [p, None]) for p in same]


def _elementwise(cls: Any, func: Any, types: Any, args: Any, kwargs: Any) -> DTensor:
    """The same as a rule, where register_sharding is missing (it is experimental)."""
    a = _bind(func, args, kwargs)
    x = a["x"]
    keep = [p if p.is_replicate() or type(p) is Shard or (type(p) is Partial and
            p.reduce_op in ("sum", "avg")) else Replicate() for p in x.placements]
    with torch.no_grad():
        local = func(_redistribute(x, keep), a["scale"])
    return _wrap(local, x.device_mesh, keep, x.shape)


_RULES = {
    "embedding": _composite,
    "embedding_lookup": _lookup,
    "embedding_backward": _backward,
    "_scaled_embedding_backward": _scaled_backward,
    "embedding_renorm_": _renorm,
}
_library: List[Any] = []


def register() -> None:
    """Registers the rules (once)."""
    if _library:
        return
    _library.append(torch.library.Library("unit_scaling", "FRAGMENT"))
    rules = dict(_RULES)
    try:
        register_sharding([ops.scale_fwd.default, ops.scale_bwd.default])(_elementwise_sharding)
    except Exception:  # an experimental API: fall back to rules of our own
        rules.update(scale_fwd=_elementwise, scale_bwd=_elementwise)
    for name, rule in rules.items():
        torch.library.register_torch_dispatch(f"unit_scaling::{name}", DTensor, rule,
                                              lib=_library[0])
