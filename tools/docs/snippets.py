"""The code blocks of the documentation: found in the Markdown, run in order, cached by input.

Every fenced ``python`` and ``bash`` block of a page under ``docs/`` runs, in the order of
the page, in a fresh working folder of its own, in one child process per page: the python
blocks share one namespace (a page reads like a notebook), the bash blocks run with
``bash -eo pipefail`` as if typed into one terminal (what a block exports and the folder it
changes to carry on to the next blocks), with the ``rnnkit`` of this environment on PATH.
A block that must not run says so on the line just above its fence, with its reason::

    <!-- docs: norun needs the Penn Treebank files -->

and a block whose standard output the page shows below it says ``<!-- docs: output -->``.
A page names the files its blocks write that it shows as figures::

    <!-- docs: figure gradflow.png "Gradient norm against distance" -->

The site build (``tools/docs/hooks.py``) and the tests (``tests/test_docs.py``) both run
pages through :func:`run_page`; results are stored under a key made of everything that can
change them (the page's blocks and markers, every file of ``src/rnnkit``, this runner, the
Python version), so a build after the tests, or a second build, reuses them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "rnnkit"
CACHE = ROOT / "build" / "docs-cache"
RUN_LANGS = {"python", "bash"}
TIMEOUT_S = 600  # one page, all its blocks

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\n]*)$")
MARKER = re.compile(r"<!--\s*docs:\s*(?P<kind>\w+)\s*(?P<rest>.*?)\s*-->")
FIGURE = re.compile(r'^(?P<file>[\w./-]+\.(?:png|svg))(?:\s+"(?P<caption>[^"]*)")?$')


class DocsError(Exception):
    """A page's blocks or markers are wrong, or a block failed: the message says where."""


@dataclass
class Block:
    """One fenced code block of a page."""

    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    end: int = 0  # 1-based line of the closing fence
    run: bool = True
    norun_reason: str = ""
    output: bool = False  # show its standard output on the page


@dataclass
class Figure:
    file: str  # path in the page's working folder
    caption: str
    line: int


@dataclass
class Page:
    path: Path
    blocks: list[Block] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)

    @property
    def name(self) -> str:
        return (
            self.path.relative_to(DOCS).as_posix()
            if self.path.is_relative_to(DOCS)
            else str(self.path)
        )

    @property
    def runnable(self) -> list[Block]:
        return [b for b in self.blocks if b.run]


def parse_page(path: Path, text: str | None = None) -> Page:
    """The page's fenced blocks (with their markers) and its figure markers."""
    text = path.read_text(encoding="utf-8") if text is None else text
    lines = text.splitlines()
    page = Page(Path(path))
    pending: list[tuple[str, str, int]] = []  # markers waiting for the next fence
    i = 0
    while i < len(lines):
        line = lines[i]
        m = FENCE.match(line)
        if m is None:
            # a marker is a line of its own (one in running text is an example of it)
            mk = MARKER.fullmatch(line.strip())
            if mk is not None:
                kind, rest = mk["kind"], mk["rest"]
                if kind == "figure":
                    f = FIGURE.match(rest)
                    if f is None:
                        raise DocsError(f'{page.name}:{i + 1}: figure: expected FILE "caption"')
                    page.figures.append(Figure(f["file"], f["caption"] or "", i + 1))
                elif kind in ("norun", "output"):
                    pending.append((kind, rest, i + 1))
                else:
                    raise DocsError(f"{page.name}:{i + 1}: unknown docs marker {kind!r}")
            if line.strip() and not MARKER.fullmatch(line.strip()):
                _no_pending(page, pending)
            i += 1
            continue
        indent, fence = m["indent"], m["fence"]
        lang = (m["info"].split() or [""])[0].lstrip(".{").rstrip("}").lower()
        body, j = [], i + 1
        while j < len(lines):
            close = lines[j]
            if close.strip().startswith(fence) and not close.strip().strip(fence[0]):
                break
            body.append(close[len(indent) :] if close.startswith(indent) else close.lstrip())
            j += 1
        else:
            raise DocsError(f"{page.name}:{i + 1}: code block never closed")
        block = Block(lang, "\n".join(body) + "\n", i + 1, j + 1)
        for kind, rest, at in pending:
            if lang not in RUN_LANGS:
                raise DocsError(f"{page.name}:{at}: docs: {kind} stands above a {lang!r} block")
            if kind == "norun":
                if not rest:
                    raise DocsError(f"{page.name}:{at}: docs: norun needs a reason")
                block.run, block.norun_reason = False, rest
            else:
                block.output = True
        pending = []
        if lang not in RUN_LANGS:
            block.run = False
        page.blocks.append(block)
        i = j + 1
    _no_pending(page, pending)
    return page


