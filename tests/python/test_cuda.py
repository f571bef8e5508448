"""The operators on a CUDA device (skipped without one; run on a GPU machine, see README)."""
import pytest
import torch

import unit_scaling_cpp as usc

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_matches_cpu(dtype):
    weight = torch.randn(500, 32).to(dtype)
    tokens = torch.randint(0, 500, (16, 64))
    grad = torch.randn(16, 64, 32).to(dtype)
    results = []
    for device in ("cpu", "cuda"):
        w = weight.detach().clone().to(device).requires_grad_()
        out = usc.functional.embedding(tokens.to(device), w, padding_idx=3)
        out.backward(grad.to(device))
        results.append((out.cpu(), w.grad.cpu()))
    assert torch.equal(results[0][0], results[1][0])
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-5, atol=1e-5)


def test_cuda_errors_and_compile():
    weight = torch.randn(10, 4, device="cuda")
    with pytest.raises(IndexError, match="index 10"):
        usc.functional.embedding(torch.tensor([1, 10], device="cuda"), weight)
    with pytest.raises(ValueError, match="same device"):
        usc.functional.embedding(torch.tensor([1]), weight)
    model = usc.Embedding(100, 8).cuda()
    compiled = torch.compile(model, fullgraph=True)
    tokens = torch.randint(0, 100, (4, 5), device="cuda")
    torch.testing.assert_close(compiled(tokens), model(tokens))
    compiled(tokens).sum().backward()
    assert model.weight.grad is not None
