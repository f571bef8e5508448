"""What only a GPU can show about our CUDA kernels (skipped without a GPU; scripts/gpu_check.py
runs it on the lent GPU machine). The contract itself (oracle, opcheck, compile, errors) runs on
CUDA through the backend axis of the other test files; this file adds the CUDA runtime:

- CUDA tensors reach our CUDA kernels, not the ATen fallback (when the library was built with the
  CUDA backend on: gpu_check.py says so with UNIT_SCALING_CPP_EXPECT_CUDA_KERNELS=1);
- under the default index-check policy nothing synchronises the host: forward, max_norm and
  backward, eager (sync debug mode "error", and a long kernel queued ahead still running);
  under the "raise" policy each operator reads back exactly once;
- forward + backward captured in a CUDA graph and replayed on new data equals eager, and so does
  torch.compile(mode="reduce-overhead");
- the backward is bitwise repeatable and bitwise equal to the CPU kernels' backward (and, on
  whichever path CUDA tensors take, equal to the CPU kernels within rounding);
- a bad index: by default a device-side assertion naming value, position and row count from
  every operator (each in a subprocess: the assertion poisons the CUDA context); under "raise",
  IndexError naming value and position, weight and its version untouched (max_norm too);
- more than 65536 lookups (the backward's CUB radix-sort path) at the GPT-2 shape: bitwise equal
  to the CPU kernels, and captured in a CUDA graph + replayed equal to eager;
- tensors on cuda:1 while cuda:0 is current (the backend's device guard): forward, backward and
  max_norm equal to the CPU kernels, on the current stream of cuda:1, the current device left
  alone, by default and with the side-stream variants (side_zero, all: a pool stream and events
  of cuda:1) (skipped, saying so, where fewer than two GPUs are visible);
- every backward variant (UNIT_SCALING_BACKWARD_VARIANT, read on each backward call): bitwise
  equal to the CPU kernels at GPT-2 N = 8192, 65536 and 131072 in all four dtypes, captured +
  replayed equal to eager, no host sync under the default policy; an unknown value is a
  ValueError naming it.

The tests that need our CUDA kernels are skipped, saying so, when the library registers none
(CUDA tensors then take the ATen fallback, which synchronises and is not bitwise equal to the
CPU kernels)."""
import functools
import os
import subprocess
import sys
import warnings

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import backend_axis
import unit_scaling_cpp as usc

ops = torch.ops.unit_scaling
EXPECT_CUDA_KERNELS = "UNIT_SCALING_CPP_EXPECT_CUDA_KERNELS"
# The CUDA backend's choice of backward implementation, read on each backward call; every
# variant must give the CPU kernels' bits (the contract), so they differ only in speed.
VARIANT_ENV = "UNIT_SCALING_BACKWARD_VARIANT"
VARIANTS = ("baseline", "hot_rows", "side_zero", "merge_path", "all")
GPT2_ROWS, GPT2_DIM = 50257, 768
# Above this many lookups the backward sorts with CUB's radix sort instead of its own tile sort
# (docs/DEVICES.md, src/kernels/cuda/backward.cu).
TILE_SORT_MAX_N = 65536

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason=backend_axis.NO_CUDA)
needs_cuda_kernels = pytest.mark.skipif(
    torch.cuda.is_available() and not backend_axis.cuda_kernels_registered(),
    reason="the library registers no CUDA kernels (built without the CUDA backend, or with its "
           "registration off): CUDA tensors take the ATen fallback")

# The ATen operators the fallback is built from; our CUDA kernels call none of them.
FALLBACK_OPS = {"aten::index_select", "aten::embedding_dense_backward", "aten::embedding_renorm_"}


def zipf_indices(num_rows, shape, exponent=1.1):
    """Indices with P(row k) proportional to (k + 1)^-exponent, built on the CPU."""
    weights = torch.arange(1, num_rows + 1, dtype=torch.float64).pow(-exponent)
    n = 1
    for size in shape:
        n *= size
    return torch.multinomial(weights, n, replacement=True).view(shape)


def _indices(dist, num_rows, shape):
    return zipf_indices(num_rows, shape) if dist == "zipf" else torch.randint(0, num_rows, shape)


# --- which kernels CUDA tensors reach ------------------------------------------------------------

def test_cuda_tensors_reach_our_cuda_kernels():
    if os.environ.get(EXPECT_CUDA_KERNELS) != "1":
        path = "our CUDA kernels" if backend_axis.cuda_kernels_registered() else "the ATen fallback"
        pytest.skip(f"{EXPECT_CUDA_KERNELS} is not 1 (set it when the library was built with the "
                    f"CUDA backend on); CUDA tensors take {path} here")
    missing = [name for name in backend_axis.DEVICE_OPERATORS
               if not torch._C._dispatch_has_kernel_for_dispatch_key(f"unit_scaling::{name}",
                                                                      "CUDA")]
    assert not missing, (f"no CUDA kernel registered for {missing}: CUDA tensors take the ATen "
                         "fallback (library built without the CUDA backend?)")
    weight = torch.randn(100, 8, device="cuda", requires_grad=True)
    tokens = torch.randint(0, 100, (4, 16), device="cuda")
    with profile(activities=[ProfilerActivity.CPU], acc_events=True) as prof:
        out = usc.functional.embedding(tokens, weight, padding_idx=0, max_norm=1.0)
        out.backward(torch.randn_like(out))
        ops._scaled_embedding_backward(torch.randn_like(out), tokens, 100, -1, 0.5)
        torch.cuda.synchronize()
    names = {event.name for event in prof.events()}
    assert {"unit_scaling::embedding_lookup", "unit_scaling::embedding_backward"} <= names
    assert not names & FALLBACK_OPS, f"the fallback ran: {sorted(names & FALLBACK_OPS)}"


