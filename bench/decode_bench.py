"""The cost of one call at decode sizes, from Python: ours against torch's own embedding and the
reference library's, in the same process, interleaved.

At N = 1, 8 or 64 tokens the lookup moves a few KiB, so a call costs what its Python and
dispatcher layers cost. Each round times every candidate once, `calls` calls in a row, in a
rotating order (so drift and the other core's load spread over all of them); the table reports
each candidate's median per-call time over the rounds and its ratio to torch's (median of the
per-round ratios). Rows: the functional (``unit_scaling_cpp.functional.embedding`` against
``torch.nn.functional.embedding``) and the module (``unit_scaling_cpp.Embedding`` against
``torch.nn.Embedding``), with and without grad (a weight that requires grad, under
``torch.enable_grad()`` or ``torch.no_grad()``; forward only). The reference library
(``unit_scaling.functional.embedding``, ``unit_scaling.Embedding``) runs in the same rounds,
fewer calls per round: its forward multiplies the whole V x D table by a scale on every call.

    PYTHONPATH=python UNIT_SCALING_CPP_LIBRARY=build/libunit_scaling.so python bench/decode_bench.py
    python bench/decode_bench.py --rounds 41 --calls 200 --tokens 1,8,64   (the defaults)
"""
import argparse
import os
import statistics
import time
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F

import unit_scaling_cpp as usc

V, D = 50257, 768  # GPT-2's table


def _per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) / calls / 1000.0  # microseconds


def _candidates(n: int, grad: bool) -> Dict[str, Callable[[], object]]:
    torch.manual_seed(0)
    tokens = torch.randint(0, V, (1, n))
    weight = torch.randn(V, D, requires_grad=grad)
    torch_module = torch.nn.Embedding(V, D, _weight=weight.detach().clone().requires_grad_(grad))
    ours_module = usc.Embedding.from_pretrained(weight.detach().clone(), freeze=not grad)
    found = {
        "functional/torch": lambda: F.embedding(tokens, weight),
        "functional/ours": lambda: usc.functional.embedding(tokens, weight),
        "module/torch": lambda: torch_module(tokens),
        "module/ours": lambda: ours_module(tokens),
    }
    try:
        import unit_scaling
        import unit_scaling.functional as U
        reference = unit_scaling.Embedding(V, D)
        reference.weight.data.copy_(weight.detach())
        reference.weight.requires_grad_(grad)
        found["functional/reference"] = lambda: U.embedding(tokens, weight)
        found["module/reference"] = lambda: reference(tokens)
    except ImportError:
        pass
    return found


def measure(n: int, grad: bool, rounds: int, calls: int) -> Dict[str, List[float]]:
    candidates = _candidates(n, grad)
    times: Dict[str, List[float]] = {name: [] for name in candidates}
    names = list(candidates)
    context = torch.enable_grad if grad else torch.no_grad
    with context():
        for fn in candidates.values():  # warm-up: allocator, caches, lazy imports
            fn()
        for r in range(rounds):
            for i in range(len(names)):
                name = names[(r + i) % len(names)]
                reps = max(1, calls // 100) if name.endswith("/reference") else calls
                times[name].append(_per_call(candidates[name], reps))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--tokens", default="1,8,64")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    print(f"GPT-2 table (V={V}, D={D}), float32, {torch.get_num_threads()} thread(s), "
          f"torch {torch.__version__}, median of {args.rounds} interleaved rounds")
    print("| call | tokens | grad | torch µs | ours µs | ours / torch | reference µs | "
          "reference / ours |")
    print("|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for kind in ("functional", "module"):
        for n in [int(t) for t in args.tokens.split(",")]:
            for grad in (False, True):
                times = measure(n, grad, args.rounds, args.calls)
                base, ours = times[f"{kind}/torch"], times[f"{kind}/ours"]
                ratio = statistics.median(o / b for o, b in zip(ours, base))
                worst = max(worst, ratio)
                reference = times.get(f"{kind}/reference")
                ref_cells = (f"{statistics.median(reference):.0f} | "
                             f"{statistics.median(reference) / statistics.median(ours):.0f}×"
                             if reference else "– | –")
                print(f"| {kind} | {n} | {'yes' if grad else 'no'} | "
                      f"{statistics.median(base):.2f} | {statistics.median(ours):.2f} | "
                      f"{ratio:.2f} | {ref_cells} |")
    print(f"\nworst ours / torch: {worst:.2f} (target: at most 1.10)")


if __name__ == "__main__":
    main()
