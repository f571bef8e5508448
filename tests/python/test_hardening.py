"""Regressions of the hardening pass over the newest surfaces: token-count edges, the raw
operators' error classes, Meta/FakeTensor parity with eager, a symbolic token count, the
differentiable internal backward."""
import math
import warnings

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import unit_scaling_cpp  # noqa: F401  (loads torch.ops.unit_scaling)

ops = torch.ops.unit_scaling


# --- a token count whose unit scale the gradient's accumulation type cannot hold -------------

@pytest.mark.parametrize("dtype,multiplier", [
    (torch.float32, 1e-300),   # s ~ 2e150: inf in float32 (0 * inf was NaN in the gradient)
    (torch.bfloat16, 1e-300),  # accumulated in float32 too
    (torch.float64, 5e-324),   # s = inf even in float64
    (torch.float32, 1e300),    # s ~ 2e-150: flushes the whole gradient to zero in float32
])
def test_unrepresentable_unit_scale_is_a_value_error_with_nothing_modified(backend, dtype,
                                                                          multiplier):
    weight = backend.to(torch.randn(7, 3, dtype=dtype) * 3)
    before = weight.clone()
    tokens = backend.to(torch.tensor([0, 0]))
    with pytest.raises(ValueError, match=r"unit scale sqrt\(V / N_eff\) = .* outside the normal"):
        ops.embedding(tokens, weight, None, 0.5, token_multiplier=multiplier)
    assert torch.equal(weight, before)  # max_norm=0.5 would have renormed row 0
    with pytest.raises(ValueError, match="outside the normal range"):
        ops.embedding_backward(backend.to(torch.ones(2, 3, dtype=dtype)), tokens, 7,
                               token_multiplier=multiplier)


def test_the_issue_example_now_raises_instead_of_nan():
    w = torch.randn(7, 3, requires_grad=True)
    with pytest.raises(ValueError, match="token_multiplier=1e-300"):
        unit_scaling_cpp.functional.embedding(torch.tensor([0, 0]), w, token_multiplier=1e-300)
    assert w.grad is None


def test_a_representable_extreme_scale_still_works_and_is_finite():
    w = torch.randn(7, 3, dtype=torch.float32, requires_grad=True)
    out = ops.embedding(torch.tensor([0, 0]), w, token_multiplier=1e-70)  # s ~ 1.9e35
    out.backward(torch.tensor([[1., 0, 2], [-1., 0, -2]]))
    assert torch.isfinite(w.grad).all() and w.grad[0].abs().max() == 0
    # A call without lookups scales nothing: any multiplier passes.
    assert ops.embedding_backward(torch.ones(0, 3), torch.zeros(0, dtype=torch.long), 7,
                                  token_multiplier=1e-300).abs().max() == 0


# --- the raw operators' error classes ----------------------------------------------------------

W = torch.randn(7, 3)
I = torch.tensor([0, 2])

