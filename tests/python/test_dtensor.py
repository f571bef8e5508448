"""DTensor tensor and sequence parallelism (issue 18): torchtitan's RowwiseParallel plan for the
token embedding (vocabulary-sharded table, replicated tokens, output Replicate or Shard(1)), a
column-sharded table, a replicated table with replicated or sequence-sharded tokens, eager and
under torch.compile, on P = 2 and 4 Gloo processes.

Each scenario runs two training steps (forward, backward, unit_scaling.optim.AdamW step) in the
processes; the outputs, the full (gathered) gradients and the final table must equal one
process with the same table and the same options (float32 rounding). V = 11 and D = 10 shard
unevenly over 4 ranks; the tokens hit every shard and the padding row. One launch per P runs
every scenario (see _spawn.py); each test below checks one of them.
"""
import subprocess
import sys
import traceback

import pytest
import torch
import torch.distributed as dist

from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import (DTensor, Partial, Replicate, Shard, distribute_module,
                                      distribute_tensor)
from torch.distributed.tensor.parallel import (ColwiseParallel, RowwiseParallel,
                                               parallelize_module)

import unit_scaling_cpp as usc
from _spawn import COMPILE_BACKEND, run_group

pytestmark = pytest.mark.skipif(not dist.is_gloo_available(), reason="torch without Gloo")
uu = pytest.importorskip("unit_scaling")

V, D, B, T, STEPS = 11, 10, 2, 8, 2

SCENARIOS = {
    "rowwise": dict(plan="rowwise", out="replicate", padding_idx=3, token_multiplier=0.5),
    "rowwise_sequence_parallel": dict(plan="rowwise", out="shard1", padding_idx=-1, max_norm=1.0,
                                      num_tokens=100),
    "colwise": dict(plan="colwise", out="replicate", padding_idx=0, max_norm=1.5),
    "replicated": dict(plan="replicate", tokens="replicate", padding_idx=2),
    "replicated_sequence_sharded": dict(plan="replicate", tokens="shard1", max_norm=2.0,
                                        token_multiplier=2.0),
    "rowwise_compiled": dict(plan="rowwise", out="replicate", padding_idx=3, compile=True),
    "rowwise_sequence_parallel_compiled": dict(plan="rowwise", out="shard1", max_norm=1.0,
                                               token_multiplier=0.25, compile=True),
}
MODULE_OPTIONS = ("padding_idx", "max_norm", "token_multiplier", "num_tokens")


def make_module(config):
    torch.manual_seed(0)
    table = torch.randn(V, D) * 0.8
    options = {k: config[k] for k in MODULE_OPTIONS if k in config}
    return usc.Embedding(V, D, _weight=table, **options)


def batch(step):
    """Tokens (every row, the padding rows among them) and an output gradient for one step."""
    generator = torch.Generator().manual_seed(100 + step)
    tokens = torch.randint(0, V, (B, T), generator=generator)
    tokens[0, :V - 3] = torch.arange(3, V)
    tokens[1, :3] = torch.tensor([0, 1, 2])
    return tokens, torch.randn(B, T, D, generator=generator)


def reference(config):
    """One process: the outputs and gradients of every step and the final table."""
    module = make_module(config)
    optimizer = uu.optim.AdamW(module.parameters(), lr=0.05)
    outputs, grads = [], []
    for step in range(STEPS):
        tokens, grad_out = batch(step)
        out = module(tokens)
        out.backward(grad_out)
        outputs.append(out.detach().clone())
        grads.append(module.weight.grad.clone())
        optimizer.step()
        optimizer.zero_grad()
    return outputs, grads, module.weight.detach().clone()


# ---- in the processes -----------------------------------------------------------------------

def _parallel_module(config, mesh):
    module = make_module(config)
    out = Shard(1) if config.get("out") == "shard1" else Replicate()
    if config["plan"] == "rowwise":
        return parallelize_module(module, mesh, RowwiseParallel(input_layouts=Replicate(),
                                                                output_layouts=out))
    if config["plan"] == "colwise":
        return parallelize_module(module, mesh, ColwiseParallel(input_layouts=Replicate(),
                                                                output_layouts=out))
    # A replicated table; the tokens replicated or split along the sequence (each rank passes
    # its part), the output in the same layout.
    placement = Shard(1) if config["tokens"] == "shard1" else Replicate()

    def tokens_in(module, inputs, mesh):
        return (DTensor.from_local(inputs[0], mesh, [placement], run_check=False),)

    def tokens_out(module, output, mesh):
        return output.to_local()

    return distribute_module(module, mesh, input_fn=tokens_in, output_fn=tokens_out)


