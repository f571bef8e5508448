"""The functional and the module under torch.func transforms (vmap, grad, vjp, jvp, jacrev,
jacfwd, hessian, their compositions, functional_call ensembles), against float64 math of the
contract: forward ``weight[input]``; weight gradient ``s * scatter_sum(grad_output)`` over
non-padding positions with ``s = sqrt(V / N)`` for each mapped call's own ``N``; forward-mode
tangent the lookup of the weight's tangent. docs/API.md, "torch.func and ONNX", lists each row
that these tests pin. The transforms route runs the device operators, so the tests that reach
them take the backend axis (conftest.py)."""
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as torch_F
from torch.func import (functional_call, grad, hessian, jacfwd, jacrev, jvp, stack_module_state,
                        vjp, vmap)

import unit_scaling_cpp as usc

E = usc.functional.embedding
V, D = 7, 3
F64 = torch.float64


def unit_scale(rows, count, token_multiplier=1.0, num_tokens=None):
    tokens = num_tokens if num_tokens is not None else max(count, 1) * token_multiplier
    return math.sqrt(rows / tokens)


def scatter(input, grad_output, rows, padding_idx=None):
    """The plain scatter-sum of grad_output rows to rows input, padding positions left out
    (float64)."""
    flat = input.reshape(-1).long()
    grads = grad_output.reshape(flat.numel(), -1).to(F64)
    keep = torch.ones_like(flat, dtype=torch.bool)
    if padding_idx is not None:
        keep = flat != padding_idx % rows
    out = torch.zeros(rows, grads.shape[-1], dtype=F64)
    return out.index_add_(0, flat[keep], grads[keep])


def contract_grad(input, grad_output, rows, padding_idx=None, **tokens):
    return unit_scale(rows, input.numel(), **tokens) * scatter(input, grad_output, rows,
                                                               padding_idx)


def one_hot(input, rows, padding_idx=None):
    """S[p, r] = [input_p == r]; padding positions zeroed when padding_idx is given."""
    flat = input.reshape(-1).long()
    s = torch.nn.functional.one_hot(flat, rows).to(F64)
    if padding_idx is not None:
        s[flat == padding_idx % rows] = 0
    return s


def lookup_jacobian(input, rows, dim, padding_idx=None):
    """d out[p, d] / d W[r, e] of the plain lookup, shape input.shape + (D, V, D)."""
    s = one_hot(input, rows, padding_idx)
    eye = torch.eye(dim, dtype=F64)
    return torch.einsum("pr,de->pdre", s, eye).reshape(*input.shape, dim, rows, dim)


def table(rows=V, dim=D, dtype=F64, batch=()):
    return torch.randn(*batch, rows, dim, dtype=dtype)


def tokens(shape, idt=torch.int64, rows=V):
    return torch.randint(0, rows, shape, dtype=idt)


PADDINGS = [None, 2, -1]
TOKEN_OPTIONS = [{}, {"token_multiplier": 0.5}, {"num_tokens": 96}]
TOKEN_IDS = ["N", "multiplier", "num_tokens"]


# --- vmap: each mapped call is its own call ---------------------------------------------------


@pytest.mark.parametrize("in_dims", [(None, 0), (0, None), (0, 0), (2, 1)],
                         ids=["indices", "weight", "both", "inner_dims"])
@pytest.mark.parametrize("idt", [torch.int64, torch.int32])
def test_vmap_forward_equals_stacked_calls(in_dims, idt, backend):
    weight_dim, input_dim = in_dims
    weights = backend.to(table(batch=(4,)))
    indices = backend.to(tokens((4, 2, 5), idt))
    w_in = weights if weight_dim is None or weight_dim == 0 else weights.movedim(0, weight_dim)
    x_in = indices if input_dim in (None, 0) else indices.movedim(0, input_dim)
    if weight_dim is None:
        w_in = weights[0]
    if input_dim is None:
        x_in = indices[0]
    out = vmap(lambda w, x: E(x, w, padding_idx=1), in_dims=in_dims)(w_in, x_in)
    expected = torch.stack([
        (weights[0] if weight_dim is None else weights[b])[indices[0] if input_dim is None
                                                           else indices[b]]
        for b in range(4)])
    torch.testing.assert_close(out.cpu(), expected.cpu(), rtol=0, atol=0)