def _no_pending(page: Page, pending: list[tuple[str, str, int]]) -> None:
    if pending:
        kind, _, at = pending[0]
        raise DocsError(f"{page.name}:{at}: docs: {kind} is not directly above a code block")


def pages(docs: Path = DOCS) -> list[Page]:
    """Every Markdown page under ``docs`` with something to run or show, sorted by path."""
    found = [parse_page(p) for p in sorted(docs.rglob("*.md"))]
    return [p for p in found if p.runnable or p.figures]


# --- the key of a run --------------------------------------------------------------------


def source_digest() -> str:
    """One hash over every file of the package, this runner and the interpreter's version."""
    h = hashlib.sha256(sys.version.encode())
    h.update(Path(__file__).read_bytes())
    for p in sorted(SRC.rglob("*")):
        if (
            p.is_file()
            and "__pycache__" not in p.parts
            and p.suffix not in (".pyc", ".nbi", ".nbc")
        ):
            h.update(p.relative_to(SRC).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def page_key(page: Page, digest: str) -> str:
    spec = json.dumps(
        {
            "blocks": [(b.lang, b.code) for b in page.runnable],
            "figures": [f.file for f in page.figures],
            "source": digest,
        }
    )
    return hashlib.sha256(spec.encode()).hexdigest()[:24]


# --- running ----------------------------------------------------------------------------------

# Runs in the child process: reads the blocks as JSON, runs them in order, writes each block's
# standard output to out-<i>.txt; a failing block prints its place and exits 3.
DRIVER = r"""
import contextlib, io, json, os, subprocess, sys, time, traceback
blocks = json.load(open(sys.argv[1]))
ns = {"__name__": "__main__"}
for i, b in enumerate(blocks):
    where = f"{b['page']}:{b['line']}"
    t0 = time.perf_counter()
    if b["lang"] == "python":
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                exec(compile(b["code"], where, "exec"), ns)
        except BaseException:
            sys.stderr.write(buf.getvalue())
            traceback.print_exc()
            sys.stderr.write(f"\ndocs: the python block at {where} failed\n")
            sys.exit(3)
        out = buf.getvalue()
    else:
        # one shell session per page: what a block exports, and where it cd's, carry on
        env_file = f"{sys.argv[2]}/env"
        code = b["code"] + f'\n{{ pwd; env -0; }} > "{env_file}"\n'
        r = subprocess.run(["bash", "-eo", "pipefail", "-c", code], stdout=subprocess.PIPE,
                           text=True)
        out = r.stdout
        if r.returncode:
            sys.stderr.write(out)
            sys.stderr.write(f"\ndocs: the bash block at {where} exited {r.returncode}\n")
            sys.exit(3)
        cwd, _, env = open(env_file, encoding="utf-8").read().partition("\n")
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(kv.split("=", 1) for kv in env.split("\0") if "=" in kv)
    open(f"{sys.argv[2]}/out-{i}.txt", "w", encoding="utf-8").write(out)
    open(f"{sys.argv[2]}/time-{i}.txt", "w").write(f"{time.perf_counter() - t0:.3f}")
"""


@dataclass
class Result:
    """What a page's blocks produced: the standard output of each runnable block (in order)
    and the folder holding its figures."""

    outputs: list[str]
    figures: dict[str, str]  # figure file -> path of the copy
    seconds: float  # the whole page, process start included
    block_seconds: list[float] = field(default_factory=list)


def run_page(page: Page, workdir: Path, timeout: float = TIMEOUT_S) -> Result:
    """Run the page's blocks in ``workdir`` (the figures stay there); raise
    :class:`DocsError` naming the block that failed (with the end of its error output), or a
    figure that was not written."""
    import time

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    meta = Path(tempfile.mkdtemp(prefix="rnnkit-docs-meta-"))
    try:
        blocks = [{"page": page.name, **asdict(b)} for b in page.runnable]
        (meta / "blocks.json").write_text(json.dumps(blocks), encoding="utf-8")
        (meta / "driver.py").write_text(DRIVER, encoding="utf-8")
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env["MPLBACKEND"] = "Agg"
        env.pop("RNNKIT_BACKEND", None)
        t0 = time.perf_counter()
        try:
            r = subprocess.run(
                [sys.executable, str(meta / "driver.py"), str(meta / "blocks.json"), str(meta)],
                cwd=work, env=env, capture_output=True, text=True, timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:
            raise DocsError(f"{page.name}: its blocks ran over {timeout:.0f} s") from e
        seconds = time.perf_counter() - t0
        if r.returncode:
            tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-30:])
            raise DocsError(f"{page.name}: a block failed (exit {r.returncode}):\n{tail}")
        outputs = [(meta / f"out-{i}.txt").read_text(encoding="utf-8") for i in range(len(blocks))]
        times = [float((meta / f"time-{i}.txt").read_text()) for i in range(len(blocks))]
        figures = {}
        for f in page.figures:
            p = work / f.file
            if not p.is_file():
                raise DocsError(
                    f"{page.name}:{f.line}: figure {f.file}: the page's blocks did not write it"
                )
            figures[f.file] = str(p)
        return Result(outputs, figures, seconds, times)
    finally:
        shutil.rmtree(meta, ignore_errors=True)


