"""The site's build hook (mkdocs.yml ``hooks:``): what keeps the pages true to the code.

- **Figures and outputs**: each page's code blocks run (``tools/docs/snippets.py``, cached by
  input); ``<!-- docs: figure FILE "caption" -->`` becomes the picture the blocks wrote, and a
  block marked ``<!-- docs: output -->`` is followed by what it printed.
- **Code lines**: ``{% source rnnkit.engine.layers.direction_forward start="for t in"
  end="hbuf[t + 1]" %}`` shows the lines of that function (or class, or method) from the
  first line containing ``start`` to the first line after it containing ``end`` (both
  optional), numbered as in the file and linked to the file's page;
  ``{% link rnnkit.engine.cells.lstm_step_backward %}`` is a link to them. Line numbers
  are looked up at every build, and a name or text no longer found fails the build.
- **Command help**: ``{% help lm train %}`` is ``rnnkit lm train --help``, as the command
  prints it now; every command must have a page that shows its help.
- **Generated pages**: the API reference (one page per package, every module, from the
  docstrings by mkdocstrings), one page per source file (numbered lines to link to), and the
  results and benchmarks pages from RESULTS.md and BENCHMARKS.md.
- **Equations**: ``$...$`` and ``$$...$$`` (pymdownx.arithmatex) become MathML at build time,
  which browsers draw without any script or network.
"""

from __future__ import annotations

import ast
import html
import logging
import posixpath
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))
import snippets  # noqa: E402

log = logging.getLogger("mkdocs.plugins.rnnkit")
ROOT = snippets.ROOT
SRC = ROOT / "src"
PKG = SRC / "rnnkit"

# one written in backticks is an example of the syntax, not a directive
DIRECTIVE = re.compile(r"(?<!`)\{%\s*(?P<name>source|link|help|readme)\b\s*(?P<args>.*?)\s*%\}")


def _warn(msg: str) -> None:
    log.warning(msg)  # --strict turns every warning into a failed build


# --- symbols -> file and lines ---------------------------------------------------------------


@dataclass
class Span:
    symbol: str
    path: Path  # the .py file
    first: int  # 1-based, inclusive
    last: int

    @property
    def rel(self) -> str:
        return self.path.relative_to(SRC).as_posix()  # rnnkit/engine/layers.py

    @property
    def page(self) -> str:
        return "source/" + self.path.relative_to(PKG).as_posix() + ".md"

    def lines(self) -> list[str]:
        return self.path.read_text(encoding="utf-8").splitlines()[self.first - 1 : self.last]


def module_file(dotted: str) -> Path | None:
    p = SRC.joinpath(*dotted.split("."))
    if p.with_suffix(".py").is_file():
        return p.with_suffix(".py")
    if (p / "__init__.py").is_file():
        return p / "__init__.py"
    return None


def resolve(symbol: str) -> Span:
    """The file and lines of a module, class, function, method or module-level name."""
    parts = symbol.split(".")
    for cut in range(len(parts), 0, -1):
        path = module_file(".".join(parts[:cut]))
        if path is not None:
            break
    else:
        raise ValueError(f"{symbol}: no such module under src/")
    text = path.read_text(encoding="utf-8")
    rest = parts[cut:]
    if not rest:
        return Span(symbol, path, 1, len(text.splitlines()))
    body: list[ast.stmt] = ast.parse(text).body
    node: ast.stmt | None = None
    for name in rest:
        node = next((n for n in body if _defines(n, name)), None)
        if node is None:
            raise ValueError(f"{symbol}: {name!r} not found in {path.relative_to(ROOT)}")
        body = getattr(node, "body", [])
    assert node is not None
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return Span(symbol, path, first, node.end_lineno or node.lineno)


def _defines(node: ast.stmt, name: str) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.target.id == name
    return False


def narrow(span: Span, start: str | None, end: str | None) -> Span:
    """The part of ``span`` from the first line containing ``start`` to the first line from
    there on containing ``end``."""
    lines = span.lines()
    a, b = 0, len(lines) - 1
    if start is not None:
        a = next((i for i, s in enumerate(lines) if start in s), -1)
        if a < 0:
            raise ValueError(f"{span.symbol}: no line contains start={start!r}")
    if end is not None:
        b = next((i for i in range(a, len(lines)) if end in lines[i]), -1)
        if b < 0:
            raise ValueError(f"{span.symbol}: no line from start on contains end={end!r}")
    return Span(span.symbol, span.path, span.first + a, span.first + b)


def _args(text: str) -> tuple[list[str], dict[str, str]]:
    words = shlex.split(text)
    pos = [w for w in words if "=" not in w]
    kw = dict(w.split("=", 1) for w in words if "=" in w)
    return pos, kw


def _rel(target: str, page_src: str) -> str:
    return posixpath.relpath(target, posixpath.dirname(page_src) or ".")


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    return "`" * (longest + 1)


