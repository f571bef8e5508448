"""The options block (src/call_options.h, python/unit_scaling_cpp/_options.py): one block, the
same in every operator's schema and in the Python mirror, passed on unchanged, validated in
full by every operator."""
import dataclasses

import pytest
import torch

import unit_scaling_cpp  # noqa: F401  (registers the operators)
from unit_scaling_cpp._options import Options

ops = torch.ops.unit_scaling
# Every operator whose schema carries the block.
WITH_BLOCK = ["embedding", "embedding_lookup", "embedding_backward", "_embedding_double_backward",
              "_check_embedding", "_check_module_options", "_vocab_shard_lookup",
              "_vocab_shard_backward"]


def _block(name):
    arguments = getattr(ops, name).default._schema.arguments
    first = [a.name for a in arguments].index("padding_idx")
    return arguments[first:first + len(dataclasses.fields(Options))]


@pytest.mark.parametrize("name", WITH_BLOCK)
def test_every_operator_has_the_python_mirrors_block(name):
    block = _block(name)
    fields = dataclasses.fields(Options)
    assert [a.name for a in block] == [f.name for f in fields]
    assert [a.default_value for a in block] == [f.default for f in fields]
    assert [a.kwarg_only for a in block] == [f.name in ("token_multiplier", "num_tokens")
                                             for f in fields]
    assert str([a.type for a in block]) == str([a.type for a in _block("embedding")])


def test_no_other_operator_takes_part_of_the_block():
    names = {f.name for f in dataclasses.fields(Options)} - {"max_norm", "norm_type"}
    for name in dir(ops):
        packet = getattr(ops, name)
        if name in WITH_BLOCK or not hasattr(packet, "default"):
            continue
        assert not names & {a.name for a in packet.default._schema.arguments}, name


def test_call_passes_the_block_in_schema_order():
    seen = {}

    def op(*args, **kwargs):
        seen.update(args=args, kwargs=kwargs)

    Options(3, 1.5, 1.0, False, False, 0.5, None).call(op, "a", "b", scale=2.0)
    assert seen == {"args": ("a", "b", 3, 1.5, 1.0, False, False),
                    "kwargs": {"token_multiplier": 0.5, "num_tokens": None, "scale": 2.0}}


@pytest.mark.parametrize("field,value,error", [
    ("padding_idx", 1.0, TypeError), ("padding_idx", True, TypeError),
    ("max_norm", "1", TypeError), ("norm_type", None, TypeError),
    ("scale_grad_by_freq", 1, TypeError), ("sparse", None, TypeError),
    ("token_multiplier", True, TypeError), ("num_tokens", 2.0, TypeError),
    ("num_tokens", 2**64, ValueError)])
def test_check_types_names_the_field(field, value, error):
    with pytest.raises(error, match=f"^unit_scaling embedding: {field}"):
        Options(**{field: value}).check_types()


@pytest.mark.parametrize("name", ["embedding_lookup", "embedding_backward",
                                  "_embedding_double_backward", "_check_embedding"])
@pytest.mark.parametrize("options,needle", [
    (dict(scale_grad_by_freq=True), "scale_grad_by_freq=True is not supported"),
    (dict(sparse=True), "sparse=True is not supported"),
    (dict(max_norm=-1.0), "max_norm must be > 0"),
    (dict(norm_type=0.0), "norm_type must be > 0"),
    (dict(padding_idx=7), "padding_idx=7 is out of range"),
    (dict(token_multiplier=0.0), "token_multiplier must be finite and > 0"),
    (dict(num_tokens=3, token_multiplier=2.0), "not both")])
def test_every_operator_checks_the_whole_block(name, options, needle):
    """The same words from each operator, whether or not it acts on the field."""
    weight, tokens = torch.randn(7, 2), torch.tensor([1, 2])
    leading = {"embedding_lookup": (tokens, weight), "_check_embedding": (tokens, weight),
               "embedding_backward": (torch.randn(2, 2), tokens, 7),
               "_embedding_double_backward": (weight, tokens)}[name]
    with pytest.raises(ValueError, match=needle):
        Options(**options).call(getattr(ops, name), *leading)
