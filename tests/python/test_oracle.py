"""The reference library unit_scaling as oracle, wherever the semantics agree.

The tests that run our operators take the ``backend`` fixture (conftest.py): ours runs on each
backend, the reference on the CPU, and the results are compared on the CPU."""
import math
import random

import pytest
import torch
import unit_scaling as U
import unit_scaling.functional as UF

import unit_scaling_cpp as usc

CASES = [
    (seed, dtype, index_dtype)
    for seed in range(6)
    for dtype in (torch.float32, torch.float64)
    for index_dtype in (torch.int64, torch.int32)
]


def random_case(seed):
    rng = random.Random(seed)
    num_rows = rng.randint(1, 300)
    dim = rng.randint(1, 40)
    shape = tuple(rng.randint(1, 7) for _ in range(rng.randint(0, 3)))
    padding_idx = rng.choice([None, rng.randrange(-num_rows, num_rows)])
    return num_rows, dim, shape, padding_idx


@pytest.mark.parametrize("seed,dtype,index_dtype", CASES)
def test_functional_matches_reference(seed, dtype, index_dtype, backend):
    num_rows, dim, shape, padding_idx = random_case(seed)
    torch.manual_seed(seed)
    weight = torch.randn(num_rows, dim, dtype=dtype)
    indices = torch.randint(0, num_rows, shape, dtype=index_dtype)
    grad = torch.randn(*shape, dim, dtype=dtype)

    ours_w = backend.to(weight).requires_grad_()
    ref_w = weight.clone().requires_grad_()
    ours = usc.functional.embedding(backend.to(indices), ours_w, padding_idx)
    ref = UF.embedding(indices, ref_w, padding_idx)
    assert torch.equal(ours.cpu(), ref)
    ours.backward(backend.to(grad))
    ref.backward(grad)
    torch.testing.assert_close(ours_w.grad.cpu(), ref_w.grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_module_matches_reference(seed, backend):
    num_rows, dim, shape, padding_idx = random_case(seed)
    torch.manual_seed(seed)
    ours = usc.Embedding(num_rows, dim, padding_idx=padding_idx)
    torch.manual_seed(seed)
    ref = U.Embedding(num_rows, dim, padding_idx=padding_idx)
    assert torch.equal(ours.weight, ref.weight)  # same init: N(0, 1), padding row zeroed
    assert ours.extra_repr() == ref.extra_repr()
    assert ours.padding_idx == ref.padding_idx
    ours.to(backend.device)
    indices = torch.randint(0, num_rows, shape)
    grad = torch.randn(*shape, dim)
    out_ours, out_ref = ours(backend.to(indices)), ref(indices)
    assert torch.equal(out_ours.cpu(), out_ref)
    out_ours.backward(backend.to(grad))
    out_ref.backward(grad)
    torch.testing.assert_close(ours.weight.grad.cpu(), ref.weight.grad, rtol=1e-6, atol=1e-6)


def test_from_pretrained_matches_reference():
    table = torch.randn(9, 4)
    ours = usc.Embedding.from_pretrained(table, padding_idx=2)
    ref = U.Embedding.from_pretrained(table, padding_idx=2)
    assert isinstance(ours, usc.Embedding)
    # freeze=True (the default) is honoured; the reference re-wraps its weight as a new
    # Parameter in __init__ and so loses it (a difference we keep on purpose).
    assert ours.weight.requires_grad is False
    assert ref.weight.requires_grad is True
    assert torch.equal(ours.weight, table)
    indices = torch.tensor([[2, 8, 0]])
    assert torch.equal(ours(indices), ref(indices))
    trainable = usc.Embedding.from_pretrained(table, freeze=False)
    assert trainable.weight.requires_grad


def test_constructor_arguments_match_reference():
    kwargs = dict(padding_idx=-1, max_norm=2.0, norm_type=3.0, dtype=torch.float64)
    ours, ref = usc.Embedding(12, 5, **kwargs), U.Embedding(12, 5, **kwargs)
    for name in ("num_embeddings", "embedding_dim", "padding_idx", "max_norm", "norm_type"):
        assert getattr(ours, name) == getattr(ref, name), name
    assert ours.weight.dtype == torch.float64
    assert torch.all(ours.weight[11] == 0)
    assert repr(ours).endswith(repr(ref).split("(", 1)[1])


def test_scale_primitives_match_reference():
    from unit_scaling.scale import scale_bwd, scale_fwd

    x = torch.randn(5, 3, dtype=torch.float64)
    g = torch.randn(5, 3, dtype=torch.float64)
    for ours_fn, ref_fn in ((usc.scale_fwd, scale_fwd), (usc.scale_bwd, scale_bwd)):
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ours_fn(a, 0.3), ref_fn(b, 0.3)
        torch.testing.assert_close(ya, yb)
        ya.backward(g)
        yb.backward(g)
        torch.testing.assert_close(a.grad, b.grad)


def test_unit_scale_of_the_gradient(backend):
    weight = backend.to(torch.randn(4096, 64)).requires_grad_()
    indices = torch.randint(0, 4096, (16, 32))
    out = usc.functional.embedding(backend.to(indices), weight)
    out.backward(backend.to(torch.randn(16, 32, 64)))
    grad = weight.grad.cpu()
    assert abs(grad.std().item() - 1) < 0.1
    assert math.isclose(grad.ne(0).any(1).sum().item(), indices.unique().numel())
