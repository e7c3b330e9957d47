"""Training machinery shared by every model: optimizers, schedules, clipping, penalties,
truncated-BPTT streams, and checkpoints (vocabularies are :mod:`rnnkit.text.vocab`'s).

Models meet this package through two dicts with the same keys and shapes: ``params``
(name -> array, updated in place) and ``grads`` (accumulated by the model's backward).

>>> import numpy as np
>>> from rnnkit.train import SGD, clip_grad_norm
>>> params, grads = {"w": np.array([1.0])}, {"w": np.array([30.0])}
>>> opt = SGD(params, grads, lr=0.1)
>>> clip_grad_norm(grads, max_norm=5.0)
30.0
>>> opt.step(); np.round(params["w"], 6)
array([0.5])
"""

from rnnkit.train.checkpoint import (
    Checkpoint,
    load_checkpoint,
    rng_from_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from rnnkit.train.clip import (
    clip_grad_norm,
    clip_grad_norm_per_tensor,
    clip_grad_value,
    is_bias,
    l1_penalty,
    l2_penalty,
)
from rnnkit.train.data import TBPTTStream, batchify
from rnnkit.train.optim import (
    SGD,
    Adagrad,
    Adam,
    Optimizer,
    ReduceLROnPlateau,
    RMSProp,
    StepDecay,
)

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "Checkpoint",
    "Optimizer",
    "RMSProp",
    "ReduceLROnPlateau",
    "StepDecay",
    "TBPTTStream",
    "batchify",
    "clip_grad_norm",
    "clip_grad_norm_per_tensor",
    "clip_grad_value",
    "is_bias",
    "l1_penalty",
    "l2_penalty",
    "load_checkpoint",
    "rng_from_state",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]
