"""Our module inside Hugging Face transformers (a small GPT-2 built from its config, no download)
and inside plain module trees: ``replace_embeddings`` keeps weights and ties, the loss and
``generate`` are unchanged, the tied weight's gradient is the readout's part plus the unit-scaled
lookup's, a saved model comes back with plain embeddings that the helper swaps again, and
``post_init`` leaves the unit (N(0, 1)) initialisation alone."""
import math

import pytest
import torch
from torch import nn

import unit_scaling_cpp as usc

transformers = pytest.importorskip(
    "transformers", reason="transformers is not installed (scripts/setup.sh installs the pinned "
    "test requirements, requirements-test.txt)")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

V, POSITIONS, D, B, T = 97, 16, 12, 3, 10


def _gpt2(seed=0):
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=V, n_positions=POSITIONS, n_embd=D, n_layer=2, n_head=2,
                        loss_type="ForCausalLMLoss")
    return GPT2LMHeadModel(config).eval()


def _tokens():
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(1))


def test_the_swap_keeps_weights_ties_and_the_parameter_count():
    base, ours = _gpt2(), _gpt2()
    parameters = {id(p) for p in ours.parameters()}
    assert usc.replace_embeddings(ours) is ours
    assert type(ours.transformer.wte) is usc.Embedding and type(ours.transformer.wpe) is usc.Embedding
    assert ours.get_input_embeddings() is ours.transformer.wte
    assert ours.lm_head.weight is ours.transformer.wte.weight  # the tie is kept
    assert {id(p) for p in ours.parameters()} == parameters  # the same Parameter objects
    for a, b in zip(base.state_dict().values(), ours.state_dict().values()):
        assert torch.equal(a, b)


