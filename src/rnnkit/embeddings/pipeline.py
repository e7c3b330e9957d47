"""What the ``rnnkit embed`` commands run: train from a file, evaluate, report.

Example:
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> corpus = os.path.join(d, "c.txt")
    >>> _ = open(corpus, "w").write("the cat sat on the mat\\n" * 30)
    >>> kv, stats = train_vectors(corpus, "cbow", dim=8, min_count=1, epochs=1)
    >>> len(kv), kv.dim
    (5, 8)
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnkit.embeddings.glove import GloVe
from rnnkit.embeddings.vectors import AnalogyEval, KeyedVectors, PairEval
from rnnkit.embeddings.word2vec import TrainStats, Word2Vec
from rnnkit.io import RnnkitError
from rnnkit.text.corpus import Corpus

METHODS = ("skipgram", "cbow", "glove")


def train_vectors(
    corpus_path: str | os.PathLike[str],
    method: str = "skipgram",
    *,
    lowercase: bool = False,
    progress: bool = False,
    **settings: Any,
) -> tuple[KeyedVectors, TrainStats]:
    """Train word vectors on a text file (one sentence per line) with word2vec or GloVe.

    ``settings`` are fields of :class:`.Word2VecConfig` or :class:`.GloVeConfig`; those set
    to None keep the method's default.
    """
    if method not in METHODS:
        raise RnnkitError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    settings = {k: v for k, v in settings.items() if v is not None}
    corpus = Corpus.from_file(corpus_path, lowercase=lowercase)
    if method == "glove":
        for k in ("negative", "hs", "sample"):
            settings.pop(k, None)
        if "alpha" in settings:
            settings["lr"] = settings.pop("alpha")
        glove = GloVe(**settings)
        kv = glove.fit(corpus, progress=progress)
        return kv, glove.stats
    settings.pop("x_max", None)
    model = Word2Vec(method=method, **settings)
    kv = model.fit(corpus, progress=progress)
    return kv, model.stats


EVAL_FILES = {
    "wordsim": "wordsim353.tsv",
    "simlex": "simlex999.txt",
    "analogies": "questions-words.txt",
}


def find_eval_files(
    eval_dir: str | os.PathLike[str] | None = None, **explicit: str | os.PathLike[str] | None
) -> dict[str, Path]:
    """The evaluation files to use: explicit paths, else those in ``eval_dir``, else in
    ``$RNNKIT_WORD_EVAL``, else gensim's bundled copies when gensim is installed."""
    found = {k: Path(v) for k, v in explicit.items() if v is not None}
    if found:
        return found
    candidates: list[Path] = []
    if eval_dir is not None:
        candidates.append(Path(eval_dir))
    elif os.environ.get("RNNKIT_WORD_EVAL"):
        candidates.append(Path(os.environ["RNNKIT_WORD_EVAL"]))
    else:
        spec = importlib.util.find_spec("gensim")
        if spec is not None and spec.submodule_search_locations:
            candidates.append(Path(list(spec.submodule_search_locations)[0]) / "test/test_data")
    for d in candidates:
        files = {k: d / name for k, name in EVAL_FILES.items() if (d / name).is_file()}
        if files:
            return files
        if eval_dir is not None:
            raise RnnkitError(f"{d}: holds none of {', '.join(EVAL_FILES.values())}")
    raise RnnkitError(
        "no evaluation files: pass --eval-dir DIR (with wordsim353.tsv, simlex999.txt, "
        "questions-words.txt) or --wordsim/--simlex/--analogies, or set RNNKIT_WORD_EVAL"
    )


@dataclass
class EvalReport:
    """Scores of one set of vectors on the similarity and analogy files."""

    pairs: dict[str, PairEval]
    analogies: AnalogyEval | None

    def format(self, sections: bool = True) -> str:
        """Human-readable lines."""
        lines = []
        names = {"wordsim": "WordSim-353", "simlex": "SimLex-999"}
        for key, r in self.pairs.items():
            lines.append(
                f"{names.get(key, key):<12} Spearman {r.spearman:6.3f}  Pearson {r.pearson:6.3f}  "
                f"({r.pairs} pairs, {100 * r.oov_rate:.1f}% out of vocabulary)"
            )
        a = self.analogies
        if a is not None:
            answered = sum(s.correct + s.incorrect for s in a.sections)
            lines.append(
                f"Analogies    accuracy {100 * a.accuracy:5.1f}%  (semantic "
                f"{100 * a.semantic_accuracy:.1f}%, syntactic {100 * a.syntactic_accuracy:.1f}%; "
                f"{answered} answered, {100 * a.oov_rate:.1f}% skipped as out of vocabulary)"
            )
            if sections:
                for s in a.sections:
                    n = s.correct + s.incorrect
                    acc = f"{100 * s.accuracy:5.1f}%" if n else "    - "
                    lines.append(f"  {s.name:<28} {acc}  ({s.correct}/{n}, {s.oov} skipped)")
        return "\n".join(lines)


def evaluate_vectors(
    kv: KeyedVectors,
    files: dict[str, Path],
    restrict_vocab: int = 300000,
    method: str = "add",
) -> EvalReport:
    """Run the word-pair and analogy evaluations named in ``files``."""
    pairs = {
        k: kv.evaluate_word_pairs(p, restrict_vocab=restrict_vocab)
        for k, p in files.items()
        if k in ("wordsim", "simlex")
    }
    analogies = None
    if "analogies" in files:
        analogies = kv.evaluate_word_analogies(
            files["analogies"], restrict_vocab=restrict_vocab, method=method
        )
    return EvalReport(pairs, analogies)
