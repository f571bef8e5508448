"""docs/ARCHITECTURE.md's layers are true: three trees (include/, src/, the Python package), each
listed top to bottom in a code block, every file listed, every file including (importing) only
its own layer and the layers below, and each tree's own rule: public headers never reach into
src/; the kernels are framework-free and the CPU and CUDA kernels never include each other; the
Python package's imports (lazy ones too) go downwards."""
import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARCHITECTURE = (REPO / "docs" / "ARCHITECTURE.md").read_text()


def _blocks():
    """The code blocks of the Layers section."""
    section = ARCHITECTURE.split("## Layers", 1)[1].split("\n## ", 1)[0]
    return section.split("```")[1::2]


def _layers(root):
    """The layers of the block whose lines start with `root`, top (0) to bottom: each a list of
    patterns (an exact path, `stem.*`, or a folder ending in `/`). A line holds one layer: its
    first word and, while words end in a comma, the next ones (relative to the first word's
    folder); `a | b` puts two side by side as one layer (sub-layers that may not include each
    other: the test of that tree says which)."""
    for block in _blocks():
        lines = [line for line in block.splitlines() if line.startswith(root)]
        if not lines:
            continue
        layers = []
        for line in lines:
            tokens = line.split()
            names = [tokens[0]]
            while names[-1].endswith(",") and len(names) < len(tokens):
                names.append(tokens[len(names)])
            if len(tokens) > 2 and tokens[1] == "|":
                names.append(tokens[2])
            base = names[0].rstrip(",")
            folder = base if base.endswith("/") else base.rsplit("/", 1)[0] + "/"
            layer = [base]
            for name in names[1:]:
                name = name.strip(",")
                layer.append(name if name.startswith(root) else folder + name)
            layers.append(layer)
        return layers
    raise AssertionError(f"no layer block for {root} in docs/ARCHITECTURE.md")


def _match(path, pattern):
    """How specifically `pattern` names `path` (0: not at all)."""
    if pattern.endswith("/"):
        return len(pattern) if path.startswith(pattern) else 0
    if pattern.endswith(".*"):
        return 1000 if path.rsplit(".", 1)[0] == pattern[:-2] else 0
    return 2000 if path == pattern else 0


def _layer_of(path, layers):
    """(rank, pattern) of the most specific pattern naming `path`, or None."""
    best = None
    for rank, patterns in enumerate(layers):
        for pattern in patterns:
            score = _match(path, pattern)
            if score and (best is None or score > best[0]):
                best = (score, rank, pattern)
    return None if best is None else best[1:]


def _check_tree(root, files, references):
    """Every file listed; every reference to a file of the tree goes to its layer or below."""
    layers = _layers(root)
    unlisted = [f for f in files if _layer_of(f, layers) is None]
    assert not unlisted, f"files missing from docs/ARCHITECTURE.md's layers: {unlisted}"
    broken = []
    for source in files:
        rank, _ = _layer_of(source, layers)
        for target in references(source):
            target_layer = _layer_of(target, layers)
            if target_layer is not None and target_layer[0] < rank:
                broken.append(f"{source} (layer {rank}) reaches {target} (layer "
                              f"{target_layer[0]})")
    assert not broken, "\n".join(broken)
    return layers


def _sources(folder, suffixes):
    return sorted(p.relative_to(REPO).as_posix() for p in (REPO / folder).rglob("*")
                  if p.suffix in suffixes)


def _includes(path):
    return re.findall(r'#include [<"]([^>"]+)[>"]', (REPO / path).read_text())


def _src_target(source, included):
    """The src/ file a quoted include of `source` names, or None."""
    for candidate in (REPO / "src" / included, (REPO / source).parent / included):
        if candidate.exists():
            return candidate.resolve().relative_to(REPO).as_posix()
    return None


def test_public_headers():
    files = _sources("include/unit_scaling", {".h"})
    _check_tree("include/", files, lambda f: [f"include/{i}" for i in _includes(f)
                                               if i.startswith("unit_scaling/")])
    for header in files:
        for included in _includes(header):
            assert _src_target(header, included) is None or included.startswith("unit_scaling/"), \
                f"{header} includes src/'s {included}"


def test_library():
    files = _sources("src", {".cpp", ".h", ".cu", ".cuh"})
    _check_tree("src/", files, lambda f: [t for i in _includes(f)
                                          if (t := _src_target(f, i)) is not None])


def test_kernels_are_framework_free_and_each_device_keeps_to_itself():
    layers = _layers("src/")
    shared = next(layer for layer in layers if "src/kernels/kernel_types.h" in layer)
    for source in _sources("src/kernels", {".cpp", ".h", ".cu", ".cuh"}):
        cuda = source.startswith("src/kernels/cuda/")
        for included in _includes(source):
            assert not re.match(r"(ATen|c10|torch)/", included), f"{source} includes {included}"
            target = _src_target(source, included)
            if target is None:
                continue  # the standard library, CUB, the CUDA runtime
            assert target.startswith("src/kernels/"), f"{source} includes {target}"
            if target in shared or target.startswith("src/kernels/cuda/") == cuda:
                continue
            raise AssertionError(f"{source} includes {target}: the CPU and CUDA kernels share "
                                 f"only {shared}")


def _imports(path):
    """The package modules a file imports, at module level or inside functions."""
    found = []
    for node in ast.walk(ast.parse((REPO / path).read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [a.name for a in node.names]
            found += [f"python/unit_scaling_cpp/{n}.py" for n in names]
    return found


def test_python_package():
    files = [f for f in _sources("python/unit_scaling_cpp", {".py"})
             if not f.endswith("/_build_info.py")]  # written by the build
    _check_tree("python/unit_scaling_cpp/", files, _imports)


@pytest.mark.parametrize("root", ["include/", "src/", "python/unit_scaling_cpp/"])
def test_every_listed_path_exists(root):
    for layer in _layers(root):
        for pattern in layer:
            path = pattern[:-2] if pattern.endswith(".*") else pattern
            matches = list(REPO.glob(path + ".*")) if pattern.endswith(".*") else \
                [REPO / path] if (REPO / path).exists() else []
            assert matches, f"docs/ARCHITECTURE.md lists {pattern}, which does not exist"