def test_loss_and_generate_are_unchanged():
    base, ours = _gpt2(), usc.replace_embeddings(_gpt2())
    tokens = _tokens()
    assert torch.equal(base(tokens, labels=tokens).loss, ours(tokens, labels=tokens).loss)
    mask = torch.ones_like(tokens)
    generate = dict(attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert torch.equal(base.generate(tokens, **generate), ours.generate(tokens, **generate))


def _scatter(grad, indices, rows):
    """The plain scatter-sum of grad's rows to their indices, in float64."""
    flat = grad.reshape(-1, grad.shape[-1]).double()
    return torch.zeros(rows, grad.shape[-1], dtype=torch.float64).index_add_(
        0, indices.reshape(-1), flat)


def test_the_tied_gradient_is_the_readout_part_plus_the_unit_scaled_lookup():
    base, ours = _gpt2(), usc.replace_embeddings(_gpt2())
    tokens = _tokens()
    captured = {}

    def keep(name):
        def hook(module, inputs, output):
            output.retain_grad()
            captured[name] = (inputs[0], output)
        return hook

    base.transformer.wte.register_forward_hook(keep("wte"))
    base.transformer.wpe.register_forward_hook(keep("wpe"))
    base(tokens, labels=tokens).loss.backward()
    ours(tokens, labels=tokens).loss.backward()

    # The plain model's tied gradient: the readout's part plus the plain scatter of the lookup's.
    indices, looked_up = captured["wte"]
    lookup = _scatter(looked_up.grad, indices, V)
    readout = base.transformer.wte.weight.grad.double() - lookup
    scale = math.sqrt(V / indices.numel())  # the unit scale of the lookup's N = B * T tokens
    torch.testing.assert_close(ours.transformer.wte.weight.grad.double(), readout + scale * lookup,
                               rtol=1e-5, atol=1e-6)
    # The positions: a lookup alone, unit-scaled by its own count.
    positions, looked_up = captured["wpe"]
    torch.testing.assert_close(
        ours.transformer.wpe.weight.grad.double(),
        math.sqrt(POSITIONS / positions.numel()) * _scatter(looked_up.grad, positions, POSITIONS),
        rtol=1e-5, atol=1e-6)


def test_an_optimizer_step_and_the_token_count_pass_through():
    ours = usc.replace_embeddings(_gpt2(), token_multiplier=0.5)
    assert ours.transformer.wte.token_multiplier == 0.5
    optimizer = torch.optim.AdamW(ours.parameters(), lr=1e-2)
    before = ours.transformer.wte.weight.detach().clone()
    tokens = _tokens()
    ours(tokens, labels=tokens).loss.backward()
    optimizer.step()
    assert not torch.equal(before, ours.transformer.wte.weight)
    assert ours.lm_head.weight is ours.transformer.wte.weight


def test_save_and_load_bring_plain_embeddings_back_and_the_swap_again_restores_ours(tmp_path):
    ours = usc.replace_embeddings(_gpt2())
    ours.save_pretrained(tmp_path)
    loaded = GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    assert type(loaded.transformer.wte) is nn.Embedding  # a checkpoint stores tensors, not modules
    usc.replace_embeddings(loaded)
    assert type(loaded.transformer.wte) is usc.Embedding
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    tokens = _tokens()
    assert torch.equal(loaded(tokens).logits, ours(tokens).logits)


def test_post_init_keeps_the_unit_initialisation():
    model = _gpt2()
    model.transformer.wte = usc.Embedding(V, D, padding_idx=3)
    fresh = model.transformer.wte.weight.detach().clone()
    model.post_init()  # every HF constructor calls it; it re-initialises nn.Embedding to N(0, 0.02)
    assert torch.equal(model.transformer.wte.weight, fresh)
    assert 0.8 < fresh.std() < 1.2 and not fresh[3].any()
    assert model.lm_head.weight is model.transformer.wte.weight  # post_init ties them again
    swapped = usc.replace_embeddings(_gpt2())
    loaded = swapped.transformer.wte.weight.detach().clone()
    swapped.post_init()
    assert torch.equal(swapped.transformer.wte.weight, loaded)
    # torch's own re-initialisation of the module still gives the unit scale.
    table = usc.Embedding(4096, 8, padding_idx=0)
    table.weight.data.mul_(0.01)
    table.reset_parameters()
    assert 0.95 < table.weight.std() < 1.05 and not table.weight[0].any()


# --- plain module trees --------------------------------------------------------------------------

class _Scaled(nn.Embedding):
    """A subclass that computes something else: left alone."""

    def forward(self, input):
        return super().forward(input) * 2.0


def test_plain_trees_shared_layers_subclasses_and_a_bare_embedding():
    shared = nn.Embedding(10, 4, padding_idx=-1, max_norm=5.0, norm_type=3.0)
    frozen = nn.Embedding(7, 4).requires_grad_(False)
    scaled = _Scaled(10, 4)
    model = nn.ModuleDict({"a": shared, "b": nn.Sequential(shared, nn.Linear(4, 4)),
                           "c": frozen, "d": scaled}).to(torch.float64)
    weight = shared.weight
    usc.replace_embeddings(model, num_tokens=64)
    new = model["a"]
    assert type(new) is usc.Embedding and model["b"][0] is new  # one replacement, both places
    assert new.weight is weight and new.weight.dtype == torch.float64
    assert (new.padding_idx, new.max_norm, new.norm_type, new.num_tokens) == (9, 5.0, 3.0, 64)
    assert type(model["c"]) is usc.Embedding and not model["c"].weight.requires_grad
    assert model["d"] is scaled
    bare = nn.Embedding(5, 2)
    replaced = usc.replace_embeddings(bare)
    assert type(replaced) is usc.Embedding and replaced.weight is bare.weight
    named = nn.Sequential(nn.Embedding(5, 2), nn.Embedding(5, 2))
    usc.replace_embeddings(named, ["1"])
    assert type(named[0]) is nn.Embedding and type(named[1]) is usc.Embedding


@pytest.mark.parametrize("call,error,needle", [
    (lambda m: usc.replace_embeddings("model"), TypeError, "must be a torch.nn.Module, got str"),
    (lambda m: usc.replace_embeddings(m, ["1"]), TypeError, "1 is Linear, not torch.nn.Embedding"),
    (lambda m: usc.replace_embeddings(m, ["9"]), ValueError, "the model has no module '9'"),
    (lambda m: usc.replace_embeddings(m, "0"), TypeError, "an iterable of qualified module names"),
    (lambda m: usc.replace_embeddings(m, [0]), TypeError, "must be a str, got int"),
    (lambda m: usc.replace_embeddings(m, token_multiplier="2"), TypeError, "token_multiplier"),
    (lambda m: usc.replace_embeddings(m, num_tokens=0), ValueError, "num_tokens must be > 0"),
    (lambda m: usc.replace_embeddings(m), ValueError,
     r"scale_grad_by_freq=True is not supported .*\(layer '2'\)"),
])
def test_bad_input_is_an_error_with_nothing_replaced(call, error, needle):
    model = nn.Sequential(nn.Embedding(5, 2), nn.Linear(2, 2),
                          nn.Embedding(5, 2, scale_grad_by_freq=True))
    layers = list(model)
    with pytest.raises(error, match=f"^unit_scaling embedding: .*{needle}"):
        call(model)
    assert list(model) == layers  # every layer checked before any was replaced
