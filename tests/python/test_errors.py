"""Bad arguments raise Python's IndexError / ValueError / TypeError and change nothing, on
every backend (the ``backend`` fixture, conftest.py)."""
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

BAD_CALLS = [
    (IndexError, "index 10", dict(indices=[1, 10])),
    (IndexError, "index -1", dict(indices=[-1])),
    (ValueError, "padding_idx=10", dict(padding_idx=10)),
    (ValueError, "padding_idx=-11", dict(padding_idx=-11)),
    (ValueError, "max_norm=0", dict(max_norm=0.0)),
    (ValueError, "max_norm=nan", dict(max_norm=math.nan)),
    (ValueError, "norm_type=-1", dict(norm_type=-1.0)),
    (ValueError, "scale_grad_by_freq", dict(scale_grad_by_freq=True)),
    (ValueError, "sparse", dict(sparse=True)),
    (TypeError, "Float", dict(indices=[1.0])),
    (TypeError, "Long", dict(weight=torch.randint(0, 9, (10, 4)))),
    (ValueError, "2-D", dict(weight=torch.randn(10))),
]


@pytest.mark.parametrize("error,needle,overrides", BAD_CALLS)
@pytest.mark.parametrize("max_norm", [None, 0.5])
def test_error_class_message_and_no_change(error, needle, overrides, max_norm, backend):
    before = overrides.get("weight", torch.randn(10, 4) * 5)
    weight = backend.to(before)
    indices = backend.to(torch.tensor(overrides.get("indices", [1, 2])))
    kwargs = {k: v for k, v in overrides.items() if k not in ("weight", "indices")}
    kwargs.setdefault("max_norm", max_norm)
    with pytest.raises(error, match=needle):
        usc.functional.embedding(indices, weight, **kwargs)
    assert torch.equal(weight.cpu(), before)


def test_tensors_on_different_devices(backend):
    # The other device: the CPU for CUDA tensors; meta tensors for CPU ones.
    other = torch.device("cpu") if backend.device.type == "cuda" else torch.device("meta")
    weight = backend.to(torch.randn(10, 4))
    with pytest.raises(ValueError, match="same device"):
        usc.functional.embedding(torch.tensor([1]).to(other), weight)
    with pytest.raises(ValueError, match="same device"):
        torch.ops.unit_scaling.embedding_lookup(torch.tensor([1]).to(other), weight)
    with pytest.raises(ValueError, match="same device"):
        torch.ops.unit_scaling.embedding_backward(torch.randn(1, 4).to(other),
                                                  backend.to(torch.tensor([1])), 10)


def test_module_rejects_unsupported_options():
    with pytest.raises(ValueError, match="sparse"):
        usc.Embedding(5, 2, sparse=True)
    with pytest.raises(ValueError, match="scale_grad_by_freq"):
        usc.Embedding(5, 2, scale_grad_by_freq=True)


W, I = torch.randn(10, 4), torch.tensor([1, 2])
PREFIXED_ERRORS = [  # (subject, call): every way in, C++ and Python checks alike
    ("embedding", lambda: usc.functional.embedding(I, W, padding_idx=10)),
    ("embedding", lambda: usc.functional.embedding(I, W, sparse=None)),  # Python's TypeError
    ("embedding", lambda: usc.functional.embedding(torch.tensor([10]), W)),  # the bad index
    ("embedding", lambda: usc.Embedding(-1, 4)),
    ("embedding", lambda: usc.Embedding(10, 4, _weight=torch.randn(3, 4))),
    ("embedding", lambda: usc.Embedding.from_pretrained(torch.randn(3))),
    ("embedding", lambda: usc.Embedding.from_pretrained("table")),
    ("embedding", lambda: torch.ops.unit_scaling.embedding_backward(torch.ones(2, 4), I, 10, 12)),
    ("embedding", lambda: torch.ops.unit_scaling._vocab_shard_lookup(I, W[:5], 10, 3, 2)),
    ("embedding", lambda: torch.ops.unit_scaling._vocab_shard_renorm_(W[:5].clone(), I, 10, 0, 2,
                                                                       0.0, 2.0)),
    ("scale_fwd", lambda: usc.scale_fwd(W, math.inf)),
    ("scale_bwd", lambda: usc.scale_bwd("x", 1.0)),
    ("index_check_policy", lambda: usc.set_index_check_policy("sometimes")),
    ("index_check_policy", lambda: usc.set_index_check_policy(3)),
]


@pytest.mark.parametrize("subject,call", PREFIXED_ERRORS)
def test_every_message_starts_with_the_librarys_prefix(subject, call):
    """Contract rule 11: one prefix per subject, from one function (kernels/messages.h)."""
    prefix = torch.ops.unit_scaling._message_prefix(subject)
    assert prefix == f"unit_scaling {subject}: "
    with pytest.raises((IndexError, ValueError, TypeError)) as raised:
        call()
    assert str(raised.value).startswith(prefix), str(raised.value)


def test_the_bad_index_sentence():
    """Contract rule 3's words (the same sentence as the CUDA device assertion's, which lacks
    only the coordinates: test_cuda_runtime.py, device_assertion_test.cpp)."""
    with pytest.raises(IndexError) as raised:
        usc.functional.embedding(torch.tensor([[1, 2], [3, 10]]), W)
    assert str(raised.value).splitlines()[0] == (
        "unit_scaling embedding: index 10 at input[1, 1] (flat position 3) is out of range for "
        "weight with 10 rows; every index must satisfy 0 <= index < 10")
    with pytest.raises(ValueError, match="no message subject 'nothing'"):
        torch.ops.unit_scaling._message_prefix("nothing")
