"""Shared fixtures: which engine the recurrent layers run on."""

from __future__ import annotations

import pytest

import rnnkit


@pytest.fixture(params=["numpy", "compiled"])
def engine(request):
    """Run the test once on each engine of the recurrent layers (the process default for the
    test's duration; layers built without ``backend=`` follow it)."""
    previous = rnnkit.set_backend(request.param)
    yield request.param
    rnnkit.set_backend(previous)


@pytest.fixture
def compiled():
    """For tests of compiled code (rnnkit.fast): the compiled engine by name, so that they
    test it even when the suite runs under RNNKIT_BACKEND=numpy."""
    previous = rnnkit.set_backend("compiled")
    yield
    rnnkit.set_backend(previous)
