"""Fault injection other than kill -9: a full disk, a folder turning read-only, SIGTERM, and a
second run into a busy folder, each at a random moment of a real `rnnkit lm train` (and
`classify train`) run. After each fault:

- the command must end with exit status 1 (disk full, read-only), 143 (SIGTERM) or 1 (the
  second run) and print one line on stderr, no traceback;
- the folder must hold a loadable checkpoint (or none yet, when the fault came before the
  first save), never a torn one;
- once the fault is gone (the disk enlarged, the folder writable again, the first run
  killed), ``--resume`` must finish and equal an uninterrupted run bit for bit.

The disk is a tmpfs of a random size between 24 and 160 KiB, mounted for the trial (a run
needs about 300 KiB); read-only: a run stopped after a random number of steps on a tmpfs that
is then remounted ``ro`` (a file system with files open for writing cannot be) and resumed
there. Both need root (``mount``); without it those two kinds are skipped and reported so.

Usage (RELIABILITY.md's figures)::

    sudo nice -n 10 python tools/faults/faults.py --trials 10 --work /tmp/faults --json f.json
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crash import (  # noqa: E402  (a tool beside this one)
    TIMEOUT,
    Command,
    _env,
    _rnnkit,
    make_commands,
    reference_run,
    report,
    run_to_end,
)

from rnnkit.io import RnnkitError  # noqa: E402
from rnnkit.train.checkpoint import checkpoint_exists, load_checkpoint  # noqa: E402

KINDS = ("disk-full", "read-only", "sigterm", "second-run")


@dataclass
class Outcome:
    kind: str
    command: str
    setting: str = ""  # the disk size, the moment
    rc: int | None = None
    stderr_last: str = ""
    one_line: bool = False  # the error is one line on stderr, no traceback
    traceback: bool = False
    checkpoint: str = ""  # loaded | none | torn
    resume_rc: int | None = None
    exact: bool = False

    @property
    def ok(self) -> bool:
        return (self.one_line and not self.traceback and self.checkpoint != "torn"
                and self.resume_rc == 0 and self.exact)  # fmt: skip


def _mount(where: Path, size_kib: int) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(where)],
                         capture_output=True)  # fmt: skip
    return res.returncode == 0


def _remount(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True)


def _umount(where: Path) -> None:
    subprocess.run(["umount", str(where)], capture_output=True)


def can_mount(work: Path) -> bool:
    probe = work / "probe"
    ok = _mount(probe, 64)
    if ok:
        _umount(probe)
    return ok


def _inspect(cmd: Command, out: Path, o: Outcome) -> None:
    path = cmd.checkpoint_path(out)
    if not checkpoint_exists(path):
        o.checkpoint = "none"
        return
    try:
        load_checkpoint(path)
        o.checkpoint = "loaded"
    except RnnkitError:
        o.checkpoint = "torn"


def _error_lines(text: str, o: Outcome) -> None:
    lines = [x for x in text.strip().splitlines() if x.startswith("rnnkit: ")]
    o.traceback = "Traceback" in text
    o.stderr_last = lines[-1][:300] if lines else text.strip()[-300:]
    o.one_line = len(lines) == 1 and not o.traceback


def _finish(cmd: Command, out: Path, o: Outcome, reference: dict[str, Any], log: Path) -> None:
    """Resume (or start again when there was no checkpoint) and compare."""
    resume = o.checkpoint == "loaded"
    o.resume_rc, _ = run_to_end(cmd, out, resume, log)
    o.exact = o.resume_rc == 0 and cmd.result(out) == reference


def _start(cmd: Command, out: Path, stderr: Path) -> subprocess.Popen:
    return subprocess.Popen(_rnnkit(cmd.args(out)), stdout=subprocess.DEVNULL,
                            stderr=open(stderr, "wb"), env=_env())  # fmt: skip


def disk_trial(cmd: Command, ref: dict[str, Any], work: Path, rng: random.Random,
               read_only: bool, seconds: float) -> Outcome:  # fmt: skip
    """disk-full: the run starts on a tmpfs too small for it. read-only: a run stopped after
    k steps (hidden --max-steps: its checkpoint saved) on a tmpfs that is then remounted
    read-only (a busy file system cannot be), and resumed there."""
    disk = work / "disk"
    size = 64 * 1024 if read_only else rng.randint(24, 160)
    o = Outcome("read-only" if read_only else "disk-full", cmd.name, f"{size} KiB")
    if not _mount(disk, size):
        raise RuntimeError("mount failed")
    try:
        out = disk / "run"
        resume = False
        if read_only:
            k = rng.randint(1, 40)
            o.setting = f"ro after {k} steps"
            first = Command(cmd.name, cmd.data, [*cmd.settings, "--max-steps", str(k)],
                            cmd.checkpoint, cmd.run)  # fmt: skip
            run_to_end(first, out, False, work / "first.log")
            _remount(disk, "ro")
            resume = True
        with open(work / "stderr", "wb") as f:
            try:
                o.rc = subprocess.run(_rnnkit(cmd.args(out, resume)), stdout=subprocess.DEVNULL,
                                      stderr=f, env=_env(), timeout=TIMEOUT).returncode  # fmt: skip
            except subprocess.TimeoutExpired:
                o.rc = None
        _error_lines((work / "stderr").read_text(errors="replace"), o)
        if o.rc == 0:  # the run fit: nothing to judge
            o.one_line = True
        _inspect(cmd, out, o)
        _remount(disk, "rw,size=64m")  # the fault is gone
        _finish(cmd, out, o, ref, work / "resume.log")
    finally:
        _umount(disk)
    return o


def sigterm_trial(cmd: Command, ref: dict[str, Any], work: Path, rng: random.Random,
                  seconds: float) -> Outcome:  # fmt: skip
    out = work / "run"
    delay = rng.uniform(0.2, 1.0) * seconds
    o = Outcome("sigterm", cmd.name, f"after {delay:.1f} s")
    proc = _start(cmd, out, work / "stderr")
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=TIMEOUT)
    o.rc = proc.returncode
    text = (work / "stderr").read_text(errors="replace")
    _error_lines(text, o)
    if o.rc == 0:
        o.one_line = True  # finished before the signal came
    elif o.rc != 143:
        o.one_line = False
    _inspect(cmd, out, o)
    _finish(cmd, out, o, ref, work / "resume.log")
    return o


def second_run_trial(cmd: Command, ref: dict[str, Any], work: Path, rng: random.Random,
                     seconds: float) -> Outcome:  # fmt: skip
    out = work / "run"
    o = Outcome("second-run", cmd.name)
    first = _start(cmd, out, work / "first.stderr")
    deadline = time.monotonic() + TIMEOUT
    while not (out / ".lock").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.5) * seconds)
    second = subprocess.run(_rnnkit(cmd.args(out)), capture_output=True, text=True, env=_env(),
                            timeout=TIMEOUT)  # fmt: skip
    o.rc = second.returncode
    _error_lines(second.stderr, o)
    finished = first.poll() is not None
    o.setting = "the first run had ended" if finished else f"first run PID {first.pid}"
    if not finished:
        o.one_line = o.one_line and o.rc == 1 and f"(PID {first.pid})" in o.stderr_last
        first.send_signal(signal.SIGKILL)  # its lock is now stale
    first.wait()
    _inspect(cmd, out, o)
    _finish(cmd, out, o, ref, work / "resume.log")
    return o


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10, help="per fault kind and command")
    ap.add_argument("--commands", default="lm,classify")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--work", type=Path, default=Path("/tmp/rnnkit-faults"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    commands = make_commands(args.work / "data", every="1")
    kinds = args.kinds.split(",")
    mountable = can_mount(args.work)
    skipped = []
    if not mountable:
        skipped = [k for k in kinds if k in ("disk-full", "read-only")]
        kinds = [k for k in kinds if k not in skipped]
    results: list[Outcome] = []
    for name in args.commands.split(","):
        cmd = commands[name]
        warm = args.work / name / "warm-up"
        shutil.rmtree(warm, ignore_errors=True)
        warm.mkdir(parents=True)
        run_to_end(Command(cmd.name, cmd.data, [*cmd.settings, "--max-steps", "1"],
                           cmd.checkpoint, cmd.run), warm / "run", False, warm / "log")  # fmt: skip
        ref, seconds, _ = reference_run(cmd, args.work / name / "reference")
        print(f"{name}: reference run {seconds:.1f} s", flush=True)
        for kind in kinds:
            for i in range(args.trials):
                work = args.work / name / f"{kind}-{i}"
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir(parents=True)
                if kind in ("disk-full", "read-only"):
                    o = disk_trial(cmd, ref, work, rng, kind == "read-only", seconds)
                elif kind == "sigterm":
                    o = sigterm_trial(cmd, ref, work, rng, seconds)
                else:
                    o = second_run_trial(cmd, ref, work, rng, seconds)
                results.append(o)
                print(f"{kind:10s} {name:8s} {o.setting:24s} rc={o.rc} one_line={o.one_line} "
                      f"checkpoint={o.checkpoint} resume={o.resume_rc} exact={o.exact} "
                      f"| {o.stderr_last}", flush=True)  # fmt: skip
    table: dict[str, dict[str, int]] = {}
    for o in results:
        keys = ("trials", "fault_hit", "one_line", "tracebacks", "torn", "resumed_exact")
        t = table.setdefault(o.kind, dict.fromkeys(keys, 0))
        t["trials"] += 1
        t["fault_hit"] += o.rc != 0
        t["one_line"] += o.one_line
        t["tracebacks"] += o.traceback
        t["torn"] += o.checkpoint == "torn"
        t["resumed_exact"] += o.exact
    command = "python tools/faults/faults.py " + " ".join(argv or sys.argv[1:])
    summary = {"kinds": table, "skipped (no mount)": skipped, "command": command}
    return report(summary, results, args.json)


if __name__ == "__main__":
    sys.exit(main())
