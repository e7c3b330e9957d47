"""Word embeddings: word2vec (skip-gram, CBOW), GloVe, and using the vectors.

* :class:`~rnnkit.text.corpus.Corpus`, :class:`~rnnkit.text.vocab.Vocab` (in rnnkit.text):
  sentences, vocabulary, the corpus as word ids;
* :mod:`.word2vec`: the NumPy forward/backward of each loss and the compiled trainer;
* :mod:`.glove`: co-occurrence counts and the weighted least-squares trainer;
* :mod:`.vectors`: :class:`KeyedVectors` (similarity, analogies, evaluation, file formats);
* :mod:`.tsne`: a t-SNE picture of word vectors (needs scikit-learn).

The trainers' loops are compiled (:mod:`rnnkit.fast.word2vec`, :mod:`rnnkit.fast.glove`);
numba is imported only when a trainer runs, so reading vectors stays quick.

Example:
    >>> from rnnkit.embeddings import KeyedVectors
    >>> kv = KeyedVectors(["a", "b"], [[1.0, 0.0], [0.0, 1.0]])
    >>> kv.similarity("a", "b")
    0.0
"""

from rnnkit.embeddings.glove import GloVe, GloVeConfig
from rnnkit.embeddings.tsne import plot_tsne
from rnnkit.embeddings.vectors import AnalogyEval, KeyedVectors, PairEval
from rnnkit.embeddings.word2vec import Word2Vec, Word2VecConfig
from rnnkit.text.corpus import Corpus, EncodedCorpus
from rnnkit.text.vocab import Vocab

__all__ = [
    "AnalogyEval",
    "Corpus",
    "EncodedCorpus",
    "GloVe",
    "GloVeConfig",
    "KeyedVectors",
    "PairEval",
    "Vocab",
    "Word2Vec",
    "Word2VecConfig",
    "plot_tsne",
]
