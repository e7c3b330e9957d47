"""The reference engine, in NumPy: what a course on recurrent networks writes on the board.

Read it bottom up, each module importing only the ones before it:

- :mod:`~rnnkit.engine.ops`: activations, linear, softmax/cross-entropy, embedding, dropout;
  each a forward/backward pair.
- :mod:`~rnnkit.engine.cells`: one time step of the RNN, LSTM and GRU, forward beside backward.
- :mod:`~rnnkit.engine.layers`: the layers (stacked, bidirectional, ragged) and backpropagation
  through time, the loop over steps written out in NumPy over the cells.
- :mod:`~rnnkit.engine.backend`: which engine runs the layers' time loops, this one or the
  compiled one of :mod:`rnnkit.fast` (``backend="auto" | "numpy" | "compiled"``).
- :mod:`~rnnkit.engine.conv`: convolution, max-pooling and batch normalisation over images
  (im2col and one matrix product), for the captioners' encoder.
- :mod:`~rnnkit.engine.attention`, :mod:`~rnnkit.engine.module` (parameters, state dicts),
  :mod:`~rnnkit.engine.gradcheck` (central differences).

Nothing here imports numba: with ``backend="numpy"`` no compiled code is loaded.
"""
