"""Doc-tests: every code block of README.md and docs/*.md (conventions: tests/README.md).

- python: run as written, each block alone in a fresh interpreter (launch=N: under torchrun
  with N processes; cuda: skipped without a GPU; skip-doctest: not run).
- cpp: compiled together, one translation unit, against the installed package and run by the
  ctest `downstream_find_package` (tests/downstream/run_downstream_test.cmake); here only parsed.
- cmake: every line is one of tests/downstream/CMakeLists.txt, the project that test builds.
- sh: not run (they install, build for minutes or run the whole suite); checked statically:
  bash syntax, the repository paths and scripts they name exist, every -D option is one the
  build defines, every pip install of the clone uses --no-build-isolation; and the build
  backend's refusal of an isolated build is run for real.
- Numbers in prose that summarise a table (docs/PERFORMANCE.md, README.md) are recomputed from it.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "downstream"))
import doc_blocks  # noqa: E402

BLOCKS = doc_blocks.all_blocks(REPO)


def blocks_of(language):
    return [pytest.param(b, id=b.name) for b in BLOCKS if b.language == language]


def test_every_block_has_a_known_language_and_the_cpp_unit_generates():
    assert {b.language for b in BLOCKS} <= doc_blocks.LANGUAGES
    assert any(b.language == "python" for b in BLOCKS)
    cpp = [b for b in BLOCKS if b.language == "cpp" and "skip-doctest" not in b.flags]
    source = doc_blocks.cpp_translation_unit(cpp)
    assert source.count("namespace doc_block_") >= 2 * len(cpp)


@pytest.mark.parametrize("block", blocks_of("python"))
def test_python_block(block, tmp_path):
    if "skip-doctest" in block.flags:
        pytest.skip("marked skip-doctest")
    if "cuda" in block.flags and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    script = tmp_path / "block.py"
    script.write_text(block.code)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in [os.environ.get("PYTHONPATH", "")] + sys.path if p))
    if block.launch > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={block.launch}", str(script)]
        env["OMP_NUM_THREADS"] = "1"
    else:
        command = [sys.executable, str(script)]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"{block.name} failed:\n{result.stdout}\n{result.stderr}"


def cmake_lines(text):
    lines = (re.sub(r"#.*", "", line).split() for line in text.splitlines())
    return {" ".join(words) for words in lines if words}


@pytest.mark.parametrize("block", blocks_of("cmake"))
def test_cmake_block_is_what_the_downstream_project_uses(block):
    downstream = cmake_lines((REPO / "tests" / "downstream" / "CMakeLists.txt").read_text())
    missing = cmake_lines(block.code) - downstream
    assert not missing, f"{block.name}: not in tests/downstream/CMakeLists.txt: {missing}"


def defined_cmake_options():
    names = set()
    for path in [REPO / "CMakeLists.txt", *(REPO / "cmake").glob("*.cmake")]:
        names |= set(re.findall(r"option\((\w+)", path.read_text()))
    return names


def shell_commands(code):
    return [line for line in code.replace("\\\n", " ").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("block", blocks_of("sh"))
def test_shell_block_statically(block):
    bash = shutil.which("bash")
    syntax = subprocess.run([bash, "-n"], input=block.code, capture_output=True, text=True)
    assert syntax.returncode == 0, f"{block.name}: {syntax.stderr}"
    options = defined_cmake_options()
    for command in shell_commands(block.code):
        words = shlex.split(re.sub(r"#.*", "", command))
        for word in words:
            path = word.split("=", 1)[-1]
            if re.match(r"^(scripts|tests|tools|docs|bench|examples|cmake|python)/", path):
                assert (REPO / path).exists(), f"{block.name}: {path} does not exist"
            option = re.match(r"^-D(UNIT_SCALING_\w+)=", word)
            if option:
                assert option.group(1) in options, f"{block.name}: no option {option.group(1)}"
        if words and words[0].endswith("pip") and "install" in words and "." in words:
            assert "--no-build-isolation" in words, f"{block.name}: {command}"


def test_readme_install_names_what_the_scripts_run():
    readme = (REPO / "README.md").read_text()
    test_sh = (REPO / "scripts" / "test.sh").read_text()
    assert "pip install -q --no-build-isolation" in test_sh
    assert "exec bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()
    for command in ("scripts/report.sh", "scripts/test.sh", "scripts/setup.sh",
                    "scripts/gpu_check.py"):
        assert command in readme and (REPO / command).exists()
    required = re.search(r'"scikit-build-core==([\d.]+)"', (REPO / "pyproject.toml").read_text())
    assert f"scikit-build-core=={required.group(1)}" in readme


def test_an_isolated_build_stops_with_what_to_run():
    """The backend's wheel hook where torch cannot be found (what pip's isolation gives)."""
    code = ("import sys; sys.modules['torch'] = None; sys.path.insert(0, sys.argv[1]); "
            "import unit_scaling_build; unit_scaling_build.get_requires_for_build_wheel()")
    result = subprocess.run([sys.executable, "-c", code, str(REPO / "python" / "build_backend")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "no torch in the build environment" in result.stderr
    assert "pip install --no-build-isolation ." in result.stderr


# ---- numbers in prose, recomputed from the tables they summarise ----------------------------

def performance_rows():
    text = (REPO / "docs" / "PERFORMANCE.md").read_text()
    section = text.split("## Results (CPU)")[1].split("targets missed")[0]
    lines = [l for l in section.splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [c.strip().replace(" ✗", "") for c in line.strip("|").split("|")]
        rows.append(dict(zip(header, cells)))
    return text, rows


def span(rows, column):
    values = [float(r[column]) for r in rows]
    return f"{min(values):.2f}–{max(values):.2f}×"


def test_performance_prose_matches_its_table():
    text, rows = performance_rows()
    readme = (REPO / "README.md").read_text()
    assert re.search(r"machine: 2 CPUs @ (\d+) MHz", text).group(1) in text.split("## ")[0]
    where = lambda **kw: [r for r in rows if all(r[k] in v for k, v in kw.items())]  # noqa
    big = ("gpt2", "llama", "bigvocab")
    claims = {
        # README: the backward against the reference library's path, every row.
        "README backward": (readme, span(rows, "bwd ours/aten")),
        "f32 target": (text, "met everywhere: " + span(
            where(shape=big, dtype=("f32",)), "bwd ours/aten")),
        "bf16 target": (text, "all shapes: " + span(where(dtype=("bf16",)), "bwd ours/aten")),
        "floor, big vocab t1": (text, "big vocab " + span(
            where(shape=("bigvocab",), threads=("t1",)), "bwd ours/floor")),
        "floor, Llama t1": (text, "Llama " + span(
            where(shape=("llama",), threads=("t1",)), "bwd ours/floor")),
        "floor, GPT-2 t1": (text, "GPT-2 " + span(
            where(shape=("gpt2",), threads=("t1",)), "bwd ours/floor")),
        "small vs floor": (text, "Small-table backward vs floor (" + span(
            where(shape=("small",)), "bwd ours/floor")),
        "small vs ATen": (text, "Still " + span(where(shape=("small",)), "bwd ours/aten")),
        "forward vs floor": (text, "(uniform GPT-2 / big vocab, " + span(
            where(shape=("gpt2", "bigvocab"), indices=("uniform",)), "fwd ours/floor")),
        "Llama forward": (text, "Llama " + span(where(shape=("llama",)), "fwd ours/aten")),
        "other forwards": (text, "elsewhere " + span(
            where(shape=("gpt2", "bigvocab", "small")), "fwd ours/aten")),
    }
    for name, (document, claim) in claims.items():
        assert claim in document, f"{name}: the table gives '{claim}'"
    # The precision table's ratios, quoted in PERFORMANCE.md and README.md.
    ratios = [float(x) for x in re.findall(r"\| (\d+\.\d) \|\n", text)]
    quoted = f"{int(min(ratios))}–{int(max(ratios))}×"
    assert quoted in text and quoted in readme


def test_decode_table_is_complete_meets_its_target_and_matches_its_prose():
    text = (REPO / "docs" / "PERFORMANCE.md").read_text()
    section = text.split("## Decode sizes")[1].split("\n## ")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith(("| functional", "| module"))]
    assert sorted((r[0], r[1], r[2]) for r in rows) == sorted(
        (call, tokens, grad) for call in ("functional", "module") for tokens in ("1", "8", "64")
        for grad in ("no", "yes"))
    ratios = [float(r[5]) for r in rows]
    assert max(ratios) <= 1.10
    assert f"{min(ratios):.2f}–{max(ratios):.2f}×" in section
    readme = (REPO / "README.md").read_text()
    assert f"{min(ratios):.2f}–{max(ratios):.2f}×" in readme
    reference = [float(r[7].rstrip("×")) for r in rows]
    assert f"{int(min(reference)):,}–{int(max(reference)):,}×" in readme


def test_readme_stays_a_newcomers_page():
    assert len((REPO / "README.md").read_text().splitlines()) <= 250


def test_reliability_quotes_torchs_own_message():
    """docs/RELIABILITY.md quotes the schema parser's message for a wrongly typed argument."""
    import unit_scaling_cpp  # noqa: F401  (registers the operators)
    quoted = re.search(r'"(Expected a value of type) \.\.\."',
                       (REPO / "docs" / "RELIABILITY.md").read_text()).group(1)
    with pytest.raises(RuntimeError, match=re.escape(quoted)):
        torch.ops.unit_scaling.embedding(torch.tensor([1]), torch.randn(3, 2), "x")


