"""Bach's four-part chorales from music21's corpus: reading, the fixed split, and the two
representations the music models learn from.

A :class:`Chorale` holds the four voices (soprano, alto, tenor, bass) on a grid of equal
steps (a quarter, eighth or sixteenth note): the MIDI pitch each voice sounds at each grid
point (0: a rest), whether a note starts there or is held from the step before, where the
bars start and where the soprano has a fermata. The grid keeps the pitches heard *on* it:
a note shorter than the step that falls between two grid points is not seen.

From it come:

- the **piano roll** (:func:`piano_roll`): one binary vector of pitches per step, as in the
  JSB Chorales benchmark of Boulanger-Lewandowski et al. (2012). It does not tell a held
  note from a repeated one, nor which voice sings what (that benchmark's roll neither).
- the **token sequence** (:func:`chorale_tokens`), in the spirit of BachBot (Liang 2016):
  per step a bar line ``|`` where a bar starts, then the four voices in order, each one
  token ``S67`` (soprano starts MIDI 67), ``S67~`` (holds it), ``S.`` (rests), and ``F``
  after a step under a fermata. Durations are the runs of held tokens.

The split is fixed by the chorale's name, before any training: the first 8 bytes of the
SHA-256 of the name (``"bwv269"``) as an integer, modulo 10: 0-7 training, 8 validation,
9 test (:func:`split_of`). It never depends on the order, number or content of the
chorales read.

>>> split_of("bwv10.7"), split_of("bwv102.7"), split_of("bwv114.7")
('train', 'valid', 'test')
>>> voices = [[72, 72, 74, 0], [67, 67, 69, 0], [60, 60, 62, 0], [48, 48, 50, 0]]
>>> ch = Chorale("toy", voices, [[1, 0, 1, 0]] * 4, [0, 2], [3], 1.0, "2/4", "C major")
>>> " ".join(chorale_tokens(ch))
'| S72 A67 T60 B48 S72~ A67~ T60~ B48~ | S74 A69 T62 B50 S. A. T. B. F'
>>> piano_roll(ch, 48, 74).sum(axis=1).tolist()
[4.0, 4.0, 4.0, 0.0]
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.io import RnnkitError, atomic_write, read_text

Array = np.ndarray

VOICES = ("S", "A", "T", "B")
STEPS = {"quarter": 1.0, "eighth": 0.5, "sixteenth": 0.25}  # quarter lengths per step
SPLITS = ("train", "valid", "test")
BAR, FERMATA, HOLD, REST = "|", "F", "~", "."
FORMAT = "rnnkit-chorales-1"

__all__ = [
    "Chorale",
    "ChoraleData",
    "STEPS",
    "SPLITS",
    "VOICES",
    "bach_chorale_names",
    "chorale_tokens",
    "drop_duplicates",
    "in_key_share",
    "load_bach_chorales",
    "musicxml_bytes",
    "parallel_motion_per_bar",
    "piano_roll",
    "read_dataset",
    "roll_notes",
    "roll_to_chorale",
    "shift_roll",
    "split_of",
    "steps_per_bar",
    "tokens_to_chorale",
    "voice_notes",
    "voice_ranges",
    "write_dataset",
]


def split_of(name: str) -> str:
    """The fixed split of a chorale: SHA-256 of its name, modulo 10 (0-7 train, 8 valid,
    9 test)."""
    k = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") % 10
    return "train" if k < 8 else ("valid" if k == 8 else "test")


@dataclass
class Chorale:
    """Four voices on a grid of equal steps (see the module doc).

    voices (4, T) int: MIDI pitch of S, A, T, B at each step, 0 for a rest; onsets (4, T)
    bool: a note starts at the step (else it is held, or it is a rest); bars: steps where a
    bar starts; fermatas: steps whose soprano note has a fermata; step: quarter lengths per
    step; meter: ``"4/4"``; key: music21's estimate, e.g. ``"G major"`` (metadata only).
    """

    name: str
    voices: Array
    onsets: Array
    bars: Array
    fermatas: Array
    step: float
    meter: str = "4/4"
    key: str = ""

    def __post_init__(self) -> None:
        self.voices = np.asarray(self.voices, dtype=np.int64)
        self.onsets = np.asarray(self.onsets, dtype=bool) & (self.voices > 0)
        self.bars = np.asarray(self.bars, dtype=np.int64)
        self.fermatas = np.asarray(self.fermatas, dtype=np.int64)
        if self.voices.ndim != 2 or self.voices.shape[0] != 4:
            raise ValueError(f"{self.name}: voices must have shape (4, T), got {self.voices.shape}")
        if self.onsets.shape != self.voices.shape:
            raise ValueError(f"{self.name}: onsets {self.onsets.shape} != voices "
                             f"{self.voices.shape}")  # fmt: skip

    @property
    def steps(self) -> int:
        return int(self.voices.shape[1])

    @property
    def split(self) -> str:
        return split_of(self.name)

    def transposed(self, semitones: int) -> Chorale:
        """The same chorale ``semitones`` higher (rests stay rests)."""
        v = np.where(self.voices > 0, self.voices + semitones, 0)
        return Chorale(self.name, v, self.onsets, self.bars, self.fermatas, self.step,
                       self.meter, self.key)  # fmt: skip

    def head(self, bars: int) -> Chorale:
        """The opening ``bars`` bars (a pickup counts as a bar when the chorale has one)."""
        end = int(self.bars[bars]) if bars < len(self.bars) else self.steps
        return Chorale(self.name, self.voices[:, :end], self.onsets[:, :end],
                       self.bars[self.bars < end], self.fermatas[self.fermatas < end],
                       self.step, self.meter, self.key)  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "split": self.split, "meter": self.meter, "key": self.key,
                "voices": self.voices.tolist(),
                "onsets": ["".join("1" if o else "0" for o in row) for row in self.onsets],
                "bars": self.bars.tolist(), "fermatas": self.fermatas.tolist()}  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any], step: float) -> Chorale:
        onsets = np.array([[c == "1" for c in row] for row in d["onsets"]], dtype=bool)
        return cls(str(d["name"]), np.array(d["voices"]), onsets, np.array(d["bars"]),
                   np.array(d["fermatas"]), step, str(d["meter"]),
                   str(d.get("key", "")))  # fmt: skip


# --- reading music21's corpus ----------------------------------------------------------------


def _music21() -> Any:
    try:
        import music21
    except ImportError:
        raise RnnkitError("the Bach chorales come from music21: pip install 'rnnkit[music]'"
                          ) from None  # fmt: skip
    return music21


def bach_chorale_names() -> list[str]:
    """The chorales of music21's Riemenschneider list that its corpus holds (one name per
    file, e.g. ``"bwv269"``; the list names a few files twice), sorted."""
    m21 = _music21()
    files = m21.corpus.chorales.Iterator(returnType="filename")
    return sorted({str(f).rpartition("/")[2] for f in files})


class ChoraleSkipped(Exception):
    """A chorale that cannot be put on the four-voice grid (the reason is the message)."""


def _voice_pitch(n: Any, voice: int) -> int:
    ps = [p.midi for p in n.pitches]
    return max(ps) if voice < 2 else min(ps)  # a divided voice: S/A take the top note


def chorale_from_score(score: Any, name: str, step: float) -> Chorale:
    """Put a music21 score on the grid: its four parts, or, beside instruments, the parts
    named Soprano, Alto, Tenor and Bass; raises :class:`ChoraleSkipped`."""
    parts = list(score.parts)
    named = {str(p.partName or "").strip().lower(): p for p in parts}
    if len(parts) != 4:  # the voices beside instruments: the parts named for them
        if not all(v in named for v in ("soprano", "alto", "tenor", "bass")):
            raise ChoraleSkipped(f"{len(parts)} parts, and not one named for each voice")
        parts = [named[v] for v in ("soprano", "alto", "tenor", "bass")]
    T = int(math.ceil(float(score.highestTime) / step - 1e-9))
    if T < 2:
        raise ChoraleSkipped("shorter than two steps")
    voices = np.zeros((4, T), np.int64)
    onsets = np.zeros((4, T), bool)
    fermatas: set[int] = set()
    grid = np.arange(T) * step
    for v, part in enumerate(parts):
        notes = [n for n in part.flatten().notes if not n.duration.isGrace]
        which = np.full(T, -1)  # the index of the note heard at each grid point
        for i, n in enumerate(notes):
            start = float(n.offset)
            end = start + float(n.quarterLength)
            hit = (grid >= start - 1e-9) & (grid < end - 1e-9)
            which[hit] = i
            voices[v, hit] = _voice_pitch(n, v)
            if v == 0 and hit.any() and any(type(e).__name__ == "Fermata"
                                            for e in n.expressions):  # fmt: skip
                fermatas.add(int(np.flatnonzero(hit)[0]))
        for t in range(T):
            i = which[t]
            if i < 0 or (t > 0 and which[t - 1] == i):
                continue
            tie = notes[i].tie
            held = tie is not None and tie.type in ("stop", "continue") and t > 0
            held = held and which[t - 1] >= 0 and voices[v, t - 1] == voices[v, t]
            onsets[v, t] = not held
    measures = parts[0].getElementsByClass("Measure")
    bars = sorted({int(round(float(m.offset) / step)) for m in measures} & set(range(T)))
    ts = score.recurse().getElementsByClass("TimeSignature").first()
    meter = ts.ratioString if ts is not None else "4/4"
    try:
        key = str(score.analyze("key"))
    except Exception:  # an estimate only; a failure must not lose the chorale
        key = ""
    return Chorale(name, voices, onsets, np.array(bars or [0]), np.array(sorted(fermatas)),
                   step, meter, key)  # fmt: skip


def load_bach_chorales(
    step: float, names: Sequence[str] | None = None,
    progress: Callable[[Iterable[str]], Iterable[str]] | None = None,
) -> tuple[list[Chorale], dict[str, str]]:  # fmt: skip
    """Parse the chorales (all of :func:`bach_chorale_names`, or ``names``) onto the grid.

    Returns the chorales and, for those left out, name -> reason.
    """
    m21 = _music21()
    known = bach_chorale_names()
    wanted = known if names is None else list(names)
    missing = sorted(set(wanted) - set(known))
    if missing:
        raise RnnkitError(f"--names: not chorales of music21's corpus: {', '.join(missing)}")
    out, skipped = [], {}
    for name in progress(wanted) if progress else wanted:
        try:
            out.append(chorale_from_score(m21.corpus.parse(f"bach/{name}"), name, step))
        except ChoraleSkipped as e:
            skipped[name] = str(e)
    return out, skipped


def _shape_key(ch: Chorale) -> bytes:
    first = ch.voices[0][ch.voices[0] > 0]
    ref = int(first[0]) if first.size else 0
    rel = np.where(ch.voices > 0, ch.voices - ref, -999)
    return rel.tobytes() + ch.onsets.tobytes()


def drop_duplicates(chorales: Sequence[Chorale]) -> tuple[list[Chorale], dict[str, str]]:
    """Keep one of chorales that are the same music, possibly transposed (same voices up to
    a shift, same onsets); the first in name order is kept. Returns (kept, dropped name ->
    the kept one's name), so a harmonisation printed twice cannot sit in two splits."""
    seen: dict[bytes, str] = {}
    kept, dropped = [], {}
    for ch in sorted(chorales, key=lambda c: c.name):
        k = _shape_key(ch)
        if k in seen:
            dropped[ch.name] = seen[k]
        else:
            seen[k] = ch.name
            kept.append(ch)
    return kept, dropped


# --- the prepared data set -------------------------------------------------------------------


@dataclass
class ChoraleData:
    """A prepared data set: chorales by split, the grid step and the piano roll's range."""

    chorales: dict[str, list[Chorale]]  # split -> chorales
    step: float
    low: int  # the piano roll's lowest MIDI pitch
    high: int  # and its highest
    meta: dict[str, Any]

    @property
    def pitches(self) -> int:
        return self.high - self.low + 1


def write_dataset(out: str | Path, chorales: Sequence[Chorale], step: float,
                  meta: dict[str, Any]) -> ChoraleData:  # fmt: skip
    """``OUT/chorales.json`` (every chorale, its split, the grid; JSON, no pickle) and the
    token texts ``OUT/tokens.{train,valid,test}.txt`` (one chorale per line).

    The piano roll's range is the training chorales' lowest to highest pitch.
    """
    out = Path(out)
    by = {s: [c for c in chorales if c.split == s] for s in SPLITS}
    if not by["train"]:
        raise RnnkitError("no training chorale among those read (the split is by name)")
    played = np.concatenate([c.voices[c.voices > 0] for c in by["train"]])
    low, high = int(played.min()), int(played.max())
    doc = {"format": FORMAT, "step": step, "low": low, "high": high, "meta": meta,
           "chorales": [c.to_json() for c in sorted(chorales, key=lambda c: c.name)]}  # fmt: skip
    with atomic_write(out / "chorales.json") as f:
        json.dump(doc, f, separators=(",", ":"))
    for s in SPLITS:
        with atomic_write(out / f"tokens.{s}.txt") as f:
            for c in by[s]:
                f.write(" ".join(chorale_tokens(c)) + "\n")
    return ChoraleData(by, step, low, high, meta)


def read_dataset(path: str | Path) -> ChoraleData:
    """Read what :func:`write_dataset` wrote (``path``: the folder or its chorales.json)."""
    p = Path(path)
    if p.is_dir():
        p = p / "chorales.json"
    try:
        doc = json.loads(read_text(p))
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT!r}")
        step = float(doc["step"])
        by: dict[str, list[Chorale]] = {s: [] for s in SPLITS}
        for d in doc["chorales"]:
            c = Chorale.from_json(d, step)
            if d["split"] != c.split:
                raise ValueError(f"{c.name}: stored split {d['split']!r}, the rule gives "
                                 f"{c.split!r}")  # fmt: skip
            by[c.split].append(c)
        return ChoraleData(by, step, int(doc["low"]), int(doc["high"]), dict(doc["meta"]))
    except (KeyError, TypeError, ValueError) as e:
        raise RnnkitError(f"{p}: not a prepared chorale data set ({e}); make one with "
                          "'rnnkit music prepare'") from None  # fmt: skip


