"""Where we differ from the reference library on purpose, tested explicitly.

Ours runs on each backend (the ``backend`` fixture, conftest.py), the reference and PyTorch on
the CPU; results are compared on the CPU."""
import pytest
import torch
import unit_scaling.functional as UF

import unit_scaling_cpp as usc


def test_max_norm_changes_the_callers_weight(backend):
    weight = torch.randn(10, 4) * 5
    indices = torch.tensor([1, 3, 3])
    ref_weight = weight.clone()
    UF.embedding(indices, ref_weight, max_norm=1.0)
    assert torch.equal(ref_weight, weight)  # the reference renorms a temporary copy

    ours = backend.to(weight)
    version = ours._version
    usc.functional.embedding(backend.to(indices), ours, max_norm=1.0)
    assert ours._version > version
    ours = ours.cpu()
    for row in (1, 3):
        assert ours[row].norm().item() == pytest.approx(1.0, rel=1e-5)
    assert torch.equal(ours[0], weight[0])
    # The same rule as torch.embedding_renorm_ on a copy.
    expected = weight.clone()
    torch.embedding_renorm_(expected, indices, 1.0, 2.0)
    torch.testing.assert_close(ours, expected)


def test_empty_input_gives_zero_gradient(backend):
    indices = torch.empty(0, 3, dtype=torch.long)
    ref_weight = torch.randn(5, 2, requires_grad=True)
    with pytest.raises(ZeroDivisionError):
        UF.embedding(indices, ref_weight)
    weight = backend.to(torch.randn(5, 2)).requires_grad_()
    out = usc.functional.embedding(backend.to(indices), weight)
    assert out.shape == (0, 3, 2)
    out.sum().backward()
    assert torch.equal(weight.grad.cpu(), torch.zeros(5, 2))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_gradients_are_closer_to_float64(dtype, backend):
    rows, dim, n = 1000, 64, 65536
    ranks = torch.arange(1, rows + 1, dtype=torch.float64)
    indices = torch.multinomial(ranks.pow(-1.1), n, replacement=True)
    grad = torch.randn(n, dim).to(dtype)
    exact = torch.zeros(rows, dim, dtype=torch.float64).index_add_(0, indices, grad.double())
    exact *= (rows / n) ** 0.5

    def error(g):
        return ((g.double() - exact).norm() / exact.norm()).item()

    ours_w = backend.to(torch.zeros(rows, dim, dtype=dtype)).requires_grad_()
    usc.functional.embedding(backend.to(indices), ours_w).backward(backend.to(grad))
    ref_w = torch.zeros(rows, dim, dtype=dtype, requires_grad=True)
    UF.embedding(indices, ref_w).backward(grad)
    rounded = error(exact.to(dtype))
    ours_error = error(ours_w.grad.cpu())
    assert ours_error <= 1.5 * rounded
    assert error(ref_w.grad) > 5 * ours_error


def test_errors_are_atomic_where_pytorch_is_not(backend):
    weight = torch.randn(10, 4) * 5
    indices = torch.tensor([1, 2, 10])
    torch_weight = weight.clone()
    with pytest.raises((IndexError, RuntimeError)):
        torch.nn.functional.embedding(indices, torch_weight, max_norm=1.0)
    ours = backend.to(weight)
    with backend.index_errors(), pytest.raises(IndexError):
        usc.functional.embedding(backend.to(indices), ours, max_norm=1.0)
    assert torch.equal(ours.cpu(), weight)


def test_from_pretrained_freezes_by_default_as_torch_documents():
    """Ours follows torch.nn.Embedding.from_pretrained (freeze=True by default); the reference
    library's module stays trainable whatever freeze says."""
    import unit_scaling
    table = torch.randn(4, 3)
    assert not usc.Embedding.from_pretrained(table).weight.requires_grad
    assert not torch.nn.Embedding.from_pretrained(table).weight.requires_grad
    assert usc.Embedding.from_pretrained(table, freeze=False).weight.requires_grad
    assert unit_scaling.Embedding.from_pretrained(table, freeze=True).weight.requires_grad