RAW_CALLS = [
    ("0-d weight", ValueError, "weight must be 2-D", lambda: ops.embedding_lookup(I, torch.tensor(1.0))),
    ("lookup None input", TypeError, "input is an undefined tensor",
     lambda: ops.embedding_lookup(None, W)),
    ("backward None grad", TypeError, "grad_output is an undefined tensor",
     lambda: ops.embedding_backward(None, I, 5)),
    ("scaled backward None grad", TypeError, "grad_output is an undefined tensor",
     lambda: ops._scaled_embedding_backward(None, I, 5, -1, 1.0)),
    ("renorm None weight", TypeError, "weight is an undefined tensor",
     lambda: ops.embedding_renorm_(None, I, 1.0, 2.0)),
    ("scale_fwd None", TypeError, "x is an undefined tensor", lambda: ops.scale_fwd(None, 1.0)),
    ("scale_bwd None", TypeError, "x is an undefined tensor", lambda: ops.scale_bwd(None, 1.0)),
    ("double backward None", TypeError, "weight is an undefined tensor",
     lambda: ops._embedding_double_backward(None, I)),
    ("double backward 1-D", ValueError, "must be 2-D",
     lambda: ops._embedding_double_backward(torch.randn(7), I)),
    ("double backward bad index", IndexError, "index out of range",
     lambda: ops._embedding_double_backward(W, torch.tensor([7]))),
    ("check None input", TypeError, "input is an undefined tensor",
     lambda: ops._check_embedding(None, W)),
    ("module negative size", ValueError, "num_embeddings and embedding_dim must be >= 0",
     lambda: ops._check_module_options(-1, 3, None)),
    ("module table shape", ValueError, r"_weight of shape \[7, 3\] does not match",
     lambda: ops._check_module_options(6, 3, W)),
    ("pretrained 1-D", ValueError, "from_pretrained's embeddings must be 2-D",
     lambda: ops._check_pretrained(torch.randn(4))),
    ("shard renorm shard", ValueError, "shard 3 is outside a group of 2 shards",
     lambda: ops._vocab_shard_renorm_(W.clone(), I, 14, 3, 2, 1.0, 2.0)),
    ("shard renorm table rows", ValueError, "weight has 7 rows, but shard 0 of 2",
     lambda: ops._vocab_shard_renorm_(W.clone(), I, 20, 0, 2, 1.0, 2.0)),
    ("shard renorm index", IndexError, "index 14 at input",
     lambda: ops._vocab_shard_renorm_(W.clone(), torch.tensor([14]), 14, 0, 2, 1.0, 2.0)),
    ("message subject", ValueError, "no message subject", lambda: ops._message_prefix("x")),
]


def test_the_fast_path_refuses_nothing_it_cannot_serve():
    """unit_scaling_cpp._C.embedding (src/python_module.cpp) serves plain calls and hands
    every other one back (NotImplemented) to the Python route, which raises or routes."""
    from unit_scaling_cpp import _library
    fast = _library.extension.embedding
    plain = (I, W, None, None, 2.0, False, False, 1.0, None)
    assert torch.equal(fast(*plain), W[I])
    with pytest.raises(TypeError, match="9 positional arguments"):
        fast(I, W)
    odd = [(0, [0]), (1, "w"), (2, True), (2, 1.5), (2, 2**70), (3, True), (3, "1"), (4, None),
           (5, 1), (6, None), (7, False), (8, 2.0), (8, -(2**64))]
    for position, value in odd:
        args = list(plain)
        args[position] = value
        assert fast(*args) is NotImplemented, (position, value)
    with torch.overrides.TorchFunctionMode():
        assert fast(*plain) is NotImplemented
    assert torch.func.vmap(lambda x: torch.tensor(fast(x, *plain[1:]) is NotImplemented))(
        I.view(2, 1)).all()
    with pytest.raises(IndexError, match="index 7 at input"):  # served: the operator's checks
        fast(torch.tensor([7]), *plain[1:])
    with pytest.raises(ValueError, match="padding_idx=9 is out of range"):
        fast(I, W, 9, *plain[3:])


@pytest.mark.parametrize("error,needle,call", [c[1:] for c in RAW_CALLS],
                         ids=[c[0] for c in RAW_CALLS])
def test_raw_operator_errors_have_the_documented_class(error, needle, call):
    with pytest.raises(error, match=needle):
        call()


def test_zero_width_gradient_of_a_huge_table_allocates_nothing_sized_by_it(backend):
    grad = ops.embedding_backward(backend.to(torch.randn(2, 0)), backend.to(I), 2**40)
    assert grad.shape == (2**40, 0)
    with backend.index_errors(), pytest.raises(IndexError, match="index 2 at input"):
        ops.embedding_backward(backend.to(torch.randn(2, 0)), backend.to(I), 2)  # still checked


# --- Meta and FakeTensor kernels reject what eager rejects -------------------------------------

def _meta(t):
    return t.to("meta")


