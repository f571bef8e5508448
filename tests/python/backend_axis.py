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

Each backend is one row of ``BACKENDS`` (name, device, whether it needs a GPU, how to tell that
it is missing, what to install while it is active): adding a backend adds a row, and every test
that takes the ``backend`` fixture (conftest.py) or ``cases`` runs on it.

Tests build their data on the CPU, move it with ``backend.to(...)`` and compare on the CPU.
"""
import collections
import contextlib
import dataclasses
import warnings
from typing import Callable, Optional

import pytest
import torch

import unit_scaling_cpp as usc  # also loads torch.ops.unit_scaling

NO_CUDA = "no CUDA device visible"

# The operators that each backend implements (register_backend in src/backends/entry_points.h;
# test_backend_axis.py checks that the two lists agree); the rest (embedding, scale_fwd,
# scale_bwd) are device-neutral and reach these through the dispatcher.
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


def _no_cuda_device() -> Optional[str]:
    return None if torch.cuda.is_available() else NO_CUDA


@dataclasses.dataclass(frozen=True)
class BackendSpec:
    """A row of the backend table."""

    name: str
    device: str  # the torch device type of its tensors
    needs_gpu: bool = False
    # Needs a GPU: why it cannot run in this process (its tests are skipped with that), or None.
    missing: Callable[[], Optional[str]] = lambda: None
    # The context manager installed while a test runs on it (None: nothing), e.g. the route.
    route: Optional[Callable[[], AtenFallbackRoute]] = None

    def skip_reason(self) -> Optional[str]:
        return self.missing() if self.needs_gpu else None


# The backend axis, in test order. The first row runs every sample of ``cases``.
BACKENDS = (
    BackendSpec("cpu", "cpu"),
    BackendSpec("aten_fallback", "cpu", route=AtenFallbackRoute),
    BackendSpec("cuda", "cuda", needs_gpu=True, missing=_no_cuda_device),
)
NAMES = tuple(spec.name for spec in BACKENDS)
_SPECS = {spec.name: spec for spec in BACKENDS}


def spec(name) -> BackendSpec:
    """The row of backend ``name``."""
    return _SPECS[name]


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
        index-check policy on a GPU backend (CUDA's default is a device-side assertion, which
        would poison this process's CUDA context; test_cuda_runtime.py checks it in
        subprocesses). The CPU backends raise under either policy."""
        if spec(self.name).needs_gpu:
            return usc.index_check_policy("raise")
        return contextlib.nullcontext()


@contextlib.contextmanager
def activate(name):
    """The Backend ``name``, skipped where it cannot run, with its route installed while it is
    active if it has one."""
    row = spec(name)
    reason = row.skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with (row.route() if row.route is not None else contextlib.nullcontext()) as route:
        yield Backend(name, torch.device(row.device), route)


def param(name, *values, id=None):
    """A pytest.param for backend ``name`` (skipped where it cannot run) followed by values."""
    reason = spec(name).skip_reason()
    marks = [pytest.mark.skip(reason=reason)] if reason is not None else []
    return pytest.param(name, *values, marks=marks, id=name if id is None else f"{name}-{id}")


def cases(samples, ids, subset=None, names=NAMES):
    """Parameters ``(backend, *sample)`` for an indirect ``backend`` parametrization.

    Every sample runs on the first backend (the CPU kernels); the other backends run ``subset``
    (a list of indices into ``samples``, default all), so that a slow test can cover the other
    backends with a representative subset.
    """
    result = []
    for name in names:
        chosen = range(len(samples)) if subset is None or name == NAMES[0] else subset
        for i in chosen:
            result.append(param(name, *samples[i], id=ids[i]))
    return result
