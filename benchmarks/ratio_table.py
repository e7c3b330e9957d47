"""One markdown table of torch/rnnkit ratios from several ``bench_rnn.py --json`` files.

Each file becomes a column (named by its argument ``LABEL=FILE``, or by the file's name), one
row per case and mode; ratios below 1.0 in bold; a last row counts the rows >= 1.0.

    python benchmarks/ratio_table.py "1 thread=avx2_1t.json" "2 threads=avx2_2t.json"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    columns = []
    for arg in argv:
        label, _, path = arg.rpartition("=")
        results = json.loads(Path(path).read_text())["results"]
        columns.append((label or Path(path).stem, {(r["case"], r["mode"]): r for r in results}))
    keys = list(dict.fromkeys(k for _, col in columns for k in col))
    print("| case | mode | " + " | ".join(label for label, _ in columns) + " |")
    print("|---|---|" + "---:|" * len(columns))
    for case, mode in keys:
        cells = []
        for _, col in columns:
            r = col.get((case, mode))
            ratio = "" if r is None else f"{r['ratio']:.2f}"
            cells.append(f"**{ratio}**" if r is not None and r["ratio"] < 1 else ratio)
        print(f"| {case} | {mode} | " + " | ".join(cells) + " |")
    counts = []
    for _, col in columns:
        ratios = [r["ratio"] for r in col.values()]
        n_ok = sum(x >= 1 for x in ratios)
        counts.append(f"{n_ok}/{len(ratios)} >= 1.0, worst {min(ratios):.2f}")
    print("| rows >= 1.0 | | " + " | ".join(counts) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