# --- the piano roll --------------------------------------------------------------------------


def piano_roll(ch: Chorale, low: int, high: int) -> Array:
    """(T, P) float32 with 1 where a pitch low..high sounds; pitches outside are dropped."""
    roll = np.zeros((ch.steps, high - low + 1), np.float32)
    t, v = np.nonzero((ch.voices.T >= low) & (ch.voices.T <= high))
    roll[t, ch.voices.T[t, v] - low] = 1.0
    return roll


def shift_roll(roll: Array, semitones: int) -> Array:
    """A piano roll ``semitones`` higher (columns shifted; pitches pushed out of the range are
    lost, so callers shift only as far as the notes allow).

    >>> shift_roll(np.array([[1, 0, 0, 1]]), -1).tolist()   # the lowest pitch falls out
    [[0, 0, 1, 0]]
    >>> shift_roll(np.array([[1, 0, 0, 0]]), 2).tolist()
    [[0, 0, 1, 0]]
    """
    out = np.zeros_like(roll)
    P, s = roll.shape[1], int(semitones)
    out[:, max(s, 0) : P + min(s, 0)] = roll[:, max(-s, 0) : P - max(s, 0)]
    return out


def roll_notes(roll: Array, low: int) -> list[tuple[int, int, int]]:
    """(start step, end step, pitch) of a piano roll, a pitch held over consecutive steps
    being one note.

    >>> roll_notes(np.array([[1, 0], [1, 1], [0, 1], [1, 0]]), 60)
    [(0, 2, 60), (3, 4, 60), (1, 3, 61)]
    """
    notes = []
    on = np.asarray(roll) > 0.5
    for k in range(on.shape[1]):
        col = np.concatenate([[False], on[:, k], [False]]).astype(np.int8)
        starts = np.flatnonzero(np.diff(col) == 1)
        ends = np.flatnonzero(np.diff(col) == -1)
        notes += [(int(a), int(b), low + k) for a, b in zip(starts, ends, strict=True)]
    return notes


