"""The reference library's own pytest suite (shipped in its wheel as unit_scaling/tests), run
twice: as it is, and with its embedding replaced by ours (plugins/unit_scaling_cpp_swap.py).
The swap must add no failure. Left out: test_analysis.py, which needs `transformers` (and a
tokenizer download), neither available here."""
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

unit_scaling = pytest.importorskip("unit_scaling")

SUITE = Path(unit_scaling.__file__).parent / "tests"
LEFT_OUT = ["test_analysis.py"]
PLUGINS = Path(__file__).parent / "plugins"


def _run_suite(tmp_path, name, extra_args):
    report = tmp_path / f"{name}.xml"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(PLUGINS)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    command = [sys.executable, "-m", "pytest", str(SUITE), "-p", "no:cacheprovider", "-q", "-s",
               "-W", "ignore", f"--junitxml={report}", "--rootdir", str(SUITE),
               "-c", os.devnull, *extra_args]
    command += [f"--ignore={SUITE / f}" for f in LEFT_OUT]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=900)
    assert report.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    cases = ElementTree.parse(report).getroot().iter("testcase")
    outcome = {}
    for case in cases:
        key = f"{case.get('classname')}::{case.get('name')}"
        bad = case.find("failure") is not None or case.find("error") is not None
        outcome[key] = "failed" if bad else "passed"
    return outcome, result.stdout


def test_swapping_in_our_embedding_adds_no_failure(tmp_path):
    plain, _ = _run_suite(tmp_path, "plain", [])
    swapped, output = _run_suite(tmp_path, "swapped", ["-p", "unit_scaling_cpp_swap"])
    assert "unit_scaling_cpp swap active" in output
    assert len(plain) > 100 and set(swapped) == set(plain)  # the same tests ran
    added = sorted(k for k, v in swapped.items() if v == "failed" and plain[k] != "failed")
    assert not added, f"failures that only the swap causes: {added}"
    # The tests that exercise the swapped code ran and passed.
    for key in ["test_modules::test_embedding", "test_modules::test_transformer_decoder",
                "test_functional::test_embedding"]:
        matches = [k for k in swapped if k.endswith(key.split("::")[1]) and key.split("::")[0] in k]
        assert matches and all(swapped[k] == "passed" for k in matches), key
    assert any("test_scaled_parameters" in k for k in swapped)
