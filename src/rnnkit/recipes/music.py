"""Music generation on Bach's chorales: the work behind ``rnnkit music``.

- :func:`prepare_chorales`: music21's chorales on a grid (:mod:`rnnkit.text.chorales`),
  duplicates dropped, written to a data folder with the fixed split by name.
- :func:`train_music`: the piano-roll model (:mod:`rnnkit.models.music`) through the shared
  loop (:func:`rnnkit.train.loop.fit`: batches of similar lengths, Adam, clipping, a
  checkpoint per epoch, ``best/`` = the epoch of the best validation NLL per step), or the
  token form through the language model's recipe (:func:`rnnkit.recipes.lm.train_lm`,
  truncated BPTT over the training chorales one after another). Neither looks at the test
  chorales.
- :func:`evaluate_music`: NLL per time step (roll) or perplexity (tokens) on one split;
  :func:`record_evaluation` keeps it in ``RUN/eval-SPLIT.json`` with the commit of the code,
  the command and how many times that split has been scored (a second test score needs
  ``rescore=True`` and is counted).
- :func:`sample_music`: a MIDI file (our writer), MusicXML (music21), a piano-roll PNG and
  optionally a WAV, primed by the opening bars of a chorale if asked;
  :func:`listen_free_checks`: samples against the training chorales on share of notes in
  key, voice ranges and parallel fifths and octaves per bar.

Output folder of a roll run: ``checkpoint/``, ``best/``, ``metrics.jsonl``, ``loss.png``,
``summary.json`` (as every task of the loop); of a token run: those of ``rnnkit lm train``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.io import RnnkitError, atomic_write, atomic_write_bytes
from rnnkit.models.lm import LanguageModel
from rnnkit.models.music import PianoRollConfig, PianoRollModel, hidden_for_budget
from rnnkit.recipes.lm import Corpus, LMTrainConfig, load_lm, train_lm
from rnnkit.recipes.lm import evaluate as lm_evaluate
from rnnkit.text.chorales import (
    STEPS,
    Chorale,
    ChoraleData,
    bach_chorale_names,
    chorale_tokens,
    drop_duplicates,
    in_key_share,
    load_bach_chorales,
    musicxml_bytes,
    parallel_motion_per_bar,
    piano_roll,
    read_dataset,
    roll_notes,
    roll_to_chorale,
    shift_roll,
    steps_per_bar,
    tokens_to_chorale,
    voice_notes,
    voice_ranges,
    write_dataset,
)
from rnnkit.text.midi import midi_bytes, synth_wav
from rnnkit.train.checkpoint import load_checkpoint
from rnnkit.train.loop import (
    LoopConfig,
    Task,
    fit,
    load_run,
    run_checkpoint,
    score_best,
    sorted_batches,
    start_run,
)

Array = np.ndarray
KIND_ROLL = "music-roll"
FORMS = ("roll", "tokens")
VOICE_NAMES = ("Soprano", "Alto", "Tenor", "Bass")

__all__ = [
    "MusicRun",
    "MusicTrainConfig",
    "evaluate_music",
    "listen_free_checks",
    "load_music",
    "prepare_chorales",
    "record_evaluation",
    "sample_music",
    "scoring_history",
    "source_commit",
    "train_music",
]


# --- data --------------------------------------------------------------------------------------


def prepare_chorales(out: str | Path, step: str = "eighth", names: Sequence[str] | None = None,
                     echo: Callable[[str], None] = print) -> ChoraleData:  # fmt: skip
    """Read the chorales (all of music21's, or ``names``) on a grid of ``step`` notes, drop
    duplicates and write the data folder (see :func:`rnnkit.text.chorales.write_dataset`)."""
    if step not in STEPS:
        raise RnnkitError(f"--step: expected one of {sorted(STEPS)}, got {step!r}")
    import music21

    listed = bach_chorale_names()
    t0 = time.perf_counter()
    chorales, skipped = load_bach_chorales(STEPS[step], names)
    kept, dupes = drop_duplicates(chorales)
    meta = {
        "source": f"music21 {music21.__version__} corpus, chorales.Iterator (Riemenschneider)",
        "listed": len(listed), "read": len(chorales), "skipped": skipped, "duplicates": dupes,
        "step_name": step,
        "split_rule": "sha256(name)[:8 bytes] as a big-endian integer mod 10: 0-7 train, "
                      "8 valid, 9 test",
    }  # fmt: skip
    data = write_dataset(out, kept, STEPS[step], meta)
    counts = {s: len(c) for s, c in data.chorales.items()}
    steps = {s: sum(c.steps for c in cs) for s, cs in data.chorales.items()}
    echo(f"music21 {music21.__version__}: {len(listed)} chorale files listed, "
         f"{len(chorales)} read, {len(skipped)} skipped (not four voices), {len(dupes)} "
         f"duplicates dropped; {time.perf_counter() - t0:.0f} s")  # fmt: skip
    echo(f"grid: one step per {step} note; piano roll MIDI {data.low}-{data.high} "
         f"({data.pitches} pitches, the training chorales' range)")  # fmt: skip
    echo("split by name: " + ", ".join(f"{s} {counts[s]} chorales ({steps[s]:,} steps)"
                                       for s in counts))  # fmt: skip
    echo(f"wrote {Path(out) / 'chorales.json'} and tokens.{{train,valid,test}}.txt")
    return data


def _shifts(ch: Chorale, low: int, high: int, k: int) -> list[int]:
    ps = ch.voices[ch.voices > 0]
    if ps.size == 0:
        return [0]
    return [s for s in range(-k, k + 1) if low <= ps.min() + s and ps.max() + s <= high]


# --- configuration ------------------------------------------------------------------------------


@dataclass
class MusicTrainConfig(LoopConfig):
    """A music run's settings: the model, the form of the data, and the loop's."""

    form: str = "roll"  # roll (piano roll, Bernoulli per pitch) | tokens (language model)
    cell: str = "gru"  # rnn (tanh) | gru | lstm
    hidden: int = 64
    params: int | None = None  # roll: pick the hidden size whose model has this many
    layers: int = 1
    dropout: float = 0.0
    init_range: float | None = None  # None: PyTorch's defaults
    transpose: int = 0  # training: roll, each chorale shifted by a random -K..K semitones per
    # batch; tokens, every shift in -K..K added to the training text (both keep the range)
    embed: int = 32  # tokens: embedding size
    bptt: int = 100  # tokens: truncated-BPTT window
    epochs: int = 20
    batch_size: int = 8
    lr: float = 2e-3
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise RnnkitError(f"--form: expected one of {list(FORMS)}, got {self.form!r}")
        if self.cell not in ("rnn", "gru", "lstm"):
            raise RnnkitError(f"--cell: expected rnn, gru or lstm, got {self.cell!r}")
        if self.transpose < 0:
            raise RnnkitError(f"--transpose: must be >= 0, got {self.transpose}")
        if self.params is not None and self.form != "roll":
            raise RnnkitError("--params: sets the piano-roll model's size; give --hidden for "
                              "tokens")  # fmt: skip
        super().__post_init__()

    def model_config(self, pitches: int) -> PianoRollConfig:
        hidden = self.hidden
        if self.params is not None:
            hidden = hidden_for_budget(self.cell, pitches, self.params, self.layers)
        try:
            return PianoRollConfig(pitches=pitches, cell=self.cell, hidden=hidden,
                                   layers=self.layers, dropout=self.dropout,
                                   init_range=self.init_range)  # fmt: skip
        except ValueError as e:
            raise RnnkitError(str(e)) from None

    def lm_config(self) -> LMTrainConfig:
        return LMTrainConfig(
            level="word", cell=self.cell, embed=self.embed, hidden=self.hidden,
            layers=self.layers, dropout=self.dropout, init_range=self.init_range,
            bptt=self.bptt, batch_size=self.batch_size, epochs=self.epochs,
            optimizer=self.optimizer, lr=self.lr, momentum=self.momentum,
            clip_norm=self.clip_norm, clip_value=None, l2=self.l2, lr_decay=self.lr_decay,
            decay_after=self.decay_after, seed=self.seed, log_every=self.log_every,
            checkpoint_every=self.checkpoint_every,
        )  # fmt: skip


# --- loading a run -------------------------------------------------------------------------------


@dataclass
class MusicRun:
    """A trained music model with what it needs to read and write chorales."""

    form: str
    model: Any  # PianoRollModel | LanguageModel
    cfg: MusicTrainConfig
    data_path: str  # the data folder it was trained on
    low: int  # roll: the lowest pitch of a frame
    step: float  # quarter lengths per grid step
    vocab: Any = None  # tokens: the Vocab
    lm_cfg: Any = None  # tokens: the LMTrainConfig


def load_music(path: str | Path) -> MusicRun:
    """Load a roll run (``best/`` preferred) or a token run from its folder."""
    ck = load_checkpoint(run_checkpoint(path))
    if ck.kind == KIND_ROLL:
        model, cfg, v, _ = load_run(path, KIND_ROLL, PianoRollConfig, MusicTrainConfig,
                                    PianoRollModel, lambda v: v)  # fmt: skip
        return MusicRun("roll", model, cfg, str(v["data"]), int(v["low"]), float(v["step"]))
    music = (ck.config.get("data") or {}).get("music") if ck.kind == "lm" else None
    if not music:
        raise RnnkitError(f"{ck.path}: holds a {ck.kind!r} model, not a music run")
    model, vocab, lm_cfg, _ = load_lm(path)
    cfg = MusicTrainConfig.from_dict(music["train"])
    return MusicRun("tokens", model, cfg, str(music["data"]), int(music["low"]),
                    float(music["step"]), vocab, lm_cfg)  # fmt: skip


# --- training ------------------------------------------------------------------------------------


def _rolls(chorales: Sequence[Chorale], low: int, high: int) -> list[Array]:
    return [piano_roll(c, low, high) for c in chorales]


def _pad(rolls: Sequence[Array]) -> tuple[Array, Array]:
    lengths = np.array([len(r) for r in rolls], np.int64)
    out = np.zeros((len(rolls), int(lengths.max()), rolls[0].shape[1]), np.float32)
    for i, r in enumerate(rolls):
        out[i, : len(r)] = r
    return out, lengths


def _roll_nll(model: PianoRollModel, rolls: Sequence[Array], batch_size: int = 32
              ) -> dict[str, float]:  # fmt: skip
    lengths = np.array([len(r) for r in rolls], np.int64)
    total = 0.0
    for idx in sorted_batches(lengths, batch_size):
        x, lens = _pad([rolls[i] for i in idx])
        loss, _, _ = model.forward(x, lens, training=False)
        total += float(loss) * int(lens.sum())
    steps = int(lengths.sum())
    return {"nll": total / steps, "steps": steps, "chorales": len(rolls)}


def _unigram_nll(train: Sequence[Array], rolls: Sequence[Array]) -> float:
    """NLL per step of independent Bernoullis at the training frequency of each pitch (add-one
    smoothed): the score of a model that ignores time."""
    frames = np.concatenate(train)
    p = (frames.sum(0) + 1.0) / (len(frames) + 2.0)
    x = np.concatenate(rolls)
    return float(-(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(1).mean())


def train_music(
    cfg: MusicTrainConfig | None,
    data_path: str | Path,
    out: str | Path,
    resume: bool = False,
    epochs: int | None = None,
    progress: bool = True,
    max_steps: int | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train (or continue) a music model on a prepared data folder; the validation chorales
    choose the best epoch (roll) and are scored at the end. The test chorales are not read."""
    data = read_dataset(data_path)
    out = Path(out)
    tokens = (load_checkpoint(out / "checkpoint").kind == "lm" if resume
              else cfg is not None and cfg.form == "tokens")  # fmt: skip
    if tokens:
        return _train_tokens(cfg, data, data_path, out, resume, epochs, progress, max_steps,
                             echo)  # fmt: skip
    ck = start_run(out, resume, KIND_ROLL)
    if ck is not None:
        cfg = MusicTrainConfig.from_dict(ck.config["train"])
    if cfg is None:
        raise ValueError("train_music: cfg is required for a new run")
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    if not data.chorales["valid"]:
        raise RnnkitError(f"{data_path}: has no validation chorale")
    train = data.chorales["train"]
    rolls = _rolls(train, data.low, data.high)
    valid = _rolls(data.chorales["valid"], data.low, data.high)
    shifts = [_shifts(c, data.low, data.high, cfg.transpose) for c in train]
    model = PianoRollModel(cfg.model_config(data.pitches), seed=cfg.seed)

    def batch(idx: Array, training: bool) -> tuple[Any, Any]:
        chosen = []
        for i in idx:
            r = rolls[i]
            if training and cfg.transpose:
                s = int(model.rng.choice(shifts[i]))
                r = shift_roll(r, s) if s else r
            chosen.append(r)
        return _pad(chosen), None

    def loss(inputs: Any, targets: Any, training: bool) -> tuple[float, Any]:
        value, _, cache = model.forward(inputs[0], inputs[1], training=training)
        return float(value), cache

    def evaluate() -> dict[str, float]:
        nll = _roll_nll(model, valid)["nll"]
        return {"nll": nll, "log_likelihood": -nll}

    mc = model.config
    task = Task(
        kind=KIND_ROLL, model=model, lengths=np.array([len(r) for r in rolls]), batch=batch,
        loss=loss, evaluate=evaluate, select="log_likelihood",
        config={"model": mc.to_dict(), "train": asdict(cfg), "data": {"path": str(data_path)}},
        vocab={"data": str(data_path), "low": data.low, "high": data.high, "step": data.step},
        describe=(f"rnnkit music: piano roll, {mc.cell.upper()} {mc.layers}x{mc.hidden}, "
                  f"{data.pitches} pitches, {model.num_parameters():,} parameters; "
                  f"{len(rolls)} training chorales ({sum(map(len, rolls)):,} steps), "
                  f"{len(valid)} validation"),
    )  # fmt: skip
    summary = fit(task, cfg, out, ck, progress, max_steps, echo)

    def report(part: str, s: dict[str, Any]) -> None:
        echo(f"{part} (best epoch {summary['best_epoch']}): NLL {s['nll']:.4f} nats per step "
             f"({s['chorales']} chorales, {s['steps']:,} steps)")  # fmt: skip

    score_best(summary, out, lambda p: load_music(p).model, _roll_nll, {"valid": valid}, report)
    return summary


def _token_corpus(data: ChoraleData, transpose: int) -> Corpus:
    lines = []
    for c in data.chorales["train"]:
        for s in _shifts(c, data.low, data.high, transpose):
            lines.append(" ".join(chorale_tokens(c.transposed(s))))
    valid = "".join(" ".join(chorale_tokens(c)) + "\n" for c in data.chorales["valid"])
    return Corpus("\n".join(lines) + "\n", valid or None, None)


def _train_tokens(cfg: MusicTrainConfig | None, data: ChoraleData, data_path: str | Path,
                  out: Path, resume: bool, epochs: int | None, progress: bool,
                  max_steps: int | None, echo: Callable[[str], None]
                  ) -> dict[str, Any]:  # fmt: skip
    if resume:
        ck = load_checkpoint(out / "checkpoint", kind="lm")
        cfg = MusicTrainConfig.from_dict(ck.config["data"]["music"]["train"])
    assert cfg is not None
    corpus = _token_corpus(data, cfg.transpose)
    desc = {"music": {"data": str(data_path), "low": data.low, "step": data.step,
                      "train": asdict(cfg)}}  # fmt: skip
    return train_lm(None if resume else cfg.lm_config(), corpus, out, resume=resume,
                    epochs=epochs, progress=progress, max_steps=max_steps, echo=echo,
                    data=desc)  # fmt: skip


# --- evaluation ----------------------------------------------------------------------------------


def evaluate_music(run: MusicRun, split: str, data_path: str | Path | None = None
                   ) -> dict[str, Any]:  # fmt: skip
    """Figures of a run on one split of its data (or ``data_path``): for a roll model the
    NLL per time step (nats, summed over pitches) and, for scale, that of the training
    frequencies alone; for a token model the NLL per token, perplexity and nats per grid
    step (all tokens of a chorale over its steps)."""
    data = read_dataset(data_path or run.data_path)
    chorales = data.chorales[split]
    if not chorales:
        raise RnnkitError(f"{data_path or run.data_path}: no {split} chorale")
    steps = sum(c.steps for c in chorales)
    if run.form == "roll":
        if data.low != run.low or data.pitches != run.model.config.pitches:
            raise RnnkitError(f"{data_path or run.data_path}: its piano roll ({data.low}-"
                              f"{data.high}) is not the model's")  # fmt: skip
        rolls = _rolls(chorales, data.low, data.high)
        figs: dict[str, Any] = _roll_nll(run.model, rolls)
        figs["unigram_nll"] = _unigram_nll(_rolls(data.chorales["train"], data.low, data.high),
                                           rolls)  # fmt: skip
        return figs
    text = "".join(" ".join(chorale_tokens(c)) + "\n" for c in chorales)
    ids = run.vocab.encode(text, where=f"{split} chorales")
    nll = lm_evaluate(run.model, ids, run.lm_cfg.bptt)
    scored = len(ids) - 1
    return {"nll_per_token": nll, "perplexity": float(np.exp(nll)), "tokens": scored,
            "nats_per_step": nll * scored / steps, "steps": steps,
            "chorales": len(chorales)}  # fmt: skip


def source_commit() -> dict[str, Any]:
    """The git commit of the rnnkit source that is running, and whether tracked files
    differ from it (``None`` outside a git checkout)."""
    src = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True,
                               timeout=20, check=False)  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None,
            "source": str(src)}  # fmt: skip