def roll_to_chorale(roll: Array, low: int, step: float, meter: str = "4/4",
                    name: str = "sample") -> Chorale:  # fmt: skip
    """Voices from a piano roll, for writing and checking: at each step the sounding pitches,
    highest first, go to S, A, T, B (with 4 or more: S the highest, B the lowest, A and T the
    2nd and 3rd highest, the rest dropped; 3: S, A, B; 2: S, B; 1: S). A voice starts a note
    where its pitch changes (a roll cannot show a repeated note)."""
    T = roll.shape[0]
    voices = np.zeros((4, T), np.int64)
    for t in range(T):
        ps = sorted((np.flatnonzero(roll[t] > 0.5) + low).tolist(), reverse=True)
        if len(ps) >= 4:
            voices[:, t] = [ps[0], ps[1], ps[2], ps[-1]]
        elif ps:
            slots = {3: (0, 1, 3), 2: (0, 3), 1: (0,)}[len(ps)]
            for s, p in zip(slots, ps, strict=True):
                voices[s, t] = p
    onsets = voices != np.concatenate([np.zeros((4, 1), np.int64), voices[:, :-1]], axis=1)
    per_bar = steps_per_bar(meter, step)
    return Chorale(name, voices, onsets, np.arange(0, T, per_bar), np.zeros(0), step, meter)


