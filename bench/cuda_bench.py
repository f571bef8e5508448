#!/usr/bin/env python3
"""CUDA benchmark of unit-scaled embedding: ours against ATen and the reference library, all in
one run, with the measured device copy bandwidth as the floor. Needs a GPU (except --dry-run,
--summarize and --help).

    PYTHONPATH=python UNIT_SCALING_CPP_LIBRARY=build/libunit_scaling.so.0 \\
        python3 bench/cuda_bench.py [--quick] [--shapes gpt2,llama3,llama,bigvocab]
            [--tokens 8192,65536] [--out bench.json]
    python3 bench/cuda_bench.py --summarize bench.json [--strict]   (the table again, no GPU)
    python3 bench/cuda_bench.py --dry-run [...]   (synthetic numbers, no GPU: tests the plumbing)

Shapes (V rows x D columns, default N lookups): GPT-2 50257x768 N=8192, Llama-3 128256x4096
N=8192, Llama 32000x4096 N=4096, big vocab 256000x1024 N=4096; --tokens replaces the default N by
one or more values (scripts/gpu_check.sh: gpt2,llama3 at 8192 and 65536). For every shape, N,
index distribution (uniform, Zipf(1.1) over rows ranked by id) and weight dtype (float32,
bfloat16):

    fwd     ours: unit_scaling_cpp.functional.embedding   aten: torch.nn.functional.embedding
    bwd     ours: torch.ops.unit_scaling.embedding_backward (what autograd calls)
            aten: torch.ops.aten.embedding_dense_backward + mul_(sqrt(V/N))
    fwd+bwd ours: functional.embedding + .backward()      ref: unit_scaling.functional.embedding
            + .backward() (the reference library's path), both through autograd
    floor   one V x D write + one N x D read (+ the indices) at the copy bandwidth measured in
            the same run (a 1 GiB copy_, counting bytes read + written)
    launches  GPU operations (kernels, memsets, copies) one backward issues: ours from the node
            count of a CUDA graph captured around one call (the profiler where capture fails),
            ATen's from torch.profiler's device events (its backward cannot always be captured)

How: CUDA events around each call; warm-up calls first; the median over the repeats; the inputs
(index and gradient tensors) rotate among four sets so that repeats do not hit the L2 cache with
the previous call's data. Before each batch of timed calls a sleep kernel keeps the GPU busy while
the host queues the calls, so host launch overhead does not count for calls that do not wait for
the GPU: the times are device times. A forward that reads back to the host (the opt-in "raise"
index-check policy) cannot queue ahead, so its time would include that stall, as in training.

The read-back is also measured alone (`readback` in the JSON and the line under the table):
`d2h_us` is an 8-byte device-to-host read + sync on an idle GPU; `stall_us` is, per call in a
loop of forwards, (ours eager - ours replayed from a CUDA graph, where the forward reads nothing
back) - (ATen eager - ATen replayed from a CUDA graph): the second difference removes the launch
overhead that graphs save for any op, leaving what a read-back costs a pipeline (about 0 under the
default device_assert policy).

The precision column (bfloat16 rows): the relative error ||g - exact|| / ||exact|| of the bf16
gradient against the float64 result, divided by that of the correctly rounded result
(exact.to(bf16)); ours and ATen's.

Before timing, each configuration checks that our forward equals ATen's and our backward agrees
with ATen's in float64 (the `check` column): a wrong kernel is never timed as a fast one. A
configuration that raises (out of memory, say) is a row with check `ERROR` and the run goes on.

Output: a markdown table (stdout) and, with --out, a JSON file with every number, rewritten after
every configuration (so a run killed part-way leaves its finished rows). Exit status: 0; 1 when a
configuration fails its check or raises; 2 without a GPU or on bad arguments; 3 with --strict when
a ratio misses its target.
"""
import argparse
import json
import math
import statistics
import sys
import time

