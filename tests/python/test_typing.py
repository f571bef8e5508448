"""The package is typed (PEP 561): it ships py.typed, a type checker accepts it with every
function annotated, and accepts the documentation's Python examples as they are written."""
import subprocess
import sys
from pathlib import Path

import pytest

import unit_scaling_cpp

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "downstream"))
import doc_blocks  # noqa: E402

# The reference library ships no type information: the examples' imports of it are unchecked;
# transformers' own sources are not analysed (minutes of work for nothing of ours).
CONFIG = """[mypy]
disallow_untyped_defs = False
[mypy-unit_scaling.*]
ignore_missing_imports = True
[mypy-transformers.*]
follow_imports = skip
"""


def _mypy(tmp_path, *targets, strict=False):
    config = tmp_path / "mypy.ini"
    config.write_text(CONFIG)
    command = [sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir",
               str(tmp_path / "cache"), "--no-color-output"]
    if strict:
        command.append("--disallow-untyped-defs")
    done = subprocess.run(command + list(targets), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_package_ships_py_typed():
    assert (Path(unit_scaling_cpp.__file__).parent / "py.typed").is_file()


def test_a_type_checker_accepts_the_package_and_the_examples(tmp_path):
    examples = tmp_path / "examples"
    examples.mkdir()
    blocks = [b for b in doc_blocks.all_blocks(REPO)
              if b.language == "python" and "skip-doctest" not in b.flags]
    assert blocks
    for i, block in enumerate(blocks):
        (examples / f"example_{i}.py").write_text(f"# {block.name}\n{block.code}")
    _mypy(tmp_path, "-p", "unit_scaling_cpp", strict=True)
    _mypy(tmp_path, str(examples))
