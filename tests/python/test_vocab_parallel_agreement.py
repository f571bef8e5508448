"""The two vocab-parallel paths agree (issue 26): the C++ VocabParallelEmbedding and the DTensor
rules (RowwiseParallel's Shard(0) table) share one split rule (torch.chunk's) and one core.

The C++ side runs in the GoogleTest binary tests/distributed/vocab_parallel_test (its
VocabParallelAgreement test: V = 10 over 3 and 4 Gloo processes, padding_idx = -3,
token_multiplier = 0.5), which writes each rank's rows, output and gradient with the data. The
DTensor side runs the same data here, on as many Gloo processes: every rank must hold the same
rows and give the same output and gradient, bit for bit. Also: the placement planning of
_dtensor.py, tested without a mesh.
"""
import os
import subprocess
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.distributed.tensor import Partial, Replicate, Shard

import unit_scaling_cpp as usc
from _spawn import run_group

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("UNIT_SCALING_VOCAB_PARALLEL_TEST",
                             REPO / "build" / "tests" / "distributed" / "vocab_parallel_test"))


def dtensor_worker(full, tokens, grad_out):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import distribute_tensor

    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    weight = torch.nn.Parameter(distribute_tensor(full, mesh, [Shard(0)]))
    out = usc.functional.embedding(distribute_tensor(tokens, mesh, [Replicate()]), weight,
                                   padding_idx=-3, token_multiplier=0.5)
    out = out.redistribute(placements=[Replicate()]).to_local()
    out.backward(grad_out)
    return weight.detach().to_local(), out.detach(), weight.grad.to_local()


