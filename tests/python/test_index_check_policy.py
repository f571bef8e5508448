"""The CUDA index-check policy's Python API (``unit_scaling_cpp._index_checks``): names, the
context manager, the environment variable and the error classes. Runs without a GPU (the
setting is plain state); what each policy does on CUDA is pinned by test_cuda_runtime.py."""
import os
import re
import subprocess
import sys

import pytest
import torch

import backend_axis
import unit_scaling_cpp as usc


def test_default_set_and_restore():
    assert usc.get_index_check_policy() == "device_assert"
    with usc.index_check_policy("raise"):
        assert usc.get_index_check_policy() == "raise"
        with usc.index_check_policy("device_assert"):
            assert usc.get_index_check_policy() == "device_assert"
        assert usc.get_index_check_policy() == "raise"
    assert usc.get_index_check_policy() == "device_assert"
    assert usc.set_index_check_policy("raise") == "device_assert"
    assert usc.set_index_check_policy("device_assert") == "raise"


def test_restored_after_an_exception():
    with pytest.raises(KeyError):
        with usc.index_check_policy("raise"):
            raise KeyError
    assert usc.get_index_check_policy() == "device_assert"


@pytest.mark.parametrize("bad,error,needle", [
    ("Raise", ValueError, "must be 'device_assert' or 'raise', got 'Raise'"),
    ("", ValueError, "must be 'device_assert' or 'raise', got ''"),
    (1, TypeError, "policy must be a str, got int 1"),
    (None, TypeError, "policy must be a str, got NoneType None")])
def test_bad_policy_names(bad, error, needle):
    # The names are the library's (ValueError from C++); Python adds the TypeError of a non-str.
    with pytest.raises(error, match=f"^unit_scaling index_check_policy: .*{re.escape(needle)}"):
        usc.set_index_check_policy(bad)
    with pytest.raises(ValueError, match="got 'sometimes'"):  # the operator checks too
        torch.ops.unit_scaling._set_index_check_policy("sometimes")
    assert usc.get_index_check_policy() == "device_assert"


def test_cpu_tensors_raise_under_either_policy():
    weight = torch.randn(5, 2)
    for policy in ("device_assert", "raise"):
        with usc.index_check_policy(policy), pytest.raises(IndexError, match="index 5 at input"):
            usc.functional.embedding(torch.tensor([5]), weight)


def test_the_fallback_raises_under_either_policy():
    """What the default build does with CUDA tensors (the ATen fallback: one read back, then
    IndexError), reached on CPU tensors through the fallback route, forward, max_norm and
    backward, with the weight unchanged."""
    weight = torch.randn(5, 2, requires_grad=True)
    before = weight.detach().clone()
    with backend_axis.AtenFallbackRoute() as route:
        for policy in ("device_assert", "raise"):
            with usc.index_check_policy(policy):
                for call in (lambda: usc.functional.embedding(torch.tensor([1, 5]), weight),
                             lambda: usc.functional.embedding(torch.tensor([1, 5]), weight,
                                                              max_norm=0.1),
                             lambda: torch.ops.unit_scaling.embedding_backward(
                                 torch.ones(2, 2), torch.tensor([1, 5]), 5)):
                    with pytest.raises(IndexError, match="index 5 at input"):
                        call()
        assert route.calls["embedding_lookup"] >= 2 and route.calls["embedding_backward"] >= 2
    assert torch.equal(weight.detach(), before)


def _policy_in_child(value):
    env = dict(os.environ)
    env["UNIT_SCALING_INDEX_CHECKS"] = value
    program = ("import unit_scaling_cpp as usc\n"
               "try:\n"
               "    print('POLICY', usc.get_index_check_policy())\n"
               "except ValueError as e:\n"
               "    print('ERROR', e)\n")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_environment_variable():
    assert _policy_in_child("raise") == "POLICY raise"
    assert _policy_in_child("device_assert") == "POLICY device_assert"
    assert _policy_in_child("") == "POLICY device_assert"
    out = _policy_in_child("always")
    assert out.startswith("ERROR") and "UNIT_SCALING_INDEX_CHECKS='always'" in out
