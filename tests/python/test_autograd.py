"""gradcheck / gradgradcheck, torch.compile and TorchScript.

The tests that run the device operators take the ``backend`` fixture (conftest.py): inputs are
built on the CPU, moved to the backend's device, and results compared on the CPU."""
import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import unit_scaling_cpp as usc


def plain_gradient_embedding(indices, padding_idx=None):
    """Our op with a backward-only rescale by sqrt(N/V): its Jacobian is the plain lookup's."""
    def f(weight):
        rescale = math.sqrt(indices.numel() / weight.shape[0])
        return usc.functional.embedding(indices, usc.scale_bwd(weight, rescale), padding_idx)
    return f


def test_gradcheck_composed_with_backward_rescale(backend):
    weight = backend.to(torch.randn(7, 3, dtype=torch.float64)).requires_grad_()
    indices = backend.to(torch.tensor([[0, 2, 2], [6, 5, 2]]))
    f = plain_gradient_embedding(indices)
    assert gradcheck(f, (weight,))
    assert gradgradcheck(f, (weight,))


@pytest.mark.parametrize("padding_idx", [2, -1])
def test_jacobian_with_padding_equals_pytorchs(padding_idx, backend):
    # With padding_idx the analytical gradient deliberately differs from the numerical one at
    # the padding row (the spec says so), so compare with PyTorch's analytical Jacobian instead.
    weight = torch.randn(7, 3, dtype=torch.float64)
    indices = torch.tensor([[0, 2, 2], [6, 5, 2]])
    ours = torch.autograd.functional.jacobian(
        plain_gradient_embedding(backend.to(indices), padding_idx), backend.to(weight))
    plain = torch.autograd.functional.jacobian(
        lambda w: torch.nn.functional.embedding(indices, w, padding_idx), weight)
    assert torch.equal(ours.cpu(), plain)


def test_bare_op_is_deliberately_not_the_plain_gradient(backend):
    weight = backend.to(torch.randn(7, 3, dtype=torch.float64)).requires_grad_()
    indices = backend.to(torch.tensor([0, 2, 2, 6, 5, 2]))  # N = 6 != V = 7
    assert not gradcheck(lambda w: usc.functional.embedding(indices, w), (weight,),
                         raise_exception=False)
    square = backend.to(torch.tensor([0, 2, 2, 6, 5, 2, 1]))  # N == V: s = 1, the plain gradient
    assert gradcheck(lambda w: usc.functional.embedding(square, w), (weight,))


def test_gradgradcheck_of_the_bare_op(backend):
    weight = backend.to(torch.randn(5, 2, dtype=torch.float64)).requires_grad_()
    indices = backend.to(torch.tensor([4, 1, 1]))
    assert gradgradcheck(lambda w: usc.functional.embedding(indices, w, 1), (weight,))


class TinyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = usc.Embedding(50, 8, padding_idx=0)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, tokens):
        return self.head(self.embed(tokens)).square().mean()


def test_torch_compile_fullgraph_matches_eager(backend):
    eager = TinyModel().to(backend.device)
    compiled_model = TinyModel().to(backend.device)
    compiled_model.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_model, fullgraph=True)
    tokens = backend.to(torch.randint(0, 50, (4, 6)))
    loss_eager, loss_compiled = eager(tokens), compiled(tokens)
    torch.testing.assert_close(loss_compiled.cpu(), loss_eager.cpu())
    loss_eager.backward()
    loss_compiled.backward()
    for (name, p_eager), p_compiled in zip(eager.named_parameters(), compiled_model.parameters()):
        torch.testing.assert_close(p_compiled.grad.cpu(), p_eager.grad.cpu(), msg=name)


def test_torch_compile_with_max_norm_mutates_the_weight(backend):
    weight = torch.nn.Parameter(backend.to(torch.randn(10, 4) * 5))

    @torch.compile(fullgraph=True, backend="aot_eager")
    def step(tokens):
        return usc.functional.embedding(tokens, weight, max_norm=1.0).sum()

    step(backend.to(torch.tensor([3, 4]))).backward()
    assert weight[3].norm().item() == pytest.approx(1.0, rel=1e-5)
    assert weight.grad[3].abs().sum() > 0


def test_torchscript(backend):
    @torch.jit.script
    def lookup(tokens: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return torch.ops.unit_scaling.embedding(tokens, weight, 0)

    weight = torch.randn(6, 2)
    tokens = torch.tensor([0, 5])
    assert torch.equal(lookup(backend.to(tokens), backend.to(weight)).cpu(), weight[tokens])
    assert "unit_scaling::embedding" in str(lookup.graph)


def test_meta_tensors_give_shapes():
    weight = torch.empty(100, 16, device="meta")
    tokens = torch.empty(3, 5, dtype=torch.long, device="meta")
    assert torch.ops.unit_scaling.embedding(tokens, weight).shape == (3, 5, 16)
    grad = torch.ops.unit_scaling.embedding_backward(torch.empty(3, 5, 16, device="meta"), tokens,
                                                     100, None)
    assert grad.shape == (100, 16)
