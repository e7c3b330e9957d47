"""Task models built from the engine, each a :class:`~rnnkit.engine.module.Module` with
``forward``/``backward``: the language model (:mod:`.lm`), the sentence classifier
(:mod:`.classify`), the tagger (:mod:`.tag`), conditional generation and decoding
(:mod:`.generate`), beam search (:mod:`.beam`), the encoder-decoder with attention
(:mod:`.seq2seq`) and translating with it (:mod:`.translate`), question answering
(:mod:`.qa`), the polyphonic piano-roll model (:mod:`.music`) and the image captioners
(:mod:`.caption`). They know nothing of training loops or files of runs."""