def source_block(args: str, page_src: str, indent: str) -> str:
    pos, kw = _args(args)
    if len(pos) != 1 or set(kw) - {"start", "end"}:
        raise ValueError(f"source {args}: expected NAME [start=...] [end=...]")
    span = narrow(resolve(pos[0]), kw.get("start"), kw.get("end"))
    code = "\n".join(span.lines())
    # the common indentation goes; the line numbers stay those of the file
    strip = min((len(s) - len(s.lstrip()) for s in span.lines() if s.strip()), default=0)
    code = "\n".join(s[strip:] for s in span.lines())
    fence = _fence(code)
    link = _rel(span.page, page_src) + f"#L{span.first}-{span.last}"
    head = (
        f"[`{span.rel}`, lines {span.first}–{span.last}]({link})"
        f"{{ .source-link }} · `{pos[0].rpartition('.')[2]}`"
    )
    out = [head, "", f'{fence}python linenums="{span.first}"', code, fence]
    return "\n".join(indent + s if s else s for s in out)


def source_link(args: str, page_src: str) -> str:
    pos, kw = _args(args)
    if not 1 <= len(pos) <= 2 or set(kw) - {"start", "end"}:
        raise ValueError(f'link {args}: expected NAME ["text"] [start=...] [end=...]')
    span = narrow(resolve(pos[0]), kw.get("start"), kw.get("end"))
    text = pos[1] if len(pos) == 2 else f"`{span.rel}:{span.first}–{span.last}`"
    return f"[{text}]({_rel(span.page, page_src)}#L{span.first}-{span.last})"