# --- synchronisation -----------------------------------------------------------------------------

def _backward_inputs(dtype, num_rows=5000, dim=64, shape=(8, 512)):
    tokens = zipf_indices(num_rows, shape).cuda()
    grad = torch.randn(*shape, dim).to(dtype).cuda()
    weight = torch.randn(num_rows, dim).to(dtype).cuda().requires_grad_()
    return tokens, grad, weight


@needs_cuda_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_nothing_synchronizes_by_default(dtype):
    tokens, grad, weight = _backward_inputs(dtype)
    assert usc.get_index_check_policy() == "device_assert"
    table = weight.detach().clone()

    def step():
        usc.functional.embedding(tokens, table, max_norm=1.0)  # renorm + lookup
        ops.embedding_renorm_(table, tokens, 2.0, 3.0)
        out = usc.functional.embedding(tokens, weight, padding_idx=0)
        (through_autograd,) = torch.autograd.grad(out, weight, grad)
        direct = ops.embedding_backward(grad, tokens, weight.shape[0], 0)
        ops._scaled_embedding_backward(grad, tokens, weight.shape[0], 0, 0.5)
        return through_autograd, direct

    step()  # first call: module loading etc.
    torch.cuda.synchronize()
    # 1. PyTorch's sync debug mode: any synchronising call through c10's CUDA wrappers raises.
    torch.cuda.set_sync_debug_mode("error")
    try:
        through_autograd, direct = step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    # 2. Any synchronisation at all (raw CUDA calls too): with a long kernel queued ahead, the
    # step returns while that kernel still runs only if the host never waited for the stream.
    torch.cuda.synchronize()
    torch.cuda._sleep(1_000_000_000)  # about half a second of GPU time at 2 GHz
    step()
    still_busy = not torch.cuda.current_stream().query()
    torch.cuda.synchronize()
    assert still_busy, "the host waited for the GPU during forward, max_norm or backward"
    assert torch.equal(through_autograd, direct)


def _synchronisations(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            call()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing CUDA operation" in str(w.message) for w in caught)


@needs_cuda_kernels
def test_raise_policy_reads_back_once_per_operator():
    weight = torch.randn(1000, 32, device="cuda") * 3
    tokens = torch.randint(0, 1000, (4, 64), device="cuda")
    grad = torch.randn(4, 64, 32, device="cuda")
    with usc.index_check_policy("raise"):
        usc.functional.embedding(tokens, weight, max_norm=1.0)  # first call: module loading
        torch.cuda.synchronize()
        assert _synchronisations(lambda: usc.functional.embedding(tokens, weight)) == 1
        assert _synchronisations(lambda: ops.embedding_backward(grad, tokens, 1000)) == 1
        # renorm and lookup each read back once
        assert _synchronisations(
            lambda: usc.functional.embedding(tokens, weight, max_norm=1.0)) == 2
    assert _synchronisations(lambda: usc.functional.embedding(tokens, weight, max_norm=1.0)) == 0


# --- CUDA graphs and torch.compile(mode="reduce-overhead") --------------------------------------

@needs_cuda_kernels
@pytest.mark.parametrize("padding_idx,max_norm", [(None, None), (3, None), (None, 1.0)])
def test_graph_capture_replayed_on_new_data_equals_eager(padding_idx, max_norm):
    num_rows, dim, shape = 1000, 32, (4, 64)
    base = torch.randn(num_rows, dim, device="cuda") * 2
    # The graph's static inputs: refilled before each replay.
    weight = base.clone().requires_grad_()
    tokens = torch.randint(0, num_rows, shape, device="cuda")
    grad = torch.randn(*shape, dim, device="cuda")

    def step():
        out = usc.functional.embedding(tokens, weight, padding_idx, max_norm)
        (grad_weight,) = torch.autograd.grad(out, weight, grad)
        return out, grad_weight

    side = torch.cuda.Stream()  # warm-up on a side stream, as torch.cuda.graph asks
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out, static_grad = step()

    for _ in range(3):
        new_tokens = torch.randint(0, num_rows, shape)
        new_grad = torch.randn(*shape, dim)
        with torch.no_grad():
            weight.copy_(base)
        tokens.copy_(new_tokens)
        grad.copy_(new_grad)
        graph.replay()
        eager_weight = base.clone().requires_grad_()
        eager_out = usc.functional.embedding(new_tokens.cuda(), eager_weight, padding_idx, max_norm)
        (eager_grad,) = torch.autograd.grad(eager_out, eager_weight, new_grad.cuda())
        assert torch.equal(static_out, eager_out)
        assert torch.equal(static_grad, eager_grad)
        assert torch.equal(weight.detach(), eager_weight.detach())  # max_norm renormed alike


@needs_cuda_kernels
def test_compile_reduce_overhead_equals_eager():
    from torch._dynamo.utils import counters

    torch.compiler.reset()
    counters.clear()
    eager = usc.Embedding(1000, 32, padding_idx=0).cuda()
    compiled_module = usc.Embedding(1000, 32, padding_idx=0).cuda()
    compiled_module.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_module, mode="reduce-overhead")
    for _ in range(4):  # CUDA graph trees: warm-up run, then recording, then replays
        tokens = torch.randint(0, 1000, (4, 64)).cuda()
        grad = torch.randn(4, 64, 32).cuda()
        torch.compiler.cudagraph_mark_step_begin()
        out = compiled(tokens)
        expected = eager(tokens)
        assert torch.equal(out, expected)
        out.backward(grad)
        expected.backward(grad)
        torch.testing.assert_close(compiled_module.weight.grad, eager.weight.grad)
        eager.zero_grad(set_to_none=True)
        compiled_module.zero_grad(set_to_none=True)
    assert counters["inductor"]["cudagraph_skips"] == 0, "inductor skipped CUDA graphs"


