"""ONNX export (``rnnkit.deploy.onnx``, ``rnnkit export``) held to onnxruntime.

The layers alone (every cell and form, 1-2 layers, one or two directions, with and without
lengths and initial states) are the proof of the gate reorderings and of the GRU's
``linear_before_reset``: onnxruntime runs ONNX's own RNN/LSTM/GRU kernels on the exported
weights and must give rnnkit's outputs and final states within 1e-5 (float32). Then the
task models, on random and ragged batches, two batch sizes and lengths per exported file;
then ``rnnkit export`` on trained runs and its bad inputs. onnx and onnxruntime are test
dependencies: a missing one fails this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from rnnkit.cli import main
from rnnkit.deploy import onnx as export
from rnnkit.engine.layers import GRU, LSTM, RNN
from rnnkit.models.classify import ClassifierConfig, SequenceClassifier
from rnnkit.models.lm import LanguageModel, LMConfig
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig, make_batch
from rnnkit.models.tag import SequenceTagger, TagBatch, TaggerConfig, make_tag_batch
from rnnkit.recipes.lm import load_lm
from rnnkit.recipes.mt import load_translator
from rnnkit.recipes.task import load_classifier, load_tagger
from rnnkit.train.checkpoint import save_checkpoint
from rnnkit.train.loop import run_checkpoint

TOL = 1e-5
SHAPES = [(3, 7), (5, 2)]  # (B, T): two calls of one exported file


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    onnx.checker.check_model(model, full_check=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])  # fmt: skip


def close(ours, theirs, what: str) -> None:
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {theirs.shape}, rnnkit {ours.shape}"
    err = float(np.abs(ours - theirs).max())
    assert np.allclose(theirs, ours, rtol=TOL, atol=TOL), f"{what}: max |diff| {err:.3g}"


def ragged(rng: np.random.Generator, B: int, T: int) -> np.ndarray:
    """Lengths in [1, T], one of them T and one 1 where B allows."""
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T
    lengths[-1] = 1 if B > 1 else T
    return lengths


# --- the layers alone ------------------------------------------------------------------------

CELLS = {
    "rnn-tanh": lambda **kw: RNN(4, 5, nonlinearity="tanh", **kw),
    "rnn-relu": lambda **kw: RNN(4, 5, nonlinearity="relu", **kw),
    "rnn-sigmoid": lambda **kw: RNN(4, 5, nonlinearity="sigmoid", **kw),
    "lstm": lambda **kw: LSTM(4, 5, **kw),
    "lstm-peepholes": lambda **kw: LSTM(4, 5, peepholes=True, **kw),
    "lstm-nobias": lambda **kw: LSTM(4, 5, bias=False, **kw),
    "gru-reset-after": lambda **kw: GRU(4, 5, reset_after=True, **kw),  # linear_before_reset=1
    "gru-textbook": lambda **kw: GRU(4, 5, reset_after=False, **kw),  # linear_before_reset=0
    "gru-nobias": lambda **kw: GRU(4, 5, bias=False, **kw),
}


def layer_case(layer, lengths: bool, state: bool, rng: np.random.Generator) -> None:
    sess = session(export.layer_graph(layer, lengths=lengths, state=state))
    LD = layer.num_layers * layer.num_directions
    for B, T in SHAPES:
        x = rng.standard_normal((B, T, layer.input_size)).astype(np.float32)
        feed, kw = {"x": x}, {}
        if lengths:
            feed["lengths"] = kw["lengths"] = ragged(rng, B, T)
        if state:
            parts = [rng.standard_normal((LD, B, layer.hidden_size)).astype(np.float32)
                     for _ in range(layer.n_states)]  # fmt: skip
            feed.update(zip(["h0", "c0"], parts, strict=False))
            kw["state"] = tuple(parts) if len(parts) == 2 else parts[0]
        out, final = layer(x, **kw)
        got = sess.run(None, feed)
        finals = final if isinstance(final, tuple) else (final,)
        assert len(got) == 1 + len(finals)
        what = f"{layer!r} lengths={lengths} state={state} (B, T)={(B, T)}"
        for name, ours, theirs in zip(["y", "h", "c"], [out, *finals], got, strict=False):
            close(ours, theirs, f"{what}: {name}")


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", list(CELLS))
def test_layer_matches_onnxruntime(cell, layers, bidirectional):
    rng = np.random.default_rng([layers, bidirectional, len(cell)])
    # weights wider than PyTorch's default U(+-1/sqrt(H)), so that every gate matters
    layer = CELLS[cell](num_layers=layers, bidirectional=bidirectional, seed=1, init_range=0.8)
    for lengths in (False, True):
        for state in (False, True):
            layer_case(layer, lengths, state, rng)


@pytest.mark.parametrize("cell", ["lstm", "gru-reset-after"])
def test_the_comparison_catches_a_wrong_gate_order(cell, monkeypatch):
    """The layers' check fails if the weights keep PyTorch's gate order (so it can fail)."""
    monkeypatch.setitem(export.GATE_ORDER, "LSTM", [0, 1, 2, 3])
    monkeypatch.setitem(export.GATE_ORDER, "GRU", [0, 1, 2])
    layer = CELLS[cell](seed=1, init_range=0.8)
    with pytest.raises(AssertionError, match="max"):
        layer_case(layer, False, False, np.random.default_rng(0))


def test_gru_forms_are_told_apart(monkeypatch):
    """The textbook GRU exported as the PyTorch form (linear_before_reset=1) fails."""
    layer = GRU(4, 5, reset_after=False, seed=2, init_range=0.8)
    monkeypatch.setattr(layer, "reset_after", True)  # only the export reads it here
    graph = export.layer_graph(layer)
    monkeypatch.setattr(layer, "reset_after", False)
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
    (y,) = session(graph).run(["y"], {"x": x})
    assert np.abs(y - layer(x)[0]).max() > 1e-3


def test_float64_is_refused_in_one_line():
    with pytest.raises(ValueError, match="float64; only float32 models are exported"):
        export.layer_graph(LSTM(3, 4, dtype=np.float64))


# --- the task models --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg",
    [
        dict(cell="lstm", layers=2),
        dict(cell="gru", layers=1),
        dict(cell="rnn", layers=2, nonlinearity="relu"),
        dict(cell="lstm", layers=1, embed=6, hidden=6, tie_weights=True),
    ],
    ids=["lstm2", "gru1", "rnn-relu2", "lstm-tied"],
)
def test_language_model(cfg):
    kw = {"embed": 5, "hidden": 6} | cfg
    model = LanguageModel(LMConfig(vocab_size=11, init_range=0.5, **kw), seed=3)
    sess = session(export.lm_graph(model))
    names = [o.name for o in sess.get_outputs()]
    rng = np.random.default_rng(4)
    for B, T in SHAPES:
        ids = rng.integers(0, 11, (B, T))
        _, state, cache = model.forward(ids, None, None, training=False)
        got = dict(zip(names, sess.run(None, {"ids": ids}), strict=True))  # no state: zeros
        close(cache["logits"], got["logits"], f"logits {(B, T)}")
        finals = state if isinstance(state, tuple) else (state,)
        for n, s in zip(["h", "c"], finals, strict=False):
            close(s, got[n], f"{n} {(B, T)}")
        # continuing from a fed state: the second half of the text, given the first's state
        if T > 2:
            first = dict(zip(names, sess.run(None, {"ids": ids[:, :3]}), strict=True))
            feed = {"ids": ids[:, 3:], "h0": first["h"]}
            if "c" in first:
                feed["c0"] = first["c"]
            rest = dict(zip(names, sess.run(None, feed), strict=True))
            close(cache["logits"][:, 3:], rest["logits"], "logits continued from a state")


@pytest.mark.parametrize(
    "cfg",
    [
        dict(cell="lstm", pooling="max", bidirectional=True, layers=2),
        dict(cell="gru", pooling="mean", bidirectional=True, layers=1),
        dict(cell="lstm", pooling="last", bidirectional=True, layers=2),
        dict(cell="rnn", pooling="last", bidirectional=False, layers=1),
        dict(cell="gru", pooling="max", bidirectional=False, layers=2),
        dict(cell="rnn", pooling="mean", bidirectional=False, layers=2, nonlinearity="relu"),
    ],
    ids=lambda c: "-".join(str(v) for v in c.values()),
)
def test_classifier_on_ragged_batches(cfg):
    model = SequenceClassifier(ClassifierConfig(vocab_size=13, num_classes=3, embed=4,
                                                hidden=5, **cfg), seed=5)  # fmt: skip
    sess = session(export.classifier_graph(model))
    rng = np.random.default_rng(6)
    for B, T in SHAPES:
        for lengths in (np.full(B, T), ragged(rng, B, T)):  # random, then ragged
            ids = rng.integers(0, 13, (B, T))
            _, logits, _ = model.forward(ids, lengths, None, training=False)
            got_logits, got_probs = sess.run(None, {"ids": ids, "lengths": lengths})
            close(logits, got_logits, f"logits {(B, T)} lengths {lengths.tolist()}")
            close(model.predict_proba(ids, lengths), got_probs, "probs")


@pytest.mark.parametrize(
    "cfg",
    [
        dict(cell="lstm", char_vocab_size=9),
        dict(cell="gru", char_vocab_size=0, layers=1),
        dict(cell="rnn", char_vocab_size=7),
    ],  # fmt: skip
    ids=["lstm-chars", "gru-words", "rnn-chars"],
)
def test_tagger_on_ragged_batches(cfg):
    model = SequenceTagger(TaggerConfig(vocab_size=12, num_tags=4, embed=4, char_embed=3,
                                        char_hidden=2, hidden=5, **cfg), seed=7)  # fmt: skip
    sess = session(export.tagger_graph(model))
    rng = np.random.default_rng(8)
    for B, T in SHAPES:
        lengths = ragged(rng, B, T)
        ids = rng.integers(0, 12, (B, T))
        batch, feed = TagBatch(ids, lengths), {"ids": ids, "lengths": lengths}
        if model.use_chars:
            U, Lc = 6, 4  # distinct words of the batch, and their longest
            chars = rng.integers(0, cfg["char_vocab_size"], (U, Lc))
            char_lengths = ragged(rng, U, Lc)
            word_index = rng.integers(0, U, (B, T))
            batch = TagBatch(ids, lengths, chars, char_lengths, word_index)
            feed |= {"chars": chars, "char_lengths": char_lengths, "word_index": word_index}
        _, logits, _ = model.forward(batch, None, training=False)
        got_logits, got_tags = sess.run(None, feed)
        close(logits, got_logits, f"logits {(B, T)}")
        valid = np.arange(T)[None, :] < lengths[:, None]
        assert (got_tags == model.predict(batch))[valid].all()


def outputs(sess: ort.InferenceSession, feed: dict) -> dict:
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feed), strict=True))


def translator_case(model: Seq2Seq, src: list, steps: int = 4) -> None:
    """Greedy decoding: rnnkit's step function and the exported encoder + decoder step, fed
    back for ``steps`` steps; log P and the states compared at every step."""
    graphs = export.translator_graphs(model)
    enc, dec = session(graphs["encoder"]), session(graphs["decoder"])
    s, sl = make_batch(src, None, bos=2, eos=3)
    mem, state = model.init_decoder(s, sl)
    step = model.step_fn(mem)
    current = outputs(enc, {"src": s, "src_len": sl}) | {"src_len": sl}
    rnn = state["rnn"] if isinstance(state["rnn"], tuple) else (state["rnn"],)
    for n, ours in zip(["h", "c"], rnn, strict=False):
        close(ours, current[n], f"initial {n}")
    for k in ("keys", "proj"):
        if mem is not None and mem[k] is not None:
            close(mem[k], current[k], f"memory {k}")
    needs = [i.name for i in dec.get_inputs() if i.name != "token"]
    tokens = np.full(len(src), 2)  # BOS
    for t in range(steps):
        log_probs, state = step(tokens, state)
        got = outputs(dec, {"token": tokens} | {k: current[k] for k in needs})
        close(log_probs, got["log_probs"], f"log P at step {t}")
        rnn = state["rnn"] if isinstance(state["rnn"], tuple) else (state["rnn"],)
        for n, ours in zip(["h", "c"], rnn, strict=False):
            close(ours, got[n + "_next"], f"{n} after step {t}")
            current[n] = got[n + "_next"]
        if model.config.input_feed:
            close(state["feed"], got["feed_next"], f"feed after step {t}")
            current["feed"] = got["feed_next"]
        tokens = log_probs.argmax(axis=1)


@pytest.mark.parametrize(
    "cfg",
    [
        dict(cell="gru", attention="general", input_feed=True, bidirectional=True),
        dict(cell="lstm", attention="additive", input_feed=True, reverse_source=True,
             layers=2, dec_hidden=7),
        dict(cell="lstm", attention="none", bidirectional=False, reverse_source=True, layers=2),
        dict(cell="rnn", attention="dot", bidirectional=True),
        dict(cell="gru", attention="general", bidirectional=False, layers=2, dec_hidden=6,
             reverse_source=True),
        dict(cell="lstm", attention="dot", input_feed=True, bidirectional=False),
    ],
    ids=lambda c: "-".join(str(v) for v in c.values()),
)  # fmt: skip
def test_translation_encoder_and_decoder_step(cfg):
    kw = {"bidirectional": False} | cfg
    model = Seq2Seq(Seq2SeqConfig(src_vocab=9, tgt_vocab=8, embed=4, hidden=3, **kw), seed=11)
    rng = np.random.default_rng(12)
    for lengths in ([5, 2, 3], [1, 4]):  # ragged sources, two batch sizes and lengths
        translator_case(model, [rng.integers(4, 9, n).tolist() for n in lengths])


def test_translation_attention_is_rnnkits():
    """alpha of the decoder step, teacher-forced on a target, equals rnnkit's scoring
    weights (over the source as given, also when the model reads it reversed)."""
    for reverse in (False, True):
        model = Seq2Seq(Seq2SeqConfig(src_vocab=9, tgt_vocab=8, embed=4, hidden=3,
                                      reverse_source=reverse), seed=13)  # fmt: skip
        graphs = export.translator_graphs(model)
        enc, dec = session(graphs["encoder"]), session(graphs["decoder"])
        src, tgt = [[4, 5, 6, 7], [8, 5]], [[4, 6, 5], [7, 7, 7]]
        _, alphas = model.score(src, tgt, bos=2, eos=3)
        s, sl = make_batch(src, None, bos=2, eos=3)
        current = outputs(enc, {"src": s, "src_len": sl}) | {"src_len": sl}
        needs = [i.name for i in dec.get_inputs() if i.name != "token"]
        inputs = np.array([[2, *t] for t in tgt])  # BOS y
        for t in range(inputs.shape[1]):
            got = outputs(dec, {"token": inputs[:, t]} | {k: current[k] for k in needs})
            current |= {k[: -len("_next")]: v for k, v in got.items() if k.endswith("_next")}
            for b, n in enumerate(sl):
                close(alphas[b][t], got["alpha"][b, :n], f"alpha step {t} reverse={reverse}")


# --- rnnkit export on trained runs ---------------------------------------------------------------

WORDS = "the a good bad film plot was very dull fine great awful".split()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny runs of each exportable kind, trained for one epoch by the command line."""
    d = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(9)
    sents = [[str(w) for w in rng.choice(WORDS, rng.integers(1, 9))] for _ in range(40)]
    (d / "train.tsv").write_text("".join(f"{' '.join(s)}\t{int('good' in s)}\n" for s in sents))
    (d / "train.conll").write_text(
        "\n".join("".join(f"{w} {'ADJ' if w in WORDS[2:4] else 'X'}\n" for w in s) for s in sents)
    )
    (d / "text.txt").write_text("\n".join(" ".join(s) for s in sents) * 3)
    (d / "src.txt").write_text("".join(" ".join(s) + "\n" for s in sents))
    (d / "tgt.txt").write_text("".join(" ".join(s).upper() + "\n" for s in sents))
    small = ["--epochs", "1", "--batch-size", "8", "--no-progress", "--embed", "6", "--hidden",
             "5"]  # fmt: skip
    commands = {
        "lm": ["lm", "train", str(d / "text.txt"), "--layers", "2", "--bptt", "10",
               *small],
        "classifier": ["classify", "train", str(d / "train.tsv"), "--layers", "2", *small],
        "tagger": ["tag", "train", str(d / "train.conll"), "--char-embed", "3",
                   "--char-hidden", "2", "--valid", str(d / "train.conll"), *small],
        "mt": ["mt", "train", "--src", str(d / "src.txt"), "--tgt", str(d / "tgt.txt"),
               "--min-count", "1", "--attention", "additive", *small],
    }  # fmt: skip
    for kind, argv in commands.items():
        assert main([*argv, "--out", str(d / kind)]) == 0
    return d


