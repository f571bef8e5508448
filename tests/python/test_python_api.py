"""The Python API's signatures and argument errors: the module's constructor and
``from_pretrained`` spell out torch's parameters (typed, no ``*args``/``**kwargs``), and the
scaling primitives raise the documented TypeError / ValueError."""
import inspect
import math

import pytest
import torch

import unit_scaling_cpp as usc


def _parameters(function):
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_constructor_and_from_pretrained_have_torchs_parameters():
    ours = _parameters(usc.Embedding.__init__)
    torchs = _parameters(torch.nn.Embedding.__init__)
    assert ours[:len(torchs)] == torchs
    assert [name for name, *_ in ours[len(torchs):]] == ["token_multiplier", "num_tokens"]
    ours = _parameters(usc.Embedding.from_pretrained)
    torchs = _parameters(torch.nn.Embedding.from_pretrained)
    assert ours[:len(torchs)] == torchs
    kinds = {p.kind for p in inspect.signature(usc.Embedding.from_pretrained).parameters.values()}
    assert inspect.Parameter.VAR_POSITIONAL not in kinds
    assert inspect.Parameter.VAR_KEYWORD not in kinds
    hints = inspect.signature(usc.Embedding.__init__).parameters
    assert hints["dtype"].annotation != inspect.Parameter.empty
    assert hints["device"].annotation != inspect.Parameter.empty


def test_from_pretrained_positional_and_keyword_arguments():
    table = torch.randn(6, 3)
    module = usc.Embedding.from_pretrained(table, False, 2, None, 2.0, False, False,
                                           token_multiplier=2.0)
    assert module.padding_idx == 2 and module.weight.requires_grad
    assert module.token_multiplier == 2.0
    assert torch.equal(module.weight.detach(), table)  # used as is: padding row not zeroed
    frozen = usc.Embedding.from_pretrained(table, num_tokens=5)
    assert not frozen.weight.requires_grad and frozen.num_tokens == 5
    with pytest.raises(TypeError, match="freeze must be a bool"):
        usc.Embedding.from_pretrained(table, "yes")
    with pytest.raises(TypeError, match="padding_idx must be an int"):
        usc.Embedding.from_pretrained(table, True, 1.5)
    with pytest.raises(ValueError, match="padding_idx=6 is out of range"):
        usc.Embedding.from_pretrained(table, True, 6)
    with pytest.raises(TypeError):
        usc.Embedding.from_pretrained(table, True, None, None, 2.0, False, False, 1.0)


def test_constructor_device_and_dtype():
    module = usc.Embedding(4, 2, device="meta", dtype=torch.float16)
    assert module.weight.device.type == "meta" and module.weight.dtype == torch.float16


@pytest.mark.parametrize("primitive", [usc.scale_fwd, usc.scale_bwd])
def test_scaling_primitives_raise_the_documented_errors(primitive):
    name = primitive.__name__
    x = torch.randn(3)
    with pytest.raises(TypeError, match=f"unit_scaling {name}: x must be a Tensor, got list"):
        primitive([1.0, 2.0], 1.0)
    with pytest.raises(TypeError, match=f"unit_scaling {name}: scale must be a float, got str"):
        primitive(x, "2")
    with pytest.raises(TypeError, match="scale must be a float, got bool"):
        primitive(x, True)
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match=f"unit_scaling {name}: scale must be finite"):
            primitive(x, bad)
    assert torch.equal(primitive(x, 2), primitive(x, 2.0))