def test_vmap_out_dims_chunk_size_and_nesting(backend):
    weights = backend.to(table(batch=(3,)))
    indices = backend.to(tokens((3, 4, 5)))
    f = lambda w, x: E(x, w)  # noqa: E731
    out = vmap(f, in_dims=(0, 0), out_dims=1, chunk_size=2)(weights, indices)
    expected = torch.stack([weights[b][indices[b]] for b in range(3)], dim=1)
    torch.testing.assert_close(out.cpu(), expected.cpu(), rtol=0, atol=0)
    nested = vmap(vmap(f, in_dims=(None, 0)), in_dims=(0, 0))(weights, indices)
    torch.testing.assert_close(nested.cpu(),
                               torch.stack([weights[b][indices[b]] for b in range(3)]).cpu(),
                               rtol=0, atol=0)


def test_vmap_of_the_module():
    emb = usc.Embedding(V, D, padding_idx=0)
    indices = tokens((4, 6))
    out = vmap(emb)(indices)
    torch.testing.assert_close(out, emb.weight[indices], rtol=0, atol=0)


# --- reverse mode ----------------------------------------------------------------------------


@pytest.mark.parametrize("options", TOKEN_OPTIONS, ids=TOKEN_IDS)
@pytest.mark.parametrize("padding_idx", PADDINGS)
@pytest.mark.parametrize("idt", [torch.int64, torch.int32])
def test_grad_equals_the_contract_and_eager_autograd(idt, padding_idx, options, backend):
    weight = backend.to(table())
    indices = backend.to(tokens((3, 4), idt))
    indices[0, 0] = 2 % V  # a padding position, when padding is on
    indices[0, 1] = -1 % V
    upstream = backend.to(torch.randn(3, 4, D, dtype=F64))

    def loss(w):
        return (E(indices, w, padding_idx, **options) * upstream).sum()

    got = grad(loss)(weight)
    expected = contract_grad(indices.cpu(), upstream.cpu(), V, padding_idx, **options)
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-12, atol=1e-12)
    # the same numbers as the operator's own (C++) autograd
    leaf = weight.clone().requires_grad_()
    loss(leaf).backward()
    torch.testing.assert_close(got, leaf.grad, rtol=0, atol=0)


@pytest.mark.parametrize("padding_idx", PADDINGS)
def test_vjp_and_jacrev_are_the_scaled_transpose(padding_idx, backend):
    weight = backend.to(table())
    indices = backend.to(torch.tensor([[0, 2, 2], [6, 1, 2]]))
    out, pullback = vjp(lambda w: E(indices, w, padding_idx), weight)
    torch.testing.assert_close(out.cpu(), weight.cpu()[indices.cpu()], rtol=0, atol=0)
    cotangent = torch.randn(2, 3, D, dtype=F64)
    (got,) = pullback(backend.to(cotangent))
    torch.testing.assert_close(got.cpu(), contract_grad(indices.cpu(), cotangent, V, padding_idx),
                               rtol=1e-12, atol=1e-12)
    jacobian = jacrev(lambda w: E(indices, w, padding_idx))(weight)
    s = unit_scale(V, indices.numel())
    torch.testing.assert_close(jacobian.cpu(),
                               s * lookup_jacobian(indices.cpu(), V, D, padding_idx),
                               rtol=1e-12, atol=1e-12)


# --- forward mode ----------------------------------------------------------------------------


