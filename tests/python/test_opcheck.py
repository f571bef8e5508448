"""torch.library.opcheck over every registered operator with a set of sample inputs: schema
(mutation/aliasing), autograd registration, FakeTensor (Meta) kernels and AOT dispatch with
static and dynamic shapes -- all of opcheck's default test utils."""
import itertools

import pytest
import torch

import unit_scaling_cpp  # noqa: F401

ops = torch.ops.unit_scaling

INPUT_SHAPES = [(), (0,), (5,), (2, 3), (2, 0, 4)]
WEIGHT_DTYPES = [torch.float32, torch.bfloat16, torch.float64]
INDEX_DTYPES = [torch.int64, torch.int32]


def _samples():
    for shape, wdt, idt in itertools.product(INPUT_SHAPES, WEIGHT_DTYPES, INDEX_DTYPES):
        for padding_idx in (None, 1, -2):
            yield shape, wdt, idt, padding_idx


SAMPLES = list(_samples())
SAMPLE_IDS = [f"{s}-{w}-{i}-pad{p}".replace("torch.", "") for s, w, i, p in SAMPLES]


def _weight(dtype, requires_grad=True, rows=7, dim=4):
    return (torch.randn(rows, dim) * 2).to(dtype).requires_grad_(requires_grad)


@pytest.mark.parametrize("shape,wdt,idt,padding_idx", SAMPLES, ids=SAMPLE_IDS)
def test_embedding_lookup(shape, wdt, idt, padding_idx):
    tokens = torch.randint(0, 7, shape, dtype=idt)
    torch.library.opcheck(ops.embedding_lookup, (tokens, _weight(wdt), padding_idx))


@pytest.mark.parametrize("shape,wdt,idt,padding_idx", SAMPLES, ids=SAMPLE_IDS)
def test_embedding_backward(shape, wdt, idt, padding_idx):
    tokens = torch.randint(0, 7, shape, dtype=idt)
    grad = torch.randn(*shape, 4).to(wdt).requires_grad_()
    torch.library.opcheck(ops.embedding_backward, (grad, tokens, 7, padding_idx))


@pytest.mark.parametrize("shape,wdt,idt,padding_idx", SAMPLES, ids=SAMPLE_IDS)
def test_embedding(shape, wdt, idt, padding_idx):
    tokens = torch.randint(0, 7, shape, dtype=idt)
    torch.library.opcheck(ops.embedding, (tokens, _weight(wdt), padding_idx))


@pytest.mark.parametrize("max_norm,norm_type", [(1.0, 2.0), (0.5, 1.0), (2.0, float("inf"))])
@pytest.mark.parametrize("wdt", WEIGHT_DTYPES)
def test_embedding_with_max_norm(max_norm, norm_type, wdt):
    tokens = torch.tensor([[0, 3, 3], [6, 1, 0]])
    # max_norm mutates weight in place: a leaf that requires grad cannot be mutated, so the
    # mutating samples use a weight without grad (the Python API renorms under no_grad).
    weight = _weight(wdt, requires_grad=False)
    torch.library.opcheck(ops.embedding, (tokens, weight, None, max_norm, norm_type))
    torch.library.opcheck(ops.embedding, (tokens, weight.clone(), 1, max_norm, norm_type))


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.0, float("inf")])
@pytest.mark.parametrize("shape", [(0,), (4,), (2, 3)])
@pytest.mark.parametrize("wdt", WEIGHT_DTYPES)
def test_embedding_renorm_(norm_type, shape, wdt):
    tokens = torch.randint(0, 7, shape)
    torch.library.opcheck(ops.embedding_renorm_,
                          (_weight(wdt, requires_grad=False), tokens, 1.0, norm_type))


@pytest.mark.parametrize("op", ["scale_fwd", "scale_bwd"])
@pytest.mark.parametrize("shape", [(), (0,), (3, 4)])
@pytest.mark.parametrize("dtype", WEIGHT_DTYPES)
def test_scale_ops(op, shape, dtype):
    x = torch.randn(shape).to(dtype).requires_grad_()
    torch.library.opcheck(getattr(ops, op), (x, 0.7))


@pytest.mark.parametrize("kwargs", [{"token_multiplier": 0.5}, {"num_tokens": 96}])
@pytest.mark.parametrize("wdt", WEIGHT_DTYPES)
def test_token_count_options(kwargs, wdt):
    tokens = torch.randint(0, 7, (2, 3))
    grad = torch.randn(2, 3, 4).to(wdt).requires_grad_()
    torch.library.opcheck(ops.embedding, (tokens, _weight(wdt), 1), kwargs)
    torch.library.opcheck(ops.embedding_lookup, (tokens, _weight(wdt), None), kwargs)
    torch.library.opcheck(ops.embedding_backward, (grad, tokens, 7, -1), kwargs)
