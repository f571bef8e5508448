"""Bad arguments raise Python's IndexError / ValueError / TypeError and change nothing."""
import math

import pytest
import torch

import unit_scaling_cpp as usc

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
def test_error_class_message_and_no_change(error, needle, overrides, max_norm):
    weight = overrides.get("weight", torch.randn(10, 4) * 5)
    before = weight.clone()
    indices = torch.tensor(overrides.get("indices", [1, 2]))
    kwargs = {k: v for k, v in overrides.items() if k not in ("weight", "indices")}
    kwargs.setdefault("max_norm", max_norm)
    with pytest.raises(error, match=needle):
        usc.functional.embedding(indices, weight, **kwargs)
    assert torch.equal(weight, before)


def test_module_rejects_unsupported_options():
    with pytest.raises(ValueError, match="sparse"):
        usc.Embedding(5, 2, sparse=True)
    with pytest.raises(ValueError, match="scale_grad_by_freq"):
        usc.Embedding(5, 2, scale_grad_by_freq=True)