@pytest.mark.parametrize("padding_idx", PADDINGS)
def test_jvp_and_jacfwd_are_the_lookup_of_the_tangent(padding_idx, backend):
    weight = backend.to(table())
    indices = backend.to(torch.tensor([[0, 2, 2], [6, 1, 2]], dtype=torch.int32))
    tangent = torch.randn(V, D, dtype=F64)
    out, out_tangent = jvp(lambda w: E(indices, w, padding_idx), (weight,),
                           (backend.to(tangent),))
    torch.testing.assert_close(out.cpu(), weight.cpu()[indices.cpu().long()], rtol=0, atol=0)
    # The tangent of a lookup, padding positions included (as torch's F.embedding's tangent):
    # the unit scale is a property of the backward only.
    torch.testing.assert_close(out_tangent.cpu(), tangent[indices.cpu().long()], rtol=0, atol=0)
    jacobian = jacfwd(lambda w: E(indices, w, padding_idx))(weight)
    torch.testing.assert_close(jacobian.cpu(), lookup_jacobian(indices.cpu(), V, D), rtol=0,
                               atol=0)


# --- second order ----------------------------------------------------------------------------


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_hessian_and_reverse_over_reverse(padding_idx, backend):
    weight = backend.to(table())
    indices = backend.to(torch.tensor([[0, 2, 2, 5], [6, 1, 2, 5]]))
    coefficients = torch.randn(2, 4, D, dtype=F64)
    c = backend.to(coefficients)

    def loss(w):
        return (c * E(indices, w, padding_idx) ** 3).sum()

    s = unit_scale(V, indices.numel())
    x = indices.cpu()
    looked_up = weight.cpu()[x].reshape(-1, D)
    curvature = 6 * coefficients.reshape(-1, D) * looked_up  # d^2 loss / d out^2, diagonal
    s_kept, s_all = one_hot(x, V, padding_idx), one_hot(x, V)

    def analytic(left, right):
        # H[r, e, r', e'] = delta(e, e') sum_p left[p, r] curvature[p, e] right[p, r']
        return torch.einsum("pr,pe,pq,ef->reqf", left, curvature, right, torch.eye(D, dtype=F64))

    # hessian = jacfwd(jacrev): the scaled gradient, differentiated forward (unscaled tangent)
    torch.testing.assert_close(hessian(loss)(weight).cpu(), s * analytic(s_kept, s_all),
                               rtol=1e-10, atol=1e-10)
    # jacrev(jacrev): the scale once per reverse pass, as torch.autograd's double backward
    twice = jacrev(jacrev(loss))(weight)
    torch.testing.assert_close(twice.cpu(), s * s * analytic(s_kept, s_kept), rtol=1e-10,
                               atol=1e-10)
    leaf = weight.clone().requires_grad_()
    (g,) = torch.autograd.grad(loss(leaf), leaf, create_graph=True)
    direction = backend.to(torch.randn(V, D, dtype=F64))
    (hv,) = torch.autograd.grad(g, leaf, direction)
    torch.testing.assert_close(hv, (twice * direction).sum(dim=(2, 3)), rtol=1e-10, atol=1e-10)


# --- compositions with vmap: per-sample gradients, one scale per slice -----------------------


@pytest.mark.parametrize("chunk_size", [None, 2])
@pytest.mark.parametrize("padding_idx", [None, -1])
def test_per_sample_gradients_scale_each_sample_by_its_own_count(padding_idx, chunk_size,
                                                                 backend):
    weight = backend.to(table())
    samples = backend.to(tokens((5, 4)))
    upstream = backend.to(torch.randn(5, 4, D, dtype=F64))

    def loss(w, x, g):
        return (E(x, w, padding_idx) * g).sum()

    got = vmap(grad(loss), in_dims=(None, 0, 0), chunk_size=chunk_size)(weight, samples, upstream)
    expected = torch.stack([contract_grad(samples[b].cpu(), upstream[b].cpu(), V, padding_idx)
                            for b in range(5)])
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-12, atol=1e-12)
    # sqrt(V / 4) per sample, not sqrt(V / 20) for the batch
    plain = torch.stack([scatter(samples[b].cpu(), upstream[b].cpu(), V, padding_idx)
                         for b in range(5)])
    torch.testing.assert_close(got.cpu(), math.sqrt(V / 4) * plain, rtol=1e-12, atol=1e-12)