SHAPES = {  # name: (V rows, D columns, default N lookups)
    "gpt2": (50257, 768, 8192),
    "llama3": (128256, 4096, 8192),
    "llama": (32000, 4096, 4096),
    "bigvocab": (256000, 1024, 4096),
}
DISTS = ("uniform", "zipf")
DTYPES = ("float32", "bfloat16")
ROTATION = 4  # input sets rotated between repeats
DEVICE = "cuda"

# The GPU targets of DESIGN.md section 4 (docs/PERFORMANCE.md; H100/H200): ratio <= target passes.
TARGETS = {
    "fwd_vs_aten": 1.0,
    "bwd_vs_aten": 0.4,
    "bwd_vs_floor": 1.5,
    "fwdbwd_vs_ref": 0.6,
    "bf16_error_vs_rounded": 1.5,
}


def _int_list(text):
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise ValueError(text)
    return values


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="CUDA benchmark: ours vs ATen vs the reference library (needs a GPU, except "
                    "--dry-run and --summarize).",
        epilog="Library: PYTHONPATH=python UNIT_SCALING_CPP_LIBRARY=build/libunit_scaling.so.0")
    parser.add_argument("--quick", action="store_true",
                        help="fewer warm-up calls and repeats (for scripts/gpu_check.sh)")
    parser.add_argument("--shapes", default="gpt2,llama,bigvocab",
                        help=f"comma-separated subset of {','.join(SHAPES)} "
                             "(default: gpt2,llama,bigvocab)")
    parser.add_argument("--tokens", help="comma-separated lookup counts N, each run with every "
                        "shape (default: each shape's own N)")
    parser.add_argument("--dists", default=",".join(DISTS), help="uniform,zipf (default: both)")
    parser.add_argument("--dtypes", default=",".join(DTYPES),
                        help="float32,bfloat16 (default: both)")
    parser.add_argument("--repeats", type=int, help="timed calls per measurement "
                        "(default 50, 15 with --quick)")
    parser.add_argument("--warmup", type=int, help="untimed calls first (default 10, 3 with "
                        "--quick)")
    parser.add_argument("--out", help="write every number to this JSON file (rewritten after "
                        "every configuration)")
    parser.add_argument("--strict", action="store_true",
                        help="exit status 3 when a ratio misses its target")
    parser.add_argument("--dry-run", action="store_true",
                        help="no GPU, no torch: synthetic numbers through the same table and "
                             "JSON (tests the plumbing; never a measurement)")
    parser.add_argument("--summarize", metavar="JSON",
                        help="print the table of a JSON file that --out wrote, and a one-line "
                             "verdict; no GPU needed")
    args = parser.parse_args(argv)
    for name, allowed in (("shapes", SHAPES), ("dists", DISTS), ("dtypes", DTYPES)):
        values = [v for v in getattr(args, name).split(",") if v]
        unknown = [v for v in values if v not in allowed]
        if unknown or not values:
            parser.error(f"--{name}: unknown {unknown}; choose from {','.join(allowed)}")
        setattr(args, name, values)
    if args.tokens is not None:
        try:
            args.tokens = _int_list(args.tokens)
        except ValueError:
            parser.error(f"--tokens: expected positive whole numbers separated by commas, got "
                         f"{args.tokens!r}")
    for name in ("repeats", "warmup"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "repeats" else 0):
            parser.error(f"--{name}: {value} is too small")
    args.repeats = args.repeats or (15 if args.quick else 50)
    args.warmup = args.warmup if args.warmup is not None else (3 if args.quick else 10)
    return args


def configurations(args):
    """(shape, N, dtype, dist) in the order they run."""
    return [(shape, n, dtype, dist)
            for shape in args.shapes
            for n in (args.tokens or [SHAPES[shape][2]])
            for dtype in args.dtypes
            for dist in args.dists]


