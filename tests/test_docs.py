"""The documentation runs: every python and bash block of every page under docs/ (each page in
a fresh folder, its blocks in order, tools/docs/snippets.py), every code excerpt named on a
page still resolves to lines of today's code, every command has a page showing its help; and
the machinery that does this fails where it should.

A page's results are stored in build/docs-cache, where ``mkdocs build`` finds them (same
blocks, same package, same interpreter), so a build after the tests runs nothing again.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools" / "docs"))

import hooks  # noqa: E402
import snippets  # noqa: E402

PAGES = snippets.pages()
DIGEST = snippets.source_digest()
DIRECTIVES = [
    (page, m)
    for page in sorted((ROOT / "docs").rglob("*.md"))
    for m in hooks.DIRECTIVE.finditer(page.read_text(encoding="utf-8"))
]


@pytest.mark.parametrize("page", [p for p in PAGES if p.runnable], ids=lambda p: p.name)
def test_page_runs(page: snippets.Page, tmp_path: Path) -> None:
    result = snippets.run_page(page, tmp_path)
    assert len(result.outputs) == len(page.runnable)
    for fig in page.figures:  # run_page raised if one was not written; it must be an image
        head = Path(result.figures[fig.file]).read_bytes()[:8]
        assert head == b"\x89PNG\r\n\x1a\n" or fig.file.endswith(".svg"), fig.file
    snippets.store(page, snippets.page_key(page, DIGEST), result)


def test_blocks_that_do_not_run_are_few_and_say_why() -> None:
    skipped = [(p.name, b.line, b.norun_reason) for p in snippets.pages() for b in p.blocks
               if b.lang in snippets.RUN_LANGS and not b.run]  # fmt: skip
    assert all(reason for _, _, reason in skipped)
    assert len(skipped) <= 15, skipped


@pytest.mark.parametrize("page, m", DIRECTIVES, ids=lambda x: getattr(x, "name", None) or "")
def test_directive_resolves(page: Path, m: re.Match[str]) -> None:
    src = page.relative_to(ROOT / "docs").as_posix()
    if m["name"] == "source":
        out = hooks.source_block(m["args"], src, "")
        assert re.search(r'linenums="\d+"', out)
    elif m["name"] == "link":
        assert "#L" in hooks.source_link(m["args"], src)
    elif m["name"] == "readme":
        assert hooks.readme_block(m["args"]).startswith("```bash\n")
    else:
        assert hooks.command_help(m["args"]).startswith("```text\n$ rnnkit")


def test_every_command_has_its_help_on_a_page() -> None:
    shown = {
        " ".join(m["args"].split()) for _, m in DIRECTIVES if m["name"] == "help"
    }  # fmt: skip
    commands = hooks.all_commands()
    assert len(commands) > 20 and "lm train" in commands
    assert [c for c in commands if c not in shown] == []


# --- the machinery fails where it should --------------------------------------------------


def test_resolve_finds_functions_methods_and_lines() -> None:
    span = hooks.resolve("rnnkit.engine.layers.direction_backward")
    assert span.lines()[0].startswith("def direction_backward(")
    assert span.lines()[-1].strip() == "return dstate"
    method = hooks.resolve("rnnkit.engine.layers.LSTM.step_backward")
    assert "def step_backward" in method.lines()[0]
    part = hooks.narrow(span, "# (4)-(7)", "dx2 = dax2")
    assert "(4)-(7)" in part.lines()[0] and "dx2 = dax2" in part.lines()[-1]
    assert part.first > span.first and part.last < span.last
    text = (ROOT / "src/rnnkit/engine/layers.py").read_text().splitlines()
    assert text[part.first - 1] == part.lines()[0]  # numbered as in the file


@pytest.mark.parametrize(
    "symbol, start, end, message",
    [
        ("nothing.here", None, None, "no such module"),
        ("rnnkit.engine.nothing.here", None, None, "'nothing' not found"),
        ("rnnkit.engine.layers.no_such_function", None, None, "not found"),
        ("rnnkit.engine.layers.direction_forward", "text that is not there", None, "start="),
        ("rnnkit.engine.layers.direction_forward", "for t in", "not there either", "end="),
    ],
)
def test_resolve_fails_on_what_is_gone(symbol: str, start: str, end: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hooks.narrow(hooks.resolve(symbol), start, end)


def test_directive_in_backticks_is_an_example() -> None:
    assert hooks.DIRECTIVE.search("see {% help lm train %} here")["args"] == "lm train"
    assert hooks.DIRECTIVE.search("write `{% help lm train %}` for that") is None


def test_readme_block_is_what_ci_runs() -> None:
    block = hooks.readme_block("test-command").splitlines()
    readme = (ROOT / "README.md").read_text()
    line = readme.split("<!-- test-command -->\n```bash\n")[1].split("\n")[0]
    assert block[0] == "```bash" and block[-1] == "```"
    assert " ".join(s.strip().removesuffix("\\").strip() for s in block[1:-1]) == line
    with pytest.raises(ValueError, match="no code block"):
        hooks.readme_block("no-such-marker")


def test_unknown_command_help_fails() -> None:
    with pytest.raises(ValueError, match="no-such-command"):
        hooks.command_help("no-such-command")


def _page(tmp_path: Path, text: str) -> snippets.Page:
    path = tmp_path / "page.md"
    path.write_text(text)
    return snippets.parse_page(path)


def test_parse_markers(tmp_path: Path) -> None:
    page = _page(tmp_path, "# t\n\n<!-- docs: norun needs data -->\n```bash\nfalse\n```\n\n"
                 "<!-- docs: output -->\n```python\nprint(1)\n```\n\n```text\nnot run\n```\n"
                 '<!-- docs: figure a.png "A" -->\n')  # fmt: skip
    assert [(b.lang, b.run, b.output) for b in page.blocks] == [
        ("bash", False, False), ("python", True, True), ("text", False, False)
    ]  # fmt: skip
    assert page.blocks[0].norun_reason == "needs data"
    assert [(f.file, f.caption) for f in page.figures] == [("a.png", "A")]


@pytest.mark.parametrize(
    "text, message",
    [
        ("<!-- docs: norun -->\n```bash\nls\n```\n", "needs a reason"),
        ("<!-- docs: output -->\n\nsome text\n```bash\nls\n```\n", "not directly above"),
        ("<!-- docs: outptu -->\n```bash\nls\n```\n", "unknown docs marker"),
        ("<!-- docs: output -->\n```text\nls\n```\n", "above a 'text' block"),
        ("```python\nprint(1)\n", "never closed"),
    ],
)
def test_parse_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(snippets.DocsError, match=message):
        _page(tmp_path, text)


def test_run_page_names_the_failing_block(tmp_path: Path) -> None:
    page = _page(
        tmp_path, "```python\nx = 1\n```\n\ntext\n\n```python\nraise KeyError('boom')\n```\n"
    )
    with pytest.raises(snippets.DocsError) as err:
        snippets.run_page(page, tmp_path / "work")
    assert "page.md:7 failed" in str(err.value) and "KeyError: 'boom'" in str(err.value)


def test_run_page_bash_blocks_share_one_shell(tmp_path: Path) -> None:
    page = _page(tmp_path, "```bash\nexport GREETING=hello\nmkdir sub && cd sub\n```\n\n"
                 "<!-- docs: output -->\n```bash\necho $GREETING from $(basename $PWD)\n```\n"
                 "<!-- docs: output -->\n```python\nimport os\n"
                 "print(os.environ['GREETING'])\n```\n")  # fmt: skip
    result = snippets.run_page(page, tmp_path / "work")
    assert result.outputs == ["", "hello from sub\n", "hello\n"]


def test_run_page_fails_on_a_bash_error_and_a_missing_figure(tmp_path: Path) -> None:
    failing = _page(tmp_path, "```bash\ntrue | false\necho never\n```\n")
    with pytest.raises(snippets.DocsError, match="page.md:1 exited 1"):
        snippets.run_page(failing, tmp_path / "w1")
    no_figure = _page(tmp_path, '```bash\ntouch b.png\n```\n<!-- docs: figure a.png "x" -->\n')
    with pytest.raises(snippets.DocsError, match="figure a.png"):
        snippets.run_page(no_figure, tmp_path / "w2")


def test_cache_key_follows_the_blocks(tmp_path: Path) -> None:
    a = _page(tmp_path, "```python\nprint(1)\n```\n")
    b = _page(tmp_path, "```python\nprint(2)\n```\n")
    assert snippets.page_key(a, "d") != snippets.page_key(b, "d")
    assert snippets.page_key(a, "d") != snippets.page_key(a, "e")  # the package changed
    same = _page(tmp_path, "# other text\n```python\nprint(1)\n```\n")
    assert snippets.page_key(a, "d") == snippets.page_key(same, "d")


def test_copied_pages_keep_only_links_the_site_has() -> None:
    text = hooks.copied_page("RESULTS.md")
    assert "](docs/" not in text
    for target in re.findall(r"\]\(([^)#]+)", text):  # every link left points into the site
        assert target.endswith(".png") or target in ("results.md", "benchmarks.md"), target


def test_equations_become_mathml() -> None:
    html = '<p><span class="arithmatex">\\(a_t = W_{ih} x_t\\)</span></p>'
    out = hooks.on_page_content(html, None, None, None)  # type: ignore[arg-type]
    assert out.startswith("<p><math") and "<msub><mi>W</mi>" in out and "arithmatex" not in out
