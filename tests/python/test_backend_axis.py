"""The backend axis itself (backend_axis.py): the aten_fallback route really runs the ATen
fallback, and only while it is installed.

Two observations, each enough on its own: the route's kernels count the calls that pass through
them, and the profiler records the ATen operators that the fallback is built from
(``index_select`` for the lookup, ``embedding_dense_backward`` for the gradient,
``embedding_renorm_`` for max_norm), which the CPU kernels never call.
"""
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import backend_axis
import unit_scaling_cpp as usc

ops = torch.ops.unit_scaling

# The ATen operator that shows each device operator ran the fallback (aten_fallback.cpp).
FALLBACK_SIGNATURE = {
    "embedding_lookup": "aten::index_select",
    "embedding_backward": "aten::embedding_dense_backward",
    "_scaled_embedding_backward": "aten::embedding_dense_backward",
    "embedding_renorm_": "aten::embedding_renorm_",
}


def _call(name):
    weight = torch.randn(10, 4) * 5
    tokens = torch.tensor([[1, 3], [3, 9]])
    grad = torch.randn(2, 2, 4)
    calls = {
        "embedding_lookup": lambda: ops.embedding_lookup(tokens, weight),
        "embedding_backward": lambda: ops.embedding_backward(grad, tokens, 10, 1),
        "_scaled_embedding_backward": lambda: ops._scaled_embedding_backward(grad, tokens, 10,
                                                                              -1, 0.5),
        "embedding_renorm_": lambda: ops.embedding_renorm_(weight, tokens, 1.0, 2.0),
    }
    calls[name]()


def _aten_ops_run_by(function):
    with profile(activities=[ProfilerActivity.CPU], acc_events=True) as prof:
        function()
    return {event.name for event in prof.events()}


@pytest.mark.parametrize("name", backend_axis.DEVICE_OPERATORS)
def test_route_reaches_the_fallback_and_removal_restores_the_cpu_kernels(name):
    signature = FALLBACK_SIGNATURE[name]
    assert signature not in _aten_ops_run_by(lambda: _call(name))  # the CPU kernel
    with backend_axis.AtenFallbackRoute() as route:
        assert signature in _aten_ops_run_by(lambda: _call(name))  # the fallback
        assert route.calls == {name: 1}
    assert signature not in _aten_ops_run_by(lambda: _call(name))  # the CPU kernel again
    assert route.calls == {name: 1}


def test_route_applies_below_autograd_and_the_composite_op():
    with backend_axis.AtenFallbackRoute() as route:
        weight = (torch.randn(10, 4) * 5).requires_grad_()
        tokens = torch.tensor([1, 3, 3])
        names = _aten_ops_run_by(
            lambda: usc.functional.embedding(tokens, weight, max_norm=1.0).sum().backward())
    assert route.calls == {"embedding_renorm_": 1, "embedding_lookup": 1,
                           "embedding_backward": 1}
    assert {"aten::index_select", "aten::embedding_dense_backward",
            "aten::embedding_renorm_"} <= names


def test_route_applies_to_compiled_graphs_and_opcheck():
    with backend_axis.AtenFallbackRoute() as route:
        torch.compiler.reset()
        compiled = torch.compile(lambda t, w: usc.functional.embedding(t, w), fullgraph=True)
        weight = torch.randn(10, 4, requires_grad=True)
        compiled(torch.tensor([1, 2]), weight).sum().backward()
        assert route.calls["embedding_lookup"] >= 1 and route.calls["embedding_backward"] >= 1
        route.calls.clear()
        torch.library.opcheck(ops.embedding_lookup, (torch.tensor([1, 2]), weight, None))
        assert route.calls["embedding_lookup"] >= 1


def test_fixture_gives_each_backend(backend):
    assert backend.to(torch.zeros(1)).device.type == backend.device.type
    assert (backend.route is not None) == (backend.name == "aten_fallback")
    if backend.route is not None:
        ops.embedding_lookup(backend.to(torch.tensor([0])), backend.to(torch.ones(2, 3)))
        assert backend.route.calls == {"embedding_lookup": 1}


def test_device_operators_are_the_ones_every_backend_registers():
    """DEVICE_OPERATORS is the Python copy of register_backend's list (entry_points.h): exactly
    the operators with a kernel of their own under CPU, each with the fallback for the others."""
    registered = {name.split("::", 1)[1]
                  for name in torch._C._dispatch_get_registrations_for_dispatch_key("CPU")
                  if name.startswith("unit_scaling::")}
    assert registered == set(backend_axis.DEVICE_OPERATORS)
    for name in backend_axis.DEVICE_OPERATORS:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"unit_scaling::{name}",
                                                              "CompositeExplicitAutograd")


def test_backend_table():
    assert backend_axis.NAMES == ("cpu", "aten_fallback", "cuda")
    for row in backend_axis.BACKENDS:
        assert backend_axis.spec(row.name) is row
        expected = backend_axis.NO_CUDA if row.needs_gpu and not torch.cuda.is_available() else None
        assert row.skip_reason() == expected
        assert (row.route is not None) == (row.name == "aten_fallback")
        (mark,) = backend_axis.param(row.name).marks or [None]
        assert (mark is not None) == (expected is not None)


def test_activate_installs_the_route_only_while_active():
    tokens, weight = torch.tensor([0]), torch.ones(2, 3)
    with backend_axis.activate("aten_fallback") as chosen:
        ops.embedding_lookup(tokens, weight)
        assert chosen.route.calls == {"embedding_lookup": 1}
    ops.embedding_lookup(tokens, weight)
    assert chosen.route.calls == {"embedding_lookup": 1}
    with backend_axis.activate("cpu") as chosen:
        assert chosen.route is None and chosen.device == torch.device("cpu")


def test_index_errors_pins_raise_on_gpu_backends_only(backend):
    outside = usc.get_index_check_policy()
    with backend.index_errors():
        inside = usc.get_index_check_policy()
    assert inside == ("raise" if backend_axis.spec(backend.name).needs_gpu else outside)