def steps_per_bar(meter: str, step: float) -> int:
    """Grid steps in one bar of ``meter`` (``"3/4"``; 4/4 if unreadable).

    >>> steps_per_bar("3/4", 0.5), steps_per_bar("3/2", 1.0)
    (6, 6)
    """
    num, _, den = meter.partition("/")
    try:
        quarters = int(num) * 4.0 / int(den)
    except ValueError:
        quarters = 4.0
    return max(1, int(round(quarters / step)))


# --- tokens ----------------------------------------------------------------------------------


def chorale_tokens(ch: Chorale) -> list[str]:
    """The token sequence of a chorale (see the module doc)."""
    bars, ferm = set(ch.bars.tolist()), set(ch.fermatas.tolist())
    out = []
    for t in range(ch.steps):
        if t in bars:
            out.append(BAR)
        for v, name in enumerate(VOICES):
            p = int(ch.voices[v, t])
            out.append(name + (REST if p == 0 else str(p) + ("" if ch.onsets[v, t] else HOLD)))
        if t in ferm:
            out.append(FERMATA)
    return out


def tokens_to_chorale(tokens: Sequence[str], step: float, meter: str = "4/4",
                      name: str = "sample") -> tuple[Chorale, int]:  # fmt: skip
    """Read a (possibly generated) token sequence back; returns the chorale and the number of
    tokens that did not fit (a voice out of order, an unknown token, a hold that follows no
    note of that pitch). A soprano token opens a new step; voices missing from a step rest.

    >>> ch, bad = tokens_to_chorale("| S72 A67 T60 B48 S72~ A67~ x T60~ B48~ F".split(), 1.0)
    >>> ch.voices[0].tolist(), ch.onsets[0].tolist(), ch.bars.tolist(), ch.fermatas.tolist(), bad
    ([72, 72], [True, False], [0], [1], 1)
    """
    steps: list[list[tuple[int, bool] | None]] = []  # per step and voice: (pitch, onset)
    bars, ferm = [], []
    pending_bar, bad = False, 0
    for tok in tokens:
        if tok == BAR:
            pending_bar = True
            continue
        if tok == FERMATA:
            if steps:
                ferm.append(len(steps) - 1)
            else:
                bad += 1
            continue
        v = VOICES.index(tok[0]) if tok[:1] in VOICES else -1
        held = tok.endswith(HOLD)
        body = tok[1:-1] if held else tok[1:]
        if v < 0 or not (body == REST or body.isdigit()):
            bad += 1
            continue
        if v == 0:
            steps.append([None] * 4)
            if pending_bar:
                bars.append(len(steps) - 1)
                pending_bar = False
        elif not steps or steps[-1][v] is not None:
            bad += 1  # no step open, or this voice already sang in it
            continue
        p = 0 if body == REST else int(body)
        if held:
            before = steps[-2][v] if len(steps) > 1 else None
            if p == 0 or before is None or before[0] != p:
                held = False  # a hold with nothing to hold: read it as a new note
                bad += 1
        steps[-1][v] = (p, p > 0 and not held)
    T = len(steps)
    cells = [[s[v] or (0, False) for s in steps] for v in range(4)]
    voices = np.array([[c[0] for c in row] for row in cells], np.int64).reshape(4, T)
    onsets = np.array([[c[1] for c in row] for row in cells], bool).reshape(4, T)
    return Chorale(name, voices, onsets, np.array(bars or [0]), np.array(ferm), step, meter), bad