def scoring_history(run_path: str | Path, split: str, rescore: bool = False
                    ) -> list[dict[str, Any]]:  # fmt: skip
    """The earlier scorings of ``split`` recorded in ``RUN/eval-SPLIT.json``; refuses (one
    line) a second scoring of the test split unless ``rescore``."""
    path = Path(run_path) / f"eval-{split}.json"
    if not path.exists():
        return []
    try:
        history = list(json.loads(path.read_text())["history"])
    except (ValueError, KeyError, TypeError):
        raise RnnkitError(f"{path}: unreadable; it is the record of earlier scorings, so it "
                          "is left alone") from None  # fmt: skip
    if split == "test" and not rescore:
        last = history[-1] if history else {}
        raise RnnkitError(f"{path}: the test split was already scored ({len(history)} "
                          f"time(s), last at commit {last.get('commit')}); pass --rescore to "
                          "score it again (it is counted)")  # fmt: skip
    return history


def record_evaluation(run_path: str | Path, split: str, figures: dict[str, Any],
                      command: str, rescore: bool = False) -> dict[str, Any]:  # fmt: skip
    """Write ``RUN/eval-SPLIT.json``: the figures, commit, command, time and the count of
    scorings of that split. The test split may be scored once; again only with ``rescore``
    (then counted, the earlier records kept)."""
    history = scoring_history(run_path, split, rescore)
    entry = {"split": split, "figures": figures, **source_commit(), "command": command,
             "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
    history.append(entry)
    record = {**entry, "times_scored": len(history), "history": history}
    with atomic_write(Path(run_path) / f"eval-{split}.json") as f:
        json.dump(record, f, indent=1)
    return record


# --- sampling and the listen-free checks ------------------------------------------------------


def _find(data: ChoraleData, name: str) -> Chorale:
    for cs in data.chorales.values():
        for c in cs:
            if c.name == name:
                return c
    known = ", ".join(c.name for c in data.chorales["valid"][:5])
    raise RnnkitError(f"--prime: no chorale {name!r} in the data (validation ones: {known}, ...)")


def generate(run: MusicRun, bars: int, rng: np.random.Generator, prime: Chorale | None = None,
             temperature: float = 1.0) -> tuple[Chorale, int, Any]:  # fmt: skip
    """Continue the prime (or start afresh) by ``bars`` bars. Returns the chorale (prime
    included), the number of prime steps, and the roll (roll form) or the count of tokens
    that did not fit (token form)."""
    meter = prime.meter if prime is not None else "4/4"
    steps = bars * steps_per_bar(meter, run.step)
    if run.form == "roll":
        P = run.model.config.pitches
        pr = piano_roll(prime, run.low, run.low + P - 1) if prime is not None else None
        roll = run.model.sample(steps, rng, pr, temperature)
        ch = roll_to_chorale(roll, run.low, run.step, meter)
        if prime is not None and len(prime.bars):  # the prime's bar lines, then every bar
            per_bar = steps_per_bar(meter, run.step)
            after = np.arange(int(prime.bars[-1]) + per_bar, ch.steps, per_bar)
            ch.bars = np.concatenate([prime.bars, after]).astype(np.int64)
        return ch, 0 if pr is None else len(pr), roll
    vocab, model = run.vocab, run.model
    head = chorale_tokens(prime) if prime is not None else []
    ids = np.array([vocab.stoi[vocab.eos]] + [vocab.stoi.get(t, vocab.stoi[vocab.unk])
                                              for t in head], np.int64)  # fmt: skip
    per_step = 4.3  # about 4 voice tokens per step, plus bar lines and fermatas
    assert isinstance(model, LanguageModel)
    gen = model.generate(ids, int(steps * per_step) + 8, temperature=temperature, rng=rng)
    toks = []
    for i in gen.tolist():
        if i == vocab.stoi[vocab.eos]:
            break
        toks.append(vocab.tokens[i])
    ch, bad = tokens_to_chorale(head + toks, run.step, meter)
    n0 = prime.steps if prime is not None else 0
    keep = min(ch.steps, n0 + steps)
    ch = replace(ch, voices=ch.voices[:, :keep], onsets=ch.onsets[:, :keep],
                 bars=ch.bars[ch.bars < keep],
                 fermatas=ch.fermatas[ch.fermatas < keep])  # fmt: skip
    return ch, n0, bad


def _plot_roll(path: Path, ch: Chorale, primed: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    notes = voice_notes(ch)
    fig, ax = plt.subplots(figsize=(min(18, 3 + ch.steps * 0.06), 4.5))
    colors = ("tab:red", "tab:orange", "tab:green", "tab:blue")
    for v, a, b, p in notes:
        ax.add_patch(plt.Rectangle((a, p - 0.4), b - a - 0.1, 0.8, color=colors[v], lw=0))
    for b in ch.bars:
        ax.axvline(b, color="0.85", lw=0.6, zorder=0)
    if primed:
        ax.axvspan(0, primed, color="0.9", zorder=0, label="prime")
        ax.legend(loc="upper right")
    ps = [p for *_, p in notes] or [60]
    ax.set_xlim(0, max(ch.steps, 1))
    ax.set_ylim(min(ps) - 2, max(ps) + 2)
    ax.set_xlabel(f"step ({ch.step:g} quarter notes)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def sample_checks(chorales: Sequence[Chorale], ranges: Sequence[tuple[int, int]]
                  ) -> dict[str, float]:  # fmt: skip
    """The listen-free figures of some chorales (see :func:`listen_free_checks`)."""
    notes = [(v, p) for c in chorales for v, _, _, p in voice_notes(c)]
    inside = sum(ranges[v][0] <= p <= ranges[v][1] for v, p in notes)
    steps = sum(c.steps for c in chorales)
    four = sum(int(((c.voices > 0).sum(0) == 4).sum()) for c in chorales)
    distinct = sum(len(set(c.voices[:, t][c.voices[:, t] > 0])) == 4 for c in chorales
                   for t in range(c.steps))  # fmt: skip
    return {
        "in_key": in_key_share(chorales),
        "in_voice_range": inside / len(notes) if notes else float("nan"),
        "parallel_fifths_per_bar": parallel_motion_per_bar(chorales, 7),
        "parallel_octaves_per_bar": parallel_motion_per_bar(chorales, 0),
        "four_voices_sounding": four / steps if steps else float("nan"),
        "four_distinct_pitches": distinct / steps if steps else float("nan"),
        "notes": len(notes), "steps": steps, "chorales": len(chorales),
    }  # fmt: skip


def listen_free_checks(run: MusicRun, samples: int, bars: int, seed: int,
                       temperature: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """Draw ``samples`` unprimed samples of ``bars`` bars and compare them with the training
    chorales: share of notes in the best-fitting key (major or harmonic minor), share of
    notes inside each voice's training range, parallel fifths and octaves per bar, and how
    often four voices (and four different pitches) sound. A roll sample's voices are its
    pitches sorted (:func:`rnnkit.text.chorales.roll_to_chorale`)."""
    data = read_dataset(run.data_path)
    train = data.chorales["train"]
    ranges = voice_ranges(train)
    rng = np.random.default_rng(seed)
    drawn = [generate(run, bars, rng, None, temperature)[0] for _ in range(samples)]
    return {"samples": sample_checks(drawn, ranges), "training": sample_checks(train, ranges),
            "bars": bars, "seed": seed, "temperature": temperature,
            "voice_ranges": ranges}  # fmt: skip


def sample_music(
    run_path: str | Path,
    out: str | Path,
    seed: int | None = None,
    bars: int = 8,
    prime: str | None = None,
    prime_bars: int = 2,
    temperature: float = 1.0,
    wav: bool = False,
    bpm: float = 80.0,
    data_path: str | Path | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write a sample as OUT (.mid), beside it .musicxml, .png and with ``wav`` .wav; primed
    by the first ``prime_bars`` bars of the chorale called ``prime`` if given."""
    out = Path(out)
    if out.suffix.lower() not in (".mid", ".midi"):
        raise RnnkitError(f"--out: expected a .mid file name, got {out}")
    run = load_music(run_path)
    rng = np.random.default_rng(seed)
    head = None
    if prime is not None:
        data = read_dataset(data_path or run.data_path)
        src = _find(data, prime)
        head = src.head(prime_bars)
        echo(f"prime: the first {prime_bars} bar(s) of {src.name} ({src.split} chorale, "
             f"{head.steps} steps, {src.meter}, {src.key})")  # fmt: skip
    ch, primed, extra = generate(run, bars, rng, head, temperature)
    if run.form == "roll":
        notes = [(a * ch.step, b * ch.step, p) for a, b, p in roll_notes(extra, run.low)]
        parts = [("Piano roll", notes)]
    else:
        parts = [(VOICE_NAMES[v], [(a * ch.step, b * ch.step, p) for u, a, b, p in
                                   voice_notes(ch) if u == v]) for v in range(4)]  # fmt: skip
        if extra:
            echo(f"{extra} generated token(s) did not fit the grammar and were read as well "
                 "as possible")  # fmt: skip
    written = {"midi": str(out)}
    atomic_write_bytes(out, midi_bytes(parts, bpm=bpm, meter=ch.meter))
    try:
        xml = musicxml_bytes(ch, title=f"rnnkit sample ({run.form}, {run.cfg.cell})")
    except RnnkitError as e:
        echo(f"MusicXML skipped: {e}")
    else:
        atomic_write_bytes(out.with_suffix(".musicxml"), xml)
        written["musicxml"] = str(out.with_suffix(".musicxml"))
    _plot_roll(out.with_suffix(".png"), ch, primed,
               f"{run.form} {run.cfg.cell.upper()} sample, seed {seed}")  # fmt: skip
    written["png"] = str(out.with_suffix(".png"))
    if wav:
        all_notes = [n for _, ns in parts for n in ns]
        atomic_write_bytes(out.with_suffix(".wav"), synth_wav(all_notes, bpm=bpm))
        written["wav"] = str(out.with_suffix(".wav"))
    data = read_dataset(data_path or run.data_path)
    figs = sample_checks([ch], voice_ranges(data.chorales["train"]))
    echo(f"{ch.steps} steps ({primed} primed), {figs['notes']} notes; in key "
         f"{100 * figs['in_key']:.1f}%, in voice ranges {100 * figs['in_voice_range']:.1f}%, "
         f"parallel fifths {figs['parallel_fifths_per_bar']:.2f} per bar")  # fmt: skip
    echo("wrote " + ", ".join(written.values()))
    return {"files": written, "checks": figs, "steps": ch.steps, "primed": primed}
