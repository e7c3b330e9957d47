"""Data-parallel training on MPI (rnnkit.train.distributed, issue 24): `mpiexec -n 2` against
one process, 20 steps each: losses, validation figures and weights equal to 1e-10 (relative)
in float64 and to 1e-5 in float32, for the language model (with dropout: the one-process
run's masks) and the four task loops (uneven shares, an empty share, validation on rank 0);
a rank killed mid-run leaves its last checkpoint whole, and the run resumes on 1 and then 2
processes into the uninterrupted run; a rank that raises ends the run with one line from
rank 0; errors every process meets are printed once; a launched run without mpi4py is one
line; a plain run never imports mpi4py.

mpi4py and mpich are in the `test` extra: without them these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_data import write_tiny_data

from rnnkit.cli import main
from rnnkit.train.checkpoint import load_checkpoint

MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
TIMEOUT = 120  # seconds for one launch; a hang fails the test instead of the suite
# every run of the launch below, by rank 0: its exit status, into the file argv[2]
DRIVER = """
import json, sys
from rnnkit.cli import main
from rnnkit.train.distributed import get_world
statuses = [main(argv) for argv in json.loads(sys.argv[1])]
if get_world().root:
    with open(sys.argv[2], "w") as f:
        json.dump(statuses, f)
"""
COMMON = ["--max-steps", "20", "--log-every", "1", "--no-progress", "--seed", "1"]
ENGINE = ["--threads", "1", "--backend", "numpy"]


def run_specs(d: Path) -> dict[str, list[str]]:
    """The runs compared (argv after ``rnnkit``, without --out), by name."""
    lm = ["lm", "train", str(d / "text.txt"), "--hidden", "12", "--embed", "8", "--layers", "2",
          "--bptt", "10", "--batch-size", "5", "--dropout", "0.3", "--epochs", "3",
          *COMMON]  # fmt: skip
    task = ["--batch-size", "5", "--hidden", "8", "--embed", "6", "--dropout", "0", "--epochs",
            "8", "--optimizer", "adam", *COMMON]  # fmt: skip
    return {
        # 5 streams on 2 processes (3 + 2), an epoch of 13 windows, validation after it
        "lm64": [*ENGINE, *lm, "--dtype", "float64"],
        "lm32": ["--threads", "1", "--backend", "compiled", *lm, "--dtype", "float32"],
        # 76 sentences: 15 batches of 5 (3 + 2) and one of 1 (rank 1 takes none)
        "classify": [*ENGINE, "classify", "train", str(d / "train.tsv"), "--dtype", "float64",
                     *task],  # fmt: skip
        "tag": [*ENGINE, "tag", "train", str(d / "eng.train"), "--valid", str(d / "eng.testa"),
                "--char-embed", "4", "--char-hidden", "4", "--dtype", "float64", *task],
        "mt": [*ENGINE, "mt", "train", "--src", str(d / "train.de"), "--tgt",
               str(d / "train.en"), "--valid-src", str(d / "train.vde"), "--valid-tgt",
               str(d / "train.ven"), "--min-count", "1", "--dtype", "float64", *task],
        "qa": [*ENGINE, "qa", "train", str(d / "babi" / "qa1_where_train.txt"), "--dtype",
               "float64", *task],  # fmt: skip
    }  # fmt: skip


def mpiexec(n: int, argv: list[str], env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:  # fmt: skip
    """``mpiexec -n N python ARGV`` with a time limit."""
    assert MPIEXEC, "mpiexec not found: pip install -e '.[test]' (mpi4py and mpich)"
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable, *argv], capture_output=True,
                          text=True, timeout=TIMEOUT,
                          env={**os.environ, **(env or {})})  # fmt: skip


def rnnkit_mpi(n: int, argv: list[str], env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess:  # fmt: skip
    return mpiexec(n, ["-m", "rnnkit", *argv], env)


def records(out: Path, kind: str) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def rel(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |a|."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-300))


def assert_same_run(one: Path, two: Path, tol: float, steps: int = 20) -> None:
    """Losses of every step, the epochs' validation figures and the final weights of two
    runs agree to ``tol`` (relative)."""
    l1 = [r["loss"] for r in records(one, "train")]
    l2 = [r["loss"] for r in records(two, "train")]
    assert len(l1) == len(l2) == steps
    assert rel(l1, l2) < tol, f"losses differ by {rel(l1, l2):.3g} (relative)"
    e1, e2 = records(one, "epoch"), records(two, "epoch")
    assert len(e1) == len(e2)
    for a, b in zip(e1, e2, strict=True):
        for k in a:
            if k.startswith("valid_"):
                assert rel(a[k], b[k]) < tol, (k, a[k], b[k])
    c1, c2 = load_checkpoint(one / "checkpoint"), load_checkpoint(two / "checkpoint")
    assert c1.trainer["step"] == c2.trainer["step"] == steps
    worst = max(rel(c1.params[k], c2.params[k]) for k in c1.params)
    assert worst < tol, f"weights differ by {worst:.3g} (relative)"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every run of :func:`run_specs` on one process (here) and on two (one launch), and
    two runs that must fail the same way on both processes."""
    d = write_tiny_data(tmp_path_factory.mktemp("data"))
    specs = run_specs(d)
    one, two = d / "one", d / "two"
    for name, argv in specs.items():
        assert main([*argv, "--out", str(one / name)]) == 0, name
    launch = [[*argv, "--out", str(two / name)] for name, argv in specs.items()]
    # the classifier with dropout: two processes draw from two streams (for the resume check)
    launch.append([*ENGINE, "classify", "train", str(d / "train.tsv"), "--batch-size", "5",
                   "--hidden", "8", "--embed", "6", "--dropout", "0.5", "--max-steps", "3",
                   "--no-progress", "--out", str(two / "dropout")])  # fmt: skip
    # an error both processes meet: printed once, both exit with status 1
    launch.append([*ENGINE, "lm", "train", str(d / "text.txt"), "--batch-size", "1",
                   "--no-progress", "--out", str(two / "bad")])  # fmt: skip
    status = d / "status.json"
    res = mpiexec(2, ["-c", DRIVER, json.dumps(launch), str(status)])
    assert res.returncode == 0, res.stderr[-3000:]
    return {"data": d, "one": one, "two": two, "status": json.loads(status.read_text()),
            "stdout": res.stdout, "stderr": res.stderr,
            "names": [*specs, "dropout", "bad"]}  # fmt: skip