def _gather(local, mesh, sharded):
    if not sharded:
        return local.detach().clone()
    return DTensor.from_local(local.detach(), mesh, [Shard(1)], run_check=False).full_tensor()


def _train(config, mesh):
    rank, world = dist.get_rank(), dist.get_world_size()
    module = _parallel_module(config, mesh)
    # fullgraph: no graph break (COMPILE_BACKEND: see _spawn.py)
    compiled = config.get("compile")
    model = torch.compile(module, backend=COMPILE_BACKEND, fullgraph=True) if compiled else module
    optimizer = uu.optim.AdamW(module.parameters(), lr=0.05)
    sharded = config.get("out") == "shard1" or config.get("tokens") == "shard1"
    outputs, grads = [], []
    for step in range(STEPS):
        tokens, grad_out = batch(step)
        if config.get("tokens") == "shard1":
            tokens = tokens.chunk(world, 1)[rank]
        out = model(tokens)
        local_grad = grad_out.chunk(world, 1)[rank] if sharded else grad_out
        (out * local_grad).sum().backward()
        outputs.append(_gather(out, mesh, sharded))
        grads.append(module.weight.grad.full_tensor())
        placements = tuple(module.weight.grad.placements)
        optimizer.step()
        optimizer.zero_grad()
    return outputs, grads, module.weight.detach().full_tensor(), placements


def scenarios_worker(names):
    """Every scenario in turn; an exception is reported per scenario (all ranks raise alike)."""
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    results = {}
    for name in names:
        try:
            results[name] = ("ok", _train(SCENARIOS[name], mesh))
        except Exception:
            results[name] = ("error", traceback.format_exc())
    results["checks"] = op_checks(mesh)
    results["vocab_parallel"] = {name: vocab_parallel_case(mesh, name) for name in VOCAB_PARALLEL}
    return results


# The scenarios of the C++ VocabParallelEmbedding test (tests/distributed/vocab_parallel_test.cpp):
# its table, tokens and options. That test checks, bit for bit, each rank's output, gradient
# rows and renormed rows against the single-process op; the same checks here make the DTensor
# path agree with VocabParallelEmbedding wherever both apply (a row-sharded table, replicated
# tokens). The two split the rows differently (torch.chunk vs balanced), so the shards are
# compared as a whole: concatenated in rank order, they are the single-process tensors.
VOCAB_PARALLEL = {"plain": {}, "padding": dict(padding_idx=-3),
                  "max_norm": dict(max_norm=1.5, norm_type=3.0),
                  "token_multiplier": dict(token_multiplier=0.25),
                  "num_tokens": dict(num_tokens=4096)}


def vocab_parallel_data():
    torch.manual_seed(7)
    full = torch.randn(37, 5) * 2
    tokens = torch.randint(0, 37, (6, 7))
    tokens[0, 0], tokens[1, 1] = 36, 0
    return full, tokens, torch.randn(6, 7, 5)


def vocab_parallel_case(mesh, name):
    full, tokens, grad_out = vocab_parallel_data()
    weight = torch.nn.Parameter(distribute_tensor(full, mesh, [Shard(0)]))
    out = usc.functional.embedding(distribute_tensor(tokens, mesh, [Replicate()]), weight,
                                   **VOCAB_PARALLEL[name])
    out = out.redistribute(placements=[Replicate()]).to_local()
    out.backward(grad_out)
    return out.detach(), weight.grad.to_local(), weight.detach().to_local()