# --- determinism and agreement with the CPU kernels ----------------------------------------------

@needs_cuda_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_backward_is_bitwise_repeatable(dtype):
    # Zipf over a GPT-2 vocabulary: the heaviest row collects about 14% of 32768 positions.
    num_rows, dim = 50257, 128
    tokens = zipf_indices(num_rows, (32768,)).cuda()
    grad = torch.randn(32768, dim).to(dtype).cuda()
    first = ops.embedding_backward(grad, tokens, num_rows, 0)
    for _ in range(3):
        assert torch.equal(ops.embedding_backward(grad, tokens, num_rows, 0), first)


def _describe_difference(cuda, cpu, tokens):
    diff = (cuda.double() - cpu.double()).abs().amax(1)
    rows = diff.nonzero().flatten()
    worst = int(diff.argmax())
    counts = torch.bincount(tokens.flatten().long(), minlength=cpu.shape[0])
    return (f"{rows.numel()} of {cpu.shape[0]} rows differ; largest |difference| "
            f"{diff[worst].item():.3g} at row {worst} ({int(counts[worst])} positions, "
            f"|value| {cpu[worst].double().abs().max().item():.3g})")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_matches_the_cpu_kernels_within_rounding(dtype):
    # Whichever path CUDA tensors take (our kernels or the fallback): the functional forward
    # and backward with padding against the CPU kernels.
    weight = torch.randn(500, 32).to(dtype)
    tokens = torch.randint(0, 500, (16, 64))
    grad = torch.randn(16, 64, 32).to(dtype)
    results = []
    for device in ("cpu", "cuda"):
        w = weight.to(device, copy=True).requires_grad_()
        out = usc.functional.embedding(tokens.to(device), w, padding_idx=3)
        out.backward(grad.to(device))
        results.append((out.cpu(), w.grad.cpu()))
    assert torch.equal(results[0][0], results[1][0])
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-5, atol=1e-5)


@needs_cuda_kernels
@pytest.mark.parametrize("dist", ["uniform", "zipf"])
@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_backward_equals_the_cpu_kernels_bitwise(dtype, index_dtype, dist):
    num_rows, dim, shape = 3000, 96, (16, 512)
    tokens = _indices(dist, num_rows, shape).to(index_dtype)
    grad = torch.randn(*shape, dim).to(dtype)
    cpu = ops.embedding_backward(grad, tokens, num_rows, 5)
    cuda = ops.embedding_backward(grad.cuda(), tokens.cuda(), num_rows, 5).cpu()
    # Both sum each row's gradient rows in float32 (float64 for double) in position order,
    # scale once and round once: the target is bitwise equality.
    assert torch.equal(cuda, cpu), (
        f"CUDA backward differs from the CPU kernels' ({dtype}, {dist}): "
        + _describe_difference(cuda, cpu, tokens))


