"""torch.library.opcheck over every registered operator with a set of sample inputs: schema
(mutation/aliasing), autograd registration, FakeTensor (Meta) kernels and AOT dispatch with
static and dynamic shapes -- all of opcheck's default test utils.

Each test runs once per backend (conftest.py, backend_axis.py). The CPU backend runs every
sample; the ATen fallback and CUDA run a representative subset (REPRESENTATIVE: every input
shape with every weight dtype, index dtypes and padding choices rotated among them), which keeps
the suite's time on CI's two cores modest. scale_fwd / scale_bwd have no device kernels of their
own (the route does not touch them), so they run on the CPU and CUDA only."""
import itertools

import pytest
import torch

import backend_axis
import unit_scaling_cpp  # noqa: F401

ops = torch.ops.unit_scaling

INPUT_SHAPES = [(), (0,), (5,), (2, 3), (2, 0, 4)]
WEIGHT_DTYPES = [torch.float32, torch.bfloat16, torch.float64]
INDEX_DTYPES = [torch.int64, torch.int32]
PADDINGS = [None, 1, -2]


def _name(value):
    return str(value).replace("torch.", "")


SAMPLES = list(itertools.product(INPUT_SHAPES, WEIGHT_DTYPES, INDEX_DTYPES, PADDINGS))
SAMPLE_IDS = [f"{s}-{_name(w)}-{_name(i)}-pad{p}" for s, w, i, p in SAMPLES]
# One sample per (shape, weight dtype), the index dtype and padding rotated with the sum of
# their positions: each shape meets both index dtypes and all three paddings, and each weight
# dtype all three paddings.
REPRESENTATIVE = [
    SAMPLES.index((shape, wdt, INDEX_DTYPES[(a + b) % 2], PADDINGS[(a + b) % 3]))
    for a, shape in enumerate(INPUT_SHAPES) for b, wdt in enumerate(WEIGHT_DTYPES)
]
SAMPLE_CASES = backend_axis.cases(SAMPLES, SAMPLE_IDS, subset=REPRESENTATIVE)
SAMPLE_ARGS = "backend,shape,wdt,idt,padding_idx"


def _weight(backend, dtype, requires_grad=True, rows=7, dim=4):
    return backend.to((torch.randn(rows, dim) * 2).to(dtype)).requires_grad_(requires_grad)


@pytest.mark.parametrize(SAMPLE_ARGS, SAMPLE_CASES, indirect=["backend"])
def test_embedding_lookup(backend, shape, wdt, idt, padding_idx):
    tokens = backend.to(torch.randint(0, 7, shape, dtype=idt))
    torch.library.opcheck(ops.embedding_lookup, (tokens, _weight(backend, wdt), padding_idx))


@pytest.mark.parametrize(SAMPLE_ARGS, SAMPLE_CASES, indirect=["backend"])
def test_embedding_backward(backend, shape, wdt, idt, padding_idx):
    tokens = backend.to(torch.randint(0, 7, shape, dtype=idt))
    grad = backend.to(torch.randn(*shape, 4).to(wdt)).requires_grad_()
    torch.library.opcheck(ops.embedding_backward, (grad, tokens, 7, padding_idx))


@pytest.mark.parametrize(SAMPLE_ARGS, SAMPLE_CASES, indirect=["backend"])
def test_embedding(backend, shape, wdt, idt, padding_idx):
    tokens = backend.to(torch.randint(0, 7, shape, dtype=idt))
    torch.library.opcheck(ops.embedding, (tokens, _weight(backend, wdt), padding_idx))


@pytest.mark.parametrize("max_norm,norm_type", [(1.0, 2.0), (0.5, 1.0), (2.0, float("inf"))])
@pytest.mark.parametrize("wdt", WEIGHT_DTYPES)
def test_embedding_with_max_norm(max_norm, norm_type, wdt, backend):
    tokens = backend.to(torch.tensor([[0, 3, 3], [6, 1, 0]]))
    # max_norm mutates weight in place: a leaf that requires grad cannot be mutated, so the
    # mutating samples use a weight without grad (the Python API renorms under no_grad).
    weight = _weight(backend, wdt, requires_grad=False)
    torch.library.opcheck(ops.embedding, (tokens, weight, None, max_norm, norm_type))
    torch.library.opcheck(ops.embedding, (tokens, weight.clone(), 1, max_norm, norm_type))


NORM_TYPES = [1.0, 2.0, 3.0, float("inf")]
RENORM_SHAPES = [(0,), (4,), (2, 3)]
RENORM_SAMPLES = list(itertools.product(NORM_TYPES, RENORM_SHAPES, WEIGHT_DTYPES))
RENORM_IDS = [f"norm{n}-{s}-{_name(w)}" for n, s, w in RENORM_SAMPLES]
# Every norm type with every input shape, the weight dtype rotated.
RENORM_REPRESENTATIVE = [
    RENORM_SAMPLES.index((norm, shape, WEIGHT_DTYPES[(a + b) % 3]))
    for a, norm in enumerate(NORM_TYPES) for b, shape in enumerate(RENORM_SHAPES)
]


@pytest.mark.parametrize("backend,norm_type,shape,wdt",
                         backend_axis.cases(RENORM_SAMPLES, RENORM_IDS,
                                            subset=RENORM_REPRESENTATIVE),
                         indirect=["backend"])
def test_embedding_renorm_(backend, norm_type, shape, wdt):
    tokens = backend.to(torch.randint(0, 7, shape))
    torch.library.opcheck(ops.embedding_renorm_,
                          (_weight(backend, wdt, requires_grad=False), tokens, 1.0, norm_type))


SCALE_SAMPLES = list(itertools.product(["scale_fwd", "scale_bwd"], [(), (0,), (3, 4)],
                                       WEIGHT_DTYPES))
SCALE_IDS = [f"{o}-{s}-{_name(d)}" for o, s, d in SCALE_SAMPLES]


@pytest.mark.parametrize("backend,op,shape,dtype",
                         backend_axis.cases(SCALE_SAMPLES, SCALE_IDS, names=("cpu", "cuda")),
                         indirect=["backend"])
def test_scale_ops(backend, op, shape, dtype):
    x = backend.to(torch.randn(shape).to(dtype)).requires_grad_()
    torch.library.opcheck(getattr(ops, op), (x, 0.7))


@pytest.mark.parametrize("kwargs", [{"token_multiplier": 0.5}, {"num_tokens": 96}])
@pytest.mark.parametrize("wdt", WEIGHT_DTYPES)
def test_token_count_options(kwargs, wdt, backend):
    tokens = backend.to(torch.randint(0, 7, (2, 3)))
    grad = backend.to(torch.randn(2, 3, 4).to(wdt)).requires_grad_()
    torch.library.opcheck(ops.embedding, (tokens, _weight(backend, wdt), 1), kwargs)
    torch.library.opcheck(ops.embedding_lookup, (tokens, _weight(backend, wdt), None), kwargs)
    torch.library.opcheck(ops.embedding_backward, (grad, tokens, 7, -1), kwargs)
