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