@needs_cuda_kernels
@pytest.mark.parametrize("layout", ["contiguous", "column_major", "column_slice"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_forward_equals_the_cpu_kernels_bitwise(dtype, layout):
    storage = torch.randn(3000, 200).to(dtype)
    tables = {"contiguous": storage[:, :96].contiguous(),
              "column_major": storage[:, :96].t().contiguous().t(),
              "column_slice": storage[:, 7:103]}
    table = tables[layout]
    weight = storage.cuda()[:, 7:103] if layout == "column_slice" else table.cuda()
    assert weight.stride() == table.stride()
    tokens = torch.randint(0, 3000, (16, 512))
    assert torch.equal(ops.embedding_lookup(tokens.cuda(), weight).cpu(),
                       ops.embedding_lookup(tokens, table))


@needs_cuda_kernels
@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.0, 0.5, float("inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_renorm_matches_the_cpu_kernels(dtype, norm_type):
    table = (torch.randn(3000, 96) * 3).to(dtype)
    tokens = zipf_indices(3000, (4096,))  # many repeats: each distinct row renormed once
    weight = table.cuda()
    ops.embedding_renorm_(weight, tokens.cuda(), 1.5, norm_type)
    ops.embedding_renorm_(table, tokens, 1.5, norm_type)
    if norm_type in (1.0, 2.0, float("inf")):
        # Both sum a row's terms in column order in float32: the same bits.
        assert torch.equal(weight.cpu(), table)
    else:
        # |x|^p goes through the device's powf, which may round differently from the host's.
        torch.testing.assert_close(weight.cpu(), table)


@needs_cuda_kernels
@pytest.mark.parametrize("n", [8192, 65536])
def test_backward_is_four_gpu_operations_at_gpt2_size(n, monkeypatch):
    # The launch-lean backward (src/kernels/cuda/backward.cu): tile sort, merge, window parts,
    # rows, as the emulation counts them (cuda_kernels_emulation_test); a regression shows here.
    # The default backward: no variant chosen (UNIT_SCALING_BACKWARD_VARIANT unset).
    monkeypatch.delenv(VARIANT_ENV, raising=False)
    tokens = torch.randint(0, 50257, (n,), device="cuda")
    grad = torch.randn(n, 768, device="cuda", dtype=torch.bfloat16)
    ops.embedding_backward(grad, tokens, 50257)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        ops.embedding_backward(grad, tokens, 50257)
        torch.cuda.synchronize()
    device_ops = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    assert len(device_ops) == 4, device_ops


# --- bad indices ----------------------------------------------------------------------------------

@pytest.mark.parametrize("max_norm", [None, 0.5])
@pytest.mark.parametrize("bad", [10, -1, 2**31 - 1])
@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32])
def test_raise_policy_bad_index_raises_and_changes_nothing(index_dtype, bad, max_norm):
    base = torch.randn(10, 4) * 5
    weight = base.cuda()
    version = weight._version
    tokens = torch.tensor([[1, 2, 3], [4, 5, 6]], dtype=index_dtype)
    tokens[1, 2] = bad
    needle = rf"index {bad} at input\[1, 2\]"
    grad = torch.randn(2, 3, 4, device="cuda")
    with usc.index_check_policy("raise"):
        with pytest.raises(IndexError, match=needle):
            usc.functional.embedding(tokens.cuda(), weight, max_norm=max_norm)
        with pytest.raises(IndexError, match=needle):
            ops.embedding_lookup(tokens.cuda(), weight)
        with pytest.raises(IndexError, match=needle):
            ops.embedding_renorm_(weight, tokens.cuda(), 0.5, 2.0)
        with pytest.raises(IndexError, match=needle):
            ops.embedding_backward(grad, tokens.cuda(), 10)
    assert torch.equal(weight.cpu(), base)
    assert weight._version == version
    # The CUDA context is still usable, and a good call gives the right rows.
    tokens[1, 2] = 0
    assert torch.equal(ops.embedding_lookup(tokens.cuda(), weight).cpu(), base[tokens.long()])


# Each runs in a subprocess: a device-side assertion leaves the CUDA context unusable.
_BAD_CALLS = {
    "forward": "usc.functional.embedding(tokens, weight)",
    "forward with max_norm": "usc.functional.embedding(tokens, weight, max_norm=0.5)",
    "renorm": "ops.embedding_renorm_(weight, tokens, 0.5, 2.0)",
    "backward": "ops.embedding_backward(torch.randn(4, 8, device='cuda'), tokens, 10)",
    "scaled backward": "ops._scaled_embedding_backward(torch.randn(4, 8, device='cuda'), tokens, "
                       "10, -1, 1.0)",
}
_BAD_CALL_PROGRAM = """
import torch, unit_scaling_cpp as usc
ops = torch.ops.unit_scaling
weight = torch.randn(10, 8, device="cuda") * 5
tokens = torch.tensor([0, 1, 2, 10], device="cuda")
{call}
torch.cuda.synchronize()
print("NO ERROR")
"""


@needs_cuda_kernels
@pytest.mark.parametrize("name", list(_BAD_CALLS))
def test_default_policy_bad_index_is_a_device_side_assertion(name):
    env = {k: v for k, v in os.environ.items() if k != "UNIT_SCALING_INDEX_CHECKS"}
    result = subprocess.run([sys.executable, "-c", _BAD_CALL_PROGRAM.format(call=_BAD_CALLS[name])],
                            capture_output=True, text=True, timeout=300, env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "NO ERROR" not in output, output[-2000:]
    assert "device-side assert" in output, output[-2000:]
    assert "index 10 at input (flat position 3) is out of range for weight with 10 rows" in output, \
        output[-2000:]


@needs_cuda_kernels
def test_environment_variable_selects_the_raise_policy():
    program = ("import torch, unit_scaling_cpp as usc\n"
               "try:\n"
               "    usc.functional.embedding(torch.tensor([3, 10], device='cuda'),\n"
               "                             torch.randn(10, 4, device='cuda'))\n"
               "except IndexError as e:\n"
               "    print('RAISED', e)\n")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "UNIT_SCALING_INDEX_CHECKS": "raise"})
    assert "RAISED" in result.stdout and "index 10 at input[1]" in result.stdout, \
        result.stdout + result.stderr[-2000:]


# --- shared by the large-N, second-device and backward-variant tests ------------------------------