@pytest.fixture(scope="module")
def cpp_shards(tmp_path_factory):
    assert BINARY.exists(), (f"build the C++ tests first: {BINARY} is missing (or set "
                             "UNIT_SCALING_VOCAB_PARALLEL_TEST)")
    folder = tmp_path_factory.mktemp("vocab_parallel_dump")
    done = subprocess.run([str(BINARY), "--gtest_filter=VocabParallelAgreement.*"],
                          env=dict(os.environ, UNIT_SCALING_VP_DUMP_DIR=str(folder)),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {world: [torch.load(folder / f"cpp-{world}-{rank}.pt", weights_only=False)
                    for rank in range(world)] for world in (3, 4)}


@pytest.mark.skipif(not dist.is_gloo_available(), reason="torch without Gloo")
@pytest.mark.parametrize("world", [3, 4])
def test_cpp_module_and_dtensor_rules_agree_on_uneven_splits(world, cpp_shards, tmp_path):
    shards = cpp_shards[world]
    _, _, full, tokens, grad_out, _, _, _ = shards[0]
    found = run_group(world, dtensor_worker, full, tokens, grad_out, tmp_path=tmp_path,
                      timeout=120)
    chunks = torch.arange(10).chunk(world)
    sizes = []
    for rank, ((begin, end, *_, rows, out, grad), (d_rows, d_out, d_grad)) in enumerate(
            zip(shards, found)):
        expected = chunks[rank] if rank < len(chunks) else torch.arange(0)
        assert torch.equal(torch.arange(begin, end), expected), (rank, begin, end)
        assert torch.equal(rows, d_rows) and torch.equal(rows, full[begin:end])
        assert torch.equal(out, d_out)
        assert torch.equal(grad, d_grad)
        sizes.append(end - begin)
    assert sizes == ([4, 4, 2] if world == 3 else [3, 3, 3, 1])
    # And both are the single-process operator's.
    weight = full.clone().requires_grad_()
    out = usc.functional.embedding(tokens, weight, padding_idx=-3, token_multiplier=0.5)
    out.backward(grad_out)
    assert torch.equal(shards[0][6], out)
    assert torch.equal(torch.cat([s[7] for s in shards]), weight.grad)


# ---- the shared core on one process (no group: a shard is just a block of rows) --------------

def test_shard_operators_match_the_whole_table_operators():
    ops = torch.ops.unit_scaling
    torch.manual_seed(0)
    full, tokens, grad = torch.randn(10, 3), torch.randint(0, 10, (4, 5)), torch.randn(4, 5, 3)
    expected_grad = ops.embedding_backward(grad, tokens, 10, -3, token_multiplier=0.5)
    for shards in (1, 3, 4):
        parts, grads = [], []
        for shard, rows in enumerate(torch.arange(10).chunk(shards)):
            parts.append(ops._vocab_shard_lookup(tokens, full[rows], 10, shard, shards, -3))
            grads.append(ops._vocab_shard_backward(grad, tokens, 10, shard, shards, -3,
                                                   token_multiplier=0.5))
            local = ops._vocab_shard_indices(tokens, 10, shard, shards)
            owned = (tokens >= rows[0]) & (tokens <= rows[-1])
            assert torch.equal(local, torch.where(owned, tokens - rows[0], -1))
        torch.testing.assert_close(sum(parts), full[tokens], rtol=0, atol=0)
        torch.testing.assert_close(torch.cat(grads), expected_grad, rtol=0, atol=0)
    # An empty shard (V = 5 over 4: rank 3 holds no row), and the global checks.
    empty = ops._vocab_shard_lookup(tokens % 5, full[:0], 5, 3, 4)
    assert empty.shape == (4, 5, 3) and not empty.any()
    assert ops._vocab_shard_backward(grad, tokens % 5, 5, 3, 4).shape == (0, 3)
    bad = tokens.clone()
    bad[1, 2] = 10
    with pytest.raises(IndexError, match=r"index 10 at input\[1, 2\] .* 10 rows"):
        ops._vocab_shard_lookup(bad, full[4:8], 10, 1, 3)
    with pytest.raises(ValueError, match="weight has 3 rows, but shard 1 of 3 of a 10-row"):
        ops._vocab_shard_lookup(tokens, full[4:7], 10, 1, 3)
    with pytest.raises(ValueError, match="padding_idx=10"):
        ops._vocab_shard_backward(grad, tokens, 10, 0, 3, 10)


def test_shard_operators_pass_opcheck():
    ops = torch.ops.unit_scaling
    torch.manual_seed(1)
    full, tokens, grad = torch.randn(10, 3), torch.randint(0, 10, (4, 5)), torch.randn(4, 5, 3)
    cases = [(ops._vocab_shard_indices.default, (tokens, 10, 1, 3), {}),
             (ops._vocab_shard_lookup.default, (tokens, full[4:8], 10, 1, 3, 7),
              {"token_multiplier": 0.5}),
             (ops._vocab_shard_backward.default, (grad, tokens, 10, 2, 3, -3),
              {"num_tokens": 64}),
             (ops._vocab_shard_backward.default, (grad, tokens, 10, 0, 1),
              {"num_lookups": 40, "scale": 0.25})]
    for op, args, kwargs in cases:
        torch.library.opcheck(op, args, kwargs, test_utils=(
            "test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


# ---- placement planning, without a mesh ------------------------------------------------------

def test_placement_plans():
    from unit_scaling_cpp import _dtensor as d

    # RowwiseParallel: rows sharded, tokens replicated -> each rank's rows, a partial output.
    plan = d.plan_lookup((Shard(0),), (Replicate(),), 2)
    assert plan == d.Plan(args=((Shard(0),), (Replicate(),)), out=(Partial(),), row_dim=0)
    # Columns: the output's last dimension; a replicated table follows sharded tokens.
    assert d.plan_lookup((Shard(1),), (Shard(0),), 2).args == ((Shard(1),), (Replicate(),))
    assert d.plan_lookup((Shard(1),), (Replicate(),), 2).out == (Shard(2),)
    assert d.plan_lookup((Replicate(),), (Shard(1),), 2) == d.Plan(
        args=((Replicate(),), (Shard(1),)), out=(Shard(1),), row_dim=None)
    # 2-D mesh: a second mesh dimension sharding rows is replicated first.
    plan = d.plan_lookup((Shard(0), Shard(0)), (Replicate(), Replicate()), 2)
    assert plan.args[0] == (Shard(0), Replicate()) and plan.row_dim == 0
    # The gradient: replicated -> this rank's rows; token-sharded -> partial; features -> cols.
    assert d.plan_gradient((Replicate(),), (Replicate(),), 3, 2).out == (Shard(0),)
    assert d.plan_gradient((Shard(1),), (Shard(1),), 3, 2) == d.Plan(
        args=((Shard(1),), (Shard(1),)), out=(Partial(),), row_dim=None)
    assert d.plan_gradient((Shard(2),), (Replicate(),), 3, 2).out == (Shard(1),)
    assert d.plan_gradient((Partial(),), (Replicate(),), 3, 2).out == (Partial(),)
    assert d.plan_renorm((Shard(1), Shard(0))) == (1, 0)
    with pytest.raises(NotImplementedError, match="Partial"):
        d.plan_renorm((Partial(),))
