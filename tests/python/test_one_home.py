"""One home per rule: docs/ARCHITECTURE.md's table of homes is true, each rule's words stand in
its home alone, and the Python package restates no rule (it routes calls; the C++ library
decides).

Source text is read without comments and docstrings, so prose may name a rule anywhere."""
import io
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = [p for folder in ("src", "include", "python", "tools")
           for p in sorted((REPO / folder).rglob("*"))
           if p.suffix in {".cpp", ".h", ".cu", ".cuh", ".py"}]


def _code(path: Path) -> str:
    """The file without its comments (C++ `//` and `/* */`, Python `#`) and Python docstrings."""
    text = path.read_text()
    if path.suffix != ".py":
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        return "\n".join(_cut_cpp_comment(line) for line in text.splitlines())
    kept, previous = [], tokenize.INDENT
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        docstring = token.type == tokenize.STRING and previous in (
            tokenize.INDENT, tokenize.NEWLINE, tokenize.DEDENT)
        if token.type not in (tokenize.COMMENT, tokenize.NL) and not docstring:
            kept.append(token.string)
        if token.type not in (tokenize.NL, tokenize.COMMENT):
            previous = token.type
    return " ".join(kept)


def _cut_cpp_comment(line: str) -> str:
    """The line up to a `//` that is not inside a string literal."""
    in_string = False
    for i, c in enumerate(line):
        if c == '"' and (i == 0 or line[i - 1] != "\\"):
            in_string = not in_string
        elif not in_string and line.startswith("//", i):
            return line[:i]
    return line


CODE = {p.relative_to(REPO).as_posix(): _code(p) for p in SOURCES}


def _homes():
    """(rule, [(function, path)]) of each row of the table."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    table = text.split("## Where each rule lives", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("#", "---"):
            continue
        pairs = []
        for part in cells[2].split(";"):
            match = re.search(r"((?:`\w+`(?:, )?)+) in `([\w/.]+)`", part)
            if match:
                pairs += [(f, match.group(2)) for f in re.findall(r"`(\w+)`", match.group(1))]
        rows.append((cells[1], pairs))
    return rows


def test_every_row_of_the_table_names_a_home():
    rows = _homes()
    assert len(rows) >= 18
    assert all(pairs for _, pairs in rows), [rule for rule, pairs in rows if not pairs]


@pytest.mark.parametrize("rule,pairs", _homes(), ids=[rule[:40] for rule, _ in _homes()])
def test_each_home_defines_its_function(rule, pairs):
    for function, path in pairs:
        assert path in CODE, f"{rule}: {path} is not a source file"
        # A definition, not a call: the name then its parameters, then a body or an initialiser.
        definition = re.compile(rf"\b{function}\b(\s*\([^;{{]*\)\s*(const\s*)?\{{|\s*=|\s*\{{|"
                                rf"<)", re.S)
        assert definition.search(CODE[path]), f"{rule}: {function} is not defined in {path}"


# Words (regular expressions) that carry one rule each, and the one file they may stand in
# (code only).
WORDS = {
    r"is not supported by unit scaling": "src/embedding_checks.cpp",  # rule 10
    r"<= padding_idx <": "src/embedding_checks.cpp",  # rule 4: the range
    r"padding_idx\s*<\s*0": "src/embedding_checks.cpp",  # rule 4: the wrap
    r"max_norm must be > 0": "src/embedding_checks.cpp",  # rule 5
    r"norm_type must be > 0": "src/embedding_checks.cpp",
    r"every index must satisfy": "src/kernels/messages.h",  # rule 3: the sentence
    r'"unit_scaling ': "src/kernels/messages.h",  # rule 11: the prefix
    r"both must be on the same device": "src/embedding_checks.cpp",  # rule 12
    # rule 7: the unit scale, sqrt of rows over tokens
    r"sqrt\W+(static_cast<double>\()?\(?\s*(options\.)?(vocab|num_rows|num_weights|rows)\b|"
    r"SymFloat\(num_rows\)": "src/unit_scale.cpp",
    r"kFloat64 \? DType::kFloat64": "src/kernels/kernel_types.h",  # rule 8: accumulation
    r"case at::kBFloat16": "src/dtypes.h",  # rule 2: the dtype list
    r"give num_tokens or token_multiplier, not both": "src/embedding_checks.cpp",
    r"num_embeddings and embedding_dim must be >= 0": "src/embedding_table.cpp",
    r"must be 2-D \(num_embeddings, embedding_dim\), got shape": "src/embedding_table.cpp",
    r"'device_assert' or 'raise'": "src/index_check_policy.cpp",
    r"\(num_rows \+ \(num_shards - 1\)\) / num_shards": "src/distributed/vocab_shard_ops.cpp",
}


@pytest.mark.parametrize("words", sorted(WORDS))
def test_the_words_of_a_rule_stand_in_its_home_alone(words):
    found = sorted(path for path, code in CODE.items() if re.search(words, code))
    home = WORDS[words]
    assert found == ([home] if home else []), f"{words!r} in {found}"


# No unit scale, padding wrap or option rule in Python: the forms they would take.
PYTHON_RULES = [
    r"\bsqrt\b", r"\*\*\s*0?\.5", r"\bisinf\b", r"\bisfinite\b", r"\bisnan\b",
    r"padding_idx\s*[-+%<>]", r"[-+%]\s*padding_idx", r"%\s*(rows|num_weights|num_embeddings)\b",
    r"\b(max_norm|norm_type|token_multiplier|num_tokens|num_embeddings|embedding_dim|scale)"
    r"\s*(<|>|<=|>=)\s*\d", r"\bnot\s+(max_norm|norm_type|token_multiplier)\s*>",
    r"\binf\s*\*\s*0", r"masked_fill",
]


@pytest.mark.parametrize("path", sorted(p for p in CODE if p.startswith("python/")))
def test_python_restates_no_rule(path):
    hits = [pattern for pattern in PYTHON_RULES if re.search(pattern, CODE[path])]
    assert not hits, f"{path}: {hits}"