class Timer:
    """Median device time in ms of fn(*inputs[i % len(inputs)]) over `repeats` calls.

    Each call is bracketed by its own pair of CUDA events. All timed calls are queued behind a
    sleep kernel long enough for the host to queue them, so host launch overhead stays out of
    the numbers unless a call itself waits for the GPU.
    """

    def __init__(self, torch, warmup, repeats):
        self.torch = torch
        self.warmup = warmup
        self.repeats = repeats
        self.cycles_per_ms = self._calibrate_sleep()

    def _calibrate_sleep(self):
        torch = self.torch
        cycles = 20_000_000
        torch.cuda._sleep(cycles)  # first launch: module load
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.cuda._sleep(cycles)
        end.record()
        torch.cuda.synchronize()
        return cycles / start.elapsed_time(end)

    def __call__(self, fn, inputs):
        torch = self.torch
        for i in range(self.warmup):
            fn(*inputs[i % len(inputs)])
        torch.cuda.synchronize()
        # Host time to queue the calls, measured on the warm-up pass, sets the sleep.
        host_start = time.perf_counter()
        for i in range(min(3, self.repeats)):
            fn(*inputs[i % len(inputs)])
        torch.cuda.synchronize()
        host_ms_per_call = (time.perf_counter() - host_start) * 1e3 / min(3, self.repeats)
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(self.repeats)]
        sleep_ms = min(2.0 * host_ms_per_call * self.repeats + 1.0, 500.0)
        torch.cuda._sleep(int(sleep_ms * self.cycles_per_ms))
        for i, (start, end) in enumerate(events):
            args = inputs[i % len(inputs)]
            start.record()
            fn(*args)
            end.record()
        torch.cuda.synchronize()
        return statistics.median(start.elapsed_time(end) for start, end in events)


def copy_bandwidth(torch, timer):
    """Device-to-device copy bandwidth in bytes/s, counting bytes read + written (1 GiB copy)."""
    src = torch.randn(256 * 1024 * 1024, device=DEVICE)  # 1 GiB of float32
    dst = torch.empty_like(src)
    ms = timer(lambda: dst.copy_(src), [()])
    return 2 * src.numel() * src.element_size() / (ms * 1e-3)


def make_indices(torch, dist, num_rows, n, generator):
    if dist == "uniform":
        return torch.randint(0, num_rows, (n,), device=DEVICE, generator=generator)
    ranks = torch.arange(1, num_rows + 1, dtype=torch.float64, device=DEVICE)
    return torch.multinomial(ranks.pow(-1.1), n, replacement=True, generator=generator)


def relative_error(value, exact):
    return ((value.double() - exact).norm() / exact.norm()).item()


def graph_launches(torch, fn):
    """GPU operations in a CUDA graph captured around one call of fn, by node type."""
    from cuda.bindings import runtime  # the cuda-bindings package (torch's CUDA 13 wheels)

    def checked(result):
        error, *values = result
        if error != runtime.cudaError_t.cudaSuccess:
            raise RuntimeError(f"cuda-bindings: {error}")
        return values

    side = torch.cuda.Stream()  # warm up off the capture stream, as torch.cuda.graphs advises
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph(keep_graph=True)
    with torch.cuda.graph(graph):
        fn()
    raw = graph.raw_cuda_graph()
    _, count = checked(runtime.cudaGraphGetNodes(raw, 0))
    nodes, _ = checked(runtime.cudaGraphGetNodes(raw, count))
    kinds = {}
    for node in nodes[:count]:
        (kind,) = checked(runtime.cudaGraphNodeGetType(node))
        name = str(kind).rsplit(".", 1)[-1].replace("cudaGraphNodeType", "").lower()
        kinds[name] = kinds.get(name, 0) + 1
    return {"total": int(count), "kinds": kinds, "method": "cuda graph nodes"}


def profiler_launches(torch, fn):
    """GPU operations one call of fn issues, from torch.profiler's device events."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    device = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    kinds = {}
    for e in device:
        name = e.name.lower()
        kind = "memset" if "memset" in name else "memcpy" if "memcpy" in name else "kernel"
        kinds[kind] = kinds.get(kind, 0) + 1
    return {"total": len(device), "kinds": kinds, "method": "profiler device events"}


def count_launches(torch, fn, capture):
    """GPU operations per call: graph nodes when `capture`, else (or when capture fails) the
    profiler's count; a dict with the reason when neither works."""
    failures = []
    for method in ((graph_launches, profiler_launches) if capture else (profiler_launches,)):
        try:
            return method(torch, fn)
        except Exception as error:  # noqa: BLE001  (reported in the JSON, the run goes on)
            failures.append(f"{method.__name__}: {type(error).__name__}: {error}"[:300])
            torch.cuda.synchronize()
    return {"total": None, "error": "; ".join(failures)}


