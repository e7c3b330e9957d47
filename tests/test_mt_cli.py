"""``rnnkit mt`` and ``rnnkit bleu`` end to end on a toy corpus: training with validation
BLEU, exact resume, translation (files, stdin, n-best, empty and over-long lines, unknown
words), error analysis, attention heatmaps, and clear errors for bad input."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest
from sacrebleu.metrics import BLEU
from safetensors.numpy import load_file

from rnnkit.cli import main

WORDS = ["haus", "katze", "hund", "baum", "mann", "frau", "kind", "auto"]
ENGLISH = {"haus": "house", "katze": "cat", "hund": "dog", "baum": "tree", "mann": "man",
           "frau": "woman", "kind": "child", "auto": "car"}  # fmt: skip


def _corpus(n, seed):
    r = np.random.default_rng(seed)
    src, tgt = [], []
    for _ in range(n):
        ws = list(r.choice(WORDS, size=int(r.integers(1, 5))))
        src.append("der " + " ".join(ws) + " .")
        tgt.append("The " + " ".join(ENGLISH[w] for w in ws) + ".")
    return src, tgt


def _write(path, lines, gz=False):
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("mt")
    src, tgt = _corpus(48, 0)
    src[5], tgt[7] = "", ""  # empty lines: skipped in training, and counted
    vsrc, vtgt = _corpus(12, 1)
    return {
        "src": _write(d / "train.de.gz", src, gz=True), "tgt": _write(d / "train.en", tgt),
        "vsrc": _write(d / "val.de", vsrc), "vtgt": _write(d / "val.en", vtgt), "dir": d,
    }  # fmt: skip


TRAIN_ARGS = ["--cell", "gru", "--embed", "8", "--hidden", "6", "--dec-hidden", "10",
              "--batch-size", "8", "--epochs", "2", "--min-count", "1", "--lr", "0.01",
              "--dropout", "0.1", "--no-progress", "--seed", "3"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(files):
    out = files["dir"] / "run"
    rc = main(
        [
            "mt",
            "train",
            "--src",
            files["src"],
            "--tgt",
            files["tgt"],
            "--valid-src",
            files["vsrc"],
            "--valid-tgt",
            files["vtgt"],
            "--out",
            str(out),
            *TRAIN_ARGS,
        ]
    )
    assert rc == 0
    return out


def test_train_outputs(trained, capsys):
    records = [json.loads(x) for x in (trained / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert len(epochs) == 2
    assert (trained / "best" / "checkpoint.json").exists()
    assert (trained / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((trained / "summary.json").read_text())
    assert "bleu_beam5" in summary["valid"] and "tok:13a" in summary["valid"]["signature"]


def test_copy_task_bleu(tmp_path, capsys):
    """Copying is learnable in seconds: the validation BLEU must end far above what a model
    that learnt nothing scores, and must be sacrebleu's on the model's own greedy output."""
    r = np.random.default_rng(0)
    lines = [" ".join(r.choice(WORDS, size=int(r.integers(4, 8)))) for _ in range(330)]
    train, valid = _write(tmp_path / "t", lines[:300]), _write(tmp_path / "v", lines[300:])
    out = tmp_path / "copy"
    args = ["--cell", "gru", "--embed", "16", "--hidden", "16", "--dec-hidden", "16",
            "--batch-size", "16", "--epochs", "10", "--min-count", "1", "--lr", "0.02",
            "--no-progress", "--seed", "3"]  # fmt: skip
    assert main(["mt", "train", "--src", train, "--tgt", train, "--valid-src", valid,
                 "--valid-tgt", valid, "--out", str(out), *args]) == 0  # fmt: skip
    bleu = json.loads((out / "summary.json").read_text())["valid"]["bleu_greedy"]
    capsys.readouterr()
    assert main(["mt", "translate", str(out), valid, "--greedy"]) == 0
    hyps = capsys.readouterr().out.splitlines()
    ref = BLEU().corpus_score(hyps, [lines[300:]]).score
    assert bleu > 50 and abs(bleu - ref) < 1e-9, (bleu, ref)


def test_resume_is_exact(files, tmp_path, capsys):
    base = ["mt", "train", "--src", files["src"], "--tgt", files["tgt"], "--valid-src",
            files["vsrc"], "--valid-tgt", files["vtgt"]]  # fmt: skip
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([*base, "--out", str(a), *TRAIN_ARGS]) == 0
    assert main([*base, "--out", str(b), *TRAIN_ARGS, "--max-steps", "4"]) == 0
    assert "continue with --resume" in capsys.readouterr().out
    assert main(["mt", "train", "--out", str(b), "--resume", "--no-progress"]) == 0
    wa = load_file(str(a / "checkpoint" / "model.safetensors"))
    wb = load_file(str(b / "checkpoint" / "model.safetensors"))
    assert max(float(np.abs(wa[k] - wb[k]).max()) for k in wa) == 0.0
    # only --epochs may change on resume
    assert main(["mt", "train", "--out", str(b), "--resume", "--hidden", "9"]) == 2
    # a second run into the same folder needs --resume
    assert main([*base, "--out", str(a), *TRAIN_ARGS]) == 1
    assert "already holds a checkpoint" in capsys.readouterr().err


def test_translate(trained, files, tmp_path, capsys, monkeypatch):
    inp = _write(tmp_path / "in.de", ["der katze hund .", "", "der zebra ."])
    assert main(["mt", "translate", str(trained), inp, "--beam", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[1] == ""  # one line out per line in, empty for empty
    # n-best in Moses format, best first
    assert main(["mt", "translate", str(trained), inp, "--beam", "3", "--n-best", "2"]) == 0
    nbest = [x.split(" ||| ") for x in capsys.readouterr().out.splitlines()]
    assert [x[0] for x in nbest] == ["0", "0", "1", "2", "2"]
    assert float(nbest[0][2]) >= float(nbest[1][2])
    # stdin, greedy = beam 1
    monkeypatch.setattr("sys.stdin", open(inp))
    assert main(["mt", "translate", str(trained), "-", "--greedy"]) == 0
    greedy = capsys.readouterr().out
    assert main(["mt", "translate", str(trained), inp, "--beam", "1"]) == 0
    assert capsys.readouterr().out == greedy
    # sampling: reproducible with --seed; --max-len-a/b bound the output length
    args = ["mt", "translate", str(trained), inp, "--sample", "--seed", "4", "--temperature", "2"]
    assert main(args) == 0 and main(args) == 0
    runs = capsys.readouterr().out.splitlines()
    assert len(runs) == 6 and runs[:3] == runs[3:]
    assert main(["mt", "translate", str(trained), inp, "--max-len-a", "0", "--max-len-b", "2"]) == 0
    assert all(len(x.split()) <= 2 for x in capsys.readouterr().out.splitlines())
    assert main(["mt", "translate", str(trained), inp, "--greedy", "--n-best", "2"]) == 2
    capsys.readouterr()
    # over-long line: an error naming file and line
    long = _write(tmp_path / "long.de", ["der haus .", "der " + "haus " * 30 + "."])
    assert main(["mt", "translate", str(trained), long, "--max-src-len", "20"]) == 1
    assert f"{long}:2: 32 tokens" in capsys.readouterr().err
    # beam width 0
    assert main(["mt", "translate", str(trained), inp, "--beam", "0"]) == 2
    assert "--beam" in capsys.readouterr().err


def test_analyze_and_attention(trained, files, tmp_path, capsys):
    js = tmp_path / "analysis.json"
    rc = main(["mt", "analyze", str(trained), "--src", files["vsrc"], "--ref", files["vtgt"],
               "--beam", "2", "--json", str(js)])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "| search: P(y*|x) > P(y^|x) |" in out and "BLEU" in out
    data = json.loads(js.read_text())
    c = data["counts"]
    assert c["correct"] + c["search"] + c["model"] == c["pairs"] == 12
    rec = json.loads((trained / "scores.jsonl").read_text().splitlines()[-1])  # on record
    assert rec["data"] == [files["vsrc"], files["vtgt"]] and rec["figures"]["counts"] == c
    assert rec["figures"]["bleu"] == data["bleu"] and rec["command"][:2] == ["rnnkit", "mt"]
    for row in data["rows"]:
        if row["verdict"] == "search":
            assert row["ref_score"] > row["out_score"]
        elif row["verdict"] == "model":
            assert row["ref_score"] <= row["out_score"]
    png = tmp_path / "att.png"
    assert main(["mt", "attention", str(trained), "der katze hund .", "--out", str(png)]) == 0
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", head[16:24])
    assert w > 100 and h > 100
    assert main(["mt", "attention", str(trained), "  ", "--out", str(png)]) == 1


def test_bad_input(files, tmp_path, capsys):
    short = _write(tmp_path / "short.en", ["The cat."] * 5)
    rc = main(["mt", "train", "--src", files["src"], "--tgt", short, "--out",
               str(tmp_path / "x"), "--no-progress"])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert "has 48 lines but" in err and "has 5" in err and err.count("\n") == 1
    empty_valid = _write(tmp_path / "v.en", ["The cat."] * 11 + [""])
    rc = main(
        [
            "mt",
            "train",
            "--src",
            files["src"],
            "--tgt",
            files["tgt"],
            "--valid-src",
            files["vsrc"],
            "--valid-tgt",
            empty_valid,
            "--out",
            str(tmp_path / "y"),
        ]
    )
    assert rc == 1 and f"{empty_valid}:12: empty line" in capsys.readouterr().err
    assert main(["mt", "translate", str(tmp_path / "nope"), files["vsrc"]]) == 1
    assert "rnnkit: error:" in capsys.readouterr().err


def test_bleu_command(files, tmp_path, capsys):
    refs = [x for x in open(files["vtgt"]).read().splitlines()]
    hyps = [" ".join(r.split()[:-1]) for r in refs]
    hyps[3] = ""
    hyp = _write(tmp_path / "hyp.en", hyps)
    ref2 = _write(tmp_path / "ref2.en", [r.lower() for r in refs])
    assert main(["bleu", hyp, files["vtgt"], ref2]) == 0
    line, sig = capsys.readouterr().out.splitlines()
    expected = BLEU().corpus_score(hyps, [refs, [r.lower() for r in refs]])
    assert line == str(expected)
    assert sig.startswith("nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:rnnkit-")
    assert main(["bleu", hyp, files["vtgt"], "--smooth", "floor", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    ref = BLEU(smooth_method="floor").corpus_score(hyps, [refs])
    assert abs(got["score"] - ref.score) < 0.01
    assert main(["bleu", hyp, files["tgt"]]) == 1
    assert "has 12 lines but" in capsys.readouterr().err


def test_replace_unk_copies_the_attended_source_word(trained):
    from rnnkit.models.translate import translate_tokens
    from rnnkit.recipes.mt import load_translator
    from rnnkit.text.vocab import UNK

    tr = load_translator(trained)
    tr.model.params["generator.bias"][tr.tgt_vocab.stoi[UNK]] += 50.0  # always <unk>
    src = ["der", "zebra", "katze", "."]
    plain = translate_tokens(tr, [src], "greedy", with_attention=True)[0][0]
    assert set(plain.tokens) == {UNK}
    fixed = translate_tokens(tr, [src], "greedy", replace_unk=True)[0][0]
    assert fixed.tokens == [src[int(np.argmax(row))] for row in plain.attention[:-1]]