def _gpt2_case(n, dist, dtype, index_dtype=torch.int64, seed=0, device="cuda"):
    """GPT-2 backward inputs (V = 50257, D = 768), made on the GPU from a seeded generator (a CPU
    randn of 10^8 values takes seconds): (tokens of shape (n,), grad_output of shape (n, 768))."""
    generator = torch.Generator(device=device).manual_seed(seed)
    if dist == "uniform":
        tokens = torch.randint(0, GPT2_ROWS, (n,), device=device, generator=generator)
    else:  # Zipf(1.1) over rows ranked by id: row 0 takes about 14% of the positions
        weights = torch.arange(1, GPT2_ROWS + 1, dtype=torch.float64, device=device).pow(-1.1)
        tokens = torch.multinomial(weights, n, replacement=True, generator=generator)
    source_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    grad = torch.randn(n, GPT2_DIM, device=device, dtype=source_dtype, generator=generator)
    return tokens.to(index_dtype), grad.to(dtype)


def _bits(t):
    """t's bits as integers of its width: equality of these is bitwise equality (it tells -0.0
    from 0.0 and compares NaNs, which torch.equal does not)."""
    return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def _dtype_id(dtype):
    return str(dtype).removeprefix("torch.")


def _bitwise_difference(result, expected, tokens=None):
    """None when `result` (any device) has the bits of `expected` (CPU), else what differs; with
    `tokens`, `expected` is a V x D table (a gradient or a renormed weight) and the rows that
    differ are described."""
    if result.dtype != expected.dtype or result.shape != expected.shape:
        return f"{result.dtype} {tuple(result.shape)} instead of {expected.dtype} " \
               f"{tuple(expected.shape)}"
    if torch.equal(_bits(result), _bits(expected.to(result.device))):
        return None
    result = result.cpu()
    elements = int((_bits(result) != _bits(expected)).sum())
    text = f"{elements} of {expected.numel()} elements differ in their bits"
    if tokens is not None and expected.dim() == 2:
        text += "; " + _describe_difference(result, expected, tokens.cpu())
    return text


