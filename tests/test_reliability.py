"""Faults around checkpoints and run folders (issue 23): durability (fsync around the
renames), disk full / file too large / read-only / a file in the way, SIGTERM, the run
lock, checkpoints by time, nothing unpickled or evaluated, the same bits twice.

The kill -9 trials are tests/test_reliability_crash.py (bounded) and tools/faults/crash.py
(the long run of RELIABILITY.md)."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import rnnkit
import rnnkit.train.checkpoint as ckmod
import rnnkit.train.lock as lockmod
from rnnkit.cli import main
from rnnkit.io import RnnkitError
from rnnkit.train.checkpoint import (
    CheckpointSchedule,
    load_checkpoint,
    parse_interval,
    save_checkpoint,
)
from rnnkit.train.lock import LOCK_FILE, lock_holder, lock_run, release_run_lock

TEXT = "the cat sat on the mat and the dog ran far away from the big red bus\n" * 40
LM = ["--threads", "1", "lm", "train", "--hidden", "6", "--embed", "4", "--layers", "1",
      "--bptt", "8", "--batch-size", "2", "--epochs", "1", "--no-progress"]  # fmt: skip


def _save(path: Path, seed: int = 0, **kw) -> Path:
    rng = np.random.default_rng(seed)
    return save_checkpoint(path, kind="lm", params={"w": rng.random((3, 4))},
                           config={"seed": seed}, trainer={"step": seed},
                           optimizer={"lr": 0.1, "m.w": np.zeros((3, 4))},
                           arrays={"h": np.ones(2)}, **kw)  # fmt: skip


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


# --- durability: fsync of every file and folder around the renames ----------------------------


def test_save_fsyncs_files_then_folder_then_renames_then_parent(tmp_path, monkeypatch):
    """Intercept os.fsync and os.rename: each file of the new checkpoint and its folder are
    on disk before the first rename, and the parent folder after each rename. Removing any
    fsync makes this fail."""
    path = tmp_path / "ck"
    _save(path, seed=1)
    events: list[tuple[str, str]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(src, dst):
        events.append(("rename", f"{Path(src).name} -> {Path(dst).name}"))
        real_rename(src, dst)

    monkeypatch.setattr(ckmod.os, "fsync", fsync)
    monkeypatch.setattr(ckmod.os, "rename", rename)
    _save(path, seed=2)
    monkeypatch.undo()
    renames = [i for i, e in enumerate(events) if e[0] == "rename"]
    assert len(renames) == 2, events
    before = events[: renames[0]]
    synced = {Path(p).name for op, p in before if op == "fsync"}
    assert set(ckmod.DATA_FILES) | {"checkpoint.json"} <= synced, before
    assert any(op == "fsync" and re.search(r"/ck\.tmp-\w+$", p) for op, p in before), before
    # the parent folder after the backup's rename and after the new one's
    assert events[renames[0] + 1] == ("fsync", str(tmp_path)), events
    assert events[renames[1] + 1] == ("fsync", str(tmp_path)), events
    assert load_checkpoint(path).config["seed"] == 2


def test_hard_kill_between_the_renames_loads_and_restores_a_complete_one(tmp_path):
    """The state a kill -9 between the two renames leaves: no DIR, the previous checkpoint in
    DIR.old-X and the new one complete in DIR.tmp-Y. Loading takes the new one; the next save
    puts things in order."""
    path = tmp_path / "ck"
    _save(path, seed=1)
    os.rename(path, tmp_path / "ck.old-0001")
    _save(tmp_path / "other", seed=2)
    os.rename(tmp_path / "other", tmp_path / "ck.tmp-0002")
    assert ckmod.checkpoint_exists(path)
    assert load_checkpoint(path).config["seed"] == 2
    # a half-written temporary folder is passed over for the complete backup
    (tmp_path / "ck.tmp-0002" / "model.safetensors").write_bytes(b"torn")
    assert load_checkpoint(path).config["seed"] == 1
    _save(path, seed=3)
    assert sorted(os.listdir(tmp_path)) == ["ck"]
    assert load_checkpoint(path).config["seed"] == 3


# --- disk full, file too large, read-only, a file in the way ----------------------------------


def test_disk_full_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck"
    _save(path, seed=1)
    real_write = ckmod._write

    def full(p, data):
        if p.name == "optimizer.safetensors":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(p, data)

    monkeypatch.setattr(ckmod, "_write", full)
    with pytest.raises(RnnkitError, match=r"ck: cannot save the checkpoint \(No space left on "
                       r"device\); the previous checkpoint is unchanged"):  # fmt: skip
        _save(path, seed=2)
    assert load_checkpoint(path).config["seed"] == 1
    assert os.listdir(tmp_path) == ["ck"]


def test_file_size_limit_on_a_real_write(tmp_path):
    """RLIMIT_FSIZE in a child process: the kernel refuses the write (EFBIG), the save is one
    line and the previous checkpoint loads."""
    script = f"""