def readme_block(marker: str) -> str:
    """The code block that follows ``<!-- MARKER -->`` in README.md (as .ci/run reads it)."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    try:
        start = lines.index(f"<!-- {marker} -->")
        first = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
        last = next(i for i in range(first + 1, len(lines)) if lines[i].startswith("```"))
    except (ValueError, StopIteration):
        raise ValueError(f"readme {marker}: no code block after <!-- {marker} --> in README.md")  # noqa: B904
    # shown one step per line (the same command for bash; the README keeps it on one line)
    body = [ln.replace(" && ", " && \\\n    ") for ln in lines[first + 1 : last]]
    return "\n".join([lines[first], *body, lines[last]])


# --- command help -------------------------------------------------------------------------------

_helped: set[str] = set()


def command_help(args: str) -> str:
    from click.testing import CliRunner

    from rnnkit.cli import cli

    words = shlex.split(args)
    r = CliRunner().invoke(cli, [*words, "--help"], prog_name="rnnkit", terminal_width=80)
    if r.exit_code:
        raise ValueError(f"help {args}: rnnkit {args} --help exited {r.exit_code}: {r.output}")
    _helped.add(" ".join(words))
    return f"```text\n$ rnnkit {args} --help\n{r.output.rstrip()}\n```"


def all_commands() -> list[str]:
    """Every command of the command line (not the groups), as words after ``rnnkit``."""
    import click

    from rnnkit.cli import cli

    found = []

    def walk(cmd: click.Command, prefix: list[str]) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in sorted(cmd.commands.items()):
                if sub.hidden:
                    continue
                if isinstance(sub, click.Group):
                    walk(sub, [*prefix, name])
                else:
                    found.append(" ".join([*prefix, name]))

    walk(cli, [])
    return found


# --- generated pages ----------------------------------------------------------------------------


def packages() -> list[str]:
    """``rnnkit`` and its subpackages and top-level modules, as documented in the reference."""
    found = ["rnnkit"]
    for p in sorted(PKG.iterdir()):
        if p.is_dir() and (p / "__init__.py").is_file():
            found.append(f"rnnkit.{p.name}")
        elif p.suffix == ".py" and not p.name.startswith("_"):
            found.append(f"rnnkit.{p.stem}")
    return found


def modules(package: str) -> list[str]:
    """The public modules of a package in the order its docstring names them (the order to
    read them in: ops, cells, layers), then the others, each after those it imports."""
    base = SRC.joinpath(*package.split("."))
    if not base.is_dir() or package == "rnnkit":
        return []
    names = [p.stem for p in sorted(base.glob("*.py")) if not p.name.startswith("_")]
    uses: dict[str, set[str]] = {}
    for name in names:
        tree = ast.parse((base / f"{name}.py").read_text(encoding="utf-8"))
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module.removeprefix(package + "."))
                found.update(f"{node.module}.{a.name}".removeprefix(package + ".")
                             for a in node.names)  # fmt: skip
        uses[name] = {n for n in found if n in names and n != name}
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and uses[n] <= set(ordered)]
        ordered.append(ready[0] if ready else next(n for n in names if n not in ordered))
    doc = ast.get_docstring(ast.parse((base / "__init__.py").read_text(encoding="utf-8"))) or ""
    mention = {n: m.start() for n in names if (m := re.search(rf"[.`]{n}\b", doc))}
    ordered.sort(key=lambda n: mention.get(n, len(doc) + 1))  # stable: the rest keep theirs
    return [f"{package}.{n}" for n in ordered]


def reference_page(package: str) -> str:
    path = module_file(package)
    assert path is not None
    rel = path.relative_to(PKG).as_posix()
    lines = [
        "---", "search:", "  boost: 0.5", "---", "",
        f"# `{package}`", "",
        f"[Source of `{package}`](../source/{rel}.md)", "",
        f"::: {package}", "    options:", "      show_root_heading: false",
        f"      members: {'false' if modules(package) else 'true'}", "",
    ]  # fmt: skip
    for mod in modules(package):
        lines += [f"::: {mod}", ""]
    return "\n".join(lines)


MODULE_HEADING = re.compile(r'(<h2 id="(rnnkit(?:\.\w+)+)" class="doc doc-heading">.*?</h2>)', re.S)


def source_links(html_text: str) -> str:
    """Under each module's heading in the API reference, a link to the module's source page."""

    def add(m: re.Match[str]) -> str:
        path = module_file(m[2])
        if path is None or path.name == "__init__.py":
            return m[0]
        rel = path.relative_to(PKG).as_posix()
        # reference/PKG.md is served as reference/PKG/, two levels below the site's root
        url = f"../../source/{rel}/"
        link = f'<a href="{url}">source: src/rnnkit/{rel}</a>'
        return f'{m[1]}\n<p class="source-link">{link}</p>'

    return MODULE_HEADING.sub(add, html_text)


def reference_index() -> str:
    rows = ["# API reference", "",
            "Generated from the docstrings at every build (mkdocstrings). Levels as in",
            "[the architecture](../ARCHITECTURE.md): each package imports only those below it.",
            "", "| package | summary |", "|---|---|"]  # fmt: skip
    for pkg in packages():
        path = module_file(pkg)
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""  # type: ignore[union-attr]
        first = " ".join(doc.split("\n\n")[0].split())
        first = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", first).replace("|", "\\|")
        rows.append(f"| [`{pkg}`]({pkg.partition('.')[2] or 'rnnkit'}.md) | {first} |")
    return "\n".join(rows) + "\n"


def source_page(path: Path) -> str:
    rel = path.relative_to(SRC).as_posix()
    uri = "source/" + path.relative_to(PKG).as_posix() + ".md"
    text = path.read_text(encoding="utf-8").rstrip("\n")
    fence = _fence(text)
    mod = path.relative_to(SRC).with_suffix("").as_posix().replace("/", ".")
    mod = mod.removesuffix(".__init__")
    parts = mod.split(".")
    about = ""
    if mod == "rnnkit":
        about = f"its documentation: [`rnnkit`]({_rel('reference/rnnkit.md', uri)})."
    elif not any(p.startswith("_") for p in parts):
        ref = _rel(f"reference/{parts[1]}.md", uri)
        about = f"its documentation: [`{mod}`]({ref}#{mod})."
    return "\n".join([
        "---", "search:", "  exclude: true", "hide:", "  - navigation", "  - toc", "---", "",
        f"# `src/{rel}`", "",
        f"The file as it is at this build; {about}" if about else "The file as at this build.",
        "", f'{fence}python linenums="1"', text, fence, "",
    ])  # fmt: skip


def copied_page(name: str) -> str:
    """RESULTS.md or BENCHMARKS.md for the site: links to docs/ files made relative."""
    text = (ROOT / name).read_text(encoding="utf-8")
    text = re.sub(r"\]\(docs/", "](", text)

    pages = {"RESULTS.md": "results.md", "BENCHMARKS.md": "benchmarks.md"}

    def repo_link(m: re.Match[str]) -> str:
        target, _, anchor = m[2].partition("#")
        if re.match(r"[a-z]+://|mailto:", m[2]) or not target or target.endswith(".png"):
            return m[0]
        if target in pages:
            return f"{m[1]}({pages[target]}{'#' + anchor if anchor else ''})"
        if target.endswith(".md") and (ROOT / "docs" / target).is_file():
            return m[0]
        return f"{m[1]}`{m[2]}`"  # a file of the repository, not a page of the site

    return re.sub(r"(\[[^\]]*\])\(([^)]+)\)", repo_link, text)


# --- mkdocs events ------------------------------------------------------------------------------

_results: dict[str, snippets.Result] = {}
_digest = ""


def on_config(config: Any) -> Any:
    """The API reference's part of the navigation: one page per package, found on disk."""
    ref: list[Any] = [{"Overview": "reference/index.md"}]
    ref += [{f"{p}": f"reference/{p.partition('.')[2] or 'rnnkit'}.md"} for p in packages()]
    for item in config["nav"] or []:
        if isinstance(item, dict) and "API reference" in item:
            item["API reference"] = ref
    _helped.clear()
    return config