# Every text that describes the CUDA index-check policy: it says which build the policy applies
# to (the CUDA backend's) and what the default build does (IndexError).
POLICY_TEXTS = ["README.md", "docs/API.md", "docs/CONTRACT.md", "docs/DEVICES.md",
                "docs/RELIABILITY.md", "include/unit_scaling/functional.h",
                "include/unit_scaling/index_check_policy.h", "python/unit_scaling_cpp/__init__.py",
                "python/unit_scaling_cpp/_index_checks.py", "python/unit_scaling_cpp/functional.py"]


def _words(path):
    return " ".join(re.sub(r"(//|#)", " ", (REPO / path).read_text()).split())


def test_every_text_on_the_policy_is_listed():
    described = sorted(p.relative_to(REPO).as_posix()
                       for folder in ("docs", "include", "python")
                       for p in (REPO / folder).rglob("*") if p.suffix in (".md", ".h", ".py")
                       if re.search(r"device-side assertion|device_assert", p.read_text()))
    described += ["README.md"] if "device-side assertion" in _words("README.md") else []
    assert sorted(set(described)) == sorted(POLICY_TEXTS)


@pytest.mark.parametrize("path", POLICY_TEXTS)
def test_the_policy_names_its_build_and_the_default_builds_behaviour(path):
    words = _words(path)
    assert "-DUNIT_SCALING_CUDA=ON" in words, path
    assert re.search(r"default build[^.]*(IndexError|ATen fallback)|IndexError[^.]*default build",
                     words), path


def test_the_default_build_is_the_fallback():
    """What the texts above say of the default build: CMake's default is OFF, the package's
    build keeps it, and this library answers cuda_backend_compiled() as its dispatcher does."""
    import unit_scaling_cpp as usc
    cmake = (REPO / "cmake" / "UnitScalingCuda.cmake").read_text()
    assert 'set(UNIT_SCALING_CUDA OFF CACHE STRING' in cmake
    assert "UNIT_SCALING_CUDA" not in (REPO / "pyproject.toml").read_text()
    assert usc.cuda_backend_compiled() == torch._C._dispatch_has_kernel_for_dispatch_key(
        "unit_scaling::embedding_lookup", "CUDA")
