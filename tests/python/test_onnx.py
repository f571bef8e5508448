"""ONNX export of models that use the unit-scaled embedding: ``torch.onnx.export(model, args,
dynamo=True)`` gives a standard ONNX graph (the lookup is a ``Gather``, no custom domain), which
onnxruntime runs to the eager model's numbers. The exported inference graph keeps the forward
(the lookup, ``padding_idx``'s row as stored, ``max_norm``'s renorm) and drops the gradient scale
(docs/API.md, "torch.func and ONNX")."""
import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import unit_scaling_cpp as usc
from unit_scaling_cpp import _onnx

V, D = 20, 4
# Raised inside torch.onnx / onnxscript by their own use of torch's pytree, not by this package.
pytestmark = pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated")


class Model(torch.nn.Module):
    def __init__(self, **options):
        super().__init__()
        self.emb = usc.Embedding(V, D, **options)
        self.proj = torch.nn.Linear(D, 2)

    def forward(self, x):
        return self.proj(self.emb(x))


class FunctionalModel(torch.nn.Module):
    """The functional with the token options (which only the backward reads)."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(V, D))

    def forward(self, x):
        return usc.functional.embedding(x, self.weight, 3, num_tokens=4096) * 2


def _export(model, example, **kwargs):
    program = torch.onnx.export(model, (example,), dynamo=True, verbose=False, **kwargs)
    proto = program.model_proto
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _run(proto, x):
    session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def _op_types(proto):
    return [node.op_type for node in proto.graph.node]


@pytest.mark.parametrize("options", [{}, {"padding_idx": -1}, {"token_multiplier": 0.25}],
                         ids=["plain", "padding", "token_multiplier"])
@pytest.mark.parametrize("idt", [torch.int64, torch.int32])
def test_module_exports_a_gather_that_onnxruntime_runs_like_eager(options, idt):
    model = Model(**options).eval()
    example = torch.randint(0, V, (2, 5), dtype=idt)
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length")
    proto = _export(model, example, dynamic_shapes=({0: batch, 1: length},))
    assert _op_types(proto)[0] == "Gather"
    assert "Gather" in _op_types(proto)
    assert all(node.domain in ("", "ai.onnx") for node in proto.graph.node), _op_types(proto)
    for shape in ((2, 5), (3, 7), (1, 1)):
        x = torch.randint(0, V, shape, dtype=idt)
        x[0, 0] = V - 1  # the padding row, when there is one: its stored values
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(_run(proto, x), expected, rtol=1e-6, atol=1e-6)


def test_functional_drops_the_gradient_scale_and_keeps_the_lookup():
    model = FunctionalModel().eval()
    x = torch.randint(0, V, (3, 4))
    proto = _export(model, x)
    assert "Gather" in _op_types(proto)
    # Nothing of sqrt(V / N) is in the graph: the output is the lookup (times the model's 2).
    np.testing.assert_allclose(_run(proto, x), (model.weight.detach()[x] * 2).numpy(), rtol=0,
                               atol=0)


def test_max_norm_is_exported_as_torch_exports_it():
    model = Model(max_norm=1.0).eval()
    with torch.no_grad():
        model.emb.weight.mul_(3)
    x = torch.randint(0, V, (2, 6))
    stored = model.emb.weight.detach().clone()
    proto = _export(model, x)
    # the export traces without data: the module's weight is untouched
    torch.testing.assert_close(model.emb.weight.detach(), stored, rtol=0, atol=0)
    got = _run(proto, x)
    with torch.no_grad():
        expected = model(x).numpy()  # renorms the referenced rows in place, then looks up
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.equal(model.emb.weight.detach(), stored)


def test_invalid_settings_still_raise_during_export():
    class Bad(torch.nn.Module):
        def forward(self, x):
            return usc.functional.embedding(x, torch.ones(V, D), scale_grad_by_freq=True)

    with pytest.raises(Exception, match="scale_grad_by_freq=True is not supported by unit "
                                        "scaling"):
        torch.onnx.export(Bad().eval(), (torch.zeros(3, dtype=torch.long),), dynamo=True,
                          verbose=False)


def test_the_onnx_route_is_taken_only_while_exporting():
    import torch.onnx  # noqa: F401  (loaded: the check asks it)

    assert _onnx.exporting() is False
    weight = torch.randn(V, D, requires_grad=True)
    out = usc.functional.embedding(torch.tensor([1, 2]), weight)
    assert "EmbeddingLookupFunction" in out.grad_fn.name()  # the operator's own autograd
    out.sum().backward()
    # the unit-scaled gradient: sqrt(V / 2) on the two rows
    torch.testing.assert_close(weight.grad[1], torch.full((D,), (V / 2) ** 0.5))
