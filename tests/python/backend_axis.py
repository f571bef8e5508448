"""The backend axis of the Python suite: the contract tests run once per backend.

The library picks a backend by dispatch key (docs/ARCHITECTURE.md, docs/DEVICES.md):

``cpu``
    CPU tensors, the CPU kernels (``src/backends/cpu.cpp``, dispatch key ``CPU``).
``aten_fallback``
    The ATen fallback (``src/backends/aten_fallback.cpp``), registered under
    ``CompositeExplicitAutograd``: what every device without kernels of its own gets. On CPU
    tensors the ``CPU`` kernels shadow it, so the tests reach it through a *route*
    (:class:`AtenFallbackRoute`): while it is installed, the ``CPU`` kernels of the four device
    operators are overridden from Python by a kernel that redispatches the call to the
    ``PrivateUse1`` entry of the operator's dispatch table. Nothing is registered under
    ``PrivateUse1``, so ``CompositeExplicitAutograd`` fills that entry: the call runs the fallback
    on the CPU tensors. Everything above the backend (the composite ``embedding``, the Autograd
    and Meta kernels, ``torch.compile``'s graphs, ``opcheck``) still goes through the dispatcher,
    so the route applies to it too. Removing the route restores the ``CPU`` kernels.
``cuda``
    CUDA tensors: our CUDA kernels when the library registers them under ``CUDA``, else the
    fallback. Skipped without a GPU.

Tests build their data on the CPU, move it with ``backend.to(...)`` and compare on the CPU.
"""
import collections
import contextlib
import dataclasses
import warnings
from typing import Optional

import pytest
import torch

import unit_scaling_cpp as usc  # also loads torch.ops.unit_scaling

NAMES = ("cpu", "aten_fallback", "cuda")
NO_CUDA = "no CUDA device visible"

# The operators that each backend implements (src/backends/entry_points.h); the rest
# (embedding, scale_fwd, scale_bwd) are device-neutral and reach these through the dispatcher.
DEVICE_OPERATORS = (
    "embedding_lookup",
    "embedding_backward",
    "_scaled_embedding_backward",
    "embedding_renorm_",
)

# torch warns once per process when a kernel is overridden; the override is the point here.
_OVERRIDE_WARNING = "(?s).*Overriding a previously registered kernel"


class AtenFallbackRoute:
    """A context manager: while it is active, CPU tensors run the ATen fallback.

    ``calls`` counts, per operator, the calls that went through the route (the proof that a
    test reached it, see test_backend_axis.py).
    """

    def __init__(self):
        self.calls = collections.Counter()
        self._library = None

    def __enter__(self):
        for name in DEVICE_OPERATORS:
            qualified = f"unit_scaling::{name}"
            # The premise of the route: the PrivateUse1 entry is the fallback, not a kernel of
            # its own.
            assert torch._C._dispatch_has_kernel_for_dispatch_key(
                qualified, "CompositeExplicitAutograd"), f"{qualified} has no fallback kernel"
            assert not torch._C._dispatch_has_kernel_for_dispatch_key(
                qualified, "PrivateUse1"), f"{qualified} has a PrivateUse1 kernel of its own"
        keyset = torch._C.DispatchKeySet(torch._C.DispatchKey.PrivateUse1)
        self._library = torch.library.Library("unit_scaling", "IMPL")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_OVERRIDE_WARNING)
            for name in DEVICE_OPERATORS:
                self._library.impl(name, self._redispatcher(name, keyset), "CPU")
        return self

    def __exit__(self, *exc_info):
        self._library._destroy()  # unregisters the overrides: the CPU kernels are back
        self._library = None
        return False

    def _redispatcher(self, name, keyset):
        op = getattr(torch.ops.unit_scaling, name).default

        def kernel(*args, **kwargs):
            self.calls[name] += 1
            return op.redispatch(keyset, *args, **kwargs)

        return kernel


def cuda_kernels_registered() -> bool:
    """Whether the library registers our own CUDA kernels (under the CUDA key) for every device
    operator; if not, CUDA tensors take the ATen fallback."""
    return all(torch._C._dispatch_has_kernel_for_dispatch_key(f"unit_scaling::{name}", "CUDA")
               for name in DEVICE_OPERATORS)


@dataclasses.dataclass
class Backend:
    """What a test needs of its backend: the device its tensors live on."""

    name: str
    device: torch.device
    route: Optional[AtenFallbackRoute] = None  # set for aten_fallback

    def to(self, tensor: torch.Tensor) -> torch.Tensor:
        """A copy of ``tensor`` (built on the CPU) on this backend's device: always a new
        tensor, also on the CPU, so that tests can mutate it or make it require grad."""
        return tensor.to(self.device, copy=True)

    def index_errors(self):
        """A context in which a bad index raises IndexError on this backend: the "raise"
        index-check policy on CUDA (whose default is a device-side assertion, which would poison
        this process's CUDA context; test_cuda_runtime.py checks it in subprocesses)."""
        if self.name == "cuda":
            return usc.index_check_policy("raise")
        return contextlib.nullcontext()


@contextlib.contextmanager
def activate(name):
    """The Backend ``name``, with the route installed while it is active if it needs one."""
    if name == "aten_fallback":
        with AtenFallbackRoute() as route:
            yield Backend(name, torch.device("cpu"), route)
    else:
        if name == "cuda" and not torch.cuda.is_available():
            pytest.skip(NO_CUDA)
        yield Backend(name, torch.device(name))


def param(name, *values, id=None):
    """A pytest.param for backend ``name`` (cuda skipped without a GPU) followed by values."""
    marks = [pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)] \
        if name == "cuda" else []
    return pytest.param(name, *values, marks=marks, id=name if id is None else f"{name}-{id}")


def cases(samples, ids, subset=None, names=NAMES):
    """Parameters ``(backend, *sample)`` for an indirect ``backend`` parametrization.

    Every sample runs on the CPU backend; the other backends run ``subset`` (a list of indices
    into ``samples``, default all), so that a slow test can cover the other backends with a
    representative subset.
    """
    result = []
    for name in names:
        chosen = range(len(samples)) if subset is None or name == "cpu" else subset
        for i in chosen:
            result.append(param(name, *samples[i], id=ids[i]))
    return result
