"""One-to-many demo: an 8x8 image of a handwritten digit in, the digit's English name out,
spelled letter by letter ("7" -> s e v e n), with rnnkit's ConditionalGenerator.

Data: scikit-learn's copy of the UCI optical-digits test set (``sklearn.datasets.load_digits``,
1,797 images, 64 pixels of 0..16), split 75 / 25 stratified with a fixed seed; 10% of the
training part is held out to pick the epoch. The image (pixels / 16) sets the LSTM's initial
state and is fed at every step; training is teacher forcing with Adam. The figure is the
exact-match accuracy of the decoded names on the held-out 25% with greedy, beam and sampled
decoding. For comparison, the same split is classified by scikit-learn's SVC(gamma=0.001)
(the setup of scikit-learn's "Recognizing hand-written digits" example) and by logistic
regression: since the name is a function of the class, their accuracy is the natural peer.

Run: ``OPENBLAS_NUM_THREADS=1 python benchmarks/digits_names.py [--epochs 60] [--json out]``
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from rnnkit.models.generate import ConditionalGenerator, GeneratorConfig, teacher_forcing
from rnnkit.train import Adam, clip_grad_norm

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SPECIALS = ["<pad>", "<bos>", "<eos>"]
LETTERS = sorted({ch for n in NAMES for ch in n})
VOCAB = SPECIALS + LETTERS
STOI = {s: i for i, s in enumerate(VOCAB)}
PAD, BOS, EOS = 0, 1, 2


def spell(digit: int) -> list[int]:
    return [STOI[ch] for ch in NAMES[digit]]


def word(ids: list[int]) -> str:
    return "".join(VOCAB[i] for i in ids)


def exact_match(gen: ConditionalGenerator, x: np.ndarray, y: np.ndarray, **decode) -> float:
    out = gen.decode(x, BOS, EOS, max_len=8, **decode)
    return float(np.mean([word(o) == NAMES[d] for o, d in zip(out, y, strict=True)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--embed", type=int, default=16)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    X_fit, X_val, y_fit, y_val = train_test_split(X_tr, y_tr, test_size=0.1, stratify=y_tr,
                                                  random_state=1)  # fmt: skip
    cfg = GeneratorConfig(feature_size=64, vocab_size=len(VOCAB), cell="lstm", embed=args.embed,
                          hidden=args.hidden, feed_input=True, dropout=args.dropout)  # fmt: skip
    gen = ConditionalGenerator(cfg, seed=args.seed)
    opt = Adam(gen.params, gen.grads, lr=args.lr)
    rng = np.random.default_rng(args.seed)
    print(f"digits: {len(X_fit)} training / {len(X_val)} validation / {len(X_te)} test images; "
          f"LSTM 1x{args.hidden}, {gen.num_parameters():,} parameters")  # fmt: skip
    t0 = time.perf_counter()
    best, best_state, best_epoch = -1.0, None, 0
    for epoch in range(1, args.epochs + 1):
        perm = rng.permutation(len(X_fit))
        total = 0.0
        for i in range(0, len(perm), args.batch_size):
            idx = perm[i : i + args.batch_size]
            inp, tgt, lengths = teacher_forcing([spell(d) for d in y_fit[idx]], BOS, EOS, PAD)
            loss, _, cache = gen.forward(X_fit[idx], inp, tgt, lengths, training=True)
            gen.zero_grad()
            gen.backward(cache)
            clip_grad_norm(gen.grads, 5.0)
            opt.step()
            total += loss * len(idx)
        val = exact_match(gen, X_val, y_val)
        if val > best:
            best, best_epoch = val, epoch
            best_state = {k: v.copy() for k, v in gen.params.items()}
        print(f"epoch {epoch}: loss {total / len(X_fit):.4f}, validation exact match {val:.4f}")
    train_s = time.perf_counter() - t0
    for k, v in best_state.items():
        gen.params[k][...] = v
    res = {
        "best_epoch": best_epoch,
        "best_valid_exact_match": best,
        "train_seconds": round(train_s, 1),
        "test_images": len(X_te),
        "greedy": exact_match(gen, X_te, y_te, method="greedy"),
        "beam3_alpha1": exact_match(gen, X_te, y_te, method="beam", beam_size=3, alpha=1.0),
        "beam3_alpha0": exact_match(gen, X_te, y_te, method="beam", beam_size=3, alpha=0.0),
        "beam5_alpha0.6": exact_match(gen, X_te, y_te, method="beam", beam_size=5, alpha=0.6),
        "sample_t1": exact_match(
            gen, X_te, y_te, method="sample", rng=np.random.default_rng(0)
        ),  # fmt: skip
        "sample_t0.5": exact_match(
            gen, X_te, y_te, method="sample", temperature=0.5, rng=np.random.default_rng(0)
        ),  # fmt: skip
    }
    # how often is the greedy output not a digit name at all?
    out = gen.decode(X_te, BOS, EOS, max_len=8)
    res["greedy_non_words"] = int(sum(word(o) not in NAMES for o in out))
    res["svc_gamma0.001"] = float(SVC(gamma=0.001).fit(X_tr * 16, y_tr).score(X_te * 16, y_te))
    logreg = LogisticRegression(max_iter=5000).fit(X_tr, y_tr)
    res["logistic_regression"] = float(logreg.score(X_te, y_te))
    n = len(X_te)
    res["greedy_95ci_halfwidth"] = round(
        1.96 * math.sqrt(res["greedy"] * (1 - res["greedy"]) / n), 4
    )
    print(json.dumps(res, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
