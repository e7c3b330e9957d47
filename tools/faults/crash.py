"""Crash injection: ``kill -9`` training runs at random moments, then check what is left.

For each trial a train command (``lm``, ``classify``, ``mt``, ``embed``) starts on tiny data
with frequent checkpoints and is killed with SIGKILL, either after a random delay or while it
is writing a checkpoint (the harness watches the output folder for the save's temporary
folder and kills the moment it appears or is being swapped in). Then:

1. the output folder must hold a loadable checkpoint (the previous or the new one; a torn
   or mixed one is a failure), unless the kill came before the first save;
2. ``--resume`` (or, with no checkpoint yet, the same command again) must finish with exit
   status 0 and no traceback, within a time limit (a hang is a failure);
3. at one thread, the finished run must equal an uninterrupted run of the same command bit
   for bit: every step's training loss in ``metrics.jsonl`` and the final weights (``embed``:
   the vector file).

Usage (the long run of RELIABILITY.md; about 10 minutes on one core)::

    nice -n 10 python tools/faults/crash.py --trials 64 --work /tmp/crash --json crash.json

``--commands lm,embed`` restricts the commands, ``--trials`` is the total (spread evenly),
``--seed`` fixes the kill moments. Exit status 1 if any trial failed. The bounded version in
``tests/test_reliability_crash.py`` runs a few trials through :func:`run_trials`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rnnkit.io import RnnkitError
from rnnkit.train.checkpoint import checkpoint_exists, load_checkpoint

WORDS = "the a cat dog sat ran on under mat log big small red blue saw ate fish bird".split()
TIMEOUT = 900.0  # seconds a run may take before it counts as a hang (a loaded machine)


# --- tiny data and command lines ------------------------------------------------------------


def _sentences(rng: random.Random, n: int, lo: int = 3, hi: int = 9) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))) for _ in range(n)]


@dataclass
class Command:
    """One train command under test: how to start it, where it saves, what it produced."""

    name: str
    data: list[str]  # after `rnnkit --threads 1`: the command and its data files
    settings: list[str]  # a new run's settings (a resumed run takes the checkpoint's)
    checkpoint: str  # the checkpoint folder, OUT-relative pattern
    run: list[str] = field(default_factory=lambda: ["--out", "OUT", "--no-progress"])

    def args(self, out: Path, resume: bool = False) -> list[str]:
        argv = self.data + self.run + (["--resume"] if resume else self.settings)
        return [a.replace("OUT", str(out)) for a in argv]

    def checkpoint_path(self, out: Path) -> Path:
        return Path(self.checkpoint.replace("OUT", str(out)))

    def folder(self, out: Path) -> Path:
        """What to watch for saves in progress: the checkpoint's parent."""
        return self.checkpoint_path(out).parent

    def result(self, out: Path) -> dict[str, Any]:
        """What a finished run produced: per-step losses and a digest of the final weights."""
        if self.name == "embed":
            return {"vectors_sha256": hashlib.sha256(out.read_bytes()).hexdigest()}
        losses = {}
        for line in (out / "metrics.jsonl").read_text().splitlines():
            r = json.loads(line)
            if r.get("type") == "train":
                losses[int(r["step"])] = r["loss"]
        weights = (out / "checkpoint" / "model.safetensors").read_bytes()
        return {"losses": [losses[k] for k in sorted(losses)],
                "weights_sha256": hashlib.sha256(weights).hexdigest()}  # fmt: skip