def store(page: Page, key: str, result: Result, cache: Path = CACHE) -> Result:
    """Keep a result under ``cache/key`` (written whole, then renamed into place)."""
    final = cache / key
    if final.is_dir():
        return load(final)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache))
    figures = {}
    for i, (name, src) in enumerate(sorted(result.figures.items())):
        dest = f"fig{i}{Path(name).suffix}"
        shutil.copyfile(src, tmp / dest)
        figures[name] = dest
    record = {"page": page.name, "outputs": result.outputs, "figures": figures,
              "seconds": result.seconds, "block_seconds": result.block_seconds}  # fmt: skip
    (tmp / "result.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    try:
        tmp.rename(final)
    except OSError:  # another process stored the same key first
        shutil.rmtree(tmp, ignore_errors=True)
    return load(final)


def load(folder: Path) -> Result:
    record = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    figures = {name: str(folder / f) for name, f in record["figures"].items()}
    return Result(record["outputs"], figures, record["seconds"], record["block_seconds"])


def cached_run(page: Page, digest: str, cache: Path = CACHE) -> tuple[Result, bool]:
    """The page's result from the cache, else run it and store it; (result, was cached)."""
    folder = cache / page_key(page, digest)
    if (folder / "result.json").is_file():
        return load(folder), True
    work = Path(tempfile.mkdtemp(prefix="rnnkit-docs-"))
    try:
        return store(page, folder.name, run_page(page, work), cache), False
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":  # python tools/docs/snippets.py [PAGE.md ...]: run pages, report
    digest = source_digest()
    chosen = [parse_page(Path(a).resolve()) for a in sys.argv[1:]] or pages()
    for pg in chosen:
        res, hit = cached_run(pg, digest)
        each = ", ".join(f"{t:.1f}" for t in res.block_seconds)
        print(f"{pg.name}: {res.seconds:.1f} s (blocks: {each})" + (" (cached)" * hit))