def test_grad_of_vmap_sums_the_slices_gradients(backend):
    weight = backend.to(table())
    samples = backend.to(tokens((3, 6)))
    upstream = backend.to(torch.randn(3, 6, D, dtype=F64))

    def loss(w):
        return (vmap(lambda x: E(x, w, 1))(samples) * upstream).sum()

    expected = sum(contract_grad(samples[b].cpu(), upstream[b].cpu(), V, 1) for b in range(3))
    torch.testing.assert_close(grad(loss)(weight).cpu(), expected, rtol=1e-12, atol=1e-12)


def test_per_model_gradients_over_a_batch_of_tables(backend):
    weights = backend.to(table(batch=(3,)))
    indices = backend.to(tokens((2, 5)))
    upstream = backend.to(torch.randn(2, 5, D, dtype=F64))

    def loss(w):
        return (E(indices, w, 0) * upstream).sum()

    got = vmap(grad(loss))(weights)
    expected = contract_grad(indices.cpu(), upstream.cpu(), V, 0)
    for b in range(3):
        torch.testing.assert_close(got[b].cpu(), expected, rtol=1e-12, atol=1e-12)
    jacobians = vmap(jacrev(lambda w: E(indices, w)))(weights)
    s = unit_scale(V, indices.numel())
    torch.testing.assert_close(jacobians.cpu(),
                               s * lookup_jacobian(indices.cpu(), V, D).expand(3, -1, -1, -1, -1,
                                                                               -1),
                               rtol=1e-12, atol=1e-12)


# --- modules: functional_call, stack_module_state ensembles ----------------------------------


def test_functional_call_under_grad_equals_module_backward():
    emb = usc.Embedding(V, D, padding_idx=3, dtype=F64)
    indices = tokens((4, 5))
    upstream = torch.randn(4, 5, D, dtype=F64)
    params = {k: v.detach() for k, v in emb.named_parameters()}
    got = grad(lambda p: (functional_call(emb, p, (indices,)) * upstream).sum())(params)
    (emb(indices) * upstream).sum().backward()
    torch.testing.assert_close(got["weight"], emb.weight.grad, rtol=0, atol=0)
    torch.testing.assert_close(got["weight"], contract_grad(indices, upstream, V, 3), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("shared_batch", [True, False], ids=["shared_batch", "batch_per_model"])
def test_stack_module_state_ensemble_trains_like_separate_models(shared_batch):
    models = [usc.Embedding(V, D, padding_idx=0, dtype=F64) for _ in range(3)]
    references = [usc.Embedding(V, D, padding_idx=0, dtype=F64) for _ in range(3)]
    for model, reference in zip(models, references):
        reference.load_state_dict(model.state_dict())
    params, buffers = stack_module_state(models)
    base = usc.Embedding(V, D, padding_idx=0, dtype=F64).to("meta")

    def loss(p, b, x, target):
        return ((functional_call(base, (p, b), (x,)) - target) ** 2).mean()

    lr = 0.5
    for step in range(3):
        batches = tokens((3, 4, 5))
        targets = torch.randn(3, 4, 5, D, dtype=F64)
        data_dims = None if shared_batch else 0
        if shared_batch:
            batches, targets = batches[0], targets[0]
        # forward of the ensemble = each model's forward
        outs = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)),
                    in_dims=(0, 0, data_dims))(params, buffers, batches)
        grads = vmap(grad(loss), in_dims=(0, 0, data_dims, data_dims))(params, buffers, batches,
                                                                       targets)
        params = {k: v - lr * grads[k] for k, v in params.items()}
        for m, reference in enumerate(references):
            x = batches if shared_batch else batches[m]
            t = targets if shared_batch else targets[m]
            torch.testing.assert_close(outs[m], reference(x), rtol=0, atol=0)
            reference.zero_grad()
            ((reference(x) - t) ** 2).mean().backward()
            with torch.no_grad():
                reference.weight -= lr * reference.weight.grad
    for m, reference in enumerate(references):
        torch.testing.assert_close(params["weight"][m], reference.weight.detach(), rtol=1e-12,
                                   atol=1e-12)