PARITY_CALLS = [
    ("lookup padding", ValueError, "padding_idx=100 is out of range",
     lambda f: ops.embedding_lookup(f(I), f(W), 100)),
    ("backward padding", ValueError, "padding_idx=-100 is out of range",
     lambda f: ops.embedding_backward(f(torch.randn(2, 3)), f(I), 5, -100)),
    ("scaled backward padding row", ValueError, "padding_row=9",
     lambda f: ops._scaled_embedding_backward(f(torch.randn(2, 3)), f(I), 5, 9, 1.0)),
    ("renorm on expanded weight", ValueError, "several elements sharing memory",
     lambda f: ops.embedding_renorm_(f(torch.randn(1, 3)).expand(7, 3), f(I), 1.0, 2.0)),
    ("unrepresentable scale", ValueError, "outside the normal range",
     lambda f: ops.embedding_lookup(f(I), f(W), token_multiplier=1e-300)),
    ("num_tokens <= 0", ValueError, "num_tokens must be > 0",
     lambda f: ops.embedding_lookup(f(I), f(W), num_tokens=0)),
]


@pytest.mark.parametrize("mode", ["cpu", "meta", "fake"])
@pytest.mark.parametrize("error,needle,call", [c[1:] for c in PARITY_CALLS],
                         ids=[c[0] for c in PARITY_CALLS])
def test_meta_and_fake_tensors_reject_what_eager_rejects(mode, error, needle, call):
    if mode == "cpu":
        with pytest.raises(error, match=needle):
            call(lambda t: t)
    elif mode == "meta":
        with pytest.raises(error, match=needle):
            call(_meta)
    else:
        with FakeTensorMode() as fake_mode:
            with pytest.raises(error, match=needle):
                call(fake_mode.from_tensor)


# --- a token count that changes every step compiles once more, not once per value -------------

def test_changing_num_tokens_compiles_at_most_twice_under_fullgraph():
    from torch._dynamo.testing import CompileCounter

    torch.compiler.reset()
    counter = CompileCounter()
    weight = torch.randn(50, 4, requires_grad=True)

    @torch.compile(backend=counter, fullgraph=True)
    def step(tokens, count):
        return ops.embedding(tokens, weight, num_tokens=count)

    tokens = torch.randint(0, 50, (6,))
    for count in range(7, 30):  # more values than the recompile limit (8)
        out = step(tokens, count)
        out.backward(torch.ones_like(out))
        expected = torch.zeros(50, 4).index_add_(0, tokens, torch.ones(6, 4)) * math.sqrt(50 / count)
        torch.testing.assert_close(weight.grad, expected)
        weight.grad = None
    assert counter.frame_count <= 2


def test_a_token_count_from_a_dynamic_dimension_exports():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(40, 8))

        def forward(self, tokens):
            return ops.embedding(tokens, self.weight, num_tokens=tokens.numel() * 2)

    model = Model()
    batch = torch.export.Dim("batch", min=2, max=64)
    exported = torch.export.export(model, (torch.randint(0, 40, (4, 5)),),
                                   dynamic_shapes={"tokens": {0: batch}})
    for rows in (3, 17):
        tokens = torch.randint(0, 40, (rows, 5))
        torch.testing.assert_close(exported.module()(tokens), model(tokens))


# --- the internal backward is differentiable (it was silently not) ----------------------------

