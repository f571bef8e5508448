"""Every operator reachable as torch.ops.unit_scaling.* checks its own arguments: Python's
error classes, and no crash (these calls used to segfault or write out of bounds)."""
import math

import pytest
import torch

import unit_scaling_cpp as usc

ops = torch.ops.unit_scaling
G = torch.randn(4, 8)

BAD_CALLS = [
    ("index too large", IndexError, "index 1000000 at input[3]",
     lambda: ops.embedding_backward(G, torch.tensor([0, 1, 2, 10**6]), 10)),
    ("negative index", IndexError, "index -5 at input[3]",
     lambda: ops.embedding_backward(G, torch.tensor([0, 1, 2, -5]), 10)),
    ("int32 index too large", IndexError, "index 10 at input[1]",
     lambda: ops.embedding_backward(G[:2], torch.tensor([0, 10], dtype=torch.int32), 10)),
    ("grad rows short", ValueError, "grad_output must have shape input.shape + (D,)",
     lambda: ops.embedding_backward(torch.randn(1, 8), torch.tensor([0, 1, 2, 3]), 10)),
    ("grad rank", ValueError, "grad_output must have shape",
     lambda: ops.embedding_backward(torch.randn(4, 2, 8), torch.tensor([0, 1, 2, 3]), 10)),
    ("uint8 grad", TypeError, "grad_output must be float32",
     lambda: ops.embedding_backward(torch.ones(4, 8, dtype=torch.uint8),
                                    torch.tensor([0, 1, 2, 3]), 64)),
    ("float indices", TypeError, "input must hold int64 or int32 indices",
     lambda: ops.embedding_backward(torch.ones(4, 8), torch.tensor([0., 1.5, 2., 3.]), 10)),
    ("negative num_weights", ValueError, "num_weights must be >= 0",
     lambda: ops.embedding_backward(G, torch.tensor([0, 1, 2, 3]), -1)),
    ("backward padding", ValueError, "padding_idx=10 is out of range",
     lambda: ops.embedding_backward(G, torch.tensor([0, 1, 2, 3]), 10, 10)),
    ("huge num_weights", ValueError, "overflows int64",
     lambda: ops.embedding_backward(G, torch.tensor([0, 1, 2, 3]), 2**62)),
    ("lookup padding", ValueError, "padding_idx=5 is out of range",
     lambda: ops.embedding_lookup(torch.tensor([1]), torch.randn(3, 2), 5)),
    ("lookup index", IndexError, "index 3 at input[0]",
     lambda: ops.embedding_lookup(torch.tensor([3]), torch.randn(3, 2))),
    ("lookup 1-d weight", ValueError, "weight must be 2-D",
     lambda: ops.embedding_lookup(torch.tensor([0]), torch.randn(3))),
    ("renorm max_norm", ValueError, "max_norm must be > 0",
     lambda: ops.embedding_renorm_(torch.randn(3, 2), torch.tensor([1]), -1.0, 2.0)),
    ("scale_fwd nan", ValueError, "scale must be finite",
     lambda: ops.scale_fwd(G, math.nan)),
    ("scale_bwd inf", ValueError, "scale must be finite",
     lambda: ops.scale_bwd(G, math.inf)),
]


@pytest.mark.parametrize("error,needle,call", [c[1:] for c in BAD_CALLS],
                         ids=[c[0] for c in BAD_CALLS])
def test_bad_operator_call_is_a_clear_error(error, needle, call):
    with pytest.raises(error, match=needle.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)").replace("+", r"\+")):
        call()


@pytest.mark.parametrize("storage_shape", [((5, 5), (1, 1)), ((4, 3), (2, 1)), ((3, 3), (2, 2))])
def test_renorm_rejects_overlapping_rows_and_writes_nothing(storage_shape):
    storage = torch.randn(64) * 10
    before = storage.clone()
    weight = storage.as_strided(*storage_shape)
    with pytest.raises(ValueError, match="sharing memory"):
        usc.functional.embedding(torch.tensor([0, 1]), weight, max_norm=0.5)
    with pytest.raises(ValueError, match="sharing memory"):
        ops.embedding_renorm_(weight, torch.tensor([0, 1]), 0.5, 2.0)
    assert torch.equal(storage, before)


def test_renorm_bad_index_writes_nothing():
    weight = torch.randn(3, 2) * 10
    before = weight.clone()
    with pytest.raises(IndexError, match="index 3 at input"):
        ops.embedding_renorm_(weight, torch.tensor([0, 1, 3]), 1.0, 2.0)
    assert torch.equal(weight, before)


def test_indices_mutated_after_forward():
    weight = torch.randn(10, 4, requires_grad=True)
    idx = torch.tensor([1, 2, 3])
    out = usc.functional.embedding(idx, weight)
    idx.data[0] = 10**7
    with pytest.raises(IndexError, match="index 10000000 at input"):
        out.sum().backward()


@pytest.mark.parametrize("poison", [math.inf, math.nan])
def test_double_backward_is_zero_at_padding_positions(poison):
    weight = torch.randn(6, 3, requires_grad=True)
    tokens = torch.tensor([2, 0, 2, 5])
    grad_out = torch.randn(4, 3, requires_grad=True)
    ours = usc.functional.embedding(tokens, weight, padding_idx=2)
    (gw,) = torch.autograd.grad(ours, weight, grad_out, create_graph=True)
    ggw = torch.randn(6, 3)
    ggw[2] = poison
    (result,) = torch.autograd.grad(gw, grad_out, ggw)
    plain_w = weight.detach().clone().requires_grad_()
    plain = torch.nn.functional.embedding(tokens, plain_w, padding_idx=2)
    (plain_gw,) = torch.autograd.grad(plain, plain_w, grad_out, create_graph=True)
    (plain_result,) = torch.autograd.grad(plain_gw, grad_out, ggw)
    assert torch.equal(result[[0, 2]], torch.zeros(2, 3))
    assert torch.equal(plain_result[[0, 2]], torch.zeros(2, 3))
    torch.testing.assert_close(result[[1, 3]], plain_result[[1, 3]] * math.sqrt(6 / 4))
