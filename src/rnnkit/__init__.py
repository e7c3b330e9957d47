"""rnnkit: recurrent neural networks with every forward and backward pass written out.

>>> import numpy as np, rnnkit
>>> lstm = rnnkit.LSTM(input_size=3, hidden_size=4, seed=0)
>>> out, (h, c) = lstm(np.zeros((2, 5, 3), np.float32))
>>> out.shape
(2, 5, 4)
"""

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
