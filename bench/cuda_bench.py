#!/usr/bin/env python3
"""CUDA benchmark of unit-scaled embedding: ours against ATen and the reference library, all in
one run, with the measured device copy bandwidth as the floor; every backward variant side by
side; the max_norm renorm. Needs a GPU (except --dry-run, --summarize and --help).

    PYTHONPATH=python UNIT_SCALING_CPP_LIBRARY=build/libunit_scaling.so.0 \\
        python3 bench/cuda_bench.py [--quick] [--shapes gpt2,llama3,llama,bigvocab]
            [--tokens 8192,65536] [--variants baseline,hot_rows,side_zero,merge_path,all]
            [--renorm 2,inf] [--out bench.json]
    python3 bench/cuda_bench.py --summarize bench.json [--strict]   (the tables again, no GPU)
    python3 bench/cuda_bench.py --dry-run [...]   (synthetic numbers, no GPU: tests the plumbing)

Shapes (V rows x D columns, default N lookups): GPT-2 50257x768 N=8192, Llama-3 128256x4096
N=8192, Llama 32000x4096 N=4096, big vocab 256000x1024 N=4096; --tokens replaces the default N by
one or more values (scripts/gpu_check.py: gpt2,llama3 at 8192 and 65536). A configuration is a
shape, N, index distribution (uniform, Zipf(1.1) over rows ranked by id) and weight dtype
(float32, bfloat16). The decisive configurations run first -- GPT-2 and Llama-3 in bfloat16 at
N = 8192 and 65536 -- then the others in the order of the options, so a run cut short by a time
limit has measured what matters most. For every configuration:

    fwd     ours: unit_scaling_cpp.functional.embedding   aten: torch.nn.functional.embedding
    bwd     ours: torch.ops.unit_scaling.embedding_backward (what autograd calls), the default
            backward (UNIT_SCALING_BACKWARD_VARIANT unset)
            aten: torch.ops.aten.embedding_dense_backward + mul_(sqrt(V/N))
    fwd+bwd ours: functional.embedding + .backward()      ref: unit_scaling.functional.embedding
            + .backward() (the reference library's path), both through autograd
    floor   one V x D write + one N x D read (+ the indices) at the copy bandwidth measured in
            the same run (a 1 GiB copy_, counting bytes read + written)
    launches  GPU operations (kernels, memsets, copies) one backward issues: ours from the node
            count of a CUDA graph captured around one call (the profiler where capture fails),
            ATen's from torch.profiler's device events (its backward cannot always be captured)
    variants  the same backward with UNIT_SCALING_BACKWARD_VARIANT set to each of --variants
            (default: baseline, hot_rows, side_zero, merge_path, all), in this process, between
            measurements (the CUDA backend reads it on each backward call): time, GB/s (floor
            bytes / time), ratios to the floor and to ATen, launches. Each variant's result is
            first compared with the baseline's bit for bit; one that differs or raises is marked
            and makes the exit status 1 (a differing one is still timed, marked, so the numbers
            are not lost; a raising one is not).

renorm (--renorm, default p = 2 and inf): the Llama-3 table (--renorm-shape), N = 65536
(--renorm-tokens), max_norm = 1 (every referenced row of a randn table is over it), for each
dtype and distribution: ours (torch.ops.unit_scaling.embedding_renorm_) against ATen's
torch.embedding_renorm_, each call on a fresh copy of the table (the copy is queued before the
call's start event, untimed), so every call renorms the same rows. Checked against a float64
renorm of the referenced rows; ATen's agreement is recorded, not judged; each implementation's
synchronisations per call (torch.cuda's sync debug mode) are recorded.

How: CUDA events around each call; warm-up calls first; the median over the repeats; the inputs
(index and gradient tensors) rotate among four sets so that repeats do not hit the L2 cache (50
MB on an H100) with the previous call's data. Before each batch of timed calls a sleep kernel
keeps the GPU busy while the host queues the calls, so host launch overhead does not count for
calls that do not wait for the GPU: the times are device times. A call that reads back to the
host (the opt-in "raise" index-check policy; an ATen operator that reads a count back) cannot
queue ahead, so its time includes that stall, as in training.

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

Output: markdown tables (stdout: configurations, backward variants, renorm) and, with --out, a
JSON file {"meta", "rows", "renorm"} with every number, rewritten (atomically) after every
configuration's main measurements, after each of its variants and after every renorm row, so a
run killed part-way (a time limit) leaves everything it finished; --summarize prints the tables
of such a file. On SIGTERM the run stops, writes the JSON and prints the tables. At the start,
stderr gets the plan: rows, variants, calls per measurement and the time it should take.

Exit status: 0; 1 when a configuration or renorm row fails its check or raises, or a variant
raises or differs from the baseline; 2 without a GPU or on bad arguments; 3 with --strict when
a ratio misses its target or planned measurements are missing.
"""
import argparse
import json
import math
import os
import signal
import statistics
import sys
import textwrap
import threading
import time
import warnings

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

# The configurations that decide the design questions run first: (shapes, N values, dtype).
DECISIVE_SHAPES = ("gpt2", "llama3")
DECISIVE_TOKENS = (8192, 65536)
DECISIVE_DTYPE = "bfloat16"

# The backward variants of the CUDA backend, chosen per backward call by this variable.
VARIANT_ENV = "UNIT_SCALING_BACKWARD_VARIANT"
VARIANTS = ("baseline", "hot_rows", "side_zero", "merge_path", "all")

# The renorm rows: table, N, max_norm, default norm types.
RENORM_SHAPE = "llama3"
RENORM_TOKENS = 65536
RENORM_MAX_NORM = 1.0
RENORM_NORMS = (2.0, math.inf)

# The GPU targets of DESIGN.md section 4 (docs/PERFORMANCE.md; H100/H200): ratio <= target passes.
TARGETS = {
    "fwd_vs_aten": 1.0,
    "bwd_vs_aten": 0.4,
    "bwd_vs_floor": 1.5,
    "fwdbwd_vs_ref": 0.6,
    "bf16_error_vs_rounded": 1.5,
}

