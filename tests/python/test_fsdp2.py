"""FSDP2 (``fully_shard``) on P = 2 Gloo processes (issue 18): the sharded weight keeps its u-μP
tags (also across unshard() / reshard() and a forward), unit_scaling's optim.Adam / AdamW / SGD
step it, torch.compile of the sharded module works, and the gradient is the documented rank
average (docs/SCALING.md): FSDP averages over the P ranks (c = 1/P), so with
``token_multiplier = K / P = 1 / P`` (K = 1 micro-batch) it equals one process over every rank's
tokens with the default count. One launch runs every case.
"""
import traceback

import pytest
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

import unit_scaling_cpp as usc
from _spawn import COMPILE_BACKEND, run_group
from unit_scaling_cpp._parameter import mup_tags

pytestmark = pytest.mark.skipif(not dist.is_gloo_available(), reason="torch without Gloo")
uu = pytest.importorskip("unit_scaling")

WORLD, V, D, B, T, STEPS = 2, 13, 6, 2, 8, 2
OPTIMIZERS = ("Adam", "AdamW", "SGD")
MULTIPLIER = 1.0 / WORLD  # docs/SCALING.md: averaged over P ranks, K = 1


def make_module(**options):
    torch.manual_seed(0)
    return usc.Embedding(V, D, padding_idx=1, _weight=torch.randn(V, D), **options)


def batch(rank, step):
    generator = torch.Generator().manual_seed(10 * step + rank)
    tokens = torch.randint(0, V, (B, T), generator=generator)
    tokens[0, 0] = 1  # the padding row
    return tokens, torch.randn(B, T, D, generator=generator)


# ---- in the processes -----------------------------------------------------------------------

def _tags_through_fully_shard(mesh):
    module = make_module()
    module.weight.mup_scaling_depth = 2  # a tag changed by the user travels too
    model = torch.nn.Sequential(module)
    fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    seen = {"sharded": (mup_tags(module.weight), type(module.weight).__name__)}
    module.unshard()
    seen["unsharded"] = (mup_tags(module.weight), type(module.weight).__name__)
    module.reshard()
    seen["resharded"] = (mup_tags(module.weight), type(module.weight).__name__)
    model(batch(0, 0)[0]).sum().backward()
    seen["after_step"] = (mup_tags(module.weight), type(module.weight).__name__)
    seen["parameters"] = [mup_tags(p) for p in model.parameters()]
    return seen


def _train(mesh, optimizer_name, compiled):
    rank = dist.get_rank()
    module = make_module(token_multiplier=MULTIPLIER)
    fully_shard(module, mesh=mesh)
    model = torch.compile(module, backend=COMPILE_BACKEND) if compiled else module
    optimizer = getattr(uu.optim, optimizer_name)(module.parameters(), lr=0.05)
    grads = []
    for step in range(STEPS):
        tokens, grad_out = batch(rank, step)
        (model(tokens) * grad_out).sum().backward()
        grads.append(module.weight.grad.full_tensor())
        optimizer.step()
        optimizer.zero_grad()
    return grads, module.weight.detach().full_tensor()


def fsdp_worker():
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    results = {}
    cases = [("tags", lambda: _tags_through_fully_shard(mesh))]
    cases += [(name, lambda name=name: _train(mesh, name, False)) for name in OPTIMIZERS]
    cases += [("compiled", lambda: _train(mesh, "AdamW", True))]
    for name, case in cases:
        try:
            results[name] = ("ok", case())
        except Exception:
            results[name] = ("error", traceback.format_exc())
    return results


# ---- the tests ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return run_group(WORLD, fsdp_worker, tmp_path=tmp_path_factory.mktemp("fsdp2"),
                     timeout=180)


def _value(results, rank, name):
    status, value = results[rank][name]
    assert status == "ok", f"rank {rank}:\n{value}"
    return value


def test_sharded_weight_keeps_its_tags(results):
    for rank in range(WORLD):
        seen = _value(results, rank, "tags")
        assert seen["sharded"] == (("weight", 2), "DTensor")
        assert seen["unsharded"][0] == ("weight", 2)
        assert seen["resharded"] == (("weight", 2), "DTensor")
        assert seen["after_step"] == (("weight", 2), "DTensor")
        assert seen["parameters"] == [("weight", 2)]


def reference(optimizer_name):
    """One process: the gradients and final table of the same steps over every rank's tokens."""
    module = make_module()
    optimizer = getattr(uu.optim, optimizer_name)(module.parameters(), lr=0.05)
    grads = []
    for step in range(STEPS):
        # The documented rank average: the mean over ranks of each rank's unit-scaled
        # gradient, counted with N * token_multiplier ...
        average = torch.zeros(V, D)
        for rank in range(WORLD):
            weight = module.weight.detach().clone().requires_grad_()
            tokens, grad_out = batch(rank, step)
            out = usc.functional.embedding(tokens, weight, padding_idx=1,
                                           token_multiplier=MULTIPLIER)
            out.backward(grad_out)
            average += weight.grad / WORLD
        # ... which is one process over all the tokens with the default count.
        tokens, grad_out = zip(*(batch(rank, step) for rank in range(WORLD)))
        (module(torch.cat(tokens)) * torch.cat(grad_out)).sum().backward()
        torch.testing.assert_close(module.weight.grad, average, rtol=1e-5, atol=1e-6)
        grads.append(module.weight.grad.clone())
        optimizer.step()
        optimizer.zero_grad()
    return grads, module.weight.detach().clone()


@pytest.mark.parametrize("name", OPTIMIZERS + ("compiled",))
def test_u_mup_optimizers_step_the_sharded_weight(results, name):
    expected_grads, expected_final = reference("AdamW" if name == "compiled" else name)
    for rank in range(WORLD):
        grads, final = _value(results, rank, name)
        for step in range(STEPS):
            torch.testing.assert_close(grads[step], expected_grads[step], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(final, expected_final, rtol=1e-5, atol=1e-6)
