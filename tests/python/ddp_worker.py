"""One rank of the DDP test (tests/python/test_data_parallel.py): DistributedDataParallel on
Gloo over a FileStore, K accumulated micro-batches (loss not divided by K), DDP's default
averaging, the loss summed over micro-batches ("sum") or divided by K ("mean"). Trains two
copies of the model side by side, without and with the documented token_multiplier (K / P for
"sum", 1 / (P K) for "mean"), and rank 0 saves the gradients the optimizer would see.

usage: ddp_worker.py RANK WORLD K STORE_FILE OUT_FILE sum|mean
"""
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import unit_scaling_cpp as usc

V, D, B, T = 4096, 64, 4, 512  # N = 2048 tokens per micro-batch and rank


def micro_batch(rank, step):
    """The tokens and output gradient of one micro-batch: the same on every run."""
    generator = torch.Generator().manual_seed(1000 * rank + step)
    tokens = torch.randint(0, V, (B, T), generator=generator)
    grad_out = torch.randn(B, T, D, generator=generator)
    return tokens, grad_out


def multiplier_for(world, steps, accumulate):
    """docs/SCALING.md: m = c^2 P K with c = 1/P (DDP averages) times 1/K if the loss is /K."""
    return steps / world if accumulate == "sum" else 1.0 / (world * steps)


def main():
    rank, world, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    store, out_file, accumulate = sys.argv[4], sys.argv[5], sys.argv[6]
    loss_factor = 1.0 if accumulate == "sum" else 1.0 / steps
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.manual_seed(0)
    table = torch.randn(V, D)
    models = {}
    corrected = multiplier_for(world, steps, accumulate)
    for name, multiplier in (("plain", 1.0), ("corrected", corrected)):
        module = usc.Embedding(V, D, _weight=table.clone(), token_multiplier=multiplier)
        models[name] = DistributedDataParallel(module)
    for step in range(steps):
        tokens, grad_out = micro_batch(rank, step)
        for model in models.values():
            if step < steps - 1:
                with model.no_sync():  # accumulate locally; DDP reduces on the last one
                    (model(tokens) * grad_out).sum().mul(loss_factor).backward()
            else:
                (model(tokens) * grad_out).sum().mul(loss_factor).backward()
    if rank == 0:
        torch.save({name: model.module.weight.grad for name, model in models.items()}, out_file)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