def exported(runs: Path, kind: str, path: Path, capsys) -> list[onnx.ModelProto]:
    """``rnnkit export`` of a run; its files, checked, with the run's metadata."""
    assert main(["export", str(runs / kind), "--onnx", str(path)]) == 0
    printed = capsys.readouterr().out
    files = export.output_paths(path, kind)
    saved = json.loads((run_checkpoint(runs / kind) / "checkpoint.json").read_text())
    graphs = []
    for f in files:
        assert f"wrote {f}: {kind} " in printed
        graph = onnx.load(f)
        meta = {p.key: p.value for p in graph.metadata_props}
        assert meta["rnnkit_kind"] == kind
        assert json.loads(meta["rnnkit_config"]) == saved["config"]["model"]
        assert json.loads(meta["rnnkit_vocab"]) == saved["vocab"]
        graphs.append(graph)
    return graphs


def test_export_command_runs_in_onnxruntime(runs, tmp_path, capsys):
    rng = np.random.default_rng(10)
    ids = rng.integers(4, 10, (3, 6))
    lengths = np.array([6, 2, 4])
    words = [[WORDS[i] for i in row[:n]] for row, n in zip(ids, lengths, strict=True)]

    (graph,) = exported(runs, "lm", tmp_path / "lm.onnx", capsys)
    model = load_lm(runs / "lm")[0]
    _, _, cache = model.forward(ids, None, None, training=False)
    close(cache["logits"], session(graph).run(["logits"], {"ids": ids})[0], "lm logits")

    (graph,) = exported(runs, "classifier", tmp_path / "classifier.onnx", capsys)
    model = load_classifier(runs / "classifier").model
    feed = {"ids": ids, "lengths": lengths}
    close(model.forward(ids, lengths, None, training=False)[1],
          session(graph).run(["logits"], feed)[0], "classifier logits")  # fmt: skip

    (graph,) = exported(runs, "tagger", tmp_path / "tagger.onnx", capsys)
    tg = load_tagger(runs / "tagger")
    batch = make_tag_batch(words, [tg.word_ids(w) for w in words], tg.chars)
    feed = {"ids": batch.ids, "lengths": batch.lengths, "chars": batch.chars,
            "char_lengths": batch.char_lengths, "word_index": batch.word_index}  # fmt: skip
    close(tg.model.forward(batch, None, training=False)[1],
          session(graph).run(["logits"], feed)[0], "tagger logits")  # fmt: skip

    encoder, decoder = exported(runs, "mt", tmp_path / "mt.onnx", capsys)
    tr = load_translator(runs / "mt")
    assert export.output_paths(tmp_path / "mt.onnx", "mt")[0].name == "mt.encoder.onnx"
    src = [tr.src_ids(w) for w in words]
    s, sl = make_batch(src, None, bos=2, eos=3)
    mem, state = tr.model.init_decoder(s, sl)
    log_probs, _ = tr.model.step_fn(mem)(np.full(3, 2), state)
    current = outputs(session(encoder), {"src": s, "src_len": sl})
    dec = session(decoder)
    feed = {"token": np.full(3, 2), "src_len": sl}
    feed |= {i.name: current[i.name] for i in dec.get_inputs() if i.name in current}
    close(log_probs, outputs(dec, feed)["log_probs"], "translation log P")