# The time estimate (printed at the start and in --help). Device work is counted in bytes
# moved and divided by EST_BANDWIDTH; everything else is a fixed cost per item, a guess until a
# run's "wall_s" values (in the JSON) replace it.
EST_BANDWIDTH = 2.5e12  # bytes/s: an H100's memory-bound kernels (copies reach ~2.5-3 TB/s)
EST_START_S = 15.0      # import torch and the library, CUDA context, sleep calibration
EST_ROW_S = 1.5         # per configuration: inputs, float64 check, profiler + graph capture
EST_VARIANT_S = 0.2     # per variant and configuration: its check call and graph capture
EST_RENORM_ROW_S = 0.5  # per renorm row: table, float64 check, sync counts
EST_READBACK_S = 1.5    # per shape: the read-back measurement (eager and graphed loops)


class Stopped(BaseException):
    """SIGTERM (a time limit): stop measuring, keep what is finished."""


def _int_list(text):
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise ValueError(text)
    return values


def _norm_list(text):
    if text.strip() == "none":
        return []
    values = [float(v) for v in text.split(",") if v.strip()]
    if not values or min(values) <= 0 or any(math.isnan(v) for v in values):
        raise ValueError(text)
    return values


def norm_name(p):
    return "inf" if math.isinf(p) else f"{p:g}"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="CUDA benchmark: ours vs ATen vs the reference library, every backward "
                    "variant, the max_norm renorm (needs a GPU, except --dry-run and "
                    "--summarize). The module docstring says exactly what is timed and how.",
        epilog=help_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="fewer warm-up calls and repeats (for scripts/gpu_check.py)")
    parser.add_argument("--shapes", default="gpt2,llama,bigvocab",
                        help=f"comma-separated subset of {','.join(SHAPES)} "
                             "(default: gpt2,llama,bigvocab)")
    parser.add_argument("--tokens", help="comma-separated lookup counts N, each run with every "
                        "shape (default: each shape's own N)")
    parser.add_argument("--dists", default=",".join(DISTS), help="uniform,zipf (default: both)")
    parser.add_argument("--dtypes", default=",".join(DTYPES),
                        help="float32,bfloat16 (default: both)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"backward variants timed in every configuration, set through "
                             f"{VARIANT_ENV}: comma-separated subset of {','.join(VARIANTS)}, "
                             "or none (default: all five)")
    parser.add_argument("--renorm", default=",".join(norm_name(p) for p in RENORM_NORMS),
                        help="norm types p of the renorm rows, comma-separated (inf allowed), "
                             "or none (default: 2,inf); one row per p, dtype and distribution")
    parser.add_argument("--renorm-shape", default=RENORM_SHAPE,
                        help=f"the renorm rows' table, one of {','.join(SHAPES)} "
                             f"(default: {RENORM_SHAPE})")
    parser.add_argument("--renorm-tokens", type=int, default=RENORM_TOKENS,
                        help=f"the renorm rows' N (default: {RENORM_TOKENS})")
    parser.add_argument("--repeats", type=int, help="timed calls per measurement "
                        "(default 50, 15 with --quick)")
    parser.add_argument("--warmup", type=int, help="untimed calls first (default 10, 3 with "
                        "--quick)")
    parser.add_argument("--out", help="write every number to this JSON file (rewritten after "
                        "every row and every variant)")
    parser.add_argument("--strict", action="store_true",
                        help="exit status 3 when a ratio misses its target or planned "
                             "measurements are missing")
    parser.add_argument("--dry-run", action="store_true",
                        help="no GPU, no torch: synthetic numbers through the same tables and "
                             "JSON (tests the plumbing; never a measurement)")
    parser.add_argument("--summarize", metavar="JSON",
                        help="print the tables of a JSON file that --out wrote, and a one-line "
                             "verdict; no GPU needed")
    args = parser.parse_args(argv)
    for name, allowed in (("shapes", SHAPES), ("dists", DISTS), ("dtypes", DTYPES),
                          ("variants", VARIANTS)):
        text = getattr(args, name)
        values = [v for v in text.split(",") if v]
        if name == "variants" and text == "none":
            values = []
        unknown = [v for v in values if v not in allowed]
        if unknown or (not values and name != "variants"):
            parser.error(f"--{name}: unknown {unknown}; choose from {','.join(allowed)}")
        setattr(args, name, list(dict.fromkeys(values)))
    if args.tokens is not None:
        try:
            args.tokens = _int_list(args.tokens)
        except ValueError:
            parser.error(f"--tokens: expected positive whole numbers separated by commas, got "
                         f"{args.tokens!r}")
    try:
        args.renorm = _norm_list(args.renorm)
    except ValueError:
        parser.error(f"--renorm: expected positive norm types (or inf) separated by commas, or "
                     f"none, got {args.renorm!r}")
    if args.renorm_shape not in SHAPES:
        parser.error(f"--renorm-shape: unknown {args.renorm_shape!r}; choose from "
                     f"{','.join(SHAPES)}")
    if args.renorm_tokens < 1:
        parser.error(f"--renorm-tokens: {args.renorm_tokens} is too small")
    for name in ("repeats", "warmup"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "repeats" else 0):
            parser.error(f"--{name}: {value} is too small")
    args.repeats = args.repeats or (15 if args.quick else 50)
    args.warmup = args.warmup if args.warmup is not None else (3 if args.quick else 10)
    return args


def is_decisive(shape, n, dtype):
    return shape in DECISIVE_SHAPES and n in DECISIVE_TOKENS and dtype == DECISIVE_DTYPE


def _configurations(shapes, tokens, dtypes, dists):
    every = [(shape, n, dtype, dist)
             for shape in shapes
             for n in (tokens or [SHAPES[shape][2]])
             for dtype in dtypes
             for dist in dists]
    return ([c for c in every if is_decisive(*c[:3])]
            + [c for c in every if not is_decisive(*c[:3])])


