"""Registers the DTensor rules (``_dtensor.py``) once ``torch.distributed.tensor`` is imported.

Importing DTensor costs about a second (it imports sympy), so this package does not import it:
if it is already imported the rules are registered now, else right after its import
(``_import_hooks.after_import``). A failure to register is a warning, never a failed import.

Why a hook (checked on torch 2.11): ``torch.library.register_torch_dispatch`` needs the DTensor
class itself, torch offers no public "on import of DTensor" callback (its only plugin entry
point, the ``torch.backends`` autoload group, runs during ``import torch``, which would import
DTensor eagerly), and Python has no public post-import hook (PEP 369 was withdrawn). An explicit
``enable_dtensor()`` call would change the public behaviour (today the rules need no call).
"""
import warnings

import torch

from ._import_hooks import after_import

_MODULE = "torch.distributed.tensor"


def _register() -> None:
    try:
        from . import _dtensor

        _dtensor.register()
    except Exception as error:  # never break the caller's import of DTensor
        warnings.warn(f"unit_scaling_cpp: DTensor support is unavailable: {error!r}")


def enable() -> None:
    if torch.distributed.is_available():
        after_import(_MODULE, _register)