def _capture(step):
    """A CUDA graph of step() and the graph's static outputs; warmed up on a side stream first,
    as torch.cuda.graph asks."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = step()
    return graph, outputs


def _check_gpt2_capture_replay(n, dtype):
    """Forward + backward (autograd, and the operator with a padding row) at the GPT-2 shape with
    n lookups, captured once and replayed on three new index/gradient sets (uniform and Zipf, not
    the captured ones): each replay equals eager bit for bit."""
    base = torch.randn(GPT2_ROWS, GPT2_DIM, device="cuda").to(dtype)
    weight = base.clone().requires_grad_()
    tokens, grad = _gpt2_case(n, "uniform", dtype, seed=1)  # the graph's static inputs

    def step():
        out = usc.functional.embedding(tokens, weight)
        (through_autograd,) = torch.autograd.grad(out, weight, grad)
        padded = ops.embedding_backward(grad, tokens, GPT2_ROWS, 0)
        return out, through_autograd, padded

    graph, static = _capture(step)
    for seed, dist in ((2, "zipf"), (3, "uniform"), (4, "zipf")):
        new_tokens, new_grad = _gpt2_case(n, dist, dtype, seed=seed)
        tokens.copy_(new_tokens)
        grad.copy_(new_grad)
        graph.replay()
        eager = (usc.functional.embedding(new_tokens, base),
                 ops.embedding_backward(new_grad, new_tokens, GPT2_ROWS),
                 ops.embedding_backward(new_grad, new_tokens, GPT2_ROWS, 0))
        torch.cuda.synchronize()
        for name, replayed, expected in zip(("forward", "backward", "padded backward"),
                                            static, eager):
            assert torch.equal(_bits(replayed.detach()), _bits(expected)), (
                f"the replayed {name} differs from eager (N={n}, {dtype}, new {dist} data)")


# --- more than 65536 lookups: the CUB radix-sort path of the backward -----------------------------

@needs_cuda_kernels
@pytest.mark.parametrize("dist", ["uniform", "zipf"])
@pytest.mark.parametrize("dtype,index_dtype,padding_idx", [
    (torch.float32, torch.int64, None),
    (torch.bfloat16, torch.int64, None),
    (torch.bfloat16, torch.int32, 0),  # 32-bit keys; the padding row is the hottest Zipf row
], ids=["float32", "bfloat16", "bfloat16_int32_padding0"])
def test_large_n_backward_equals_the_cpu_kernels_bitwise(dtype, index_dtype, padding_idx, dist,
                                                         monkeypatch):
    # GPT-2 table, N = 131072 > 65536: the key kernel and CUB's radix sort replace the tile sort
    # (the emulation swaps CUB for a host sort, so only a GPU runs this path for real).
    monkeypatch.delenv(VARIANT_ENV, raising=False)  # the default backward
    n = 2 * TILE_SORT_MAX_N
    tokens, grad = _gpt2_case(n, dist, dtype, index_dtype, seed=7)
    cuda = ops.embedding_backward(grad, tokens, GPT2_ROWS, padding_idx)
    cpu = ops.embedding_backward(grad.cpu(), tokens.cpu(), GPT2_ROWS, padding_idx)
    difference = _bitwise_difference(cuda, cpu, tokens)
    assert difference is None, (
        f"CUDA backward at N={n} (CUB path) differs from the CPU kernels' ({dtype}, "
        f"{index_dtype}, {dist}, padding_idx={padding_idx}): {difference}")
    assert torch.equal(_bits(ops.embedding_backward(grad, tokens, GPT2_ROWS, padding_idx)),
                       _bits(cuda)), "not repeatable"


@needs_cuda_kernels
def test_large_n_graph_capture_replayed_on_new_data_equals_eager(monkeypatch):
    monkeypatch.delenv(VARIANT_ENV, raising=False)
    _check_gpt2_capture_replay(2 * TILE_SORT_MAX_N, torch.bfloat16)


# --- a tensor on cuda:1: the device guard and that device's current stream ------------------------

_GPUS = torch.cuda.device_count()
needs_two_gpus = pytest.mark.skipif(
    _GPUS < 2,
    reason=f"needs a second CUDA device, cuda:1 ({_GPUS} visible): the backend's device guard "
           "and its use of that device's current stream are not checked on this machine")


def _second_device_results(device, table, tokens, grad):
    """Forward (with padding), autograd backward, the backward operator, max_norm through the
    forward (p = 2) and renorm with p = inf, on `device` (inputs made on the CPU)."""
    num_rows = table.shape[0]
    weight = table.to(device, copy=True).requires_grad_()
    out = usc.functional.embedding(tokens.to(device), weight, padding_idx=3)
    out.backward(grad.to(device))
    direct = ops.embedding_backward(grad.to(device), tokens.to(device), num_rows, 3)
    renormed = table.to(device, copy=True)
    renormed_out = usc.functional.embedding(tokens.to(device), renormed, max_norm=1.0)
    inf_renormed = table.to(device, copy=True)
    ops.embedding_renorm_(inf_renormed, tokens.to(device), 1.5, float("inf"))
    return {"forward": out, "autograd backward": weight.grad, "backward": direct,
            "max_norm forward": renormed_out, "max_norm weight": renormed,
            "renorm inf": inf_renormed}


_TABLES = ("autograd backward", "backward", "max_norm weight", "renorm inf", "renorm")


def _use_variant(monkeypatch, variant):
    """Selects a backward variant for the rest of the test (None: the variable unset), skipping
    when the library ignores the variable."""
    monkeypatch.delenv(VARIANT_ENV, raising=False)
    if variant is not None:
        reason = _variants_missing()
        if reason is not None:
            pytest.skip(reason)
        monkeypatch.setenv(VARIANT_ENV, variant)


# side_zero and all take a stream from cuda:1's pool and create their events there: the only
# objects the backend creates on a given device, so they run on the second device too.
_SECOND_DEVICE_VARIANTS = pytest.mark.parametrize("variant", [None, "side_zero", "all"],
                                                  ids=lambda v: v or "default")


@needs_cuda_kernels
@needs_two_gpus
@_SECOND_DEVICE_VARIANTS
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=_dtype_id)
def test_second_device_equals_the_cpu_kernels_and_keeps_the_current_device(dtype, variant,
                                                                            monkeypatch):
    _use_variant(monkeypatch, variant)
    torch.cuda.set_device(0)
    num_rows = 3000
    table = (torch.randn(num_rows, 96) * 3).to(dtype)
    tokens = zipf_indices(num_rows, (16, 512))
    grad = torch.randn(16, 512, 96).to(dtype)
    on_gpu = _second_device_results(torch.device("cuda:1"), table, tokens, grad)
    torch.cuda.synchronize(1)
    assert torch.cuda.current_device() == 0, "a call on cuda:1 changed the current device"
    wrong = {name: t.device for name, t in on_gpu.items() if t.device != torch.device("cuda:1")}
    assert not wrong, f"results not on cuda:1: {wrong}"
    on_cpu = _second_device_results(torch.device("cpu"), table, tokens, grad)
    for name, expected in on_cpu.items():
        difference = _bitwise_difference(on_gpu[name].detach(), expected.detach(),
                                         tokens if name in _TABLES else None)
        assert difference is None, f"{name} on cuda:1 differs from the CPU kernels': {difference}"


@needs_cuda_kernels
@needs_two_gpus
@_SECOND_DEVICE_VARIANTS
def test_second_device_runs_on_the_current_stream_of_that_device(variant, monkeypatch):
    _use_variant(monkeypatch, variant)
    # The inputs are written on cuda:1's current stream (not its default stream) behind a long
    # sleep kernel, while cuda:0 stays the current device. Our kernels see them only if they are
    # queued on that same stream, after the copies; on any other stream they would read the
    # zeros the buffers held before. And the calls return while the sleep still runs: no sync.
    device = torch.device("cuda:1")
    num_rows, dim, n = 3000, 64, 4096
    table = torch.randn(num_rows, dim) * 3
    tokens = zipf_indices(num_rows, (n,))
    grad = torch.randn(n, dim)
    sources = [table.to(device), tokens.to(device), grad.to(device), table.to(device)]
    buffers = [torch.zeros_like(t) for t in sources]
    weight, indices, grad_out, renormed = buffers
    # Warm up on cuda:1 (module loading happens at a kernel's first launch on a device).
    usc.functional.embedding(sources[1], sources[0].clone(), max_norm=1.0)  # not the source
    ops.embedding_backward(sources[2], sources[1], num_rows)
    torch.cuda.synchronize(device)

    stream = torch.cuda.Stream(device=device)
    previous = torch.cuda.current_stream(device)
    torch.cuda.set_device(0)
    try:
        torch.cuda.set_stream(stream)  # the current stream of cuda:1 (this also selects cuda:1)
        torch.cuda.set_device(0)  # ... and cuda:0 current again; cuda:1 keeps `stream`
        assert torch.cuda.current_device() == 0
        assert torch.cuda.current_stream(device) == stream
        with torch.cuda.device(device):  # on `stream`: the sleep, then the inputs
            torch.cuda._sleep(1_000_000_000)  # about half a second at 2 GHz
            for buffer, source in zip(buffers, sources):
                buffer.copy_(source)
        assert torch.cuda.current_device() == 0
        out = usc.functional.embedding(indices, weight, padding_idx=3)
        grad_weight = ops.embedding_backward(grad_out, indices, num_rows, 3)
        ops.embedding_renorm_(renormed, indices, 1.0, 2.0)
        renormed_out = usc.functional.embedding(indices, weight.clone(), max_norm=1.0)
        still_busy = not stream.query()
        assert torch.cuda.current_device() == 0, "a call on cuda:1 changed the current device"
        stream.synchronize()
    finally:
        torch.cuda.set_stream(previous)
        torch.cuda.set_device(0)
    assert still_busy, "the host waited for cuda:1 (a synchronisation in forward, renorm or " \
                       "backward)"
    expected_renormed = table.clone()
    ops.embedding_renorm_(expected_renormed, tokens, 1.0, 2.0)
    expected = {
        "forward": (out, ops.embedding_lookup(tokens, table)),
        "backward": (grad_weight, ops.embedding_backward(grad, tokens, num_rows, 3)),
        "renorm": (renormed, expected_renormed),
        "max_norm forward": (renormed_out, usc.functional.embedding(tokens, table.clone(),
                                                                     max_norm=1.0)),
    }
    for name, (result, reference) in expected.items():
        difference = _bitwise_difference(result, reference, tokens if name in _TABLES else None)
        assert difference is None, (
            f"{name} on cuda:1 differs from the CPU kernels' (zeros would mean it ran on another "
            f"stream than cuda:1's current one, before the inputs were written): {difference}")


@needs_cuda_kernels
@needs_two_gpus
def test_second_device_raise_policy_raises_and_keeps_the_current_device():
    torch.cuda.set_device(0)
    base = torch.randn(10, 4) * 5
    weight = base.to("cuda:1")
    version = weight._version
    tokens = torch.tensor([1, 2, 10], device="cuda:1")
    with usc.index_check_policy("raise"):
        with pytest.raises(IndexError, match=r"index 10 at input\[2\]"):
            usc.functional.embedding(tokens, weight, max_norm=0.5)
        with pytest.raises(IndexError, match=r"index 10 at input\[2\]"):
            ops.embedding_backward(torch.randn(3, 4, device="cuda:1"), tokens, 10)
    assert torch.cuda.current_device() == 0
    assert torch.equal(weight.cpu(), base) and weight._version == version
    tokens[2] = 0  # the context is still usable
    assert torch.equal(ops.embedding_lookup(tokens, weight).cpu(), base[[1, 2, 0]])


# --- the backward variants (UNIT_SCALING_BACKWARD_VARIANT) -----------------------------------------

@functools.cache
def _variants_missing():
    """None when the CUDA backend reads UNIT_SCALING_BACKWARD_VARIANT (an unknown value raises),
    else why the variant tests cannot run."""
    saved = os.environ.get(VARIANT_ENV)
    os.environ[VARIANT_ENV] = "not_a_backward_variant"
    try:
        ops.embedding_backward(torch.ones(4, 2, device="cuda"),
                               torch.zeros(4, dtype=torch.int64, device="cuda"), 3)
        torch.cuda.synchronize()
    except Exception:  # noqa: BLE001  (its type and text are test_unknown_backward_variant_...'s)
        return None
    finally:
        if saved is None:
            os.environ.pop(VARIANT_ENV, None)
        else:
            os.environ[VARIANT_ENV] = saved
    return (f"this library ignores {VARIANT_ENV} (an unknown value raised nothing): built before "
            "the backward variants? test_unknown_backward_variant_is_a_value_error_naming_it "
            "fails for it")


@pytest.fixture
def backward_variants(monkeypatch):
    """The variant names, after making sure the library reads the variable; the tests choose one
    with monkeypatch.setenv (undone after the test)."""
    reason = _variants_missing()
    if reason is not None:
        pytest.skip(reason)
    monkeypatch.delenv(VARIANT_ENV, raising=False)
    return VARIANTS


@needs_cuda_kernels
def test_unknown_backward_variant_is_a_value_error_naming_it(monkeypatch):
    tokens = torch.randint(0, 100, (64,), device="cuda")
    grad = torch.randn(64, 8, device="cuda")
    weight = torch.randn(100, 8, device="cuda", requires_grad=True)
    calls = {
        "embedding_backward": lambda: ops.embedding_backward(grad, tokens, 100),
        "_scaled_embedding_backward":
            lambda: ops._scaled_embedding_backward(grad, tokens, 100, -1, 1.0),
        "autograd": lambda: torch.autograd.grad(usc.functional.embedding(tokens, weight),
                                                weight, grad),
    }
    monkeypatch.setenv(VARIANT_ENV, "baseline")
    expected = ops.embedding_backward(grad, tokens, 100)
    for _ in range(2):  # read on each call: raises every time, not once
        monkeypatch.setenv(VARIANT_ENV, "fastest")
        for name, call in calls.items():
            with pytest.raises(ValueError, match="^unit_scaling embedding: ") as error:
                call()
                torch.cuda.synchronize()
            assert "fastest" in str(error.value), (
                f"{name}: the message does not name the value 'fastest': {error.value}")
        # ... and a valid value works again at once (the context is still usable).
        monkeypatch.setenv(VARIANT_ENV, "baseline")
        assert torch.equal(ops.embedding_backward(grad, tokens, 100), expected)
    monkeypatch.delenv(VARIANT_ENV)  # unset: the default, baseline
    assert torch.equal(ops.embedding_backward(grad, tokens, 100), expected)


@needs_cuda_kernels
@pytest.mark.parametrize("n", [8192, TILE_SORT_MAX_N, 2 * TILE_SORT_MAX_N])
@pytest.mark.parametrize("dist", ["uniform", "zipf"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64],
                         ids=_dtype_id)
def test_every_backward_variant_equals_the_cpu_kernels_bitwise(backward_variants, monkeypatch,
                                                               dtype, dist, n):
    # GPT-2 table; N = 8192 and 65536 take the tile sort, 131072 CUB's radix sort. Zipf runs
    # twice: without padding (the hottest row summed) and with the hottest row as padding. The
    # default (variable unset) runs too. One CPU reference per case, every variant against it.
    tokens, grad = _gpt2_case(n, dist, dtype, seed=n + (dist == "zipf"))
    cpu_tokens, cpu_grad = tokens.cpu(), grad.cpu()
    failures = []
    for padding_idx in ((None, 0) if dist == "zipf" else (None,)):
        cpu = ops.embedding_backward(cpu_grad, cpu_tokens, GPT2_ROWS, padding_idx)
        for variant in ("(unset)",) + backward_variants:
            if variant == "(unset)":
                monkeypatch.delenv(VARIANT_ENV, raising=False)
            else:
                monkeypatch.setenv(VARIANT_ENV, variant)
            case = f"{variant}, padding_idx={padding_idx}"
            try:
                cuda = ops.embedding_backward(grad, tokens, GPT2_ROWS, padding_idx)
                torch.cuda.synchronize()
            except Exception as error:  # noqa: BLE001  (every variant is tried; all are reported)
                failures.append(f"{case}: raised {type(error).__name__}: {error}"[:600])
                continue
            difference = _bitwise_difference(cuda, cpu, tokens)
            if difference is not None:
                failures.append(f"{case}: {difference}")
    assert not failures, (f"backward variants that differ from the CPU kernels ({dtype}, {dist}, "
                          f"N={n}):\n" + "\n".join(failures))


@needs_cuda_kernels
@pytest.mark.parametrize("n", [8192, TILE_SORT_MAX_N, 2 * TILE_SORT_MAX_N])
@pytest.mark.parametrize("variant", VARIANTS)
def test_backward_variant_captured_and_replayed_equals_eager(backward_variants, monkeypatch,
                                                             variant, n):
    # The variable is read when the backward is called, i.e. while capturing: the graph holds
    # that variant's kernels, and replays must equal an eager call of the same variant.
    monkeypatch.setenv(VARIANT_ENV, variant)
    _check_gpt2_capture_replay(n, torch.bfloat16)


@needs_cuda_kernels
@pytest.mark.parametrize("n", [8192, 2 * TILE_SORT_MAX_N])
@pytest.mark.parametrize("variant", VARIANTS)
def test_backward_variant_makes_no_host_sync(backward_variants, monkeypatch, variant, n):
    monkeypatch.setenv(VARIANT_ENV, variant)
    assert usc.get_index_check_policy() == "device_assert"
    tokens, grad = _gpt2_case(n, "zipf", torch.bfloat16, seed=11)
    weight = torch.randn(GPT2_ROWS, GPT2_DIM, device="cuda").to(torch.bfloat16).requires_grad_()

    def step():
        direct = ops.embedding_backward(grad, tokens, GPT2_ROWS, 0)
        ops._scaled_embedding_backward(grad, tokens, GPT2_ROWS, -1, 0.5)
        out = usc.functional.embedding(tokens, weight)
        (through_autograd,) = torch.autograd.grad(out, weight, grad)
        return direct, through_autograd

    step()  # first call: module loading etc.
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # a synchronising call through c10 raises
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    torch.cuda._sleep(1_000_000_000)  # any host wait at all would outlast this
    step()
    still_busy = not torch.cuda.current_stream().query()
    torch.cuda.synchronize()
    assert still_busy, f"the host waited for the GPU during the {variant} backward (N={n})"
