"""Bach's chorales on a grid, held to music21 and mido; the MIDI writer held to mido; the
MusicXML writer read back by music21; the WAV synthesiser read by the standard library."""

from __future__ import annotations

import copy
import hashlib
import io
import wave

import mido
import music21
import numpy as np
import pytest

from rnnkit.text.chorales import (
    Chorale,
    bach_chorale_names,
    chorale_from_score,
    chorale_tokens,
    drop_duplicates,
    in_key_share,
    musicxml_bytes,
    parallel_motion_per_bar,
    piano_roll,
    roll_notes,
    roll_to_chorale,
    shift_roll,
    split_of,
    tokens_to_chorale,
    voice_notes,
)
from rnnkit.text.midi import midi_bytes, synth_wav

NAMES = ("bwv269", "bwv347")  # a 3/4 chorale with a pickup, and a 4/4 one


@pytest.fixture(scope="module")
def scores():
    return {n: music21.corpus.parse(f"bach/{n}") for n in NAMES}


def test_the_wheel_ships_the_chorales():
    names = bach_chorale_names()
    assert len(names) >= 340, len(names)  # 350 files behind music21's list of 371 numbers
    counts = {s: sum(split_of(n) == s for n in names) for s in ("train", "valid", "test")}
    assert 0.75 < counts["train"] / len(names) < 0.85, counts
    assert min(counts["valid"], counts["test"]) >= 20, counts


def test_split_is_the_written_rule():
    for name in ("bwv269", "bwv10.7", "bwv102.7", "bwv114.7", "bwv248.53-5"):
        k = int(hashlib.sha256(name.encode()).hexdigest()[:16], 16) % 10
        assert split_of(name) == ("train" if k < 8 else "valid" if k == 8 else "test")


def _sounding_from_midi(data: bytes, step: float, steps: int) -> np.ndarray:
    """(T, 128) pitches sounding at each grid point, read by mido from a MIDI file."""
    mf = mido.MidiFile(file=io.BytesIO(data))
    out = np.zeros((steps, 128), bool)
    for track in mf.tracks:
        now, start = 0, {}
        for msg in track:
            now += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                start[msg.note] = now
            elif msg.type in ("note_off", "note_on") and msg.note in start:
                a, b = start.pop(msg.note) / mf.ticks_per_beat, now / mf.ticks_per_beat
                grid = np.arange(steps) * step
                out[(grid >= a - 1e-6) & (grid < b - 1e-6), msg.note] = True
    return out


@pytest.mark.parametrize("name", NAMES)
def test_grid_matches_music21s_midi_read_by_mido(scores, name):
    """Our pitches on the grid against music21's own MIDI export of the score, read by mido."""
    step = 0.5
    ch = chorale_from_score(scores[name], name, step)
    written = copy.deepcopy(scores[name])  # the grid keeps the score as written: no repeats
    for m in written.recurse().getElementsByClass("Measure"):
        if isinstance(m.leftBarline, music21.bar.Repeat):
            m.leftBarline = None
        if isinstance(m.rightBarline, music21.bar.Repeat):
            m.rightBarline = None
    sm = music21.midi.translate.streamToMidiFile(written)
    ref = _sounding_from_midi(sm.writestr(), step, ch.steps)
    ours = piano_roll(ch, 0, 127) > 0
    diff = np.argwhere(ours != ref)
    assert len(diff) == 0, f"{len(diff)} cells differ, first {diff[:5].tolist()}"
    assert ch.voices[0].max() > ch.voices[1].max() > ch.voices[3].max()  # S above A above B


def test_voices_beside_instruments_are_found_by_name():
    score = music21.corpus.parse("bach/bwv8.6")  # Soprano, Alto, Tenor, Bass, Continuo
    ch = chorale_from_score(score, "bwv8.6", 1.0)
    for v, part in enumerate(score.parts[:4]):
        first = part.flatten().notes[0]
        assert ch.voices[v, int(first.offset)] == first.pitch.midi
        assert ch.voices[v, : int(first.offset)].sum() == 0  # rests before it


def test_onsets_ties_bars_and_fermatas(scores):
    ch = chorale_from_score(scores["bwv269"], "bwv269", 0.5)
    part = scores["bwv269"].parts[0].flatten().notes
    n_notes = sum(1 for n in part if n.tie is None or n.tie.type == "start")
    assert int(ch.onsets[0].sum()) == n_notes  # one onset per soprano note, ties held
    assert ch.meter == "3/4" and ch.bars[:3].tolist() == [0, 2, 8]  # pickup of one beat
    fermata = music21.expressions.Fermata
    fermata_steps = [int(n.offset / 0.5) for n in part
                     if any(isinstance(e, fermata) for e in n.expressions)]  # fmt: skip
    assert ch.fermatas.tolist() == fermata_steps


def test_tokens_round_trip(scores):
    for name, sc in scores.items():
        ch = chorale_from_score(sc, name, 0.25)
        back, bad = tokens_to_chorale(chorale_tokens(ch), 0.25, ch.meter)
        assert bad == 0
        np.testing.assert_array_equal(back.voices, ch.voices)
        np.testing.assert_array_equal(back.onsets, ch.onsets)
        np.testing.assert_array_equal(back.bars, ch.bars)
        np.testing.assert_array_equal(back.fermatas, ch.fermatas)


def test_tokens_from_a_careless_model_are_read_and_counted():
    toks = "S60 A55~ T48 B36 B36 S61~ Q7 A. T50 | S60 A55 T48 B36 F".split()
    ch, bad = tokens_to_chorale(toks, 0.5)
    # A55~ holds nothing, B36 twice, S61~ holds nothing, Q7 unknown
    assert bad == 4
    assert ch.voices.tolist() == [[60, 61, 60], [55, 0, 55], [48, 50, 48], [36, 0, 36]]
    assert ch.bars.tolist() == [2] and ch.fermatas.tolist() == [2]


