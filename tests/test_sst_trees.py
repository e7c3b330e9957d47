"""The SST tree reader: GLUE's own SST-2 dev file is the reference for the conversion."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from rnnkit.io import RnnkitError
from rnnkit.text.sst import read_sst_binary, sst_sentence

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ROOT = Path(__file__).resolve().parents[1]


def test_dev_trees_become_glue_dev_exactly():
    ours = Counter(read_sst_binary(DATA / "sst_trees" / "dev.txt"))
    lines = (DATA / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    glue = Counter((s.strip(), int(y)) for s, y in (line.split("\t") for line in lines))
    assert sum(glue.values()) == 872 and ours == glue


def test_test_split_counts():
    rows = read_sst_binary(DATA / "sst_trees" / "test.txt")
    labels = Counter(y for _, y in rows)
    assert (len(rows), labels[0], labels[1]) == (1821, 279 + 633, 510 + 399)


def test_bad_trees_are_one_line(tmp_path):
    assert sst_sentence("(1 (2 not) (1 good))") == ("not good", 1)
    p = tmp_path / "t.txt"
    p.write_text("(3 (2 fine) (3 film))\n(9 broken\n", encoding="utf-8")
    with pytest.raises(RnnkitError, match=r"t\.txt:2: not a sentiment tree"):
        read_sst_binary(p)
    p.write_text("(2 (2 so) (2 so))\n", encoding="utf-8")
    with pytest.raises(RnnkitError, match="no non-neutral sentence"):
        read_sst_binary(p)


def test_tool_writes_a_tsv_or_one_line(tmp_path):
    script = str(ROOT / "tools" / "data" / "sst_binary_tsv.py")
    trees = tmp_path / "t.txt"
    lines = "(4 (3 A) (4 (2 -LRB-) (4 (4 joy) (2 -RRB-))))\n(0 (0 Bad) (2 .))\n"
    trees.write_text(lines, encoding="utf-8")
    out = tmp_path / "o.tsv"
    r = subprocess.run([sys.executable, script, str(trees), str(out)], capture_output=True,
                       text=True, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert out.read_text(encoding="utf-8") == "sentence\tlabel\na ( joy )\t1\nbad .\t0\n"
    trees.write_text("not a tree\n", encoding="utf-8")
    r = subprocess.run([sys.executable, script, str(trees), str(tmp_path / "x.tsv")],
                       capture_output=True, text=True, check=False)  # fmt: skip
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "t.txt:1" in r.stderr
    assert not (tmp_path / "x.tsv").exists()
