"""Fuzzing every reader of user files (issue 23): mutated and random inputs end in a parsed
result or one RnnkitError; never another exception, never a hang, and a header that lies
about sizes is refused before anything is allocated.

Each reader gets valid seed files, mutated by hypothesis: flipped bytes, truncation, inserted
and deleted bytes, duplicated or dropped lines, numbers replaced by huge, negative or odd
ones. ``RNNKIT_FUZZ_EXAMPLES`` sets the examples per reader (CI: a bounded, derandomized
count; the long run of RELIABILITY.md: ``RNNKIT_FUZZ_EXAMPLES=3000 pytest
tests/test_fuzz_readers.py``, randomized). A hang is an example that runs past
``HANG_SECONDS`` (an alarm ends it as a failure).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import struct
import tempfile
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.embeddings.vectors import KeyedVectors
from rnnkit.io import RnnkitError
from rnnkit.ngram.arpa import read_arpa
from rnnkit.text.babi import read_babi
from rnnkit.text.parallel import read_parallel
from rnnkit.text.readers import read_labelled_tsv, read_tagged, read_word2vec_text
from rnnkit.text.vocab import Vocab, build_word_vocab
from rnnkit.train.checkpoint import load_checkpoint, save_checkpoint
from rnnkit.train.runconfig import read_config

EXAMPLES = int(os.environ.get("RNNKIT_FUZZ_EXAMPLES", "60"))
LONG = "RNNKIT_FUZZ_EXAMPLES" in os.environ
HANG_SECONDS = 20
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # wall time on a loaded machine is no verdict; the alarm catches hangs
    derandomize=not LONG,  # CI: the same examples every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
WORK = Path(tempfile.mkdtemp(prefix="rnnkit-fuzz-"))

# --- seed files -------------------------------------------------------------------------------

ARPA = b"""\\data\\
ngram 1=5
ngram 2=3

\\1-grams:
-1.0\t<s>\t-0.3
-0.7\t</s>
-0.8\t<unk>
-0.5\tthe\t-0.2
-0.6\tcat\t-0.1

\\2-grams:
-0.2\t<s> the
-0.3\tthe cat
-0.1\tcat </s>

\\end\\
"""
W2V_TEXT = b"3 4\nthe 0.1 0.2 -0.3 0.4\ncat 1 2 3 4\nsat -1e-3 0 0 5.5\n"
GLOVE_TEXT = b"the 0.1 0.2 -0.3\ncat 1 2 3\nsat -1e-3 0 0\n"
W2V_BINARY = b"2 3\n" + b"".join(
    w + b" " + struct.pack("<3f", *v) + b"\n"
    for w, v in ((b"the", (0.1, 2, -3)), (b"cat", (1, 0, 1)))
)
TSV = b"sentence\tlabel\nit is good\t1\na bad film\t0\nfine\t1\n"
CONLL = b"-DOCSTART- O\n\nEU NNP B-ORG\nrejects VBZ O\n\nPeter NNP B-PER\nBlackburn NNP I-PER\n"
CONLLU = (
    b"# sent_id = 1\n1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n"
    b"2\tcat\tcat\tNOUN\tNN\t_\t0\troot\t_\t_\n\n"
    b"1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n1\tdo\tdo\tAUX\tVB\t_\t0\troot\t_\t_\n"
    b"2\tn't\tnot\tPART\tRB\t_\t1\tadvmod\t_\t_\n\n"
)
SRC = b"ein kleiner Hund .\nder Mann liest\n"
TGT = b"a small dog .\nthe man reads\n"
BABI = (
    b"1 Mary moved to the bathroom.\n2 John went to the hallway.\n"
    b"3 Where is Mary? \tbathroom\t1\n1 Sandra went back to the garden.\n"
    b"2 Where is Sandra? \tgarden\t1\n"
)
VOCAB = json.dumps({"tokens": ["<pad>", "<unk>", "the", "cat"], "level": "word", "unk": "<unk>",
                    "eos": None}).encode()  # fmt: skip
TOML = b'hidden = 32\nlr = 0.001\ntrain = ["a.txt"]\nclip_norm = false\n'

# --- mutations --------------------------------------------------------------------------------

ODD_NUMBERS = [b"0", b"-1", b"1000000000", b"1000000000000", b"99999999999999999999999", b"1e308",
               b"nan", b"inf", b"-0", b"0x10", b"\xd9\xa3", b"", b"9" * 5000]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few random edits (or, one time in ten, random bytes)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=400))
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "line", "number"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
                [b"\n", b"\t", b" ", b"\r\n", b"\x00", b"\xff", b"\\", b"\\end\\\n",
                 b"[" * 5000, b"{" * 5000, b"9" * 5000]))  # fmt: skip
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "line":
            lines = bytes(data).split(b"\n")
            k = draw(st.integers(0, len(lines) - 1))
            if draw(st.booleans()):
                lines.insert(k, lines[k])
            else:
                del lines[k]
            data = bytearray(b"\n".join(lines))
        elif op == "number":
            runs = list(re.finditer(rb"-?\d+(\.\d+)?", bytes(data)))
            if runs:
                m = runs[draw(st.integers(0, len(runs) - 1))]
                data[m.start() : m.end()] = draw(st.sampled_from(ODD_NUMBERS))
    return bytes(data)


class Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Hang(f"no answer within {HANG_SECONDS} s")


def parses_or_one_line(read: Callable[[], object]) -> None:
    """The property: ``read()`` returns, or raises RnnkitError with a one-line message; any
    other exception (or a hang) fails the test."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_SECONDS)
    try:
        with warnings.catch_warnings():  # an overflow to inf is no parsed result either
            warnings.simplefilter("error", RuntimeWarning)
            read()
    except RnnkitError as e:
        assert "\n" not in str(e) and str(e), repr(str(e))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def write(name: str, data: bytes, gz: bool = False) -> Path:
    p = WORK / name
    p.write_bytes(gzip.compress(data) if gz else data)
    return p