def configurations(args):
    """(shape, N, dtype, dist) in the order they run: the decisive ones first (GPT-2 and Llama-3
    in bfloat16 at N = 8192 and 65536), then the rest, each group in the options' order."""
    return _configurations(args.shapes, args.tokens, args.dtypes, args.dists)


def _renorm_configurations(shape, n, norms, dtypes, dists):
    ordered = sorted(dtypes, key=lambda d: d != DECISIVE_DTYPE)  # bfloat16 first
    return [(shape, n, dtype, dist, p) for p in norms for dtype in ordered for dist in dists]


def renorm_configurations(args):
    """(shape, N, dtype, dist, p) of the renorm rows, in the order they run."""
    return _renorm_configurations(args.renorm_shape, args.renorm_tokens, args.renorm,
                                  args.dtypes, args.dists)


def schedule(args):
    """Everything the run measures, in order: ("config", c) and ("renorm", r) items. The
    decisive configurations first, then the renorm rows (cheap), then the other
    configurations."""
    configs = configurations(args)
    decisive = [("config", c) for c in configs if is_decisive(*c[:3])]
    rest = [("config", c) for c in configs if not is_decisive(*c[:3])]
    return decisive + [("renorm", r) for r in renorm_configurations(args)] + rest


# --- the time estimate ----------------------------------------------------------------------------

def _element(dtype_name):
    return 4 if dtype_name == "float32" else 2


def config_bytes(shape, n, dtype_name):
    """Bytes one call moves, per measurement of a configuration (approximate: the minimum
    traffic; ATen's backward as its zero-fill, scatter and mul_)."""
    num_rows, dim, _ = SHAPES[shape]
    e = _element(dtype_name)
    fwd = 2 * n * dim * e + 8 * n
    floor = num_rows * dim * e + n * dim * e + 8 * n
    aten = 3 * num_rows * dim * e + 3 * n * dim * 4 + n * dim * e + 8 * n
    return {"fwd": fwd, "floor": floor, "aten_bwd": aten}


def estimate(shapes, tokens, dtypes, dists, variants, norms, warmup, repeats,
             renorm_shape=RENORM_SHAPE, renorm_tokens=RENORM_TOKENS):
    """The counted work of a run and the seconds it should take on an H100 (see EST_*)."""
    calls = warmup + min(3, repeats) + repeats  # warm-up, host-time probe, timed
    configs = _configurations(shapes, tokens, dtypes, dists)
    renorms = _renorm_configurations(renorm_shape, renorm_tokens, norms, dtypes, dists)
    device_bytes = calls * 2 * (1 << 30)  # the copy-bandwidth measurement
    for shape, n, dtype, _ in configs:
        b = config_bytes(shape, n, dtype)
        num_rows, dim, _ = SHAPES[shape]
        per_call = (2 * b["fwd"]                    # fwd ours, aten
                    + b["floor"] + b["aten_bwd"]    # bwd ours, aten
                    + b["fwd"] + b["floor"]         # fwd+bwd ours
                    + b["fwd"] + b["aten_bwd"]      # fwd+bwd reference
                    + len(variants) * b["floor"])   # every variant
        checks = 3 * num_rows * dim * 8 + (len(variants) + 2) * 3 * b["floor"]
        device_bytes += calls * per_call + checks
    for shape, n, dtype, _, _ in renorms:
        num_rows, dim, _ = SHAPES[shape]
        e = _element(dtype)
        per_call = 2 * num_rows * dim * e + 2 * n * dim * e + 8 * n  # fresh copy + the renorm
        device_bytes += 2 * (calls + 4) * per_call + 3 * num_rows * dim * 8
    # The timed calls wait behind a sleep about twice their own time (Timer): count the timed
    # share of the device time again.
    device_s = device_bytes / EST_BANDWIDTH * (1 + 2 * repeats / calls)
    fixed_s = (EST_START_S + len(configs) * (EST_ROW_S + len(variants) * EST_VARIANT_S)
               + len(renorms) * EST_RENORM_ROW_S + len(shapes) * EST_READBACK_S)
    return {"configurations": len(configs),
            "decisive": sum(is_decisive(*c[:3]) for c in configs),
            "variants": list(variants), "renorm_rows": len(renorms),
            "calls_per_measurement": calls, "warmup": warmup, "repeats": repeats,
            "variant_timings": len(configs) * len(variants),
            "device_gb": device_bytes / 1e9, "device_s": device_s, "fixed_s": fixed_s,
            "total_s": device_s + fixed_s}


def estimate_args(args):
    return estimate(args.shapes, args.tokens, args.dtypes, args.dists, args.variants,
                    args.renorm, args.warmup, args.repeats, args.renorm_shape,
                    args.renorm_tokens)


def describe_plan(plan):
    variants = ",".join(plan["variants"]) or "none"
    return (f"{plan['configurations']} configurations ({plan['decisive']} decisive, first) x "
            f"backward: default + {len(plan['variants'])} variants ({variants}) + ATen; "
            f"{plan['renorm_rows']} renorm rows; {plan['warmup']} warm-up + {plan['repeats']} "
            f"timed calls per measurement ({plan['calls_per_measurement']} calls with the host-"
            f"time probe); estimated {plan['total_s']:.0f} s on an H100 = "
            f"{plan['device_s']:.1f} s device work ({plan['device_gb']:.0f} GB at "
            f"{EST_BANDWIDTH / 1e12:.1f} TB/s, sleeps included) + {plan['fixed_s']:.0f} s "
            f"fixed costs (start {EST_START_S:.0f} s, {EST_ROW_S} s per configuration, "
            f"{EST_VARIANT_S} s per variant timing, {EST_RENORM_ROW_S} s per renorm row, "
            f"{EST_READBACK_S} s per shape's read-back)")


