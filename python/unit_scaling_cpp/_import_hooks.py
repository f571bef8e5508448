"""Run a callback once a module has been imported, without importing it ourselves.

Python has no public post-import hook (PEP 369 was withdrawn), so a one-shot finder on
``sys.meta_path`` lets the usual finders find the module, wraps its loader's ``exec_module`` and
runs the callback right after the module has run. Used for DTensor (``_dtensor_import.py``)
and ``torch._dynamo`` (``_func.py``): both cost about a second to import, which this package
leaves to the user.
"""
import importlib.abc
import importlib.util
import sys
from typing import Any, Callable, Optional


class _AfterImport(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, callback: Callable[[], None]) -> None:
        self.name = name
        self.callback = callback

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Optional[Any]:
        if name != self.name:
            return None
        sys.meta_path.remove(self)  # one shot: the other finders find the module itself
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            run = spec.loader.exec_module
            callback = self.callback

            def run_then_call(module: Any) -> None:
                run(module)
                callback()

            setattr(spec.loader, "exec_module", run_then_call)  # this spec's own loader
        return spec


def after_import(name: str, callback: Callable[[], None]) -> None:
    """``callback()`` now if module ``name`` is imported, else right after its import (once;
    a second call with the same name and callback while waiting adds nothing)."""
    if name in sys.modules:
        callback()
        return
    waiting = (isinstance(f, _AfterImport) and f.name == name and f.callback is callback
               for f in sys.meta_path)
    if not any(waiting):
        sys.meta_path.insert(0, _AfterImport(name, callback))
