"""Text and data below the models: the vocabulary (:mod:`.vocab`, one :class:`Vocab` for every
model), corpora of sentences (:mod:`.corpus`), the readers of the task models' files
(:mod:`.readers`: labelled TSV, CoNLL / CoNLL-U, word2vec text; :mod:`.babi`; :mod:`.parallel`),
BLEU (:mod:`.bleu`, sacrebleu's 13a tokenizer), the tagging metrics (:mod:`.metrics`:
accuracy, span F1), and music as data (:mod:`.chorales`: Bach's chorales on a grid, piano
roll and tokens; :mod:`.midi`: writing MIDI, a small synthesiser), and captioning data
(:mod:`.captions`: COCO/Flickr8k caption files, images, prepared splits; :mod:`.scenes`:
scenes of handwritten digits with generated captions; :mod:`.cider`: CIDEr-D). Imports
nothing above :mod:`rnnkit.io`."""
