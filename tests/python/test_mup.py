"""u-μP metadata on the module's weight: what the reference library's optimizers require."""
import copy
import io
import pickle

import pytest
import torch

import unit_scaling_cpp as usc

uu = pytest.importorskip("unit_scaling")
from unit_scaling.parameter import has_parameter_data  # noqa: E402


def _assert_tagged(parameter, depth=None):
    assert isinstance(parameter, torch.nn.Parameter)
    assert has_parameter_data(parameter)
    assert parameter.mup_type == "weight"
    assert parameter.mup_scaling_depth == depth


def test_constructed_and_pretrained_weights_are_tagged():
    _assert_tagged(usc.Embedding(10, 4).weight)
    frozen = usc.Embedding.from_pretrained(torch.randn(10, 4))
    _assert_tagged(frozen.weight)
    assert not frozen.weight.requires_grad  # freeze kept (the reference loses it)
    trainable = usc.Embedding.from_pretrained(torch.randn(10, 4), freeze=False, padding_idx=1)
    _assert_tagged(trainable.weight)
    assert trainable.weight.requires_grad


def test_tags_survive_reset_deepcopy_pickle_save_load_and_state_dict():
    module = usc.Embedding(10, 4, padding_idx=0)
    module.weight.mup_scaling_depth = 3
    module.reset_parameters()
    _assert_tagged(module.weight, 3)

    copied = copy.deepcopy(module)
    _assert_tagged(copied.weight, 3)
    assert copied.weight.data_ptr() != module.weight.data_ptr()
    assert torch.equal(copied.weight, module.weight)
    _assert_tagged(copy.deepcopy(copied).weight, 3)  # a copy of a copy

    unpickled = pickle.loads(pickle.dumps(module))
    _assert_tagged(unpickled.weight, 3)
    _assert_tagged(copy.deepcopy(unpickled).weight, 3)
    assert torch.equal(unpickled.weight, module.weight)

    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    _assert_tagged(loaded.weight, 3)
    assert torch.equal(loaded.weight, module.weight)

    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    fresh = usc.Embedding(10, 4, padding_idx=0)
    fresh.load_state_dict(torch.load(buffer))  # weights_only=True: plain tensors
    _assert_tagged(fresh.weight)
    assert torch.equal(fresh.weight, module.weight)

    converted = usc.Embedding(10, 4).to(torch.float64)
    _assert_tagged(converted.weight)


@pytest.mark.parametrize("optimizer", ["Adam", "AdamW", "SGD"])
def test_reference_u_mup_optimizers_accept_the_module(optimizer):
    model = torch.nn.Sequential(usc.Embedding(64, 8), uu.Linear(8, 8))
    opt = getattr(uu.optim, optimizer)(model.parameters(), lr=1e-2)
    weight_before = model[0].weight.detach().clone()
    loss = model(torch.randint(0, 64, (4, 5))).square().mean()
    loss.backward()
    opt.step()
    assert not torch.equal(model[0].weight.detach(), weight_before)
    groups = uu.optim.scaled_parameters(model.parameters(), uu.optim.lr_scale_func_adam, lr=1.0)
    assert len(groups) == 2


def test_untagged_parameter_is_what_the_optimizer_rejects():
    # The failure the tags prevent: a plain nn.Embedding weight has no mup_type.
    with pytest.raises(ValueError, match="mup_type"):
        uu.optim.AdamW(torch.nn.Embedding(8, 2).parameters(), lr=1e-2)