def make_commands(data: Path, every: str = "1", epochs: int = 2) -> dict[str, Command]:
    """The four train commands on tiny data written into ``data`` (deterministic), saving
    every ``every`` steps (embed: blocks) for ``epochs`` epochs (embed: twice as many)."""
    data.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    (data / "text.txt").write_text("\n".join(_sentences(rng, 60)) + "\n")
    rows = [f"{s}\t{int('cat' in s)}" for s in _sentences(rng, 48)]
    (data / "train.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    src = _sentences(rng, 32, 2, 6)
    (data / "train.src").write_text("\n".join(src) + "\n")
    (data / "train.tgt").write_text("\n".join(" ".join(reversed(s.split())) for s in src) + "\n")
    (data / "corpus.txt").write_text("\n".join(_sentences(rng, 6000, 5, 15)) + "\n")
    small = ["--epochs", str(epochs), "--seed", "3", "--checkpoint-every", every,
             "--log-every", "1", "--hidden", "8", "--embed", "8", "--batch-size", "4"]  # fmt: skip
    return {
        "lm": Command(
            "lm",
            ["lm", "train", str(data / "text.txt")],
            [*small, "--layers", "1", "--bptt", "8"],
            "OUT/checkpoint",
        ),  # fmt: skip
        "classify": Command(
            "classify", ["classify", "train", str(data / "train.tsv")], small, "OUT/checkpoint"
        ),  # fmt: skip
        "mt": Command(
            "mt",
            ["mt", "train", "--src", str(data / "train.src"), "--tgt", str(data / "train.tgt")],
            small,
            "OUT/checkpoint",
        ),  # fmt: skip
        "embed": Command(
            "embed",
            ["embed", "train", str(data / "corpus.txt")],
            [
                "--dim",
                "8",
                "--epochs",
                str(2 * epochs),
                "--min-count",
                "1",
                "--checkpoint-every",
                every,
            ],
            "OUT.train/checkpoint",
            ["--out", "OUT", "--quiet"],
        ),  # fmt: skip
    }


# --- running and killing --------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1", PYTHONUNBUFFERED="1")  # fmt: skip
    return env


def _rnnkit(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "rnnkit", "--threads", "1", *args]


def run_to_end(cmd: Command, out: Path, resume: bool, log: Path) -> tuple[int | None, str]:
    """Run a command to its end: (exit status or None on a hang, stderr)."""
    with open(log, "wb") as f:
        try:
            rc = subprocess.run(_rnnkit(cmd.args(out, resume)), stdout=f, stderr=subprocess.STDOUT,
                                env=_env(), timeout=TIMEOUT).returncode  # fmt: skip
        except subprocess.TimeoutExpired:
            rc = None
    return rc, log.read_text(errors="replace")


def _saving(folder: Path, name: str) -> bool:
    """A save of checkpoint ``name`` is in progress in ``folder`` (its temporary folder or
    the previous one's backup exists)."""
    try:
        return any(p.startswith((f"{name}.tmp-", f"{name}.old-")) for p in os.listdir(folder))
    except OSError:
        return False


def kill_run(cmd: Command, out: Path, mode: str, delay: float, nth_save: int, log: Path
             ) -> dict[str, Any]:  # fmt: skip
    """Start the command and SIGKILL it: after ``delay`` seconds (``mode="random"``) or while
    its ``nth_save``-th observed save is in progress (``mode="save"``; at ``delay`` at the
    latest); ``mode="watch"`` only counts the saves it sees. Returns what happened."""
    folder, name = cmd.folder(out), cmd.checkpoint_path(out).name
    with open(log, "wb") as f:
        proc = subprocess.Popen(_rnnkit(cmd.args(out)), stdout=f, stderr=subprocess.STDOUT,
                                env=_env())  # fmt: skip
        t0 = time.monotonic()
        seen, was_saving, during_save = 0, False, False
        while proc.poll() is None and time.monotonic() - t0 < delay:
            if mode in ("save", "watch"):
                now = _saving(folder, name)
                if now and not was_saving:
                    seen += 1
                was_saving = now
                if mode == "save" and now and seen >= nth_save:
                    during_save = True
                    break
                time.sleep(0.0005)
            else:
                time.sleep(0.005)
        finished = proc.poll() is not None
        if not finished:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
    return {"killed_after_s": round(time.monotonic() - t0, 3), "finished_first": finished,
            "saves_seen": seen, "returncode": proc.returncode,
            "during_save": during_save or (not finished and _saving(folder, name))}  # fmt: skip


@dataclass
class Trial:
    """One kill and what followed."""

    command: str
    mode: str
    killed_after_s: float = 0.0
    finished_first: bool = False  # the run ended before the kill came
    during_save: bool = False  # a save was in progress at the kill
    checkpoint: str = ""  # loaded | none (killed before the first save) | torn
    checkpoint_step: Any = None
    detail: str = ""
    resume_rc: int | None = None
    traceback: bool = False
    hang: bool = False
    exact: bool = False

    @property
    def ok(self) -> bool:
        return (self.checkpoint != "torn" and self.resume_rc == 0 and not self.traceback
                and not self.hang and self.exact)  # fmt: skip


def _position(ck: Any) -> Any:
    t = ck.trainer
    return t.get("step", t.get("position"))


def trial(cmd: Command, reference: dict[str, Any], work: Path, mode: str, delay: float,
          nth_save: int) -> Trial:  # fmt: skip
    """Kill one run, inspect its folder, resume it to the end and compare."""
    out = work / ("vectors.txt" if cmd.name == "embed" else "run")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t = Trial(cmd.name, mode)
    killed = kill_run(cmd, out, mode, delay, nth_save, work / "killed.log")
    t.killed_after_s, t.finished_first = killed["killed_after_s"], killed["finished_first"]
    t.during_save = killed["during_save"]
    path = cmd.checkpoint_path(out)
    resume = True
    if t.finished_first:
        t.checkpoint, resume = "finished", False
    elif not checkpoint_exists(path):
        t.checkpoint, resume = "none", False  # killed before the first save: start again
    else:
        try:
            t.checkpoint_step = _position(load_checkpoint(path))
            t.checkpoint = "loaded"
        except RnnkitError as e:
            t.checkpoint, t.detail = "torn", str(e)
            return t
    if t.finished_first:
        t.resume_rc, text = 0, ""
    else:
        t.resume_rc, text = run_to_end(cmd, out, resume, work / "resumed.log")
    t.hang = t.resume_rc is None
    t.traceback = "Traceback" in text
    if t.resume_rc == 0:
        got = cmd.result(out)
        t.exact = got == reference
        if not t.exact:
            t.detail = "differs from the uninterrupted run"
    else:
        t.detail = text.strip().splitlines()[-1][:300] if text.strip() else "no output"
    return t


def reference_run(cmd: Command, work: Path) -> tuple[dict[str, Any], float, int]:
    """The uninterrupted run: its result, how long it took and how many saves were seen."""
    out = work / ("vectors.txt" if cmd.name == "embed" else "run")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    watched = kill_run(cmd, out, "watch", TIMEOUT, 0, work / "reference.log")
    text = (work / "reference.log").read_text(errors="replace")
    if watched["returncode"] != 0 or "Traceback" in text:
        raise RuntimeError(f"reference run of {cmd.name} failed: {text[-2000:]}")
    return cmd.result(out), watched["killed_after_s"], watched["saves_seen"]


def run_trials(commands: dict[str, Command], trials: int, work: Path, seed: int = 0,
               echo: Callable[[str], None] = print, modes: tuple[str, ...] = ("random", "save")
               ) -> list[Trial]:  # fmt: skip
    """``trials`` kills spread evenly over ``commands``, taking turns through ``modes`` (a
    random moment, a save in progress); returns every trial."""
    rng = random.Random(seed)
    names = list(commands)
    results: list[Trial] = []
    refs = {}
    for name in names:  # compile (or load) numba's kernels once, outside every timing
        warm = work / name / "warm-up"
        shutil.rmtree(warm, ignore_errors=True)
        warm.mkdir(parents=True)
        out = warm / ("vectors.txt" if name == "embed" else "run")
        with open(warm / "log", "wb") as f:
            subprocess.run(_rnnkit([*commands[name].args(out), "--max-steps", "1"]), stdout=f,
                           stderr=subprocess.STDOUT, env=_env(), timeout=TIMEOUT)  # fmt: skip
    for name in names:
        refs[name] = reference_run(commands[name], work / name / "reference")
        echo(f"{name}: reference run {refs[name][1]:.1f} s, {refs[name][2]} saves seen")
    for i in range(trials):
        name = names[i % len(names)]
        ref, seconds, saves = refs[name]
        mode = modes[(i // len(names)) % len(modes)]
        # random: anywhere from start-up to the end; save: the k-th save seen, k drawn from
        # those the reference run showed (a lower bound: the quickest saves go unseen)
        delay = rng.uniform(0.5, seconds) if mode == "random" else seconds * 3
        nth = rng.randint(1, max(saves, 1))
        t = trial(commands[name], ref, work / name / "trial", mode, delay, nth)
        results.append(t)
        echo(f"[{i + 1}/{trials}] {name:8s} {mode:6s} kill at {t.killed_after_s:6.2f} s "
             f"save={'y' if t.during_save else 'n'} checkpoint={t.checkpoint}"
             f"({t.checkpoint_step}) resume={t.resume_rc} exact={t.exact}"
             + (f"  {t.detail}" if t.detail else ""))  # fmt: skip
    return results


def summarize(results: list[Trial]) -> dict[str, Any]:
    """Counts per command and overall (the table of RELIABILITY.md)."""

    def counts(rs: list[Trial]) -> dict[str, int]:
        return {
            "trials": len(rs),
            "during_save": sum(r.during_save for r in rs),
            "before_first_save": sum(r.checkpoint == "none" for r in rs),
            "finished_before_kill": sum(r.checkpoint == "finished" for r in rs),
            "checkpoint_loaded": sum(r.checkpoint == "loaded" for r in rs),
            "torn": sum(r.checkpoint == "torn" for r in rs),
            "resume_failed": sum(r.resume_rc not in (0, None) for r in rs),
            "tracebacks": sum(r.traceback for r in rs),
            "hangs": sum(r.hang for r in rs),
            "exact": sum(r.exact for r in rs),
        }

    by = {name: counts([r for r in results if r.command == name])
          for name in dict.fromkeys(r.command for r in results)}  # fmt: skip
    return {"total": counts(results), "by_command": by}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--commands", default="lm,classify,mt,embed")
    ap.add_argument("--work", type=Path, default=Path("/tmp/rnnkit-crash"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write every trial and the counts")
    args = ap.parse_args(argv)
    commands = make_commands(args.work / "data")
    chosen = {n: commands[n] for n in args.commands.split(",")}
    t0 = time.monotonic()
    results = run_trials(chosen, args.trials, args.work, args.seed,
                         echo=lambda line: print(line, flush=True))  # fmt: skip
    summary = summarize(results)
    summary["seconds"] = round(time.monotonic() - t0, 1)
    summary["command"] = "python tools/faults/crash.py " + " ".join(argv or sys.argv[1:])
    return report(summary, results, args.json)


def report(summary: dict[str, Any], results: list[Any], path: Path | None) -> int:
    """Print the counts, write them and every trial to ``path`` (JSON); the exit status:
    1 if any trial failed."""
    print(json.dumps(summary, indent=1))
    if path is not None:
        path.write_text(json.dumps({**summary, "trials": [asdict(r) for r in results]},
                                   indent=1))  # fmt: skip
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