def run_config(torch, usc, reference, timer, shape, n, dist, dtype_name, bandwidth, registered):
    F = torch.nn.functional
    ops = torch.ops.unit_scaling
    num_rows, dim, _ = SHAPES[shape]
    dtype = getattr(torch, dtype_name)
    generator = torch.Generator(device=DEVICE).manual_seed(0)
    weight = torch.randn(num_rows, dim, device=DEVICE, generator=generator).to(dtype)
    sets = [(make_indices(torch, dist, num_rows, n, generator),
             torch.randn(n, dim, device=DEVICE, generator=generator).to(dtype))
            for _ in range(ROTATION)]
    scale = math.sqrt(num_rows / n)
    row = {"shape": shape, "V": num_rows, "D": dim, "N": n, "dist": dist, "dtype": dtype_name}

    # Correct first: forward equal to ATen's, backward close to ATen's float64 result.
    tokens, grad = sets[0]
    ours_out = usc.functional.embedding(tokens, weight)
    exact = torch.ops.aten.embedding_dense_backward(grad.double(), tokens, num_rows, -1,
                                                    False).mul_(scale)
    ours_grad = ops.embedding_backward(grad, tokens, num_rows)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2
    row["check"] = ("ok" if torch.equal(ours_out, F.embedding(tokens, weight))
                    and relative_error(ours_grad, exact) < tolerance else "FAIL")

    if dtype == torch.bfloat16:
        aten_grad = torch.ops.aten.embedding_dense_backward(grad, tokens, num_rows, -1,
                                                            False).mul_(scale)
        rounded = relative_error(exact.to(dtype), exact)
        row["bf16_error_vs_rounded"] = relative_error(ours_grad, exact) / rounded
        row["aten_bf16_error_vs_rounded"] = relative_error(aten_grad, exact) / rounded
        del aten_grad
    del ours_out, exact, ours_grad

    def ours_bwd(t, g):
        return ops.embedding_backward(g, t, num_rows)

    def aten_bwd(t, g):
        return torch.ops.aten.embedding_dense_backward(g, t, num_rows, -1, False).mul_(scale)

    row["fwd_ours_ms"] = timer(lambda t, g: usc.functional.embedding(t, weight), sets)
    row["fwd_aten_ms"] = timer(lambda t, g: F.embedding(t, weight), sets)
    row["bwd_ours_ms"] = timer(ours_bwd, sets)
    row["bwd_aten_ms"] = timer(aten_bwd, sets)

    trained = weight.clone().requires_grad_()

    def ours_fwdbwd(t, g):
        trained.grad = None
        usc.functional.embedding(t, trained).backward(g)

    row["fwdbwd_ours_ms"] = timer(ours_fwdbwd, sets)
    if reference is not None:
        def reference_fwdbwd(t, g):
            trained.grad = None
            reference.embedding(t, trained).backward(g)

        row["fwdbwd_ref_ms"] = timer(reference_fwdbwd, sets)
    trained.grad = None
    del trained

    # Launches per backward, last: nothing timed comes after a capture.
    row["bwd_launches_ours"] = count_launches(torch, lambda: ours_bwd(*sets[0]), registered)
    row["bwd_launches_aten"] = count_launches(torch, lambda: aten_bwd(*sets[0]), False)
    add_ratios(row, weight.element_size(), bandwidth)
    return row


