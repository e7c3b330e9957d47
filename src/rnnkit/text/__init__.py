"""Text and data below the models: the vocabulary (:mod:`.vocab`, one :class:`Vocab` for every
model), corpora of sentences (:mod:`.corpus`), the readers of the task models' files
(:mod:`.readers`: labelled TSV, CoNLL / CoNLL-U, word2vec text; :mod:`.babi`; :mod:`.parallel`),
BLEU (:mod:`.bleu`, sacrebleu's 13a tokenizer) and the tagging metrics (:mod:`.metrics`:
accuracy, span F1). Imports nothing above :mod:`rnnkit.io`."""
