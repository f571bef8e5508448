"""Every operator reachable as torch.ops.unit_scaling.* checks its own arguments: Python's
error classes, and no crash (these calls used to segfault or write out of bounds). Every test
runs once per backend (the ``backend`` fixture, conftest.py)."""
import math

import pytest
import torch

import unit_scaling_cpp as usc


@pytest.fixture(autouse=True)
def _raise_index_errors():
    """These tests pin the IndexError of a bad index: the "raise" index-check policy, which
    CUDA needs for it (its default is a device-side assertion, test_cuda_runtime.py)."""
    with usc.index_check_policy("raise"):
        yield

ops = torch.ops.unit_scaling
G = torch.randn(4, 8)
T = torch.tensor

# Each call takes ``d``, which puts a CPU tensor on the backend's device (Backend.to).
BAD_CALLS = [
    ("index too large", IndexError, "index 1000000 at input[3]",
     lambda d: ops.embedding_backward(d(G), d(T([0, 1, 2, 10**6])), 10)),
    ("negative index", IndexError, "index -5 at input[3]",
     lambda d: ops.embedding_backward(d(G), d(T([0, 1, 2, -5])), 10)),
    ("int32 index too large", IndexError, "index 10 at input[1]",
     lambda d: ops.embedding_backward(d(G[:2]), d(T([0, 10], dtype=torch.int32)), 10)),
    ("scaled backward index", IndexError, "index 10 at input[1]",
     lambda d: ops._scaled_embedding_backward(d(G[:2]), d(T([0, 10])), 10, -1, 1.0)),
    ("grad rows short", ValueError, "grad_output must have shape input.shape + (D,)",
     lambda d: ops.embedding_backward(d(torch.randn(1, 8)), d(T([0, 1, 2, 3])), 10)),
    ("grad rank", ValueError, "grad_output must have shape",
     lambda d: ops.embedding_backward(d(torch.randn(4, 2, 8)), d(T([0, 1, 2, 3])), 10)),
    ("uint8 grad", TypeError, "grad_output must be float32",
     lambda d: ops.embedding_backward(d(torch.ones(4, 8, dtype=torch.uint8)),
                                      d(T([0, 1, 2, 3])), 64)),
    ("float indices", TypeError, "input must hold int64 or int32 indices",
     lambda d: ops.embedding_backward(d(torch.ones(4, 8)), d(T([0., 1.5, 2., 3.])), 10)),
    ("negative num_weights", ValueError, "num_weights must be >= 0",
     lambda d: ops.embedding_backward(d(G), d(T([0, 1, 2, 3])), -1)),
    ("backward padding", ValueError, "padding_idx=10 is out of range",
     lambda d: ops.embedding_backward(d(G), d(T([0, 1, 2, 3])), 10, 10)),
    ("huge num_weights", ValueError, "overflows int64",
     lambda d: ops.embedding_backward(d(G), d(T([0, 1, 2, 3])), 2**62)),
    ("lookup padding", ValueError, "padding_idx=5 is out of range",
     lambda d: ops.embedding_lookup(d(T([1])), d(torch.randn(3, 2)), 5)),
    ("lookup index", IndexError, "index 3 at input[0]",
     lambda d: ops.embedding_lookup(d(T([3])), d(torch.randn(3, 2)))),
    ("lookup 1-d weight", ValueError, "weight must be 2-D",
     lambda d: ops.embedding_lookup(d(T([0])), d(torch.randn(3)))),
    ("renorm max_norm", ValueError, "max_norm must be > 0",
     lambda d: ops.embedding_renorm_(d(torch.randn(3, 2)), d(T([1])), -1.0, 2.0)),
    ("scale_fwd nan", ValueError, "scale must be finite",
     lambda d: ops.scale_fwd(d(G), math.nan)),
    ("scale_bwd inf", ValueError, "scale must be finite",
     lambda d: ops.scale_bwd(d(G), math.inf)),
]


@pytest.mark.parametrize("name,error,needle,call", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_operator_call_is_a_clear_error(name, error, needle, call, backend):
    with pytest.raises(error, match=needle.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)").replace("+", r"\+")):
        call(backend.to)


@pytest.mark.parametrize("storage_shape", [((5, 5), (1, 1)), ((4, 3), (2, 1)), ((3, 3), (2, 2))])
def test_renorm_rejects_overlapping_rows_and_writes_nothing(storage_shape, backend):
    before = torch.randn(64) * 10
    storage = backend.to(before)
    weight = storage.as_strided(*storage_shape)
    tokens = backend.to(T([0, 1]))
    with pytest.raises(ValueError, match="sharing memory"):
        usc.functional.embedding(tokens, weight, max_norm=0.5)
    with pytest.raises(ValueError, match="sharing memory"):
        ops.embedding_renorm_(weight, tokens, 0.5, 2.0)
    assert torch.equal(storage.cpu(), before)


def test_renorm_bad_index_writes_nothing(backend):
    before = torch.randn(3, 2) * 10
    weight = backend.to(before)
    with pytest.raises(IndexError, match="index 3 at input"):
        ops.embedding_renorm_(weight, backend.to(T([0, 1, 3])), 1.0, 2.0)
    assert torch.equal(weight.cpu(), before)


def test_indices_mutated_after_forward(backend):
    weight = backend.to(torch.randn(10, 4)).requires_grad_()
    idx = backend.to(T([1, 2, 3]))
    out = usc.functional.embedding(idx, weight)
    idx.data[0] = 10**7
    with pytest.raises(IndexError, match="index 10000000 at input"):
        out.sum().backward()


@pytest.mark.parametrize("poison", [math.inf, math.nan])
def test_double_backward_is_zero_at_padding_positions(poison, backend):
    weight = torch.randn(6, 3, requires_grad=True)
    tokens = T([2, 0, 2, 5])
    grad_out = torch.randn(4, 3, requires_grad=True)
    ggw = torch.randn(6, 3)
    ggw[2] = poison
    ours_w = backend.to(weight.detach()).requires_grad_()
    ours_grad_out = backend.to(grad_out.detach()).requires_grad_()
    ours = usc.functional.embedding(backend.to(tokens), ours_w, padding_idx=2)
    (gw,) = torch.autograd.grad(ours, ours_w, ours_grad_out, create_graph=True)
    (result,) = torch.autograd.grad(gw, ours_grad_out, backend.to(ggw))
    result = result.cpu()
    plain_w = weight.detach().clone().requires_grad_()
    plain = torch.nn.functional.embedding(tokens, plain_w, padding_idx=2)
    (plain_gw,) = torch.autograd.grad(plain, plain_w, grad_out, create_graph=True)
    (plain_result,) = torch.autograd.grad(plain_gw, grad_out, ggw)
    assert torch.equal(result[[0, 2]], torch.zeros(2, 3))
    assert torch.equal(plain_result[[0, 2]], torch.zeros(2, 3))
    torch.testing.assert_close(result[[1, 3]], plain_result[[1, 3]] * math.sqrt(6 / 4))