# --- one property per reader ----------------------------------------------------------------


def test_seed_files_parse():
    """The seeds themselves are valid (so the mutations start from real inputs)."""
    assert len(read_arpa(write("s.arpa", ARPA)).vocab) == 5
    assert len(KeyedVectors.load_word2vec_format(write("s.vec", W2V_TEXT))) == 3
    assert len(KeyedVectors.load_word2vec_format(write("s.glove", GLOVE_TEXT))) == 3
    assert KeyedVectors.load_word2vec_format(write("s.bin", W2V_BINARY)).words == ["the", "cat"]
    assert len(read_labelled_tsv(write("s.tsv", TSV)).labels) == 3
    assert len(read_tagged(write("s.conll", CONLL))) == 2
    assert len(read_tagged(write("s.conllu", CONLLU))) == 2
    assert len(read_parallel(str(write("s.de", SRC)), str(write("s.en", TGT))).src) == 2
    assert len(read_babi(write("qa1_s.txt", BABI)).examples) == 2
    assert Vocab.from_json(VOCAB.decode()).words[2] == "the"
    assert read_config(write("s.toml", TOML))["hidden"] == 32


PRETRAINED_VOCAB = build_word_vocab([["the", "cat", "sat"]])
# reader name -> (seed file, how to read a mutated copy: its bytes and a flag drawn per example)
READERS = {
    "arpa": (ARPA, lambda data, flag: read_arpa(write("f.arpa", data))),
    "word2vec text": (W2V_TEXT, lambda data, flag: KeyedVectors.load_word2vec_format(
        write("f.vec", data), binary=None if flag else False)),
    "word2vec text or binary": (W2V_TEXT, lambda data, flag: KeyedVectors.load_word2vec_format(
        write("f.vec", data), binary=flag)),
    "word2vec binary (gz)": (W2V_BINARY, lambda data, flag: KeyedVectors.load_word2vec_format(
        write("f.bin", data, gz=flag), binary=True)),
    "glove text": (GLOVE_TEXT, lambda data, flag: KeyedVectors.load_word2vec_format(
        write("f.glove", data))),
    "pretrained vectors": (W2V_TEXT, lambda data, flag: read_word2vec_text(
        write("f.pre", data, gz=flag), PRETRAINED_VOCAB)),
    "labelled tsv (gz)": (TSV, lambda data, flag: read_labelled_tsv(write("f.tsv", data, flag))),
    "conll": (CONLL, lambda data, flag: read_tagged(write("f.conll", data))),
    "conllu": (CONLLU, lambda data, flag: read_tagged(write("f.conllu", data))),
    "babi": (BABI, lambda data, flag: read_babi(write("qa1_f.txt", data, gz=flag))),
    "vocabulary json": (VOCAB, lambda data, flag: Vocab.from_json(
        data.decode("utf-8", errors="replace"))),
    "run config toml": (TOML, lambda data, flag: read_config(write("f.toml", data))),
}  # fmt: skip


