"""A 2-D mesh (issue 18): 4 Gloo processes as data parallel 2 x tensor parallel 2. A small model
-- our Embedding, a linear head, a cross-entropy loss -- with torchtitan's plan on the "tp"
dimension (RowwiseParallel for the embedding, ColwiseParallel for the head; with and without
sequence parallelism between them) and FSDP2 on the "dp" dimension. A few AdamW steps (the losses,
every gradient, the final weights) equal one process stepping through all the data, eager and
under torch.compile.

The token count (docs/SCALING.md): tensor parallelism does not count; FSDP averages over the
P = 2 data-parallel ranks, so the embedding uses ``token_multiplier = K / P = 1/2``. FSDP's
average makes the other weights' gradients those of the loss averaged over the dp ranks; one
process reproduces the embedding's gradient with that loss when it counts the same N * m
tokens per data-parallel batch: ``token_multiplier = m / P = 1/4`` on the global batch.
"""
import traceback

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import Replicate, Shard
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

import unit_scaling_cpp as usc
from _spawn import COMPILE_BACKEND, run_group
from unit_scaling_cpp._parameter import mup_tags

pytestmark = pytest.mark.skipif(not dist.is_gloo_available(), reason="torch without Gloo")

DP, TP, V, D, CLASSES, B, T, STEPS = 2, 2, 24, 8, 6, 2, 8, 3
MULTIPLIER = 1.0 / DP  # K / P with K = 1
CASES = {"tp": dict(), "sequence_parallel": dict(sp=True), "tp_compiled": dict(compile=True),
         "sequence_parallel_compiled": dict(sp=True, compile=True)}


class Model(nn.Module):
    def __init__(self, token_multiplier):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = usc.Embedding(V, D, padding_idx=0, token_multiplier=token_multiplier)
        self.head = nn.Linear(D, CLASSES, bias=False)

    def forward(self, tokens):
        return self.head(self.embedding(tokens))


def data(dp_rank, step):
    generator = torch.Generator().manual_seed(7 * step + dp_rank)
    tokens = torch.randint(0, V, (B, T), generator=generator)
    tokens[:, -1] = 0  # padding
    return tokens, torch.randint(0, CLASSES, (B, T), generator=generator)


def loss_of(logits, targets):
    return nn.functional.cross_entropy(logits.reshape(-1, CLASSES), targets.reshape(-1),
                                       reduction="sum")


def reference():
    """One process, every step's batches of both dp ranks at once, the loss averaged over them."""
    model = Model(token_multiplier=MULTIPLIER / DP)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    losses, grads = [], []
    for step in range(STEPS):
        tokens, targets = zip(*(data(r, step) for r in range(DP)))
        loss = loss_of(model(torch.cat(tokens)), torch.cat(targets)) / DP
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses, grads, [p.detach() for p in model.parameters()]


# ---- in the processes -----------------------------------------------------------------------

def _train(mesh, sp, compiled):
    model = Model(token_multiplier=MULTIPLIER)
    between = Shard(1) if sp else Replicate()  # sequence parallel: tokens split over tp
    parallelize_module(model, mesh["tp"], {
        "embedding": RowwiseParallel(input_layouts=Replicate(), output_layouts=between),
        "head": ColwiseParallel(input_layouts=between, output_layouts=Replicate()),
    })
    for part in (model.embedding, model.head, model):
        fully_shard(part, mesh=mesh["dp"])
    tags = mup_tags(model.embedding.weight)
    # dynamic=False: the tensor-parallel input hooks share one lambda, compiled for the
    # embedding's int tokens and the head's float activations; the recompile makes sizes
    # dynamic, and inductor (torch 2.11) then fails to generate the head's backward.
    step_model = torch.compile(model, backend=COMPILE_BACKEND, dynamic=False) if compiled else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    dp_rank = mesh.get_local_rank("dp")
    losses, grads = [], []
    for step in range(STEPS):
        tokens, targets = data(dp_rank, step)
        loss = loss_of(step_model(tokens), targets)
        loss.backward()
        grads.append([p.grad.full_tensor() for p in model.parameters()])
        optimizer.step()
        optimizer.zero_grad()
        # The loss the single process sees: the average over the dp ranks.
        total = loss.detach().clone()
        dist.all_reduce(total, group=mesh.get_group("dp"))
        losses.append(total.item() / DP)
    return losses, grads, [p.detach().full_tensor() for p in model.parameters()], tags


def mesh_worker():
    mesh = init_device_mesh("cpu", (DP, TP), mesh_dim_names=("dp", "tp"))
    results = {}
    for name, case in CASES.items():
        try:
            results[name] = ("ok", _train(mesh, case.get("sp", False), case.get("compile", False)))
        except Exception:
            results[name] = ("error", traceback.format_exc())
    return results


# ---- the tests ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return run_group(DP * TP, mesh_worker, tmp_path=tmp_path_factory.mktemp("mesh2d"),
                     timeout=240)


@pytest.mark.parametrize("name", list(CASES))
def test_steps_equal_one_process(results, name):
    expected_losses, expected_grads, expected_weights = reference()
    for rank, found in enumerate(results):
        status, value = found[name]
        assert status == "ok", f"rank {rank}:\n{value}"
        losses, grads, weights, tags = value
        assert tags == ("weight", None)
        torch.testing.assert_close(losses, expected_losses, rtol=1e-5, atol=1e-5)
        # The gradients themselves (AdamW's step hardly depends on their scale).
        torch.testing.assert_close(grads, expected_grads, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(weights, expected_weights, rtol=1e-5, atol=1e-6)