@pytest.mark.parametrize("name", ["lm64", "classify", "tag", "mt", "qa"])
def test_two_processes_equal_one_float64(runs, name):
    assert runs["status"][runs["names"].index(name)] == 0, runs["stderr"][-3000:]
    assert_same_run(runs["one"] / name, runs["two"] / name, 1e-10)


def test_language_model_float32_and_shared_dropout_stream(runs):
    assert runs["status"][runs["names"].index("lm32")] == 0, runs["stderr"][-3000:]
    assert_same_run(runs["one"] / "lm32", runs["two"] / "lm32", 1e-5)
    # the masks were the one-process run's: one stream, in the same state, and the carried
    # hidden state of all 5 streams was gathered into the checkpoint
    c1 = load_checkpoint(runs["one"] / "lm64" / "checkpoint")
    c2 = load_checkpoint(runs["two"] / "lm64" / "checkpoint")
    assert c1.trainer["rng"] == c2.trainer["rng"]
    assert c2.trainer["world_size"] == 2
    for k in ("h", "c"):
        assert c2.arrays[k].shape == (2, 5, 12)
        assert rel(c1.arrays[k], c2.arrays[k]) < 1e-10


def test_rank_zero_alone_writes_and_prints(runs):
    two = runs["two"] / "lm64"
    assert (two / "loss.png").exists() and (two / "config.toml").exists()
    assert len(list(two.glob("events.out.tfevents.*"))) == 1
    assert [r["step"] for r in records(two, "train")] == list(range(1, 21))  # once each
    assert "allreduce_share" in records(two, "train")[-1]  # the time in the Allreduce
    assert "allreduce_share" not in records(runs["one"] / "lm64", "train")[-1]
    # one banner per language-model run (lm64, lm32), not one per process
    banners = [x for x in runs["stdout"].splitlines() if x.startswith("rnnkit lm:")]
    assert len(banners) == 2 and all(x.endswith("on 2 processes") for x in banners)


def test_error_every_process_meets_is_one_line(runs):
    assert runs["status"][runs["names"].index("bad")] == 1
    lines = [x for x in runs["stderr"].splitlines() if "--batch-size 1" in x]
    assert lines == ["rnnkit: error: --batch-size 1 is the global batch of parallel streams, "
                     "split over 2 processes: give at least 2"], runs["stderr"][-2000:]  # fmt: skip