def op_checks(mesh):
    """Operator-level cases; the tests compare them with single-process calls of the same
    operators on full tensors."""
    ops = torch.ops.unit_scaling
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(1)
    table = torch.randn(V, D)
    tokens, grad_out = batch(0)
    found = {}

    def record(name, function):
        try:
            found[name] = ("ok", function())
        except Exception as error:
            found[name] = ("error", type(error).__name__, str(error))

    weight = distribute_tensor(table, mesh, [Shard(0)])
    dtokens = distribute_tensor(tokens, mesh, [Replicate()])
    bad = tokens.clone()
    bad[1, 5] = V
    # Bad input: the error of one process, on every rank, nothing written.
    before = weight.to_local().clone()
    record("bad_index", lambda: usc.functional.embedding(
        distribute_tensor(bad, mesh, [Replicate()]), weight, max_norm=0.5))
    found["bad_index_unchanged"] = torch.equal(weight.to_local(), before)
    record("bad_padding", lambda: ops.embedding_lookup(dtokens, weight, V))
    record("bad_token_count", lambda: ops.embedding_backward(
        distribute_tensor(grad_out, mesh, [Replicate()]), dtokens, V, token_multiplier=-1.0))
    record("mixed", lambda: ops.embedding_lookup(tokens, weight))
    partial_table = DTensor.from_local(table.clone(), mesh, [Partial()], run_check=False)
    record("renorm_partial", lambda: ops.embedding_renorm_(partial_table, dtokens, 1.0, 2.0))
    found["renorm_partial_unchanged"] = torch.equal(partial_table.to_local(), table)
    # Inference mode: the composite reaches the DTensor rules itself.
    with torch.inference_mode():
        found["inference"] = usc.functional.embedding(dtokens, weight, padding_idx=1)
        found["inference"] = found["inference"].full_tensor()
    # The backward operators with a partial gradient (linear: stays partial) and an explicit
    # scale; scale_fwd / scale_bwd pass any placement through.
    partial = DTensor.from_local(grad_out * (rank + 1), mesh, [Partial()], run_check=False)
    found["backward_partial"] = ops.embedding_backward(partial, dtokens, V, 4).full_tensor()
    found["scaled_backward"] = ops._scaled_embedding_backward(
        distribute_tensor(grad_out, mesh, [Replicate()]), dtokens, V, 2, 0.375).full_tensor()
    x = distribute_tensor(grad_out, mesh, [Shard(1)]).requires_grad_()
    y = ops.scale_bwd(ops.scale_fwd(x, 3.0), 0.5)
    y.backward(distribute_tensor(grad_out, mesh, [Shard(1)]))
    found["scale"] = (y.placements, y.full_tensor(), x.grad.full_tensor())
    found["scale_partial"] = ops.scale_fwd(partial, -2.0).full_tensor()
    # The rule that replaces register_sharding where torch lacks it (an experimental API).
    from unit_scaling_cpp import _dtensor

    maximum = DTensor.from_local(grad_out * (rank + 1), mesh, [Partial("max")], run_check=False)
    fallback = [_dtensor._elementwise(DTensor, ops.scale_fwd.default, (DTensor,), (t, -2.0), {})
                for t in (distribute_tensor(grad_out, mesh, [Shard(1)]), partial, maximum)]
    found["scale_fallback"] = [(f.placements, f.full_tensor()) for f in fallback]
    return found


