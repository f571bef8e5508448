"""Registers the DTensor rules (``_dtensor.py``) once ``torch.distributed.tensor`` is imported.

Importing DTensor costs about a second (it imports sympy), so this package does not import it:
if it is already imported the rules are registered now, else right after its import, by a
one-shot finder on ``sys.meta_path`` that lets the usual finders find the module and registers
the rules when the module has run. A failure to register is a warning, never a failed import.

Why a hook (checked on torch 2.11): ``torch.library.register_torch_dispatch`` needs the DTensor
class itself, torch offers no public "on import of DTensor" callback (its only plugin entry
point, the ``torch.backends`` autoload group, runs during ``import torch``, which would import
DTensor eagerly), and Python has no public post-import hook (PEP 369 was withdrawn). An explicit
``enable_dtensor()`` call would change the public behaviour (today the rules need no call).
"""
import importlib.abc
import importlib.util
import sys
import warnings
from typing import Any, Optional

import torch

_MODULE = "torch.distributed.tensor"


def _register() -> None:
    try:
        from . import _dtensor

        _dtensor.register()
    except Exception as error:  # never break the caller's import of DTensor
        warnings.warn(f"unit_scaling_cpp: DTensor support is unavailable: {error!r}")


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Optional[Any]:
        if name != _MODULE:
            return None
        sys.meta_path.remove(self)  # one shot: the other finders find the module itself
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            run = spec.loader.exec_module

            def run_then_register(module: Any) -> None:
                run(module)
                _register()

            spec.loader.exec_module = run_then_register  # this spec's own loader instance
        return spec


def enable() -> None:
    if not torch.distributed.is_available():
        return
    if _MODULE in sys.modules:
        _register()
    elif not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
