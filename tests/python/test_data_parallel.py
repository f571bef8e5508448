"""The token count under real data parallelism: DistributedDataParallel on Gloo with 2 and 4
processes and 1 and 4 accumulation steps (docs/SCALING.md). With DDP's averaging over P ranks
and K accumulated micro-batches (loss not divided by K) the optimizer sees std sqrt(K / P)
uncorrected; token_multiplier = K / P restores 1."""
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import unit_scaling_cpp as usc

WORKER = Path(__file__).with_name("ddp_worker.py")
sys.path.insert(0, str(WORKER.parent))
import ddp_worker  # noqa: E402

pytestmark = pytest.mark.skipif(not dist.is_gloo_available(), reason="torch without Gloo")


def run_ddp(tmp_path, world, steps, accumulate):
    store, out = tmp_path / "store", tmp_path / "grads.pt"
    ranks = [subprocess.Popen([sys.executable, str(WORKER), str(r), str(world), str(steps),
                               str(store), str(out), accumulate], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
             for r in range(world)]
    try:
        outputs = [p.communicate(timeout=300)[0] for p in ranks]
    finally:
        for p in ranks:
            p.kill()
    for p, text in zip(ranks, outputs):
        assert p.returncode == 0, text[-3000:]
    return torch.load(out)


CASES = [(2, 1, "sum"), (4, 1, "sum"), (2, 4, "sum"), (4, 4, "sum"), (2, 4, "mean"),
         (4, 4, "mean")]


@pytest.mark.parametrize("world,steps,accumulate", CASES)
def test_ddp_gradient_std_with_and_without_the_multiplier(tmp_path, world, steps, accumulate):
    grads = run_ddp(tmp_path, world, steps, accumulate)
    plain, corrected = grads["plain"].std().item(), grads["corrected"].std().item()
    # Uncorrected: average over P of a sum of K unit gradients, times 1/K if the loss is /K.
    expected_plain = math.sqrt(steps / world) / (steps if accumulate == "mean" else 1)
    multiplier = ddp_worker.multiplier_for(world, steps, accumulate)
    print(f"P={world} K={steps} loss {accumulate}: optimizer-visible grad std {plain:.3f} "
          f"uncorrected (expected {expected_plain:.3f}), {corrected:.3f} with "
          f"token_multiplier={multiplier:g}")
    assert abs(plain / expected_plain - 1) < 0.05
    assert abs(corrected - 1) < 0.05
    # Equal (to float32 rounding) to one process over the global batch: every micro-batch of
    # every rank, gradients summed (the same loss factor), with the explicit count
    # num_tokens = N * m * P^2 (= the global count N * P * K for a summed loss).
    torch.manual_seed(0)
    table = torch.randn(ddp_worker.V, ddp_worker.D)
    weight = table.clone().requires_grad_()
    global_tokens = round(ddp_worker.B * ddp_worker.T * multiplier * world * world)
    for rank in range(world):
        for step in range(steps):
            tokens, grad_out = ddp_worker.micro_batch(rank, step)
            out = usc.functional.embedding(tokens, weight, num_tokens=global_tokens)
            (out * grad_out).sum().mul(1.0 if accumulate == "sum" else 1.0 / steps).backward()
    torch.testing.assert_close(grads["corrected"], weight.grad, rtol=1e-5, atol=1e-6)
