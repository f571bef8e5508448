"""The unit-scaling-report binary: outputs, figures, token files and bad arguments."""
import csv
import math
import os
import re
import struct
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("UNIT_SCALING_REPORT",
                             REPO / "build" / "tools" / "unit-scaling-report"))
SMALL = ["--vocab", "4096", "--dim", "32", "--tokens", "4x256", "--dist", "uniform"]


def run(*args, timeout=300):
    assert BINARY.exists(), f"build the project first: {BINARY} is missing"
    return subprocess.run([str(BINARY), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def read_csv(folder):
    with open(folder / "report.csv", newline="") as f:
        return {(r["section"], r["item"], r["variant"]): r["value"] for r in csv.DictReader(f)}


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_small_run_writes_csv_and_figures(tmp_path):
    out = tmp_path / "report"
    result = run(*SMALL, "--seed", "3", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "scale sqrt(V/N) = 2.0000" in result.stdout
    rows = read_csv(out)
    n, v = 1024, 4096
    assert abs(float(rows[("summary", "grad_std", "unit_scaled")]) - 1) < 0.1
    # The default plain loss is a mean over the N tokens: grad_out = r / N.
    plain = float(rows[("summary", "grad_std", "plain")])
    assert abs(plain / (math.sqrt(n / v) / n) - 1) < 0.1
    assert rows[("config", "plain_loss", "")] == "mean"
    assert float(rows[("summary", "scale", "")]) == pytest.approx(2.0)
    for fmt in ("float16", "bfloat16", "e4m3", "e5m2"):
        for item in ("flush_to_zero", "subnormal", "saturated", "relative_error"):
            assert 0 <= float(rows[(f"format:{fmt}", item, "unit_scaled")]) <= 1
    sweep = [(int(s.split(":")[1]), float(val)) for (s, item, var), val in rows.items()
             if s.startswith("sweep:") and var == "unit_scaled"]
    assert [k for k, _ in sorted(sweep)] == [2 ** e for e in range(8, 21)]
    assert all(abs(std - 1) < 0.1 for _, std in sweep)
    for name in ("histogram", "sweep"):
        assert png_size(out / f"{name}.png") == (1000, 600)
        assert "<svg" in (out / f"{name}.svg").read_text()[:500]
    assert not list(out.glob(".*.tmp"))


def test_no_plots_writes_only_the_csv(tmp_path):
    out = tmp_path / "r"
    result = run(*SMALL, "--no-plots", "--formats", "e4m3", "--padding-idx", "-1", "--out", out)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["report.csv"]
    rows = read_csv(out)
    assert ("format:e4m3", "saturated", "plain") in rows
    assert ("format:float16", "saturated", "plain") not in rows


def test_help():
    result = run("--help")
    assert result.returncode == 0
    for option in ("--vocab", "--dim", "--tokens", "--dist", "--dtype", "--padding-idx", "--seed",
                   "--threads", "--formats", "--out", "--no-plots", "--token-type",
                   "--plain-loss"):
        assert option in result.stdout


def write_tokens(path, tokens, kind):
    if kind == "uint16":
        path.write_bytes(struct.pack(f"<{len(tokens)}H", *tokens))
    elif kind == "int32":
        path.write_bytes(struct.pack(f"<{len(tokens)}i", *tokens))
    else:  # llm.c shard: 256 int32 header (magic, version, count), then uint16 tokens
        header = [20240520, 1, len(tokens)] + [0] * 253
        path.write_bytes(struct.pack("<256i", *header) + struct.pack(f"<{len(tokens)}H", *tokens))


@pytest.mark.parametrize("kind", ["uint16", "llmc", "int32"])
def test_token_files(tmp_path, kind):
    tokens = [(i * 37) % 1000 for i in range(200)]
    path = tmp_path / f"tokens.{kind}"
    write_tokens(path, tokens, kind)
    extra = ["--token-type", "int32"] if kind == "int32" else []
    out = tmp_path / "out"
    result = run("--vocab", "1000", "--dim", "16", "--tokens", "2x64", "--dist", f"file:{path}",
                 *extra, "--no-plots", "--out", out)
    assert result.returncode == 0, result.stderr
    rows = read_csv(out)
    # The rows that received gradient are exactly the distinct tokens among the first 128.
    assert float(rows[("summary", "rows_with_gradient", "")]) == len(set(tokens[:128]))


BAD = [
    (["--bogus"], "unknown option"),
    (["--vocab", "0"], "--vocab"),
    (["--dim", "abc"], "--dim"),
    (["--tokens", "8x0"], "--tokens"),
    (["--tokens", "8"], "--tokens"),
    (["--dist", "file:/nonexistent/tokens.bin"], "cannot read"),
    (["--formats", "e4m3,fp4"], "fp4"),
    (["--dist", "zipf:abc"], "--dist"),
    (["--padding-idx", "50257"], "--padding-idx"),
    (["--tokens", "4294967296x4294967296"], "--tokens"),
    (["--tokens", "3037000500x3037000500"], "--tokens"),
    (["--vocab", "4611686018427387904", "--dim", "4"], "int64"),
    (["--threads", "4294967297"], "--threads"),
    (["--threads", "5000"], "--threads"),
    (["--plain-loss", "none"], "--plain-loss"),
]


@pytest.mark.parametrize("args,needle", BAD)
def test_bad_arguments_exit_2_and_write_nothing(tmp_path, args, needle):
    out = tmp_path / "out"
    result = run(*args, "--out", out)
    assert result.returncode == 2
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("value", ["100", "-101", "99999999999999"])
def test_padding_idx_outside_the_vocabulary_is_the_librarys_error(tmp_path, value):
    """The library checks --padding-idx (functional::check_options): outside [-V, V) the tool
    exits with status 2 and one line, "--padding-idx: " then the library's message, which names
    the value and V."""
    out = tmp_path / "out"
    result = run("--vocab", "100", "--dim", "4", "--padding-idx", value, "--out", out)
    assert result.returncode == 2
    line, = result.stderr.splitlines()
    prefix = "unit-scaling-report: --padding-idx: "
    assert line.startswith(prefix), line
    named = [int(n) for n in re.findall(r"-?\d+", line[len(prefix):])]
    assert int(value) in named and 100 in named, line
    assert not out.exists()


def test_bad_token_file_contents(tmp_path):
    out = tmp_path / "out"
    big = tmp_path / "big.bin"
    write_tokens(big, [1, 2, 3, 60000, 4, 5, 6, 7], "uint16")
    result = run("--vocab", "1000", "--tokens", "2x4", "--dist", f"file:{big}", "--out", out)
    assert result.returncode == 2
    assert "token 60000 at position 3" in result.stderr
    short = tmp_path / "short.bin"
    write_tokens(short, [1, 2, 3], "uint16")
    result = run("--vocab", "1000", "--tokens", "2x4", "--dist", f"file:{short}", "--out", out)
    assert result.returncode == 2 and "fewer" in result.stderr
    result = run("--vocab", "1000", "--tokens", "2x4", "--dist", f"file:{tmp_path}", "--out", out)
    assert result.returncode == 2
    assert not out.exists()


def test_llmc_header_count_is_checked(tmp_path):
    path = tmp_path / "shard.bin"
    header = [20240520, 1, 1000] + [0] * 253  # claims 1000 tokens, holds 8
    path.write_bytes(struct.pack("<256i", *header) + struct.pack("<8H", *range(8)))
    out = tmp_path / "out"
    result = run("--vocab", "100", "--tokens", "2x4", "--dist", f"file:{path}", "--out", out)
    assert result.returncode == 2 and "declares 1000 tokens" in result.stderr
    assert not out.exists()


def test_token_file_larger_than_memory_is_streamed(tmp_path):
    # A sparse 6 GiB file (all zeros: token 0) costs no disk; reading it whole would need 6 GiB.
    # Only the 8 tokens asked for may be read: the child's peak RSS stays far below the file.
    path = tmp_path / "huge.bin"
    with open(path, "wb") as f:
        f.truncate(6 << 30)
    out = tmp_path / "out"
    script = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stderr.write(r.stderr)\n")
    import sys
    result = subprocess.run(
        [sys.executable, "-c", script, str(BINARY), "--vocab", "50", "--dim", "8", "--tokens",
         "1x8", "--dist", f"file:{path}", "--no-plots", "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    code, peak_kib = map(int, result.stdout.split())
    assert code == 0, result.stderr
    assert peak_kib < 2 * 1024 * 1024, f"peak RSS {peak_kib} KiB for 8 tokens of a 6 GiB file"
    assert float(read_csv(out)[("summary", "rows_with_gradient", "")]) == 1


def test_every_token_padding_runs(tmp_path):
    out = tmp_path / "out"
    result = run("--vocab", "1", "--dim", "4", "--tokens", "2x8", "--padding-idx", "0",
                 "--no-plots", "--out", out)
    assert result.returncode == 0, result.stderr
    rows = read_csv(out)
    assert float(rows[("summary", "rows_with_gradient", "")]) == 0
    assert math.isnan(float(rows[("summary", "row_rms_median", "unit_scaled")]))


def test_zipf_over_a_vocabulary_beyond_multinomials_limit(tmp_path):
    out = tmp_path / "out"
    result = run("--vocab", str(2 ** 24 + 5), "--dim", "1", "--tokens", "2x64", "--dist",
                 "zipf:1.1", "--no-plots", "--formats", "e4m3", "--out", out, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = read_csv(out)
    assert 0 < float(rows[("summary", "rows_with_gradient", "")]) <= 128


def test_awkward_paths_in_csv_and_plots(tmp_path):
    weird = tmp_path / "a dir, with 'quotes' and \"double\""
    weird.mkdir()
    tokens = weird / "tok,ens.bin"
    write_tokens(tokens, list(range(64)), "uint16")
    scratch = tmp_path / "tmp dir 'x'"
    scratch.mkdir()
    out = weird / "out 'put'"
    result = subprocess.run(
        [str(BINARY), "--vocab", "100", "--dim", "8", "--tokens", "2x32", "--dist",
         f"file:{tokens}", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, TMPDIR=str(scratch)))
    assert result.returncode == 0, result.stderr
    rows = read_csv(out)  # the csv module parses the quoted field back exactly
    assert rows[("config", "dist", "")] == f"file:{tokens}"
    for name in ("histogram", "sweep"):
        assert png_size(out / f"{name}.png") == (1000, 600)
    assert not list(scratch.iterdir())  # the scratch folder is cleaned up


@pytest.mark.parametrize("world,steps,accumulate,uncorrected,multiplier",
                         [(4, 1, "sum", 0.5, 0.25), (2, 4, "sum", math.sqrt(2), 2.0),
                          (2, 4, "mean", math.sqrt(2) / 4, 0.125)])
def test_optimizer_step_with_and_without_the_token_count(tmp_path, world, steps, accumulate,
                                                         uncorrected, multiplier):
    out = tmp_path / "out"
    result = run("--vocab", "4096", "--dim", "64", "--tokens", "4x512", "--dist", "uniform",
                 "--data-parallel", world, "--accumulation", steps, "--accumulate", accumulate,
                 "--no-plots", "--formats", "e4m3", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "optimizer-visible grad std" in result.stdout
    rows = read_csv(out)
    assert float(rows[("optimizer_step", "token_multiplier", "")]) == pytest.approx(multiplier)
    assert float(rows[("optimizer_step", "grad_std", "uncorrected")]) == pytest.approx(
        uncorrected, rel=0.05)
    assert float(rows[("optimizer_step", "grad_std", "corrected")]) == pytest.approx(1, rel=0.05)


@pytest.mark.parametrize("args", [["--data-parallel", "0"], ["--accumulation", "x"],
                                  ["--accumulate", "avg"],
                                  ["--data-parallel", "100", "--accumulation", "100"]])
def test_bad_optimizer_step_options(tmp_path, args):
    out = tmp_path / "out"
    result = run(*args, "--out", out)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


# One number grammar for every numeric option: integers are an optional '-' then digits; the
# zipf exponent a plain decimal (fraction, exponent). No whitespace, '+', hex, inf or nan.
INTEGER_OPTIONS = ["--vocab", "--dim", "--data-parallel", "--accumulation", "--padding-idx",
                   "--seed", "--threads"]


def assert_usage_error(tmp_path, args, message):
    """Exit status 2, exactly `message` on one stderr line, nothing written."""
    out = tmp_path / "out"
    result = run(*args, "--out", out)
    assert result.returncode == 2, result.stdout[-500:]
    assert result.stderr == f"unit-scaling-report: {message}\n"
    assert not out.exists()


@pytest.mark.parametrize("option", INTEGER_OPTIONS)
@pytest.mark.parametrize("value", [" 2", "+2", "2 ", "0x10", "1e3"])
def test_integer_options_take_only_plain_digits(tmp_path, option, value):
    assert_usage_error(tmp_path, [option, value], f"{option}: expected an integer, got '{value}'")


@pytest.mark.parametrize("value", [" 2x4", "+2x4", "2x4 ", "2x 4", "2x+4", "1e1x4"])
def test_token_counts_take_only_plain_digits(tmp_path, value):
    part = next(p for p in value.split("x") if not p.isdigit())
    assert_usage_error(tmp_path, ["--tokens", value],
                       f"--tokens: expected an integer, got '{part}'")


@pytest.mark.parametrize("value", [" 1.1", "+1.1", "1.1 ", "nan", "inf", "-inf", "0x1p0", "1e999"])
def test_zipf_exponent_takes_only_plain_decimals(tmp_path, value):
    assert_usage_error(tmp_path, ["--dist", f"zipf:{value}"],
                       f"--dist: expected a number, got '{value}'")


@pytest.mark.parametrize("args,message", [
    (["--vocab", "1\n2"], "--vocab: expected an integer, got '1\\n2'"),
    (["--dist", "zipf:1.1\r\n"], "--dist: expected a number, got '1.1\\r\\n'"),
    (["--dtype", "float\x1b[31m"],
     "--dtype: expected float32, float64, bfloat16 or float16, got 'float\\x1b[31m'"),
    (["--bo\ngus"], "unknown option '--bo\\ngus' (see --help)"),
])
def test_echoed_control_characters_are_escaped(tmp_path, args, message):
    assert_usage_error(tmp_path, args, message)


def test_valid_numbers_still_work(tmp_path):
    out = tmp_path / "out"
    result = run("--vocab", "100", "--dim", "4", "--tokens", "2x16", "--padding-idx", "-1",
                 "--seed", "0", "--threads", "1", "--data-parallel", "2", "--accumulation", "2",
                 "--dist", "zipf:15e-1", "--formats", "e4m3", "--no-plots", "--out", out)
    assert result.returncode == 0, result.stderr
    rows = read_csv(out)
    assert rows[("config", "padding_idx", "")] == "-1"
    assert rows[("config", "dist", "")] == "zipf:1.5"
    assert rows[("config", "tokens", "")] == "2x16"
    assert rows[("config", "threads", "")] == "1"
    assert rows[("config", "data_parallel", "")] == "2"


def test_plain_loss_sum_gives_both_embeddings_the_same_grad_out(tmp_path):
    out = tmp_path / "r"
    result = run(*SMALL, "--no-plots", "--plain-loss", "sum", "--out", out)
    assert result.returncode == 0, result.stderr
    rows = read_csv(out)
    n, v = 1024, 4096
    plain = float(rows[("summary", "grad_std", "plain")])
    unit = float(rows[("summary", "grad_std", "unit_scaled")])
    assert abs(plain / math.sqrt(n / v) - 1) < 0.1
    assert unit / plain == pytest.approx(math.sqrt(v / n), rel=1e-6)  # the scale, nothing else
    assert "grad_out = r\n" in result.stdout and "grad_out = r/N" not in result.stdout


def test_default_run_shows_the_point_and_is_what_the_readme_quotes(tmp_path):
    """The main job's defaults: plain gradients (mean loss) leave FP8's range, unit-scaled ones
    do not; README.md's report excerpt and the numbers in its prose are this run's output, and
    the figures carry what the README says they show (docs/images/ are this run's PNGs)."""
    out = tmp_path / "report"
    result = run("--out", out, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = read_csv(out)
    assert rows[("headline", "format", "")] == "e4m3"
    assert float(rows[("headline", "outside_normal_range", "plain")]) > 0.99
    assert float(rows[("headline", "outside_normal_range", "unit_scaled")]) < 0.01
    assert float(rows[("format:float16", "subnormal", "plain")]) > 0.2
    assert float(rows[("format:bfloat16", "flush_to_zero", "plain")]) == 0
    assert "what you are looking at" in result.stdout
    readme = (REPO / "README.md").read_text()
    excerpts = re.findall(r"```text\n(.*?)```", readme, re.S)
    assert excerpts
    for line in "".join(excerpts).splitlines():
        assert line in result.stdout.splitlines(), f"README quotes a line the run does not print: {line!r}"
    section = readme.split("**The scale report**")[1].split("## Many devices")[0]
    prose = re.sub(r"```text\n.*?```", "", section, flags=re.S)
    for number in re.findall(r"\b\d+\.\d{4}\b|\b\d\.\d\de-\d\d\b", prose):
        assert number in result.stdout, f"README's {number} is not in the default run's output"
    sweep = (out / "sweep.svg").read_text()
    assert "D = 64" in sweep and "predicted for plain" in sweep
    histogram = (out / "histogram.svg").read_text()
    assert "left of this axis" in histogram and "bfloat16" in histogram
    for name in ("histogram.png", "sweep.png"):
        assert png_size(REPO / "docs" / "images" / name) == png_size(out / name)