# --- max_norm: as torch.nn.functional.embedding under each transform -------------------------


def renormed(weight, indices, max_norm):
    """The rows of weight referenced by indices renormed to max_norm (float64, p = 2)."""
    out = weight.clone()
    for row in indices.reshape(-1).unique().tolist():
        norm = out[row].norm()
        if norm > max_norm:
            out[row] *= max_norm / (norm + 1e-7)
    return out


@pytest.mark.parametrize("transform", ["grad", "vjp", "jacrev", "jvp", "jacfwd"])
def test_max_norm_renorms_the_callers_weight_in_place_like_torch(transform, backend):
    weight = backend.to(table() * 3)
    indices = backend.to(torch.tensor([[0, 2, 2], [6, 1, 0]]))
    before = weight.cpu().clone()
    theirs = before.clone()
    f = lambda w: E(indices, w, max_norm=1.0)  # noqa: E731
    torch_f = lambda w: torch_F.embedding(indices.cpu(), w, max_norm=1.0)  # noqa: E731
    upstream = torch.randn(2, 3, D, dtype=F64)
    s = unit_scale(V, indices.numel())
    if transform == "grad":
        got = grad(lambda w: (f(w) * backend.to(upstream)).sum())(weight)
        grad(lambda w: (torch_f(w) * upstream).sum())(theirs)
        expected = contract_grad(indices.cpu(), upstream, V)
    elif transform == "vjp":
        _, pullback = vjp(f, weight)
        got = pullback(backend.to(upstream))[0]
        vjp(torch_f, theirs)
        expected = contract_grad(indices.cpu(), upstream, V)
    elif transform == "jacrev":
        got = jacrev(f)(weight)
        jacrev(torch_f)(theirs)
        expected = s * lookup_jacobian(indices.cpu(), V, D)
    elif transform == "jvp":
        tangent = torch.randn(V, D, dtype=F64)
        got = jvp(f, (weight,), (backend.to(tangent),))[1]
        jvp(torch_f, (theirs,), (tangent,))
        expected = tangent[indices.cpu()]
    else:
        got = jacfwd(f)(weight)
        jacfwd(torch_f)(theirs)
        expected = lookup_jacobian(indices.cpu(), V, D)
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-12, atol=1e-12)
    # the caller's weight renormed in place, as torch's F.embedding does under the transform
    torch.testing.assert_close(weight.cpu(), renormed(before, indices.cpu(), 1.0))
    torch.testing.assert_close(weight.cpu(), theirs, rtol=1e-12, atol=1e-12)


# torch's own F.embedding, called here for comparison, warns that it has no batching rule.
TORCH_RENORM_FALLBACK = pytest.mark.filterwarnings("ignore:There is a performance drop")


@TORCH_RENORM_FALLBACK
def test_max_norm_under_vmap_over_tables_renorms_each_table(backend):
    weights = backend.to(table(batch=(3,)) * 3)
    indices = backend.to(tokens((3, 4)))
    before = weights.cpu().clone()
    out = vmap(lambda w, x: E(x, w, max_norm=1.0))(weights, indices)
    theirs = before.clone()
    torch_out = vmap(lambda w, x: torch_F.embedding(x, w, max_norm=1.0))(theirs, indices.cpu())
    for b in range(3):
        expected = renormed(before[b], indices[b].cpu(), 1.0)
        torch.testing.assert_close(weights[b].cpu(), expected)
        torch.testing.assert_close(out[b].cpu(), expected[indices[b].cpu()])
    torch.testing.assert_close(weights.cpu(), theirs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.cpu(), torch_out, rtol=1e-12, atol=1e-12)


