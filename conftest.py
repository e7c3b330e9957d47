"""Fixtures for the doctests of src/rnnkit (tests/conftest.py serves tests/)."""

from __future__ import annotations

import pytest

import rnnkit

# modules whose examples train embeddings: their loops exist only compiled (rnnkit.fast), so
# their doctests ask for the compiled engine by name, also under RNNKIT_BACKEND=numpy
COMPILED_ONLY = (
    "rnnkit.embeddings.glove",
    "rnnkit.embeddings.word2vec",
    "rnnkit.embeddings.pipeline",
)


@pytest.fixture(autouse=True)
def _compiled_for_compiled_only_examples(request):
    if isinstance(request.node, pytest.DoctestItem) and request.node.name.startswith(COMPILED_ONLY):
        previous = rnnkit.set_backend("compiled")
        yield
        rnnkit.set_backend(previous)
    else:
        yield
