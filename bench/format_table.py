#!/usr/bin/env python3
"""Turns embedding_bench's JSON output into the ratio tables of docs/PERFORMANCE.md.

Usage: report.py BENCH.json. Uses the median of the repetitions when there are several.
Ratios are times: ours/aten < 1 means we are faster; ours/floor >= 1 (the floor is the better of
the two floor variants: default allocation and huge-page allocation).
"""
import json
import sys
from collections import defaultdict

TARGETS = {  # (op, dtype) -> (max ours/aten, max ours/floor or None)
    ("fwd", "f32"): (1.0, 1.3), ("fwd", "bf16"): (1.0, 1.3),
    ("bwd", "f32"): (0.8, None), ("bwd", "bf16"): (1.0, None),
}


def load(path):
    with open(path) as f:
        data = json.load(f)
    times = {}
    has_median = any(b.get("aggregate_name") == "median" for b in data["benchmarks"])
    for b in data["benchmarks"]:
        if has_median and b.get("aggregate_name") != "median":
            continue
        name = b["run_name"] if has_median else b["name"]
        times[name.removesuffix("/real_time")] = b["real_time"]  # ms
    return data["context"], times


def main():
    context, times = load(sys.argv[1])
    configs = defaultdict(dict)
    for name, t in times.items():
        op, impl, shape, dtype, dist, threads = name.split("/")
        configs[(shape, dtype, dist, threads)][(op, impl)] = t
    print(f"machine: {context.get('num_cpus')} CPUs @ {context.get('mhz_per_cpu')} MHz, "
          f"date {context.get('date')}")
    print()
    print("| shape | dtype | indices | threads | fwd ours ms | fwd ours/aten | fwd ours/floor "
          "| bwd ours ms | bwd ours/aten | bwd ours/floor | fwd+bwd ours/aten |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    misses = []
    for (shape, dtype, dist, threads), t in sorted(configs.items()):
        row = [shape, dtype, dist, threads]
        for op in ("fwd", "bwd"):
            ours, aten = t.get((op, "ours")), t.get((op, "aten"))
            floors = [v for k, v in t.items() if k[0] == op and k[1].startswith("floor")]
            if ours is None or aten is None or not floors:
                row += ["-", "-", "-"]
                continue
            vs_aten, vs_floor = ours / aten, ours / min(floors)
            limit_aten, limit_floor = TARGETS[(op, dtype)]
            dim_ok = shape != "small"  # the floor target is for D >= 256
            # The float32 backward target names GPT-2, Llama and big vocab; the others apply to all.
            aten_target_applies = not (op == "bwd" and dtype == "f32" and shape == "small")
            miss_aten = vs_aten > limit_aten and aten_target_applies
            miss_floor = limit_floor is not None and dim_ok and vs_floor > limit_floor
            if miss_aten or miss_floor:
                misses.append(f"{op} {shape} {dtype} {dist} {threads}: ours/aten {vs_aten:.2f}, "
                              f"ours/floor {vs_floor:.2f}")
            row += [f"{ours:.2f}", f"{vs_aten:.2f}" + (" ✗" if miss_aten else ""),
                    f"{vs_floor:.2f}" + (" ✗" if miss_floor else "")]
        fb_ours, fb_aten = t.get(("fwdbwd", "ours")), t.get(("fwdbwd", "aten"))
        row.append(f"{fb_ours / fb_aten:.2f}" if fb_ours and fb_aten else "-")
        print("| " + " | ".join(row) + " |")
    print()
    print("targets missed (✗):" if misses else "all targets met.")
    for m in misses:
        print("  " + m)


if __name__ == "__main__":
    main()
