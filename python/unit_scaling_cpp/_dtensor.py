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

A row-sharded table holds torch.chunk's rows (``Shard(0)``), the split rule of the C++
``VocabParallelEmbedding`` too: both paths call the same C++ core,
``torch.ops.unit_scaling._vocab_shard_{indices,lookup,backward,renorm_}``
(src/distributed/vocab_shard.h), which remaps the indices to the shard's rows, checks them
against the global V, wraps ``padding_idx``, computes the unit scale and renorms. The rules here
only choose placements, and pass each call's options on unchanged (``_options.Options``).

Sharded indices meeting a sharded table are all-gathered first; a ``Partial`` table, a second
mesh dimension sharding the rows, or any other placement is replicated first. The caller turns a
``Partial`` output into ``Replicate`` or ``Shard(1)`` (sequence parallel), as ``RowwiseParallel``'s
``output_layouts`` asks.

The gradient (``embedding_backward``) has the unit scale of the whole problem,
``sqrt(V / N_eff)`` with the global V, the global ``N = input.numel()`` (tensor parallelism does
not change the token count) and the caller's ``token_multiplier`` / ``num_tokens``, all passed
to ``_vocab_shard_backward``, which computes it with the C++ ``unit_scale``. Its layout
follows the gradient and indices (the backward does not see the table): replicated ones (what
``RowwiseParallel`` produces) give ``Shard(0)``, each rank computing only its block of rows, as
``VocabParallelEmbedding`` does, the positions it does not own and ``padding_idx`` sent to an
extra row that is dropped; token-sharded ones give ``Partial``; a feature-sharded gradient
(column-sharded table) gives ``Shard(1)``. Where that differs from the table's placement the
optimizer or FSDP redistributes, as for ATen's embedding (whose gradient is always replicated).