@TORCH_RENORM_FALLBACK
@pytest.mark.parametrize("transform", ["vmap", "vmap_grad"])
def test_max_norm_with_one_table_and_a_batch_of_indices_raises_like_torch(transform, backend):
    weight = backend.to(table() * 3)
    indices = backend.to(tokens((3, 4)))
    before = weight.cpu().clone()

    def run(embedding, w, x):
        if transform == "vmap":
            return vmap(lambda x: embedding(x, w, max_norm=1.0))(x)
        return vmap(grad(lambda w, x: embedding(x, w, max_norm=1.0).sum()),
                    in_dims=(None, 0))(w, x)

    # torch refuses it (an in-place update of one tensor from a batch of slices) ...
    with pytest.raises(RuntimeError, match="vmap"):
        run(torch_F.embedding, before.clone(), indices.cpu())
    # ... and so do we, with the same kind of error, before writing anything
    with pytest.raises(RuntimeError, match="vmap: unit_scaling::embedding_renorm_"):
        run(E, weight, indices)
    torch.testing.assert_close(weight.cpu(), before, rtol=0, atol=0)


# --- errors under transforms -----------------------------------------------------------------


def _message(call):
    with pytest.raises(Exception) as info:
        call()
    return info.type, str(info.value)


@pytest.mark.parametrize("transform", ["vmap", "grad", "jvp"])
@pytest.mark.parametrize("case", ["bad_index", "scale_grad_by_freq", "sparse", "padding_idx",
                                  "max_norm", "num_tokens"])
def test_errors_under_transforms_are_the_eager_errors(transform, case):
    weight = table()
    indices = torch.tensor([[0, 1, 2], [3, 4, 5]])
    kwargs = {}
    if case == "bad_index":
        indices[1, 2] = V
    elif case in ("scale_grad_by_freq", "sparse"):
        kwargs[case] = True
    elif case == "padding_idx":
        kwargs["padding_idx"] = V
    elif case == "max_norm":
        kwargs["max_norm"] = -1.0
    else:
        kwargs["num_tokens"] = 0
    before = weight.clone()
    expected_type, expected_message = _message(lambda: E(indices, weight.clone(), **kwargs))
    assert expected_type in (IndexError, ValueError)
    if transform == "vmap":
        call = lambda: vmap(lambda x: E(x, weight, **kwargs))(indices)  # noqa: E731
    elif transform == "grad":
        call = lambda: grad(lambda w: E(indices, w, **kwargs).sum())(weight)  # noqa: E731
    else:
        call = lambda: jvp(lambda w: E(indices, w, **kwargs), (weight,),  # noqa: E731
                           (torch.ones_like(weight),))
    got_type, got_message = _message(call)
    assert got_type is expected_type
    if case != "bad_index" or transform != "vmap":
        assert got_message == expected_message
    else:  # one call over the whole batch of indices: the position is the batch's
        assert f"index {V} at input[1, 2] (flat position" in got_message
    torch.testing.assert_close(weight, before, rtol=0, atol=0)


# --- torch.compile of transformed functions --------------------------------------------------


def test_compiled_per_sample_gradients_with_changing_shapes():
    torch.compiler.reset()
    weight = table(50, 8, dtype=torch.float32)

    def loss(w, x, g):
        return (E(x, w, 1) * g).sum()

    eager = vmap(grad(loss), in_dims=(None, 0, 0))
    compiled = torch.compile(eager, fullgraph=True, dynamic=True)
    for batch, length in ((4, 6), (3, 10), (5, 2)):
        x = tokens((batch, length), rows=50)
        g = torch.randn(batch, length, 8)
        got = compiled(weight, x, g)
        torch.testing.assert_close(got, eager(weight, x, g), rtol=0, atol=0)
        expected = torch.stack([contract_grad(x[b], g[b], 50, 1) for b in range(batch)])
        torch.testing.assert_close(got.to(F64), expected, rtol=1e-6, atol=1e-6)


def test_compiled_grad_and_vmap():
    torch.compiler.reset()
    weight = table(30, 4)
    x = tokens((3, 7), rows=30)
    g = torch.randn(3, 7, 4, dtype=F64)
    loss = lambda w: (E(x, w, 0) * g).sum()  # noqa: E731
    torch.testing.assert_close(torch.compile(grad(loss), fullgraph=True)(weight),
                               contract_grad(x, g, 30, 0), rtol=1e-12, atol=1e-12)
    torch.compiler.reset()
    lookup = vmap(lambda w, i: E(i, w), in_dims=(None, 0))
    torch.testing.assert_close(torch.compile(lookup, fullgraph=True)(weight, x), weight[x],
                               rtol=0, atol=0)