import resource, numpy as np
from rnnkit.io import RnnkitError
from rnnkit.train.checkpoint import save_checkpoint, load_checkpoint
p = {str(tmp_path / "ck")!r}
save_checkpoint(p, kind="lm", params={{"w": np.zeros(10)}}, config={{"n": 1}})
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
try:
    save_checkpoint(p, kind="lm", params={{"w": np.zeros(100_000)}}, config={{"n": 2}})
except RnnkitError as e:
    print(e)
print(load_checkpoint(p).config["n"])
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0] == (f"{tmp_path / 'ck'}: cannot save the checkpoint (File too large); the "
                        "previous checkpoint is unchanged"), lines  # fmt: skip
    assert lines[1] == "1"
    assert sorted(os.listdir(tmp_path)) == ["ck"]


def test_lm_train_on_a_full_disk_is_one_line_and_resumes(tmp_path, monkeypatch, capsys):
    (tmp_path / "t.txt").write_text(TEXT)
    out = tmp_path / "run"
    argv = [*LM, str(tmp_path / "t.txt"), "--out", str(out), "--checkpoint-every", "2"]
    real_write = ckmod._write
    calls = []

    def full_after_a_while(p, data):
        calls.append(p)
        if len(calls) > 12:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(p, data)

    monkeypatch.setattr(ckmod, "_write", full_after_a_while)
    assert main(argv) == 1
    err = _one_line(capsys)
    assert err == (f"rnnkit: error: {out}/checkpoint: cannot save the checkpoint (No space "
                   "left on device); the previous checkpoint is unchanged")  # fmt: skip
    monkeypatch.undo()
    # 5 files a save: those of steps 2 and 4 are whole, the one of step 6 fails
    assert load_checkpoint(out / "checkpoint").trainer["step"] == 4
    assert main(["lm", "train", str(tmp_path / "t.txt"), "--out", str(out), "--resume",
                 "--no-progress", "--max-steps", "2"]) == 0  # fmt: skip
    assert load_checkpoint(out / "checkpoint").trainer["step"] == 6


def test_read_only_output_folder(tmp_path, monkeypatch, capsys):
    """A read-only file system (EROFS, simulated: root ignores permission bits) when taking
    the run lock, and when saving."""
    (tmp_path / "t.txt").write_text(TEXT)
    real_open = os.open

    def read_only(path, flags, *a):
        if str(path).endswith(LOCK_FILE):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_open(path, flags, *a)

    monkeypatch.setattr(lockmod.os, "open", read_only)
    out = tmp_path / "ro"
    assert main([*LM, str(tmp_path / "t.txt"), "--out", str(out)]) == 1
    assert _one_line(capsys) == (f"rnnkit: error: {out}: cannot write to the output folder "
                                 "(Read-only file system)")  # fmt: skip
    monkeypatch.undo()
    path = tmp_path / "ck"
    _save(path, seed=1)
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **kw):
        if ".tmp-" in self.name:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkdir(self, *a, **kw)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(RnnkitError, match=r"cannot save the checkpoint \(Read-only file "
                       r"system\); the previous checkpoint is unchanged"):  # fmt: skip
        _save(path, seed=2)
    monkeypatch.undo()
    assert load_checkpoint(path).config["seed"] == 1


def test_output_path_that_is_a_file(tmp_path, capsys):
    (tmp_path / "t.txt").write_text(TEXT)
    out = tmp_path / "afile"
    out.write_text("keep me")
    assert main([*LM, str(tmp_path / "t.txt"), "--out", str(out)]) == 1
    assert _one_line(capsys) == f"rnnkit: error: {out}: exists and is not a folder"
    assert out.read_text() == "keep me"


# --- two runs into one folder -----------------------------------------------------------------


