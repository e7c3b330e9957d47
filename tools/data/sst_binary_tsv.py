"""Write the binary (SST-2) sentences of a Stanford Sentiment Treebank tree file as a TSV.

The layout is GLUE's (a ``sentence<TAB>label`` header, GLUE's tokens), which
``rnnkit classify eval`` reads::

    python tools/data/sst_binary_tsv.py ../shared/data/sst_trees/test.txt runs/sst_test.tsv

Bad input is one line naming the file and line, and exit status 1.
"""

from __future__ import annotations

import sys

from rnnkit.io import RnnkitError, atomic_write
from rnnkit.text.sst import read_sst_binary


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: sst_binary_tsv.py TREES OUT.tsv", file=sys.stderr)
        return 2
    try:
        rows = read_sst_binary(argv[0])
        with atomic_write(argv[1]) as f:
            f.write("sentence\tlabel\n")
            f.writelines(f"{s}\t{y}\n" for s, y in rows)
    except (RnnkitError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{argv[1]}: {len(rows)} sentences", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