# ---- the tests ------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=[2, 4])
def group(request, tmp_path_factory):
    world = request.param
    names = list(SCENARIOS) if world == 2 else [n for n in SCENARIOS if "compiled" not in n]
    results = run_group(world, scenarios_worker, names,
                        tmp_path=tmp_path_factory.mktemp("dtensor"), timeout=240)
    return world, results


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_training_steps_equal_one_process(group, name):
    world, results = group
    if name not in results[0]:
        pytest.skip(f"{name}: run with P = 2 only (compile time)")
    expected = reference(SCENARIOS[name])
    for rank, found in enumerate(results):
        status, value = found[name]
        assert status == "ok", f"rank {rank}:\n{value}"
        outputs, grads, final, placements = value
        # The gradient's layout: each rank's rows (as VocabParallelEmbedding), columns, or a
        # partial sum over the sequence-sharded tokens.
        layout = {"rowwise": Shard(0), "colwise": Shard(1), "replicate": Shard(0)}
        expected_layout = (Partial() if SCENARIOS[name].get("tokens") == "shard1"
                           else layout[SCENARIOS[name]["plan"]])
        assert placements == (expected_layout,)
        for step in range(STEPS):
            torch.testing.assert_close(outputs[step], expected[0][step], rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(grads[step], expected[1][step], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(final, expected[2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(VOCAB_PARALLEL))
def test_agrees_bit_for_bit_with_the_vocab_parallel_reference(group, name):
    world, results = group
    full, tokens, grad_out = vocab_parallel_data()
    weight = full.clone().requires_grad_()
    out = usc.functional.embedding(tokens, weight, **VOCAB_PARALLEL[name])
    out.backward(grad_out)
    for found in results:
        assert torch.equal(found["vocab_parallel"][name][0], out)
    grad = torch.cat([found["vocab_parallel"][name][1] for found in results])
    table = torch.cat([found["vocab_parallel"][name][2] for found in results])
    assert torch.equal(grad, weight.grad)
    assert torch.equal(table, weight.detach())


def test_bad_input_raises_the_single_process_error_on_every_rank(group):
    world, results = group
    for found in results:
        status, kind, message = found["checks"]["bad_index"]
        assert (status, kind) == ("error", "IndexError")
        assert "index 11 at input[1, 5] (flat position 13) is out of range for weight with 11 rows" \
            in message
        assert found["checks"]["bad_index_unchanged"]
        status, kind, message = found["checks"]["bad_padding"]
        assert (kind, "padding_idx=11 is out of range" in message) == ("ValueError", True)
        status, kind, message = found["checks"]["bad_token_count"]
        assert (kind, "token_multiplier must be finite and > 0" in message) == ("ValueError", True)
        status, kind, message = found["checks"]["mixed"]
        assert kind == "TypeError" and "input is a torch.Tensor" in message
        status, kind, message = found["checks"]["renorm_partial"]
        assert kind == "NotImplementedError" and "Partial" in message
        assert found["checks"]["renorm_partial_unchanged"]


def test_operator_level_rules(group):
    world, results = group
    ops = torch.ops.unit_scaling
    torch.manual_seed(1)
    table = torch.randn(V, D)
    tokens, grad_out = batch(0)
    total = grad_out * sum(range(1, world + 1))
    for found in results:
        checks = found["checks"]
        with torch.inference_mode():
            expected = usc.functional.embedding(tokens, table, padding_idx=1)
        torch.testing.assert_close(checks["inference"], expected, rtol=0, atol=0)
        torch.testing.assert_close(checks["backward_partial"],
                                   ops.embedding_backward(total, tokens, V, 4))
        torch.testing.assert_close(checks["scaled_backward"],
                                   ops._scaled_embedding_backward(grad_out, tokens, V, 2, 0.375))
        placements, y, x_grad = checks["scale"]
        assert str(placements) == "(Shard(dim=1),)"
        torch.testing.assert_close(y, grad_out * 3.0)
        torch.testing.assert_close(x_grad, grad_out * 0.5)
        torch.testing.assert_close(checks["scale_partial"], total * -2.0)
        (p1, y1), (p2, y2), (p3, y3) = checks["scale_fallback"]
        assert (p1, p2, p3) == ((Shard(1),), (Partial(),), (Replicate(),))
        torch.testing.assert_close(y1, grad_out * -2.0)
        torch.testing.assert_close(y2, total * -2.0)
        torch.testing.assert_close(y3, torch.maximum(grad_out, grad_out * world) * -2.0)


# Importing the package does not import DTensor (a second of import time, sympy); its rules are
# registered when DTensor is imported, before or after the package.
IMPORT_ORDER = """
import sys, torch
{first}
import unit_scaling_cpp
assert ("torch.distributed.tensor" in sys.modules) == {dtensor_first}
import torch.distributed.tensor
from unit_scaling_cpp import _dtensor
assert _dtensor.register.cache_info().currsize == 1, "rules not registered"
"""


@pytest.mark.parametrize("dtensor_first", [False, True])
def test_rules_registered_whichever_is_imported_first(dtensor_first):
    first = "import torch.distributed.tensor" if dtensor_first else ""
    code = IMPORT_ORDER.format(first=first, dtensor_first=dtensor_first)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