``embedding_renorm_`` (``max_norm``) renorms, in place, the referenced rows each rank holds
(``_vocab_shard_renorm_``, as the C++ module does); with sharded columns the referenced rows are
gathered first, so the norm is the whole row's. Errors are
the single-device operators', raised before anything is written: the global metadata by the
operators' Meta kernels; ``padding_idx``, the token count and the index range by the operators
themselves against the global V. With replicated indices every rank raises the same error; with
sharded indices, the ranks that hold the bad index. Double backward runs DTensor's own rules for
the ATen operators of the gradient's backward (some uneven splits are refused there).
"""
from dataclasses import dataclass
import functools
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor, Partial, Replicate, Shard
from torch.distributed.tensor.placement_types import Placement

try:
    from torch.distributed.tensor.experimental import register_sharding
except ImportError:  # experimental: scale_fwd / scale_bwd then get rules of their own
    register_sharding = None  # type: ignore[assignment]

from ._arguments import PREFIX
from ._options import Options

ops = torch.ops.unit_scaling
Placements = Tuple[Placement, ...]
Operator = Callable[..., Any]  # an operator overload, torch.ops.unit_scaling.<name>.default


# ---- placement plans (pure: no mesh, no tensors) ----------------------------------------------

@dataclass(frozen=True)
class Plan:
    """Where a rule moves each tensor argument (placements over the mesh, in argument order),
    the placements of its output, and the mesh dimension whose ranks each hold a block of the
    table's rows (torch.chunk's, as ``Shard(0)``), or None when every rank holds all of them."""
    args: Tuple[Placements, ...]
    out: Placements
    row_dim: Optional[int] = None


def _shard_dim(placement: Placement, ndim: int) -> Optional[int]:
    """The tensor dimension of a plain ``Shard`` placement, else None."""
    return placement.dim % ndim if type(placement) is Shard and ndim else None


def _plan(steps: Sequence[Tuple[Placement, ...]], row_dim: Optional[int]) -> Plan:
    """A plan from one step per mesh dimension: (each argument's placement, the output's)."""
    columns = tuple(zip(*steps)) if steps else ((),) * 3
    return Plan(args=tuple(columns[:-1]), out=columns[-1], row_dim=row_dim)


def plan_lookup(weight: Placements, input: Placements, input_ndim: int) -> Plan:
    """embedding_lookup: (table, indices) -> output, per mesh dimension (module docstring)."""
    steps: List[Tuple[Placement, ...]] = []
    row_dim: Optional[int] = None
    for m, (wp, ip) in enumerate(zip(weight, input)):
        w_dim, i_dim = _shard_dim(wp, 2), _shard_dim(ip, input_ndim)
        if w_dim == 0 and row_dim is None:  # a block of rows: the rows this rank owns
            row_dim = m
            steps.append((wp, Replicate(), Partial()))
        elif w_dim == 1:  # a block of columns
            steps.append((wp, Replicate(), Shard(input_ndim)))
        else:  # a replicated table (anything else is replicated first)
            place = Replicate() if i_dim is None else Shard(i_dim)
            steps.append((Replicate(), place, place))
    return _plan(steps, row_dim)


def plan_gradient(grad: Placements, input: Placements, grad_ndim: int, input_ndim: int) -> Plan:
    """The (V, D) weight gradient: (grad_output, indices) -> gradient, per mesh dimension."""
    steps: List[Tuple[Placement, ...]] = []
    row_dim: Optional[int] = None
    for m, (gp, ip) in enumerate(zip(grad, input)):
        g_dim, i_dim = _shard_dim(gp, grad_ndim), _shard_dim(ip, input_ndim)
        if type(gp) is Partial and i_dim is None:  # linear in grad: stays partial
            steps.append((gp, Replicate(), gp))
        elif g_dim == grad_ndim - 1:  # feature-sharded (column-sharded table)
            steps.append((gp, Replicate(), Shard(1)))
        elif i_dim is not None or g_dim is not None:  # token-sharded: each rank scatters its part
            dim = i_dim if i_dim is not None else int(g_dim)  # type: ignore[arg-type]
            steps.append((Shard(dim), Shard(dim), Partial()))
        elif row_dim is None:  # replicated: each rank computes its block of rows
            row_dim = m
            steps.append((Replicate(), Replicate(), Shard(0)))
        else:
            steps.append((Replicate(), Replicate(), Replicate()))
    return _plan(steps, row_dim)


def plan_renorm(weight: Placements) -> Tuple[Optional[int], Optional[int]]:
    """The mesh dimensions that shard the table's rows and columns; NotImplementedError for a
    table that cannot be renormed in place (a partial one, or a dimension sharded twice)."""
    row_dim = col_dim = None
    for m, p in enumerate(weight):
        dim = _shard_dim(p, 2)
        if dim == 0 and row_dim is None:
            row_dim = m
        elif dim == 1 and col_dim is None:
            col_dim = m
        elif not p.is_replicate():
            raise NotImplementedError(
                f"{PREFIX}max_norm renormalises the table in place, which needs placements "
                f"Replicate, Shard(0) or Shard(1) (each table dimension on at most one mesh "
                f"dimension); got weight placements {tuple(weight)}")
    return row_dim, col_dim


# ---- helpers ----------------------------------------------------------------------------------

def _common_mesh(func: Operator, named: Dict[str, Any]) -> DeviceMesh:
    """The device mesh shared by the tensor arguments, which must all be DTensors."""
    tensors = {k: v for k, v in named.items() if isinstance(v, torch.Tensor)}
    plain = [k for k, v in tensors.items() if not isinstance(v, DTensor)]
    if plain:
        raise TypeError(
            f"{PREFIX}{func}: {', '.join(plain)} is a torch.Tensor but other arguments are "
            "DTensors; convert it with DTensor.from_local(..., placements=[Replicate()])")
    meshes = {k: v.device_mesh for k, v in tensors.items() if isinstance(v, DTensor)}
    first = next(iter(meshes.values()))
    for name, mesh in meshes.items():
        if mesh != first:
            raise ValueError(f"{PREFIX}{func}: {name} is on device mesh {mesh}, but the other "
                             f"arguments are on {first}")
    return first


def _meta(t: torch.Tensor) -> torch.Tensor:
    """An empty tensor with ``t``'s global shape and dtype, for the operators' Meta checks."""
    return torch.empty(t.shape, dtype=t.dtype, device="meta")


def _shard(mesh: DeviceMesh, row_dim: Optional[int]) -> Tuple[int, int]:
    """(this rank's shard, the number of shards) of the table's rows; (0, 1): all rows."""
    return (0, 1) if row_dim is None else (mesh.get_local_rank(row_dim), mesh.size(row_dim))


def _redistribute(t: DTensor, placements: Sequence[Placement]) -> torch.Tensor:
    """``t``'s local tensor after moving it to ``placements`` (no-op when already there)."""
    if tuple(t.placements) != tuple(placements):
        t = t.redistribute(t.device_mesh, placements)
    return t.to_local()


def _wrap(local: torch.Tensor, mesh: DeviceMesh, placements: Sequence[Placement],
          shape: Sequence[int]) -> DTensor:
    """A DTensor of global ``shape`` (contiguous) from this rank's ``local`` part."""
    stride: List[int] = []
    step = 1
    for size in reversed(shape):
        stride.insert(0, step)
        step *= max(size, 1)
    return DTensor.from_local(local, mesh, placements, run_check=False, shape=torch.Size(shape),
                              stride=tuple(stride))


def _rule(body: Callable[..., Any]) -> Callable[..., Any]:
    """A torch_dispatch rule that binds the call to ``body(func, ...)``, whose Python signature
    is the operator's schema (Python's own binding: no schema parsing)."""
    def rule(cls: type, func: Operator, types: Any, args: Any, kwargs: Any) -> Any:
        return body(func, *args, **(kwargs or {}))
    return rule


# ---- embedding_lookup ------------------------------------------------------------------------

def _lookup(func: Operator, input: DTensor, weight: DTensor, *args: Any,
            **kwargs: Any) -> DTensor:
    options = Options(*args, **kwargs)
    mesh = _common_mesh(func, {"input": input, "weight": weight})
    options.call(func, _meta(input), _meta(weight))
    plan = plan_lookup(tuple(weight.placements), tuple(input.placements), input.ndim)
    weight_to, input_to = plan.args
    rows, shape = weight.shape[0], tuple(input.shape) + (weight.shape[1],)
    with torch.no_grad():
        indices, table = _redistribute(input, input_to), _redistribute(weight, weight_to)
        if plan.row_dim is None:  # all rows here: the operator itself
            local = options.call(ops.embedding_lookup, indices, table)
        else:
            local = options.call(ops._vocab_shard_lookup, indices, table, rows,
                                 *_shard(mesh, plan.row_dim))
        return _wrap(local, mesh, plan.out, shape)


# ---- embedding_backward, _scaled_embedding_backward -----------------------------------------

def _gradient(mesh: DeviceMesh, grad: DTensor, input: DTensor, rows: int, options: Options,
              scale: Optional[float]) -> DTensor:
    """The (rows, D) unit-scaled weight gradient of the global problem (input.numel() lookups),
    with the call's scale or an explicit one."""
    plan = plan_gradient(tuple(grad.placements), tuple(input.placements), grad.ndim, input.ndim)
    grad_to, input_to = plan.args
    with torch.no_grad():
        g, indices = _redistribute(grad, grad_to), _redistribute(input, input_to)
        local = options.call(ops._vocab_shard_backward, g, indices, rows,
                             *_shard(mesh, plan.row_dim), num_lookups=input.numel(), scale=scale)
        return _wrap(local, mesh, plan.out, (rows, grad.shape[-1]))


def _backward(func: Operator, grad_output: DTensor, input: DTensor, num_weights: int,
              *args: Any, **kwargs: Any) -> DTensor:
    options = Options(*args, **kwargs)
    mesh = _common_mesh(func, {"grad_output": grad_output, "input": input})
    options.call(func, _meta(grad_output), _meta(input), num_weights)
    return _gradient(mesh, grad_output, input, num_weights, options, scale=None)


def _scaled_backward(func: Operator, grad_output: DTensor, input: DTensor, num_weights: int,
                     padding_row: int, scale: float) -> DTensor:
    mesh = _common_mesh(func, {"grad_output": grad_output, "input": input})
    func(_meta(grad_output), _meta(input), num_weights, padding_row, scale)
    # The operator's explicit row (-1: none) as the options' padding_idx, already in [0, V).
    options = Options(padding_idx=None if padding_row == -1 else padding_row)
    return _gradient(mesh, grad_output, input, num_weights, options, scale=scale)


# ---- embedding_renorm_ ------------------------------------------------------------------------

def _renorm_block(table: torch.Tensor, local: torch.Tensor, max_norm: float, norm_type: float,
                  mesh: DeviceMesh, col_dim: int, cols: int) -> None:
    """Renorms, in place, the rows of ``table`` (a block of the table's rows, its columns
    sharded over mesh dimension ``col_dim``) that the positions with ``local >= 0`` reference,
    with the operator itself and without data-dependent shapes (so torch.compile traces it):
    every position's row is copied out (row 0 for the positions this rank does not own),
    gathered over the columns, renormed -- the unowned positions only when row 0 is referenced
    too, else they point to an appended zero row, which no renorm touches -- and copied back.
    All copies of a row carry the same values, so the order of the writes does not matter."""
    owned = local >= 0
    at = local.clamp(min=0)
    block = table.index_select(0, at)
    columns = [Shard(1) if m == col_dim else Replicate() for m in range(mesh.ndim)]
    block = _wrap(block, mesh, columns, (block.shape[0], cols)).full_tensor()
    count = at.numel()
    row_zero_referenced = (owned & (at == 0)).any()
    which = torch.where(owned | row_zero_referenced,
                        torch.arange(count, device=at.device), count)
    extended = torch.cat([block, block.new_zeros(1, block.shape[1])])
    ops.embedding_renorm_(extended, which, max_norm, norm_type)
    # Back to this rank's columns (a local split, no communication).
    replicated = _wrap(extended[:count], mesh, [Replicate()] * mesh.ndim, (count, cols))
    table.index_copy_(0, at, replicated.redistribute(mesh, columns).to_local())


def _renorm(func: Operator, weight: DTensor, input: DTensor, max_norm: float,
            norm_type: float) -> None:
    mesh = _common_mesh(func, {"weight": weight, "input": input})
    func(_meta(weight), _meta(input), max_norm, norm_type)
    rows, cols = weight.shape
    row_dim, col_dim = plan_renorm(tuple(weight.placements))
    with torch.no_grad():
        indices = _redistribute(input, [Replicate()] * mesh.ndim)
        table = weight.to_local()
        if col_dim is None:  # whole rows here: the row-shard renorm (the C++ module's too)
            ops._vocab_shard_renorm_(table, indices, rows, *_shard(mesh, row_dim), max_norm,
                                     norm_type)
        else:  # checks every index against the global V; -1 where this rank owns no row
            local = ops._vocab_shard_indices(indices, rows, *_shard(mesh, row_dim)).reshape(-1)
            if table.shape[0] and local.numel():
                _renorm_block(table, local, max_norm, norm_type, mesh, col_dim, cols)
        if not weight.is_inference():
            torch.autograd.graph.increment_version(weight)
    return None


# ---- embedding (the composite) -------------------------------------------------------------

def _decompose(func: Any, args: Any, kwargs: Any) -> Any:
    """``func``'s CompositeImplicitAutograd kernel on ``args``: the one undocumented torch API of
    this module (``Operator.decompose``, there since torch 2.1), because torch_dispatch rules
    have no public way to run an operator's composite on the subclass itself."""
    return func.decompose(*args, **kwargs)


def _composite(cls: type, func: Operator, types: Any, args: Any, kwargs: Any) -> Any:
    # Reached only where autograd is skipped (inference mode): run the composite itself, which
    # calls embedding_renorm_ and embedding_lookup, whose rules are above.
    return _decompose(func, args, kwargs)


# ---- scale_fwd, scale_bwd ----------------------------------------------------------------------

def _elementwise_sharding(x: Any, scale: float) -> Any:
    """Every placement passes through (a partial sum or mean stays one: both ops are linear;
    DTensor reduces any other partial first)."""
    same = [Replicate(), Partial("sum"), Partial("avg")] + [Shard(d) for d in range(x.ndim)]
    return [([p], [p, None]) for p in same]


def _elementwise_rule(func: Operator, x: DTensor, scale: float) -> DTensor:
    keep = [p if p.is_replicate() or type(p) is Shard or (type(p) is Partial and
            p.reduce_op in ("sum", "avg")) else Replicate() for p in x.placements]
    with torch.no_grad():
        local = func(_redistribute(x, keep), scale)
    return _wrap(local, x.device_mesh, keep, x.shape)


# The same as a rule, where register_sharding is missing (it is experimental).
_elementwise = _rule(_elementwise_rule)

_RULES = {
    "embedding": _composite,
    "embedding_lookup": _rule(_lookup),
    "embedding_backward": _rule(_backward),
    "_scaled_embedding_backward": _rule(_scaled_backward),
    "embedding_renorm_": _rule(_renorm),
}
@functools.cache
def register() -> torch.library.Library:
    """Registers the rules (the first call; later ones return the same library, which keeps
    the registrations alive)."""
    library = torch.library.Library("unit_scaling", "FRAGMENT")
    rules = dict(_RULES)
    try:
        register_sharding([ops.scale_fwd.default, ops.scale_bwd.default])(_elementwise_sharding)
    except Exception:  # an experimental API: fall back to rules of our own
        rules.update(scale_fwd=_elementwise, scale_bwd=_elementwise)
    for name, rule in rules.items():
        torch.library.register_torch_dispatch(f"unit_scaling::{name}", DTensor, rule,
                                              lib=library)
    return library
