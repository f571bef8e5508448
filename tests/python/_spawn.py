"""Runs a function on several local processes joined in a Gloo process group, bounded in time.

``run_group(world, target, *args, tmp_path=..., timeout=...)`` calls ``target(*args)`` on
``world`` processes after ``init_process_group("gloo")`` and returns the values they return
(``torch.save``-able), in rank order. The processes come from a ``forkserver`` that imported
torch, DTensor and this package once (``PRELOAD``), so a launch costs no import; nothing has
run in that server (no thread pool, no process group), so forking it is safe. The rendezvous is a FileStore in ``tmp_path`` (no port to choose). The first
process to fail, or the deadline, stops them all; the test then fails with the processes' errors
or the list of those still running. ``target`` must be a module-level function of an importable
module (a test file's functions are: pytest puts the test folder on ``sys.path``).
"""
import multiprocessing
import os
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, List

import torch
import torch.distributed as dist

# The torch.compile backend of the multi-process tests: "aot_eager" runs dynamo and AOTAutograd,
# which trace the DTensor rules; "inductor" adds code generation (about a minute per process
# here), so it is opt-in: UNIT_SCALING_CPP_TEST_COMPILE_BACKEND=inductor.
COMPILE_BACKEND = os.environ.get("UNIT_SCALING_CPP_TEST_COMPILE_BACKEND", "aot_eager")

# Imported once by the forkserver, not by every process (the last two: what torch.compile
# imports on its first call, even with backend="aot_eager").
PRELOAD = ["torch", "unit_scaling_cpp", "torch.distributed.tensor", "torch.distributed.fsdp",
           "torch.distributed.tensor.parallel", "unit_scaling", "pytest", "torch._dynamo",
           "torch._functorch.aot_autograd", "torch._inductor.pattern_matcher"]


def _context() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)  # effective when the server starts (first launch)
    return context


def _child(rank: int, world: int, folder: str, target: Callable[..., Any], args: Any) -> None:
    torch.set_num_threads(1)  # several processes share few cores
    result: Any
    try:
        dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank,
                                world_size=world, timeout=timedelta(seconds=60))
        try:
            result = ("ok", target(*args))
        finally:
            dist.destroy_process_group()
    except BaseException:  # reported to the parent, which fails the test
        result = ("error", f"rank {rank}:\n{traceback.format_exc()}")
        Path(folder, f"failed-{rank}").touch()  # tells the parent to stop the others now
    partial = os.path.join(folder, f".result-{rank}.pt")
    torch.save(result, partial)
    os.replace(partial, os.path.join(folder, f"result-{rank}.pt"))


def run_group(world: int, target: Callable[..., Any], *args: Any, tmp_path: Path,
              timeout: float = 120.0) -> List[Any]:
    """``target(*args)`` on ``world`` Gloo processes; their return values in rank order."""
    folder = Path(tmp_path) / f"group-{world}-{target.__name__}"
    folder.mkdir(parents=True)
    context = _context()
    processes = [context.Process(target=_child, args=(rank, world, str(folder), target, args))
                 for rank in range(world)]
    for process in processes:
        process.start()
    if COMPILE_BACKEND != "aot_eager":
        timeout *= 6  # code generation in every process
    deadline = time.monotonic() + timeout
    try:
        while any(p.is_alive() for p in processes):
            if any(p.exitcode not in (None, 0) for p in processes):
                break  # one died without reporting: stop the others
            if any((folder / f"failed-{r}").exists() for r in range(world)):
                time.sleep(0.5)  # let it write its report
                break
            if time.monotonic() > deadline:
                running = [r for r, p in enumerate(processes) if p.is_alive()]
                raise AssertionError(f"{target.__name__}: ranks {running} still running after "
                                     f"{timeout:.0f} s")
            time.sleep(0.05)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join(5)
    results, errors = [], []
    for rank, process in enumerate(processes):
        path = folder / f"result-{rank}.pt"
        if not path.exists():
            errors.append(f"rank {rank}: exited with code {process.exitcode} and no result")
            continue
        status, value = torch.load(path, weights_only=False)
        (results if status == "ok" else errors).append(value)
    if errors:
        raise AssertionError(f"{target.__name__} failed:\n" + "\n".join(errors))
    return results