@pytest.mark.parametrize("reader", sorted(READERS))
@FUZZ
@given(data=st.data(), flag=st.booleans())
def test_fuzz_reader(reader, data, flag):
    seed, read = READERS[reader]
    mutant = data.draw(mutated(seed), label="file")
    parses_or_one_line(lambda: read(mutant, flag))


@FUZZ
@given(mutated(SRC), mutated(TGT), st.booleans())
def test_fuzz_parallel(src, tgt, gz):
    suffix = ".gz" if gz else ""
    parses_or_one_line(lambda: read_parallel(str(write("f.de" + suffix, src, gz)),
                                             str(write("f.en" + suffix, tgt, gz)),
                                             max_len=50))  # fmt: skip


# --- checkpoints: JSON and safetensors, flipped, truncated, lying ----------------------------

CKPT = WORK / "seed-ckpt"
save_checkpoint(
    CKPT, kind="lm",
    params={"weight_ih_l0": np.arange(12.0).reshape(4, 3), "bias_ih_l0": np.ones(4)},
    config={"hidden": 1}, vocab={"tokens": ["a"]}, trainer={"epoch": 1, "step": 3},
    optimizer={"lr": 0.1, "m.weight_ih_l0": np.zeros((4, 3))}, arrays={"h": np.zeros((1, 2))},
)  # fmt: skip
CKPT_FILES = sorted(p.name for p in CKPT.iterdir())


@FUZZ
@given(st.sampled_from(CKPT_FILES), st.data())
def test_fuzz_checkpoint(name, data):
    target = WORK / "f-ckpt"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(CKPT, target)
    (target / name).write_bytes(data.draw(mutated((CKPT / name).read_bytes())))
    parses_or_one_line(lambda: load_checkpoint(target, kind="lm"))


def test_checkpoint_with_a_consistent_lie_is_refused(tmp_path):
    """A safetensors header claiming a huge tensor, recorded in checkpoint.json with matching
    size and sha256 (as a bad tool would write it): refused by the parser, nothing allocated."""
    import hashlib

    path = tmp_path / "ck"
    shutil.copytree(CKPT, path)
    header = json.dumps({"w": {"dtype": "F32", "shape": [10**9, 10**6],
                               "data_offsets": [0, 4 * 10**15]}}).encode()  # fmt: skip
    bad = struct.pack("<Q", len(header)) + header + b"\0" * 16
    (path / "model.safetensors").write_bytes(bad)
    meta = json.loads((path / "checkpoint.json").read_text())
    del meta["sha256"]
    meta["files"]["model.safetensors"] = {"bytes": len(bad),
                                          "sha256": hashlib.sha256(bad).hexdigest()}  # fmt: skip
    (path / "checkpoint.json").write_text(json.dumps(meta))
    with bounded_memory():
        with pytest.raises(RnnkitError, match="model.safetensors: corrupt safetensors file"):
            load_checkpoint(path)


