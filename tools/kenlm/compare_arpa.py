"""Compare two ARPA files n-gram by n-gram: the same n-grams listed, and the largest
differences of log10 probability and back-off weight (``<s>``'s probability left out:
lmplz writes 0, rnnkit -99, and it is never used).

    python tools/kenlm/compare_arpa.py lmplz5.arpa ours5.arpa
"""

from __future__ import annotations

import sys


def parse(path: str) -> dict[tuple[str, ...], tuple[float, float]]:
    out: dict[tuple[str, ...], tuple[float, float]] = {}
    order = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("\\") and line.endswith("-grams:"):
                order = int(line[1:].split("-")[0])
            elif order and line.strip() and not line.startswith("\\"):
                cols = line.split("\t")
                out[tuple(cols[1].split(" "))] = (
                    float(cols[0]), float(cols[2]) if len(cols) > 2 else 0.0
                )  # fmt: skip
    return out


def main(a: str, b: str) -> int:
    x, y = parse(a), parse(b)
    print(f"{a}: {len(x):,} n-grams; {b}: {len(y):,}; only in the first: {len(set(x) - set(y))}, "
          f"only in the second: {len(set(y) - set(x))}")  # fmt: skip
    common = [g for g in x if g in y and g != ("<s>",)]
    dp = max(abs(x[g][0] - y[g][0]) for g in common)
    db = max(abs(x[g][1] - y[g][1]) for g in common)
    print(f"largest difference: log10 probability {dp:.2e}, log10 back-off {db:.2e}")
    return 0 if set(x) == set(y) and max(dp, db) < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
