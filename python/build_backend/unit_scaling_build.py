"""PEP 517 build backend of unit-scaling-cpp: scikit-build-core, after two checks that turn a
confusing failure into a message saying what to run.

The package compiles against the torch of the environment it is built in and refuses to load
under any other (LibTorch has no stable C++ ABI). An isolated build (plain `pip install .`) would
see no torch at all, or one pip downloaded for the occasion; so the wheel hooks stop it at once.
Outside isolation (`--no-build-isolation`) scikit-build-core itself must be installed.
"""
import importlib.util
import sys

_INSTALL = ("install it into your environment first, then build against the torch already "
            "there:\n    pip install scikit-build-core==1.1.2\n"
            "    pip install --no-build-isolation .\n(README.md, Install)")

if importlib.util.find_spec("scikit_build_core") is None:
    sys.exit("unit-scaling-cpp: the build backend scikit-build-core is not installed; " + _INSTALL)

from scikit_build_core import build as _backend  # noqa: E402

build_sdist = _backend.build_sdist
get_requires_for_build_sdist = _backend.get_requires_for_build_sdist


def _require_torch():
    if importlib.util.find_spec("torch") is None:
        sys.exit(
            "unit-scaling-cpp: no torch in the build environment. The package must be compiled "
            "against the torch it will be imported with (2.11-2.15), so an isolated build (plain "
            "`pip install .`) cannot work: run, in the environment that has your torch,\n"
            "    pip install scikit-build-core==1.1.2\n"
            "    pip install --no-build-isolation .\n(README.md, Install)")


def get_requires_for_build_wheel(config_settings=None):
    _require_torch()
    return _backend.get_requires_for_build_wheel(config_settings)


def get_requires_for_build_editable(config_settings=None):
    _require_torch()
    return _backend.get_requires_for_build_editable(config_settings)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    return _backend.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    return _backend.prepare_metadata_for_build_editable(metadata_directory, config_settings)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _require_torch()
    return _backend.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _require_torch()
    return _backend.build_editable(wheel_directory, config_settings, metadata_directory)