def help_epilog():
    norms = list(RENORM_NORMS)
    default = estimate(["gpt2", "llama", "bigvocab"], None, list(DTYPES), list(DISTS),
                       list(VARIANTS), norms, 3, 15)
    check = estimate(["gpt2", "llama3"], [8192, 65536], list(DTYPES), list(DISTS),
                     list(VARIANTS), norms, 3, 15)
    paragraphs = [
        ("", "Time on an H100 (counted work: configurations x (fwd, bwd, fwd+bwd, each variant) "
             "x calls x bytes per call at ~2.5 TB/s, plus fixed costs per item; the JSON's wall_s "
             "values measure it; the run prints its own plan on stderr first):"),
        ("  ", f"--quick, default set: {describe_plan(default)}."),
        ("  ", "--quick --shapes gpt2,llama3 --tokens 8192,65536 (scripts/gpu_check.py): "
               f"{describe_plan(check)}."),
        ("  ", "Without --quick (10 warm-up + 50 timed calls) the device share grows about 3x."),
        ("", "Output: the tables on stdout; with --out a JSON file {meta, rows, renorm}, "
             "rewritten after every row and variant. Exit status: 0; 1 a check failed, something "
             "raised or a variant differs from the baseline; 2 no GPU or bad arguments; 3 "
             "--strict and a target missed or measurements missing."),
        ("", "Library: PYTHONPATH=python UNIT_SCALING_CPP_LIBRARY=build/libunit_scaling.so.0"),
    ]
    return "\n".join(textwrap.fill(text, 100, initial_indent=indent,
                                   subsequent_indent=indent + "  ", break_on_hyphens=False)
                     for indent, text in paragraphs)


# --- measuring --------------------------------------------------------------------------------------

class Timer:
    """Median device time in ms of fn(*inputs[i % len(inputs)]) over `repeats` calls.

    Each call is bracketed by its own pair of CUDA events. All timed calls are queued behind a
    sleep kernel long enough for the host to queue them, so host launch overhead stays out of
    the numbers unless a call itself waits for the GPU. `prepare()`, when given, runs before
    every call (warm-up ones too) outside its events: a fresh copy of a table, say.
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

    def __call__(self, fn, inputs, prepare=None):
        torch = self.torch
        prepare = prepare or (lambda: None)
        for i in range(self.warmup):
            prepare()
            fn(*inputs[i % len(inputs)])
        torch.cuda.synchronize()
        # Host time to queue the calls, measured on the warm-up pass, sets the sleep.
        host_start = time.perf_counter()
        for i in range(min(3, self.repeats)):
            prepare()
            fn(*inputs[i % len(inputs)])
        torch.cuda.synchronize()
        host_ms_per_call = (time.perf_counter() - host_start) * 1e3 / min(3, self.repeats)
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(self.repeats)]
        sleep_ms = min(2.0 * host_ms_per_call * self.repeats + 1.0, 500.0)
        torch.cuda._sleep(int(sleep_ms * self.cycles_per_ms))
        for i, (start, end) in enumerate(events):
            args = inputs[i % len(inputs)]
            prepare()
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


def bitwise_equal(torch, a, b):
    """Equal bit for bit (tells -0.0 from 0.0, compares NaN payloads)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    as_int = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return torch.equal(a.view(as_int), b.view(as_int))