def test_duplicates_up_to_transposition_are_dropped(scores):
    ch = chorale_from_score(scores["bwv347"], "bwv347", 0.5)
    other = chorale_from_score(scores["bwv269"], "bwv269", 0.5)
    copy = ch.transposed(3)
    copy.name = "bwv999"
    kept, dropped = drop_duplicates([copy, other, ch])
    assert [c.name for c in kept] == ["bwv269", "bwv347"] and dropped == {"bwv999": "bwv347"}


def test_roll_to_voices_and_notes():
    roll = np.zeros((3, 30))
    roll[0, [0, 5, 9, 14, 20]] = 1  # five pitches: S, A, T from the top, B the lowest
    roll[1, [5, 20]] = 1
    roll[2, [20]] = 1
    ch = roll_to_chorale(roll, 40, 0.5, "2/4")
    assert ch.voices[:, 0].tolist() == [60, 54, 49, 40]
    assert ch.voices[:, 1].tolist() == [60, 0, 0, 45] and ch.voices[:, 2].tolist() == [60, 0, 0, 0]
    assert ch.onsets[0].tolist() == [True, False, False] and ch.bars.tolist() == [0]
    assert sorted(roll_notes(roll, 40)) == [(0, 1, 40), (0, 1, 49), (0, 1, 54), (0, 2, 45),
                                            (0, 3, 60)]  # fmt: skip


def test_checks_on_hand_made_voice_leading():
    # S and A rise a step from a fifth apart, S and B from two octaves apart; T holds
    up = Chorale("u", [[72, 74], [65, 67], [60, 60], [48, 50]], [[1, 1]] * 4, [0], [], 1.0)
    assert parallel_motion_per_bar([up], 7) == 1.0  # S-A 72/65 -> 74/67
    assert parallel_motion_per_bar([up], 0) == 1.0  # S-B 72/48 -> 74/50
    contrary = Chorale("c", [[72, 74], [65, 62], [60, 60], [48, 46]], [[1, 1]] * 4, [0], [], 1.0)
    assert parallel_motion_per_bar([contrary], 7) == 0.0
    assert parallel_motion_per_bar([contrary], 0) == 0.0
    chromatic = Chorale("x", [list(range(60, 72))] * 4, [[1] * 12] * 4, [0], [], 1.0)
    assert in_key_share([chromatic]) == pytest.approx(7 / 12)


def test_midi_writer_read_by_mido(scores):
    ch = chorale_from_score(scores["bwv269"], "bwv269", 0.5)
    parts = [(name, [(a * 0.5, b * 0.5, p) for v, a, b, p in voice_notes(ch) if v == k])
             for k, name in enumerate(("Soprano", "Alto", "Tenor", "Bass"))]  # fmt: skip
    data = midi_bytes(parts, bpm=72, meter=ch.meter)
    mf = mido.MidiFile(file=io.BytesIO(data))
    assert mf.type == 1 and len(mf.tracks) == 5
    metas = {m.type: m for m in mf.tracks[0] if m.is_meta}
    assert mido.tempo2bpm(metas["set_tempo"].tempo) == pytest.approx(72, abs=1e-3)
    assert (metas["time_signature"].numerator, metas["time_signature"].denominator) == (3, 4)
    for (name, notes), track in zip(parts, mf.tracks[1:], strict=True):
        assert track.name == name
        now, start, got = 0, {}, []
        for m in track:
            now += m.time
            if m.type == "note_on" and m.velocity > 0:
                start[m.note] = now
            elif m.type == "note_off":
                got.append((start.pop(m.note) / 480, now / 480, m.note))
        assert sorted(got) == sorted(notes)
    ref = _sounding_from_midi(data, 0.5, ch.steps)
    assert np.array_equal(ref, piano_roll(ch, 0, 127) > 0)
    assert mf.length == pytest.approx(ch.steps * 0.5 * 60 / 72, abs=1e-3)


def test_musicxml_read_back_by_music21(scores):
    ch = chorale_from_score(scores["bwv347"], "bwv347", 0.5)
    back = music21.converter.parseData(musicxml_bytes(ch), format="musicxml")
    assert len(back.parts) == 4 and back.parts[0].partName == "Soprano"
    for v, part in enumerate(back.parts):
        notes = part.stripTies().flatten().notes  # notes over a bar line come back tied
        got = [(float(n.offset) / 0.5, float(n.quarterLength) / 0.5, n.pitch.midi) for n in notes]
        want = [(float(a), float(b - a), p) for u, a, b, p in voice_notes(ch) if u == v]
        assert got == want


def test_wav_is_read_by_the_standard_library_and_has_the_pitch():
    data = synth_wav([(0.0, 2.0, 69)], bpm=60, rate=8000)  # A4 for two seconds
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(float)
    assert len(x) >= 16000
    spectrum = np.abs(np.fft.rfft(x[:8000]))
    assert np.argmax(spectrum) == pytest.approx(440, abs=1)  # 1 Hz bins
    assert np.abs(x).max() == pytest.approx(0.8 * 32767, rel=0.01)


def test_shifting_the_roll_is_transposing_the_chorale(scores):
    ch = chorale_from_score(scores["bwv347"], "bwv347", 0.5)
    for s in (-3, 2):
        np.testing.assert_array_equal(shift_roll(piano_roll(ch, 30, 90), s),
                                      piano_roll(ch.transposed(s), 30, 90))  # fmt: skip