def add_ratios(row, element, bandwidth):
    """The floors (bytes at the measured copy bandwidth) and the ratios the targets judge."""
    n, num_rows, dim = row["N"], row["V"], row["D"]
    floor_bytes = num_rows * dim * element + n * dim * element + n * 8
    row["bwd_floor_ms"] = floor_bytes / bandwidth * 1e3
    row["fwd_floor_ms"] = (2 * n * dim * element + n * 8) / bandwidth * 1e3
    row["fwd_vs_aten"] = row["fwd_ours_ms"] / row["fwd_aten_ms"]
    row["bwd_vs_aten"] = row["bwd_ours_ms"] / row["bwd_aten_ms"]
    row["bwd_vs_floor"] = row["bwd_ours_ms"] / row["bwd_floor_ms"]
    if "fwdbwd_ref_ms" in row:
        row["fwdbwd_vs_ref"] = row["fwdbwd_ours_ms"] / row["fwdbwd_ref_ms"]


def dry_run_row(shape, n, dist, dtype_name, bandwidth):
    """Synthetic numbers for --dry-run: made up, deterministic, some missing their targets."""
    num_rows, dim, _ = SHAPES[shape]
    element = 4 if dtype_name == "float32" else 2
    row = {"shape": shape, "V": num_rows, "D": dim, "N": n, "dist": dist, "dtype": dtype_name,
           "check": "ok", "dry_run": True}
    floor_ms = (num_rows * dim * element + n * dim * element + n * 8) / bandwidth * 1e3
    launch_ms = 0.004 * (2 if n > 10000 else 1)
    row["bwd_ours_ms"] = floor_ms * (1.1 if dist == "uniform" else 1.3) + launch_ms
    row["bwd_aten_ms"] = row["bwd_ours_ms"] * (3.0 if shape == "llama3" else 2.2)
    row["fwd_aten_ms"] = (2 * n * dim * element) / bandwidth * 1e3 + 0.003
    row["fwd_ours_ms"] = row["fwd_aten_ms"] * (0.98 if dtype_name == "float32" else 1.04)
    row["fwdbwd_ours_ms"] = row["fwd_ours_ms"] + row["bwd_ours_ms"]
    row["fwdbwd_ref_ms"] = row["fwd_aten_ms"] + row["bwd_aten_ms"] * 1.05
    if dtype_name == "bfloat16":
        row["bf16_error_vs_rounded"] = 1.01
        row["aten_bf16_error_vs_rounded"] = 1.9
    row["bwd_launches_ours"] = {"total": 3, "kinds": {"kernel": 2, "memset": 1},
                                "method": "dry run"}
    row["bwd_launches_aten"] = {"total": 9, "kinds": {"kernel": 7, "memset": 2},
                                "method": "dry run"}
    add_ratios(row, element, bandwidth)
    return row


def readback_cost(torch, usc, shape, registered, calls=50):
    """The forward's read-back, per call, in microseconds (see the module docstring)."""
    F = torch.nn.functional
    num_rows, dim, n = SHAPES[shape]
    weight = torch.randn(num_rows, dim, device=DEVICE)
    tokens = torch.randint(0, num_rows, (n,), device=DEVICE)
    flag = torch.zeros((), dtype=torch.int64, device=DEVICE)

    def host_us(fn, count):
        fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(count):
                fn()
            torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1e6 / count)
        return statistics.median(times)

    def graphed(fn):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        return graph.replay

    result = {"shape": shape, "d2h_us": host_us(lambda: flag.item(), 200)}
    ours = lambda: usc.functional.embedding(tokens, weight)  # noqa: E731
    aten = lambda: F.embedding(tokens, weight)  # noqa: E731
    result["ours_eager_us"] = host_us(ours, calls)
    result["aten_eager_us"] = host_us(aten, calls)
    result["aten_graph_us"] = host_us(graphed(aten), calls)
    if not registered:
        result["ours_graph"] = "the ATen fallback reads back while capturing: no CUDA graph"
        return result
    result["ours_graph_us"] = host_us(graphed(ours), calls)
    result["stall_us"] = ((result["ours_eager_us"] - result["ours_graph_us"])
                          - (result["aten_eager_us"] - result["aten_graph_us"]))
    return result


def mark(value, target):
    """A ratio with ✗ when it misses its target; n/a when not measured."""
    if value is None:
        return "n/a"
    return f"{value:.2f}" + ("" if value <= target else " ✗")