# --- notes, checks and MusicXML --------------------------------------------------------------


def voice_notes(ch: Chorale) -> list[tuple[int, int, int, int]]:
    """(voice, start step, end step, pitch) of every note, held steps merged."""
    notes = []
    for v in range(4):
        t = 0
        while t < ch.steps:
            p = int(ch.voices[v, t])
            if p == 0:
                t += 1
                continue
            end = t + 1
            while end < ch.steps and ch.voices[v, end] == p and not ch.onsets[v, end]:
                end += 1
            notes.append((v, t, end, p))
            t = end
    return notes


MAJOR = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)


def in_key_share(chorales: Iterable[Chorale]) -> float:
    """Share of notes whose pitch class lies in the best-fitting key, per chorale, over all
    notes: for each chorale the key (major or harmonic minor, any tonic) holding most of its
    notes. Bach's chorales modulate and use chromatic notes, so they score below 1 too.

    >>> ch = Chorale("c", [[60, 62, 64, 66]] * 4, [[1, 1, 1, 1]] * 4, [0], [], 1.0)
    >>> in_key_share([ch])   # C, D, E, F#: all in G major
    1.0
    """
    inside = total = 0
    for ch in chorales:
        pcs = np.array([p % 12 for _, _, _, p in voice_notes(ch)], np.int64)
        if pcs.size == 0:
            continue
        hist = np.bincount(pcs, minlength=12)
        best = max(int(hist[[(tonic + s) % 12 for s in scale]].sum())
                   for scale in (MAJOR, HARMONIC_MINOR) for tonic in range(12))  # fmt: skip
        inside += best
        total += int(pcs.size)
    return inside / total if total else float("nan")