def test_task_loop_resume_on_other_count_names_both(runs, capsys):
    run = runs["two"] / "dropout"
    assert runs["status"][runs["names"].index("dropout")] == 0
    ck = load_checkpoint(run / "checkpoint")
    assert ck.trainer["world_size"] == 2 and len(ck.trainer["rank_rngs"]) == 2
    assert ck.trainer["rank_rngs"][0] != ck.trainer["rank_rngs"][1]
    rc = main(["classify", "train", "--resume", "--out", str(run), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "trained on 2 process(es)" in err and "exactly on 1" in err
    assert "mpiexec -n 2" in err and err.count("\n") == 1


def test_kill_keeps_checkpoint_and_resume_on_one_then_two(runs, capsys):
    """Rank 1 is killed in step 12: the run ends (no hang), the step-10 checkpoint is whole;
    one process continues it for 3 steps, two processes to step 20: the losses and weights
    are the uninterrupted one-process run's."""
    argv = run_specs(runs["data"])["lm64"]
    out = runs["two"] / "killed"
    res = rnnkit_mpi(2, [*argv, "--checkpoint-every", "5", "--out", str(out)],
                     env={"RNNKIT_FAULT": "1:12:kill"})  # fmt: skip
    assert res.returncode != 0
    assert load_checkpoint(out / "checkpoint").trainer["step"] == 10  # sizes and sha256 checked
    assert main(["--backend", "numpy", "lm", "train", "--resume", "--out", str(out),
                 "--max-steps", "3", "--no-progress"]) == 0  # fmt: skip
    assert load_checkpoint(out / "checkpoint").trainer["step"] == 13
    res = rnnkit_mpi(2, ["--backend", "numpy", "lm", "train", "--resume", "--out", str(out),
                         "--max-steps", "7", "--no-progress"])  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same_run(runs["one"] / "lm64", out, 1e-10)


def test_rank_that_raises_ends_the_run_with_one_line_from_rank_zero(runs):
    argv = run_specs(runs["data"])["classify"]
    out = runs["two"] / "raised"
    res = rnnkit_mpi(2, [*argv, "--checkpoint-every", "2", "--out", str(out)],
                     env={"RNNKIT_FAULT": "1:5:raise"})  # fmt: skip
    assert res.returncode == 1, res.stderr[-3000:]
    errors = [x for x in res.stderr.splitlines() if x.startswith("rnnkit")]
    assert errors == ["rnnkit: error: rank 1 of 2 failed in step 5: RuntimeError: fault "
                      "injected by RNNKIT_FAULT in step 5"], res.stderr[-3000:]  # fmt: skip
    assert "Traceback" in res.stderr  # rank 1's, for the bug it is
    assert load_checkpoint(out / "checkpoint").trainer["step"] == 4


def test_launched_without_mpi4py_is_one_line(tmp_path):
    (tmp_path / "t.txt").write_text("abc def\n" * 200)
    code = ("import sys; sys.modules['mpi4py'] = None; from rnnkit.cli import main; "
            f"sys.exit(main(['lm', 'train', {str(tmp_path / 't.txt')!r}, '--out', "
            f"{str(tmp_path / 'r')!r}, '--no-progress']))")  # fmt: skip
    env = {**os.environ, "PMI_SIZE": "2", "PMI_RANK": "0"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=TIMEOUT)  # fmt: skip
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        "rnnkit: error: started by an MPI launcher (PMI_SIZE=2) but mpi4py is not installed: "
        "pip install 'rnnkit[mpi]' (mpi4py and MPICH), or mpi4py built for your MPI"
    ]
    assert not (tmp_path / "r").exists()


def test_plain_run_never_imports_mpi4py(tmp_path):
    (tmp_path / "t.txt").write_text("abc def\n" * 200)
    code = ("import sys; from rnnkit.cli import main; "
            f"rc = main(['lm', 'train', {str(tmp_path / 't.txt')!r}, '--out', "
            f"{str(tmp_path / 'r')!r}, '--no-progress', '--max-steps', '2', '--hidden', '8', "
            "'--embed', '4', '--batch-size', '4']); "
            "print(rc, 'mpi4py' in sys.modules)")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "OMPI", "MV2", "PMIX"))}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=TIMEOUT)  # fmt: skip
    assert res.stdout.splitlines()[-1] == "0 False", res.stdout + res.stderr