class variant_env:
    """Within it, UNIT_SCALING_BACKWARD_VARIANT is `name` (None: unset, the default backward)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.saved = os.environ.get(VARIANT_ENV)
        if self.name is None:
            os.environ.pop(VARIANT_ENV, None)
        else:
            os.environ[VARIANT_ENV] = self.name
        return self

    def __exit__(self, *exc):
        if self.saved is None:
            os.environ.pop(VARIANT_ENV, None)
        else:
            os.environ[VARIANT_ENV] = self.saved
        return False


def variants_read(torch, ops):
    """Whether the library reads UNIT_SCALING_BACKWARD_VARIANT: an unknown value must raise."""
    with variant_env("not_a_backward_variant"):
        try:
            ops.embedding_backward(torch.ones(4, 2, device=DEVICE),
                                   torch.zeros(4, dtype=torch.int64, device=DEVICE), 3)
            torch.cuda.synchronize()
        except Exception:  # noqa: BLE001  (any error: it read the value)
            return True
    return False


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


def count_syncs(torch, call):
    """Synchronising CUDA calls one call of `call` makes (torch.cuda's sync debug mode)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            call()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    return sum("synchronizing CUDA operation" in str(w.message) for w in caught)


def _error_text(error):
    return f"{type(error).__name__}: {error}"[:500]


def run_config(torch, usc, reference, timer, shape, n, dist, dtype_name, bandwidth, registered,
               variants, rows, save):
    """One configuration: its row is appended to `rows` once its main measurements are done,
    then filled in variant by variant; save() writes the JSON after each step."""
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
    row = {"shape": shape, "V": num_rows, "D": dim, "N": n, "dist": dist, "dtype": dtype_name,
           "decisive": is_decisive(shape, n, dtype_name)}
    started = time.perf_counter()

    def ours_bwd(t, g):
        return ops.embedding_backward(g, t, num_rows)

    def aten_bwd(t, g):
        return torch.ops.aten.embedding_dense_backward(g, t, num_rows, -1, False).mul_(scale)

    with variant_env(None):  # "ours": the default backward
        # Correct first: forward equal to ATen's, backward close to ATen's float64 result.
        tokens, grad = sets[0]
        ours_out = usc.functional.embedding(tokens, weight)
        exact = torch.ops.aten.embedding_dense_backward(grad.double(), tokens, num_rows, -1,
                                                        False).mul_(scale)
        ours_grad = ours_bwd(tokens, grad)
        tolerance = 1e-5 if dtype == torch.float32 else 1e-2
        row["check"] = ("ok" if torch.equal(ours_out, F.embedding(tokens, weight))
                        and relative_error(ours_grad, exact) < tolerance else "FAIL")

        if dtype == torch.bfloat16:
            aten_grad = aten_bwd(tokens, grad)
            rounded = relative_error(exact.to(dtype), exact)
            row["bf16_error_vs_rounded"] = relative_error(ours_grad, exact) / rounded
            row["aten_bf16_error_vs_rounded"] = relative_error(aten_grad, exact) / rounded
            del aten_grad
        del ours_out, exact, ours_grad

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
    row["wall_s"] = time.perf_counter() - started
    rows.append(row)
    save()
    if variants:
        run_variants(torch, ops, timer, sets, row, variants, registered, ours_bwd, save)
        row["wall_s"] = time.perf_counter() - started
        save()
    return row


def run_variants(torch, ops, timer, sets, row, variants, registered, ours_bwd, save):
    """Every variant: checked bit for bit against the baseline's result (and the default's
    against it too), then timed, its launches counted, and checked again; the JSON saved after
    each."""
    tokens, grad = sets[0]
    with variant_env("baseline"):
        baseline = ours_bwd(tokens, grad)
    with variant_env(None):
        row["default_check"] = ("ok" if bitwise_equal(torch, ours_bwd(tokens, grad), baseline)
                                else "DIFFERS")
    row["variants"] = {}
    for name in variants:
        entry = row["variants"][name] = {}
        with variant_env(name):
            try:
                result = ours_bwd(tokens, grad)
                torch.cuda.synchronize()
                entry["check"] = "ok" if bitwise_equal(torch, result, baseline) else "DIFFERS"
                del result
                entry["ms"] = timer(ours_bwd, sets)
                entry["launches"] = count_launches(torch, lambda: ours_bwd(*sets[0]), registered)
                # Once more after the timed and captured calls: the same bits (a race shows).
                if not bitwise_equal(torch, ours_bwd(tokens, grad), baseline):
                    entry["check"] = "DIFFERS"
            except Exception as error:  # noqa: BLE001  (marked; the other variants still run)
                entry["check"] = "ERROR"
                entry["error"] = _error_text(error)
                print(f"cuda_bench: variant {name} at {row['shape']} N={row['N']} {row['dtype']} "
                      f"{row['dist']} raised {entry['error']}", file=sys.stderr, flush=True)
                torch.cuda.synchronize()
        add_variant_ratios(entry, row)
        save()
    del baseline


def add_ratios(row, element, bandwidth):
    """The floors (bytes at the measured copy bandwidth) and the ratios the targets judge."""
    n, num_rows, dim = row["N"], row["V"], row["D"]
    floor_bytes = num_rows * dim * element + n * dim * element + n * 8
    row["bwd_floor_bytes"] = floor_bytes
    row["bwd_floor_ms"] = floor_bytes / bandwidth * 1e3
    row["fwd_floor_ms"] = (2 * n * dim * element + n * 8) / bandwidth * 1e3
    row["fwd_vs_aten"] = row["fwd_ours_ms"] / row["fwd_aten_ms"]
    row["bwd_vs_aten"] = row["bwd_ours_ms"] / row["bwd_aten_ms"]
    row["bwd_vs_floor"] = row["bwd_ours_ms"] / row["bwd_floor_ms"]
    if "fwdbwd_ref_ms" in row:
        row["fwdbwd_vs_ref"] = row["fwdbwd_ours_ms"] / row["fwdbwd_ref_ms"]


def add_variant_ratios(entry, row):
    """GB/s (floor bytes / time), ratios to the floor and to ATen's backward + mul_."""
    if "ms" not in entry:
        return
    entry["gbs"] = row["bwd_floor_bytes"] / (entry["ms"] * 1e-3) / 1e9
    entry["vs_floor"] = entry["ms"] / row["bwd_floor_ms"]
    entry["vs_aten"] = entry["ms"] / row["bwd_aten_ms"]


def run_renorm(torch, timer, shape, n, dtype_name, dist, p):
    """One renorm row: ours vs ATen on fresh copies of the table (see the module docstring)."""
    ops = torch.ops.unit_scaling
    num_rows, dim, _ = SHAPES[shape]
    dtype = getattr(torch, dtype_name)
    started = time.perf_counter()
    generator = torch.Generator(device=DEVICE).manual_seed(1)
    base = torch.randn(num_rows, dim, device=DEVICE, generator=generator).to(dtype)
    tokens = make_indices(torch, dist, num_rows, n, generator)
    work = torch.empty_like(base)
    row = {"shape": shape, "V": num_rows, "D": dim, "N": n, "dtype": dtype_name, "dist": dist,
           "p": norm_name(p), "max_norm": RENORM_MAX_NORM}

    def fresh():
        work.copy_(base)

    def ours(t):
        ops.embedding_renorm_(work, t, RENORM_MAX_NORM, p)

    def aten(t):
        torch.embedding_renorm_(work, t, RENORM_MAX_NORM, p)

    # Correct first: the referenced rows against a float64 renorm (max_norm / (norm + 1e-7),
    # rounded once), every other row untouched. Every referenced row of a randn table is over
    # max_norm, so each one must change.
    referenced = torch.unique(tokens)
    exact_rows = base[referenced].double()
    norms = torch.linalg.vector_norm(exact_rows, ord=p, dim=1)
    factor = torch.where(norms > RENORM_MAX_NORM, RENORM_MAX_NORM / (norms + 1e-7),
                         torch.ones_like(norms))
    expected_rows = (exact_rows * factor[:, None]).to(dtype).double()
    del exact_rows
    rtol, atol = (1e-5, 1e-7) if dtype == torch.float32 else (1e-2, 1e-5)

    def agrees(result):
        changed = (result != base).any(dim=1)
        only_referenced = bool(changed[referenced].all()) and \
            int(changed.sum()) == referenced.numel()
        return only_referenced and bool(torch.allclose(result[referenced].double(),
                                                       expected_rows, rtol=rtol, atol=atol))

    row["rows_referenced"] = int(referenced.numel())
    for name, call in (("ours", ours), ("aten", aten)):
        fresh()
        row[f"{name}_syncs"] = count_syncs(torch, lambda: call(tokens))
        if name == "ours":
            row["rows_renormed"] = int((work != base).any(dim=1).sum())
            row["check"] = "ok" if agrees(work) else "FAIL"
        else:
            row["aten_agrees"] = agrees(work)
    del expected_rows
    row["ours_ms"] = timer(ours, [(tokens,)], prepare=fresh)
    row["aten_ms"] = timer(aten, [(tokens,)], prepare=fresh)
    add_renorm_ratios(row, _element(dtype_name))
    row["wall_s"] = time.perf_counter() - started
    return row


def add_renorm_ratios(row, element):
    """Bytes: each referenced row read and written once, plus the indices."""
    row["bytes"] = 2 * row["rows_referenced"] * row["D"] * element + 8 * row["N"]
    row["ours_gbs"] = row["bytes"] / (row["ours_ms"] * 1e-3) / 1e9
    row["aten_gbs"] = row["bytes"] / (row["aten_ms"] * 1e-3) / 1e9
    row["vs_aten"] = row["ours_ms"] / row["aten_ms"]


# --- dry run ----------------------------------------------------------------------------------------

# Synthetic variant speeds (factor on the default backward's time), launches: made up.
_DRY_VARIANTS = {"baseline": (1.0, 1.0, 3), "hot_rows": (1.0, 0.8, 5),
                 "side_zero": (0.92, 0.95, 5), "merge_path": (0.95, 0.9, 4),
                 "all": (0.85, 0.7, 6)}


def dry_run_row(shape, n, dist, dtype_name, bandwidth, variants=VARIANTS):
    """Synthetic numbers for --dry-run: made up, deterministic, some missing their targets."""
    num_rows, dim, _ = SHAPES[shape]
    element = _element(dtype_name)
    row = {"shape": shape, "V": num_rows, "D": dim, "N": n, "dist": dist, "dtype": dtype_name,
           "decisive": is_decisive(shape, n, dtype_name), "check": "ok", "dry_run": True}
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
    if variants:
        row["default_check"] = "ok"
        row["variants"] = {}
        for name in variants:
            uniform, zipf, launches = _DRY_VARIANTS[name]
            entry = {"check": "ok",
                     "ms": row["bwd_ours_ms"] * (uniform if dist == "uniform" else zipf),
                     "launches": {"total": launches, "kinds": {"kernel": launches},
                                  "method": "dry run"}}
            add_variant_ratios(entry, row)
            row["variants"][name] = entry
    row["wall_s"] = 0.0
    return row


def dry_run_renorm_row(shape, n, dtype_name, dist, p, bandwidth):
    num_rows, dim, _ = SHAPES[shape]
    element = _element(dtype_name)
    referenced = int(num_rows * (1 - math.exp(-n / num_rows))) if dist == "uniform" else n // 5
    row = {"shape": shape, "V": num_rows, "D": dim, "N": n, "dtype": dtype_name, "dist": dist,
           "p": norm_name(p), "max_norm": RENORM_MAX_NORM, "ours_syncs": 0, "aten_syncs": 0,
           "rows_referenced": referenced, "rows_renormed": referenced, "check": "ok",
           "aten_agrees": True, "dry_run": True}
    moved = 2 * referenced * dim * element + 8 * n
    row["ours_ms"] = moved / bandwidth * 1e3 * 1.2 + 0.005
    row["aten_ms"] = row["ours_ms"] * (1.6 if dist == "uniform" else 2.4)
    add_renorm_ratios(row, element)
    row["wall_s"] = 0.0
    return row


# --- the GPU run ------------------------------------------------------------------------------------

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


def measure(args, meta, rows, renorm_rows, save):
    """The GPU run: fills meta, rows and renorm_rows (save() after every step); an exit status
    if it cannot run at all, else None."""
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

    ops = torch.ops.unit_scaling
    registered = all(torch._C._dispatch_has_kernel_for_dispatch_key(
        f"unit_scaling::{name}", "CUDA") for name in
        ("embedding_lookup", "embedding_backward", "_scaled_embedding_backward",
         "embedding_renorm_"))
    timer = Timer(torch, args.warmup, args.repeats)
    bandwidth = copy_bandwidth(torch, timer)
    policy = getattr(usc, "get_index_check_policy", None)
    variants = list(args.variants)
    meta.update(device=torch.cuda.get_device_name(), torch=torch.__version__,
                cuda_path="our CUDA kernels" if registered else "the ATen fallback",
                copy_bandwidth_gbs=bandwidth / 1e9,
                index_check_policy=str(policy()) if policy else "n/a",
                variant_env_at_start=os.environ.get(VARIANT_ENV))
    if variants and not variants_read(torch, ops):
        meta["variants_skipped"] = (f"this library ignores {VARIANT_ENV} (an unknown value "
                                    "raised nothing)")
        print(f"cuda_bench: variants not timed: {meta['variants_skipped']}", file=sys.stderr,
              flush=True)
        variants = []
    save()
    for kind, item in schedule(args):
        label = " ".join(str(v) for v in item) if kind == "config" else \
            f"renorm {item[0]} N={item[1]} {item[2]} {item[3]} p={norm_name(item[4])}"
        try:
            if kind == "config":
                shape, n, dtype, dist = item
                run_config(torch, usc, reference, timer, shape, n, dist, dtype, bandwidth,
                           registered, variants, rows, save)
            else:
                renorm_rows.append(run_renorm(torch, timer, *item))
        except Exception as error:  # noqa: BLE001  (one row says so; the others still run)
            if kind == "config":
                shape, n, dtype, dist = item
                if rows and rows[-1].get("shape") == shape and rows[-1].get("N") == n and \
                        rows[-1].get("dtype") == dtype and rows[-1].get("dist") == dist:
                    rows[-1]["variants_error"] = _error_text(error)  # raised between variants
                else:
                    num_rows, dim, _ = SHAPES[shape]
                    rows.append({"shape": shape, "V": num_rows, "D": dim, "N": n, "dist": dist,
                                 "dtype": dtype, "check": "ERROR", "error": _error_text(error)})
            else:
                shape, n, dtype, dist, p = item
                renorm_rows.append({"shape": shape, "N": n, "dtype": dtype, "dist": dist,
                                    "p": norm_name(p), "check": "ERROR",
                                    "error": _error_text(error)})
            print(f"cuda_bench: {label} raised {_error_text(error)}", file=sys.stderr,
                  flush=True)
        torch.cuda.synchronize()
        torch.cuda.empty_cache()  # tables reach 2 GiB: keep memory bounded
        save()
        print(f"cuda_bench: {label} done", file=sys.stderr, flush=True)
    for shape in args.shapes:
        try:
            meta["readback"].append(readback_cost(torch, usc, shape, registered))
        except Exception as error:  # noqa: BLE001
            meta["readback"].append({"shape": shape, "d2h_us": float("nan"),
                                     "ours_graph": _error_text(error)[:300]})
        save()
    return None


# --- tables and verdict -------------------------------------------------------------------------

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


def _number(value, digits):
    return "" if value is None else f"{value:.{digits}f}"


def variant_failures(rows):
    """(row, variant or "default") pairs whose check is not ok."""
    bad = []
    for r in rows:
        if r.get("default_check", "ok") != "ok":
            bad.append((r, "default"))
        for name, entry in (r.get("variants") or {}).items():
            if entry.get("check") != "ok":
                bad.append((r, name))
        if "variants_error" in r:
            bad.append((r, "variants"))
    return bad


def variants_table(rows):
    """One line per backward of each configuration: ATen's, the default (variable unset), then
    every variant."""
    lines = ["backward variants (UNIT_SCALING_BACKWARD_VARIANT; µs: median device time; GB/s: "
             "one V x D write + one N x D read (+ indices) per time; x floor: over that at the "
             "copy bandwidth; x aten: over ATen's backward + mul_; check: bit for bit against "
             "the baseline variant's result, ✗ = differs or raised)",
             "",
             "| configuration | backward | check | µs | GB/s | x floor | x aten | launches |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "variants" not in r and "variants_error" not in r:
            continue
        config = f"{r['shape']} N={r['N']} {r['dtype']} {r['dist']}"
        if "bwd_ours_ms" not in r or "bwd_aten_ms" not in r:  # raised before it was timed
            lines.append(f"| {config} | – | {r.get('check', '?')} ✗ | | | | | |")
            continue
        floor_bytes = r["bwd_floor_bytes"]
        aten_ms = r["bwd_aten_ms"]
        lines.append(f"| {config} | aten dense_backward + mul_ | ok | {aten_ms * 1e3:.1f} | "
                     f"{floor_bytes / (aten_ms * 1e-3) / 1e9:.0f} | "
                     f"{aten_ms / r['bwd_floor_ms']:.2f} | 1.00 | "
                     f"{_launches(r, 'bwd_launches_aten')} |")
        default_check = r.get("default_check", "ok")
        lines.append(f"| {config} | default (unset) | "
                     f"{default_check if default_check == 'ok' else default_check + ' ✗'} | "
                     f"{r['bwd_ours_ms'] * 1e3:.1f} | "
                     f"{floor_bytes / (r['bwd_ours_ms'] * 1e-3) / 1e9:.0f} | "
                     f"{r['bwd_vs_floor']:.2f} | {r['bwd_vs_aten']:.2f} | "
                     f"{_launches(r, 'bwd_launches_ours')} |")
        for name, entry in (r.get("variants") or {}).items():
            check = entry.get("check", "?")
            ms = entry.get("ms")
            lines.append(
                f"| {config} | {name} | {check if check == 'ok' else check + ' ✗'} | "
                f"{_number(None if ms is None else ms * 1e3, 1)} | {_number(entry.get('gbs'), 0)} "
                f"| {_number(entry.get('vs_floor'), 2)} | {_number(entry.get('vs_aten'), 2)} | "
                f"{_launches(entry, 'launches') if 'launches' in entry else ''} |")
        if "variants_error" in r:
            lines.append(f"| {config} | (stopped) | ERROR ✗ | | | | | |")
    errors = [f"- {r['shape']} N={r['N']} {r['dtype']} {r['dist']}, {name}: {entry['error']}"
              for r in rows for name, entry in (r.get("variants") or {}).items()
              if "error" in entry]
    errors += [f"- {r['shape']} N={r['N']} {r['dtype']} {r['dist']}: {r['variants_error']}"
               for r in rows if "variants_error" in r]
    if errors:
        lines += ["", "variant errors:"] + errors
    return lines


def renorm_table(renorm_rows):
    lines = [f"renorm (max_norm on the rows N lookups reference, each call on a fresh copy of "
             f"the table; check: against a float64 renorm; rows: referenced/renormed; GB/s: each "
             f"referenced row read + written once per time; syncs: synchronising calls per call)",
             "",
             "| renorm | table | N | dtype | indices | rows | check | ours µs | aten µs "
             "| ours/aten | ours GB/s | aten GB/s | syncs ours/aten | aten agrees |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in renorm_rows:
        table = f"{r['shape']} {r['V']}x{r['D']}" if "V" in r else r["shape"]
        if "ours_ms" not in r:
            lines.append(f"| p={r['p']} | {table} | {r['N']} | {r['dtype']} | {r['dist']} | "
                         f"| {r['check']} ✗ | | | | | | | |")
            continue
        check = r["check"] if r["check"] == "ok" else r["check"] + " ✗"
        lines.append(
            f"| p={r['p']} | {table} | {r['N']} | {r['dtype']} | {r['dist']} | "
            f"{r['rows_referenced']}/{r['rows_renormed']} | {check} | {r['ours_ms'] * 1e3:.1f} | "
            f"{r['aten_ms'] * 1e3:.1f} | {r['vs_aten']:.2f} | {r['ours_gbs']:.0f} | "
            f"{r['aten_gbs']:.0f} | {r['ours_syncs']}/{r['aten_syncs']} | "
            f"{'yes' if r['aten_agrees'] else 'no'} |")
    return lines


def _shapes(rows):
    """{shape: (V, D)} in the order the rows first name them."""
    shapes = {}
    for r in rows:
        if "V" in r:
            shapes.setdefault(r["shape"], (r["V"], r["D"]))
    return shapes


def markdown(rows, meta, renorm_rows=()):
    bandwidth = meta.get("copy_bandwidth_gbs")
    lines = [
        f"device: {meta.get('device', '?')}, torch {meta.get('torch', '?')}, CUDA tensors reach "
        f"{meta.get('cuda_path', '?')}; copy bandwidth "
        f"{'?' if bandwidth is None else format(bandwidth, '.0f')} GB/s "
        f"(read + write); {meta.get('warmup', '?')} warm-up calls, median of "
        f"{meta.get('repeats', '?')}; ✗ = misses the target"
        + (f"; stopped by {meta['stopped']}" if meta.get("stopped") else ""),
        "shapes: " + ", ".join(f"{shape} {v}x{d}" for shape, (v, d) in _shapes(rows).items()),
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
    sections = []
    if any("variants" in r or "variants_error" in r for r in rows):
        sections.append(variants_table(rows))
    if meta.get("variants_skipped"):
        sections.append([f"backward variants: not timed ({meta['variants_skipped']})"])
    if renorm_rows:
        sections.append(renorm_table(renorm_rows))
    for section in sections:
        if lines[-1] != "":
            lines.append("")
        lines += section + [""]
    return "\n".join(lines)


def verdict(rows, meta, strict, renorm_rows=()):
    """The last line of the tables, and the exit status it implies."""
    bad = [r for r in rows if r["check"] != "ok"]
    missing = [r for r in rows if misses(r)]
    planned = meta.get("planned", len(rows))
    line = (f"bench: {len(rows)} of {planned} rows"
            f"{'' if meta.get('complete', True) else ' (stopped early)'}; "
            f"{len(missing)} miss a target; {len(bad)} fail the check")
    incomplete = len(rows) < planned
    bad_variants = variant_failures(rows)
    if "variants" in meta:
        planned_variants = planned * len(meta["variants"])
        timed = sum("ms" in entry for r in rows for entry in (r.get("variants") or {}).values())
        if meta.get("variants_skipped") and planned_variants:
            line += f"; variants: not timed ({meta['variants_skipped']})"
            incomplete = True
        elif planned_variants:
            line += (f"; variants: {timed} of {planned_variants} timed, {len(bad_variants)} "
                     f"differ or raise")
            incomplete = incomplete or timed < planned_variants
    bad_renorm = [r for r in renorm_rows if r.get("check") != "ok"]
    if "renorm_planned" in meta and meta["renorm_planned"]:
        line += (f"; renorm: {len(renorm_rows)} of {meta['renorm_planned']} rows, "
                 f"{len(bad_renorm)} fail the check")
        incomplete = incomplete or len(renorm_rows) < meta["renorm_planned"]
    if meta.get("dry_run"):
        line += " (dry run: synthetic numbers)"
    if bad or bad_variants or bad_renorm or not rows:
        return line, 1
    if strict and (missing or incomplete):
        return line, 3
    return line, 0


_signals = {"writing": False, "pending": None}


def write_json(path, meta, rows, renorm_rows=()):
    """The whole file, atomically (a kill mid-write leaves the previous version; a SIGTERM
    waits for the end of the write)."""
    if not path:
        return
    _signals["writing"] = True
    try:
        temporary = f"{path}.partial"
        with open(temporary, "w") as f:
            json.dump({"meta": meta, "rows": rows, "renorm": list(renorm_rows)}, f, indent=1)
        os.replace(temporary, path)
    finally:
        _signals["writing"] = False
    if _signals["pending"]:
        raise Stopped(_signals["pending"])


def summarize(path, strict):
    """--summarize: the tables and verdict of a JSON file that --out wrote."""
    try:
        with open(path) as f:
            data = json.load(f)
        meta, rows = data["meta"], data["rows"]
        renorm_rows = data.get("renorm", [])
        print(markdown(rows, meta, renorm_rows))
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"bench: cannot read {path}: {error}")
        return 1
    line, status = verdict(rows, meta, strict, renorm_rows)
    print(line)
    return status


def _stop(signum, frame):
    name = signal.Signals(signum).name
    if _signals["writing"]:
        _signals["pending"] = name  # write_json raises when it is done
        return
    raise Stopped(name)


def main(argv=None):
    args = parse_args(argv)
    if args.summarize:
        return summarize(args.summarize, args.strict)
    planned = configurations(args)
    plan = estimate_args(args)
    print(f"cuda_bench: plan: {describe_plan(plan)}", file=sys.stderr, flush=True)
    meta = {"format": 2, "warmup": args.warmup, "repeats": args.repeats, "rotation": ROTATION,
            "targets": TARGETS, "planned": len(planned), "variants": list(args.variants),
            "renorm_planned": len(renorm_configurations(args)), "plan": plan,
            "complete": False, "readback": []}
    rows, renorm_rows = [], []
    started = time.perf_counter()

    def save():
        meta["wall_s"] = time.perf_counter() - started
        write_json(args.out, meta, rows, renorm_rows)

    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop) if on_main_thread else None
    try:
        if args.dry_run:
            bandwidth = 3.0e12
            meta.update(device="dry run (no GPU)", torch="none", cuda_path="nothing (dry run)",
                        copy_bandwidth_gbs=bandwidth / 1e9, dry_run=True)
            for kind, item in schedule(args):
                if kind == "config":
                    shape, n, dtype, dist = item
                    rows.append(dry_run_row(shape, n, dist, dtype, bandwidth, args.variants))
                else:
                    renorm_rows.append(dry_run_renorm_row(*item, bandwidth))
                save()
        else:
            status = measure(args, meta, rows, renorm_rows, save)
            if status is not None:
                return status
        meta["complete"] = True
    except Stopped as stop:
        meta["stopped"] = str(stop)
        print(f"cuda_bench: stopped by {stop}; the tables hold what finished", file=sys.stderr,
              flush=True)
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
    _signals["pending"] = None
    save()
    print(markdown(rows, meta, renorm_rows))
    line, status = verdict(rows, meta, args.strict, renorm_rows)
    print(line)
    if meta.get("stopped") and status != 1:
        return 128 + signal.SIGTERM  # the status of a process that SIGTERM ended
    return status


if __name__ == "__main__":
    sys.exit(main())
