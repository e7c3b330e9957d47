"""Tiny inputs for every train command (a few KB each), shared by the tests of run configs
and of the Python API: slices of the shared data sets and generated sentences and stories."""

from __future__ import annotations

from pathlib import Path

from test_mt_cli import _corpus, _write
from test_qa_cli import where_stories
from test_tag_cli import _head_sentences

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n") * 5  # fmt: skip


def write_tiny_data(d: Path) -> Path:
    """In ``d``: text.txt (lm), train.tsv (classify, 80 SST-2 rows), eng.train and eng.testa
    (tag, CoNLL-2003), train.de/.en and train.vde/.ven (mt), babi/qa1_where_{train,test}.txt
    (qa). Returns ``d``."""
    (d / "text.txt").write_text(TEXT)
    sst = (SHARED / "sst2" / "train.tsv").read_text().splitlines()
    (d / "train.tsv").write_text("\n".join(sst[:81]) + "\n")
    conll = (SHARED / "tagging" / "conll2003" / "eng.train").read_text().splitlines()
    (d / "eng.train").write_text(_head_sentences(conll, 40))
    (d / "eng.testa").write_text(_head_sentences(conll[400:], 10))
    src, tgt = _corpus(24, 0)
    vsrc, vtgt = _corpus(6, 1)
    for name, lines in (("de", src), ("en", tgt), ("vde", vsrc), ("ven", vtgt)):
        _write(d / f"train.{name}", lines)
    babi = d / "babi"
    babi.mkdir(exist_ok=True)
    (babi / "qa1_where_train.txt").write_text(where_stories(40, 0))
    (babi / "qa1_where_test.txt").write_text(where_stories(10, 1))
    return d
