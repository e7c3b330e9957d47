"""Notes to files: a Standard MIDI File writer and a small additive synthesiser (WAV).

Both take notes as ``(start, end, pitch)`` with times in quarter notes and MIDI pitches.
The MIDI writer makes a format-1 file (SMF 1.0): a first track with the tempo and time
signature, then one track per named part, note-on/note-off events with running delta times
in variable-length quantities. The tests read its files back with mido, a MIDI library that
is not ours.

>>> variable_length(0), variable_length(127), variable_length(128), variable_length(0x0FFFFFFF)
(b'\\x00', b'\\x7f', b'\\x81\\x00', b'\\xff\\xff\\xff\\x7f')
>>> data = midi_bytes([("Soprano", [(0.0, 1.0, 60), (1.0, 3.0, 62)])], bpm=90, meter="3/4")
>>> data[:4], int.from_bytes(data[8:10], "big"), int.from_bytes(data[10:12], "big")
(b'MThd', 1, 2)
"""

from __future__ import annotations

import io
import math
import wave
from collections.abc import Sequence

import numpy as np

Note = tuple[float, float, int]  # start, end (quarter notes), MIDI pitch

__all__ = ["midi_bytes", "synth_wav", "variable_length"]


def variable_length(n: int) -> bytes:
    """A MIDI variable-length quantity: 7 bits per byte, high bit set on all but the last."""
    if not 0 <= n <= 0x0FFFFFFF:
        raise ValueError(f"variable_length: {n} is outside 0..0x0FFFFFFF")
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def _track(events: list[tuple[int, int, bytes]]) -> bytes:
    """An MTrk chunk from (tick, order, event bytes), sorted; end-of-track appended."""
    body, now = bytearray(), 0
    for tick, _, ev in sorted(events, key=lambda e: (e[0], e[1])):
        body += variable_length(tick - now) + ev
        now = tick
    body += b"\x00\xff\x2f\x00"
    return b"MTrk" + len(body).to_bytes(4, "big") + bytes(body)


def _meta(kind: int, data: bytes) -> bytes:
    return bytes([0xFF, kind]) + variable_length(len(data)) + data


def midi_bytes(
    parts: Sequence[tuple[str, Sequence[Note]]],
    bpm: float = 80.0,
    meter: str = "4/4",
    ppq: int = 480,
    velocity: int = 80,
) -> bytes:
    """A format-1 Standard MIDI File: one track per ``(name, notes)`` part, each on its own
    channel (0-15, skipping 9, the drums), piano sound; ``ppq`` ticks per quarter note."""
    if len(parts) > 15:
        raise ValueError(f"midi_bytes: at most 15 parts, got {len(parts)}")
    num, _, den = meter.partition("/")
    den_i = int(den or 4)
    tempo = int(round(60_000_000 / bpm))  # microseconds per quarter note
    head = [
        (0, 0, _meta(0x51, tempo.to_bytes(3, "big"))),
        (0, 0, _meta(0x58, bytes([int(num or 4), int(math.log2(den_i)), 24, 8]))),
    ]
    tracks = [_track(head)]
    for k, (name, notes) in enumerate(parts):
        ch = k if k < 9 else k + 1
        events = [(0, 0, _meta(0x03, name.encode("utf-8"))), (0, 1, bytes([0xC0 | ch, 0]))]
        for start, end, pitch in notes:
            if not 0 <= pitch <= 127:
                raise ValueError(f"midi_bytes: pitch {pitch} is outside 0..127")
            a, b = int(round(start * ppq)), int(round(end * ppq))
            if b <= a:
                continue
            # at one tick, note-offs (order 2) before note-ons (3), so a repeated pitch restarts
            events.append((a, 3, bytes([0x90 | ch, pitch, velocity])))
            events.append((b, 2, bytes([0x80 | ch, pitch, 0])))
        tracks.append(_track(events))
    header = b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big")
    header += len(tracks).to_bytes(2, "big") + ppq.to_bytes(2, "big")
    return header + b"".join(tracks)


def synth_wav(notes: Sequence[Note], bpm: float = 80.0, rate: int = 22050) -> bytes:
    """16-bit mono WAV of the notes: each a sum of four harmonics (amplitudes 1, 1/2, 1/4,
    1/8) under a 10 ms attack, an exponential decay and a 30 ms release; the mix is scaled
    to a peak of 0.8.

    >>> w = synth_wav([(0.0, 1.0, 69)], bpm=60, rate=8000)
    >>> w[:4], w[8:12], len(w) > 8000 * 2
    (b'RIFF', b'WAVE', True)
    """
    sec = 60.0 / bpm
    length = max((end for _, end, _ in notes), default=0.0) * sec + 0.1
    out = np.zeros(int(math.ceil(length * rate)) + 1)
    for start, end, pitch in notes:
        a = int(start * sec * rate)
        n = max(int((end - start) * sec * rate), 1)
        t = np.arange(n) / rate
        f = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
        tone = sum(0.5**h * np.sin(2 * np.pi * f * (h + 1) * t) for h in range(4))
        env = np.minimum(1.0, t / 0.01) * np.exp(-1.5 * t)
        env *= np.clip((n / rate - t) / 0.03, 0.0, 1.0)
        out[a : a + n] += tone * env
    peak = float(np.abs(out).max(initial=0.0))
    if peak > 0:
        out *= 0.8 / peak
    pcm = (out * 32767).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()