@pytest.mark.parametrize("second_order", ["hessian", "jacrev_jacrev"])
def test_compiled_second_order_with_changing_shapes(second_order):
    torch.compiler.reset()
    weight = table()

    def loss(w, x, c):
        return (c * E(x, w, 1) ** 3).sum()

    eager = hessian(loss) if second_order == "hessian" else jacrev(jacrev(loss))
    compiled = torch.compile(eager, dynamic=True, fullgraph=True)
    for n in (4, 9, 6):  # the double backward's scale sqrt(V / N) stays symbolic
        x, c = tokens((n,)), torch.randn(n, D, dtype=F64)
        torch.testing.assert_close(compiled(weight, x, c), eager(weight, x, c), rtol=0, atol=0)


def test_compiled_transforms_with_max_norm_renorm_in_place_like_eager():
    torch.compiler.reset()
    x = torch.tensor([[0, 2, 2], [6, 1, 0]])
    base = table() * 3
    g = torch.randn(2, 3, D, dtype=F64)
    per_weight = grad(lambda w: (E(x, w, max_norm=1.0) * g).sum())
    eager_weight, compiled_weight = base.clone(), base.clone()
    expected = per_weight(eager_weight)
    got = torch.compile(per_weight, fullgraph=True)(compiled_weight)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(compiled_weight, eager_weight, rtol=0, atol=0)
    torch.testing.assert_close(compiled_weight, renormed(base, x, 1.0))
    torch.compiler.reset()
    per_table = vmap(lambda w, i: E(i, w, max_norm=1.0))
    eager_tables, compiled_tables = base.expand(2, V, D).clone(), base.expand(2, V, D).clone()
    expected = per_table(eager_tables, x)
    got = torch.compile(per_table, fullgraph=True)(compiled_tables, x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(compiled_tables, eager_tables, rtol=0, atol=0)


# Importing the package does not import torch._dynamo (nor, through it, DTensor); the route is
# kept whole in compiled graphs whichever of the two is imported first.
IMPORT_ORDER = """
import sys, torch
{first}
import unit_scaling_cpp
assert ("torch._dynamo" in sys.modules) == {dynamo_first}
from torch.func import grad, vmap
w, x = torch.randn(9, 2), torch.randint(0, 9, (3, 4))
f = vmap(grad(lambda w, x: unit_scaling_cpp.functional.embedding(x, w).sum()), in_dims=(None, 0))
assert torch.equal(torch.compile(f, fullgraph=True)(w, x), f(w, x))
"""


@pytest.mark.parametrize("dynamo_first", [False, True])
def test_compiles_whichever_is_imported_first(dynamo_first):
    code = IMPORT_ORDER.format(first="import torch._dynamo" if dynamo_first else "",
                               dynamo_first=dynamo_first)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_operators_called_directly_keep_their_cpp_autograd():
    # documented: under grad / vjp / jvp use the functional or the module, not torch.ops
    weight, indices = table(), tokens((2, 3))
    with pytest.raises(RuntimeError, match="cannot use C\\+\\+ torch::autograd::Function"):
        grad(lambda w: torch.ops.unit_scaling.embedding_lookup(indices, w).sum())(weight)
    # their vmap rules do work: one lookup of a batch of index tensors
    out = vmap(torch.ops.unit_scaling.embedding_lookup, in_dims=(0, None))(indices, weight)
    torch.testing.assert_close(out, weight[indices], rtol=0, atol=0)


# --- outside transforms nothing changes ------------------------------------------------------


def test_outside_transforms_the_operator_path_is_unchanged():
    weight = table().requires_grad_()
    out = E(tokens((4,)), weight)
    # the C++ autograd of unit_scaling::embedding_lookup, not the torch.func route's Function
    assert "EmbeddingLookupFunction" in out.grad_fn.name()
    assert usc._func.transforms_active() is False
