import pytest
import torch

import backend_axis
import unit_scaling_cpp  # noqa: F401  (loads torch.ops.unit_scaling)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(params=[backend_axis.param(name) for name in backend_axis.NAMES])
def backend(request):
    """The backend a contract test runs on: one per row of backend_axis.BACKENDS (cpu,
    aten_fallback, cuda).

    Parametrize it indirectly (``backend_axis.cases``) to give a backend its own set of samples.
    """
    with backend_axis.activate(request.param) as chosen:
        yield chosen