def on_files(files: Files, config: Any) -> Files:
    global _digest
    gen = []
    gen.append(("reference/index.md", reference_index()))
    for pkg in packages():
        gen.append((f"reference/{pkg.partition('.')[2] or 'rnnkit'}.md", reference_page(pkg)))
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        gen.append((f"source/{rel}.md", source_page(path)))
    gen.append(("results.md", copied_page("RESULTS.md")))
    gen.append(("benchmarks.md", copied_page("BENCHMARKS.md")))
    for uri, content in gen:
        files.append(File.generated(config, uri, content=content))

    # run the pages' blocks (or take them from the cache) and add their figures
    _results.clear()
    _digest = snippets.source_digest()
    for f in list(files.documentation_pages()):
        if f.generated_by or f.abs_src_path is None:
            continue
        page = snippets.parse_page(Path(f.abs_src_path))
        if not (page.figures or any(b.output for b in page.runnable)):
            continue
        try:
            result, hit = snippets.cached_run(page, _digest)
        except snippets.DocsError as e:  # one message naming the page and block, no traceback
            raise PluginError(f"docs: {e}") from None
        log.info(
            f"docs: {f.src_uri}: blocks {'cached' if hit else f'ran in {result.seconds:.1f} s'}"
        )
        _results[f.src_uri] = result
        for fig in page.figures:
            files.append(
                File.generated(
                    config, _figure_uri(f.src_uri, fig.file), abs_src_path=result.figures[fig.file]
                )  # fmt: skip
            )
    return files


def _figure_uri(page_src: str, name: str) -> str:
    stem = posixpath.splitext(posixpath.basename(page_src))[0]
    return posixpath.join(posixpath.dirname(page_src), "figures", stem, name)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    src = page.file.src_uri
    lines = markdown.split("\n")
    result = _results.get(src)
    if not page.file.generated_by and page.file.abs_src_path:
        parsed = snippets.parse_page(Path(page.file.abs_src_path), markdown)
        # outputs after the blocks that ask for them, figures in place of their markers
        runnable = parsed.runnable
        inserts: dict[int, list[str]] = {}
        for i, b in enumerate(runnable):
            if b.output:
                assert result is not None
                out = result.outputs[i].rstrip("\n") or "(no output)"
                indent = re.match(r"\s*", lines[b.line - 1])[0]  # type: ignore[index]
                fence = _fence(out)
                shown = [f'{fence}text title="output"', *out.split("\n"), fence]
                inserts[b.end] = ["", *(indent + s for s in shown)]
        for fig in parsed.figures:
            uri = _figure_uri(src, fig.file)
            rel = posixpath.relpath(uri, posixpath.dirname(src) or ".")
            cap = fig.caption
            lines[fig.line - 1] = (
                f'<figure markdown="span">\n  [![{cap}]({rel})]({rel})\n'
                f"  <figcaption>{cap}</figcaption>\n</figure>"
            )
        for end in sorted(inserts, reverse=True):
            lines[end:end] = inserts[end]
    markdown = "\n".join(lines)

    def expand(m: re.Match[str]) -> str:
        name, args = m["name"], m["args"]
        try:
            if name == "source":
                line_start = markdown.rfind("\n", 0, m.start()) + 1
                indent = markdown[line_start : m.start()]
                return source_block(args, src, indent).lstrip()
            if name == "link":
                return source_link(args, src)
            if name == "readme":
                return readme_block(args)
            return command_help(args)
        except (ValueError, SyntaxError) as e:
            _warn(f"{src}: {{% {name} {args} %}}: {e}")
            return m[0]

    return DIRECTIVE.sub(expand, markdown)


MATH = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">\\(?P<o>[\(\[])(?P<tex>.*?)\\[\)\]]</(?P=tag)>', re.S
)


def on_page_content(html_text: str, page: Any, config: Any, files: Files) -> str:
    from latex2mathml.converter import convert

    def mathml(m: re.Match[str]) -> str:
        tex = html.unescape(m["tex"]).strip()
        try:
            return convert(tex, display="block" if m["o"] == "[" else "inline")
        except Exception as e:  # latex2mathml raises its own exception types
            _warn(f"{page.file.src_uri}: equation {tex!r}: {e}")
            return m[0]

    html_text = MATH.sub(mathml, html_text)
    if page is not None and page.file.src_uri.startswith("reference/"):
        html_text = source_links(html_text)
    return html_text


def on_post_build(config: Any) -> None:
    missing = [c for c in all_commands() if c not in _helped]
    if missing:
        _warn("docs: commands without a how-to page showing their help ({% help ... %}): "
              + ", ".join(missing))  # fmt: skip
