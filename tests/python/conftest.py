import pytest
import torch

import unit_scaling_cpp  # noqa: F401  (loads torch.ops.unit_scaling)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