def test_second_run_into_a_folder_is_refused_naming_the_first(tmp_path, capsys):
    (tmp_path / "t.txt").write_text(TEXT)
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from rnnkit.train.lock import lock_run; lock_run({str(out)!r});"
         "print('locked', flush=True); import time; time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main([*LM, str(tmp_path / "t.txt"), "--out", str(out)]) == 1
        assert _one_line(capsys) == (
            f"rnnkit: error: {out}: another rnnkit run (PID {holder.pid}) is writing to this "
            "folder; wait for it to end or choose another --out"
        )
    finally:
        holder.send_signal(signal.SIGKILL)  # the holder dies without releasing anything
        holder.wait()
    assert lock_holder(out) == holder.pid  # the stale lock file is still there
    assert main([*LM, str(tmp_path / "t.txt"), "--out", str(out), "--max-steps", "2"]) == 0
    assert lock_holder(out) is None and not (out / LOCK_FILE).exists()  # given up at the end


def test_a_run_that_fails_on_its_input_leaves_no_folder_and_no_lock(tmp_path, capsys):
    (tmp_path / "short.txt").write_text("too short\n")
    out = tmp_path / "run"
    assert main([*LM, str(tmp_path / "short.txt"), "--out", str(out)]) == 1
    assert _one_line(capsys).startswith("rnnkit: error: ")
    assert not out.exists()
    holder = subprocess.run(
        [sys.executable, "-c", f"from rnnkit.train.lock import lock_run; lock_run({str(out)!r})"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert holder.returncode == 0, holder.stderr  # nothing held by this process either


def test_the_folder_stays_locked_until_the_command_ends(tmp_path):
    """Found by tools/faults/faults.py: the loop gave the lock up before the command scored
    its best epoch, so a second run started then met no lock (it stopped only because a
    checkpoint was there)."""
    from rnnkit.train.lock import locks_taken_released, run_lock_released

    out = tmp_path / "run"
    with locks_taken_released():
        lock_run(out)
        with run_lock_released(out):  # the loop's end
            pass
        assert lock_holder(out) == os.getpid()  # still held while the command goes on
    assert lock_holder(out) is None
    lock_run(out)
    with run_lock_released(out):  # no command around it (the Python API): the loop's end
        pass
    assert lock_holder(out) is None


def test_lock_is_reentrant_in_one_process_and_released(tmp_path):
    out = tmp_path / "run"
    lock_run(out)
    lock_run(out)  # the same process again: fine
    release_run_lock(out)
    code = f"from rnnkit.train.lock import lock_run; lock_run({str(out)!r}); print('ok')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert res.stdout.strip() == "ok", res.stderr


# --- SIGTERM behaves like Ctrl-C --------------------------------------------------------------


def test_sigterm_saves_and_exits_143_with_a_message(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT * 20)
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "rnnkit", *LM, str(tmp_path / "t.txt"), "--out", str(out),
            "--epochs", "50", "--log-every", "1"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    metrics = out / "metrics.jsonl"
    while time.monotonic() < deadline and not (metrics.exists() and metrics.stat().st_size):
        time.sleep(0.05)  # training has taken a step
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == ("rnnkit: stopped by SIGTERM; the checkpoint is "
                                               "saved, continue with --resume")  # fmt: skip
    assert "stopped at step" in stdout
    step = load_checkpoint(out / "checkpoint").trainer["step"]
    assert step >= 1 and f"stopped at step {step}:" in stdout


def test_sigterm_outside_the_loop_is_a_line_and_143(capsys):
    """Found by tools/faults/faults.py: a SIGTERM after the loop (scoring the best epoch)
    met Python's default action and the process ended silently (status -15)."""
    import click

    from rnnkit.cli.options import run_train
    from rnnkit.recipes.lm import LMData

    def run(settings, out, **kw):
        os.kill(os.getpid(), signal.SIGTERM)  # as if it came while scoring
        time.sleep(5)
        return {"interrupted": False}

    with pytest.raises(click.exceptions.Exit) as e:
        run_train(run, {}, LMData, "out", False, None, False)
    assert e.value.exit_code == 143
    assert capsys.readouterr().err == "rnnkit: stopped by SIGTERM\n"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored


# --- checkpoints by time ----------------------------------------------------------------------


def test_checkpoint_every_parses_steps_and_times():
    assert parse_interval(5) == (5, 0.0) and parse_interval("5") == (5, 0.0)
    assert parse_interval("30s") == (0, 30.0) and parse_interval("10m") == (0, 600.0)
    assert parse_interval("2h") == (0, 7200.0) and parse_interval(0) == (0, 0.0)
    for bad in ("10 minutes", "-1", "m", "1e400m", True, "nanm"):
        with pytest.raises(RnnkitError, match="--checkpoint-every: expected a number of steps"):
            parse_interval(bad)


def test_schedule_by_time(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(ckmod.time, "monotonic", lambda: now[0])
    s = CheckpointSchedule("10m")
    assert not s.due(1)
    now[0] += 599
    assert not s.due(2)
    now[0] += 2
    assert s.due(3)
    s.saved()
    assert not s.due(4)
    assert s.due(5, share=lambda mine: True)  # under MPI rank 0's answer is everyone's
    assert not CheckpointSchedule(0).due(10**6)


def test_lm_train_saves_by_time_within_the_first_epoch(tmp_path, monkeypatch, capsys):
    """A run killed in its first epoch has something to resume: with --checkpoint-every 1s
    and a clock that moves 0.6 s per call, saves come every other step or so."""
    (tmp_path / "t.txt").write_text(TEXT)
    now = [0.0]

    def clock():
        now[0] += 0.6
        return now[0]

    monkeypatch.setattr(ckmod.time, "monotonic", clock)
    saved = []
    real = ckmod.save_checkpoint

    def spy(path, **kw):
        saved.append((Path(path).name, kw["trainer"].get("step")))
        return real(path, **kw)

    monkeypatch.setattr("rnnkit.recipes.lm.save_checkpoint", spy)
    out = tmp_path / "run"
    assert main([*LM, str(tmp_path / "t.txt"), "--out", str(out), "--checkpoint-every", "1s",
                 "--max-steps", "6"]) == 0  # fmt: skip
    mid = [step for name, step in saved if name == "checkpoint"]
    assert len([s for s in mid if s < 6]) >= 2, saved  # before the stop's own save
    assert main([*LM, str(tmp_path / "t.txt"), "--out", str(tmp_path / "bad"),
                 "--checkpoint-every", "soon"]) == 2  # fmt: skip
    assert "'soon'" in capsys.readouterr().err


# --- nothing executed, nothing escapes --------------------------------------------------------

PACKAGE = Path(rnnkit.__file__).parent
FORBIDDEN = re.compile(r"\bimport pickle\b|\bpickle\.(loads?|dumps?|Unpickler)\b|\bcPickle\b|"
                       r"\bdill\b|\bmarshal\.loads|\bshelve\b|(?<![.\w])eval\(|(?<![.\w])exec\(|allow_pickle\s*=\s*True|"
                       r"torch\.load\(|yaml\.load\(|yaml\.unsafe_load")  # fmt: skip


def test_no_pickle_eval_or_exec_in_the_package():
    hits = []
    for f in sorted(PACKAGE.rglob("*.py")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{f.relative_to(PACKAGE)}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)
    # the pattern does catch what it is for
    for bad in (
        "import pickle",
        "pickle.loads(b)",
        "x = eval(s)",
        "exec(code)",
        "np.load(f, allow_pickle=True)",
    ):
        assert FORBIDDEN.search(bad), bad
    for fine in ("model.eval()", "evaluate(x)", "np.load(f, allow_pickle=False)", "no pickle."):
        assert not FORBIDDEN.search(fine), fine


# --- the same bits twice ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["skipgram", "cbow", "glove"])
def test_embed_train_twice_gives_the_same_bits(tmp_path, method, capsys):
    """The other train commands: tests/test_runconfig.py's test_config_toml_trains_the_run_
    again runs each twice with one seed and compares every logged loss."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(50)]
    (tmp_path / "c.txt").write_text(
        "\n".join(" ".join(rng.choice(words, 12)) for _ in range(300)) + "\n"
    )
    digests = []
    for name in ("a.txt", "b.txt"):
        assert main(["embed", "train", str(tmp_path / "c.txt"), "--method", method, "--out",
                     str(tmp_path / name), "--dim", "8", "--epochs", "2", "--min-count", "1",
                     "--threads", "1", "--quiet"]) == 0  # fmt: skip
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    assert not (tmp_path / "a.txt.train").exists()  # the run folder goes once vectors are out
