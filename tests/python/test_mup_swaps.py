"""The u-μP tags through every path torch uses to replace or swap a module's parameter (issue 20;
the mechanism is described in unit_scaling_cpp/_parameter.py): load_state_dict(assign=True),
.to('meta'), .to(dtype) with and without swap_module_params_on_conversion, load_state_dict
under that flag, torch.multiprocessing's pickler, torch.save + torch.load(weights_only=True),
deepcopy, assignment, functional_call. FSDP2 and parallelize_module: test_fsdp2.py,
test_dtensor.py, test_mesh_2d.py."""
import copy
import io
from multiprocessing.reduction import ForkingPickler

import pytest
import torch
import torch.multiprocessing  # noqa: F401  (registers torch's reductions with ForkingPickler)
from torch import nn

import unit_scaling_cpp as usc
from unit_scaling_cpp._parameter import mup_tags

uu = pytest.importorskip("unit_scaling")
from unit_scaling.parameter import has_parameter_data  # noqa: E402


def _module(depth=None):
    module = usc.Embedding(10, 4, padding_idx=0)
    if depth is not None:
        module.weight.mup_scaling_depth = depth  # a tag changed by the user travels too
    return module


def _assert_tagged(module, depth=None, mup_type="weight"):
    weight = module.weight
    assert isinstance(weight, nn.Parameter)
    assert has_parameter_data(weight)
    assert mup_tags(weight) == (mup_type, depth)
    uu.optim.AdamW(module.parameters(), lr=1e-3)  # the reference optimizer accepts it


@pytest.fixture
def swap():
    """Runs the test with torch.__future__.set_swap_module_params_on_conversion(True)."""
    before = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(True)
    yield
    torch.__future__.set_swap_module_params_on_conversion(before)


def test_load_state_dict_with_assign():
    module, source = _module(depth=3), _module()
    source.weight.data.fill_(0.5)
    old = module.weight
    module.load_state_dict(source.state_dict(), assign=True)
    assert module.weight is not old  # a new parameter object ...
    assert torch.equal(module.weight, source.weight)
    _assert_tagged(module, 3)  # ... with the tags


@pytest.mark.parametrize("flag", [False, True], ids=["plain", "swap"])
def test_to_meta_and_dtype_and_back(request, flag):
    if flag:
        request.getfixturevalue("swap")
    module = _module(depth=2)
    module.to(torch.float64)
    assert module.weight.dtype == torch.float64
    _assert_tagged(module, 2)
    module.half()
    _assert_tagged(module, 2)
    module.to("meta")
    assert module.weight.is_meta
    _assert_tagged(module, 2)
    module.to_empty(device="cpu")
    _assert_tagged(module, 2)


def test_load_state_dict_under_swap(swap):
    module, source = _module(depth=5), _module()
    source.weight.data.fill_(0.25)
    module.load_state_dict(source.state_dict())
    assert torch.equal(module.weight, source.weight)
    _assert_tagged(module, 5)
    module.load_state_dict(source.state_dict(), assign=True)
    _assert_tagged(module, 5)
    # A state dict of tagged parameters (keep_vars): the hooks stay bound to this parameter.
    module.load_state_dict(source.state_dict(keep_vars=True), assign=True)
    _assert_tagged(module, 5)
    copied = copy.deepcopy(module.weight)
    copied.data.fill_(1.0)
    assert torch.equal(module.weight, source.weight)  # a copy of this parameter, not the source


def test_torch_multiprocessing_pickler():
    # What a torch.multiprocessing queue or spawn does with the module: shared-memory tensors.
    module = _module(depth=1)
    received = ForkingPickler.loads(ForkingPickler.dumps(module))
    assert torch.equal(received.weight, module.weight)
    _assert_tagged(received, 1)


def test_torch_save_and_default_load_of_the_parameter():
    module = _module(depth=4)
    buffer = io.BytesIO()
    torch.save(module.weight, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer)  # weights_only=True: torch's own allow-listed rebuild
    assert isinstance(loaded, nn.Parameter)
    assert has_parameter_data(loaded)
    assert mup_tags(loaded) == ("weight", 4)
    assert torch.equal(loaded, module.weight)
    # ... and a dict of parameters, as an optimizer-free checkpoint might hold.
    buffer = io.BytesIO()
    torch.save({"embedding": module.weight}, buffer)
    buffer.seek(0)
    assert mup_tags(torch.load(buffer, weights_only=True)["embedding"]) == ("weight", 4)


def test_deepcopy_of_the_parameter_and_of_copies():
    module = _module(depth=6)
    copied = copy.deepcopy(module.weight)
    assert mup_tags(copied) == ("weight", 6)
    assert mup_tags(copy.deepcopy(copied)) == ("weight", 6)
    assert copied.data_ptr() != module.weight.data_ptr()


def test_assignment_and_register_parameter_tag_a_new_parameter():
    module = _module(depth=2)
    module.weight = nn.Parameter(torch.randn(10, 4))
    _assert_tagged(module, 2)
    module.register_parameter("weight", nn.Parameter(torch.randn(10, 4)))
    _assert_tagged(module, 2)
    # A parameter that arrives with tags of its own keeps them.
    module.weight = uu.Parameter(torch.randn(10, 4), mup_type="output", mup_scaling_depth=1)
    _assert_tagged(module, 1, mup_type="output")
    module.to(torch.float64)
    _assert_tagged(module, 1, mup_type="output")


def test_functional_call_leaves_the_parameter_and_its_tags():
    module = _module(depth=3)
    tokens = torch.tensor([[1, 2, 0]])
    replacement = torch.zeros(10, 4)
    out = torch.func.functional_call(module, {"weight": replacement}, (tokens,))
    assert torch.equal(out, torch.zeros(1, 3, 4))
    assert not hasattr(replacement, "mup_type")  # plain tensors are not tagged
    _assert_tagged(module, 3)
