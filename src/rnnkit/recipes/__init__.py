"""One recipe per task: data, model, the training loop of :mod:`rnnkit.train`, checkpoints,
evaluation and the files of a run: :mod:`.lm` (language models), :mod:`.task` (classifier and
tagger), :mod:`.mt` (translation), :mod:`.qa` (bAbI), :mod:`.music` (chorales),
:mod:`.caption` (image captioning). The command
line (:mod:`rnnkit.cli`) and the Python API (:mod:`rnnkit.api`) call these; nothing below
imports them."""