def voice_ranges(chorales: Iterable[Chorale]) -> list[tuple[int, int]]:
    """(lowest, highest) pitch of each voice S, A, T, B over the chorales."""
    lo, hi = [999] * 4, [0] * 4
    for ch in chorales:
        for v in range(4):
            ps = ch.voices[v][ch.voices[v] > 0]
            if ps.size:
                lo[v], hi[v] = min(lo[v], int(ps.min())), max(hi[v], int(ps.max()))
    return list(zip(lo, hi, strict=True))


def parallel_motion_per_bar(chorales: Iterable[Chorale], interval: int = 7) -> float:
    """Parallel fifths (``interval=7``) or octaves (``0``) per bar: pairs of voices that
    sound that interval (modulo the octave) at two consecutive steps while both move in the
    same direction, counted over all pairs and steps, divided by the number of bars.

    >>> ch = Chorale("p", [[67, 69], [60, 62], [55, 55], [48, 48]], [[1, 1]] * 4, [0], [], 1.0)
    >>> parallel_motion_per_bar([ch])   # S-A move C-G to D-A in parallel fifths
    1.0
    """
    count, bars = 0, 0
    for ch in chorales:
        bars += max(len(ch.bars), 1)
        v = ch.voices
        for i in range(4):
            for j in range(i + 1, 4):
                a, b = v[i], v[j]
                sounding = (a[:-1] > 0) & (b[:-1] > 0) & (a[1:] > 0) & (b[1:] > 0)
                da, db = np.diff(a), np.diff(b)
                same = (np.sign(da) == np.sign(db)) & (da != 0)
                iv0 = (a[:-1] - b[:-1]) % 12 == interval
                iv1 = (a[1:] - b[1:]) % 12 == interval
                count += int((sounding & same & iv0 & iv1).sum())
    return count / bars if bars else float("nan")


def musicxml_bytes(ch: Chorale, title: str = "") -> bytes:
    """The chorale as MusicXML (four parts), written by music21."""
    m21 = _music21()
    score = m21.stream.Score()
    score.insert(0, m21.metadata.Metadata(title=title or ch.name))
    for v, name in enumerate(("Soprano", "Alto", "Tenor", "Bass")):
        part = m21.stream.Part()
        part.partName = name
        part.insert(0, m21.meter.TimeSignature(ch.meter))
        part.insert(0, m21.clef.TrebleClef() if v < 2 else
                    (m21.clef.Treble8vbClef() if v == 2 else m21.clef.BassClef()))  # fmt: skip
        t = 0
        mine = [(start, end, p) for u, start, end, p in voice_notes(ch) if u == v]
        for start, end, p in [*mine, (ch.steps, 0, 0)]:
            if start > t:  # a rest up to the next note
                part.append(m21.note.Rest(quarterLength=(start - t) * ch.step))
            if p:
                part.append(m21.note.Note(p, quarterLength=(end - start) * ch.step))
                t = end
        score.insert(0, part)
    exporter = m21.musicxml.m21ToXml.GeneralObjectExporter(score)
    return bytes(exporter.parse())