def test_checkpoint_json_cannot_name_a_file_outside_its_folder(tmp_path):
    path = tmp_path / "ck"
    shutil.copytree(CKPT, path)
    (tmp_path / "secret.safetensors").write_bytes(safetensors.numpy.save({"x": np.ones(2)}))
    meta = json.loads((path / "checkpoint.json").read_text())
    del meta["sha256"]
    meta["files"]["../secret.safetensors"] = meta["files"]["model.safetensors"]
    (path / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(RnnkitError, match=r"names an unknown file '\.\./secret\.safetensors'"):
        load_checkpoint(path)


def test_checkpoint_json_with_a_number_beyond_float(tmp_path):
    """Found by the long fuzzing run: "version": 1e318 parses as inf, and computing the file's
    own digest then raised ValueError (JSON has no inf)."""
    path = tmp_path / "ck"
    shutil.copytree(CKPT, path)
    meta = path / "checkpoint.json"
    meta.write_text(meta.read_text().replace('"version": 1,', '"version": 1e318,'))
    with pytest.raises(RnnkitError, match=r"checkpoint\.json: corrupted \(its sha256 differs"):
        load_checkpoint(path)


def test_checkpoint_json_too_deep_or_too_long_a_number(tmp_path):
    path = tmp_path / "ck"
    shutil.copytree(CKPT, path)
    for text in ("[" * 100_000 + "]" * 100_000, '{"version": ' + "9" * 5000 + "}"):
        (path / "checkpoint.json").write_text(text)
        with pytest.raises(RnnkitError, match="checkpoint.json: corrupt JSON"):
            load_checkpoint(path)


# --- headers that lie about sizes: refused before anything is allocated ---------------------


class bounded_memory:
    """Fails if the block allocates more than ``limit`` bytes through Python or NumPy."""

    def __init__(self, limit: int = 64 * 2**20) -> None:
        self.limit = limit

    def __enter__(self) -> None:
        tracemalloc.start()

    def __exit__(self, *exc: object) -> None:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < self.limit, f"peak allocation {peak:,} bytes"


@pytest.mark.parametrize(
    "header", [b"1000000000 1000000", b"1000000000000 300", b"3 1000000000000"]
)
def test_word2vec_binary_header_claiming_huge_sizes(tmp_path, header):
    """The issue's case: a header of 10^9 x 10^6 made `embed similar` allocate 3.55 PiB."""
    path = tmp_path / "v.bin"
    path.write_bytes(header + b"\n" + W2V_BINARY.split(b"\n", 1)[1])
    with bounded_memory():
        with pytest.raises(RnnkitError, match=r"v\.bin: line 1: header says .* needs at least"):
            KeyedVectors.load_word2vec_format(path, binary=True)
        with pytest.raises(RnnkitError, match=r"v\.bin: line 1: header says"):
            KeyedVectors.load_word2vec_format(path)  # detected as binary too


def test_embed_similar_on_a_lying_header_is_one_line(tmp_path, capsys):
    from rnnkit.cli import main

    path = tmp_path / "v.bin"
    path.write_bytes(b"1000000000 1000000\n" + W2V_BINARY.split(b"\n", 1)[1])
    assert main(["embed", "similar", str(path), "the"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rnnkit: error: {path}: line 1: header says") and "\n" not in err


@pytest.mark.parametrize("count", ["1000000000000", "1000000000"])
def test_arpa_header_claiming_huge_counts(tmp_path, count):
    path = tmp_path / "lm.arpa"
    path.write_bytes(ARPA.replace(b"ngram 2=3", b"ngram 2=" + count.encode()))
    with bounded_memory():
        with pytest.raises(RnnkitError, match=rf"lm\.arpa:\d+: the file ends inside the 2-grams "
                           rf"\(\d+ of {count}\)"):  # fmt: skip
            read_arpa(path)


def test_word2vec_text_value_beyond_float32(tmp_path):
    """Found by fuzzing: 1e308 is a finite float64 but became inf as float32, silently."""
    path = tmp_path / "v.txt"
    path.write_bytes(b"the 1e308 0.2 -0.3\ncat 1 2 3\n")
    with pytest.raises(RnnkitError, match=r"v\.txt: line 1: '1e308' is beyond float32's range"):
        KeyedVectors.load_word2vec_format(path)


def test_word2vec_text_header_claiming_huge_counts(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"1000000000 4\n" + W2V_TEXT.split(b"\n", 1)[1])
    with bounded_memory():
        with pytest.raises(RnnkitError, match=r"header says 1000000000 words, found 3 lines"):
            KeyedVectors.load_word2vec_format(path)


def test_gzip_that_inflates_beyond_the_input_limit(tmp_path, monkeypatch):
    """A 100 KB gzip file of 100 MB of zeros, under a 1 MB input limit: refused while
    decompressing, not after."""
    monkeypatch.setenv("RNNKIT_MAX_INPUT_BYTES", str(2**20))
    path = tmp_path / "bomb.txt.gz"
    path.write_bytes(gzip.compress(b"\0" * 10**8))
    with bounded_memory(32 * 2**20):
        with pytest.raises(RnnkitError, match=r"bomb\.txt\.gz: decompresses to more than the "
                           r"1,048,576 bytes an input may hold"):  # fmt: skip
            read_labelled_tsv(path)
    (tmp_path / "big.tsv").write_bytes(b"a\t1\n" * 300_000)
    with pytest.raises(RnnkitError, match=r"big\.tsv: 1,200,000 bytes, more than the 1,048,576"):
        read_labelled_tsv(tmp_path / "big.tsv")


def test_gzip_members_and_truncation(tmp_path):
    path = tmp_path / "two.tsv.gz"
    path.write_bytes(gzip.compress(b"good film\t1\n") + gzip.compress(b"bad film\t0\n"))
    assert read_labelled_tsv(path).labels == ["1", "0"]
    path.write_bytes(gzip.compress(b"good film\t1\n" * 100)[:-9])
    with pytest.raises(RnnkitError, match=r"two\.tsv\.gz: corrupt gzip file"):
        read_labelled_tsv(path)


def test_json_and_toml_nested_too_deep_or_numbers_too_long(tmp_path):
    """Found while fuzzing the checkpoint's JSON: json.loads raises RecursionError on [[[[...
    and ValueError (not JSONDecodeError) on a 5000-digit integer; tomllib recurses too."""
    for text in ("[" * 100_000, '{"tokens": [' + "9" * 5000 + "]}"):
        with pytest.raises(RnnkitError, match="vocabulary: invalid JSON"):
            Vocab.from_json(text)
    (tmp_path / "deep.toml").write_text("a = " + "[" * 100_000)
    with pytest.raises(RnnkitError, match=r"deep\.toml: not valid TOML: nested too deep"):
        read_config(tmp_path / "deep.toml")
    (tmp_path / "long.toml").write_text("hidden = " + "9" * 5000)
    with pytest.raises(RnnkitError, match=r"long\.toml: not valid TOML: Exceeds the limit"):
        read_config(tmp_path / "long.toml")


def test_header_counts_of_thousands_of_digits(tmp_path):
    """Found after adding 5000-digit numbers to the mutations: int() of more than 4300
    digits raises ValueError (not RnnkitError): word2vec and ARPA headers, bAbI IDs."""
    big = "9" * 5000
    (tmp_path / "h.vec").write_text(f"{big} 4\nthe 1 2 3 4\n")
    with pytest.raises(RnnkitError, match=r"h\.vec: line 1: header numbers too large"):
        KeyedVectors.load_word2vec_format(tmp_path / "h.vec")
    with pytest.raises(RnnkitError, match=r"h\.vec:1: expected a header 'N D'"):
        read_word2vec_text(tmp_path / "h.vec", build_word_vocab([["the"]]))
    (tmp_path / "qa1_h.txt").write_text(f"{big} Mary moved.\n")
    with pytest.raises(RnnkitError, match=r"qa1_h\.txt:1: expected 'ID text'"):
        read_babi(tmp_path / "qa1_h.txt")
    (tmp_path / "qa1_s.txt").write_text(f"1 Mary moved.\n2 Where is Mary?\toffice\t{big}\n")
    with pytest.raises(RnnkitError, match=r"qa1_s\.txt:2: supporting fact"):
        read_babi(tmp_path / "qa1_s.txt")
    (tmp_path / "h.arpa").write_text(f"\\data\\\nngram 1={big}\n")
    with pytest.raises(RnnkitError, match=r"h\.arpa:2: count too large"):
        read_arpa(tmp_path / "h.arpa")
