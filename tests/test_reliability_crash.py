"""kill -9 during training, bounded (issue 23): a few trials of tools/faults/crash.py, each
killing a run while it writes a checkpoint, then checking that the folder holds a loadable
checkpoint, that --resume finishes without a traceback, and that the finished run's
per-step losses and weights (embed: the vectors) equal an uninterrupted run's bit for bit.
The long run (64 trials over lm, classify, mt and embed) is RELIABILITY.md's."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "crash", Path(__file__).resolve().parents[1] / "tools" / "faults" / "crash.py"
)
crash = importlib.util.module_from_spec(spec)
sys.modules["crash"] = crash  # its dataclasses look their module up
spec.loader.exec_module(crash)


def test_kill_during_saves_then_resume_gives_the_uninterrupted_run(tmp_path):
    commands = crash.make_commands(tmp_path / "data", every="2", epochs=1)
    chosen = {name: commands[name] for name in ("lm", "embed")}
    lines: list[str] = []
    results = crash.run_trials(chosen, 2, tmp_path / "work", seed=1, echo=lines.append,
                               modes=("save",))  # fmt: skip
    report = "\n".join(lines)
    assert all(r.ok for r in results), report
    # killed while writing: the previous checkpoint (or, during the first save, none yet)
    assert all(r.during_save and r.checkpoint in ("loaded", "none") for r in results), report
    counts = crash.summarize(results)["total"]
    assert counts["torn"] == counts["tracebacks"] == counts["hangs"] == 0, counts
    assert counts["exact"] == counts["trials"] == 2, counts
