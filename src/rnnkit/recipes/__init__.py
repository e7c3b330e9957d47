"""One recipe per task: data, model, the training loop of :mod:`rnnkit.train`, checkpoints,
evaluation and the files of a run. The command line (:mod:`rnnkit.cli`) parses options and
calls these; nothing below imports them."""
