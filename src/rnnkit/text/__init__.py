"""Text and data below the models: vocabularies, BLEU (sacrebleu's 13a tokenizer) and the
tagging metrics (accuracy, span F1). Imports nothing above :mod:`rnnkit.io`."""
