"""pytest plugin: before collection, replace the reference library's embedding with ours.

Loaded with ``-p unit_scaling_cpp_swap`` when the reference library's own test suite runs, so
that every test of it that uses ``unit_scaling.functional.embedding`` or
``unit_scaling.Embedding`` (directly or inside its modules, e.g. ``TransformerDecoder``) runs
unit_scaling_cpp instead.
"""
import unit_scaling
import unit_scaling._modules
import unit_scaling.functional

import unit_scaling_cpp

MARKER = "unit_scaling_cpp swap active"


def pytest_configure(config):
    unit_scaling.functional.embedding = unit_scaling_cpp.functional.embedding
    unit_scaling.Embedding = unit_scaling_cpp.Embedding
    unit_scaling._modules.Embedding = unit_scaling_cpp.Embedding


def pytest_collection_finish(session):
    # Proof for the caller that the swap is in force where the tests look.
    assert unit_scaling.Embedding is unit_scaling_cpp.Embedding
    assert unit_scaling._modules.Embedding is unit_scaling_cpp.Embedding
    assert unit_scaling.functional.embedding is unit_scaling_cpp.functional.embedding
    print(f"\n{MARKER}")