def test_existing_output_is_kept_unless_forced(runs, tmp_path, capsys):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"precious")
    assert main(["export", str(runs / "classifier"), "--onnx", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"rnnkit: error: {path}: exists; pass --force to replace it"
    assert path.read_bytes() == b"precious"
    assert main(["export", str(runs / "classifier"), "--onnx", str(path), "--force"]) == 0
    onnx.checker.check_model(onnx.load(path), full_check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary left


def test_a_failed_export_leaves_no_file(runs, tmp_path, capsys, monkeypatch):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"precious")

    def broken(*args, **kwargs):
        raise onnx.checker.ValidationError("Field 'x' of 'node' is required\nmore")

    monkeypatch.setattr(onnx.checker, "check_model", broken)
    assert main(["export", str(runs / "tagger"), "--onnx", str(path), "--force"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fails onnx.checker (Field 'x' of 'node' is required)" in err
    assert path.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_bad_inputs_are_one_line(runs, tmp_path, capsys, monkeypatch):
    def fails(argv, message):
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc != 0 and err.count("\n") == 1 and message in err, err
        assert not (tmp_path / "out.onnx").exists()

    out = str(tmp_path / "out.onnx")
    fails(["export", str(tmp_path / "missing"), "--onnx", out], "missing: no such run folder")
    fails(["export", str(runs / "classifier"), "--onnx", str(tmp_path)], "is a directory")
    fails(["export", str(runs / "classifier")], "Missing option '--onnx'")
    save_checkpoint(tmp_path / "qa", kind="qa", params={"w": np.zeros(2, np.float32)})
    fails(["export", str(tmp_path / "qa"), "--onnx", out],
          "holds a 'qa' model; ONNX export covers classifier, lm, mt, tagger")  # fmt: skip
    (tmp_path / "empty").mkdir()
    fails(["export", str(tmp_path / "empty"), "--onnx", out], "checkpoint.json: missing")
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if onnx were not installed
    fails(["export", str(runs / "lm"), "--onnx", out],
          "ONNX export needs the onnx package: pip install 'rnnkit[onnx]'")  # fmt: skip


def test_cli_module_does_not_import_onnx():
    """``rnnkit`` starts (and every other command runs) without onnx installed."""
    import subprocess

    code = ("import sys; sys.modules['onnx'] = None; from rnnkit.cli import main; "
            "sys.exit(main(['export', '--help']))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).parent, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--onnx" in done.stdout
