"""torch.compile with shapes that change between calls (automatic dynamic and dynamic=True).

Every test runs once per backend (conftest.py): data is built on the CPU, moved to the
backend's device, and eager and compiled results are compared on the CPU."""
import pytest
import torch

import unit_scaling_cpp as usc


def _grads_eager_and_compiled(backend, make_module, shapes, **compile_kwargs):
    eager = make_module().to(backend.device)
    compiled_module = make_module().to(backend.device)
    compiled_module.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_module, **compile_kwargs)
    for shape in shapes:
        tokens = backend.to(torch.randint(0, eager.num_embeddings, shape))
        out_eager, out_compiled = eager(tokens), compiled(tokens)
        torch.testing.assert_close(out_compiled.cpu(), out_eager.cpu(), rtol=0, atol=0)
        grad = backend.to(torch.randn(out_eager.shape))
        out_eager.backward(grad)
        out_compiled.backward(grad)
        torch.testing.assert_close(compiled_module.weight.grad.cpu(), eager.weight.grad.cpu())
        eager.zero_grad()
        compiled_module.zero_grad()


# Sequence length and batch change between calls: the default compile recompiles with symbolic
# sizes from the second shape on (automatic dynamic shapes).
SHAPES = [(4, 16), (4, 32), (4, 48), (2, 48), (3, 5), (7,), (1, 1, 9)]


@pytest.mark.parametrize("padding_idx", [None, 0, -3])
def test_default_compile_with_changing_batch_and_sequence(padding_idx, backend):
    torch.compiler.reset()
    _grads_eager_and_compiled(backend, lambda: usc.Embedding(1000, 64, padding_idx=padding_idx),
                              SHAPES)


def test_dynamic_true(backend):
    torch.compiler.reset()
    _grads_eager_and_compiled(backend, lambda: usc.Embedding(1000, 64, padding_idx=1), SHAPES,
                              dynamic=True)


def test_issue_loop_as_written(backend):
    torch.compiler.reset()
    emb = usc.Embedding(1000, 64).to(backend.device)
    f = torch.compile(emb)
    for length in (16, 32, 48):
        f(backend.to(torch.randint(0, 1000, (4, length)))).sum().backward()
    assert emb.weight.grad is not None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_functional_fullgraph_max_norm_while_n_changes(dtype, backend):
    torch.compiler.reset()

    def step(tokens, weight):
        return usc.functional.embedding(tokens, weight, padding_idx=2, max_norm=1.5)

    compiled = torch.compile(step, fullgraph=True, dynamic=True)
    base = torch.randn(300, 16, dtype=dtype) * 3
    for n in (8, 40, 64, 3):
        tokens = backend.to(torch.randint(0, 300, (n,)))
        w_eager = backend.to(base).requires_grad_()
        w_compiled = backend.to(base).requires_grad_()
        out_eager = step(tokens, w_eager)
        out_compiled = compiled(tokens, w_compiled)
        torch.testing.assert_close(out_compiled.cpu(), out_eager.cpu())
        # renormed in place
        torch.testing.assert_close(w_compiled.detach().cpu(), w_eager.detach().cpu())
        grad = backend.to(torch.randn(out_eager.shape, dtype=dtype))
        out_eager.backward(grad)
        out_compiled.backward(grad)
        torch.testing.assert_close(w_compiled.grad.cpu(), w_eager.grad.cpu())


@pytest.mark.parametrize("option", [{"token_multiplier": 0.25}, {"num_tokens": 4096}])
def test_token_count_option_compiles_without_graph_break_or_recompile(option, backend):
    from torch._dynamo.testing import CompileCounterWithBackend

    torch.compiler.reset()
    counter = CompileCounterWithBackend("inductor")
    eager = usc.Embedding(500, 16, padding_idx=3, **option).to(backend.device)
    compiled_module = usc.Embedding(500, 16, padding_idx=3, **option).to(backend.device)
    compiled_module.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_module, backend=counter, fullgraph=True, dynamic=True)
    frames = []
    for shape in [(4, 16), (2, 40), (3, 7)]:  # same rank: a new rank is a new graph
        tokens = backend.to(torch.randint(0, 500, shape))
        grad = backend.to(torch.randn(*shape, 16))
        compiled(tokens).backward(grad)
        eager(tokens).backward(grad)
        torch.testing.assert_close(compiled_module.weight.grad.cpu(), eager.weight.grad.cpu())
        eager.zero_grad()
        compiled_module.zero_grad()
        frames.append(counter.frame_count)
    # fullgraph=True: a graph break would raise. The first call compiles; no shape recompiles.
    assert frames[0] >= 1 and frames == [frames[0]] * 3