def test_scaled_embedding_backward_has_a_correct_gradient_without_warning():
    grad_out = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    tokens = torch.tensor([1, 4, 4, 0, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when an autograd kernel is missing
        result = ops._scaled_embedding_backward(grad_out, tokens, 6, 4, 0.75)
        ggw = torch.randn(6, 3, dtype=torch.float64)
        (g,) = torch.autograd.grad(result, grad_out, ggw)
    expected = ggw[tokens] * 0.75
    expected[tokens == 4] = 0  # padding positions get no gradient
    torch.testing.assert_close(g, expected)
    assert torch.autograd.gradcheck(
        lambda g: ops._scaled_embedding_backward(g, tokens, 6, -1, 0.75), (grad_out,))


# --- what the docs say about rounding, pinned exactly (docs/CONTRACT.md, rules 5 and 8) --------

def _ulps(a, b):
    """Distance in float32 ulps between two float32 tensors of finite values."""
    ia = a.view(torch.int32).to(torch.int64)
    ib = b.view(torch.int32).to(torch.int64)
    ia = torch.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    ib = torch.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return (ia - ib).abs()


def test_float32_gradient_is_the_sum_times_the_float32_scale_rounded_once(backend):
    # Every row looked up at most once: the sum S is the gradient row itself, exactly, so the
    # documented result round32(S * round32(s)) can be computed independently.
    num_rows, dim, count = 1000, 64, 700
    tokens = torch.randperm(num_rows)[:count]
    grad = torch.randn(count, dim)
    weight = backend.to(torch.randn(num_rows, dim)).requires_grad_()
    usc_out = torch.ops.unit_scaling.embedding(backend.to(tokens), weight)
    usc_out.backward(backend.to(grad))
    ours = weight.grad.cpu()[tokens]
    scale = math.sqrt(num_rows / count)
    documented = grad * torch.tensor(scale, dtype=torch.float32)  # float32 multiply
    assert torch.equal(ours, documented)
    correctly_rounded = (grad.double() * scale).float()
    distance = _ulps(ours, correctly_rounded)
    assert distance.max() <= 1
    assert distance.ne(0).any()  # the scale's own rounding shows: "within 1 ulp", not "equal"


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.0, math.inf])
@pytest.mark.parametrize("dim", [16, 768])
def test_max_norm_agrees_with_embedding_renorm(backend, norm_type, dim):
    table = torch.randn(500, dim) * 2  # norms far above the threshold: the same rows rescale
    tokens = torch.randint(0, 500, (300,))
    ours = backend.to(table)
    torch.ops.unit_scaling.embedding_renorm_(ours, backend.to(tokens), 1.0, norm_type)
    theirs = table.clone()
    torch.embedding_renorm_(theirs, tokens, 1.0, norm_type)
    ours = ours.cpu()
    assert torch.equal(ours.ne(table), theirs.ne(table))  # the same rows were rescaled
    # The norm's float32 sum in another order: a relative (D + 2) * 2^-24 at most.
    bound = (dim + 2) * 2.0**-24 * theirs.abs()
    assert ((ours - theirs).abs() <= bound).all()
    if backend.name == "cpu" and norm_type != 2.0:
        assert torch.equal(ours, theirs)  # the same order as ATen's: bit for bit


# --- the Python entry points' argument types ----------------------------------------------------

F = unit_scaling_cpp.functional
TOKENS = torch.tensor([1, 2])

TYPED_CALLS = [
    ("token_multiplier str", TypeError, "token_multiplier must be a float",
     dict(token_multiplier="2")),
    ("token_multiplier None", TypeError, "token_multiplier must be a float",
     dict(token_multiplier=None)),
    ("num_tokens float", TypeError, "num_tokens must be an int", dict(num_tokens=2.5)),
    ("num_tokens whole float", TypeError, "num_tokens must be an int", dict(num_tokens=4.0)),
    ("num_tokens nan", TypeError, "num_tokens must be an int", dict(num_tokens=math.nan)),
    ("num_tokens beyond int64", ValueError, "num_tokens=9223372036854775808 does not fit",
     dict(num_tokens=2**63)),
    ("num_tokens bool", TypeError, "num_tokens must be an int", dict(num_tokens=True)),
    ("padding_idx beyond int64", ValueError, "padding_idx=9223372036854775808 does not fit",
     dict(padding_idx=2**63)),
    ("padding_idx float", TypeError, "padding_idx must be an int", dict(padding_idx=1.0)),
    ("max_norm str", TypeError, "max_norm must be a float", dict(max_norm="1")),
    ("sparse int", TypeError, "sparse must be a bool", dict(sparse=1)),
]


@pytest.mark.parametrize("error,needle,kwargs", [c[1:] for c in TYPED_CALLS],
                         ids=[c[0] for c in TYPED_CALLS])
def test_wrongly_typed_options_raise_type_or_value_errors(error, needle, kwargs):
    weight = torch.randn(7, 3)
    before = weight.clone()
    with pytest.raises(error, match=needle):
        F.embedding(TOKENS, weight, **kwargs)
    assert torch.equal(weight, before)


def test_a_list_as_input_is_a_type_error():
    with pytest.raises(TypeError, match="input must be a Tensor, got list"):
        F.embedding([1, 2], torch.randn(7, 3))
    with pytest.raises(TypeError, match="weight must be a Tensor"):
        F.embedding(TOKENS, [[1.0]])


