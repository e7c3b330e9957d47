"""rnnkit: recurrent neural networks with every forward and backward pass written out.

>>> import numpy as np, rnnkit
>>> lstm = rnnkit.LSTM(input_size=3, hidden_size=4, seed=0)
>>> out, (h, c) = lstm(np.zeros((2, 5, 3), np.float32))
>>> out.shape
(2, 5, 4)

The training commands as functions and trained models to use (:mod:`rnnkit.api`, imported
on first use, so that ``import rnnkit`` stays NumPy alone): ``rnnkit.train_lm``,
``train_classifier``, ``train_tagger``, ``train_translator``, ``train_qa``, ``train_task``,
``rnnkit.load`` and the callbacks ``rnnkit.Callback``, ``rnnkit.EarlyStopping``.
"""

from typing import Any

from rnnkit.engine.backend import get_backend, set_backend
from rnnkit.engine.gradcheck import gradcheck
from rnnkit.engine.layers import GRU, LSTM, RNN, Recurrent
from rnnkit.fast.workspace import release as release_memory

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Recurrent",
    "get_backend",
    "gradcheck",
    "release_memory",
    "set_backend",
]
__version__ = "0.1.0"

_API = ("Callback", "EarlyStopping", "load", "train_classifier", "train_lm", "train_qa",
        "train_tagger", "train_task", "train_translator")  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _API:  # the API pulls in the recipes (and their files): load it when asked
        from rnnkit import api

        return getattr(api, name)
    raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")
