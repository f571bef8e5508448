"""The package is built against the torch it finds and refuses any other release."""
import shutil
import subprocess
import sys
from pathlib import Path

import torch

import unit_scaling_cpp
from unit_scaling_cpp import _build_info, _library


def test_built_against_the_running_torch():
    assert _library.release(_build_info.TORCH_VERSION) == _library.release(torch.__version__)


def test_release_ignores_the_local_tag():
    assert _library.release("2.11.0+cu130") == "2.11.0"
    assert _library.release("2.15.0") == "2.15.0"


def test_a_mismatch_is_a_clear_import_error(tmp_path):
    # A copy of the installed package that claims another torch: importing it must raise an
    # ImportError naming both releases, before the library is loaded.
    package = Path(unit_scaling_cpp.__file__).parent
    shutil.copytree(package, tmp_path / "unit_scaling_cpp")
    (tmp_path / "unit_scaling_cpp" / "_build_info.py").write_text('TORCH_VERSION = "2.9.1"\n')
    script = (
        "import torch\n"
        "try:\n"
        "    import unit_scaling_cpp\n"
        "except ImportError as e:\n"
        "    print('ImportError:', e)\n"
        "    print('loaded:', hasattr(torch.ops.unit_scaling, 'embedding_lookup'))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "ImportError: unit_scaling_cpp was compiled against torch 2.9.1" in result.stdout
    assert f"but torch {torch.__version__} is installed" in result.stdout
    assert "loaded: False" in result.stdout