@pytest.mark.parametrize("kwargs,error,needle", [
    (dict(num_tokens=2.5), TypeError, "num_tokens must be an int"),
    (dict(token_multiplier="2"), TypeError, "token_multiplier must be a float"),
    (dict(token_multiplier=0.0), ValueError, "token_multiplier must be finite and > 0"),
    (dict(num_tokens=4, token_multiplier=2.0), ValueError, "not both"),
    (dict(padding_idx=7), ValueError, "padding_idx=7 is out of range"),
    (dict(max_norm=-1.0), ValueError, "max_norm must be > 0"),
    (dict(norm_type=0.0), ValueError, "norm_type must be > 0"),
    (dict(scale_grad_by_freq=True), ValueError,
     "scale_grad_by_freq=True is not supported by unit scaling"),
    (dict(sparse=True), ValueError, "sparse=True is not supported by unit scaling"),
])
def test_the_module_checks_its_settings_at_construction(kwargs, error, needle):
    with pytest.raises(error, match=needle):
        unit_scaling_cpp.Embedding(7, 3, **kwargs)


def test_the_modules_value_checks_are_the_operators_words():
    # The same ValueError text from the module's construction and from the operator.
    with pytest.raises(ValueError) as module_error:
        unit_scaling_cpp.Embedding(7, 3, token_multiplier=-2.0)
    with pytest.raises(ValueError) as op_error:
        ops.embedding(TOKENS, torch.randn(7, 3), token_multiplier=-2.0)
    assert str(module_error.value).splitlines()[0] == str(op_error.value).splitlines()[0]


def test_from_pretrained_takes_the_token_count():
    table = torch.randn(10, 4)
    for kwargs, count in ((dict(token_multiplier=0.5), 2 * 0.5), (dict(num_tokens=8), 8)):
        module = unit_scaling_cpp.Embedding.from_pretrained(table, freeze=False, **kwargs)
        assert module.weight.requires_grad and module.weight.data_ptr() == table.data_ptr()
        module(TOKENS).sum().backward()
        expected = torch.zeros(10, 4).index_add_(0, TOKENS, torch.ones(2, 4)) * math.sqrt(10 / count)
        torch.testing.assert_close(module.weight.grad, expected)
    assert not unit_scaling_cpp.Embedding.from_pretrained(table).weight.requires_grad
    with pytest.raises(TypeError, match="num_tokens must be an int"):
        unit_scaling_cpp.Embedding.from_pretrained(table, num_tokens=2.5)
    # The C++ modules' check (one home, embedding_table.cpp): ValueError for a Tensor that is
    # not 2-D, TypeError for anything that is not a Tensor; nothing built either way.
    with pytest.raises(ValueError, match=r"from_pretrained's embeddings must be 2-D .* \[3\]"):
        unit_scaling_cpp.Embedding.from_pretrained(torch.randn(3))
    with pytest.raises(TypeError, match="from_pretrained's embeddings must be a Tensor, got list"):
        unit_scaling_cpp.Embedding.from_pretrained([[1.0, 2.0]])


def test_the_sharded_backward_has_the_operators_unit_scale(backend):
    # The vocab-parallel core (src/distributed/vocab_shard_ops.cpp) computes the scale in C++
    # from the global V and token count: on one shard it must be the operator's, bit for bit.
    grad = backend.to(torch.randn(5, 3))
    tokens = backend.to(torch.tensor([0, 4, 4, 2, 6]))
    for rows, multiplier, num_tokens in ((7, 1.0, None), (50257, 0.37, None), (9, 1.0, 11),
                                         (1000, 1 / 3, None), (7, 1.0, 5)):
        ours = ops._vocab_shard_backward(grad, tokens, rows, 0, 1, token_multiplier=multiplier,
                                         num_tokens=num_tokens)
        reference = ops.embedding_backward(grad, tokens, rows, token_multiplier=multiplier,
                                           num_tokens=num_tokens)
        assert torch.equal(ours, reference), (rows, multiplier, num_tokens)