# The judged ratios: (row key, target key).
JUDGED = (("fwd_vs_aten", "fwd_vs_aten"), ("bwd_vs_aten", "bwd_vs_aten"),
          ("bwd_vs_floor", "bwd_vs_floor"), ("fwdbwd_vs_ref", "fwdbwd_vs_ref"),
          ("bf16_error_vs_rounded", "bf16_error_vs_rounded"))


def misses(row):
    """The judged ratios of a row that miss their targets."""
    return [key for key, target in JUDGED
            if row.get(key) is not None and row[key] > TARGETS[target]]


def _launches(row, key):
    value = (row.get(key) or {}).get("total")
    return "?" if value is None else str(value)


def markdown(rows, meta):
    lines = [
        f"device: {meta['device']}, torch {meta['torch']}, CUDA tensors reach "
        f"{meta['cuda_path']}; copy bandwidth {meta['copy_bandwidth_gbs']:.0f} GB/s "
        f"(read + write); {meta.get('warmup', '?')} warm-up calls, median of "
        f"{meta.get('repeats', '?')}; ✗ = misses the target",
        "shapes: " + ", ".join(f"{name} {SHAPES[name][0]}x{SHAPES[name][1]}"
                               for name in dict.fromkeys(r["shape"] for r in rows)
                               if name in SHAPES),
        "",
        "| shape | N | dtype | indices | check | fwd ours ms | fwd ours/aten ≤1.0 | bwd ours ms "
        "| bwd ours/aten ≤0.4 | bwd ours/floor ≤1.5 | fwd+bwd ours/ref ≤0.6 "
        "| bwd launches ours/aten | bf16 err/rounded ours ≤1.5 | bf16 err/rounded aten |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        precision = ["", ""]
        if "bf16_error_vs_rounded" in r:
            precision = [mark(r["bf16_error_vs_rounded"], TARGETS["bf16_error_vs_rounded"]),
                         f"{r['aten_bf16_error_vs_rounded']:.2f}"]
        if "fwd_ours_ms" not in r:  # a configuration that raised before it was timed
            cells = [r["shape"], str(r["N"]), r["dtype"], r["dist"], r["check"]] + [""] * 9
        else:
            cells = [r["shape"], str(r["N"]), r["dtype"], r["dist"], r["check"],
                     f"{r['fwd_ours_ms']:.3f}", mark(r["fwd_vs_aten"], TARGETS["fwd_vs_aten"]),
                     f"{r['bwd_ours_ms']:.3f}", mark(r["bwd_vs_aten"], TARGETS["bwd_vs_aten"]),
                     mark(r["bwd_vs_floor"], TARGETS["bwd_vs_floor"]),
                     mark(r.get("fwdbwd_vs_ref"), TARGETS["fwdbwd_vs_ref"]),
                     f"{_launches(r, 'bwd_launches_ours')}/{_launches(r, 'bwd_launches_aten')}",
                     *precision]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for r in meta.get("readback", []):
        if "stall_us" in r:
            lines.append(
                f"forward read-back, {r['shape']}: {r['stall_us']:.1f} µs per call in a loop "
                f"(8-byte read + sync on an idle GPU: {r['d2h_us']:.1f} µs)")
        else:
            lines.append(f"forward read-back, {r['shape']}: not measured ({r['ours_graph']}); "
                         f"8-byte read + sync on an idle GPU: {r['d2h_us']:.1f} µs")
    return "\n".join(lines)


def verdict(rows, meta, strict):
    """The last line of the table, and the exit status it implies."""
    bad = [r for r in rows if r["check"] != "ok"]
    missing = [r for r in rows if misses(r)]
    planned = meta.get("planned", len(rows))
    line = (f"bench: {len(rows)} of {planned} rows"
            f"{'' if meta.get('complete', True) else ' (stopped early)'}; "
            f"{len(missing)} miss a target; {len(bad)} fail the check")
    if meta.get("dry_run"):
        line += " (dry run: synthetic numbers)"
    if bad or not rows:
        return line, 1
    if strict and (missing or len(rows) < planned):
        return line, 3
    return line, 0


def write_json(path, meta, rows):
    if path:
        with open(path, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


def summarize(path, strict):
    """--summarize: the table and verdict of a JSON file that --out wrote."""
    try:
        with open(path) as f:
            data = json.load(f)
        meta, rows = data["meta"], data["rows"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"bench: cannot read {path}: {error}")
        return 1
    print(markdown(rows, meta))
    line, status = verdict(rows, meta, strict)
    print(line)
    return status


def main(argv=None):
    args = parse_args(argv)
    if args.summarize:
        return summarize(args.summarize, args.strict)
    planned = configurations(args)
    meta = {"warmup": args.warmup, "repeats": args.repeats, "rotation": ROTATION,
            "targets": TARGETS, "planned": len(planned), "complete": False, "readback": []}
    rows = []
    if args.dry_run:
        bandwidth = 3.0e12
        meta.update(device="dry run (no GPU)", torch="none", cuda_path="nothing (dry run)",
                    copy_bandwidth_gbs=bandwidth / 1e9, dry_run=True)
        for shape, n, dtype, dist in planned:
            rows.append(dry_run_row(shape, n, dist, dtype, bandwidth))
            write_json(args.out, meta, rows)
    else:
        status = measure(args, planned, meta, rows)
        if status is not None:
            return status
    meta["complete"] = True
    write_json(args.out, meta, rows)
    print(markdown(rows, meta))
    line, status = verdict(rows, meta, args.strict)
    print(line)
    return status


def measure(args, planned, meta, rows):
    """The GPU run: fills meta and rows (the JSON after every row); an exit status if it cannot
    run at all, else None."""
    import torch

    if not torch.cuda.is_available():
        print("cuda_bench: no CUDA device visible", file=sys.stderr)
        return 2
    import unit_scaling_cpp as usc

    try:
        import unit_scaling.functional as reference
    except ImportError:
        reference = None
        print("cuda_bench: the reference library unit_scaling is not importable: its column "
              "is n/a", file=sys.stderr)

    registered = all(torch._C._dispatch_has_kernel_for_dispatch_key(
        f"unit_scaling::{name}", "CUDA") for name in
        ("embedding_lookup", "embedding_backward", "_scaled_embedding_backward",
         "embedding_renorm_"))
    timer = Timer(torch, args.warmup, args.repeats)
    bandwidth = copy_bandwidth(torch, timer)
    policy = getattr(usc, "get_index_check_policy", None)
    meta.update(device=torch.cuda.get_device_name(), torch=torch.__version__,
                cuda_path="our CUDA kernels" if registered else "the ATen fallback",
                copy_bandwidth_gbs=bandwidth / 1e9,
                index_check_policy=str(policy()) if policy else "n/a")
    for shape, n, dtype, dist in planned:
        try:
            rows.append(run_config(torch, usc, reference, timer, shape, n, dist, dtype,
                                   bandwidth, registered))
        except Exception as error:  # noqa: BLE001  (one row says so; the others still run)
            num_rows, dim, _ = SHAPES[shape]
            rows.append({"shape": shape, "V": num_rows, "D": dim, "N": n, "dist": dist,
                         "dtype": dtype, "check": "ERROR",
                         "error": f"{type(error).__name__}: {error}"[:500]})
            print(f"cuda_bench: {shape} N={n} {dtype} {dist} raised {rows[-1]['error']}",
                  file=sys.stderr, flush=True)
        torch.cuda.synchronize()
        torch.cuda.empty_cache()  # tables reach 2 GiB: keep memory bounded
        write_json(args.out, meta, rows)
        print(f"cuda_bench: {shape} N={n} {dtype} {dist} done", file=sys.stderr, flush=True)
    for shape in args.shapes:
        try:
            meta["readback"].append(readback_cost(torch, usc, shape, registered))
        except Exception as error:  # noqa: BLE001
            meta["readback"].append({"shape": shape, "d2h_us": float("nan"),
                                     "ours_graph": f"{type(error).__name__}: {error}"[:300]})
    return None


if __name__ == "__main__":
    sys.exit(main())
